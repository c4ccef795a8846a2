"""`LogMelSpectrogram` against librosa (the reference's front end) on real audio."""

from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile
import tensorflow as tf

from keras_aux.layers import LogMelSpectrogram, slaney_mel_matrix
from keras_aux.testing import TestCase

librosa = pytest.importorskip("librosa", reason="librosa (dev extra) is the test reference")

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd" / "recordings"


def real_clip():
    """A real FSDD recording resampled to 16 kHz, or a synthetic chirp if FSDD is absent."""
    path = FSDD / "3_theo_7.wav"
    if path.exists():
        y, sr = soundfile.read(str(path), dtype="float32")
        return librosa.resample(y, orig_sr=sr, target_sr=16000)
    t = np.arange(16000) / 16000.0
    return (0.5 * np.sin(2 * np.pi * (200 + 1500 * t) * t)).astype("float32")


def librosa_log_mel(y, sr=16000):
    """The reference pipeline: melspectrogram → power_to_db(ref=max) → (dB + 40) / 40, time-major."""
    power = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    return ((librosa.power_to_db(power, ref=np.max) + 40.0) / 40.0).T


class LogMelSpectrogramTest(TestCase):
    def test_slaney_filter_bank_matches_librosa(self):
        ours = slaney_mel_matrix(16000, 2048, 128)
        ref = librosa.filters.mel(sr=16000, n_fft=2048, n_mels=128).T
        self.assertAllClose(ours, ref, atol=1e-7)

    def test_matches_librosa_reference_pipeline(self):
        # Tolerance: 1e-4 in normalised units (= 0.004 dB); measured ~1e-6.
        y = real_clip()
        expected = librosa_log_mel(y)
        got = np.asarray(LogMelSpectrogram()(y[None]))[0]
        self.assertEqual(got.shape, expected.shape)
        self.assertAllClose(got, expected, atol=1e-4)

    def test_htk_filter_bank_differs_from_reference(self):
        y = real_clip()
        got = np.asarray(LogMelSpectrogram(mel_scale="htk")(y[None]))[0]
        self.assertGreater(np.abs(got - librosa_log_mel(y)).max(), 0.25)  # > 10 dB

    def test_per_clip_normalisation_and_range(self):
        y = real_clip()
        batch = np.stack([y, 0.1 * y])  # the same clip, 20 dB quieter
        out = np.asarray(LogMelSpectrogram()(batch))
        self.assertAllClose(out[0], out[1], atol=1e-3)  # relative to each clip's max
        self.assertAlmostEqual(float(out.max()), 1.0, places=5)
        self.assertGreaterEqual(float(out.min()), -1.0)

    def test_silence_and_single_sample_are_finite(self):
        out = np.asarray(LogMelSpectrogram()(np.zeros((2, 3000), "float32")))
        self.assertTrue(np.all(np.isfinite(out)))
        out = np.asarray(LogMelSpectrogram()(np.ones((1, 1), "float32")))
        self.assertEqual(out.shape, (1, 1, 128))

    def test_unbatched_waveform_and_tf_data(self):
        y = real_clip()
        layer = LogMelSpectrogram()
        single = np.asarray(layer(y))
        self.assertAllClose(single, np.asarray(layer(y[None]))[0], atol=1e-6)
        ds = tf.data.Dataset.from_tensor_slices(np.stack([y, y])).map(layer)
        for features in ds:
            self.assertEqual(tuple(features.shape), single.shape)

    def test_output_shape_and_model_first_layer(self):
        layer = LogMelSpectrogram()
        self.assertEqual(layer.compute_output_shape((None, 16000)), (None, 32, 128))
        wave = keras.Input((None,))
        model = keras.Model(wave, keras.layers.GlobalAveragePooling1D()(layer(wave)))
        self.assertEqual(model.predict(real_clip()[None], verbose=0).shape, (1, 128))

    def test_serialization(self):
        self.run_serialization_test(LogMelSpectrogram(mel_scale="htk", top_db=60.0))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "mel_scale"):
            LogMelSpectrogram(mel_scale="mfcc")
        with self.assertRaisesRegex(ValueError, "positive"):
            LogMelSpectrogram(num_mel_bins=0)
        with self.assertRaisesRegex(ValueError, "max_freq"):
            LogMelSpectrogram(max_freq=9000)
