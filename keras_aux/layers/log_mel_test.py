"""`LogMelSpectrogram` against librosa (the reference's front end) on real audio."""

import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import keras
import numpy as np
import pytest
import soundfile

from keras_aux.layers import LogMelSpectrogram, log_mel, slaney_mel_matrix
from keras_aux.layers.log_mel import htk_mel_matrix
from keras_aux.testing import TestCase, requires_tensorflow_backend

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

    def test_unbatched_waveform(self):
        y = real_clip()
        layer = LogMelSpectrogram()
        single = np.asarray(layer(y))
        self.assertAllClose(single, np.asarray(layer(y[None]))[0], atol=1e-6)

    @requires_tensorflow_backend
    def test_in_a_tf_data_map(self):
        import tensorflow as tf

        y = real_clip()
        layer = LogMelSpectrogram()
        single = np.asarray(layer(y))
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

    # Added with the rewrite on public Keras API only (issue 10 §2).

    def test_uses_public_keras_api_only(self):
        # A plain Layer on keras.ops: no private Keras module or base class to break.
        self.assertEqual(LogMelSpectrogram.__bases__, (keras.layers.Layer,))
        self.assertNotIn("keras.src", inspect.getsource(log_mel))

    def test_matches_librosa_on_any_number_of_samples(self):
        rng = np.random.default_rng(1)
        layer = LogMelSpectrogram()
        for samples in (1, 2, 511, 512, 2047, 2049, 5000):
            y = (0.1 * rng.normal(size=samples)).astype("float32")
            with warnings.catch_warnings():  # librosa warns when n_fft > samples
                warnings.simplefilter("ignore")
                expected = librosa_log_mel(y)
            got = np.asarray(layer(y[None]))[0]
            self.assertEqual(got.shape, expected.shape, msg=f"{samples} samples")
            self.assertEqual(got.shape, layer.compute_output_shape((1, samples))[1:])
            self.assertAllClose(got, expected, atol=1e-4, msg=f"{samples} samples")

    def test_htk_filter_bank_matches_keras(self):
        # mel_scale="htk" keeps the bank it had as a keras.layers.MelSpectrogram subclass
        # (Keras builds it in float32; ours is float64 rounded to float32).
        ref = keras.layers.MelSpectrogram().linear_to_mel_weight_matrix(
            num_mel_bins=64,
            num_spectrogram_bins=1025,
            sampling_rate=16000,
            lower_edge_hertz=30.0,
            upper_edge_hertz=7000.0,
        )
        ours = htk_mel_matrix(16000, 2048, 64, min_freq=30.0, max_freq=7000.0)
        self.assertAllClose(ours, ref, atol=1e-4)

    @requires_tensorflow_backend
    def test_xla_and_exported_savedmodel(self):
        import tensorflow as tf

        wave = keras.Input((None,))
        model = keras.Model(wave, LogMelSpectrogram(num_mel_bins=32)(wave))
        model.compile(jit_compile=True)
        rng = np.random.default_rng(2)
        clips = {n: (0.1 * rng.normal(size=(2, n))).astype("float32") for n in (1, 3000)}
        with self.assertXlaRan(model):
            for clip in clips.values():
                self.assertAllClose(
                    model.predict(clip, verbose=0), model.layers[-1](clip), atol=1e-5
                )
        path = os.path.join(self.get_temp_dir(), "log_mel")
        model.export(path, verbose=False)
        loaded = tf.saved_model.load(path)
        for clip in clips.values():
            served = loaded.serve(tf.constant(clip)).numpy()
            self.assertAllClose(served, model.layers[-1](clip), atol=1e-5)

    def test_numpy_backend_in_subprocess(self):
        if importlib.util.find_spec("jax") is None:
            # Keras's numpy backend imports jax for some of its math.
            self.skipTest(f"jax is not installed in this environment ({sys.executable})")
        self.check_backend_in_subprocess("numpy")

    def test_jax_backend_in_subprocess(self):
        if keras.backend.backend() == "jax":
            self.skipTest("the JAX backend is this process's: the other tests run the layer on it")
        if importlib.util.find_spec("jax") is None:
            self.skipTest(
                f"jax is not installed in this environment ({sys.executable}); "
                "the layer's JAX path is checked where it is"
            )
        self.check_backend_in_subprocess("jax")

    def check_backend_in_subprocess(self, backend):
        """Runs the layer (eagerly and as a model's first layer) under ``KERAS_BACKEND=backend``
        in a fresh interpreter, and compares it with librosa."""
        y = real_clip()
        tmp = self.get_temp_dir()
        np.save(os.path.join(tmp, "wave.npy"), np.stack([y, 0.5 * y]))
        # Loads the module file alone: the rest of keras_aux is TensorFlow-specific.
        script = textwrap.dedent(
            f"""
            import importlib.util, os
            import keras, numpy as np
            assert keras.backend.backend() == {backend!r}, keras.backend.backend()
            spec = importlib.util.spec_from_file_location("log_mel", {log_mel.__file__!r})
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            waves = np.load(os.path.join({tmp!r}, "wave.npy"))
            layer = module.LogMelSpectrogram()
            wave = keras.Input((None,))
            model = keras.Model(wave, module.LogMelSpectrogram()(wave))
            np.save(os.path.join({tmp!r}, "eager.npy"), keras.ops.convert_to_numpy(layer(waves)))
            np.save(os.path.join({tmp!r}, "model.npy"), model.predict(waves, verbose=0))
            """
        )
        env = dict(os.environ, KERAS_BACKEND=backend, JAX_PLATFORMS="cpu")
        result = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600
        )
        self.assertEqual(result.returncode, 0, msg=result.stderr[-3000:])
        expected = np.stack([librosa_log_mel(y), librosa_log_mel(0.5 * y)])
        for name in ("eager", "model"):
            got = np.load(os.path.join(tmp, f"{name}.npy"))
            self.assertEqual(got.shape, expected.shape)
            self.assertAllClose(got, expected, atol=1e-4, msg=f"{backend}, {name}")
