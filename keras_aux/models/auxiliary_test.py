"""Tests of `AuxiliaryModel`: the step against numpy, fit / evaluate / save /
export, XLA, MirroredStrategy against one device, seeding, bad inputs."""

import os
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_aux import censoring
from keras_aux.models import AuxiliaryModel
from keras_aux.models.task_data import zip_tasks
from keras_aux.testing import TestCase, mirrored_strategy
from keras_aux.testing.censoring_reference import np_combine

N_FEATURES = 6
N_CLASSES = 3


def build_graph(seed=0, regularize=False):
    """Shared trunk → softmax label head + linear reconstruction of the input."""
    reg = keras.regularizers.L2(0.01) if regularize else None
    init = keras.initializers.GlorotUniform(seed=seed)
    x = keras.Input((N_FEATURES,), name="features")
    h = keras.layers.Dense(
        8, activation="tanh", kernel_initializer=init, kernel_regularizer=reg, name="trunk"
    )(x)
    label = keras.layers.Dense(
        N_CLASSES, activation="softmax", kernel_initializer=init, name="label_head"
    )(h)
    recon = keras.layers.Dense(N_FEATURES, kernel_initializer=init, name="recon_head")(h)
    return x, {"label": label, "reconstruction": recon}


def build_model(seed=0, regularize=False, name="aux_model"):
    x, outputs = build_graph(seed, regularize)
    return AuxiliaryModel(
        x, outputs, name=name, primary="label", input_targets={"reconstruction": "features"}
    )


def make_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    y = (x[:, 0] > 0).astype("int32") + (x[:, 1] > 1).astype("int32")
    return x, y


def compile_model(model, mode="projection", lam=2.0, lr=0.1, **kwargs):
    model.compile(
        optimizer=keras.optimizers.SGD(lr),
        loss={"label": "sparse_categorical_crossentropy", "reconstruction": "mae"},
        loss_weights={"reconstruction": lam},
        metrics={"label": ["accuracy"]},
        censoring=mode,
        **kwargs,
    )
    return model


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


class AuxiliaryModelTest(TestCase):
    def reference_step(self, model, x, y, mode, lam, lr, granularity="global"):
        """Expected weights after one SGD step, from separate tapes and numpy."""
        variables = model.trainable_variables
        ce = keras.losses.SparseCategoricalCrossentropy()
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            primary_loss = (
                ce(y, out["label"]) + tf.add_n(model.losses)
                if model.losses
                else ce(y, out["label"])
            )
        p = tape.gradient(primary_loss, variables)
        with tf.GradientTape() as tape:
            out = model(x, training=True)
            aux_loss = tf.reduce_mean(tf.abs(out["reconstruction"] - x))
        a = tape.gradient(aux_loss, variables)
        to_np = lambda gs: [None if g is None else g.numpy().astype(np.float64) for g in gs]  # noqa: E731
        update = np_combine(to_np(p), [to_np(a)], [lam], mode, granularity)
        if mode == "single_task":
            # One backward pass of the primary objective: the auxiliary head,
            # which the primary loss does not reach, is left as it is.
            update = [0.0 if g is None else g for g in to_np(p)]
        return [v.numpy() - lr * u for v, u in zip(variables, update)]

    @pytest.mark.filterwarnings("ignore")
    def test_one_step_matches_numpy_for_every_mode(self):
        x, y = make_data(32)
        for mode in censoring.MODES:
            for granularity in censoring.GRANULARITIES:
                model = compile_model(
                    build_model(regularize=True), mode, lam=2.0, lr=0.1, granularity=granularity
                )
                expected = self.reference_step(model, x, y, mode, 2.0, 0.1, granularity)
                model.train_on_batch(x, y)
                for got, want in zip(model.trainable_variables, expected):
                    self.assertAllClose(got.numpy(), want, atol=1e-5, msg=f"{mode}/{granularity}")

    def test_multitask_equals_plain_keras_multi_output_model(self):
        x, y = make_data(64)
        model = compile_model(build_model(), "multitask", lam=3.0, lr=0.05)
        plain_copy = keras.Model(*build_graph())
        plain_copy.set_weights(model.get_weights())
        plain_copy.compile(
            optimizer=keras.optimizers.SGD(0.05),
            loss={"label": "sparse_categorical_crossentropy", "reconstruction": "mae"},
            loss_weights={"label": 1.0, "reconstruction": 3.0},
        )
        model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        plain_copy.fit(
            x, {"label": y, "reconstruction": x}, batch_size=16, epochs=2, shuffle=False, verbose=0
        )
        for a, b in zip(model.get_weights(), plain_copy.get_weights()):
            self.assertAllClose(a, b, atol=1e-5)

    def test_fit_evaluate_predict_and_logs(self):
        x, y = make_data(128)
        model = compile_model(build_model(), "projection", lam=1.0, lr=0.1)
        history = model.fit(x, y, validation_data=(x, y), batch_size=32, epochs=3, verbose=0)
        logs = history.history
        for key in [
            "loss",
            "label_loss",
            "reconstruction_loss",
            "reconstruction_cosine",
            "label_accuracy",
        ]:
            self.assertIn(key, logs)
            self.assertTrue(np.all(np.isfinite(logs[key])), key)
        for key in ["val_loss", "val_label_loss", "val_reconstruction_loss", "val_label_accuracy"]:
            self.assertIn(key, logs)
        self.assertNotIn("val_reconstruction_cosine", logs)
        self.assertLess(logs["loss"][-1], logs["loss"][0])
        self.assertTrue(all(-1.0 <= c <= 1.0 for c in logs["reconstruction_cosine"]))
        # The total is the λ-weighted sum of the per-task losses.
        result = model.evaluate(x, y, batch_size=128, return_dict=True, verbose=0)
        self.assertAllClose(
            result["loss"], result["label_loss"] + 1.0 * result["reconstruction_loss"], atol=1e-5
        )
        ce = keras.losses.sparse_categorical_crossentropy(y, model.predict(x, verbose=0)["label"])
        self.assertAllClose(result["label_loss"], np.mean(ce), atol=1e-5)
        pred = model.predict(x, verbose=0)
        self.assertEqual(set(pred), {"label", "reconstruction"})

    def test_explicit_target_overrides_input_target(self):
        x, y = make_data(32)
        model = compile_model(build_model(), "multitask")
        clean = np.zeros_like(x)
        result = model.evaluate(
            x, {"label": y, "reconstruction": clean}, return_dict=True, verbose=0
        )
        recon = model.predict(x, verbose=0)["reconstruction"]
        self.assertAllClose(
            result["reconstruction_loss"], np.mean(np.abs(recon - clean)), atol=1e-5
        )

    def test_tf_data_input_and_sample_weights(self):
        x, y = make_data(64)
        ds = tf.data.Dataset.from_tensor_slices(
            (x, y, {"label": np.ones(64, "float32"), "reconstruction": np.zeros(64, "float32")})
        ).batch(16)
        model = compile_model(build_model(), "projection")
        model.fit(ds, epochs=1, verbose=0)
        result = model.evaluate(ds, return_dict=True, verbose=0)
        self.assertAllClose(result["reconstruction_loss"], 0.0)

    def test_ema_state_advances(self):
        x, y = make_data(64)
        model = compile_model(build_model(), "projection", ema_alpha=0.1)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        state = model.censor_state
        self.assertEqual(int(state["started"]), 1)
        self.assertGreater(float(np.abs(np.asarray(state["average"][0])).sum()), 0.0)
        # The moving average is training state (one variable per trainable
        # variable, plus a flag), not one of the model's weights.
        self.assertEqual(
            len(model.censor_state_holder.state_variables), len(model.trainable_variables) + 1
        )
        self.assertEqual(len(model.weights), len(build_model().weights))

    def test_save_load_round_trip_keeps_censoring(self):
        x, y = make_data(64)
        model = compile_model(
            build_model(), "weighted_cosine", granularity="per_variable", ema_alpha=0.5
        )
        model.fit(x, y, epochs=1, verbose=0)
        restored = self.run_model_saving_test(model, x)
        self.assertIsInstance(restored, AuxiliaryModel)
        self.assertEqual(restored.primary, "label")
        self.assertEqual(restored.input_targets, {"reconstruction": "features"})
        censor = restored._tasks.censor
        self.assertIsInstance(censor, censoring.MovingAverage)
        self.assertEqual(censor.alpha, 0.5)
        self.assertIsInstance(censor.censor, censoring.WeightedCosine)
        self.assertEqual(censor.censor.granularity, "per_variable")
        for a, b in zip(
            keras.tree.flatten(model.censor_state), keras.tree.flatten(restored.censor_state)
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        self.assertEqual(restored._tasks.weights["reconstruction"], 2.0)
        restored.fit(x, y, epochs=1, verbose=0)

    def test_serialization(self):
        self.run_serialization_test(build_model())

    def test_export_serves_primary_output(self):
        x, y = make_data(16)
        model = compile_model(build_model(), "projection")
        model.fit(x, y, epochs=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "exported")
        model.export(path, verbose=False)
        loaded = tf.saved_model.load(path)  # keep a reference: it owns the variables
        served = loaded.serve(tf.constant(x))
        self.assertAllClose(served.numpy(), model.predict(x, verbose=0)["label"], atol=1e-5)
        path_all = os.path.join(self.get_temp_dir(), "exported_all")
        model.export(path_all, outputs="all", verbose=False)
        loaded_all = tf.saved_model.load(path_all)
        served = loaded_all.serve(tf.constant(x))
        self.assertEqual(len(served), 2)

    def test_jit_compile_matches_graph_mode(self):
        x, y = make_data(64)
        results = []
        for jit in (False, True):
            model = compile_model(build_model(seed=3), "projection", jit_compile=jit, ema_alpha=0.1)
            if jit:
                with self.assertXlaRan(model) as xla:
                    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
                if xla.executions is not None:  # None: this TF leaves no profiler evidence
                    self.assertGreaterEqual(xla.executions, 8)  # one per step (4 x 2 epochs)
            else:
                model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
            results.append(weights_of(model))
        for a, b in zip(*results):
            self.assertAllClose(a, b, atol=1e-5)

    def test_seeded_runs_are_reproducible(self):
        self.enable_op_determinism()  # restored when the test ends
        x, y = make_data(64)
        results = []
        for _ in range(2):
            keras.backend.clear_session()
            keras.utils.set_random_seed(7)
            x_in = keras.Input((N_FEATURES,), name="features")
            h = keras.layers.Dropout(0.3)(keras.layers.Dense(8, activation="relu")(x_in))
            model = AuxiliaryModel(
                x_in,
                {
                    "label": keras.layers.Dense(N_CLASSES, activation="softmax")(h),
                    "reconstruction": keras.layers.Dense(N_FEATURES)(h),
                },
                primary="label",
                input_targets={"reconstruction": None},
            )
            compile_model(model, "projection")
            model.fit(x, y, batch_size=16, epochs=2, verbose=0)
            results.append(weights_of(model))
        for a, b in zip(*results):
            np.testing.assert_array_equal(a, b)

    def test_mirrored_strategy_equals_single_device(self):
        if len(tf.config.list_logical_devices("CPU")) < 2:
            self.skipTest("needs 2 logical CPU devices (configured in conftest.py)")
        x, y = make_data(64)
        results = []
        for distributed in (False, True):
            keras.backend.clear_session()
            strategy = mirrored_strategy() if distributed else tf.distribute.get_strategy()
            with strategy.scope():
                model = compile_model(
                    build_model(seed=5, regularize=True),
                    "projection",
                    lam=2.0,
                    lr=0.1,
                    ema_alpha=0.5,
                )
            history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
            results.append((weights_of(model), history.history))
        (w1, h1), (w2, h2) = results
        for a, b in zip(w1, w2):
            self.assertAllClose(a, b, atol=1e-5)
        for key in ("loss", "label_loss", "reconstruction_loss", "reconstruction_cosine"):
            self.assertAllClose(h1[key], h2[key], atol=1e-5, msg=key)

    def test_bad_inputs_are_named(self):
        x = keras.Input((N_FEATURES,), name="features")
        outs = {"a": keras.layers.Dense(2)(x), "b": keras.layers.Dense(2)(x)}
        with self.assertRaisesRegex(ValueError, "must name the primary"):
            AuxiliaryModel(x, outs).compile("sgd", loss="mse")
        with self.assertRaisesRegex(ValueError, "is not an output"):
            AuxiliaryModel(x, outs, primary="c")
        with self.assertRaisesRegex(ValueError, "at least one auxiliary"):
            AuxiliaryModel(x, {"a": outs["a"]}, primary="a")
        with self.assertRaisesRegex(ValueError, "is not an input"):
            AuxiliaryModel(x, outs, primary="a", input_targets={"b": "nope"})
        with self.assertRaisesRegex(ValueError, "primary output cannot"):
            AuxiliaryModel(x, outs, primary="a", input_targets={"a": None})
        model = AuxiliaryModel(x, outs, primary="a")
        with self.assertRaisesRegex(ValueError, "no loss for outputs"):
            model.compile("sgd", loss={"a": "mse"})
        with self.assertRaisesRegex(ValueError, "unknown outputs"):
            model.compile("sgd", loss={"a": "mse", "b": "mse", "z": "mse"})
        with self.assertRaisesRegex(ValueError, "loss_weights"):
            model.compile("sgd", loss="mse", loss_weights={"z": 1.0})
        with self.assertRaisesRegex(ValueError, ">= 0"):
            model.compile("sgd", loss="mse", loss_weights={"b": -1.0})
        with self.assertRaisesRegex(ValueError, "Unknown censoring 'cosine'"):
            model.compile("sgd", loss="mse", censoring="cosine")
        with self.assertRaisesRegex(ValueError, r"\(0, 1\]"):
            model.compile("sgd", loss="mse", ema_alpha=1.5)
        model.compile("sgd", loss="mse")
        data = np.zeros((4, N_FEATURES), "float32")
        with self.assertRaisesRegex(ValueError, r"No target for outputs \['b'\]"):
            model.fit(data, np.zeros((4, 2), "float32"), verbose=0)


def regression_model(seed=0):
    """Shared trunk, two linear heads: the synthetic experiment's shape, small."""
    init = keras.initializers.GlorotUniform(seed=seed)
    x = keras.Input((5,), name="x")
    h = keras.layers.Dense(8, activation="relu", kernel_initializer=init)(x)
    outputs = {
        "primary": keras.layers.Dense(3, kernel_initializer=init, name="primary")(h),
        "auxiliary": keras.layers.Dense(3, kernel_initializer=init, name="auxiliary")(h),
    }
    model = AuxiliaryModel(x, outputs, primary="primary")
    return model


class SeparateAuxiliaryDataTest(TestCase):
    def data(self, n=40, seed=0):
        rng = np.random.default_rng(seed)
        x1, x2 = (
            rng.normal(size=(n, 5)).astype("float32"),
            rng.normal(size=(n, 5)).astype("float32"),
        )
        return x1, np.tanh(x1[:, :3]), x2, np.tanh(-x2[:, 2:])

    def test_one_step_uses_each_task_batch(self):
        x1, y1, x2, y2 = self.data(20)
        model = regression_model()
        model.compile(
            keras.optimizers.SGD(0.1),
            loss="mse",
            loss_weights={"auxiliary": 3.0},
            censoring="projection",
        )
        variables = model.trainable_variables
        with tf.GradientTape() as tape:
            primary_loss = tf.reduce_mean(tf.square(model(x1)["primary"] - y1))
        p = tape.gradient(primary_loss, variables)
        with tf.GradientTape() as tape:
            aux_loss = tf.reduce_mean(tf.square(model(x2)["auxiliary"] - y2))
        a = tape.gradient(aux_loss, variables)
        to_np = lambda gs: [None if g is None else g.numpy().astype(np.float64) for g in gs]  # noqa: E731
        expected = [
            v.numpy() - 0.1 * u
            for v, u in zip(
                variables, np_combine(to_np(p), [to_np(a)], [3.0], "projection", "global")
            )
        ]
        ds = zip_tasks(
            tf.data.Dataset.from_tensor_slices((x1, y1)).batch(20),
            {"auxiliary": tf.data.Dataset.from_tensor_slices((x2, y2)).batch(20)},
        )
        model.fit(ds, epochs=1, verbose=0)
        for got, want in zip(variables, expected):
            self.assertAllClose(got.numpy(), want, atol=1e-5)

    def test_fit_with_primary_only_validation_and_early_stopping(self):
        x1, y1, x2, y2 = self.data(80)
        model = regression_model()
        model.compile("adam", loss="mse", censoring="projection", ema_alpha=0.1, jit_compile=True)
        train = zip_tasks(
            tf.data.Dataset.from_tensor_slices((x1, y1)).batch(20),
            {"auxiliary": tf.data.Dataset.from_tensor_slices((x2, y2)).batch(20).repeat()},
        )
        with self.assertXlaRan(model):
            history = model.fit(
                train,
                validation_data=(x1[:40], y1[:40]),
                epochs=30,
                verbose=0,
                callbacks=[
                    keras.callbacks.EarlyStopping(
                        "val_primary_loss", mode="min", patience=2, restore_best_weights=True
                    )
                ],
            ).history
        self.assertIn("auxiliary_loss", history)
        self.assertIn("val_primary_loss", history)
        self.assertNotIn("val_auxiliary_loss", history)
        self.assertAllClose(history["val_loss"], history["val_primary_loss"], atol=1e-6)
        self.assertLess(history["primary_loss"][-1], history["primary_loss"][0])
        self.assertLess(history["auxiliary_loss"][-1], history["auxiliary_loss"][0])
        # Evaluating with TaskData reports both tasks on their own batches.
        both = model.evaluate(train.take(4), return_dict=True, verbose=0)
        self.assertIn("auxiliary_loss", both)

    def test_bad_task_data_is_named(self):
        x1, y1, x2, y2 = self.data(8)
        model = regression_model()
        model.compile("sgd", loss="mse")
        primary = tf.data.Dataset.from_tensor_slices((x1, y1)).batch(4)
        with self.assertRaisesRegex(ValueError, "not auxiliary outputs"):
            model.fit(zip_tasks(primary, {"other": primary}), verbose=0)
        with self.assertRaisesRegex(ValueError, "must be a tf.data.Dataset"):
            zip_tasks(primary, {"auxiliary": (x2, y2)})
        with self.assertRaisesRegex(ValueError, "primary output"):
            model.evaluate(x1, {"auxiliary": y2}, verbose=0)


def classification_model(seed=0):
    """Shared trunk, a 3-class primary head and a 2-class auxiliary head."""
    init = keras.initializers.GlorotUniform(seed=seed)
    x = keras.Input((5,), name="x")
    h = keras.layers.Dense(8, activation="relu", kernel_initializer=init)(x)
    outputs = {
        "p": keras.layers.Dense(3, activation="softmax", kernel_initializer=init, name="p")(h),
        "side": keras.layers.Dense(2, activation="softmax", kernel_initializer=init, name="side")(
            h
        ),
    }
    return AuxiliaryModel(x, outputs, primary="p")


def accuracy(probabilities, labels):
    return float(np.mean(np.argmax(probabilities, axis=-1) == labels))


class TaskMetricsTest(TestCase):
    """Each output's compiled metrics keep its name and measure that output,
    whichever targets a batch carries."""

    def data(self, n=64, seed=0):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, 5)).astype("float32")
        return x, (x[:, 0] > 0).astype("int32") + (x[:, 1] > 0.5), (x[:, 2] > 0).astype("int32")

    def compile(self, model, **kwargs):
        model.compile(
            keras.optimizers.SGD(0.1),
            loss="sparse_categorical_crossentropy",
            metrics={"p": ["accuracy", "sparse_categorical_crossentropy"]},
            **kwargs,
        )
        return model

    def test_separately_fed_tasks_keep_their_metric_names_and_outputs(self):
        x, y, side = self.data()
        model = self.compile(classification_model())
        train = zip_tasks(
            tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
            {"side": tf.data.Dataset.from_tensor_slices((x[::-1], side[::-1])).batch(16)},
        )
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(
                train,
                validation_data=(x, y),
                epochs=3,
                verbose=0,
                callbacks=[keras.callbacks.EarlyStopping("val_p_accuracy", mode="max", patience=1)],
            ).history
        self.assertEqual([str(w.message) for w in caught if "val_p_accuracy" in str(w.message)], [])
        self.assertIn("p_accuracy", history)
        self.assertIn("val_p_accuracy", history)
        self.assertIn("p_sparse_categorical_crossentropy", history)
        self.assertNotIn("accuracy", history)
        self.assertNotIn("accuracy_1", history)
        # Evaluated with both targets, the primary metric measures the primary output.
        logs = model.evaluate(x, {"p": y, "side": side}, batch_size=64, verbose=0, return_dict=True)
        predictions = model.predict(x, verbose=0)
        self.assertAllClose(logs["p_accuracy"], accuracy(predictions["p"], y), atol=1e-6)
        self.assertNotAlmostEqual(
            accuracy(predictions["p"], y), accuracy(predictions["side"], side), places=3
        )

    def test_primary_only_validation_with_compiled_metrics(self):
        x, y, side = self.data()
        model = self.compile(classification_model())
        model.compile(
            keras.optimizers.SGD(0.1),
            loss="sparse_categorical_crossentropy",
            metrics={"p": ["accuracy"], "side": ["accuracy"]},
            weighted_metrics={"p": ["accuracy"]},
        )
        history = model.fit(
            x,
            {"p": y, "side": side},
            validation_data=(x, {"p": y}),
            epochs=1,
            batch_size=16,
            verbose=0,
        ).history
        self.assertIn("side_accuracy", history)
        self.assertIn("p_weighted_accuracy", history)
        self.assertIn("val_p_accuracy", history)
        self.assertNotIn("val_side_accuracy", history)
        logs = model.evaluate(x, {"p": y}, batch_size=64, verbose=0, return_dict=True)
        self.assertAllClose(
            logs["p_accuracy"], accuracy(model.predict(x, verbose=0)["p"], y), atol=1e-6
        )
        self.assertNotIn("side_accuracy", logs)

    def test_a_metric_list_measures_the_primary_output_and_survives_saving(self):
        x, y, side = self.data()
        model = classification_model()
        model.compile("sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        model.fit(x, {"p": y, "side": side}, epochs=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        logs = restored.evaluate(x, {"p": y}, batch_size=64, verbose=0, return_dict=True)
        self.assertAllClose(
            logs["p_accuracy"], accuracy(restored.predict(x, verbose=0)["p"], y), atol=1e-6
        )
        with self.assertRaisesRegex(ValueError, r"unknown outputs \['q'\]"):
            model.compile("sgd", loss="mse", metrics={"q": ["mae"]})
