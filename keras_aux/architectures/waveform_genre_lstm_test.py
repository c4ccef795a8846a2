"""The genre LSTM on waveforms (`waveform_genre_lstm`): the same losses as the NumPy log-mel path
for the same weights and clips, the same training steps, its reconstruction target held fixed,
a real `fit` on each backend, `.keras` round trip, and serving
(docs/reconstruction.md#training-on-waveforms-log-mel-on-the-accelerator)."""

import os
from pathlib import Path

import keras
import numpy as np
import pytest

from keras_aux.architectures import compile_genre_lstm, genre_lstm, waveform_classifier
from keras_aux.architectures.genre_lstm import export_waveform_classifier, waveform_genre_lstm
from keras_aux.layers import LogMelSpectrogram
from keras_aux.testing import TestCase, requires_tensorflow, requires_tensorflow_backend

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd" / "recordings"
SMALL = dict(lstm_units=4, dense_units=8)  # a small network: seconds per test
RATE = 16000
BINS = 128  # the front end's default, as the tf.data path computes it


def synthetic_clips(n=12, samples=4000, classes=3, seed=0):
    """Clips whose class sets the pitch of a tone under noise (0.25 s at 16 kHz: 8 frames)."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % classes).astype("int32")
    t = np.arange(samples) / RATE
    waves = [
        0.3 * np.sin(2 * np.pi * (300.0 * 2.0**label) * t + rng.uniform(0, 6))
        + 0.05 * rng.normal(size=samples)
        for label in y
    ]
    return np.stack(waves).astype("float32"), y


def fsdd_clips(count=8, samples=8000):
    """Real spoken digits (FSDD, 8 kHz), the first ``samples`` of each, zero-padded."""
    soundfile = pytest.importorskip("soundfile")
    paths = sorted(FSDD.glob("*_jackson_3*.wav"))[:count]
    if not paths:
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    waves = []
    for path in paths:
        wave, _ = soundfile.read(path, dtype="float32")
        waves.append(np.pad(wave[:samples], (0, max(0, samples - len(wave)))))
    labels = np.array([int(p.name[0]) for p in paths], "int32")
    return np.stack(waves), labels


def twin_models(num_classes=3, frontend=None, dropout=0.3):
    """A waveform model and a features model holding the same weights."""
    keras.utils.set_random_seed(0)
    waveform_model = waveform_genre_lstm(num_classes, frontend, dropout=dropout, **SMALL)
    features_model = genre_lstm(num_classes, num_mel_bins=BINS, dropout=dropout, **SMALL)
    features_model.set_weights(waveform_model.get_weights())
    return waveform_model, features_model


class WaveformGenreLSTMTest(TestCase):
    def test_structure(self):
        model, features_model = twin_models()
        frontend = model.layers[1]
        self.assertIsInstance(frontend, LogMelSpectrogram)
        self.assertEqual(frontend.name, "log_mel")
        self.assertEqual(
            (frontend.sampling_rate, frontend.fft_length, frontend.sequence_stride),
            (16000, 2048, 512),
        )
        self.assertEqual(frontend.num_mel_bins, BINS)
        self.assertEqual(model.input_targets, {"reconstruction": "log_mel"})
        self.assertEqual(tuple(model.inputs[0].shape), (None, None))
        # The same network behind the front end, layer for layer.
        self.assertEqual(
            [(layer.name, [w.shape for w in layer.weights]) for layer in model.layers[2:]],
            [(layer.name, [w.shape for w in layer.weights]) for layer in features_model.layers[1:]],
        )

    def check_same_losses(self, waves, labels, num_classes, frontend=None):
        model, features_model = twin_models(num_classes, frontend)
        frontend = model.get_layer("log_mel")
        for m in (model, features_model):
            compile_genre_lstm(m, reconstruction_weight=2.0)
        # The features of the tf.data path: the NumPy twin of the layer the pipeline calls.
        features = frontend.numpy_call(waves)
        on_waves = model.evaluate(waves, labels, batch_size=4, return_dict=True, verbose=0)
        on_features = features_model.evaluate(
            features, labels, batch_size=4, return_dict=True, verbose=0
        )
        for key in ("loss", "genre_loss", "reconstruction_loss", "genre_accuracy"):
            self.assertAllClose(on_waves[key], on_features[key], atol=1e-4, msg=key)
        # The reconstruction target is the log-mel (computed here in NumPy), not the waveform.
        reconstruction = model.predict(waves, verbose=0)["reconstruction"]
        self.assertAllClose(
            on_waves["reconstruction_loss"], np.mean(np.abs(reconstruction - features)), atol=1e-4
        )

    def test_same_losses_as_the_numpy_features_path_on_synthetic_clips(self):
        self.check_same_losses(*synthetic_clips(), num_classes=3)

    def test_same_losses_as_the_numpy_features_path_on_fsdd(self):
        waves, labels = fsdd_clips()
        frontend = LogMelSpectrogram(sampling_rate=8000, name="log_mel")
        self.check_same_losses(waves, labels, num_classes=10, frontend=frontend)

    def test_training_steps_equal_those_on_numpy_features(self):
        # Without dropout both models see the same batches: the same updates, so the
        # reconstruction target of the waveform model is the log-mel, held fixed.
        waves, labels = synthetic_clips(8)
        model, features_model = twin_models(dropout=0.0)
        features = model.get_layer("log_mel").numpy_call(waves)
        for m in (model, features_model):
            # No cosine metric: one backward pass per step instead of one per task.
            compile_genre_lstm(
                m, reconstruction_weight=2.0, learning_rate=1e-2, track_gradient_cosine=False
            )
        fit = dict(batch_size=4, epochs=1, shuffle=False, verbose=0)
        mine = model.fit(waves, labels, **fit).history
        theirs = features_model.fit(features, labels, **fit).history
        self.assertAllClose(mine["loss"], theirs["loss"], atol=1e-4)
        for a, b in zip(model.get_weights(), features_model.get_weights()):
            self.assertAllClose(a, b, atol=1e-4)

    def test_fit_learns(self):
        waves, labels = synthetic_clips(24)
        model = compile_genre_lstm(
            waveform_genre_lstm(3, dropout=0.0, **SMALL),
            reconstruction_weight=1.0,
            learning_rate=2e-2,
        )
        before = model.evaluate(waves, labels, return_dict=True, verbose=0)
        history = model.fit(waves, labels, batch_size=8, epochs=6, verbose=0).history
        after = model.evaluate(waves, labels, return_dict=True, verbose=0)
        self.assertTrue(np.all(np.isfinite(history["loss"])))
        self.assertLess(after["genre_loss"], before["genre_loss"])
        self.assertLess(after["reconstruction_loss"], before["reconstruction_loss"])

    def test_no_gradient_flows_into_the_front_end(self):
        # The target's gradient with respect to the waveform is zero: held fixed.
        waves, _ = synthetic_clips(2)
        model = waveform_genre_lstm(3, **SMALL)

        def target_sum(x):
            target = model._targets_by_task(x, None, ["reconstruction"])["reconstruction"]
            return keras.ops.sum(target), target

        if keras.backend.backend() == "jax":
            import jax

            gradient, target = jax.grad(target_sum, has_aux=True)(jax.numpy.asarray(waves))
        else:
            import tensorflow as tf

            x = tf.constant(waves)
            with tf.GradientTape() as tape:
                tape.watch(x)
                total, target = target_sum(x)
            gradient = tape.gradient(total, x)
            gradient = np.zeros_like(waves) if gradient is None else gradient
        self.assertAllClose(target, model.get_layer("log_mel").numpy_call(waves), atol=1e-4)
        self.assertAllClose(gradient, np.zeros_like(waves), atol=0.0)

    def test_saves_loads_and_predicts_the_same(self):
        waves, labels = synthetic_clips(8)
        model = compile_genre_lstm(waveform_genre_lstm(3, **SMALL), reconstruction_weight=2.0)
        model.fit(waves, labels, batch_size=8, epochs=1, verbose=0)  # saved with optimizer state
        self.run_serialization_test(model)
        restored = self.run_model_saving_test(model, waves)
        self.assertEqual(restored.input_targets, {"reconstruction": "log_mel"})
        self.assertIsInstance(restored.get_layer("log_mel"), LogMelSpectrogram)
        self.assertAllClose(
            restored.evaluate(waves, labels, return_dict=True, verbose=0)["loss"],
            model.evaluate(waves, labels, return_dict=True, verbose=0)["loss"],
            atol=1e-5,
        )

    def test_waveform_classifier_takes_the_model_alone(self):
        waves, _ = synthetic_clips(4)
        model, features_model = twin_models()
        classifier = waveform_classifier(model)
        expected = features_model.predict(model.get_layer("log_mel").numpy_call(waves), verbose=0)
        self.assertAllClose(classifier.predict(waves, verbose=0), expected["genre"], atol=1e-4)
        with self.assertRaisesRegex(ValueError, "takes waveforms .* pass `frontend=None`"):
            waveform_classifier(model, LogMelSpectrogram())
        with self.assertRaisesRegex(ValueError, "takes features .* pass the front end"):
            waveform_classifier(features_model)

    @requires_tensorflow
    @requires_tensorflow_backend
    def test_export_serves_at_another_rate(self):
        import tensorflow as tf

        model = waveform_genre_lstm(3, **SMALL)
        path = os.path.join(self.get_temp_dir(), "serving")
        serving = export_waveform_classifier(model, None, path)
        loaded = tf.saved_model.load(path)
        waves, _ = synthetic_clips(2)
        served = loaded.serve(tf.constant(waves), tf.constant(RATE)).numpy()
        self.assertAllClose(served, serving.predict(waves, verbose=0), atol=1e-5)
        half = loaded.serve(tf.constant(waves[:, ::2]), tf.constant(RATE // 2)).numpy()
        self.assertEqual(half.shape, (2, 3))

    def test_bad_front_end(self):
        with self.assertRaisesRegex(ValueError, "must map waveforms"):
            waveform_genre_lstm(3, keras.layers.Identity(name="log_mel"))
        with self.assertRaisesRegex(ValueError, "num_classes"):
            waveform_genre_lstm(1)
