"""The genre LSTM: structure of docs/reconstruction.md#network, fit with λ, serialization, raw-waveform export."""

import os

import keras
import numpy as np
import tensorflow as tf

from keras_aux.architectures import compile_genre_lstm, genre_lstm, waveform_classifier
from keras_aux.layers import LogMelSpectrogram
from keras_aux.testing import TestCase


def small_data(n=16, frames=20, bins=16, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n).astype("int32")
    x = np.tanh(rng.normal(size=(n, frames, bins)) + y[:, None, None]).astype("float32")
    return x, y


class GenreLSTMTest(TestCase):
    def test_structure_matches_reference(self):
        model = genre_lstm(8)
        layers = {layer.name: layer for layer in model.layers}
        self.assertEqual(layers["input_dropout"].rate, 0.3)
        self.assertEqual(layers["bilstm_1"].forward_layer.units, 128)
        self.assertEqual(model.get_layer("bilstm_2").output.shape[-1], 256)
        self.assertEqual(layers["classifier_hidden"].units, 128)
        self.assertEqual(layers["classifier_hidden"].activation.__name__, "relu")
        self.assertEqual(model.outputs[0].shape[-1], 8)
        self.assertEqual(tuple(model.get_layer("reconstruction").output.shape), (None, None, 128))
        self.assertEqual(model.primary, "genre")
        self.assertEqual(model.input_targets, {"reconstruction": "mel"})

    def test_reconstruction_is_clipped_and_loss_is_mae_against_input(self):
        x, y = small_data()
        model = compile_genre_lstm(
            genre_lstm(3, num_mel_bins=16, lstm_units=8), reconstruction_weight=2.0
        )
        recon = model.predict(x, verbose=0)["reconstruction"]
        self.assertLessEqual(float(np.abs(recon).max()), 1.0)
        result = model.evaluate(x, y, return_dict=True, verbose=0)
        self.assertAllClose(result["reconstruction_loss"], np.mean(np.abs(recon - x)), atol=1e-5)
        self.assertAllClose(
            result["loss"], result["genre_loss"] + 2.0 * result["reconstruction_loss"], atol=1e-5
        )

    def test_fit_with_lambda_and_censoring_learns(self):
        x, y = small_data(64)
        model = compile_genre_lstm(
            genre_lstm(3, num_mel_bins=16, lstm_units=8, dropout=0.0),
            reconstruction_weight=1.0,
            learning_rate=1e-2,
            censoring="projection",
        )
        history = model.fit(x, y, batch_size=16, epochs=8, verbose=0).history
        self.assertLess(history["genre_loss"][-1], history["genre_loss"][0])
        self.assertLess(history["reconstruction_loss"][-1], history["reconstruction_loss"][0])
        self.assertGreater(history["genre_accuracy"][-1], 0.6)

    def test_serialization_and_saving(self):
        model = compile_genre_lstm(genre_lstm(3, num_mel_bins=16, lstm_units=8))
        self.run_serialization_test(model)
        self.run_model_saving_test(model, small_data()[0])

    def test_waveform_export_serves_raw_audio_of_any_length(self):
        model = genre_lstm(3, num_mel_bins=32, lstm_units=8)
        frontend = LogMelSpectrogram(num_mel_bins=32)
        serving = waveform_classifier(model, frontend)
        path = os.path.join(self.get_temp_dir(), "serving")
        serving.export(path, verbose=False)
        loaded = tf.saved_model.load(path)
        rng = np.random.default_rng(0)
        for samples in (4000, 23456):
            wave = (0.1 * rng.normal(size=(2, samples))).astype("float32")
            served = loaded.serve(tf.constant(wave)).numpy()
            features = np.asarray(frontend(wave))
            self.assertAllClose(served, model.predict(features, verbose=0)["genre"], atol=1e-5)
            self.assertAllClose(served.sum(axis=1), np.ones(2), atol=1e-5)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "num_classes"):
            genre_lstm(1)
        with self.assertRaisesRegex(ValueError, "dropout"):
            genre_lstm(3, dropout=1.0)
        self.assertIsInstance(genre_lstm(3), keras.Model)
