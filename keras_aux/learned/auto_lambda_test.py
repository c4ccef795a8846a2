"""Tests of `AutoLambda` (Liu et al. 2022) against NumPy written from the
paper's meta-gradient: the look-ahead products ``h_i`` and λ after real
`AuxiliaryModel` steps, the model's step with the new λ, `fit`, saving
mid-fit and resuming, serialization, the refusals, and the meta-batch
plumbing (`TaskData.meta`, `with_meta_batches`).

Backend-neutral except the tf.data tests: the JAX tier runs it under JAX."""

import os

import keras
import numpy as np

from keras_aux.learned import AutoLambda
from keras_aux.models import AuxiliaryModel, TaskData
from keras_aux.testing import TestCase, requires_tensorflow

N_IN, N_HIDDEN, BATCH = 3, 4, 6


def tanh_model(seed=0, batch_norm=False):
    """x → tanh trunk → two linear heads: curved, so the look-ahead matters."""
    x = keras.Input((N_IN,), name="x")
    h = keras.layers.Dense(N_HIDDEN, activation="tanh", name="trunk")(x)
    if batch_norm:
        h = keras.layers.BatchNormalization(name="norm")(h)
    outputs = {
        "label": keras.layers.Dense(1, name="label")(h),
        "aux": keras.layers.Dense(1, name="aux")(h),
    }
    model = AuxiliaryModel(x, outputs, primary="label")
    rng = np.random.default_rng(seed)
    for variable in model.trainable_variables:
        variable.assign(rng.normal(scale=0.7, size=variable.shape).astype("float32"))
    return model


def numpy_losses_and_gradients(params, x, targets):
    """``{task: (MSE, {name: gradient})}``, by hand, in float64."""
    z = x @ params["trunk/kernel"] + params["trunk/bias"]
    h = np.tanh(z)
    result = {}
    for task, y in targets.items():
        out = h @ params[f"{task}/kernel"] + params[f"{task}/bias"]
        d_out = 2.0 * (out - y) / out.size
        d_z = (d_out @ params[f"{task}/kernel"].T) * (1.0 - h**2)
        grads = {name: np.zeros_like(value) for name, value in params.items()}
        grads.update(
            {
                f"{task}/kernel": h.T @ d_out,
                f"{task}/bias": d_out.sum(0),
                "trunk/kernel": x.T @ d_z,
                "trunk/bias": d_z.sum(0),
            }
        )
        result[task] = (float(np.mean((out - y) ** 2)), grads)
    return result


def numpy_sgd_step(
    params, grads, alpha, momentum=0.0, velocity=None, nesterov=False, weight_decay=0.0
):
    """Keras's SGD step: ``(params, velocity)``; its weight decay is decoupled, applied first."""
    params = {n: p - alpha * weight_decay * p for n, p in params.items()}
    if velocity is None:
        return {n: p - alpha * grads[n] for n, p in params.items()}, None
    velocity = {n: momentum * velocity[n] - alpha * grads[n] for n in params}
    if nesterov:
        return {
            n: p + momentum * velocity[n] - alpha * grads[n] for n, p in params.items()
        }, velocity
    return {n: p + velocity[n] for n, p in params.items()}, velocity


def numpy_products(params, batch, meta, weights, alpha, **sgd):
    """``h_i = ⟨∇L_i(θ), ∇L_meta(θ′)⟩``, ``θ′`` the SGD step along ``Σ_i λ_i ∇L_i(θ)``."""
    per_task = numpy_losses_and_gradients(params, *batch)
    tasks = ["label", "aux"]
    g = {n: sum(w * per_task[t][1][n] for w, t in zip(weights, tasks)) for n in params}
    lookahead, _ = numpy_sgd_step(params, g, alpha, **sgd)
    _, v = numpy_losses_and_gradients(lookahead, meta[0], {"label": meta[1]})["label"]
    return np.array([sum(np.sum(per_task[t][1][n] * v[n]) for n in params) for t in tasks])


def numpy_adam(weights, grad, m, v, step, lr):
    m = 0.9 * m + 0.1 * grad
    v = 0.999 * v + 0.001 * grad**2
    m_hat, v_hat = m / (1 - 0.9**step), v / (1 - 0.999**step)
    return weights - lr * m_hat / (np.sqrt(v_hat) + 1e-8), m, v


def batches(seed, steps):
    """``steps`` pairs (training batch, meta batch), targets of both tasks."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.normal(size=(BATCH, N_IN)).astype("float32")
        y = {t: rng.normal(size=(BATCH, 1)).astype("float32") for t in ("label", "aux")}
        xm = rng.normal(size=(BATCH, N_IN)).astype("float32")
        ym = rng.normal(size=(BATCH, 1)).astype("float32")
        out.append(((x, y), (xm, ym)))
    return out


def task_data(pairs, repeat=1):
    """A generator of `TaskData` (plain training batch, meta batch), for `fit`
    on every backend."""

    def generate():
        for _ in range(repeat):
            for train, meta in pairs:
                yield TaskData(train, {}, meta)

    return generate()


class RecordingAutoLambda(AutoLambda):
    """Keeps the last meta step's products ``h`` in its state, to read them
    from a real step on any backend."""

    def init(self, num_tasks):
        return {**super().init(num_tasks), "products": keras.ops.zeros((num_tasks,))}

    def meta_update(self, state, products, learning_rate):
        return {**super().meta_update(state, products, learning_rate), "products": products}


def parameters(model):
    return {v.path: np.asarray(v, np.float64) for v in model.trainable_variables}


class AutoLambdaStepTest(TestCase):
    def test_products_lambda_and_model_step_match_numpy(self):
        alpha, meta_lr = 0.5, 0.01
        model = tanh_model()
        weighting = RecordingAutoLambda(learning_rate=meta_lr, initial_weight=0.3)
        model.compile(
            optimizer=keras.optimizers.SGD(alpha),
            loss={"label": "mse", "aux": "mse"},
            loss_weighting=weighting,
        )
        pairs = batches(1, 3)
        weights, m, v = np.full(2, 0.3), np.zeros(2), np.zeros(2)
        for step, (train, meta) in enumerate(pairs, start=1):
            params = parameters(model)
            x, y = train
            meta64 = (meta[0].astype(np.float64), meta[1].astype(np.float64))
            batch64 = (x.astype(np.float64), {t: y[t].astype(np.float64) for t in y})
            h = numpy_products(params, batch64, meta64, weights, alpha)
            weights, m, v = numpy_adam(weights, -alpha * h, m, v, step, meta_lr)
            per_task = numpy_losses_and_gradients(params, *batch64)
            expected = {
                n: p
                - alpha
                * (weights[0] * per_task["label"][1][n] + weights[1] * per_task["aux"][1][n])
                for n, p in params.items()
            }
            history = model.fit(task_data([(train, meta)]), epochs=1, verbose=0)
            state = model.loss_weighting_state
            self.assertAllClose(state["products"], h, atol=1e-5, rtol=1e-5, msg=f"step {step}")
            self.assertAllClose(state["weights"], weights, atol=1e-6, rtol=1e-5)
            self.assertAllClose(history.history["aux_weight"][-1], weights[1], atol=1e-6)
            for name, value in parameters(model).items():
                self.assertAllClose(value, expected[name], atol=1e-5, rtol=1e-5, msg=name)
        # Not a vanishing check: the products are of the order of the losses' gradients.
        self.assertGreater(np.max(np.abs(h)), 1e-3)

    def test_fix_primary_holds_lambda_0_at_one(self):
        alpha = 0.5
        model = tanh_model()
        model.compile(
            optimizer=keras.optimizers.SGD(alpha),
            loss={"label": "mse", "aux": "mse"},
            loss_weighting=RecordingAutoLambda(learning_rate=0.01, fix_primary=True),
        )
        ((train, meta),) = batches(2, 1)
        params = parameters(model)
        x, y = train
        h = numpy_products(
            params,
            (x.astype(np.float64), {t: y[t].astype(np.float64) for t in y}),
            (meta[0].astype(np.float64), meta[1].astype(np.float64)),
            np.array([1.0, 0.1]),
            alpha,
        )
        history = model.fit(task_data([(train, meta)]), epochs=1, verbose=0)
        self.assertAllClose(model.loss_weighting_state["products"], h, atol=1e-5, rtol=1e-5)
        self.assertEqual(history.history["label_weight"][-1], 1.0)
        self.assertAllClose(
            history.history["aux_weight"][-1], 0.1 + 0.01 * np.sign(alpha * h[1]), atol=1e-6
        )

    def test_the_lookahead_is_the_next_momentum_step(self):
        alpha, mu, meta_lr = 0.2, 0.9, 0.01
        for nesterov in (False, True):
            model = tanh_model(seed=4)
            model.compile(
                optimizer=keras.optimizers.SGD(alpha, momentum=mu, nesterov=nesterov),
                loss={"label": "mse", "aux": "mse"},
                loss_weighting=RecordingAutoLambda(learning_rate=meta_lr),
            )
            weights, m, v = np.full(2, 0.1), np.zeros(2), np.zeros(2)
            velocity = {n: np.zeros_like(p) for n, p in parameters(model).items()}
            step_size = alpha * (1.0 + mu) if nesterov else alpha  # −∂θ′/∂g
            for step, (train, meta) in enumerate(batches(12, 3), start=1):
                params = parameters(model)
                x, y = train
                batch64 = (x.astype(np.float64), {t: y[t].astype(np.float64) for t in y})
                meta64 = (meta[0].astype(np.float64), meta[1].astype(np.float64))
                sgd = dict(momentum=mu, velocity=velocity, nesterov=nesterov)
                h = numpy_products(params, batch64, meta64, weights, alpha, **sgd)
                weights, m, v = numpy_adam(weights, -step_size * h, m, v, step, meta_lr)
                per_task = numpy_losses_and_gradients(params, *batch64)
                d = {
                    n: weights[0] * per_task["label"][1][n] + weights[1] * per_task["aux"][1][n]
                    for n in params
                }
                expected, velocity = numpy_sgd_step(params, d, alpha, **sgd)
                model.fit(task_data([(train, meta)]), epochs=1, verbose=0)
                state = model.loss_weighting_state
                msg = f"nesterov={nesterov} step {step}"
                self.assertAllClose(state["products"], h, atol=1e-5, rtol=1e-5, msg=msg)
                self.assertAllClose(state["weights"], weights, atol=1e-6, rtol=1e-5, msg=msg)
                for name, value in parameters(model).items():
                    self.assertAllClose(value, expected[name], atol=1e-5, rtol=1e-5, msg=name)

    def test_the_lookahead_takes_the_optimizers_weight_decay(self):
        alpha, meta_lr, decay = 0.2, 0.01, 0.5
        cases = {
            "sgd momentum": (keras.optimizers.SGD(alpha, momentum=0.9, weight_decay=decay), 0.9),
            "adamw": (keras.optimizers.AdamW(alpha, weight_decay=decay), None),
        }
        for label, (optimizer, mu) in cases.items():
            model = tanh_model(seed=5)
            model.compile(
                optimizer=optimizer,
                loss={"label": "mse", "aux": "mse"},
                loss_weighting=RecordingAutoLambda(learning_rate=meta_lr),
            )
            params = parameters(model)
            (x, y), meta = batches(13, 1)[0]
            batch64 = (x.astype(np.float64), {t: y[t].astype(np.float64) for t in y})
            meta64 = (meta[0].astype(np.float64), meta[1].astype(np.float64))
            # AdamW's look-ahead is plain SGD after the decay (the reference's rule).
            sgd = dict(weight_decay=decay)
            if mu is not None:
                sgd.update(momentum=mu, velocity={n: np.zeros_like(p) for n, p in params.items()})
            h = numpy_products(params, batch64, meta64, np.full(2, 0.1), alpha, **sgd)
            without = numpy_products(params, batch64, meta64, np.full(2, 0.1), alpha)
            model.fit(task_data([((x, y), meta)]), epochs=1, verbose=0)
            products = model.loss_weighting_state["products"]
            self.assertAllClose(products, h, atol=1e-5, rtol=1e-5, msg=label)
            # The decay moves θ′ enough that leaving it out would fail the check above.
            self.assertGreater(np.max(np.abs(h - without)), 1e-3, msg=label)

    def test_central_difference_approximates_the_exact_products(self):
        alpha = 0.5
        model = tanh_model(seed=3)
        model.compile(
            optimizer=keras.optimizers.SGD(alpha),
            loss={"label": "mse", "aux": "mse"},
            loss_weighting=RecordingAutoLambda(meta_gradient="central_difference"),
        )
        ((train, meta),) = batches(11, 1)
        x, y = train
        h = numpy_products(
            parameters(model),
            (x.astype(np.float64), {t: y[t].astype(np.float64) for t in y}),
            (meta[0].astype(np.float64), meta[1].astype(np.float64)),
            np.full(2, 0.1),
            alpha,
        )
        model.fit(task_data([(train, meta)]), epochs=1, verbose=0)
        products = np.asarray(model.loss_weighting_state["products"])
        # ε‖v‖ = 0.01: the O(ε²) error and float32 rounding stay under 1e-3 (measured ~5e-5).
        self.assertAllClose(products, h, atol=1e-4, rtol=1e-3)
        self.assertFalse(np.array_equal(products, h.astype("float32")))

    def test_the_lookahead_leaves_batch_norm_statistics_alone(self):
        model = tanh_model(batch_norm=True)
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss={"label": "mse", "aux": "mse"},
            loss_weighting=AutoLambda(),
        )
        ((train, meta),) = batches(3, 1)
        reference = tanh_model(batch_norm=True)
        reference.compile(optimizer=keras.optimizers.SGD(0.1), loss={"label": "mse", "aux": "mse"})
        reference.fit(train[0], train[1], batch_size=BATCH, epochs=1, verbose=0, shuffle=False)
        model.fit(task_data([(train, meta)]), epochs=1, verbose=0)
        norm, expected = model.get_layer("norm"), reference.get_layer("norm")
        # One forward pass in training mode moved them (the plain step's), not three.
        self.assertAllClose(norm.moving_mean, expected.moving_mean, atol=1e-6)
        self.assertAllClose(norm.moving_variance, expected.moving_variance, atol=1e-6)


class MixedPrecisionTest(TestCase):
    def setUp(self):
        super().setUp()
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_float16")
        self.addCleanup(keras.mixed_precision.set_global_policy, previous)

    def test_the_meta_passes_are_loss_scaled(self):
        # Losses of order 1e-7: their float16 gradients would underflow to zero without the
        # loss scale (the products are then O(c²) = 1e-14, still normal in float32).
        c, alpha = 1e-7, 0.5

        def tiny_mse(y_true, y_pred):
            return c * keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)

        model = tanh_model(seed=6)
        model.compile(
            optimizer=keras.optimizers.SGD(alpha),
            loss={"label": tiny_mse, "aux": tiny_mse},
            loss_weighting=RecordingAutoLambda(),
        )
        self.assertIsInstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        params = parameters(model)
        (x, y), meta = batches(14, 1)[0]
        batch64 = (x.astype(np.float64), {t: y[t].astype(np.float64) for t in y})
        meta64 = (meta[0].astype(np.float64), meta[1].astype(np.float64))
        # L = c · MSE: each gradient carries c, the look-ahead step α c g.
        h = c**2 * numpy_products(params, batch64, meta64, np.full(2, 0.1), alpha * c)
        model.fit(task_data([((x, y), meta)]), epochs=1, verbose=0)
        products = np.asarray(model.loss_weighting_state["products"], np.float64)
        # float16 forward passes: about 1e-3 relative; without the scale they are 0.
        self.assertAllClose(products, h, rtol=3e-2, atol=3e-2 * np.abs(h).max())


class AutoLambdaFitTest(TestCase):
    def compiled(self):
        model = tanh_model()
        model.compile(
            optimizer=keras.optimizers.Adam(1e-2),
            loss={"label": "mse", "aux": "mse"},
            loss_weighting=AutoLambda(learning_rate=1e-3),
        )
        return model

    def test_fit_learns_and_logs_lambda(self):
        model = self.compiled()
        pairs = batches(4, 5)
        history = model.fit(task_data(pairs, repeat=3), epochs=3, steps_per_epoch=5, verbose=0)
        losses = history.history["label_loss"]
        self.assertLess(losses[-1], losses[0])
        weights = model.loss_weighting_state["weights"]
        self.assertTrue(np.all(np.isfinite(weights)))
        self.assertFalse(np.allclose(weights, 0.1))  # λ moved
        self.assertAllClose(history.history["aux_weight"][-1], weights[1], atol=1e-6)
        self.assertEqual(float(model.loss_weighting_state["adam_step"]), 15.0)

    def test_a_finished_dataset_adds_no_meta_step(self):
        # Without XLA, TensorFlow runs the step's graph when the data has run
        # out, until fetching the batch fails; no state may change then.
        model = tanh_model()
        model.compile(
            optimizer="sgd",
            loss={"label": "mse", "aux": "mse"},
            loss_weighting=AutoLambda(),
            jit_compile=False,
        )
        model.fit(task_data(batches(13, 3)), epochs=1, verbose=0)
        self.assertEqual(float(model.loss_weighting_state["adam_step"]), 3.0)

    def test_saving_mid_fit_resumes_the_same_run(self):
        pairs = batches(5, 4)
        straight = self.compiled()
        straight.fit(task_data(pairs, repeat=2), epochs=2, steps_per_epoch=4, verbose=0)
        first = self.compiled()
        first.fit(task_data(pairs), epochs=1, steps_per_epoch=4, verbose=0)
        path = os.path.join(self.get_temp_dir(), "auto_lambda.keras")
        first.save(path)
        resumed = keras.saving.load_model(path)
        self.assertIsInstance(resumed.loss_weighting, AutoLambda)
        for key, value in first.loss_weighting_state.items():
            self.assertAllClose(resumed.loss_weighting_state[key], value, atol=0)
        resumed.fit(task_data(pairs), epochs=1, steps_per_epoch=4, verbose=0)
        for key, value in straight.loss_weighting_state.items():
            self.assertAllClose(resumed.loss_weighting_state[key], value, atol=1e-6)
        for a, b in zip(resumed.get_weights(), straight.get_weights()):
            self.assertAllClose(a, b, atol=1e-5)

    def test_refuses_data_without_meta_batches(self):
        model = self.compiled()
        ((train, _),) = batches(6, 1)
        with self.assertRaisesRegex(ValueError, "with_meta_batches"):
            model.fit(train[0], train[1], batch_size=BATCH, epochs=1, verbose=0)

    def test_refuses_meta_batches_nothing_uses(self):
        model = tanh_model()
        model.compile(optimizer="sgd", loss={"label": "mse", "aux": "mse"}, loss_weighting="dwa")
        with self.assertRaisesRegex(ValueError, "does not use them"):
            model.fit(task_data(batches(7, 1)), epochs=1, verbose=0)

    def test_plain_task_data_with_meta_is_evaluated_as_plain_data(self):
        model = self.compiled()
        ((train, meta),) = batches(8, 1)
        got = model.evaluate(task_data([(train, meta)]), verbose=0, return_dict=True)
        expected = model.evaluate(train[0], train[1], verbose=0, return_dict=True)
        self.assertAllClose(got["label_loss"], expected["label_loss"], atol=1e-6)


class AutoLambdaConfigTest(TestCase):
    def test_serialization(self):
        revived = self.run_serialization_test(
            AutoLambda(
                learning_rate=3e-4,
                initial_weight=0.2,
                meta_gradient="central_difference",
                fix_primary=True,
            )
        )
        self.assertEqual(revived.meta_gradient, "central_difference")
        self.assertEqual(revived.learning_rate, 3e-4)
        self.assertEqual(revived.initial_weight, 0.2)
        self.assertTrue(revived.fix_primary)

    def test_bad_arguments_are_refused(self):
        with self.assertRaisesRegex(ValueError, "learning_rate"):
            AutoLambda(learning_rate=0.0)
        with self.assertRaisesRegex(ValueError, "initial_weight"):
            AutoLambda(initial_weight=-1.0)
        with self.assertRaisesRegex(ValueError, "meta_gradient.*'forward'"):
            AutoLambda(meta_gradient="forward")

    def test_meta_update_is_adam_on_minus_alpha_h(self):
        method = AutoLambda(learning_rate=0.05, initial_weight=0.1)
        state = method.init(3)
        rng = np.random.default_rng(9)
        weights, m, v = np.full(3, 0.1), np.zeros(3), np.zeros(3)
        for step in range(1, 5):
            h, alpha = rng.normal(size=3), 0.3
            state = method.meta_update(state, h.astype("float32"), 0.3)
            weights, m, v = numpy_adam(weights, -alpha * h, m, v, step, 0.05)
            self.assertAllClose(state["weights"], weights, atol=1e-6, rtol=1e-5)


@requires_tensorflow
class MetaBatchDatasetTest(TestCase):
    def test_with_meta_batches_pairs_a_reshuffled_stream(self):
        import tensorflow as tf

        from keras_aux.models import with_meta_batches

        x = np.arange(20, dtype="float32").reshape(10, 2)
        y = {"label": x[:, :1], "aux": x[:, 1:]}
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(4)
        data = list(with_meta_batches(train, seed=1))
        self.assertEqual(len(data), 3)  # `train` sets the length
        for element, (bx, _) in zip(data, train):
            self.assertAllClose(element.primary[0], bx, atol=0)
            self.assertEqual(element.auxiliary, {})
            self.assertEqual(element.meta[0].shape, (4, 2))  # full batches only
        seen = np.concatenate([e.meta[0][:, 0] for e in data])
        self.assertTrue(set(seen) <= set(x[:, 0]))
        self.assertFalse(np.array_equal(seen, x[: len(seen), 0]))  # reshuffled
        with self.assertRaisesRegex(ValueError, "`meta` must be a tf.data.Dataset"):
            with_meta_batches(train, meta=[1, 2])

    def test_fit_on_with_meta_batches_and_zip_tasks_meta(self):
        import tensorflow as tf

        from keras_aux.models import with_meta_batches, zip_tasks

        rng = np.random.default_rng(10)
        x = rng.normal(size=(24, N_IN)).astype("float32")
        y = {t: rng.normal(size=(24, 1)).astype("float32") for t in ("label", "aux")}
        model = tanh_model()
        model.compile(
            optimizer="adam", loss={"label": "mse", "aux": "mse"}, loss_weighting=AutoLambda()
        )
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
        history = model.fit(with_meta_batches(train, seed=0), epochs=2, verbose=0)
        self.assertEqual(len(history.history["aux_weight"]), 2)
        primary = tf.data.Dataset.from_tensor_slices((x, y["label"])).batch(BATCH)
        auxiliary = {"aux": tf.data.Dataset.from_tensor_slices((x, y["aux"])).batch(BATCH)}
        meta = primary.shuffle(4, seed=0).repeat()
        model.fit(zip_tasks(primary, auxiliary, meta=meta), epochs=1, verbose=0)
        self.assertEqual(float(model.loss_weighting_state["adam_step"]), 12.0)
