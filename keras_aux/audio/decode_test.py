"""Decoding, resampling, crop/pad and the tf.data pipeline on real and fixture files."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from keras_aux.audio import decode
from keras_aux.audio.pipeline import AudioPipelineReport, audio_pipeline, random_frame_crop
from keras_aux.layers import LogMelSpectrogram
from keras_aux.testing import requires_tensorflow
from keras_aux.utils.optional import LazyTensorFlow

# The TF ops and the tf.data pipeline are tested where TensorFlow is installed; the NumPy
# decoding everywhere (also on the JAX tier).
tf = LazyTensorFlow("for the tests of TF ops (marked requires_tensorflow)")

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd" / "recordings"


def tone(seconds, rate, freq=440.0, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t).astype("float32")
    return np.stack([wave] * channels, axis=1) if channels > 1 else wave


@pytest.fixture
def fixture_dir(tmp_path):
    """A tree of deliberate cases, all derived from real or generated audio."""
    rate = 16000
    files = {}
    soundfile.write(tmp_path / "tone16k.wav", tone(1.0, rate), rate, subtype="PCM_16")
    soundfile.write(
        tmp_path / "stereo44k.wav", tone(1.0, 44100, 440.0, channels=2), 44100, subtype="PCM_16"
    )
    soundfile.write(tmp_path / "tone24bit.wav", tone(1.0, 22050), 22050, subtype="PCM_24")
    soundfile.write(tmp_path / "tone.flac", tone(1.0, rate), rate, format="FLAC")
    soundfile.write(tmp_path / "tone.ogg", tone(1.0, rate), rate, format="OGG", subtype="VORBIS")
    soundfile.write(tmp_path / "tone.mp3", tone(1.0, rate), rate, format="MP3")
    soundfile.write(tmp_path / "silent.wav", np.zeros(rate, "float32"), rate, subtype="PCM_16")
    soundfile.write(
        tmp_path / "short.wav", tone(0.005, rate), rate, subtype="PCM_16"
    )  # < one FFT frame
    soundfile.write(tmp_path / "empty.wav", np.zeros(0, "float32"), rate, subtype="PCM_16")
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wave file")
    (tmp_path / "notes.txt").write_text("not audio")
    for p in tmp_path.iterdir():
        files[p.name] = str(p)
    return files


def test_inspect_classifies_files(fixture_dir):
    info = {name: decode.inspect_audio_file(path) for name, path in fixture_dir.items()}
    assert info["tone16k.wav"].ok and info["tone16k.wav"].graph_decodable
    assert info["tone24bit.wav"].ok and not info["tone24bit.wav"].graph_decodable
    assert info["stereo44k.wav"].channels == 2 and info["stereo44k.wav"].sample_rate == 44100
    assert info["tone.mp3"].ok and not info["tone.mp3"].graph_decodable
    assert info["empty.wav"].reason == "empty (no samples)"
    assert info["garbage.wav"].reason.startswith("unreadable")
    assert info["notes.txt"].reason == "unknown extension '.txt'"


@pytest.mark.parametrize(
    "name", ["tone16k.wav", "stereo44k.wav", "tone24bit.wav", "tone.flac", "tone.ogg", "tone.mp3"]
)
def test_every_format_decodes_to_16k_mono_tone(fixture_dir, name):
    wave = decode.load_waveform(fixture_dir[name], sample_rate=16000)
    assert wave.ndim == 1
    assert abs(len(wave) - 16000) <= 1200  # MP3/OGG encoders add some padding
    spectrum = np.abs(np.fft.rfft(wave))
    peak_hz = np.argmax(spectrum) * 16000 / len(wave)
    assert abs(peak_hz - 440.0) < 5.0, peak_hz


def test_int16_read_equals_libsndfile_float_conversion():
    path = FSDD / "7_jackson_3.wav"
    if not path.exists():
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    audio, rate, reason = decode.read_audio(str(path))  # int16, scaled in NumPy
    expected, expected_rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    assert reason == "" and rate == expected_rate == 8000
    np.testing.assert_array_equal(audio, expected)


@requires_tensorflow
def test_decode_audio_op_equals_libsndfile_float_conversion():
    path = FSDD / "7_jackson_3.wav"
    if not path.exists():
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    expected, _ = soundfile.read(str(path), dtype="float32", always_2d=True)
    graph, graph_rate, status = decode.decode_audio(tf.constant(str(path)), tf.constant(True))
    assert int(status) == decode.OK and int(graph_rate) == 8000
    np.testing.assert_array_equal(graph.numpy(), expected)


# Resampler bounds against `librosa.load(path, sr=16000)` (soxr_hq), in sample units of a
# waveform in [-1, 1]: the pipeline's resampler is the same libsoxr "HQ" filter, so its bound
# is float32 rounding (measured: identical); the TF-op FFT resampler (`resample`, for graphs)
# is a different filter, within 3 % of the clip's peak (measured 2.9 % on FSDD 7_jackson_3).
PIPELINE_RESAMPLE_ATOL = 1e-5
GRAPH_RESAMPLE_RTOL = 0.03


def test_resampler_matches_librosa_load(tmp_path):
    librosa = pytest.importorskip("librosa", reason="librosa (dev extra) is the reference")
    stereo = tmp_path / "stereo.wav"
    rng = np.random.default_rng(0)
    soundfile.write(stereo, rng.uniform(-0.5, 0.5, (44100, 2)), 44100, subtype="PCM_16")
    paths = [stereo] + ([FSDD / "7_jackson_3.wav"] if FSDD.exists() else [])
    for path in paths:
        expected, _ = librosa.load(str(path), sr=16000)
        got = decode.load_waveform(path, 16000)
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=PIPELINE_RESAMPLE_ATOL, rtol=0)


@requires_tensorflow
def test_graph_resampler_is_close_to_librosa_load():
    librosa = pytest.importorskip("librosa", reason="librosa (dev extra) is the reference")
    path = FSDD / "7_jackson_3.wav"
    if not path.exists():
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    expected, _ = librosa.load(str(path), sr=16000)
    wave, rate = soundfile.read(str(path), dtype="float32")
    graph = decode.resample(tf.constant(wave), rate, 16000).numpy()
    assert graph.shape == expected.shape
    assert np.max(np.abs(graph - expected)) <= GRAPH_RESAMPLE_RTOL * np.max(np.abs(expected))


@pytest.mark.filterwarnings("ignore:n_fft=2048 is too large")
def test_numpy_log_mel_matches_layer_and_librosa():
    librosa = pytest.importorskip("librosa", reason="librosa (dev extra) is the reference")
    layer = LogMelSpectrogram()
    for samples in (1, 100, 2048, 16000, 33333):
        wave = 0.1 * np.random.default_rng(samples).standard_normal(samples).astype("float32")
        got = layer.numpy_call(wave)
        power = librosa.feature.melspectrogram(
            y=wave, sr=16000, n_fft=2048, hop_length=512, n_mels=128
        )
        expected = ((librosa.power_to_db(power, ref=np.max) + 40.0) / 40.0).T
        np.testing.assert_allclose(got, expected, atol=1e-4, err_msg=f"{samples} samples")
        np.testing.assert_allclose(got, np.asarray(layer(wave[None]))[0], atol=1e-4)
    batch = np.stack([np.zeros(4000, "float32"), np.ones(4000, "float32")])
    np.testing.assert_allclose(layer.numpy_call(batch)[1], layer.numpy_call(batch[1]), atol=1e-6)


@requires_tensorflow
def test_pipeline_features_equal_librosa_reference():
    librosa = pytest.importorskip("librosa", reason="librosa (dev extra) is the reference")
    paths = sorted(FSDD.glob("*_theo_2*.wav"))[:6]
    if not paths:
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    pipeline = audio_pipeline(
        paths, np.arange(6), training=False, duration=1.0, frontend=LogMelSpectrogram()
    )
    ((features, labels),) = list(pipeline.dataset)
    for x, i in zip(features.numpy(), labels.numpy()):
        y, _ = librosa.load(str(paths[i]), sr=16000)
        y = np.pad(y, (0, 16000 - len(y))) if len(y) < 16000 else y[(len(y) - 16000) // 2 :][:16000]
        power = librosa.feature.melspectrogram(
            y=y, sr=16000, n_fft=2048, hop_length=512, n_mels=128
        )
        expected = ((librosa.power_to_db(power, ref=np.max) + 40.0) / 40.0).T
        np.testing.assert_allclose(x, expected, atol=1e-4, err_msg=str(paths[i]))


def test_decoded_clips_do_not_share_the_reused_buffers(tmp_path):
    # decode_clip decodes into per-thread buffers; what it returns must survive the next file,
    # also when no resampling makes a fresh array (file already at the output rate).
    rng = np.random.default_rng(0)
    first, second = (rng.uniform(-0.5, 0.5, 16000).astype(np.float32) for _ in range(2))
    for name, wave in (("a.wav", first), ("b.wav", second)):
        soundfile.write(tmp_path / name, wave, 16000, subtype="PCM_16")
    a, status_a = decode.decode_clip(tmp_path / "a.wav", 16000, 16000)
    kept = a.copy()
    b, status_b = decode.decode_clip(tmp_path / "b.wav", 16000, 16000)
    assert status_a == status_b == decode.OK
    np.testing.assert_array_equal(a, kept)
    np.testing.assert_allclose(a, first, atol=1 / 32768)
    np.testing.assert_allclose(b, second, atol=1 / 32768)
    # A header that claims more frames than the file holds: the samples that are there, kept
    # (0.125 s, over the 0.1 s default `min_duration`) and reported as cut short.
    data = (tmp_path / "a.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(data[: 44 + 2 * 2000])
    cut, status = decode.decode_clip(tmp_path / "cut.wav", 16000, 16000)
    assert status == decode.CUT_SHORT
    np.testing.assert_allclose(cut[:2000], first[:2000], atol=1 / 32768)
    np.testing.assert_array_equal(cut[2000:], 0.0)


@requires_tensorflow
def test_resample_preserves_frequency_and_length():
    wave = tf.constant(tone(1.0, 8000, 1000.0))
    up = decode.resample(wave, 8000, 16000).numpy()
    assert len(up) == 16000
    t = np.arange(16000) / 16000
    np.testing.assert_allclose(up, 0.5 * np.sin(2 * np.pi * 1000.0 * t), atol=1e-3)
    down = decode.resample(tf.constant(tone(1.0, 44100, 440.0)), 44100, 16000).numpy()
    assert len(down) == 16000
    np.testing.assert_allclose(down, tone(1.0, 16000, 440.0), atol=1e-3)
    same = decode.resample(wave, 8000, 8000).numpy()
    np.testing.assert_array_equal(same, wave.numpy())


@requires_tensorflow
def test_fix_duration_crops_and_pads():
    wave = tf.range(10, dtype=tf.float32)
    np.testing.assert_array_equal(
        decode.fix_duration(wave, 4, random_offset=False).numpy(), [3, 4, 5, 6]
    )
    np.testing.assert_array_equal(
        decode.fix_duration(wave, 12, random_offset=False).numpy(), list(range(10)) + [0, 0]
    )
    offsets = {int(decode.fix_duration(wave, 4, random_offset=True).numpy()[0]) for _ in range(50)}
    assert offsets.issubset(set(range(7))) and len(offsets) > 3


@requires_tensorflow
def test_random_frame_crop_pads_short_inputs():
    crop = random_frame_crop(tf.zeros((3, 5)), 4).numpy()
    assert crop.shape == (4, 5)
    np.testing.assert_array_equal(crop[3], -1.0)


@requires_tensorflow
def test_pipeline_skips_and_counts_bad_files(fixture_dir):
    names = sorted(fixture_dir)
    pipeline = audio_pipeline(
        [fixture_dir[n] for n in names],
        np.arange(len(names)),
        training=False,
        duration=0.5,
        frontend=LogMelSpectrogram(),
        batch_size=4,
    )
    features, labels = [], []
    for x, y in pipeline.dataset:
        assert np.all(np.isfinite(x.numpy()))
        features.append(x.numpy())
        labels.extend(y.numpy().tolist())
    kept = {names[i] for i in labels}
    assert kept == {
        "tone16k.wav",
        "stereo44k.wav",
        "tone24bit.wav",
        "tone.flac",
        "tone.ogg",
        "tone.mp3",
    }  # short.wav (80 samples, 5 ms) is under the 0.1 s default `min_duration`
    assert np.concatenate(features).shape[1:] == (1 + 8000 // 512, 128)
    summary = pipeline.summary()
    assert "7 files kept" not in summary  # the header scan keeps silent.wav too
    assert "1 skipped (empty (no samples))" in summary and "1 skipped (unreadable)" in summary
    assert "1 skipped (unknown extension '.txt')" in summary
    assert "1 silent" in summary and "1 too short (under 0.1 s of audio: 0.005 s)" in summary
    assert pipeline.num_skipped == 5 and pipeline.num_cut_short == 0
    lines = []
    AudioPipelineReport({"eval": pipeline}, print_fn=lines.append).on_epoch_end(0)
    assert lines and lines[0].startswith("[eval]")


@requires_tensorflow
def test_strict_mode_raises_on_bad_files(fixture_dir):
    with pytest.raises(decode.AudioFileError, match="empty"):
        audio_pipeline([fixture_dir["empty.wav"]], [0], training=False, strict=True)
    pipeline = audio_pipeline(
        [fixture_dir["silent.wav"]], [0], training=False, duration=0.5, strict=True
    )
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="AudioFileError: .*silent.wav: silent"
    ):
        list(pipeline.dataset)


@requires_tensorflow
def test_training_pipeline_on_real_fsdd(tmp_path):
    paths = sorted(FSDD.glob("*_george_1*.wav"))[:24]
    if not paths:
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    labels = [int(p.name[0]) for p in paths]
    pipeline = audio_pipeline(
        paths,
        labels,
        training=True,
        duration=1.0,
        frontend=LogMelSpectrogram(),
        crop_frames=16,
        batch_size=8,
        seed=1,
        cache_dir=str(tmp_path / "cache"),
    )
    batches = list(pipeline.dataset)
    assert [tuple(b[0].shape) for b in batches] == [(8, 16, 128)] * 3
    assert sorted(np.concatenate([b[1].numpy() for b in batches]).tolist()) == sorted(labels)
    assert any(p.name.startswith("features") for p in (tmp_path / "cache").iterdir())
    again = list(pipeline.dataset)  # second epoch reads the cache
    assert len(again) == 3


@requires_tensorflow
def test_pipeline_bad_arguments():
    with pytest.raises(ValueError, match="labels"):
        audio_pipeline(["a.wav"], [0, 1], training=False)
    with pytest.raises(ValueError, match="No usable audio"):
        audio_pipeline(["a.txt"], [0], training=False)
    with pytest.raises(ValueError, match="crop_frames"):
        audio_pipeline(["a.wav"], [0], training=True, crop_frames=0)


def test_numpy_frontend_only_where_it_matches_call():
    from keras_aux.audio.pipeline import _numpy_frontend

    class Scaled(LogMelSpectrogram):
        def call(self, inputs):
            return 2.0 * super().call(inputs)

    assert _numpy_frontend(LogMelSpectrogram()) is not None
    assert _numpy_frontend(Scaled()) is None  # its own `call` runs, as TF ops
    assert _numpy_frontend(None) is None
