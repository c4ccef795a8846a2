"""Audio decoding and waveform operations for tf.data pipelines.

- 16-bit PCM WAV decodes in the graph with ``tf.audio.decode_wav``; every
  other format libsndfile reads (FLAC, MP3, OGG, 24/32-bit WAV...) goes
  through ``soundfile`` inside ``tf.numpy_function``. (tensorflow-io's
  decoders only load on TF ≤ 2.17, not on the locked TF 2.21: see BUILD.md.)
- Mono mix-down (mean of the channels), resampling as TF ops (band-limited
  FFT resampling), crop or zero-pad to a fixed duration with a random offset
  for training or a centred window for evaluation.
- Bad files are found before training by ``scan_audio_files`` (header only:
  unreadable, empty, unknown extension) and after decoding (silent clips), and
  are skipped and counted, or raise ``AudioFileError`` in strict mode.

Reference: seed 001's pre-processing (docs/reconstruction.md#pre-processing): 16 kHz mono, 30 s,
random offset or zero padding.
"""

import dataclasses
import os

import numpy as np
import tensorflow as tf

from keras_aux.audio.datasets import AUDIO_EXTENSIONS
from keras_aux.utils.optional import require

# Status codes of a decoded clip (see `decode_audio`).
OK = 0
UNREADABLE = 1
SILENT = 2


def _soundfile():
    """The ``soundfile`` module (the `audio` extra), imported on first use."""
    return require("soundfile", extra="audio", purpose="to read audio files (libsndfile)")


class AudioFileError(ValueError):
    """A file that cannot be used as audio (strict mode)."""


@dataclasses.dataclass
class AudioFileInfo:
    """What the header of one file says (``soundfile.info``)."""

    path: str
    ok: bool
    reason: str = ""
    sample_rate: int = 0
    frames: int = 0
    channels: int = 0
    graph_decodable: bool = False  # 16-bit PCM WAV: `tf.audio.decode_wav`


def inspect_audio_file(path):
    """Reads one file's header; never raises for a bad file (see ``reason``)."""
    extension = os.path.splitext(path)[1].lower()
    if extension not in AUDIO_EXTENSIONS:
        return AudioFileInfo(path, False, f"unknown extension {extension or '(none)'!r}")
    soundfile = _soundfile()  # outside the `try`: a missing package is not a bad file
    try:
        info = soundfile.info(path)
    except Exception as error:  # libsndfile's errors are RuntimeError/LibsndfileError
        return AudioFileInfo(path, False, f"unreadable: {error}")
    if info.frames <= 0:
        return AudioFileInfo(path, False, "empty (no samples)")
    graph = extension == ".wav" and info.format == "WAV" and info.subtype == "PCM_16"
    return AudioFileInfo(path, True, "", info.samplerate, info.frames, info.channels, graph)


@dataclasses.dataclass
class AudioScanReport:
    """Files kept and files skipped (with reasons) by ``scan_audio_files``."""

    kept: list
    skipped: list  # (path, reason)

    def summary(self):
        """One line per skip reason with its count."""
        reasons = {}
        for _, reason in self.skipped:
            key = reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
        parts = [f"{len(self.kept)} files kept"] + [
            f"{n} skipped ({r})" for r, n in reasons.items()
        ]
        return ", ".join(parts)


def scan_audio_files(paths, strict=False):
    """Header check of every file: unknown extensions, unreadable or empty files.

    Args:
        paths: file paths.
        strict: raise ``AudioFileError`` on the first bad file instead of
            skipping it.

    Returns:
        ``AudioScanReport`` whose ``kept`` holds an ``AudioFileInfo`` per usable
        file (in input order) and ``skipped`` the ``(path, reason)`` pairs.
    """
    kept, skipped = [], []
    for path in paths:
        info = inspect_audio_file(os.fspath(path))
        if info.ok:
            kept.append(info)
        elif strict:
            raise AudioFileError(f"{info.path}: {info.reason}")
        else:
            skipped.append((info.path, info.reason))
    return AudioScanReport(kept, skipped)


def _soundfile_decode(path):
    """numpy side of the soundfile decoder: (samples, channels) float32, rate, status."""
    path = path.item() if isinstance(path, np.ndarray) else path  # 0-d array from the graph
    path = path.decode() if isinstance(path, bytes) else path
    soundfile = _soundfile()
    try:
        data, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except Exception:
        return np.zeros((0, 1), np.float32), np.int32(0), np.int32(UNREADABLE)
    if data.shape[0] == 0:
        return np.zeros((0, 1), np.float32), np.int32(rate), np.int32(UNREADABLE)
    return data, np.int32(rate), np.int32(OK)


def decode_audio(path, graph_decodable):
    """Decodes one file to ``(samples, channels)`` float32 in [-1, 1].

    Args:
        path: scalar string tensor.
        graph_decodable: scalar bool tensor; True for 16-bit PCM WAV
            (decoded in the graph), False for everything else (soundfile).

    Returns:
        ``(audio, sample_rate, status)``; ``status`` is ``OK`` or
        ``UNREADABLE`` (soundfile failed at decode time).
    """

    def graph_wav():
        decoded = tf.audio.decode_wav(tf.io.read_file(path))
        return decoded.audio, tf.cast(decoded.sample_rate, tf.int32), tf.constant(OK, tf.int32)

    _soundfile()  # fail while building the pipeline, not inside `tf.numpy_function`

    def with_soundfile():
        audio, rate, status = tf.numpy_function(
            _soundfile_decode, [path], (tf.float32, tf.int32, tf.int32), stateful=False
        )
        return (
            tf.reshape(audio, [-1, tf.shape(audio)[-1]]),
            tf.reshape(rate, []),
            tf.reshape(status, []),
        )

    audio, rate, status = tf.cond(graph_decodable, graph_wav, with_soundfile)
    audio.set_shape([None, None])
    return audio, rate, status


def to_mono(audio):
    """``(samples, channels)`` → ``(samples,)`` by averaging the channels."""
    return tf.reduce_mean(audio, axis=-1)


def resample(waveform, rate_in, rate_out):
    """Band-limited resampling of a 1-D waveform by FFT (as ``scipy.signal.resample``).

    The spectrum is truncated (down-sampling: an ideal low-pass at the new
    Nyquist frequency) or zero-padded (up-sampling), and the output has
    ``round(n · rate_out / rate_in)`` samples. A no-op when the rates match.
    """
    rate_in = tf.cast(rate_in, tf.int64)
    rate_out = tf.cast(rate_out, tf.int64)

    def fft_resample():
        n = tf.shape(waveform, out_type=tf.int64)[0]
        m = tf.maximum((n * rate_out + rate_in // 2) // rate_in, 1)
        spectrum = tf.signal.rfft(waveform)
        bins = tf.minimum(tf.shape(spectrum, out_type=tf.int64)[0], m // 2 + 1)
        kept = spectrum[:bins]
        kept = tf.pad(kept, [[0, m // 2 + 1 - bins]])
        out = tf.signal.irfft(kept, fft_length=tf.cast(m, tf.int32)[None])
        return out * tf.cast(m, tf.float32) / tf.cast(n, tf.float32)

    return tf.cond(tf.equal(rate_in, rate_out), lambda: waveform, fft_resample)


def fix_duration(waveform, num_samples, random_offset, seed=None):
    """Crops or zero-pads a 1-D waveform to exactly ``num_samples``.

    Longer clips are cropped at a uniformly random offset (``random_offset``
    True, training) or centred (evaluation); shorter clips are zero-padded at
    the end, as the reference does.
    """
    n = tf.shape(waveform)[0]
    excess = tf.maximum(n - num_samples, 0)
    if random_offset:
        offset = tf.random.uniform([], 0, excess + 1, dtype=tf.int32, seed=seed)
    else:
        offset = excess // 2
    cropped = waveform[offset : offset + num_samples]
    padded = tf.pad(cropped, [[0, num_samples - tf.shape(cropped)[0]]])
    padded.set_shape([num_samples])
    return padded


def is_silent(waveform, threshold=1e-6):
    """True when every sample's magnitude is below ``threshold``."""
    return tf.reduce_max(tf.abs(waveform)) < threshold


def load_waveform(path, sample_rate=16000):
    """Eager convenience: one file → mono float32 numpy waveform at ``sample_rate``.

    Raises ``AudioFileError`` for a file that cannot be decoded.
    """
    info = inspect_audio_file(os.fspath(path))
    if not info.ok:
        raise AudioFileError(f"{info.path}: {info.reason}")
    audio, rate, status = decode_audio(tf.constant(info.path), tf.constant(info.graph_decodable))
    if int(status) != OK:
        raise AudioFileError(f"{info.path}: unreadable")
    return resample(to_mono(audio), rate, sample_rate).numpy()
