"""tf.data pipelines: audio files + labels → batches of log-mel features.

file list → header scan (skip + count bad files) → shuffle (training) →
decode → mono → resample → crop / zero-pad to a fixed duration → drop silent,
undecodable or too short clips (counted; files cut short are kept and counted) →
log-mel (optional; else raw waveforms for a model whose first layer is the front
end) → optional disk cache → random crop of ``crop_frames`` frames, or of
``crop_samples`` samples of raw waveforms (training) → batch → prefetch.

Decoding, resampling, cropping and, for ``LogMelSpectrogram``, the log-mel
itself run in one NumPy function (``tf.numpy_function``), one call per CPU
core in parallel: libsndfile, libsoxr and the FFTs release the GIL. Every
format goes through libsndfile, so a damaged file (bad header, corrupt data)
is one more counted skip, never an error that stops a run; a file cut short
keeps the audio that arrived when it has ``min_duration`` seconds of it, and
``AudioPipeline.summary`` reports it.

Reference: seed 001's pre-processing and training crops (docs/reconstruction.md#pre-processing).
"""

import math
import os

import keras
import numpy as np

from keras_aux.audio import decode as audio_lib
from keras_aux.utils.optional import LazyTensorFlow, require_tensorflow

# A tf.data pipeline: TensorFlow-only, imported when a pipeline is built (it feeds `fit` on any
# backend).
_PURPOSE = "for the tf.data audio pipeline (keras_aux.audio.pipeline)"
tf = LazyTensorFlow(_PURPOSE)

# Rows of `AudioPipeline.seconds_ranges`: the seconds of audio of the clips skipped as too
# short, of the files cut short (kept), and the seconds those files' headers declare.
_TOO_SHORT_ROW, _CUT_SHORT_ROW, _DECLARED_ROW = range(3)


def _counter(name, value=0):
    return tf.Variable(value, dtype=tf.int64, trainable=False, name=name)


def _seconds_ranges():
    """A ``(3, 2)`` variable of (min, max) seconds per row, empty (inf, -inf) until updated."""
    empty = np.tile(np.array([[np.inf, -np.inf]], np.float32), (3, 1))
    return tf.Variable(empty, trainable=False, name="seconds_ranges")


def _format_seconds(low, high):
    """``"0.424 s"`` or ``"0.424–0.910 s"``: milliseconds rounded down (a clip of 0.0999 s, under
    a 0.1 s minimum, shows as 0.099), whole seconds from 100 s."""

    def one(x):
        # float32 seconds: 0.434 is 0.43399998, so round off that error before flooring.
        return f"{math.floor(round(x * 1000, 3)) / 1000:.3f}" if x < 100 else f"{math.floor(x)}"

    return f"{one(low)} s" if one(low) == one(high) else f"{one(low)}–{one(high)} s"


class AudioPipeline:
    """A ``tf.data.Dataset`` of ``(features, label)`` batches and its bad-file report.

    Attributes:
        dataset: the batched, prefetched dataset.
        scan: ``AudioScanReport`` of the header scan (unknown extension,
            unreadable, empty files skipped before decoding).
        num_files: files that reached the decoder.
        silent_skipped / unreadable_skipped / too_short_skipped: ``tf.Variable``
            counters of clips dropped after decoding (accumulate over epochs;
            with a cache, only the first pass decodes).
        cut_short_kept: ``tf.Variable`` counter of files whose data ends before
            the length their header declares, kept with the audio that arrived
            (accumulates like the others).
        seconds_ranges: ``tf.Variable`` ``(3, 2)``: (min, max) seconds of audio
            of the too-short clips, of the cut-short files, and the seconds the
            cut-short files' headers declare (see `too_short_seconds`...).
        min_duration: the pipeline's ``min_duration`` (seconds).
    """

    def __init__(
        self,
        dataset,
        scan,
        silent,
        unreadable,
        too_short=None,
        cut_short=None,
        seconds_ranges=None,
        min_duration=audio_lib.MIN_DURATION,
    ):
        self.dataset = dataset
        self.scan = scan
        self.num_files = len(scan.kept)
        self.silent_skipped = silent
        self.unreadable_skipped = unreadable
        self.too_short_skipped = _counter("too_short_skipped") if too_short is None else too_short
        self.cut_short_kept = _counter("cut_short_kept") if cut_short is None else cut_short
        self.seconds_ranges = _seconds_ranges() if seconds_ranges is None else seconds_ranges
        self.min_duration = min_duration

    @property
    def num_skipped(self):
        """Files skipped so far: at scan time, and silent, undecodable or too short after
        decoding."""
        return (
            len(self.scan.skipped)
            + int(self.silent_skipped.numpy())
            + int(self.unreadable_skipped.numpy())
            + int(self.too_short_skipped.numpy())
        )

    @property
    def num_cut_short(self):
        """Files kept so far whose data ends before the length their header declares."""
        return int(self.cut_short_kept.numpy())

    def _range(self, row):
        low, high = self.seconds_ranges.numpy()[row].tolist()
        return None if low > high else (low, high)

    @property
    def too_short_seconds(self):
        """(min, max) seconds of audio of the clips skipped as too short, or None."""
        return self._range(_TOO_SHORT_ROW)

    @property
    def cut_short_seconds(self):
        """(min, max) seconds of audio that arrived of the files cut short, or None."""
        return self._range(_CUT_SHORT_ROW)

    @property
    def cut_short_declared_seconds(self):
        """(min, max) seconds the headers of the files cut short declare, or None."""
        return self._range(_DECLARED_ROW)

    def summary(self):
        """One line: files kept, skipped at scan time by reason, skipped after decoding, and the
        files cut short (kept) with how much audio they had against what they declared."""
        too_short = int(self.too_short_skipped.numpy())
        seconds = self.too_short_seconds
        short_range = f": {_format_seconds(*seconds)}" if too_short and seconds else ""
        line = (
            f"{self.scan.summary()}; after decoding: {int(self.silent_skipped.numpy())} silent, "
            f"{int(self.unreadable_skipped.numpy())} undecodable and {too_short} too short "
            f"(under {self.min_duration:g} s of audio{short_range}) clips skipped"
        )
        cut = self.num_cut_short
        if cut:
            arrived, declared = self.cut_short_seconds, self.cut_short_declared_seconds
            detail = ""
            if arrived and declared:
                detail = f", {_format_seconds(*arrived)} of {_format_seconds(*declared)} declared"
            line += f"; {cut} file{'s' if cut != 1 else ''} cut short (kept{detail})"
        return line


def audio_pipeline(
    paths,
    labels,
    *,
    training,
    sample_rate=16000,
    duration=30.0,
    frontend=None,
    crop_frames=512,
    crop_samples=None,
    batch_size=32,
    cache_dir=None,
    strict=False,
    seed=None,
    drop_remainder=False,
    frontend_batch_size=8,
    shuffle_buffer=1024,
    num_parallel_calls=None,
    min_duration=None,
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
        crop_samples: training crop length in samples of the raw waveforms a
            pipeline without ``frontend`` yields, for a model whose first layer
            is the front end (`keras_aux.architectures.genre_lstm.
            waveform_genre_lstm`): a random window drawn afresh every epoch
            (after the cache); `crop_samples_for` gives the samples a front
            end turns into ``crop_frames`` frames. None (default) keeps whole
            clips.
        batch_size: batch size.
        cache_dir: directory for a disk cache of the decoded features, or
            waveforms without ``frontend`` (the random crop stays after the
            cache).
        strict: raise on the first bad file instead of skipping and counting
            it: ``AudioFileError`` for a file the header scan rejects; for a
            file found damaged, silent, too short or cut short while decoding,
            the dataset's iterator raises ``tf.errors.InvalidArgumentError``
            whose message holds ``AudioFileError: <path>: <reason>``.
        seed: seed of the shuffle, offsets and crops.
        drop_remainder: drop the last incomplete batch.
        frontend_batch_size: clips per front-end call, for a front end without a
            NumPy twin (``LogMelSpectrogram`` computes each clip's features in
            the decoding function with ``numpy_call``).
        shuffle_buffer: examples in the shuffle buffer after a cache (without
            a cache the whole file list is shuffled before decoding).
        num_parallel_calls: files decoded at once; None: one per CPU core.
        min_duration: seconds of audio a clip needs before zero-padding to
            ``duration``; shorter clips are skipped and counted as too short
            (a file cut to a few bytes must not become a silent example under
            its label). None: 0.1 s (``decode.MIN_DURATION``: under one 2048-
            sample STFT window at 16 kHz, and under FSDD's shortest recording,
            0.1435 s), or ``duration`` when that is shorter; 0 keeps every
            clip with a sample. A file whose data ends before its header's
            length (cut short) is kept when it has ``min_duration`` of audio,
            and counted with its decoded and declared seconds in ``summary()``.

    Returns:
        An ``AudioPipeline``.

    Raises:
        MissingExtraError: TensorFlow is not installed (before anything else is done).
    """
    require_tensorflow(_PURPOSE)
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
    if crop_samples is not None and (frontend is not None or crop_samples <= 0):
        raise ValueError(
            f"`crop_samples` crops the raw waveforms of a pipeline without `frontend` and must "
            f"be positive; got crop_samples={crop_samples} with frontend={frontend!r} (a "
            "pipeline with a front end crops its features: `crop_frames`)."
        )
    min_duration = audio_lib.check_min_duration(min_duration, duration)
    scan = audio_lib.scan_audio_files(paths, strict=strict)
    if not scan.kept:
        raise ValueError(
            f"No usable audio files: {scan.summary()}. First skips: {scan.skipped[:3]}"
        )
    # A path is good or bad wherever it appears, so this keeps duplicates aligned.
    bad = {path for path, _ in scan.skipped}
    kept_labels = labels[[i for i, path in enumerate(paths) if path not in bad]]
    num_samples = int(round(duration * sample_rate))
    silent = _counter("silent_skipped")
    unreadable = _counter("unreadable_skipped")
    too_short = _counter("too_short_skipped")
    cut_short = _counter("cut_short_kept")
    seconds_ranges = _seconds_ranges()

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
        wave, status, seconds, declared = audio_lib.decode_clip(
            path,
            sample_rate,
            num_samples,
            position,
            strict=strict,
            min_duration=min_duration,
            return_seconds=True,
        )
        if numpy_frontend is None:
            return wave, status, seconds, declared
        if status not in audio_lib.KEPT:
            return np.zeros(out_shape, np.float32), status, seconds, declared
        features = numpy_frontend(wave).astype(np.float32, copy=False)
        if not np.all(np.isfinite(features)):  # e.g. a float file holding 1e30s
            if strict:
                raise audio_lib.AudioFileError(f"{path.decode()}: non-finite features")
            return (
                np.zeros(out_shape, np.float32),
                np.int32(audio_lib.UNREADABLE),
                seconds,
                declared,
            )
        return features, status, seconds, declared

    def decode(path, label):
        # The random window position is drawn by a seeded TF op, the crop done in NumPy.
        position = tf.random.uniform([], seed=seed) if training else tf.constant(-1.0, tf.float32)
        wave, status, seconds, declared = tf.numpy_function(
            numpy_decode,
            [path, position],
            (tf.float32, tf.int32, tf.float32, tf.float32),
            stateful=False,
        )
        status, seconds, declared = (tf.ensure_shape(t, []) for t in (status, seconds, declared))
        return tf.ensure_shape(wave, out_shape), label, status, seconds, declared

    def keep(wave, label, status, seconds, declared):
        def count(variable, code):
            hit = tf.equal(status, code)
            variable.assign_add(tf.cast(hit, tf.int64))
            return hit

        count(silent, audio_lib.SILENT)
        count(unreadable, audio_lib.UNREADABLE)
        short = count(too_short, audio_lib.TOO_SHORT)
        cut = count(cut_short, audio_lib.CUT_SHORT)
        rows = tf.stack([short, cut, cut])[:, None]
        values = tf.stack([seconds, seconds, declared])
        widened = tf.stack(
            [
                tf.minimum(seconds_ranges[:, 0], values),
                tf.maximum(seconds_ranges[:, 1], values),
            ],
            axis=1,
        )
        seconds_ranges.assign(tf.where(rows, widened, seconds_ranges))
        return tf.logical_or(tf.equal(status, audio_lib.OK), cut)

    # One decode per core: libsndfile, libsoxr and the FFTs release the GIL, so the NumPy
    # function runs in parallel.
    ds = ds.map(decode, num_parallel_calls=num_parallel_calls or os.cpu_count() or 1)
    ds = ds.filter(keep).map(lambda wave, label, *_: (wave, label))
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
    if training and crop_samples is not None:
        ds = ds.map(
            lambda wave, label: (random_frame_crop(wave, crop_samples, seed, pad_value=0.0), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
    return AudioPipeline(
        ds, scan, silent, unreadable, too_short, cut_short, seconds_ranges, min_duration
    )


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
    """A random window of ``crop_frames`` entries along the first axis of ``features``
    (``(frames, bins)`` features, or a ``(samples,)`` waveform); shorter inputs are padded at
    the end with ``pad_value``."""
    frames = tf.shape(features)[0]
    offset = tf.random.uniform(
        [], 0, tf.maximum(frames - crop_frames, 0) + 1, dtype=tf.int32, seed=seed
    )
    window = features[offset : offset + crop_frames]
    padding = [[0, crop_frames - tf.shape(window)[0]]] + [[0, 0]] * (len(features.shape) - 1)
    window = tf.pad(window, padding, constant_values=pad_value)
    window.set_shape([crop_frames] + list(features.shape[1:]))
    return window


def crop_samples_for(frontend, crop_frames):
    """Samples of a waveform crop that ``frontend`` turns into ``crop_frames`` frames.

    A front end with centred frames (``LogMelSpectrogram``) gives ``1 + samples // stride``
    frames, so ``(crop_frames - 1) * stride`` samples give ``crop_frames``. The features of such
    a crop are not the same crop of the whole clip's features: the frames within half a window
    of its ends see zeros beyond it instead of the neighbouring audio, and the dB are taken
    relative to the crop's own peak instead of the whole clip's (docs/reconstruction.md).

    Args:
        frontend: a layer with a ``sequence_stride`` (hop length in samples).
        crop_frames: frames of the crop, ≥ 1, or None (no crop: returns None).
    """
    if crop_frames is None:
        return None
    return (crop_frames - 1) * int(frontend.sequence_stride) or 1


class AudioPipelineReport(keras.callbacks.Callback):
    """Prints each pipeline's bad-file summary at the end of every epoch."""

    def __init__(self, pipelines, print_fn=print):
        super().__init__()
        self.pipelines = dict(pipelines)
        self.print_fn = print_fn

    def on_epoch_end(self, epoch, logs=None):
        for name, pipeline in self.pipelines.items():
            self.print_fn(f"[{name}] {pipeline.summary()}")
