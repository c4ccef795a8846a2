"""tf.data pipelines: audio files + labels → batches of log-mel features.

file list → header scan (skip + count bad files) → shuffle (training) →
decode → mono → resample → crop / zero-pad to a fixed duration → drop silent
or undecodable clips (counted) → log-mel (optional; else raw waveforms for a
model whose first layer is the front end) → optional disk cache → random crop
of ``crop_frames`` frames (training) → batch → prefetch.

Decoding, resampling, cropping and, for ``LogMelSpectrogram``, the log-mel
itself run in one NumPy function (``tf.numpy_function``), one call per CPU
core in parallel: libsndfile, libsoxr and the FFTs release the GIL. Every
format goes through libsndfile, so a damaged file (cut short, bad header)
is one more counted skip, never an error that stops a run.

Reference: seed 001's pre-processing and training crops (docs/reconstruction.md#pre-processing).
"""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_aux.audio import decode as audio_lib


class AudioPipeline:
    """A ``tf.data.Dataset`` of ``(features, label)`` batches and its bad-file report.

    Attributes:
        dataset: the batched, prefetched dataset.
        scan: ``AudioScanReport`` of the header scan (unknown extension,
            unreadable, empty files skipped before decoding).
        num_files: files that reached the decoder.
        silent_skipped / unreadable_skipped: ``tf.Variable`` counters of clips
            dropped after decoding (accumulate over epochs; with a cache, only
            the first pass decodes).
    """

    def __init__(self, dataset, scan, silent, unreadable):
        self.dataset = dataset
        self.scan = scan
        self.num_files = len(scan.kept)
        self.silent_skipped = silent
        self.unreadable_skipped = unreadable

    @property
    def num_skipped(self):
        """Files skipped so far: at scan time, and silent or undecodable after decoding."""
        return (
            len(self.scan.skipped)
            + int(self.silent_skipped.numpy())
            + int(self.unreadable_skipped.numpy())
        )

    def summary(self):
        """One line: files kept, skipped at scan time by reason, and after decoding."""
        return (
            f"{self.scan.summary()}; after decoding: {int(self.silent_skipped.numpy())} silent and "
            f"{int(self.unreadable_skipped.numpy())} undecodable clips skipped"
        )


def audio_pipeline(
    paths,
    labels,
    *,
    training,
    sample_rate=16000,
    duration=30.0,
    frontend=None,
    crop_frames=512,
    batch_size=32,
    cache_dir=None,
    strict=False,
    seed=None,
    drop_remainder=False,
    frontend_batch_size=8,
    shuffle_buffer=1024,
    num_parallel_calls=None,
):
    """Builds the pipeline (see the module docstring).

    Args:
        paths: audio file paths.
        labels: one label per path (ints, or any array-like tf.data accepts).
        training: shuffle, random offsets and random frame crops when True;
            centred windows and whole clips when False.
        sample_rate: target rate; files at other rates are resampled.
        duration: seconds every clip is cropped or zero-padded to.
        frontend: a layer mapping a waveform ``(samples,)`` to features
            ``(frames, bins)``, e.g. ``keras_aux.layers.LogMelSpectrogram``;
            None yields raw waveforms.
        crop_frames: training crop length in frames (features only); shorter
            feature sequences are padded with -1 (the normalised floor).
            None keeps whole clips.
        batch_size: batch size.
        cache_dir: directory for a disk cache of the decoded features (the
            random frame crop stays after the cache).
        strict: raise on the first bad file instead of skipping and counting
            it: ``AudioFileError`` for a file the header scan rejects; for a
            file found damaged or silent while decoding, the dataset's iterator
            raises ``tf.errors.InvalidArgumentError`` whose message holds
            ``AudioFileError: <path>: <reason>``.
        seed: seed of the shuffle, offsets and crops.
        drop_remainder: drop the last incomplete batch.
        frontend_batch_size: clips per front-end call, for a front end without a
            NumPy twin (``LogMelSpectrogram`` computes each clip's features in
            the decoding function with ``numpy_call``).
        shuffle_buffer: examples in the shuffle buffer after a cache (without
            a cache the whole file list is shuffled before decoding).
        num_parallel_calls: files decoded at once; None: one per CPU core.

    Returns:
        An ``AudioPipeline``.
    """
    paths = [os.fspath(p) for p in paths]
    labels = np.asarray(labels)
    if len(paths) != len(labels):
        raise ValueError(f"Got {len(paths)} paths but {len(labels)} labels.")
    if not paths:
        raise ValueError("No audio files given.")
    if duration <= 0 or sample_rate <= 0 or batch_size <= 0:
        raise ValueError("`duration`, `sample_rate` and `batch_size` must be positive.")
    if crop_frames is not None and crop_frames <= 0:
        raise ValueError(f"`crop_frames` must be positive or None; got {crop_frames}.")
    scan = audio_lib.scan_audio_files(paths, strict=strict)
    if not scan.kept:
        raise ValueError(
            f"No usable audio files: {scan.summary()}. First skips: {scan.skipped[:3]}"
        )
    # A path is good or bad wherever it appears, so this keeps duplicates aligned.
    bad = {path for path, _ in scan.skipped}
    kept_labels = labels[[i for i, path in enumerate(paths) if path not in bad]]
    num_samples = int(round(duration * sample_rate))
    silent = tf.Variable(0, dtype=tf.int64, trainable=False, name="silent_skipped")
    unreadable = tf.Variable(0, dtype=tf.int64, trainable=False, name="unreadable_skipped")

    ds = tf.data.Dataset.from_tensor_slices(([info.path for info in scan.kept], kept_labels))
    if training and cache_dir is None:
        # Shuffling file names is free; with a cache the order must change
        # after it (below), or every epoch would replay the first one's.
        ds = ds.shuffle(len(scan.kept), seed=seed, reshuffle_each_iteration=True)

    # A front end with a NumPy twin (`LogMelSpectrogram.numpy_call`) runs inside the decoding
    # function, so a clip goes from file to features in one parallel NumPy call.
    numpy_frontend = _numpy_frontend(frontend)
    if numpy_frontend is not None:
        out_shape = list(frontend.compute_output_shape((num_samples,)))
    else:
        out_shape = [num_samples]

    def numpy_decode(path, position):
        # Strict mode raises AudioFileError naming the file; tf.data re-raises it as
        # InvalidArgumentError whose message holds "AudioFileError: <path>: <reason>".
        wave, status = audio_lib.decode_clip(
            path, sample_rate, num_samples, position, strict=strict
        )
        if numpy_frontend is None:
            return wave, status
        if status != audio_lib.OK:
            return np.zeros(out_shape, np.float32), status
        features = numpy_frontend(wave).astype(np.float32, copy=False)
        if not np.all(np.isfinite(features)):  # e.g. a float file holding 1e30s
            if strict:
                raise audio_lib.AudioFileError(f"{path.decode()}: non-finite features")
            return np.zeros(out_shape, np.float32), np.int32(audio_lib.UNREADABLE)
        return features, status

    def decode(path, label):
        # The random window position is drawn by a seeded TF op, the crop done in NumPy.
        position = tf.random.uniform([], seed=seed) if training else tf.constant(-1.0, tf.float32)
        wave, status = tf.numpy_function(
            numpy_decode, [path, position], (tf.float32, tf.int32), stateful=False
        )
        return tf.ensure_shape(wave, out_shape), label, tf.ensure_shape(status, [])

    def keep(wave, label, status):
        silent.assign_add(tf.cast(tf.equal(status, audio_lib.SILENT), tf.int64))
        unreadable.assign_add(tf.cast(tf.equal(status, audio_lib.UNREADABLE), tf.int64))
        return tf.equal(status, audio_lib.OK)

    # One decode per core: libsndfile, libsoxr and the FFTs release the GIL, so the NumPy
    # function runs in parallel.
    ds = ds.map(decode, num_parallel_calls=num_parallel_calls or os.cpu_count() or 1)
    ds = ds.filter(keep).map(lambda wave, label, status: (wave, label))
    if numpy_frontend is not None:
        ds = ds.map(lambda features, label: (tf.cast(features, frontend.compute_dtype), label))
    elif frontend is not None:
        # Equal-length waveforms: the front end runs on small batches (its
        # FFTs and matmul vectorise), then examples are split out again.
        ds = (
            ds.batch(frontend_batch_size)
            .map(lambda wave, label: (frontend(wave), label), num_parallel_calls=tf.data.AUTOTUNE)
            .unbatch()
        )
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        ds = ds.cache(os.path.join(cache_dir, "features"))
        if training:
            ds = ds.shuffle(
                min(len(scan.kept), shuffle_buffer), seed=seed, reshuffle_each_iteration=True
            )
    if frontend is not None and training and crop_frames is not None:
        ds = ds.map(
            lambda features, label: (random_frame_crop(features, crop_frames, seed), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    return AudioPipeline(ds, scan, silent, unreadable)


def _numpy_frontend(frontend):
    """``frontend.numpy_call`` when the front end has one, else None (TF ops on batches).

    Only a ``numpy_call`` defined by the same class as the ``call`` in use counts: a subclass
    that overrides ``call`` alone keeps its own TF computation.
    """
    if frontend is None or not callable(getattr(frontend, "numpy_call", None)):
        return None
    mro = type(frontend).__mro__
    owner_of_numpy = next((k for k in mro if "numpy_call" in vars(k)), None)
    owner_of_call = next((k for k in mro if "call" in vars(k)), None)
    return frontend.numpy_call if owner_of_numpy is owner_of_call else None


def random_frame_crop(features, crop_frames, seed=None, pad_value=-1.0):
    """A random window of ``crop_frames`` frames of ``(frames, bins)`` features;
    shorter inputs are padded at the end with ``pad_value``."""
    frames = tf.shape(features)[0]
    offset = tf.random.uniform(
        [], 0, tf.maximum(frames - crop_frames, 0) + 1, dtype=tf.int32, seed=seed
    )
    window = features[offset : offset + crop_frames]
    window = tf.pad(
        window, [[0, crop_frames - tf.shape(window)[0]], [0, 0]], constant_values=pad_value
    )
    window.set_shape([crop_frames, features.shape[-1]])
    return window


class AudioPipelineReport(keras.callbacks.Callback):
    """Prints each pipeline's bad-file summary at the end of every epoch."""

    def __init__(self, pipelines, print_fn=print):
        super().__init__()
        self.pipelines = dict(pipelines)
        self.print_fn = print_fn

    def on_epoch_end(self, epoch, logs=None):
        for name, pipeline in self.pipelines.items():
            self.print_fn(f"[{name}] {pipeline.summary()}")
