"""Tests of censored training beyond the functional `AuxiliaryModel`: a
subclassed model with `AuxiliaryTrainer`, clones, a user's own censoring
class, censor state across save / checkpoint / crash-and-resume, the cost of a
step, and the errors a user meets."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_aux import AuxiliaryModel, AuxiliaryTrainer, censoring
from keras_aux.models.auxiliary_test import build_model, compile_model, make_data, weights_of
from keras_aux.testing import TestCase
from keras_aux.testing.censoring_reference import np_combine

N_FEATURES = 6


@keras.saving.register_keras_serializable(package="keras_aux_test")
class TwoHeads(AuxiliaryTrainer, keras.Model):
    """A subclassed model: a trunk, a label head and a reconstruction head."""

    def __init__(self, units=8, **kwargs):
        super().__init__(primary="label", input_targets={"reconstruction": None}, **kwargs)
        self.units = units
        init = keras.initializers.GlorotUniform(seed=0)
        self.trunk = keras.layers.Dense(units, activation="tanh", kernel_initializer=init)
        self.label = keras.layers.Dense(3, activation="softmax", kernel_initializer=init)
        self.reconstruction = keras.layers.Dense(N_FEATURES, kernel_initializer=init)

    def build(self, input_shape):
        self.trunk.build(input_shape)
        self.label.build((None, self.units))
        self.reconstruction.build((None, self.units))

    def call(self, x, training=False):
        h = self.trunk(x)
        return {"label": self.label(h), "reconstruction": self.reconstruction(h)}

    def get_config(self):
        return {"units": self.units, "name": self.name}


@keras.saving.register_keras_serializable(package="keras_aux_test")
class ScaledAuxiliary(censoring.Censor):
    """A user's own method, with state: each auxiliary gradient scaled by
    ``factor``, and a step counter kept as state."""

    def __init__(self, factor=0.5):
        self.factor = factor

    def init(self, variables):
        return {"steps": keras.ops.zeros((), "int32")}

    def update(self, primary, auxiliary, weights, state, reference=None):
        out = list(primary)
        for task, lam in zip(auxiliary, weights):
            for i, a in enumerate(task):
                if a is not None:
                    c = lam * self.factor * a
                    out[i] = c if out[i] is None else out[i] + c
        return out, {"steps": state["steps"] + 1}

    def get_config(self):
        return {"factor": self.factor}


LOSSES = {"label": "sparse_categorical_crossentropy", "reconstruction": "mae"}


def predict_in_fresh_process(path, x):
    """Loads a `.keras` file in a new Python process, as a user would, and predicts."""
    directory = os.path.dirname(path)
    np.save(os.path.join(directory, "x.npy"), x)
    script = textwrap.dedent(
        f"""
        import json, numpy as np, keras
        import keras_aux  # registers every keras_aux class
        import keras_aux.models.auxiliary_trainer_test  # the test's own classes
        model = keras.saving.load_model({path!r})
        out = model.predict(np.load({os.path.join(directory, "x.npy")!r}), verbose=0)
        np.save({os.path.join(directory, "label.npy")!r}, out["label"])
        state = model.censor_state
        leaves = [] if state is None else [np.asarray(v).tolist() for v in keras.tree.flatten(state)]
        print(json.dumps({{"class": type(model).__name__,
                          "censor": repr(model._tasks.censor), "state": leaves}}))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads(result.stdout.strip().splitlines()[-1])
    return np.load(os.path.join(directory, "label.npy")), info


class SubclassedModelTest(TestCase):
    def test_one_step_matches_numpy(self):
        x, y = make_data(32)
        model = TwoHeads()
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=LOSSES,
            loss_weights={"reconstruction": 2.0},
            censoring="projection",
        )
        model(x[:1])
        variables = model.trainable_variables
        with tf.GradientTape(persistent=True) as tape:
            out = model(x, training=True)
            primary = keras.losses.SparseCategoricalCrossentropy()(y, out["label"])
            auxiliary = tf.reduce_mean(tf.abs(out["reconstruction"] - x))
        to_np = lambda gs: [None if g is None else g.numpy() for g in gs]  # noqa: E731
        update = np_combine(
            to_np(tape.gradient(primary, variables)),
            [to_np(tape.gradient(auxiliary, variables))],
            [2.0],
            "projection",
            "global",
        )
        expected = [v.numpy() - 0.1 * u for v, u in zip(variables, update)]
        model.train_on_batch(x, y)
        for got, want in zip(model.trainable_variables, expected):
            self.assertAllClose(got.numpy(), want, atol=1e-5)

    def test_fit_logs_save_in_fresh_process_and_export(self):
        x, y = make_data(64)
        model = TwoHeads()
        model.compile(
            optimizer="adam",
            loss=LOSSES,
            metrics={"label": ["accuracy"]},
            censoring="projection",
            ema_alpha=0.3,
        )
        history = model.fit(x, y, batch_size=16, epochs=2, verbose=0, validation_split=0.25)
        functional = compile_model(build_model(), "projection", ema_alpha=0.3)
        functional_history = functional.fit(
            x, y, batch_size=16, epochs=1, verbose=0, validation_split=0.25
        )
        self.assertEqual(sorted(history.history), sorted(functional_history.history))
        path = os.path.join(self.get_temp_dir(), "two_heads.keras")
        model.save(path)
        label, info = predict_in_fresh_process(path, x)
        self.assertEqual(info["class"], "TwoHeads")
        self.assertIn("MovingAverage", info["censor"])
        self.assertAllClose(label, model.predict(x, verbose=0)["label"], atol=1e-6)
        for got, want in zip(info["state"], keras.tree.flatten(model.censor_state)):
            np.testing.assert_array_equal(np.asarray(got, np.float32), np.asarray(want))
        export_path = os.path.join(self.get_temp_dir(), "served")
        model.export(export_path, verbose=False)
        loaded = tf.saved_model.load(export_path)  # keep a reference: it owns the variables
        served = loaded.serve(tf.constant(x))
        self.assertAllClose(served.numpy(), model.predict(x, verbose=0)["label"], atol=1e-5)

    def test_task_names_come_from_the_loss_dict_or_are_asked_for(self):
        model = TwoHeads()
        with self.assertRaisesRegex(ValueError, "does not know its output names"):
            model.compile("sgd", loss="mse")
        model = TwoHeads()
        model.compile("sgd", loss=LOSSES)
        self.assertEqual(model.task_names, ["label", "reconstruction"])


class CloneTest(TestCase):
    def test_clone_of_a_compiled_model_trains_like_the_original(self):
        x, y = make_data(64)
        model = compile_model(build_model(), "projection", ema_alpha=0.5)
        clone = keras.models.clone_model(model)
        self.assertIsInstance(clone, AuxiliaryModel)
        self.assertEqual(clone.primary, "label")
        self.assertEqual(clone.input_targets, {"reconstruction": "features"})
        clone.set_weights(model.get_weights())
        self.assertIsInstance(clone._tasks.censor, censoring.MovingAverage)
        h1 = model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
        h2 = clone.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
        self.assertEqual(sorted(h1), sorted(h2))
        for a, b in zip(weights_of(model), weights_of(clone)):
            self.assertAllClose(a, b, atol=1e-6)

    def test_clone_of_an_uncompiled_model_asks_for_its_primary(self):
        clone = keras.models.clone_model(build_model())
        with self.assertRaisesRegex(ValueError, "must name the primary output"):
            clone.compile("sgd", loss=LOSSES)
        clone.configure_tasks("label", {"reconstruction": "features"})
        compile_model(clone, "projection")
        x, y = make_data(32)
        clone.fit(x, y, verbose=0)


class CustomCensorTest(TestCase):
    def test_user_method_trains_saves_and_reloads(self):
        x, y = make_data(64)
        model = build_model()
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=LOSSES,
            loss_weights={"reconstruction": 2.0},
            censoring=ScaledAuxiliary(0.25),
        )
        # The step is the user's update: p + λ · 0.25 · a.
        before = [v.numpy() for v in model.trainable_variables]
        with tf.GradientTape(persistent=True) as tape:
            out = model(x, training=True)
            primary = keras.losses.SparseCategoricalCrossentropy()(y, out["label"])
            auxiliary = tf.reduce_mean(tf.abs(out["reconstruction"] - x))
        p = tape.gradient(primary, model.trainable_variables)
        a = tape.gradient(auxiliary, model.trainable_variables)
        model.train_on_batch(x, y)
        for v, w, gp, ga in zip(model.trainable_variables, before, p, a):
            update = (0 if gp is None else gp.numpy()) + (0 if ga is None else 0.5 * ga.numpy())
            self.assertAllClose(v.numpy(), w - 0.1 * update, atol=1e-5)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        self.assertEqual(int(model.censor_state["steps"]), 5)
        path = os.path.join(self.get_temp_dir(), "custom.keras")
        model.save(path)
        label, info = predict_in_fresh_process(path, x)
        self.assertEqual(info["censor"], "ScaledAuxiliary(factor=0.25)")
        self.assertEqual(info["state"], [5])
        self.assertAllClose(label, model.predict(x, verbose=0)["label"], atol=1e-6)


class _CrashAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, 0

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise RuntimeError("simulated crash")


class CensorStateTest(TestCase):
    def train(self, epochs, callbacks=(), model=None):
        x, y = make_data(64)
        if model is None:
            model = compile_model(build_model(seed=2), "projection", ema_alpha=0.1, lr=0.05)
        model.fit(
            x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, callbacks=list(callbacks)
        )
        return model

    def test_crash_and_resume_equals_uninterrupted_run_bit_for_bit(self):
        backup = os.path.join(self.get_temp_dir(), "backup")
        uninterrupted = weights_of(self.train(4))
        with self.assertRaisesRegex(RuntimeError, "simulated crash"):
            self.train(4, [keras.callbacks.BackupAndRestore(backup), _CrashAt(2, 1)])
        keras.backend.clear_session()
        resumed = self.train(4, [keras.callbacks.BackupAndRestore(backup)])
        resumed_weights = weights_of(resumed)
        self.assertEqual(len(resumed_weights), len(uninterrupted))
        for a, b in zip(resumed_weights, uninterrupted):
            np.testing.assert_array_equal(a, b)

    def test_model_checkpoint_carries_the_moving_average(self):
        path = os.path.join(self.get_temp_dir(), "ckpt.weights.h5")
        model = self.train(2, [keras.callbacks.ModelCheckpoint(path, save_weights_only=True)])
        fresh = compile_model(build_model(seed=9), "projection", ema_alpha=0.1, lr=0.05)
        fresh.load_weights(path)
        for a, b in zip(
            keras.tree.flatten(model.censor_state), keras.tree.flatten(fresh.censor_state)
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        self.assertEqual(int(fresh.censor_state["started"]), 1)

    def test_recompiling_replaces_the_state(self):
        model = compile_model(build_model(), "projection", ema_alpha=0.1)
        n = len(model.censor_state_holder.state_variables)
        self.assertEqual(n, len(model.trainable_variables) + 1)
        compile_model(model, "projection", ema_alpha=0.2)
        self.assertEqual(len(model.censor_state_holder.state_variables), n)
        compile_model(model, "projection")
        self.assertEqual(model.censor_state_holder.state_variables, [])
        self.assertEqual(model.censor_state, ())  # a stateless method


class StepCostTest(TestCase):
    def count_backward_passes(self, censoring_name, **kwargs):
        x, y = make_data(16)
        model = compile_model(build_model(), censoring_name, run_eagerly=True, **kwargs)
        calls = []
        original = tf.GradientTape.gradient

        def counting(tape, *args, **kw):
            calls.append(1)
            return original(tape, *args, **kw)

        tf.GradientTape.gradient = counting
        try:
            model.train_on_batch(x, y)
        finally:
            tf.GradientTape.gradient = original
        return len(calls)

    def test_single_task_takes_one_backward_pass(self):
        self.assertEqual(self.count_backward_passes("single_task"), 1)
        self.assertEqual(self.count_backward_passes("multitask", track_gradient_cosine=False), 1)
        self.assertEqual(self.count_backward_passes("projection"), 2)
        self.assertEqual(self.count_backward_passes("single_task", track_gradient_cosine=True), 2)


class ErrorsTest(TestCase):
    def test_class_weight_weights_the_primary_task_only(self):
        x, y = make_data(64)
        results = {}
        for weight in (1.0, 2.0):
            model = compile_model(build_model(), "multitask", lr=0.0)
            history = model.fit(
                x,
                y,
                batch_size=64,
                epochs=1,
                verbose=0,
                class_weight={0: weight, 1: weight, 2: weight},
            )
            results[weight] = history.history
        self.assertAllClose(
            results[2.0]["label_loss"][0], 2.0 * results[1.0]["label_loss"][0], rtol=1e-5
        )
        self.assertAllClose(
            results[2.0]["reconstruction_loss"][0], results[1.0]["reconstruction_loss"][0]
        )

    def test_class_weight_as_keras_has_it(self):
        # Keras weighs the classes a `class_weight` dict leaves out 1 (labels
        # here are 0..2); the primary loss must equal a plain Keras model's
        # on the same weights.
        x, y = make_data(64)
        self.assertEqual(sorted(set(y)), [0, 1, 2])
        for class_weight in ({0: 1.0, 1: 2.0}, {1: 2.0}, {2: 0.5, 7: 3.0}):
            model = compile_model(build_model(), "multitask", lr=0.0)
            plain = keras.Model(model.inputs, model.get_layer("label_head").output)
            plain.compile(keras.optimizers.SGD(0.0), "sparse_categorical_crossentropy")
            ours = model.fit(x, y, batch_size=64, verbose=0, class_weight=class_weight)
            theirs = plain.fit(x, y, batch_size=64, verbose=0, class_weight=class_weight)
            self.assertAllClose(ours.history["label_loss"][0], theirs.history["loss"][0], rtol=1e-5)
            # One-hot primary targets: the class is the arg-max, as in Keras.
            one_hot = keras.utils.to_categorical(y, 3)
            model.compile(
                keras.optimizers.SGD(0.0),
                loss={"label": "categorical_crossentropy", "reconstruction": "mae"},
            )
            ours = model.fit(x, one_hot, batch_size=64, verbose=0, class_weight=class_weight)
            self.assertAllClose(ours.history["label_loss"][0], theirs.history["loss"][0], rtol=1e-5)
        model = compile_model(build_model(), "multitask")
        for bad, message in (
            ({-1: 2.0}, "integers >= 0"),
            ({"a": 2.0}, "integers >= 0"),
            ({0: float("nan")}, "finite number"),
            ({0: -1.0}, "finite number"),
            ({}, "non-empty dict"),
        ):
            with self.assertRaisesRegex(ValueError, message):
                model.fit(x, y, verbose=0, class_weight=bad)

    def test_loss_list_and_metric_typos(self):
        x, y = make_data(32)
        model = build_model()
        model.compile("sgd", loss=["sparse_categorical_crossentropy", "mae"])
        model.fit(x, y, verbose=0)
        with self.assertRaisesRegex(ValueError, r"list of 1 losses but the model has outputs"):
            build_model().compile("sgd", loss=["mae"])
        with self.assertRaisesRegex(ValueError, r"`metrics` names unknown outputs \['lable'\]"):
            build_model().compile("sgd", loss=LOSSES, metrics={"lable": ["accuracy"]})
        with self.assertRaisesRegex(ValueError, "Unknown loss 'maee' for output 'reconstruction'"):
            build_model().compile("sgd", loss={"label": "mse", "reconstruction": "maee"})

    def test_auxiliary_output_sharing_nothing_with_the_primary_warns(self):
        x_in = keras.Input((N_FEATURES,), name="features")
        label = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(4)(x_in))
        lonely = keras.layers.Dense(N_FEATURES)(x_in)
        model = AuxiliaryModel(
            x_in,
            {"label": label, "lonely": lonely},
            primary="label",
            input_targets={"lonely": None},
        )
        model.compile("sgd", loss={"label": "sparse_categorical_crossentropy", "lonely": "mae"})
        x, y = make_data(16)
        with pytest.warns(UserWarning, match="'lonely' shares no trainable variable"):
            model.fit(x, y, verbose=0)

    def test_subclassing_the_functional_form_says_what_to_do(self):
        class Wrong(AuxiliaryModel):
            def __init__(self):
                super().__init__(primary="a")

        with self.assertRaisesRegex(TypeError, r"AuxiliaryTrainer, keras.Model"):
            Wrong()

    def test_an_unsupported_backend_is_named_at_construction(self):
        # Keras's numpy backend imports jax.
        pytest.importorskip("jax", reason="jax is not installed in this environment")
        script = textwrap.dedent(
            """
            import keras
            from keras_aux import AuxiliaryModel
            x = keras.Input((3,))
            try:
                AuxiliaryModel(x, {"a": keras.layers.Dense(1)(x), "b": keras.layers.Dense(1)(x)},
                               primary="a")
            except RuntimeError as error:
                print("ERROR:", error)
            """
        )
        env = dict(os.environ, KERAS_BACKEND="numpy", TF_CPP_MIN_LOG_LEVEL="3")
        result = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
        )
        self.assertIn(
            "trains on the TensorFlow and JAX backends", result.stdout, result.stderr[-2000:]
        )
        self.assertIn("'numpy'", result.stdout)


class OlderFilesTest(TestCase):
    def test_a_keras_aux_0_1_file_loads_and_trains(self):
        # Written by keras-aux 0.1.0 (censoring by name, ema_alpha=0.5, no saved average).
        testdata = os.path.join(os.path.dirname(__file__), "testdata")
        expected = np.load(os.path.join(testdata, "auxiliary_model_v0_1_ema.npz"))
        with pytest.warns(UserWarning, match="holds no censoring state"):
            model = keras.saving.load_model(
                os.path.join(testdata, "auxiliary_model_v0_1_ema.keras")
            )
        self.assertIsInstance(model._tasks.censor, censoring.MovingAverage)
        self.assertEqual(model._tasks.censor.alpha, 0.5)
        self.assertIsInstance(model._tasks.censor.censor, censoring.Projection)
        self.assertAllClose(
            model.predict(expected["x"], verbose=0)["label"], expected["label"], atol=1e-6
        )
        model.fit(expected["x"], np.zeros(len(expected["x"])), verbose=0)


def raw_units_regression(policy_dtype="float32", seed=0):
    """A primary regression head and an input reconstruction; the heads stay
    float32 under mixed precision, as Keras advises for outputs."""
    init = keras.initializers.GlorotUniform(seed=seed)
    x = keras.Input((8,), name="f")
    h = keras.layers.Dense(16, activation="relu", kernel_initializer=init)(x)
    outputs = {
        "p": keras.layers.Dense(1, dtype="float32", kernel_initializer=init, name="p")(h),
        "r": keras.layers.Dense(8, dtype="float32", kernel_initializer=init, name="r")(h),
    }
    return AuxiliaryModel(x, outputs, primary="p", input_targets={"r": "f"})


class MixedPrecisionTest(TestCase):
    def setUp(self):
        super().setUp()
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_float16")
        self.addCleanup(keras.mixed_precision.set_global_policy, previous)

    def fit(self, y, ema_alpha, epochs=1):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(384, 8)).astype("float32")
        model = raw_units_regression()
        model.compile(
            "adam", loss={"p": "mse", "r": "mse"}, censoring="projection", ema_alpha=ema_alpha
        )
        self.assertIsInstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        model.fit(x, y(x), batch_size=8, epochs=epochs, verbose=0)
        return model

    def test_an_overflow_does_not_stop_the_moving_average_for_good(self):
        # Targets in raw units: the first float16 gradients overflow, and
        # dynamic loss scaling skips those steps until the scale fits.
        direction = np.random.default_rng(1).normal(size=(8,)).astype("float32")
        raw = lambda x: (x @ direction * 1e5).astype("float32")  # noqa: E731
        plain = self.fit(raw, ema_alpha=1.0)
        averaged = self.fit(raw, ema_alpha=0.01)
        applied = int(plain.optimizer.iterations.numpy())
        self.assertGreater(applied, 0)
        self.assertLess(applied, 48)  # some steps were skipped: the overflow happened
        self.assertEqual(int(averaged.optimizer.iterations.numpy()), applied)
        for leaf in keras.tree.flatten(averaged.censor_state):
            self.assertTrue(np.all(np.isfinite(np.asarray(leaf))))
        self.assertEqual(int(averaged.censor_state["started"]), 1)

    def test_a_skipped_step_leaves_the_state_as_it_was_and_it_holds_true_gradients(self):
        x = np.random.default_rng(0).normal(size=(8, 8)).astype("float32")
        model = raw_units_regression()
        model.compile("sgd", loss={"p": "mse", "r": "mse"}, censoring="projection", ema_alpha=0.5)
        model.train_on_batch(x, np.full((8, 1), 1e9, "float32"))  # overflows: skipped
        self.assertEqual(int(model.optimizer.iterations.numpy()), 0)
        self.assertEqual(int(model.censor_state["started"]), 0)
        for average in model.censor_state["average"]:
            np.testing.assert_array_equal(np.asarray(average), 0.0)
        y = np.ones((8, 1), "float32")
        with tf.GradientTape() as tape:
            loss = keras.losses.MeanSquaredError()(y, model(x)["p"])
        expected = tape.gradient(loss, model.trainable_variables)
        model.train_on_batch(x, y)
        self.assertEqual(int(model.optimizer.iterations.numpy()), 1)
        # The first average is the primary gradient itself, unscaled (the loss
        # scale is 2^15 here): float16 arithmetic, so to 1 %.
        for got, want in zip(model.censor_state["average"], expected):
            if want is not None:
                self.assertAllClose(got, want, atol=1e-3, rtol=1e-2)


class TrainingStateTest(TestCase):
    """The censoring state is training state: saved and restored with the
    model, never counted among its weights nor exported."""

    def test_the_moving_average_is_not_a_model_weight(self):
        x, y = make_data(32)
        plain = build_model(seed=3)
        model = compile_model(build_model(seed=3), "projection", ema_alpha=0.1)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        self.assertEqual(model.count_params(), plain.count_params())
        self.assertEqual(len(model.weights), len(plain.weights))
        self.assertEqual(len(model.non_trainable_weights), 0)
        lines = []
        model.summary(print_fn=lambda line, **_: lines.append(line))
        summary = "\n".join(lines)
        self.assertIn(f"Trainable params: {plain.count_params()} ", summary.replace(",", ""))
        self.assertIn("Non-trainable params: 0 ", summary)
        self.assertNotIn("censor_state", summary)
        # `export` serves without it.
        path = os.path.join(self.get_temp_dir(), "exported")
        model.export(path, verbose=False)
        loaded = tf.saved_model.load(path)
        self.assertEqual(len(loaded.variables), len(plain.weights))
        # `.keras` files keep it.
        keras_path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(keras_path)
        restored = keras.saving.load_model(keras_path)
        self.assertEqual(int(restored.censor_state["started"]), 1)
        for a, b in zip(
            keras.tree.flatten(model.censor_state), keras.tree.flatten(restored.censor_state)
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


class RefusalsTest(TestCase):
    def test_a_moving_average_that_changes_nothing_is_refused(self):
        for name in ("multitask", "single_task"):
            with self.assertRaisesRegex(ValueError, "changes nothing"):
                compile_model(build_model(), name, ema_alpha=0.5)
        with self.assertRaisesRegex(ValueError, "changes nothing"):
            censoring.MovingAverage(censoring.PCGrad(), 0.5)
        # A method that reads the reference still takes it.
        censoring.MovingAverage(censoring.PCGrad(censoring.Projection()), 0.5)
        compile_model(build_model(), "multitask", ema_alpha=1.0)

    def test_an_infinite_weight_is_refused(self):
        for weights in ({"reconstruction": float("inf")}, {"label": float("inf")}):
            with self.assertRaisesRegex(ValueError, "finite"):
                build_model().compile(
                    "sgd",
                    loss={"label": "sparse_categorical_crossentropy", "reconstruction": "mae"},
                    loss_weights=weights,
                )
