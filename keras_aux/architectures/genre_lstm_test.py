"""The genre LSTM: structure of docs/reconstruction.md#network, fit with λ, serialization,
raw-waveform export and its serving signature (docs/reconstruction.md#serving)."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

from keras_aux.architectures import (
    compile_genre_lstm,
    export_waveform_classifier,
    genre_lstm,
    waveform_classifier,
)
from keras_aux.layers import LogMelSpectrogram
from keras_aux.testing import TestCase, requires_tensorflow, requires_tensorflow_backend

# Loads an exported classifier as a user would (a fresh process, TensorFlow only) and reports
# its signature and its answers to the same audio at 16 kHz and 8 kHz, and to bad inputs.
SERVE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf

    path, clip16, clip8 = sys.argv[1:]
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    inputs = signature.structured_input_signature[1]
    out = {
        "inputs": {k: [v.dtype.name, v.shape.as_list()] for k, v in inputs.items()},
        "outputs": {
            k: [v.dtype.name, v.shape.as_list()] for k, v in signature.structured_outputs.items()
        },
    }
    wave16, wave8 = np.load(clip16), np.load(clip8)
    out["p16"] = loaded.serve(tf.constant(wave16), tf.constant(16000)).numpy().tolist()
    out["p8"] = loaded.serve(tf.constant(wave8), tf.constant(8000)).numpy().tolist()
    out["p8_said_16k"] = loaded.serve(tf.constant(wave8), tf.constant(16000)).numpy().tolist()
    out["p16_signature"] = signature(
        waveform=tf.constant(wave16), sample_rate=tf.constant(16000)
    )["output_0"].numpy().tolist()
    out["no_clips"] = list(loaded.serve(tf.zeros([0, 100]), tf.constant(8000)).shape)
    for name, wave, rate in [("empty", np.zeros((1, 0), "float32"), 16000),
                             ("zero_rate", wave16, 0)]:
        try:
            loaded.serve(tf.constant(wave), tf.constant(rate))
            out[name] = None
        except tf.errors.InvalidArgumentError as error:
            out[name] = error.message
    print("RESULT " + json.dumps(out))
    """
)


def band_limited_clip(rate, seconds=1.3):
    """The same audio sampled at ``rate``: chirping tones below 3 kHz under an envelope."""
    t = np.arange(int(round(rate * seconds))) / rate
    wave = sum(
        a * np.sin(2 * np.pi * (f * t + 40 * t**2) + phase)
        for a, f, phase in [(0.2, 123.4, 0.3), (0.1, 456.7, 1.1), (0.08, 1234.5, 2.0)]
    )
    return (wave * (0.6 + 0.4 * np.sin(2 * np.pi * 2.3 * t))).astype("float32")[None]


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

    @requires_tensorflow
    def test_waveform_export_serves_raw_audio_of_any_length(self):
        import tensorflow as tf

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

    @requires_tensorflow_backend
    def test_exported_signature_takes_the_sample_rate_in_a_fresh_process(self):
        keras.utils.set_random_seed(0)
        model = genre_lstm(3, num_mel_bins=32, lstm_units=4, dense_units=8)
        # Spread the logits so that a change of the features shows in the probabilities.
        head = model.get_layer("genre")
        head.kernel.assign(head.kernel * 3.0)
        frontend = LogMelSpectrogram(num_mel_bins=32)
        path = os.path.join(self.get_temp_dir(), "serving")
        serving = export_waveform_classifier(model, frontend, path)
        clip16, clip8 = (os.path.join(self.get_temp_dir(), f"clip{k}.npy") for k in (16, 8))
        np.save(clip16, band_limited_clip(16000))
        np.save(clip8, band_limited_clip(8000))
        done = subprocess.run(
            [sys.executable, "-c", SERVE_SCRIPT, path, clip16, clip8],
            capture_output=True,
            text=True,
            timeout=300,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
        out = json.loads(line[len("RESULT ") :])

        # The documented signature: serve(waveform, sample_rate) → probabilities.
        self.assertEqual(
            out["inputs"], {"waveform": ["float32", [None, None]], "sample_rate": ["int32", []]}
        )
        self.assertEqual(out["outputs"], {"output_0": ["float32", [None, 3]]})
        # 16 kHz: what the in-process model gives, by either endpoint.
        p16 = np.array(out["p16"])
        self.assertAllClose(p16, serving.predict_on_batch(band_limited_clip(16000)), atol=1e-5)
        self.assertAllClose(out["p16_signature"], p16, atol=1e-6)
        # 8 kHz: resampled in the graph, ≈ the prediction of the same audio at 16 kHz; read as
        # if it were 16 kHz (the old behaviour), it would be far off.
        p8, p8_wrong = np.array(out["p8"]), np.array(out["p8_said_16k"])
        self.assertLess(np.abs(p8 - p16).max(), 0.02)
        self.assertGreater(np.abs(p8_wrong - p16).max(), 0.1)
        self.assertEqual(out["no_clips"], [0, 3])
        # Bad inputs: clear errors, not a classification.
        self.assertIn("the waveform is empty (0 samples)", out["empty"])
        self.assertIn("sample_rate must be a positive", out["zero_rate"])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "num_classes"):
            genre_lstm(1)
        with self.assertRaisesRegex(ValueError, "dropout"):
            genre_lstm(3, dropout=1.0)
        self.assertIsInstance(genre_lstm(3), keras.Model)
