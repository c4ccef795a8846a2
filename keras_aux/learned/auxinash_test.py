"""Tests of `AuxiNash` (Shamsian et al. 2023) against NumPy written from the
formulas of the reference code (AvivSham/auxinash: the bargaining solution of
``AuxiNash`` in ``methods/weight_methods.py``, ``auxinash_hyperstep``,
``Hypergrad``): the per-step weights against an independent SciPy root of
``αᵢ (Gα)ᵢ = cᵢ``; real `AuxiliaryModel` steps with their hyper-steps
against an explicit-Hessian NumPy recomputation; `fit`, saving mid-fit and
resuming; serialization; the refusals.

Backend-neutral except the tf.data test: the JAX tier runs it under JAX."""

import os

import keras
import numpy as np
import scipy.optimize

from keras_aux.censoring.aggregation.solvers import solve_power_equation
from keras_aux.learned import AuxiNash
from keras_aux.learned.auto_lambda_test import task_data
from keras_aux.learned.metabalance_test import tensors
from keras_aux.models.backends_test import N_HIDDEN, N_IN, linear_model
from keras_aux.testing import TestCase, requires_tensorflow

AUX = ("recon", "extra")
LAMS = {"recon": 0.5, "extra": 2.0}
BATCH = 6


def numpy_bargaining(gram, powers):
    """The positive root of ``αᵢ (Gα)ᵢ = cᵢ`` by SciPy: the minimiser of the
    convex ``½ αᵀGα − Σ cᵢ log αᵢ`` (L-BFGS-B on α > 0), polished by a root
    finder on the equation itself."""

    def objective(alpha):
        return 0.5 * alpha @ gram @ alpha - powers @ np.log(alpha), gram @ alpha - powers / alpha

    start = scipy.optimize.minimize(
        objective,
        np.ones(len(powers)),
        jac=True,
        method="L-BFGS-B",
        bounds=[(1e-12, None)] * len(powers),
        options={"ftol": 1e-15, "gtol": 1e-12, "maxiter": 10000},
    ).x

    def residual(alpha):
        return alpha * (gram @ alpha) - powers

    alpha = scipy.optimize.root(residual, start, method="hybr", tol=1e-14).x
    assert np.all(alpha > 0) and np.max(np.abs(residual(alpha))) < 1e-10, alpha
    return alpha


def trunk_jacobian(params, x, task):
    """``∂ out / ∂ (trunk kernel, trunk bias)`` of a head of the linear model,
    one row per output entry (batch-major), one column per trunk parameter
    (the kernel row-major, then the bias)."""
    head = params[f"{task}/kernel"]  # (N_HIDDEN, outputs)
    n, outputs = x.shape[0], head.shape[1]
    jacobian = np.zeros((n, outputs, N_IN * N_HIDDEN + N_HIDDEN))
    for o in range(outputs):
        # out[n, o] = Σ_{a,h} x[n, a] W[a, h] V[h, o] + Σ_h b[h] V[h, o] + c[o]
        jacobian[:, o, : N_IN * N_HIDDEN] = (x[:, :, None] * head[None, :, o]).reshape(n, -1)
        jacobian[:, o, N_IN * N_HIDDEN :] = head[:, o]
    return jacobian.reshape(n * outputs, -1)


def forward(params, x, task):
    hidden = x @ params["trunk/kernel"] + params["trunk/bias"]
    return hidden, hidden @ params[f"{task}/kernel"] + params[f"{task}/bias"]


def task_gradients(params, x, targets, task):
    """The MSE's gradient ``(trunk vector, {head name: gradient})`` and its trunk Hessian."""
    hidden, out = forward(params, x, task)
    residual = (out - targets[task]).reshape(-1)
    jacobian = trunk_jacobian(params, x, task)
    size = residual.size
    d_out = 2.0 * (out - targets[task]) / size
    head = {f"{task}/kernel": hidden.T @ d_out, f"{task}/bias": d_out.sum(0)}
    # Linear in the trunk's parameters: the Hessian is exactly 2/size JᵀJ.
    return 2.0 / size * jacobian.T @ residual, head, 2.0 / size * jacobian.T @ jacobian


class NumpyAuxiNash:
    """AuxiNash as the reference computes it, in float64, on the linear model:
    Nash weights with powers c on the trunk's Gram matrix, the update clipped
    to norm 1 on the trunk; every N steps the powers' hyper-step from
    ``Hypergrad.grad`` (Neumann series without the final η) and ``dα/dc``."""

    def __init__(self, n_tasks, every, lr, momentum, eta, terms, clip=1.0, max_norm=1.0):
        self.powers = np.ones(n_tasks)
        self.velocity = np.zeros(n_tasks)
        self.steps = 0
        self.every, self.lr, self.mu, self.eta, self.terms = every, lr, momentum, eta, terms
        self.clip, self.max_norm = clip, max_norm

    def step(self, params, x, targets, meta, lams):
        """The update ``{name: gradient}``; advances the state."""
        tasks = ["label", *AUX]
        scales = np.array([1.0] + [lams[t] for t in AUX])
        rows, heads, hessians = [], {}, []
        for task, scale in zip(tasks, scales):
            trunk, head, hessian = task_gradients(params, x, targets, task)
            rows.append(scale * trunk)
            heads.update({k: scale * v for k, v in head.items()})
            hessians.append(hessian)
        rows = np.stack(rows)
        gram = rows @ rows.T
        alpha = numpy_bargaining(gram, self.powers)
        self.alpha = alpha
        direction = alpha @ rows
        norm = np.linalg.norm(direction)
        if norm > self.max_norm:
            direction *= self.max_norm / norm
        update = {
            "trunk/kernel": direction[: N_IN * N_HIDDEN].reshape(N_IN, N_HIDDEN),
            "trunk/bias": direction[N_IN * N_HIDDEN :],
        }
        for i, task in enumerate(tasks):
            for name in (f"{task}/kernel", f"{task}/bias"):
                update[name] = alpha[i] * heads[name]
        self.steps += 1
        if self.steps % self.every == 0:
            # Hypergrad.grad: dL_val/dW, the Neumann sum p, v3 = ∂/∂α ⟨∇_W L_train, p⟩.
            meta_gradient = task_gradients(params, meta[0], {"label": meta[1]}, "label")[0]
            hessian = sum(a * s * h for a, s, h in zip(alpha, scales, hessians))
            v = p = meta_gradient
            for _ in range(self.terms):
                v = v - self.eta * hessian @ v
                p = p + v
            v3 = rows @ p
            # auxinash_hyperstep: hyper_grad = -(v3 @ dα/dp), dα/dp = (G + Λ0)⁻¹ Λ1.
            jacobian = np.linalg.inv(gram + np.diag(self.powers / alpha**2)) @ np.diag(1 / alpha)
            hypergradient = -(v3 @ jacobian)
            total = np.linalg.norm(hypergradient)
            hypergradient *= min(1.0, self.clip / (total + 1e-6))  # clip_grad_norm_
            self.velocity = self.mu * self.velocity + hypergradient  # torch SGD momentum
            powers = np.clip(self.powers - self.lr * self.velocity, 1e-4, None)
            self.powers = powers / powers.sum() * len(powers)  # set_p
        return update


def steps_data(steps, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(steps):
        x = rng.normal(size=(BATCH, N_IN)).astype("float32")
        y = {
            "label": rng.normal(size=(BATCH, 2)).astype("float32"),
            "recon": rng.normal(scale=3.0, size=(BATCH, 3)).astype("float32"),
            "extra": rng.normal(scale=0.3, size=(BATCH, 3)).astype("float32"),
        }
        xm = rng.normal(size=(BATCH, N_IN)).astype("float32")
        ym = rng.normal(size=(BATCH, 2)).astype("float32")
        out.append(((x, y), (xm, ym)))
    return out


class AuxiNashUpdateTest(TestCase):
    def test_weights_solve_the_asymmetric_bargaining_equation(self):
        rng = np.random.default_rng(0)
        for powers in (
            [1.0, 1.0, 1.0, 1.0],
            [2.2, 0.3, 1.4, 0.1],
            [3.7, 0.1, 0.1, 0.1],
            [3.9997, 1e-4, 1e-4, 1e-4],  # the floor `min_power`
        ):
            matrix = rng.normal(size=(4, 30)) * np.array([[1.0], [3.0], [0.2], [1.5]])
            gram = matrix @ matrix.T
            expected = numpy_bargaining(gram, np.array(powers))
            got = solve_power_equation(
                keras.ops.convert_to_tensor(gram, "float32"), powers=np.array(powers, "float32")
            )
            self.assertAllClose(got, expected, atol=1e-6, rtol=1e-5, msg=str(powers))

    def test_update_is_the_clipped_nash_combination(self):
        rng = np.random.default_rng(1)
        shapes = [(3, 2), (4,), (2,), (5,)]
        # Variables 0, 1 shared; 2 the primary's head; 3 the auxiliary tasks' head.
        primary = [rng.normal(size=s) for s in shapes[:3]] + [None]
        first = [rng.normal(size=s) for s in shapes[:2]] + [None, rng.normal(size=shapes[3])]
        second = [rng.normal(size=s) for s in shapes[:2]] + [None, rng.normal(size=shapes[3])]
        lams = [0.5, 3.0]
        powers = np.array([1.9, 0.6, 0.5])
        for max_norm in (1.0, 0.0):
            method = AuxiNash(num_auxiliary=2, max_norm=max_norm)
            state = method.init(tensors(primary))
            state["powers"] = keras.ops.convert_to_tensor(powers, "float32")
            update, new_state = method.update(
                tensors(primary), [tensors(first), tensors(second)], lams, state
            )
            rows = np.stack(
                [
                    s * np.concatenate([g[0].ravel(), g[1]])
                    for s, g in zip([1.0] + lams, [primary, first, second])
                ]
            )
            gram = rows @ rows.T
            alpha = numpy_bargaining(gram, powers)
            direction = alpha @ rows
            # ‖Σ αᵢ gᵢ‖² = αᵀGα = Σ cᵢ = 3: clipped to norm 1.
            self.assertAllClose(np.sum(direction**2), powers.sum(), rtol=1e-5)
            if max_norm:
                direction /= np.linalg.norm(direction)
            self.assertAllClose(new_state["alpha"], alpha, atol=1e-6, rtol=1e-5)
            self.assertAllClose(new_state["gram"], gram, atol=1e-5, rtol=1e-5)
            self.assertAllClose(update[0], direction[:6].reshape(3, 2), atol=1e-6, rtol=1e-5)
            self.assertAllClose(update[1], direction[6:], atol=1e-6, rtol=1e-5)
            self.assertAllClose(update[2], alpha[0] * primary[2], atol=1e-6, rtol=1e-5)
            head = alpha[1] * lams[0] * first[3] + alpha[2] * lams[1] * second[3]
            self.assertAllClose(update[3], head, atol=1e-6, rtol=1e-5)
            self.assertEqual(int(new_state["step"]), 1)
            self.assertAllClose(new_state["powers"], powers, atol=0)

    def test_meta_update_is_the_reference_hyper_step(self):
        rng = np.random.default_rng(2)
        method = AuxiNash(num_auxiliary=2, learning_rate=0.3, momentum=0.9)
        matrix = rng.normal(size=(3, 8))
        gram = matrix @ matrix.T
        powers = np.array([1.5, 1.2, 0.3])
        alpha = numpy_bargaining(gram, powers)
        velocity = np.array([0.2, -0.1, 0.05])
        products = np.array([3.0, -2.0, 1.0])
        state = {
            "powers": powers,
            "momentum": velocity,
            "step": np.int32(25),
            "alpha": alpha,
            "gram": gram,
        }
        state = {k: keras.ops.convert_to_tensor(v) for k, v in state.items()}
        state = {
            k: keras.ops.cast(v, "int32" if k == "step" else "float32") for k, v in state.items()
        }
        got = method.meta_update(state, keras.ops.convert_to_tensor(products, "float32"))
        jacobian = np.linalg.inv(gram + np.diag(powers / alpha**2)) @ np.diag(1 / alpha)
        hypergradient = -(products @ jacobian)
        hypergradient *= min(1.0, 1.0 / (np.linalg.norm(hypergradient) + 1e-6))
        new_velocity = 0.9 * velocity + hypergradient
        new_powers = np.clip(powers - 0.3 * new_velocity, 1e-4, None)
        new_powers = new_powers / new_powers.sum() * 3
        self.assertAllClose(got["momentum"], new_velocity, atol=1e-5, rtol=1e-5)
        self.assertAllClose(got["powers"], new_powers, atol=1e-5, rtol=1e-5)
        self.assertAllClose(np.sum(got["powers"]), 3.0, rtol=1e-6)
        self.assertTrue(bool(method.meta_due(state)))
        # The implicit derivative is the finite difference of the bargaining solution.
        epsilon = 1e-6
        for j in range(3):
            moved = powers.copy()
            moved[j] += epsilon
            column = (numpy_bargaining(gram, moved) - alpha) / epsilon
            self.assertAllClose(jacobian[:, j], column, atol=1e-4, rtol=1e-4)

    def test_bad_arguments_are_refused(self):
        with self.assertRaisesRegex(ValueError, "`update_every` must be an integer >= 1; got 0"):
            AuxiNash(update_every=0)
        with self.assertRaisesRegex(ValueError, "`learning_rate` must be > 0; got -1"):
            AuxiNash(learning_rate=-1.0)
        with self.assertRaisesRegex(ValueError, r"`momentum` must be in \[0, 1\); got 1.0"):
            AuxiNash(momentum=1.0)
        with self.assertRaisesRegex(ValueError, "`num_auxiliary`"):
            AuxiNash(num_auxiliary=0)
        method = AuxiNash(num_auxiliary=1)
        grads = tensors([np.ones(3)])
        with self.assertRaisesRegex(ValueError, "num_auxiliary=1 .* has 2: pass num_auxiliary=2"):
            method.update(grads, [grads, grads], [1.0, 1.0], method.init(grads))
        apart = tensors([np.ones(3), None])
        head = tensors([None, np.ones(2)])
        with self.assertRaisesRegex(ValueError, "no auxiliary task reaches a variable"):
            method.update(apart, [head], [1.0], method.init(apart))

    def test_serialization(self):
        method = AuxiNash(num_auxiliary=2, update_every=5, learning_rate=0.01, max_norm=0.0)
        revived = self.run_serialization_test(method)
        self.assertEqual(revived.get_config(), method.get_config())
        self.assertIs(keras.saving.get_registered_object("keras_aux.learned>AuxiNash"), AuxiNash)


def compiled(seed=0, **options):
    """The linear model with two auxiliary tasks, SGD(0.1), λ = LAMS and AuxiNash."""
    model = linear_model(seed=seed, aux_tasks=AUX)
    model.compile(
        keras.optimizers.SGD(0.1),
        loss="mse",
        loss_weights=LAMS,
        censoring=AuxiNash(num_auxiliary=2, **options),
    )
    return model


class AuxiNashModelTest(TestCase):
    def test_steps_and_hyper_steps_match_numpy(self):
        # η = 0.05 (not 1e-4) so the Hessian terms weigh in the comparison.
        settings = dict(update_every=2, learning_rate=0.5, momentum=0.9)
        model = compiled(neumann_learning_rate=0.05, **settings)
        reference = NumpyAuxiNash(3, 2, 0.5, 0.9, eta=0.05, terms=3)
        params = {v.path: np.asarray(v, np.float64) for v in model.trainable_variables}
        pairs = steps_data(4)
        history = model.fit(task_data(pairs), epochs=1, steps_per_epoch=4, verbose=0)
        del history
        # Replay in NumPy and compare the end state, then each step one at a time.
        fresh = compiled(neumann_learning_rate=0.05, **settings)
        for step, ((x, y), meta) in enumerate(pairs):
            update = reference.step(params, x.astype(np.float64), y, meta, LAMS)
            params = {name: value - 0.1 * update[name] for name, value in params.items()}
            fresh.fit(task_data([((x, y), meta)]), epochs=1, steps_per_epoch=1, verbose=0)
            state = fresh.censor_state
            msg = f"step {step + 1}"
            self.assertAllClose(state["alpha"], reference.alpha, atol=1e-5, rtol=1e-5, msg=msg)
            self.assertAllClose(state["powers"], reference.powers, atol=1e-5, rtol=1e-5, msg=msg)
            self.assertAllClose(
                state["momentum"], reference.velocity, atol=1e-5, rtol=1e-5, msg=msg
            )
            for v in fresh.trainable_variables:
                self.assertAllClose(v, params[v.path], atol=1e-5, rtol=1e-5, msg=f"{msg} {v.path}")
        self.assertFalse(np.allclose(reference.powers, 1.0))  # the powers did move
        for key in ("powers", "momentum", "alpha", "step"):
            self.assertAllClose(model.censor_state[key], fresh.censor_state[key], atol=1e-6)

    def test_the_hessian_terms_matter(self):
        # Without the Hessian (η → 0) the hyper-step differs: the test above sees H.
        pairs = steps_data(2)
        powers = []
        for eta in (0.05, 1e-12):
            model = compiled(neumann_learning_rate=eta, update_every=2, learning_rate=0.5)
            model.fit(task_data(pairs), epochs=1, steps_per_epoch=2, verbose=0)
            powers.append(np.asarray(model.censor_state["powers"]))
        self.assertGreater(np.max(np.abs(powers[0] - powers[1])), 1e-4)

    def test_compiled_and_eager_steps_agree(self):
        # The hyper-step's condition is traced (XLA on TensorFlow, jit on JAX) or run eagerly.
        powers = []
        for options in (dict(jit_compile=True), dict(run_eagerly=True)):
            model = linear_model(aux_tasks=AUX)
            model.compile(
                keras.optimizers.SGD(0.1),
                loss="mse",
                loss_weights=LAMS,
                censoring=AuxiNash(num_auxiliary=2, update_every=2, learning_rate=0.5),
                **options,
            )
            model.fit(task_data(steps_data(4)), epochs=1, steps_per_epoch=4, verbose=0)
            powers.append(np.asarray(model.censor_state["powers"]))
        self.assertFalse(np.allclose(powers[0], 1.0))
        self.assertAllClose(powers[0], powers[1], atol=1e-6, rtol=1e-5)

    def test_fit_logs_powers_and_weights_and_resumes_bit_identically(self):
        pairs = steps_data(4, seed=3)
        settings = dict(update_every=3, learning_rate=0.5)
        straight = compiled(seed=2, **settings)
        history = straight.fit(task_data(pairs, repeat=3), epochs=3, steps_per_epoch=4, verbose=0)
        for name in ("primary", *AUX):
            for kind in ("power", "weight"):
                values = history.history[f"{name}_auxinash_{kind}"]
                self.assertEqual(len(values), 3)
                self.assertTrue(np.all(np.asarray(values) > 0))
        self.assertAllClose(
            [history.history[f"{n}_auxinash_power"][-1] for n in ("primary", *AUX)],
            straight.censor_state["powers"],
            atol=1e-6,
        )
        self.assertEqual(int(straight.censor_state["step"]), 12)
        # Evaluation reads the training batches' targets and ignores the meta batches.
        scores = straight.evaluate(task_data(pairs[:1]), steps=1, verbose=0, return_dict=True)
        plain = straight.evaluate(*pairs[0][0], verbose=0, return_dict=True)
        self.assertAllClose(scores["label_loss"], plain["label_loss"], atol=1e-6)
        self.assertEqual(int(straight.censor_state["step"]), 12)

        first = compiled(seed=2, **settings)
        first.fit(task_data(pairs), epochs=1, steps_per_epoch=4, verbose=0)
        path = os.path.join(self.get_temp_dir(), "auxinash.keras")
        first.save(path)
        resumed = keras.saving.load_model(path)
        self.assertIsInstance(resumed.censor, AuxiNash)
        self.assertEqual(resumed.censor.get_config(), first.censor.get_config())
        for key, value in first.censor_state.items():
            np.testing.assert_array_equal(np.asarray(resumed.censor_state[key]), np.asarray(value))
        # 4 steps, a hyper-step every 3: saved between two, with momentum held.
        self.assertEqual(int(resumed.censor_state["step"]), 4)
        self.assertFalse(np.allclose(resumed.censor_state["momentum"], 0.0))
        resumed.fit(task_data(pairs, repeat=2), epochs=2, steps_per_epoch=4, verbose=0)
        for key, value in straight.censor_state.items():
            self.assertAllClose(resumed.censor_state[key], value, atol=1e-6, rtol=1e-6)
        for a, b in zip(resumed.get_weights(), straight.get_weights(), strict=True):
            self.assertAllClose(a, b, atol=1e-6, rtol=1e-6)

    def test_a_step_with_non_finite_gradients_leaves_the_state_untouched(self):
        model = compiled(update_every=1)
        pairs = steps_data(2)
        model.fit(task_data(pairs[:1]), epochs=1, steps_per_epoch=1, verbose=0)
        before = {k: np.asarray(v) for k, v in model.censor_state.items()}
        self.assertFalse(np.allclose(before["powers"], 1.0))
        ((x, y), meta) = pairs[1]
        bad = dict(y, label=np.full_like(y["label"], np.nan))
        model.fit(task_data([((x, bad), meta)]), epochs=1, steps_per_epoch=1, verbose=0)
        for key, value in model.censor_state.items():
            np.testing.assert_array_equal(np.asarray(value), before[key])

    def test_refuses_data_without_meta_batches(self):
        model = compiled()
        ((x, y), _) = steps_data(1)[0]
        with self.assertRaisesRegex(ValueError, "censoring=AuxiNash.*with_meta_batches"):
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)

    def test_refuses_a_loss_weighting_beside_it(self):
        model = linear_model(aux_tasks=AUX)
        model.compile(
            "sgd", loss="mse", censoring=AuxiNash(num_auxiliary=2), loss_weighting="uncertainty"
        )
        with self.assertRaisesRegex(ValueError, "learns the task weights itself"):
            model.fit(task_data(steps_data(1)), epochs=1, steps_per_epoch=1, verbose=0)

    def test_refuses_loss_scaling(self):
        model = linear_model(aux_tasks=AUX)
        model.compile(
            keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()),
            loss="mse",
            censoring=AuxiNash(num_auxiliary=2),
        )
        with self.assertRaisesRegex(ValueError, "mixed precision's loss scaling"):
            model.fit(task_data(steps_data(1)), epochs=1, steps_per_epoch=1, verbose=0)

    def test_refuses_a_task_count_mismatch(self):
        model = linear_model(aux_tasks=AUX)
        model.compile("sgd", loss="mse", censoring=AuxiNash(num_auxiliary=1))
        with self.assertRaisesRegex(ValueError, "num_auxiliary=1 .* has 2"):
            model.fit(task_data(steps_data(1)), epochs=1, steps_per_epoch=1, verbose=0)

    def test_meta_batches_for_another_censoring_are_refused(self):
        model = linear_model(aux_tasks=AUX)
        model.compile("sgd", loss="mse", censoring="projection")
        with self.assertRaisesRegex(ValueError, "does not use them, nor does censoring=.*AuxiNash"):
            model.fit(task_data(steps_data(1)), epochs=1, steps_per_epoch=1, verbose=0)


@requires_tensorflow
class AuxiNashHeldOutTest(TestCase):
    def test_fit_with_a_held_out_meta_split(self):
        import tensorflow as tf

        from keras_aux.models import with_meta_batches

        rng = np.random.default_rng(4)
        x = rng.normal(size=(40, N_IN)).astype("float32")
        y = {
            t: rng.normal(size=(40, 2 if t == "label" else 3)).astype("float32")
            for t in ("label", *AUX)
        }
        train = tf.data.Dataset.from_tensor_slices((x[:32], {t: v[:32] for t, v in y.items()}))
        held_out = tf.data.Dataset.from_tensor_slices((x[32:], y["label"][32:]))
        data = with_meta_batches(train.batch(8), meta=held_out.batch(8).repeat())
        model = compiled(update_every=2, learning_rate=0.5)
        history = model.fit(data, epochs=2, verbose=0)
        self.assertEqual(int(model.censor_state["step"]), 8)
        self.assertFalse(np.allclose(model.censor_state["powers"], 1.0))
        self.assertEqual(len(history.history["recon_auxinash_power"]), 2)
