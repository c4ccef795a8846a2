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
  unreadable, empty, unknown extension) and while decoding (damaged data, silent clips, clips
  with less than ``min_duration`` seconds of audio), and are skipped and counted, or raise
  ``AudioFileError`` naming the file in strict mode. A file cut short (its data ends before the
  length its header declares) keeps the audio that arrived and is counted as ``CUT_SHORT``, or
  raises in strict mode.

Reference: seed 001's pre-processing (docs/reconstruction.md#pre-processing): 16 kHz mono, 30 s,
random offset or zero padding.
"""

import dataclasses
import math
import numbers
import os
import struct
import threading

import numpy as np

from keras_aux.audio.datasets import AUDIO_EXTENSIONS
from keras_aux.utils.optional import LazyTensorFlow, require

# The TF ops here (`decode_audio`, `to_mono`, `resample`, `fix_duration`, `is_silent`) are for
# tf.data graphs; the NumPy functions need no TensorFlow (KERAS_BACKEND=jax without it).
tf = LazyTensorFlow("for the TensorFlow ops of keras_aux.audio.decode (tf.data graphs)")

# Status codes of a decoded clip (see `decode_clip`; `decode_audio` gives OK or UNREADABLE).
OK = 0
UNREADABLE = 1  # skipped: libsndfile cannot decode it, or its samples are not finite
SILENT = 2  # skipped: every sample below the silence threshold
TOO_SHORT = 3  # skipped: less than `min_duration` seconds of audio
CUT_SHORT = 4  # kept: its data ends before the length its header declares (what arrived)
KEPT = (OK, CUT_SHORT)  # the statuses of clips a pipeline trains on

# Default `min_duration` (seconds): a clip with less audio than this, before zero-padding, is
# skipped as TOO_SHORT. It is under one analysis window of the log-mel front end (2048 samples:
# 0.128 s at 16 kHz, 0.093 s at 22.05 kHz), so such a clip cannot fill one STFT frame with
# signal, and a 28-sample stub of a file cut to 100 bytes (3.5 ms) is far below it; and it is
# under the shortest real recording of FSDD (0.1435 s, 6_yweweler_3.wav; all 3,000 checked), so
# no real spoken digit is skipped. Pass 0 to keep every clip that has a sample.
MIN_DURATION = 0.1


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
    encodings are read as float32. A file whose decoding fails part-way (a FLAC file cut short:
    libFLAC "lost sync") keeps the frames decoded before the failure.

    Args:
        path: file path (``str``, ``bytes`` or a 0-d array).
        buffers: internal (`decode_clip`): decode into this thread's reusable buffers; the
            returned array is then only valid until the thread's next call.

    Returns:
        ``(audio, sample_rate, reason)``: ``audio`` is ``(samples, channels)`` float32 in
        [-1, 1] and ``reason`` is ``""``, or ``audio`` is None and ``reason`` says why the file
        cannot be used (libsndfile's error, no samples, an implausible sample rate). Whether the
        file was cut short: `read_audio_checked`.
    """
    audio, rate, reason, _ = read_audio_checked(path, buffers)
    return audio, rate, reason


# Bytes per frame and channel of the WAV encodings whose data is one fixed-size sample per frame
# and channel (the others, e.g. ADPCM, code blocks of frames).
_WAV_SAMPLE_BYTES = {
    "PCM_S8": 1,
    "PCM_U8": 1,
    "PCM_16": 2,
    "PCM_24": 3,
    "PCM_32": 4,
    "FLOAT": 4,
    "DOUBLE": 8,
    "ULAW": 1,
    "ALAW": 1,
}
# A WAV data chunk size that means "length unknown" (streaming writers), not a declared length.
_WAV_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
# libmpg123 takes an MP3's length from its Xing/LAME header when there is one (exact, measured:
# identical frame counts), else estimates it from the file size; a shortfall of up to one MPEG
# frame (1152 samples) or 1 % is taken as that estimate's error, not as a file cut short.
_MP3_SLACK_FRAMES = 1152
_MP3_SLACK_FRACTION = 0.01
# Frames per read when a whole-file read failed and what decodes before the failure is kept.
_SALVAGE_BLOCK = 4096


def _wav_data_chunk(path):
    """``(declared bytes, bytes present)`` of a RIFF/RIFX WAVE file's data chunk, or None.

    libsndfile reports a WAV file's frames from what the file holds, not from the size its data
    chunk declares, so a WAV file cut short is only seen here.
    """
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] not in (b"RIFF", b"RIFX") or head[8:12] != b"WAVE":
            return None
        order = "<" if head[:4] == b"RIFF" else ">"
        file_size = os.fstat(f.fileno()).st_size
        position = 12
        for _ in range(64):  # a damaged header can chain anything; real files have a few chunks
            if position + 8 > file_size:
                return None
            f.seek(position)
            chunk = f.read(8)
            (size,) = struct.unpack(order + "I", chunk[4:8])
            if chunk[:4] == b"data":
                return size, file_size - position - 8
            position += 8 + size + (size & 1)
    return None


def _declared_frames(path, handle, header_frames, frames_read):
    """The frames the file's header declares, when its data ends before them; else None.

    WAV: the data chunk's size (`_wav_data_chunk`; 0 and 0xFFFFFFFF mean "unknown"). FLAC: the
    STREAMINFO sample count; MP3: the Xing/LAME frame count, both as libsndfile's ``frames``
    before decoding (MP3 with a slack for libmpg123's estimate of a file without that header).
    OGG and the rest declare no length: a cut OGG file looks like a shorter one (libsndfile
    finds its length from the last page that arrived).
    """
    kind = handle.format
    if kind in ("WAV", "WAVEX"):
        chunk = _wav_data_chunk(path)
        if chunk is None or chunk[0] in _WAV_UNKNOWN_SIZES or chunk[0] <= chunk[1]:
            return None
        declared_bytes, present = chunk
        width = _WAV_SAMPLE_BYTES.get(handle.subtype)
        if width:
            declared = declared_bytes // (width * max(handle.channels, 1))
        else:  # block-coded (ADPCM...): in proportion to what decoded from what is present
            declared = frames_read * declared_bytes // max(present, 1)
        return declared if declared > frames_read else None
    if kind == "FLAC":
        return header_frames if header_frames > frames_read else None
    if kind == "MP3":
        slack = max(_MP3_SLACK_FRAMES, int(_MP3_SLACK_FRACTION * header_frames))
        return header_frames if header_frames - frames_read > slack else None
    return None


def _salvage(path, dtype, limit):
    """The frames of a file decoded before libsndfile's first error (at most ``limit``), or None."""
    parts = []
    total = 0
    try:
        with _soundfile().SoundFile(path) as handle:
            while total < limit:
                try:
                    part = handle.read(_SALVAGE_BLOCK, dtype=dtype, always_2d=True)
                except Exception:  # the failure: keep what came before it
                    break
                if part.shape[0] == 0:
                    break
                parts.append(part)
                total += part.shape[0]
    except Exception:
        return None
    return np.concatenate(parts)[:limit] if parts else None


def _read_rest(handle, head, dtype, block=1 << 16):
    """``head`` and the rest of the file's frames, read in blocks until the end of its data."""
    parts = [head]
    while True:
        part = handle.read(block, dtype=dtype, always_2d=True)
        if part.shape[0]:
            parts.append(part)
        if part.shape[0] < block:
            return np.concatenate(parts)


def read_audio_checked(path, buffers=None):
    """`read_audio`, and whether the file's data ends before the length its header declares.

    Returns:
        ``(audio, sample_rate, reason, declared_frames)``: the first three as `read_audio`;
        ``declared_frames`` is the frame count the header declares when fewer frames arrived
        (a file cut short: ``audio`` holds what arrived), else None (complete, or a format that
        declares no length: see `_declared_frames`).
    """
    path = _as_path(path)
    soundfile = _soundfile()
    try:
        handle = soundfile.SoundFile(path)
    except Exception as error:  # libsndfile's errors are RuntimeError/LibsndfileError
        return None, 0, f"unreadable: {error}", None
    with handle:
        rate = handle.samplerate
        if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
            return None, rate, f"unreadable: implausible sample rate {rate} Hz", None
        header_frames = handle.frames
        pcm16 = handle.subtype == "PCM_16"
        dtype = "int16" if pcm16 else "float32"
        try:
            out = None
            if pcm16 and buffers is not None:
                # The header's frame count, bounded (a damaged header may claim anything) by
                # what the file's size can hold uncompressed; a compressed file (FLAC) may hold
                # more, read below.
                fits = os.path.getsize(path) // (2 * max(handle.channels, 1))
                frames = max(min(header_frames, fits), 0)
                out = _buffer(buffers, np.int16, (frames, handle.channels))
            audio = handle.read(dtype=dtype, always_2d=True, out=out)
            if out is not None and audio.shape[0] == frames < header_frames:
                audio = _read_rest(handle, audio, dtype)
        except Exception as error:
            audio = None
            failure = f"unreadable: {error}"
        if audio is None:
            # Decoding failed part-way (e.g. FLAC "lost sync" at the cut): keep the frames before.
            audio = _salvage(path, dtype, max(header_frames, 0))
            if audio is None:
                return None, rate, failure, None
        try:
            declared = _declared_frames(path, handle, header_frames, audio.shape[0])
        except Exception:  # an unreadable header region: no declared length to compare with
            declared = None
    if audio.shape[0] == 0:
        return None, rate, "unreadable: no samples decoded", None
    if pcm16:
        scaled = None if buffers is None else _buffer(buffers, np.float32, audio.shape)
        audio = np.multiply(audio, np.float32(1.0 / 32768.0), out=scaled, dtype=np.float32)
    elif not np.all(np.isfinite(audio)):  # float WAV with garbage in its data
        return None, rate, "unreadable: non-finite samples", None
    return audio, rate, "", declared


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


def check_min_duration(min_duration, duration):
    """``min_duration`` as a float, after checking it against the clip ``duration`` (seconds).

    None gives the default, `MIN_DURATION`, or ``duration`` when that is shorter.

    Raises:
        ValueError: ``min_duration`` is not a number, NaN, negative or larger than ``duration``.
    """
    if min_duration is None:
        return float(min(MIN_DURATION, duration))
    if isinstance(min_duration, bool) or not isinstance(min_duration, numbers.Real):
        raise ValueError(f"`min_duration` must be a number of seconds; got {min_duration!r}.")
    min_duration = float(min_duration)
    if math.isnan(min_duration) or min_duration < 0:
        raise ValueError(f"`min_duration` must be a non-negative number; got {min_duration}.")
    if min_duration > duration:
        raise ValueError(
            f"`min_duration` ({min_duration:g} s) is longer than the clip `duration` "
            f"({duration:g} s): every clip would be skipped."
        )
    return min_duration


def _too_short(path, frames, rate, min_duration, declared=None):
    """The strict-mode message for a clip under ``min_duration``."""
    cut = "" if declared is None else f" (cut short: its header declares {declared / rate:.3f} s)"
    return (
        f"{path}: too short: {frames / rate:.4f} s of audio ({frames} frames at {rate} Hz), "
        f"under min_duration {min_duration:g} s{cut}"
    )


def _cut_short(path, frames, rate, declared):
    """The strict-mode message for a file whose data ends before its header's length."""
    return (
        f"{path}: cut short: its header declares {declared / rate:.3f} s ({declared} frames at "
        f"{rate} Hz) but its data ends after {frames / rate:.3f} s ({frames} frames)"
    )


def decode_clip(
    path,
    sample_rate,
    num_samples,
    position=None,
    strict=False,
    threshold=1e-6,
    min_duration=None,
    return_seconds=False,
):
    """One file → a mono clip at ``sample_rate`` of exactly ``num_samples``, and its status.

    Decode (`read_audio_checked`), check the length, mix down to mono, resample
    (`resample_numpy`), crop or zero-pad (`fix_duration_numpy`), check for silence. Plain NumPy:
    this is the function the pipeline runs in ``tf.numpy_function``, in parallel (libsndfile and
    libsoxr release the GIL).

    Args:
        path: file path (``str``, ``bytes`` or a 0-d array).
        sample_rate: output rate.
        num_samples: output length.
        position: window position of a longer clip (see `fix_duration_numpy`).
        strict: raise ``AudioFileError`` naming the file instead of returning a bad status, and
            for a file cut short.
        threshold: a clip whose every sample magnitude is below it is silent.
        min_duration: seconds of audio (decoded, before zero-padding) a clip needs; shorter
            clips are ``TOO_SHORT``. None: `MIN_DURATION` (0.1 s, see there why), or the clip
            length ``num_samples / sample_rate`` when shorter; 0 keeps any clip with a sample.
        return_seconds: also return the seconds of audio decoded and declared.

    Returns:
        ``(wave, status)``: float32 ``(num_samples,)`` and ``OK``, ``CUT_SHORT`` (the file's data
        ends before its header's length; ``wave`` holds what arrived, zero-padded), or a skip
        status, ``SILENT``, ``UNREADABLE`` or ``TOO_SHORT`` (then ``wave`` is zeros). With
        ``return_seconds``: ``(wave, status, seconds, declared_seconds)``, float32 seconds of
        audio the file decoded to and its header declares (equal unless cut short; 0 when
        unreadable).

    Raises:
        AudioFileError: in strict mode, naming the file: undecodable, too short (with its
            duration), cut short (with the declared and the decoded lengths), or silent.
        ValueError: a bad ``min_duration`` (`check_min_duration`).
    """
    path = _as_path(path)
    min_duration = check_min_duration(min_duration, int(num_samples) / float(sample_rate))

    def result(wave, status, seconds=0.0, declared=0.0):
        if return_seconds:
            return wave, np.int32(status), np.float32(seconds), np.float32(declared)
        return wave, np.int32(status)

    buffers = _thread_buffers()
    audio, rate, reason, declared = read_audio_checked(path, buffers)
    if audio is None:
        if strict:
            raise AudioFileError(f"{path}: {reason}")
        return result(np.zeros(num_samples, np.float32), UNREADABLE)
    seconds = audio.shape[0] / rate
    declared_seconds = seconds if declared is None else declared / rate
    if seconds < min_duration:
        if strict:
            raise AudioFileError(_too_short(path, audio.shape[0], rate, min_duration, declared))
        return result(np.zeros(num_samples, np.float32), TOO_SHORT, seconds, declared_seconds)
    if declared is not None and strict:
        raise AudioFileError(_cut_short(path, audio.shape[0], rate, declared))
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
        return result(np.zeros(num_samples, np.float32), UNREADABLE, seconds, declared_seconds)
    if not peak >= threshold:
        if strict:
            raise AudioFileError(f"{path}: silent clip (every sample below {threshold:g})")
        return result(np.zeros(num_samples, np.float32), SILENT, seconds, declared_seconds)
    status = OK if declared is None else CUT_SHORT
    return result(wave, status, seconds, declared_seconds)


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


def load_waveform(path, sample_rate=16000, min_duration=None, strict=False):
    """Eager convenience: one file → mono float32 NumPy waveform at ``sample_rate``.

    Decodes with `read_audio_checked` and resamples with `resample_numpy` (as the pipeline does).
    A file cut short gives the audio that arrived.

    Args:
        path: file path.
        sample_rate: output rate.
        min_duration: seconds of audio the file needs; None: `MIN_DURATION` (0.1 s).
        strict: also raise for a file cut short.

    Raises:
        AudioFileError: naming the file, for a file that cannot be decoded, has less than
            ``min_duration`` seconds of audio, or (``strict``) is cut short.
        ValueError: a bad ``min_duration`` (`check_min_duration`).
    """
    min_duration = check_min_duration(min_duration, math.inf)
    info = inspect_audio_file(os.fspath(path))
    if not info.ok:
        raise AudioFileError(f"{info.path}: {info.reason}")
    audio, rate, reason, declared = read_audio_checked(info.path)
    if audio is None:
        raise AudioFileError(f"{info.path}: {reason}")
    if audio.shape[0] / rate < min_duration:
        raise AudioFileError(_too_short(info.path, audio.shape[0], rate, min_duration, declared))
    if declared is not None and strict:
        raise AudioFileError(_cut_short(info.path, audio.shape[0], rate, declared))
    mono = to_mono_numpy(audio)
    return resample_numpy(mono, int(rate), int(sample_rate))
