"""The tf.data pipeline yielding raw waveforms for a model whose first layer is the front end
(`keras_aux.architectures.genre_lstm.waveform_genre_lstm`): training crops of ``crop_samples``
samples taken from the decoded clips, whole clips otherwise, and the clips the log-mel path
computes its features from."""

from pathlib import Path

import numpy as np
import pytest
import soundfile

from keras_aux.audio.pipeline import audio_pipeline, crop_samples_for
from keras_aux.layers import LogMelSpectrogram
from keras_aux.testing import requires_tensorflow

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd" / "recordings"
RATE = 16000


def ramp_files(directory, count=4, seconds=1.0):
    """Float WAV files whose sample ``i`` is ``a + b·i``: a crop tells its offset. Clip ``k``
    starts at ``k / 10`` so that clips differ."""
    paths = []
    n = int(seconds * RATE)
    for k in range(count):
        wave = (0.1 * k - 0.45 + 0.5 * np.arange(n) / n).astype("float32")
        path = directory / f"ramp{k}.wav"
        soundfile.write(path, wave, RATE, subtype="FLOAT")
        paths.append(path)
    return paths


def test_crop_samples_for_gives_crop_frames():
    frontend = LogMelSpectrogram()
    noise = np.random.default_rng(0).normal(size=300000).astype("float32")
    for frames in (1, 2, 16, 512):
        samples = crop_samples_for(frontend, frames)
        assert frontend.numpy_call(noise[:samples]).shape == (frames, 128), frames
    assert crop_samples_for(frontend, None) is None


@requires_tensorflow
def test_training_crops_are_windows_of_the_clips(tmp_path):
    paths = ramp_files(tmp_path)
    crop = crop_samples_for(LogMelSpectrogram(), 8)  # 3584 samples
    pipeline = audio_pipeline(
        paths,
        np.arange(len(paths)),
        training=True,
        duration=1.0,
        crop_samples=crop,
        batch_size=2,
        seed=3,
    )
    offsets = []
    for _ in range(2):  # two epochs: fresh crops
        for waves, labels in pipeline.dataset:
            assert waves.shape == (2, crop)
            for wave, k in zip(waves.numpy(), labels.numpy()):
                clip = 0.1 * k - 0.45 + 0.5 * np.arange(RATE) / RATE
                offset = int(round((wave[0] - clip[0]) / 0.5 * RATE))
                np.testing.assert_allclose(wave, clip[offset : offset + crop], atol=1e-6)
                offsets.append(offset)
    assert len(offsets) == 8 and len(set(offsets)) > 1
    assert 0 <= min(offsets) and max(offsets) <= RATE - crop


@requires_tensorflow
def test_short_clips_are_padded_with_silence_and_evaluation_keeps_whole_clips(tmp_path):
    paths = ramp_files(tmp_path, count=2, seconds=0.2)
    train = audio_pipeline(
        paths, [0, 1], training=True, duration=0.2, crop_samples=4000, batch_size=2, seed=0
    )
    (waves, _) = next(iter(train.dataset))
    assert waves.shape == (2, 4000)
    np.testing.assert_array_equal(waves.numpy()[:, 3200:], 0.0)
    evaluation = audio_pipeline(paths, [0, 1], training=False, duration=0.2, crop_samples=4000)
    (waves, _) = next(iter(evaluation.dataset))
    assert waves.shape == (2, 3200)


@requires_tensorflow
def test_waveforms_give_the_log_mel_features_of_the_features_path():
    paths = sorted(FSDD.glob("*_nicolas_4*.wav"))[:6]
    if not paths:
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    frontend = LogMelSpectrogram()
    common = dict(training=False, duration=1.0, batch_size=6)
    ((waves, labels),) = list(audio_pipeline(paths, np.arange(6), **common).dataset)
    ((features, same_labels),) = list(
        audio_pipeline(paths, np.arange(6), frontend=frontend, **common).dataset
    )
    np.testing.assert_array_equal(labels.numpy(), same_labels.numpy())
    assert waves.shape == (6, RATE)
    np.testing.assert_allclose(frontend.numpy_call(waves.numpy()), features.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(frontend(waves)), features.numpy(), atol=1e-4)


@requires_tensorflow
def test_crop_samples_bad_arguments(tmp_path):
    paths = ramp_files(tmp_path, count=1)
    with pytest.raises(ValueError, match="`crop_samples` crops the raw waveforms"):
        audio_pipeline(paths, [0], training=True, frontend=LogMelSpectrogram(), crop_samples=100)
    with pytest.raises(ValueError, match="crop_samples=0"):
        audio_pipeline(paths, [0], training=True, crop_samples=0)
