"""Files cut short and clips too short (issue 21 §7): a file whose data ends before its header
says is kept when enough arrived, counted and reported with its decoded and declared seconds;
a clip with less than ``min_duration`` seconds of audio is skipped and counted, never a silent
training example under its label; strict mode names both."""

import glob
import math
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile

from keras_aux.audio import decode
from keras_aux.audio.pipeline import audio_pipeline
from keras_aux.testing import requires_tensorflow
from keras_aux.utils.optional import LazyTensorFlow

# The tf.data pipeline's tests need TensorFlow; the NumPy decoding's run everywhere.
tf = LazyTensorFlow("for the tests of the tf.data pipeline (marked requires_tensorflow)")

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd" / "recordings"
SOURCE = "7_jackson_3.wav"  # 3,472 samples at 8 kHz (0.434 s), a canonical 44-byte header


def fsdd_wav():
    path = FSDD / SOURCE
    if not path.exists():
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    return path


@pytest.fixture
def cut_files(tmp_path):
    """The FSDD recording intact, cut to 100 bytes (28 samples, 3.5 ms) and cut to 70 % of its
    data (2,430 samples, 0.304 s): ``(good, stub, cut, declared seconds)``."""
    source = fsdd_wav()
    data = source.read_bytes()
    samples = (len(data) - 44) // 2
    stub = tmp_path / "stub_100_bytes.wav"
    stub.write_bytes(data[:100])
    cut = tmp_path / "cut_70_percent.wav"
    cut.write_bytes(data[: 44 + 2 * int(0.7 * samples)])
    return source, stub, cut, samples / 8000


def tone(seconds, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    return (0.5 * np.sin(2 * np.pi * 440.0 * t)).astype(np.float32)


@requires_tensorflow
def test_wav_cut_to_100_bytes_is_skipped_as_too_short(cut_files):
    _, stub, _, declared = cut_files
    wave, status, seconds, declared_seconds = decode.decode_clip(
        stub, 16000, 16000, return_seconds=True
    )
    assert status == decode.TOO_SHORT and not np.any(wave)
    assert seconds == pytest.approx(28 / 8000) and declared_seconds == pytest.approx(declared)
    pipeline = audio_pipeline([stub], [7], training=False, duration=1.0)
    assert list(pipeline.dataset) == []  # not a zero-padded example labelled 7
    assert int(pipeline.too_short_skipped.numpy()) == 1 and pipeline.num_skipped == 1
    assert pipeline.num_cut_short == 0  # counted once, as skipped
    assert "1 too short (under 0.1 s of audio: 0.003 s) clips skipped" in pipeline.summary()


@requires_tensorflow
def test_wav_cut_to_100_bytes_raises_in_strict_mode(cut_files):
    _, stub, _, _ = cut_files
    message = f"{stub}: too short: 0.0035 s of audio .*under min_duration 0.1 s"
    with pytest.raises(decode.AudioFileError, match=message):
        decode.decode_clip(stub, 16000, 16000, strict=True)
    pipeline = audio_pipeline([stub], [7], training=False, duration=1.0, strict=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"AudioFileError: {message}"):
        list(pipeline.dataset)
    with pytest.raises(decode.AudioFileError, match=message):
        decode.load_waveform(stub)


@requires_tensorflow
def test_wav_cut_to_70_percent_is_kept_and_reported(cut_files):
    source, _, cut, declared = cut_files
    wave, status, seconds, declared_seconds = decode.decode_clip(
        cut, 8000, 8000, return_seconds=True
    )
    assert status == decode.CUT_SHORT
    assert seconds == pytest.approx(2430 / 8000) and declared_seconds == pytest.approx(declared)
    whole, _ = soundfile.read(str(source), dtype="float32")
    np.testing.assert_array_equal(wave[:2430], whole[:2430])  # what arrived, then zeros
    assert not np.any(wave[2430:])
    pipeline = audio_pipeline([cut], [7], training=False, duration=1.0)
    ((_, labels),) = list(pipeline.dataset)
    assert labels.numpy().tolist() == [7] and pipeline.num_skipped == 0
    assert pipeline.num_cut_short == 1
    assert pipeline.cut_short_seconds == pytest.approx((2430 / 8000,) * 2)
    assert pipeline.cut_short_declared_seconds == pytest.approx((declared,) * 2)
    assert "1 file cut short (kept, 0.303 s of 0.434 s declared)" in pipeline.summary()
    assert len(decode.load_waveform(cut, 8000)) == 2430


@requires_tensorflow
def test_wav_cut_short_raises_in_strict_mode(cut_files):
    _, _, cut, _ = cut_files
    message = (
        f"{cut}: cut short: its header declares 0.434 s \\(3472 frames at 8000 Hz\\) but its "
        "data ends after 0.304 s \\(2430 frames\\)"
    )
    with pytest.raises(decode.AudioFileError, match=message):
        decode.decode_clip(cut, 16000, 16000, strict=True)
    pipeline = audio_pipeline([cut], [7], training=False, duration=1.0, strict=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"AudioFileError: {message}"):
        list(pipeline.dataset)
    with pytest.raises(decode.AudioFileError, match=f"{cut}: cut short"):
        decode.load_waveform(cut, strict=True)


@requires_tensorflow
def test_summary_reports_cut_short_and_too_short_files(cut_files, tmp_path):
    source, stub, cut, _ = cut_files
    cut_more = tmp_path / "cut_40_percent.wav"
    cut_more.write_bytes(source.read_bytes()[: 44 + 2 * 1389])
    paths = [source, stub, cut, cut_more]
    pipeline = audio_pipeline(paths, [0, 1, 2, 3], training=True, duration=1.0, seed=0)
    labels = sorted(np.concatenate([y.numpy() for _, y in pipeline.dataset]).tolist())
    assert labels == [0, 2, 3]
    assert pipeline.num_skipped == 1 and pipeline.num_cut_short == 2
    assert pipeline.summary() == (
        "4 files kept; after decoding: 0 silent, 0 undecodable and 1 too short (under 0.1 s of "
        "audio: 0.003 s) clips skipped; 2 files cut short (kept, 0.173–0.303 s of 0.434 s "
        "declared)"
    )


@requires_tensorflow
def test_min_duration_sets_the_threshold(tmp_path):
    path = tmp_path / "tone_50ms.wav"
    soundfile.write(path, tone(0.05), 16000, subtype="PCM_16")
    assert decode.decode_clip(path, 16000, 16000)[1] == decode.TOO_SHORT  # default 0.1 s
    assert decode.decode_clip(path, 16000, 16000, min_duration=0.05)[1] == decode.OK
    assert decode.decode_clip(path, 16000, 16000, min_duration=0.0501)[1] == decode.TOO_SHORT
    kept = audio_pipeline([path], [1], training=False, duration=0.5, min_duration=0.04)
    assert len(list(kept.dataset)) == 1 and kept.num_skipped == 0
    assert "(under 0.04 s of audio)" in kept.summary()
    # Clips shorter than the default minimum: the default is the clip length.
    assert decode.check_min_duration(None, 0.05) == 0.05
    assert decode.check_min_duration(None, 30.0) == decode.MIN_DURATION == 0.1
    kept = audio_pipeline([path], [1], training=False, duration=0.05)
    assert len(list(kept.dataset)) == 1


@requires_tensorflow
@pytest.mark.parametrize(
    "value, message",
    [
        (-0.1, "non-negative"),
        (math.nan, "non-negative"),
        (2.0, r"longer than the clip `duration` \(1 s\)"),
        ("0.1", "number of seconds"),
        (True, "number of seconds"),
    ],
)
def test_min_duration_is_validated(tmp_path, value, message):
    path = tmp_path / "tone.wav"
    soundfile.write(path, tone(1.0), 16000, subtype="PCM_16")
    with pytest.raises(ValueError, match=message):
        audio_pipeline([path], [0], training=False, duration=1.0, min_duration=value)
    with pytest.raises(ValueError, match=message):
        decode.decode_clip(path, 16000, 16000, min_duration=value)


def test_default_min_duration_keeps_every_fsdd_recording():
    paths = glob.glob(str(FSDD / "*.wav"))
    if not paths:
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    shortest = min(info.frames / info.samplerate for info in map(soundfile.info, paths))
    assert shortest == pytest.approx(1148 / 8000)  # 6_yweweler_3.wav, 0.1435 s
    assert decode.MIN_DURATION < shortest


def test_wav_with_unknown_data_size_is_not_cut_short(tmp_path):
    # Streaming writers leave the data size 0xFFFFFFFF (or 0): no declared length to miss.
    path = tmp_path / "stream.wav"
    soundfile.write(path, tone(0.5), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    assert decode.decode_clip(path, 16000, 16000)[1] == decode.OK


def test_compressed_formats_cut_short(tmp_path):
    """FLAC declares its length (STREAMINFO) and MP3 in its Xing/LAME header: a file cut short
    keeps what decoded before the cut and is reported. OGG declares none: a cut OGG file is a
    shorter one (libsndfile finds its length from the last page that arrived)."""
    wave = np.concatenate([tone(0.5) * (k % 3 + 1) / 3 for k in range(20)])  # 10 s
    for extension, subtype, expected in (
        ("flac", None, decode.CUT_SHORT),
        ("mp3", None, decode.CUT_SHORT),
        ("ogg", "VORBIS", decode.OK),
    ):
        whole = tmp_path / f"whole.{extension}"
        soundfile.write(whole, wave, 16000, subtype=subtype)
        _, status, seconds, declared = decode.decode_clip(whole, 16000, 16000, return_seconds=True)
        assert status == decode.OK and seconds == pytest.approx(declared), extension
        assert seconds == pytest.approx(10.0, abs=0.1), extension
        data = whole.read_bytes()
        cut = tmp_path / f"cut.{extension}"
        cut.write_bytes(data[: int(0.6 * len(data))])
        _, status, seconds, declared = decode.decode_clip(cut, 16000, 16000, return_seconds=True)
        assert status == expected, (extension, status)
        assert 3.0 < seconds < 8.0, (extension, seconds)
        if expected == decode.CUT_SHORT:
            assert declared == pytest.approx(10.0, abs=0.1), extension


def test_pipeline_decodes_every_frame_of_a_16_bit_flac_file(tmp_path):
    # Reading into the thread's buffers once bounded a file's frames by its size in bytes / 2,
    # right for WAV but not for FLAC, whose 16-bit audio takes fewer bytes: the clip was
    # silently cut (a 0.434 s FSDD recording to 0.287 s). It is now reported as cut short.
    wave = np.concatenate([tone(0.25), np.zeros(12000, np.float32)])  # compresses well
    path = tmp_path / "compressible.flac"
    soundfile.write(path, wave, 16000, subtype="PCM_16")
    assert path.stat().st_size < wave.size  # fewer bytes than 2-byte samples
    clip, status = decode.decode_clip(path, 16000, 24000)
    expected, _ = soundfile.read(str(path), dtype="float32")
    assert status == decode.OK
    np.testing.assert_array_equal(clip[: expected.size], expected)
