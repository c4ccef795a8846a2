"""Audio decoding and waveform operations for tf.data pipelines.

- Every format libsndfile reads (WAV, FLAC, MP3, OGG...) is decoded by ``soundfile``
  (`read_audio`); 16-bit PCM is read as integers and scaled in NumPy, several times faster
  than libsndfile's float conversion and than ``tf.audio.decode_wav``, which also fails on a
  file cut short inside its data chunk. (tensorflow-io's decoders only load on TF ≤ 2.17, not
  on the locked TF 2.21: see BUILD.md.)
- Mono mix-down (mean of the channels), resampling with libsoxr's ``"HQ"`` polyphase filter
  (`resample_numpy`, what ``librosa.load`` uses), crop or zero-pad to a fixed duration with a
  random offset for training or a centred window for evaluation: `decode_clip`, plain NumPy,
  which the pipeline runs in ``tf.numpy_function``. `resample` is the same step as TF ops
  (band-limited FFT) for graphs that take raw waveforms, e.g. a serving SavedModel.
- Bad files are found before training by ``scan_audio_files`` (header only:
  unreadable, empty, unknown extension) and while decoding (damaged data, silent clips), and
  are skipped and counted, or raise ``AudioFileError`` naming the file in strict mode.

Reference: seed 001's pre-processing (docs/reconstruction.md#pre-processing): 16 kHz mono, 30 s,
random offset or zero padding.
"""

import dataclasses
import os
import threading

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
    graph_decodable: bool = (
        False  # 16-bit PCM WAV; informational since every file goes through libsndfile
    )


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


# Sample rates outside this range are taken as a damaged header (a flipped byte can turn 8000
# into 1 or 2**31), not as audio: resampling them would allocate absurd arrays.
MIN_SAMPLE_RATE = 1000
MAX_SAMPLE_RATE = 768000

# libsoxr's quality preset, the one `librosa.load(sr=...)` uses (res_type="soxr_hq").
SOXR_QUALITY = "HQ"


def _soxr():
    """The ``soxr`` module (the `audio` extra) when installed, else None."""
    try:
        import soxr
    except ImportError:
        return None
    return soxr


def _as_path(path):
    """A path as ``str`` from ``str``, ``bytes`` or a 0-d array (what `tf.numpy_function` passes)."""
    path = path.item() if isinstance(path, np.ndarray) else path
    return path.decode() if isinstance(path, bytes) else os.fspath(path)


_WORKSPACES = threading.local()


def _thread_buffers():
    """This thread's reusable decoding buffers (`decode_clip`): a whole clip's int16 and float32
    copies are tens of MB, and in the pipeline's worker threads glibc hands such allocations out
    as fresh pages each time, which costs more than the decoding (audio_pipeline benchmark)."""
    buffers = getattr(_WORKSPACES, "buffers", None)
    if buffers is None:
        buffers = _WORKSPACES.buffers = {}
    return buffers


def _buffer(buffers, dtype, shape):
    """A ``shape`` view of the thread's flat ``dtype`` buffer, grown when too small."""
    size = int(np.prod(shape))
    key = np.dtype(dtype).name
    if key not in buffers or buffers[key].size < size:
        buffers[key] = np.empty(size, dtype)
    return buffers[key][:size].reshape(shape)


def read_audio(path, buffers=None):
    """Decodes one file with libsndfile; never raises for a bad file.

    16-bit PCM files (WAV, FLAC...) are read as ``int16`` and scaled by ``1 / 32768`` in NumPy,
    which gives the same floats as libsndfile's own conversion at a fraction of its cost; other
    encodings are read as float32.

    Args:
        path: file path (``str``, ``bytes`` or a 0-d array).
        buffers: internal (`decode_clip`): decode into this thread's reusable buffers; the
            returned array is then only valid until the thread's next call.

    Returns:
        ``(audio, sample_rate, reason)``: ``audio`` is ``(samples, channels)`` float32 in
        [-1, 1] and ``reason`` is ``""``, or ``audio`` is None and ``reason`` says why the file
        cannot be used (libsndfile's error, no samples, an implausible sample rate).
    """
    path = _as_path(path)
    soundfile = _soundfile()
    try:
        with soundfile.SoundFile(path) as handle:
            rate = handle.samplerate
            if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                return None, rate, f"unreadable: implausible sample rate {rate} Hz"
            pcm16 = handle.subtype == "PCM_16"
            out = None
            if pcm16 and buffers is not None:
                # The header's frame count, bounded by what the file's size can hold (a
                # damaged header may claim anything).
                fits = os.path.getsize(path) // (2 * max(handle.channels, 1))
                frames = max(min(handle.frames, fits), 0)
                out = _buffer(buffers, np.int16, (frames, handle.channels))
            audio = handle.read(dtype="int16" if pcm16 else "float32", always_2d=True, out=out)
    except Exception as error:  # libsndfile's errors are RuntimeError/LibsndfileError
        return None, 0, f"unreadable: {error}"
    if audio.shape[0] == 0:
        return None, rate, "unreadable: no samples decoded"
    if pcm16:
        scaled = None if buffers is None else _buffer(buffers, np.float32, audio.shape)
        audio = np.multiply(audio, np.float32(1.0 / 32768.0), out=scaled, dtype=np.float32)
    elif not np.all(np.isfinite(audio)):  # float WAV with garbage in its data
        return None, rate, "unreadable: non-finite samples"
    return audio, rate, ""


def resample_numpy(waveform, rate_in, rate_out):
    """Resamples a 1-D float32 NumPy waveform (the pipeline's resampler).

    With ``soxr`` installed (the `audio` extra): libsoxr's ``"HQ"`` polyphase resampler,
    the one ``librosa.load(path, sr=rate_out)`` uses, so waveforms agree with the reference's to
    float32 rounding (the test bound is 1e-5). Without it: the band-limited FFT resampler of
    `resample`, in NumPy. A no-op when the rates match.
    """
    waveform = np.asarray(waveform, np.float32)
    if rate_in == rate_out:
        return waveform
    soxr = _soxr()
    if soxr is not None:
        return soxr.resample(waveform, rate_in, rate_out, quality=SOXR_QUALITY)
    n = waveform.shape[0]
    m = max((n * rate_out + rate_in // 2) // rate_in, 1)
    spectrum = np.fft.rfft(waveform)[: m // 2 + 1]
    spectrum = np.pad(spectrum, (0, m // 2 + 1 - spectrum.shape[0]))
    return (np.fft.irfft(spectrum, m) * (m / n)).astype(np.float32)


def fix_duration_numpy(waveform, num_samples, position=None):
    """Crops or zero-pads a 1-D NumPy waveform to ``num_samples`` (see `fix_duration`).

    Args:
        waveform: 1-D array.
        num_samples: output length.
        position: where a longer clip's window starts, as a fraction in [0, 1) of the possible
            offsets (a uniform draw gives a uniformly random offset); None or negative centres it.
    """
    excess = max(waveform.shape[0] - num_samples, 0)
    if position is None or position < 0:
        offset = excess // 2
    else:
        offset = min(int(position * (excess + 1)), excess)
    window = waveform[offset : offset + num_samples]
    if window.shape[0] < num_samples:
        window = np.pad(window, (0, num_samples - window.shape[0]))
    return np.ascontiguousarray(window, dtype=np.float32)


def decode_clip(path, sample_rate, num_samples, position=None, strict=False, threshold=1e-6):
    """One file → a mono clip at ``sample_rate`` of exactly ``num_samples``, and its status.

    Decode (`read_audio`), mix down to mono, resample (`resample_numpy`), crop or zero-pad
    (`fix_duration_numpy`), check for silence. Plain NumPy: this is the function the pipeline
    runs in ``tf.numpy_function``, in parallel (libsndfile and libsoxr release the GIL).

    Args:
        path: file path (``str``, ``bytes`` or a 0-d array).
        sample_rate: output rate.
        num_samples: output length.
        position: window position of a longer clip (see `fix_duration_numpy`).
        strict: raise ``AudioFileError`` naming the file instead of returning a bad status.
        threshold: a clip whose every sample magnitude is below it is silent.

    Returns:
        ``(wave, status)``: float32 ``(num_samples,)`` and ``OK``, ``SILENT`` or ``UNREADABLE``
        (then ``wave`` is zeros).

    Raises:
        AudioFileError: in strict mode, for an undecodable file or a silent clip.
    """
    path = _as_path(path)
    buffers = _thread_buffers()
    audio, rate, reason = read_audio(path, buffers)
    if audio is None:
        if strict:
            raise AudioFileError(f"{path}: {reason}")
        return np.zeros(num_samples, np.float32), np.int32(UNREADABLE)
    mono = to_mono_numpy(audio)
    wave = fix_duration_numpy(
        resample_numpy(mono, int(rate), int(sample_rate)), int(num_samples), position
    )
    if any(np.may_share_memory(wave, buffer) for buffer in buffers.values()):
        wave = wave.copy()  # the caller keeps it; the buffers serve the next file
    peak = np.max(np.abs(wave))
    if not np.isfinite(peak):
        if strict:
            raise AudioFileError(f"{path}: unreadable: non-finite samples")
        return np.zeros(num_samples, np.float32), np.int32(UNREADABLE)
    if not peak >= threshold:
        if strict:
            raise AudioFileError(f"{path}: silent clip (every sample below {threshold:g})")
        return np.zeros(num_samples, np.float32), np.int32(SILENT)
    return wave, np.int32(OK)


def decode_audio(path, graph_decodable=None):
    """Decodes one file to ``(samples, channels)`` float32 in [-1, 1], as TF ops.

    Every format goes through libsndfile (`read_audio`) inside ``tf.numpy_function``: a damaged
    file (cut short, bad header...) gives ``UNREADABLE``, never an error.

    Args:
        path: scalar string tensor.
        graph_decodable: ignored; kept for callers of the earlier signature, which decoded
            16-bit WAV with ``tf.audio.decode_wav`` (slower than libsndfile, and it fails on a
            file cut short inside its data chunk).

    Returns:
        ``(audio, sample_rate, status)``; ``status`` is ``OK`` or ``UNREADABLE`` (then
        ``audio`` is ``(0, 1)``).
    """
    del graph_decodable
    _soundfile()  # fail while building the pipeline, not inside `tf.numpy_function`

    def numpy_decode(file_path):
        audio, rate, reason = read_audio(file_path)
        if audio is None:
            return np.zeros((0, 1), np.float32), np.int32(rate), np.int32(UNREADABLE)
        return audio, np.int32(rate), np.int32(OK)

    audio, rate, status = tf.numpy_function(
        numpy_decode, [path], (tf.float32, tf.int32, tf.int32), stateful=False
    )
    audio = tf.reshape(audio, [-1, tf.shape(audio)[-1]])
    audio.set_shape([None, None])
    return audio, tf.reshape(rate, []), tf.reshape(status, [])


def to_mono(audio):
    """``(samples, channels)`` → ``(samples,)`` by averaging the channels."""
    return tf.reduce_mean(audio, axis=-1)


def to_mono_numpy(audio):
    """`to_mono` in NumPy: a view of the only channel, else the float32 mean of the channels."""
    return audio[:, 0] if audio.shape[1] == 1 else audio.mean(axis=1, dtype=np.float32)


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
    """Eager convenience: one file → mono float32 NumPy waveform at ``sample_rate``.

    Decodes with `read_audio` and resamples with `resample_numpy` (as the pipeline does).

    Raises:
        AudioFileError: naming the file, for a file that cannot be decoded.
    """
    info = inspect_audio_file(os.fspath(path))
    if not info.ok:
        raise AudioFileError(f"{info.path}: {info.reason}")
    audio, rate, reason = read_audio(info.path)
    if audio is None:
        raise AudioFileError(f"{info.path}: {reason}")
    mono = to_mono_numpy(audio)
    return resample_numpy(mono, int(rate), int(sample_rate))
