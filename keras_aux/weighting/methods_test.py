"""Each loss weighting over several steps against an independent NumPy
recomputation written from the reference code's formulas (LibMTL's UW, DWA,
GradNorm, GLS, RLW; Cranial-XIX/FAMO's ``famo.py``), its state round trip and
its serialization. Backend-neutral: runs on TensorFlow and on the JAX tier."""

import json

import keras
import numpy as np
import pytest

from keras_aux import weighting
from keras_aux.testing import TestCase

K = 3


def np_softmax(x):
    e = np.exp(x - np.max(x))
    return e / e.sum()


def np_adam(params, grad, m, v, t, lr, weight_decay=0.0):
    """torch.optim.Adam's step (β = 0.9, 0.999; ε = 1e-8; L2 weight decay)."""
    grad = grad + weight_decay * params
    t += 1
    m = 0.9 * m + 0.1 * grad
    v = 0.999 * v + 0.001 * grad**2
    denom = np.sqrt(v) / np.sqrt(1 - 0.999**t) + 1e-8
    return params - lr / (1 - 0.9**t) * m / denom, m, v, t


def numeric_gradient(fn, x, h=1e-6):
    """Central differences in float64."""
    grad = np.zeros_like(x)
    for i in range(x.size):
        e = np.zeros_like(x)
        e[i] = h
        grad[i] = (fn(x + e) - fn(x - e)) / (2 * h)
    return grad


def as_numpy(tree):
    return keras.tree.map_structure(lambda t: np.asarray(keras.ops.convert_to_numpy(t)), tree)


def round_trip(state):
    """The state through plain arrays, as the model's variables hold it."""
    leaves = [np.array(x) for x in keras.tree.flatten(as_numpy(state))]
    return keras.tree.pack_sequence_as(state, [keras.ops.convert_to_tensor(x) for x in leaves])


def loss_sequence(seed, steps):
    rng = np.random.default_rng(seed)
    return rng.uniform(0.2, 3.0, size=(steps, K)).astype(np.float32)


class UncertaintyWeightingTest(TestCase):
    def test_weights_and_objectives_match_the_formula(self):
        method = weighting.UncertaintyWeighting()
        s = np.array([-0.5, 0.3, 1.2], np.float32)
        losses = np.array([0.7, 2.0, 0.1], np.float32)
        params = {"log_variance": s}
        self.assertAllClose(method.parameters(K)["log_variance"], [-0.5] * K)
        self.assertAllClose(method.weights(losses, {}, params), 1 / (2 * np.exp(s)))
        objectives = method.objectives(losses, {}, params)
        self.assertAllClose(objectives, losses / (2 * np.exp(s)) + s / 2, atol=1e-6)
        held = weighting.UncertaintyWeighting(fix_primary=True)
        self.assertAllClose(held.weights(losses, {}, params)[0], 1.0)
        self.assertAllClose(held.objectives(losses, {}, params)[0], losses[0])
        self.assertAllClose(held.objectives(losses, {}, params)[1:], objectives[1:])

    def test_bad_initial_value_is_refused(self):
        with pytest.raises(ValueError, match="initial_log_variance"):
            weighting.UncertaintyWeighting(initial_log_variance="x")


class DWATest(TestCase):
    def test_weights_over_epochs_match_numpy(self):
        method = weighting.DWA(temperature=2.0)
        state = method.init(K)
        losses = loss_sequence(0, 20)
        epochs = [losses[0:4], losses[4:9], losses[9:12], losses[12:20]]
        means = []
        for e, batch in enumerate(epochs):
            for step_losses in batch:
                w = as_numpy(method.weights(step_losses, state))
                if e < 2:
                    expected = np.ones(K)
                else:  # LibMTL: K softmax((L(e-1) / L(e-2)) / T)
                    expected = K * np_softmax(means[e - 1] / means[e - 2] / 2.0)
                self.assertAllClose(w, expected, atol=1e-5)
                state = round_trip(method.update(step_losses, state))
            means.append(batch.astype(np.float64).mean(axis=0))
            state = method.end_epoch(state)
        self.assertEqual(float(state["epochs"]), 4.0)

    def test_an_empty_epoch_changes_nothing(self):
        method = weighting.DWA()
        state = method.update(np.ones(K, np.float32), method.init(K))
        state = method.end_epoch(state)
        again = method.end_epoch(state)
        for key in state:
            self.assertAllClose(again[key], state[key])

    def test_bad_temperature_is_refused(self):
        with pytest.raises(ValueError, match="temperature"):
            weighting.DWA(temperature=0)


class GradNormTest(TestCase):
    def test_logits_follow_the_gradnorm_loss_with_adam(self):
        alpha, lr = 1.5, 0.05
        method = weighting.GradNorm(alpha=alpha, learning_rate=lr)
        state = method.init(K)
        losses = loss_sequence(1, 10)
        norms = np.random.default_rng(2).uniform(0.1, 5.0, size=(10, K)).astype(np.float32)
        # Epoch 0: weights 1, logits unchanged, L(0) = the epoch's mean loss.
        for t in range(4):
            self.assertAllClose(method.weights(losses[t], state), np.ones(K))
            state = method.update(losses[t], state, norms[t])
        state = round_trip(method.end_epoch(state))
        initial = losses[:4].astype(np.float64).mean(axis=0)
        self.assertAllClose(state["initial_losses"], initial, atol=1e-6)
        self.assertAllClose(state["logits"], np.ones(K))
        logits, m, v, t_adam = np.ones(K), np.zeros(K), np.zeros(K), 0
        for t in range(4, 10):
            n, loss = norms[t].astype(np.float64), losses[t].astype(np.float64)

            def gradnorm_loss(ell, n=n, loss=loss, current=logits):
                # LibMTL: G_i = ‖ω_i ∇L_i‖, constant G·r^α, L_grad = Σ |G_i − const|.
                omega = K * np_softmax(ell)
                g = omega * n
                r = (loss / initial) / (loss / initial).mean()
                constant = np.mean(K * np_softmax(current) * n) * r**alpha
                return np.abs(g - constant).sum()

            self.assertAllClose(method.weights(losses[t], state), K * np_softmax(logits), atol=1e-5)
            grad = numeric_gradient(gradnorm_loss, logits)
            logits, m, v, t_adam = np_adam(logits, grad, m, v, t_adam, lr)
            state = round_trip(method.update(losses[t], state, norms[t]))
            self.assertAllClose(state["logits"], logits, atol=1e-5)

    def test_update_needs_gradient_norms(self):
        method = weighting.GradNorm()
        with pytest.raises(ValueError, match="gradient_norms"):
            method.update(np.ones(K, np.float32), method.init(K))


class GeometricLossTest(TestCase):
    def test_weights_are_the_gradient_of_the_geometric_mean(self):
        method = weighting.GeometricLoss()
        for losses in loss_sequence(3, 4):

            def geometric_mean(x):
                return np.prod(x) ** (1.0 / K)  # LibMTL: losses.prod() ** (1 / K)

            expected = numeric_gradient(geometric_mean, losses.astype(np.float64))
            self.assertAllClose(method.weights(losses, {}), expected, atol=1e-5)
            objective = np.sum(as_numpy(method.objectives(losses, {})))
            self.assertAllClose(objective, geometric_mean(losses.astype(np.float64)), atol=1e-5)


def np_pcg_hash(x):
    # Every constant a uint64: NumPy 1 would promote uint64 and a Python int to float64.
    u = np.uint64
    x = np.asarray(x).astype(u)
    state = (x * u(747796405) + u(2891336453)) % u(2**32)
    word = (((state >> ((state >> u(28)) + u(4))) ^ state) * u(277803737)) % u(2**32)
    return ((word >> u(22)) ^ word) % u(2**32)


def np_normal(seed, counter, k):
    """The counter-based normal draws: PCG hash, then Box–Muller."""
    modulus = np.uint64(2**32)
    key = np_pcg_hash(np.uint64(seed % 2**32) + np_pcg_hash(np.uint64(counter))) % modulus
    bits = np_pcg_hash((np.arange(2 * k, dtype=np.uint64) + key) % modulus)
    u = (bits >> np.uint64(8)).astype(np.float64) / 2**24
    u = u.reshape(2, k)
    return np.sqrt(-2 * np.log(1 - u[0])) * np.cos(2 * np.pi * u[1])


class RandomLossWeightingTest(TestCase):
    def test_weights_are_a_softmax_of_fresh_normal_draws(self):
        method = weighting.RandomLossWeighting(seed=5)
        state, draws = method.init(K), []
        for t in range(6):
            w = as_numpy(method.weights(np.ones(K, np.float32), state))
            self.assertAllClose(w, np_softmax(np_normal(5, t, K)), atol=1e-5)
            draws.append(w)
            state = round_trip(method.update(np.ones(K, np.float32), state))
        self.assertEqual(len({tuple(np.round(d, 6)) for d in draws}), 6)

    def test_bad_seed_is_refused(self):
        with pytest.raises(ValueError, match="seed"):
            weighting.RandomLossWeighting(seed=1.5)


class FAMOTest(TestCase):
    def test_weights_and_logits_match_the_reference_update(self):
        lr, gamma = 0.025, 0.01
        method = weighting.FAMO(learning_rate=lr, gamma=gamma)
        state = method.init(K)
        losses = loss_sequence(4, 8).astype(np.float64)
        w, m, v, t_adam = np.zeros(K), np.zeros(K), np.zeros(K), 0
        for t in range(8):
            if t > 0:  # famo.py `update`, with the loss after the step read at the next step
                delta = np.log(losses[t - 1] + 1e-8) - np.log(losses[t] + 1e-8)
                z = np_softmax(w)
                jacobian = np.diag(z) - np.outer(z, z)
                w, m, v, t_adam = np_adam(w, jacobian.T @ delta, m, v, t_adam, lr, gamma)
            z = np_softmax(w)
            d = losses[t] + 1e-8
            c = (z / d).sum()
            # The gradient of Σ z_i log D_i / c in L_i: z_i / (c D_i).
            expected = numeric_gradient(lambda x, z=z, c=c: np.sum(z * np.log(x + 1e-8) / c), d)
            self.assertAllClose(method.weights(losses[t].astype(np.float32), state), expected, 1e-5)
            state = round_trip(method.update(losses[t].astype(np.float32), state))
            self.assertAllClose(state["logits"], w, atol=1e-5)


@pytest.mark.parametrize("name", weighting.NAMES)
def test_fix_primary_keeps_the_primary_weight_at_one(name):
    method = weighting.get(name)
    held = type(method).from_config({**method.get_config(), "fix_primary": True})
    losses = np.array([0.5, 1.5, 2.5], np.float32)
    state = held.init(K)
    params = {k: v for k, v in held.parameters(K).items()}
    free = as_numpy(method.weights(losses, method.init(K), params))
    fixed = as_numpy(held.weights(losses, state, params))
    np.testing.assert_allclose(fixed[0], 1.0)
    np.testing.assert_allclose(fixed[1:], free[1:], atol=1e-6)


@pytest.mark.parametrize("name", weighting.NAMES)
def test_serialization_and_get(name):
    method = weighting.get(name)
    assert isinstance(method, weighting.CLASSES[name])
    revived = TestCase().run_serialization_test(method)
    assert revived.get_config() == method.get_config()
    serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(method)))
    assert weighting.get(serialized).get_config() == method.get_config()
    assert weighting.get(method) is method


def test_get_refuses_unknown_names_and_types():
    with pytest.raises(ValueError, match="Unknown loss weighting 'kendall'"):
        weighting.get("kendall")
    with pytest.raises(ValueError, match="loss_weighting"):
        weighting.get(3)
    with pytest.raises(ValueError, match="fix_primary"):
        weighting.DWA(fix_primary="yes")
