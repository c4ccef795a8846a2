"""Tests of `MetaBalance` against NumPy written from the formulas of He et al.
(2022) and facebookresearch/MetaBalance: several steps with the state carried,
inside a real `AuxiliaryModel` step and `fit`, saving mid-fit, serialization.

Backend-neutral (no TensorFlow import): the JAX tier runs it under JAX."""

import os

import keras
import numpy as np

from keras_aux.learned import MetaBalance, OLAux
from keras_aux.models.backends_test import linear_model, numpy_gradients
from keras_aux.testing import TestCase, requires_tensorflow_backend

SHAPES = [(3, 2), (4,), (2, 2), (5,), (3,)]


def np_metabalance(primary, auxiliary, lams, norms, r, beta):
    """One step: ``(update, new norms)``; ``norms`` is ``(K+1) × V``, float64.

    m_i ← β m_i + (1−β)‖g_i‖ where task i has a gradient; then on a tensor
    the primary reaches, ĝ_k = λ_k (r m_0/m_k + 1 − r) a_k (factor 1 where
    m_k = 0); on an auxiliary head, λ_k a_k."""
    norms = norms.copy()
    for i, task in enumerate([primary, *auxiliary]):
        for v, g in enumerate(task):
            if g is not None:
                norms[i, v] = beta * norms[i, v] + (1 - beta) * np.sqrt(np.sum(g * g))
    update = [None if p is None else p.copy() for p in primary]
    for k, (task, lam) in enumerate(zip(auxiliary, lams), start=1):
        for v, a in enumerate(task):
            if a is None:
                continue
            factor = 1.0
            if primary[v] is not None and norms[k, v] > 0:
                factor = r * norms[0, v] / norms[k, v] + (1 - r)
            update[v] = lam * factor * a if update[v] is None else update[v] + lam * factor * a
    return update, norms


def np_factor_logs(norms, r):
    """Mean factor of each auxiliary task over the tensors where m_0, m_k > 0."""
    means = []
    for k in range(1, norms.shape[0]):
        both = (norms[0] > 0) & (norms[k] > 0)
        means.append(np.mean(r * norms[0, both] / norms[k, both] + 1 - r) if both.any() else 1.0)
    return means


def tensors(grads):
    return [None if g is None else keras.ops.convert_to_tensor(g, "float32") for g in grads]


class MetaBalanceUpdateTest(TestCase):
    def test_several_steps_match_numpy_with_the_state_carried(self):
        rng = np.random.default_rng(0)
        r, beta, lams = 0.7, 0.9, [0.5, 2.0]
        method = MetaBalance(num_auxiliary=2)
        state = method.init([np.zeros(s) for s in SHAPES])
        norms = np.zeros((3, len(SHAPES)))
        for step in range(5):
            # Variable 3 is the primary's alone, 4 the first auxiliary's head;
            # the second auxiliary task does not reach variable 1, and its
            # gradient on variable 2 is exactly 0 on the first steps (m = 0).
            primary = [rng.normal(size=s) for s in SHAPES[:4]] + [None]
            first = [rng.normal(scale=3.0, size=s) for s in SHAPES[:3]] + [None]
            first.append(rng.normal(size=SHAPES[4]))
            second = [rng.normal(scale=0.1, size=SHAPES[0]), None]
            second += [np.zeros(SHAPES[2]) if step < 2 else rng.normal(size=SHAPES[2])]
            second += [None, None]
            expected, norms = np_metabalance(primary, [first, second], lams, norms, r, beta)
            update, state = method.update(
                tensors(primary), [tensors(first), tensors(second)], lams, state
            )
            for v, (u, e) in enumerate(zip(update, expected)):
                self.assertEqual(u is None, e is None, msg=f"step {step} variable {v}")
                if e is not None:
                    self.assertAllClose(u, e, atol=1e-5, rtol=1e-5, msg=f"step {step} var {v}")
            self.assertAllClose(state["norms"], norms, atol=1e-6, rtol=1e-5)
            logs = method.logs(state, ["first", "second"])
            self.assertAllClose(
                [logs["first_metabalance_factor"], logs["second_metabalance_factor"]],
                np_factor_logs(norms, r),
                atol=1e-6,
                rtol=1e-5,
            )
        # The large auxiliary gradient was shrunk, the small one enlarged.
        self.assertLess(float(logs["first_metabalance_factor"]), 1.0)
        self.assertGreater(float(logs["second_metabalance_factor"]), 1.0)

    def test_zero_relax_factor_is_the_weighted_sum(self):
        rng = np.random.default_rng(1)
        primary = [rng.normal(size=s) for s in SHAPES[:2]]
        aux = [rng.normal(size=s) for s in SHAPES[:2]]
        method = MetaBalance(relax_factor=0.0)
        update, _ = method.update(tensors(primary), [tensors(aux)], [1.5], method.init(primary))
        for u, p, a in zip(update, primary, aux):
            self.assertAllClose(u, p + 1.5 * a, atol=1e-6, rtol=1e-6)

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, r"`relax_factor` must be in \[0, 1\]; got 1.5"):
            MetaBalance(relax_factor=1.5)
        with self.assertRaisesRegex(ValueError, r"`beta` must be in \[0, 1\); got 1.0"):
            MetaBalance(beta=1.0)
        with self.assertRaisesRegex(ValueError, "positive integer; got 0"):
            MetaBalance(num_auxiliary=0)
        method = MetaBalance(num_auxiliary=2)
        grads = tensors([np.ones(3)])
        with self.assertRaisesRegex(ValueError, "num_auxiliary=2 .* has 1: pass num_auxiliary=1"):
            method.update(grads, [grads], [1.0], method.init(grads))

    def test_serialization(self):
        method = MetaBalance(num_auxiliary=3, relax_factor=0.5, beta=0.8)
        revived = self.run_serialization_test(method)
        self.assertEqual((revived.num_auxiliary, revived.relax_factor, revived.beta), (3, 0.5, 0.8))
        self.assertIs(
            keras.saving.get_registered_object("keras_aux.learned>MetaBalance"), MetaBalance
        )


def data(n=16, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5)).astype("float32")
    y = {
        "label": rng.normal(size=(n, 2)),
        "recon": rng.normal(scale=4.0, size=(n, 3)),
        "extra": rng.normal(scale=0.2, size=(n, 3)),
    }
    return x, {k: v.astype("float32") for k, v in y.items()}


class MetaBalanceModelTest(TestCase):
    def test_training_steps_match_numpy(self):
        x, y = data()
        lams, lr, r, beta = {"recon": 0.5, "extra": 2.0}, 0.05, 0.7, 0.9
        model = linear_model(aux_tasks=("recon", "extra"))
        model.compile(
            keras.optimizers.SGD(lr),
            loss="mse",
            loss_weights=lams,
            censoring=MetaBalance(num_auxiliary=2),
        )
        paths = [v.path for v in model.trainable_variables]
        norms = np.zeros((3, len(paths)))
        for step in range(4):
            grads = numpy_gradients(model, x, y)
            primary = [grads["label"].get(p) for p in paths]
            aux = [[grads[t].get(p) for p in paths] for t in model.auxiliary_names]
            weights = [lams[t] for t in model.auxiliary_names]
            update, norms = np_metabalance(primary, aux, weights, norms, r, beta)
            before = [np.asarray(v) for v in model.trainable_variables]
            logs = model.train_on_batch(x, y, return_dict=True)
            for path, old, u, v in zip(paths, before, update, model.trainable_variables):
                self.assertAllClose(v, old - lr * u, atol=1e-5, rtol=1e-5, msg=f"{step} {path}")
            self.assertAllClose(model.censor_state["norms"], norms, atol=1e-5, rtol=1e-5)
            factors = np_factor_logs(norms, r)
            for name, factor in zip(model.auxiliary_names, factors):
                self.assertAllClose(logs[f"{name}_metabalance_factor"], factor, rtol=1e-5)

    def fit(self, model, epochs, initial_epoch=0):
        x, y = data(n=32, seed=3)
        return model.fit(
            x, y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0
        )

    def compiled(self):
        model = linear_model(seed=2, aux_tasks=("recon", "extra"))
        model.compile(
            keras.optimizers.Adam(0.01),
            loss="mse",
            loss_weights={"recon": 0.5, "extra": 2.0},
            censoring=MetaBalance(num_auxiliary=2, relax_factor=0.6),
        )
        return model

    def test_fit_logs_the_factors_and_saving_mid_fit_resumes_the_same_run(self):
        uninterrupted = self.compiled()
        history = self.fit(uninterrupted, epochs=4)
        for name in ("recon", "extra"):
            values = history.history[f"{name}_metabalance_factor"]
            self.assertEqual(len(values), 4)
            self.assertTrue(np.all(np.isfinite(values)))
        # "recon" has large gradients (shrunk), "extra" small ones (enlarged).
        self.assertLess(history.history["recon_metabalance_factor"][-1], 1.0)
        self.assertGreater(history.history["extra_metabalance_factor"][-1], 1.0)

        first = self.compiled()
        self.fit(first, epochs=2)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        first.save(path)
        resumed = keras.saving.load_model(path)
        self.assertIsInstance(resumed.censor, MetaBalance)
        self.assertEqual(resumed.censor.relax_factor, 0.6)
        self.assertAllClose(resumed.censor_state["norms"], first.censor_state["norms"], atol=0)
        second_history = self.fit(resumed, epochs=4, initial_epoch=2)
        for a, b in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
            self.assertAllClose(a, b, atol=1e-6, rtol=1e-6)
        self.assertAllClose(
            resumed.censor_state["norms"], uninterrupted.censor_state["norms"], rtol=1e-6
        )
        self.assertAllClose(
            second_history.history["recon_metabalance_factor"],
            history.history["recon_metabalance_factor"][2:],
            rtol=1e-6,
        )


class XlaTest(TestCase):
    @requires_tensorflow_backend
    def test_both_methods_train_under_xla(self):
        x, y = data()
        methods = {
            "metabalance_factor": MetaBalance(num_auxiliary=2),
            "ol_aux_weight": OLAux(num_auxiliary=2, interval=2),
        }
        for suffix, method in methods.items():
            model = linear_model(aux_tasks=("recon", "extra"))
            model.compile("sgd", loss="mse", censoring=method, jit_compile=True)
            with self.assertXlaRan(model):
                history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
            for name in ("recon", "extra"):
                values = history.history[f"{name}_{suffix}"]
                self.assertEqual(len(values), 2)
                self.assertTrue(np.all(np.isfinite(values)))
