"""Tests of `MAXL` on the current backend (TensorFlow, or JAX in the JAX
tier): the meta-gradient against finite differences, the first order against
the second, a stage-1 step against a hand-made one, fit in both orders and
schedules, the diagnostics, save / resume, bad inputs. The TensorFlow-only
ones (XLA, MirroredStrategy, SavedModel export) are in
`backend/tensorflow_trainer_test.py`; TensorFlow against JAX, `.keras` files
across backends and DataParallel in `backends_test.py`."""

import contextlib
import os

import keras
import numpy as np
from keras import ops

from keras_aux.layers import HierarchicalMaskedSoftmax
from keras_aux.maxl import MAXL
from keras_aux.testing import TestCase

PSI = [2, 3]
D = 5


def build_networks(seed=0, psi=PSI, hidden=6, generator_hidden=None):
    """A tiny multi-task network (sigmoid trunk, two softmax heads) and label generator.

    Sigmoid, not tanh: Keras's tanh on JAX returns float32 for float64 inputs,
    too coarse for the float64 finite differences."""
    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 10 + i)  # noqa: E731
    x = keras.Input((D,), name="x")
    h = keras.layers.Dense(hidden, activation="sigmoid", kernel_initializer=init(0), name="trunk")(
        x
    )
    multitask = keras.Model(
        x,
        {
            "primary": keras.layers.Dense(
                len(psi), activation="softmax", kernel_initializer=init(1), name="primary"
            )(h),
            "auxiliary": keras.layers.Dense(
                sum(psi), activation="softmax", kernel_initializer=init(2), name="auxiliary"
            )(h),
        },
        name="multitask",
    )
    gx = keras.Input((D,), name="image")
    gy = keras.Input((), dtype="int32", name="primary_label")
    g = gx
    if generator_hidden:
        g = keras.layers.Dense(generator_hidden, activation="relu", kernel_initializer=init(3))(g)
    logits = keras.layers.Dense(sum(psi), kernel_initializer=init(4), name="logits")(g)
    generator = keras.Model(
        {"image": gx, "primary_label": gy},
        HierarchicalMaskedSoftmax(psi)([logits, gy]),
        name="generator",
    )
    return multitask, generator


def batchnorm_generator(psi=PSI, bias=3.0):
    """A label generator whose BatchNorm makes inference and training differ:
    a large bias on the first class of every block dominates in inference
    (moving statistics 0 and 1), and training mode subtracts it (batch mean)."""
    starts = np.cumsum([0, *psi[:-1]])
    init = np.zeros(sum(psi), "float32")
    init[starts] = bias
    gx = keras.Input((D,), name="image")
    gy = keras.Input((), dtype="int32", name="primary_label")
    logits = keras.layers.Dense(
        sum(psi),
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.3, seed=5),
        bias_initializer=keras.initializers.Constant(init),
    )(gx)
    logits = keras.layers.BatchNormalization(center=False, scale=False)(logits)
    return keras.Model(
        {"image": gx, "primary_label": gy},
        HierarchicalMaskedSoftmax(psi)([logits, gy]),
        name="batchnorm_generator",
    )


def numpy_diagnostics(labels, y, psi=PSI):
    """Usage (share of auxiliary classes that are some row's arg-max) and the
    normalised entropy of the auxiliary class given the primary class, of
    the mean label, in plain numpy."""
    usage = len(np.unique(np.argmax(labels, -1))) / sum(psi)
    starts = np.cumsum([0, *psi[:-1]])
    conditional = largest = 0.0
    for i, (start, size) in enumerate(zip(starts, psi)):
        rows = labels[y == i][:, start : start + size]
        share = len(rows) / len(labels)
        if not len(rows):
            continue
        mean = rows.mean(0) / rows.mean(0).sum()
        conditional += share * -np.sum(mean[mean > 0] * np.log(mean[mean > 0]))
        largest += share * np.log(size)
    return {"usage": usage, "entropy": conditional / largest}


def make_data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, D)).astype(keras.config.floatx())
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype("int32")
    return x, y


def focal(targets, probs):
    """Per-example focal loss (γ = 2) in NumPy-compatible `keras.ops`."""
    return -ops.sum(targets * (1.0 - probs) ** 2 * ops.log(probs + 1e-20), axis=-1)


def mean(values):
    """The batch mean in the values' precision (`keras.ops.mean` on JAX reduces
    float64 in float32, too coarse for the finite differences)."""
    return ops.sum(values, axis=0) / values.shape[0]


def gradient(fn, values):
    """∇ of the scalar ``fn(values)`` by the backend's own autodiff (a tape or
    `jax.grad`), independently of MAXL."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.grad(fn)(list(values))
    import tensorflow as tf

    values = [tf.convert_to_tensor(v) for v in values]
    with tf.GradientTape() as tape:
        tape.watch(values)
        loss = fn(values)
    return tape.gradient(loss, values)


def to_numpy(values):
    return [ops.convert_to_numpy(v) for v in values]


@contextlib.contextmanager
def float64():
    """floatx float64 (and JAX's 64-bit mode) for the block; restored after."""
    floatx = keras.config.floatx()
    jax_config = None
    if keras.backend.backend() == "jax":
        import jax

        jax_config = jax.config
        x64 = jax_config.read("jax_enable_x64")
        jax_config.update("jax_enable_x64", True)
    keras.config.set_floatx("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(floatx)
        if jax_config is not None:
            jax_config.update("jax_enable_x64", x64)


def train_loss(multitask, theta1, x, onehot, labels):
    """L_pri + L_aux of the multi-task network at weights ``theta1`` (training mode)."""
    statistics = [v.value for v in multitask.non_trainable_variables]
    out, _ = multitask.stateless_call(theta1, statistics, x, training=True)
    return mean(focal(onehot, out["primary"])) + mean(focal(labels, out["auxiliary"]))


def meta_objective(model, x, y, alpha, entropy_weight=0.2):
    """L_pri(θ1⁺(θ2)) + w·H(g), computed independently of MAXL: the backend's
    first-order gradient of L_train and a stateless forward at θ1 − α∇θ1 L_train."""
    multitask, generator = model.multitask_network, model.label_generator
    labels = generator({"image": x, "primary_label": y})
    onehot = ops.one_hot(y, len(PSI), dtype=labels.dtype)
    theta1 = [v.value for v in multitask.trainable_variables]
    grads = gradient(lambda t: train_loss(multitask, t, x, onehot, labels), theta1)
    fast = [t - alpha * g for t, g in zip(theta1, grads)]
    statistics = [v.value for v in multitask.non_trainable_variables]
    out, _ = multitask.stateless_call(fast, statistics, x, training=True)
    meta = np.mean(ops.convert_to_numpy(focal(onehot, out["primary"])))
    mean = np.mean(ops.convert_to_numpy(labels), axis=0)
    return meta + entropy_weight * np.sum(mean * np.log(mean + 1e-20))


class MAXLTest(TestCase):
    def setUp(self):
        super().setUp()
        # Some tests switch to float64. Restored after each: floatx, and (by
        # `clear_session`, run first) the global dtype policy, which Keras fixes
        # to the floatx of the moment when a layer first needs it.
        self.addCleanup(keras.config.set_floatx, keras.config.floatx())
        self.addCleanup(keras.backend.clear_session)

    def compiled(self, seed=0, lr=0.1, generator_lr=0.05, **kwargs):
        multitask, generator = build_networks(seed, generator_hidden=4)
        model = MAXL(multitask, generator, PSI, **kwargs)
        model.compile(keras.optimizers.SGD(lr), keras.optimizers.SGD(generator_lr))
        return model

    # ------------------------------------------------------- the gradients
    def test_meta_gradient_matches_central_finite_differences(self):
        self.enterContext(float64())
        x, y = make_data(8, seed=1)
        multitask, generator = build_networks(seed=2, generator_hidden=None)
        model = MAXL(multitask, generator, PSI, inner_learning_rate=0.5)
        model.compile()
        grads, _, _ = model.meta_gradients(x, y)
        h = 1e-6
        for var, grad in zip(generator.trainable_variables, grads):
            base = ops.convert_to_numpy(var)
            numeric = np.zeros_like(base)
            for index in np.ndindex(base.shape):
                values = []
                for sign in (1, -1):
                    shifted = base.copy()
                    shifted[index] += sign * h
                    var.assign(shifted)
                    values.append(meta_objective(model, x, y, alpha=0.5))
                numeric[index] = (values[0] - values[1]) / (2 * h)
            var.assign(base)
            self.assertGreater(np.abs(numeric).max(), 1e-4)  # the check has teeth
            self.assertAllClose(grad, numeric, atol=1e-8, rtol=1e-5, msg=var.path)

    def test_first_order_estimate_matches_second_order_with_plain_sgd(self):
        """With plain SGD the virtual steps coincide and the finite difference
        estimates the exact Hessian-vector term; the entropy gradient is in both."""
        self.enterContext(float64())
        x, y = make_data(8, seed=3)
        results = []
        for order in (2, 1):
            multitask, generator = build_networks(seed=4, generator_hidden=3)
            model = MAXL(multitask, generator, PSI, order=order, inner_learning_rate=0.5)
            model.compile()
            grads, meta_loss, _ = model.meta_gradients(x, y)
            results.append((to_numpy(grads), float(meta_loss)))
        (second, loss2), (first, loss1) = results
        self.assertAlmostEqual(loss1, loss2, places=10)
        for a, b in zip(first, second):
            self.assertAllClose(a, b, atol=1e-6, rtol=1e-4)

    def test_first_order_entropy_gradient_reaches_the_generator(self):
        x, y = make_data(8, seed=5)
        grads = {}
        for weight in (0.0, 0.2):
            multitask, generator = build_networks(seed=6)
            model = MAXL(multitask, generator, PSI, order=1, entropy_weight=weight)
            model.compile()
            grads[weight] = to_numpy(model.meta_gradients(x, y)[0])

        def entropy(theta2):
            statistics = [v.value for v in generator.non_trainable_variables]
            inputs = {"image": x, "primary_label": y}
            labels, _ = generator.stateless_call(theta2, statistics, inputs)
            average = mean(labels)
            return ops.sum(average * ops.log(average + 1e-20))

        expected = gradient(entropy, [v.value for v in generator.trainable_variables])
        for g0, g2, e in zip(grads[0.0], grads[0.2], to_numpy(expected)):
            self.assertGreater(np.abs(e).max(), 0)
            self.assertAllClose(g2 - g0, 0.2 * e, atol=1e-5)

    def test_stage_one_is_one_sgd_step_on_primary_plus_auxiliary(self):
        x, y = make_data(16, seed=7)
        model = self.compiled(seed=8, lr=0.3)
        multitask, generator = model.multitask_network, model.label_generator
        before = to_numpy(multitask.trainable_variables)
        labels = generator({"image": x, "primary_label": y}, training=True)
        onehot = ops.one_hot(y, 2, dtype=labels.dtype)
        grads = gradient(
            lambda t: train_loss(multitask, t, x, onehot, labels),
            [v.value for v in multitask.trainable_variables],
        )
        generator_before = to_numpy(generator.trainable_variables)
        model.stage_one(x, y)
        for var, b, g in zip(multitask.trainable_variables, before, to_numpy(grads)):
            self.assertAllClose(var, b - 0.3 * g, atol=1e-6)
        for var, b in zip(generator.trainable_variables, generator_before):
            self.assertAllClose(var, b, atol=0)

    # ---------------------------------------------------------------- fit
    def test_fit_both_orders_and_schedules_with_logs(self):
        x, y = make_data(48)
        for order in (2, 1):
            for schedule in ("epoch", "interleaved"):
                model = self.compiled(seed=1, order=order, schedule=schedule, stage2_every=2)
                history = model.fit(
                    x, y, batch_size=16, epochs=4, verbose=0, validation_data=(x, y)
                ).history
                for key in (
                    "loss",
                    "primary_loss",
                    "primary_accuracy",
                    "auxiliary_loss",
                    "entropy",
                    "primary_loss_after_step",
                    "gradient_cosine",
                    "val_primary_loss",
                    "val_primary_accuracy",
                    "val_auxiliary_usage",
                    "val_auxiliary_entropy",
                ):
                    # The paper schedule measures these in one stage's epochs only.
                    stage_only = schedule == "epoch" and key in (
                        "primary_loss_after_step",
                        "gradient_cosine",
                    )
                    self.assertEqual(len(history[key]), 2 if stage_only else 4, msg=key)
                    self.assertTrue(np.all(np.isfinite(history[key])), msg=key)
                    self.assertTrue(np.all(np.asarray(history[key]) != 0.0), msg=key)
                self.assertLess(history["primary_loss"][-1], history["primary_loss"][0])
                self.assertTrue(0 < history["val_auxiliary_usage"][-1] <= 1)
                # Measured in inference mode only: not from the train steps' labels.
                self.assertNotIn("auxiliary_usage", history)
                self.assertNotIn("auxiliary_entropy", history)
                self.assertTrue(-1 <= history["gradient_cosine"][-1] <= 1)

    def test_interleaved_schedule_runs_stage_two_every_k_steps(self):
        x, y = make_data(16)
        model = self.compiled(seed=3, schedule="interleaved", stage2_every=2)
        generator = model.label_generator
        moved = []
        for _ in range(4):
            before = generator.get_weights()
            model.train_on_batch(x, y)
            moved.append(
                any(not np.array_equal(a, b) for a, b in zip(before, generator.get_weights()))
            )
        self.assertEqual(moved, [True, False, True, False])
        self.assertEqual(int(ops.convert_to_numpy(model._step_counter)), 4)

    def test_paper_schedule_alternates_whole_epochs(self):
        x, y = make_data(32)
        model = self.compiled(seed=2)
        multitask, generator = model.multitask_network, model.label_generator
        changed = []

        class Watch(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                self.before = [w.copy() for w in multitask.get_weights() + generator.get_weights()]

            def on_epoch_end(self, epoch, logs=None):
                after = multitask.get_weights() + generator.get_weights()
                n = len(multitask.get_weights())
                moved = [not np.array_equal(a, b) for a, b in zip(self.before, after)]
                changed.append((any(moved[:n]), any(moved[n:])))

        model.fit(x, y, batch_size=16, epochs=4, verbose=0, callbacks=[Watch()])
        # Stage 1 moves θ1 only, stage 2 θ2 only.
        self.assertEqual(changed, [(True, False), (False, True)] * 2)

    # ----------------------------------------------------- the diagnostics
    def test_evaluate_reports_the_inference_mode_labels(self):
        """``auxiliary_usage`` and ``auxiliary_entropy`` are those of
        `generate_labels` (inference mode), recomputed in numpy, not those of
        the training-mode labels, which differ here through BatchNorm."""
        x, y = make_data(48, seed=11)
        multitask, _ = build_networks(seed=3)
        generator = batchnorm_generator()
        model = MAXL(multitask, generator, PSI)
        model.compile()
        results = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
        inference = model.generate_labels(x, y)
        expected = numpy_diagnostics(inference, y)
        self.assertAllClose(results["auxiliary_usage"], expected["usage"], atol=1e-6)
        self.assertAllClose(results["auxiliary_entropy"], expected["entropy"], atol=1e-5)
        # The check has teeth: inference collapses onto the first class of each
        # block (usage 2/5); training mode normalises the bias away.
        self.assertAllClose(expected["usage"], 2 / 5)
        training = ops.convert_to_numpy(generator({"image": x, "primary_label": y}, training=True))
        training_mode = numpy_diagnostics(training, y)
        self.assertAllClose(training_mode["usage"], 1.0)
        self.assertGreater(training_mode["entropy"], expected["entropy"] + 0.1)

    def test_fit_logs_the_diagnostics_of_the_final_generator_on_validation_data(self):
        x, y = make_data(48, seed=12)
        x_val, y_val = make_data(40, seed=13)
        multitask, _ = build_networks(seed=4)
        model = MAXL(multitask, batchnorm_generator(), PSI)
        model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.5))
        history = model.fit(
            x, y, batch_size=16, epochs=4, verbose=0, validation_data=(x_val, y_val)
        ).history
        expected = numpy_diagnostics(model.generate_labels(x_val, y_val), y_val)
        self.assertEqual(len(history["val_auxiliary_usage"]), 4)
        self.assertAllClose(history["val_auxiliary_usage"][-1], expected["usage"], atol=1e-6)
        self.assertAllClose(history["val_auxiliary_entropy"][-1], expected["entropy"], atol=1e-5)

    # ------------------------------------------------- save, resume, export
    def test_save_load_keeps_both_networks_and_optimizers(self):
        x, y = make_data(32)
        multitask, generator = build_networks(5, generator_hidden=4)
        model = MAXL(multitask, generator, PSI, order=1, entropy_weight=0.3)
        model.compile(
            keras.optimizers.SGD(0.1, momentum=0.9),
            keras.optimizers.SGD(0.01, momentum=0.5, weight_decay=5e-4),
        )
        model.fit(x, y, batch_size=16, epochs=2, verbose=0)
        restored = self.run_model_saving_test(model, x)
        self.assertEqual(
            (restored.order, restored.entropy_weight, restored.psi), (1, 0.3, tuple(PSI))
        )
        self.assertAllClose(restored.generate_labels(x, y), model.generate_labels(x, y), atol=1e-6)
        self.assertEqual(restored.generator_optimizer.momentum, 0.5)
        for a, b in zip(
            model.generator_optimizer.variables, restored.generator_optimizer.variables
        ):
            self.assertAllClose(a, b, atol=1e-7)
        for a, b in zip(model.optimizer.variables, restored.optimizer.variables):
            self.assertAllClose(a, b, atol=1e-7)

    def test_backup_and_restore_resumes_to_the_uninterrupted_result(self):
        x, y = make_data(32)

        def fresh():
            multitask, generator = build_networks(6, generator_hidden=4)
            model = MAXL(multitask, generator, PSI)
            model.compile(
                keras.optimizers.SGD(0.1, momentum=0.9), keras.optimizers.SGD(0.05, momentum=0.9)
            )
            return model

        reference = fresh()
        reference.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0)

        class Interrupt(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch == 2:
                    raise RuntimeError("interrupted")

        backup = keras.callbacks.BackupAndRestore(os.path.join(self.get_temp_dir(), "backup"))
        model = fresh()
        with self.assertRaisesRegex(RuntimeError, "interrupted"):
            model.fit(
                x,
                y,
                batch_size=16,
                epochs=4,
                shuffle=False,
                verbose=0,
                callbacks=[backup, Interrupt()],
            )
        resumed = fresh()
        history = resumed.fit(
            x, y, batch_size=16, epochs=4, shuffle=False, verbose=0, callbacks=[backup]
        )
        self.assertEqual(len(history.history["loss"]), 1)  # only epoch 3 was left
        for a, b in zip(
            reference.multitask_network.get_weights() + reference.label_generator.get_weights(),
            resumed.multitask_network.get_weights() + resumed.label_generator.get_weights(),
        ):
            self.assertAllClose(a, b, atol=1e-6)

    def test_generated_labels_stay_in_the_primary_block(self):
        x, y = make_data(16)
        labels = self.compiled(seed=8).generate_labels(x, y, batch_size=5)
        self.assertEqual(labels.shape, (16, 5))
        self.assertAllClose(labels.sum(-1), np.ones(16), atol=1e-6)
        self.assertTrue(np.all(labels[y == 0][:, 2:] == 0) and np.all(labels[y == 1][:, :2] == 0))
        model = self.compiled(seed=8)
        with self.assertRaisesRegex(ValueError, "got 0 examples"):
            model.generate_labels(x[:0], y[:0])
        with self.assertRaisesRegex(ValueError, "16 primary labels but inputs of \\[8\\]"):
            model.generate_labels(x[:8], y)

    def test_from_backbone_with_the_conv4_backbone(self):
        from keras_aux.architectures import conv4_backbone

        model = MAXL.from_backbone(
            lambda shape, seed, name: conv4_backbone(
                shape, filters=(4, 4, 8, 8), seed=seed, name=name
            ),
            (12, 12, 1),
            [2, 1, 2],
            seed=3,
            order=1,
        )
        model.compile()
        x = np.random.default_rng(0).random((16, 12, 12, 1)).astype("float32")
        y = np.arange(16) % 3
        history = model.fit(x, y, batch_size=8, epochs=2, verbose=0).history
        self.assertTrue(np.isfinite(history["primary_loss_after_step"][-1]))
        weights = {id(v) for v in model.multitask_network.weights}
        self.assertFalse(weights & {id(v) for v in model.label_generator.weights})
        self.assertEqual(model.predict(x, verbose=0).shape, (16, 3))

    def test_serialization(self):
        multitask, generator = build_networks(9)
        revived = self.run_serialization_test(
            MAXL(multitask, generator, PSI, order=1, schedule="interleaved", stage2_every=3)
        )
        self.assertEqual(
            (revived.order, revived.schedule, revived.stage2_every), (1, "interleaved", 3)
        )

    # ----------------------------------------------------------- bad input
    def test_bad_inputs_are_named(self):
        multitask, generator = build_networks(0)
        with self.assertRaisesRegex(ValueError, "needs 3 classes on the primary head"):
            MAXL(multitask, generator, [1, 1, 3])
        with self.assertRaisesRegex(ValueError, "needs 6 classes on the auxiliary head"):
            MAXL(multitask, generator, [3, 3])
        with self.assertRaisesRegex(ValueError, "positive int"):
            MAXL(multitask, generator, [2, 0])
        with self.assertRaisesRegex(ValueError, "`order` must be 1 or 2"):
            MAXL(multitask, generator, PSI, order=3)
        with self.assertRaisesRegex(ValueError, "`schedule`"):
            MAXL(multitask, generator, PSI, schedule="sometimes")
        with self.assertRaisesRegex(ValueError, "share weights"):
            shared = keras.Model(
                {"image": multitask.input, "primary_label": generator.input["primary_label"]},
                HierarchicalMaskedSoftmax(PSI)(
                    [
                        keras.layers.Dense(5)(multitask.get_layer("trunk").output),
                        generator.input["primary_label"],
                    ]
                ),
            )
            MAXL(multitask, shared, PSI)
        model = MAXL(multitask, generator, PSI)
        with self.assertRaisesRegex(ValueError, "losses are fixed"):
            model.compile(loss="mse")
        model.compile()
        x, y = make_data(8)
        with self.assertRaisesRegex(ValueError, "sample weights"):
            model.fit(x, y, sample_weight=np.ones(8), epochs=1, verbose=0)
        # A fresh model: on JAX, Keras's `fit` leaves the variables detached
        # from their values when a step raises.
        model = MAXL(*build_networks(1), PSI)
        model.compile()
        with self.assertRaisesRegex(ValueError, "no labels"):
            model.fit(x, epochs=1, verbose=0)
