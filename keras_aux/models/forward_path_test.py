"""The forward gradient path of `AuxiliaryModel` (`compile(gradient_path=...)`):
projection and unweighted cosine with global granularity from the primary
gradient, one directional derivative of the auxiliary losses and the update's
backward pass, a fixed number of passes whatever the number K of auxiliary
tasks. Checked against the per-task path and a NumPy computation, on the
current backend (the JAX tier runs this module with KERAS_BACKEND=jax).
"""

import os
from unittest import mock

import keras
import numpy as np

from keras_aux import censoring
from keras_aux.models import AuxiliaryModel
from keras_aux.testing import TestCase, requires_tensorflow_backend
from keras_aux.testing.censoring_reference import np_combine

N_IN, N_HIDDEN = 5, 4
MODES = ("projection", "unweighted_cosine")


def branched_model(num_aux, seed=0):
    """x → trunk h and branch b (linear); the primary head reads h + b, auxiliary
    task k reads h (k even) or h + b (k odd). So the branch is reached by the
    primary and the odd tasks only (with K = 1 by the primary alone), each
    auxiliary head by its task alone: the tasks share different variables
    with the primary."""
    x = keras.Input((N_IN,), name="x")
    h = keras.layers.Dense(N_HIDDEN, name="trunk")(x)
    b = keras.layers.Dense(N_HIDDEN, name="branch")(x)
    s = keras.layers.Add()([h, b])
    outputs = {"label": keras.layers.Dense(2, name="label")(s)}
    for k in range(num_aux):
        outputs[f"aux{k}"] = keras.layers.Dense(3, name=f"aux{k}")(s if k % 2 else h)
    model = AuxiliaryModel(x, outputs, primary="label")
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.weights]
    )
    return model


def numpy_gradients(w, x, targets):
    """{task: {variable path: gradient}} of each task's MSE, by hand."""
    h = x @ w["trunk/kernel"] + w["trunk/bias"]
    s = h + x @ w["branch/kernel"] + w["branch/bias"]
    grads = {}
    for task, y in targets.items():
        reads_branch = task == "label" or int(task[3:]) % 2 == 1
        z = s if reads_branch else h
        out = z @ w[f"{task}/kernel"] + w[f"{task}/bias"]
        d_out = 2.0 * (out - y) / out.size
        d_z = d_out @ w[f"{task}/kernel"].T
        grads[task] = {
            "trunk/kernel": x.T @ d_z,
            "trunk/bias": d_z.sum(0),
            f"{task}/kernel": z.T @ d_out,
            f"{task}/bias": d_out.sum(0),
        }
        if reads_branch:
            grads[task].update({"branch/kernel": x.T @ d_z, "branch/bias": d_z.sum(0)})
    return grads


def numpy_training(model, x, targets, lams, mode, alpha, steps, lr):
    """SGD steps of ``p + Σ_k λ_k G(a_k, M)`` with the moving average ``M`` of
    ``p``, in float64; returns the weights, the last average and the signs of
    every ``a_k·M`` met (over the variables ``a_k`` shares with ``p``)."""
    paths = [v.path for v in model.trainable_variables]
    w = {v.path: np.asarray(v, np.float64) for v in model.trainable_variables}
    average, signs = None, set()
    for _ in range(steps):
        grads = numpy_gradients(w, x, targets)
        primary = [grads["label"].get(p) for p in paths]
        auxiliary = [[grads[t].get(p) for p in paths] for t in targets if t != "label"]
        if average is None:
            average = [np.zeros(w[p].shape) if g is None else g for p, g in zip(paths, primary)]
        else:
            average = [
                m if g is None else alpha * g + (1 - alpha) * m for m, g in zip(average, primary)
            ]
        reference = [None if g is None else m for g, m in zip(primary, average)]
        for task in auxiliary:
            shared = [
                i for i, (p, a) in enumerate(zip(primary, task)) if p is not None and a is not None
            ]
            signs.add(np.sign(sum(float(np.sum(task[i] * reference[i])) for i in shared)))
        update = np_combine(primary, auxiliary, lams, mode, "global", reference=reference)
        w = {p: w[p] if u is None else w[p] - lr * u for p, u in zip(paths, update)}
    return [w[p] for p in paths], average, signs


def data(num_aux, n=16, seed=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_IN)).astype("float32")
    targets = {"label": rng.normal(size=(n, 2)).astype("float32")}
    for k in range(num_aux):
        targets[f"aux{k}"] = rng.normal(size=(n, 3)).astype("float32")
    return x, targets


def lambdas(num_aux):
    return [0.5 + 0.75 * k for k in range(num_aux)]


def train(num_aux, mode, alpha, path, steps, lr=0.2, **compile_kwargs):
    x, targets = data(num_aux)
    model = branched_model(num_aux)
    model.compile(
        keras.optimizers.SGD(lr),
        loss="mse",
        loss_weights={f"aux{k}": lam for k, lam in enumerate(lambdas(num_aux))},
        censoring=mode,
        ema_alpha=alpha,
        gradient_path=path,
        **compile_kwargs,
    )
    for _ in range(steps):
        model.train_on_batch(x, targets)
    return model


class ForwardPathTest(TestCase):
    def check(self, mode, num_aux, alphas=(1.0, 0.5), steps=3, lr=0.2, **compile_kwargs):
        """Forward path == per-task path == NumPy after ``steps`` SGD steps, the
        moving average included; returns the signs of the ``a_k·M`` met."""
        x, targets = data(num_aux)
        signs = set()
        for alpha in alphas:
            what = f"{mode} K={num_aux} alpha={alpha} {compile_kwargs}"
            forward = train(num_aux, mode, alpha, "forward", steps, lr, **compile_kwargs)
            per_task = train(num_aux, mode, alpha, "per_task", steps, lr, **compile_kwargs)
            self.assertEqual(forward.gradient_path, "forward")
            self.assertEqual(per_task.gradient_path, "per_task")
            expected, average, met = numpy_training(
                branched_model(num_aux), x, targets, lambdas(num_aux), mode, alpha, steps, lr
            )
            signs |= met
            for v, u, want in zip(
                forward.trainable_variables, per_task.trainable_variables, expected
            ):
                self.assertAllClose(v, u, atol=1e-6, rtol=1e-5, msg=f"{what} {v.path}")
                self.assertAllClose(v, want, atol=1e-6, rtol=1e-5, msg=f"{what} {v.path}")
            if alpha < 1:
                for model in (forward, per_task):
                    state = model.censor_state
                    self.assertEqual(int(state["started"]), 1)
                    for got, want in zip(state["average"], average):
                        self.assertAllClose(got, want, atol=1e-6, rtol=1e-5, msg=what)
        return signs

    def check_both_signs(self, mode, num_aux, **kwargs):
        # Both sides of the censoring rule are exercised: a conflict and an agreement.
        self.assertEqual(self.check(mode, num_aux, jit_compile=True, **kwargs), {-1.0, 1.0})

    # K = 1: the branch is reached by the primary task alone; K = 4: by some auxiliary
    # tasks (the odd ones) and not others.
    def test_projection_one_auxiliary_task(self):
        self.check_both_signs("projection", 1)

    def test_projection_four_auxiliary_tasks(self):
        self.check_both_signs("projection", 4)

    def test_unweighted_cosine_one_auxiliary_task(self):
        self.check_both_signs("unweighted_cosine", 1)

    def test_unweighted_cosine_four_auxiliary_tasks(self):
        self.check_both_signs("unweighted_cosine", 4)

    def test_run_eagerly(self):
        for mode in MODES:
            self.check(mode, 4, alphas=(0.5,), steps=2, run_eagerly=True)


def compiled(num_aux, censoring="projection", **kwargs):
    model = branched_model(num_aux)
    model.compile("sgd", loss="mse", censoring=censoring, **kwargs)
    return model


class GradientPathChoiceTest(TestCase):
    def test_auto_takes_the_forward_path_where_it_serves_and_k_is_at_least_two(self):
        forward = [
            compiled(2),
            compiled(4, ema_alpha=0.1),
            compiled(2, "unweighted_cosine"),
            compiled(3, "unweighted_cosine", ema_alpha=0.5),
            compiled(2, censoring.Projection()),
        ]
        for model in forward:
            self.assertEqual(model.gradient_path, "forward", msg=repr(model.censor))
        per_task = [
            compiled(1),  # one auxiliary task: the per-task path takes fewer passes
            compiled(1, "unweighted_cosine", ema_alpha=0.5),
            compiled(2, granularity="per_variable"),
            compiled(2, "weighted_cosine"),
            compiled(2, "parameter_wise"),
            compiled(2, "multitask"),
            compiled(2, "pcgrad"),
            compiled(2, censoring.PCGrad(censoring.Projection())),
            compiled(2, track_gradient_cosine=True),
            compiled(4, gradient_path="per_task"),
        ]
        for model in per_task:
            self.assertEqual(model.gradient_path, "per_task", msg=repr(model.censor))

    def test_forward_is_refused_where_it_cannot_serve(self):
        for kwargs in (
            dict(censoring="weighted_cosine"),
            dict(censoring="parameter_wise"),
            dict(censoring="pcgrad"),
            dict(censoring="projection", granularity="per_variable"),
        ):
            with self.assertRaisesRegex(ValueError, "cannot serve.*projection and unweighted"):
                compiled(2, gradient_path="forward", **kwargs)
        with self.assertRaisesRegex(ValueError, "track_gradient_cosine=False"):
            compiled(2, gradient_path="forward", track_gradient_cosine=True)
        with self.assertRaisesRegex(ValueError, r"Unknown `gradient_path` 'fast'.*'per_task'"):
            compiled(2, gradient_path="fast")

    def test_logs_the_forward_path_leaves_out_and_a_saved_model_keeps_its_path(self):
        x, targets = data(2, n=32)
        model = compiled(2)
        history = model.fit(x, targets, batch_size=16, epochs=2, verbose=0).history
        self.assertEqual(
            sorted(history), ["aux0_loss", "aux1_loss", "label_loss", "loss"]
        )  # no <aux>_cosine: the forward path never forms a_k
        self.assertTrue(all(np.isfinite(v).all() for v in history.values()))
        self.assertEqual(model.get_compile_config()["gradient_path"], "auto")
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        self.assertEqual(keras.saving.load_model(path).gradient_path, "forward")
        one = compiled(1)
        self.assertIn(
            "aux0_cosine",
            one.fit(x, {t: targets[t] for t in ("label", "aux0")}, epochs=1, verbose=0).history,
        )
        forced = compiled(2, gradient_path="per_task")
        forced.save(path)
        self.assertEqual(keras.saving.load_model(path).gradient_path, "per_task")


class FixedPassesTest(TestCase):
    """The forward path takes the same number of passes whatever K: a silent
    fall-back to one backward pass per task fails here."""

    @requires_tensorflow_backend
    def test_tensorflow_takes_the_same_backward_passes_whatever_k(self):
        import tensorflow as tf

        original = tf.GradientTape.gradient
        calls = []

        def counting(tape, target, *args, **kwargs):
            calls.append(target)
            return original(tape, target, *args, **kwargs)

        def count(num_aux, mode, path):
            x, targets = data(num_aux)
            model = compiled(num_aux, mode, gradient_path=path, run_eagerly=True)
            # track_gradient_cosine is off on the forward path; the per-task path
            # also counts without it.
            model.train_on_batch(x, targets)  # the first step reads what each task reaches
            calls.clear()
            with mock.patch.object(tf.GradientTape, "gradient", counting):
                model.train_on_batch(x, targets)
            return len(calls)

        for num_aux in (2, 4):
            # The primary gradient, the derivatives along m and the update (for
            # the unweighted cosine, the kept total's and the weighted total's).
            self.assertEqual(count(num_aux, "projection", "forward"), 3)
            self.assertEqual(count(num_aux, "unweighted_cosine", "forward"), 4)
            self.assertEqual(count(num_aux, "projection", "per_task"), num_aux + 1)

    def test_the_compiled_step_costs_the_same_flops_whatever_k(self):
        if keras.backend.backend() != "jax":
            self.skipTest("XLA's cost analysis of the JAX step; TensorFlow counts passes above")

        def flops(num_aux, path):
            # A wide trunk and one-unit heads: the trunk's passes dominate.
            model, x, y = heads_model(num_aux, width=128, head_units=1, n_in=32, batch=32)
            model.compile("sgd", loss="mse", censoring="projection", gradient_path=path)
            analysis = compiled_train_step(model, x, y).cost_analysis()
            analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
            return analysis["flops"]

        forward = flops(8, "forward") / flops(2, "forward")
        per_task = flops(8, "per_task") / flops(2, "per_task")
        self.assertLess(forward, 1.2)
        self.assertGreater(per_task, 2.0)

    def test_per_task_gradients_cost_one_head_pass_each(self):
        # Wide heads: transposing every task's output for each task gradient (a one-hot
        # cotangent) would cost O(K²) head passes, 9.1× the flops from K = 4 to 16.
        if keras.backend.backend() != "jax":
            self.skipTest("XLA's cost analysis of the JAX step; TensorFlow counts passes above")

        def flops(num_aux):
            model, x, y = heads_model(num_aux, width=64, head_units=64, n_in=64, batch=32)
            model.compile("sgd", loss="mse", censoring="pcgrad")
            analysis = compiled_train_step(model, x, y).cost_analysis()
            analysis = analysis[0] if isinstance(analysis, (list, tuple)) else analysis
            return analysis["flops"]

        # 17 backward passes against 5: linear growth is about 3.4×.
        self.assertLess(flops(16) / flops(4), 4.0)

    def test_the_compiled_step_holds_about_what_one_backward_pass_holds(self):
        # XLA's temporary buffers of the step (the state donated, as Keras does), against
        # one backward pass of the weighted total on the same model: without its
        # scheduling barrier the forward path ran the auxiliary heads' part of the last
        # backward pass early, beside the primary gradient's: 1.6× here, 0.95× with it.
        if keras.backend.backend() != "jax":
            self.skipTest("XLA's memory analysis of the JAX step")

        def temp_bytes(**compile_kwargs):
            model, x, y = heads_model(8, width=32, head_units=32, n_in=32, batch=32)
            model.compile("adam", loss="mse", **compile_kwargs)
            return compiled_train_step(model, x, y).memory_analysis().temp_size_in_bytes

        one_pass = temp_bytes(censoring="multitask", track_gradient_cosine=False)
        forward = temp_bytes(censoring="projection", gradient_path="forward")
        self.assertLess(forward / one_pass, 1.25)


def heads_model(num_aux, width, head_units, n_in, batch=64):
    """A two-layer trunk of ``width`` units and ``num_aux + 1`` Dense heads of
    ``head_units`` (MSE), with a batch of ``batch`` examples."""
    x_in = keras.Input((n_in,))
    h = keras.layers.Dense(width)(keras.layers.Dense(width)(x_in))
    outputs = {"label": keras.layers.Dense(head_units, name="label")(h)}
    outputs.update(
        {f"aux{k}": keras.layers.Dense(head_units, name=f"aux{k}")(h) for k in range(num_aux)}
    )
    model = AuxiliaryModel(x_in, outputs, primary="label")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, n_in)).astype("float32")
    y = {t: rng.normal(size=(batch, head_units)).astype("float32") for t in outputs}
    return model, x, y


def compiled_train_step(model, x, y):
    """The model's JAX train step on ``(x, y)``, compiled by XLA as Keras compiles
    it (its state donated), after one step has built the optimizer."""
    import jax

    model.train_on_batch(x, y)
    state = tuple(
        [v.value for v in variables]
        for variables in (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )
    )
    return jax.jit(model.train_step, donate_argnums=0).lower(state, (x, y)).compile()


class HalvedGradient(keras.layers.Layer):
    """The identity, whose gradient is halved: a `keras.ops.custom_gradient`
    (on JAX a ``custom_vjp`` function, without forward mode)."""

    def call(self, x):
        @keras.ops.custom_gradient
        def halved(x):
            def grad(*args, upstream=None):
                upstream = args[0] if upstream is None else upstream
                return upstream * 0.5

            return keras.ops.multiply(x, 1.0), grad

        return halved(x)


class CustomGradientTest(TestCase):
    """A custom gradient in the trunk: JAX's forward path cannot linearize it."""

    def train(self, path, steps=2):
        x_in = keras.Input((N_IN,))
        h = HalvedGradient()(keras.layers.Dense(N_HIDDEN, activation="tanh", name="trunk")(x_in))
        outputs = {"label": keras.layers.Dense(2, name="label")(h)}
        outputs.update({f"aux{k}": keras.layers.Dense(3, name=f"aux{k}")(h) for k in range(2)})
        model = AuxiliaryModel(x_in, outputs, primary="label")
        rng = np.random.default_rng(0)
        model.set_weights([rng.normal(size=w.shape).astype("float32") for w in model.weights])
        model.compile(
            keras.optimizers.SGD(0.1), loss="mse", censoring="projection", gradient_path=path
        )
        x, targets = data(2)
        for _ in range(steps):
            model.train_on_batch(x, targets)
        return model

    def test_auto_trains_as_the_per_task_path(self):
        on_jax = keras.backend.backend() == "jax"
        if on_jax:
            with self.assertWarnsRegex(UserWarning, "custom_vjp"):
                auto = self.train("auto")
        else:
            auto = self.train("auto")
        # TensorFlow's reverse over reverse differentiates the custom gradient.
        self.assertEqual(auto.gradient_path, "per_task" if on_jax else "forward")
        per_task = self.train("per_task")
        for v, u in zip(auto.trainable_variables, per_task.trainable_variables):
            self.assertAllClose(v, u, atol=1e-6, rtol=1e-5, msg=v.path)

    def test_forward_asked_for_is_refused_on_jax(self):
        if keras.backend.backend() != "jax":
            self.skipTest("TensorFlow's forward path differentiates custom gradients")
        with self.assertRaisesRegex(ValueError, "gradient_path='forward' cannot differentiate"):
            self.train("forward", steps=1)


class SkippedStepTest(TestCase):
    def setUp(self):
        super().setUp()
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_float16")
        self.addCleanup(keras.mixed_precision.set_global_policy, previous)

    def test_a_skipped_step_leaves_the_moving_average_as_it_was(self):
        x = np.random.default_rng(0).normal(size=(8, N_IN)).astype("float32")
        finite = {"label": np.ones((8, 2), "float32")}
        finite.update({f"aux{k}": np.zeros((8, 3), "float32") for k in range(2)})
        overflow = dict(finite, label=np.full((8, 2), 1e9, "float32"))
        states = {}
        for path in ("forward", "per_task"):
            model = compiled(2, ema_alpha=0.5, gradient_path=path)
            self.assertIsInstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
            model.train_on_batch(x, overflow)  # float16 overflow: the step is skipped
            self.assertEqual(int(model.optimizer.iterations.numpy()), 0)
            self.assertEqual(int(model.censor_state["started"]), 0)
            for average in model.censor_state["average"]:
                np.testing.assert_array_equal(np.asarray(average), 0.0)
            model.train_on_batch(x, finite)
            model.train_on_batch(x, finite)
            self.assertEqual(int(model.optimizer.iterations.numpy()), 2)
            states[path] = [np.asarray(a, np.float32) for a in model.censor_state["average"]]
        for got, want in zip(states["forward"], states["per_task"]):
            self.assertAllClose(got, want, atol=1e-3, rtol=1e-2)  # float16 arithmetic
        self.assertTrue(any(np.abs(a).max() > 0 for a in states["forward"]))
