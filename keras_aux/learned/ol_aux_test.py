"""Tests of `OLAux` against NumPy written from the rule of Lin et al. (2019) as
Xingyu-Lin/auxiliary-tasks-rl applies it: several steps with the state
carried, inside a real `AuxiliaryModel` step and `fit`, saving mid-fit,
serialization.

Backend-neutral (no TensorFlow import): the JAX tier runs it under JAX."""

import os

import keras
import numpy as np

from keras_aux.learned import OLAux
from keras_aux.learned.metabalance_test import data, tensors
from keras_aux.models.backends_test import linear_model, numpy_gradients
from keras_aux.testing import TestCase

SHAPES = [(3, 2), (4,), (2, 2), (5,)]


class NumpyOLAux:
    """The reference rule: the update uses the current w; every step adds
    lr·⟨p, a_k⟩ (over the variables both reach) to a buffer; when it holds N
    values, w ← max(0, w + β·mean(buffer)) and the buffer empties."""

    def __init__(self, k, lr, interval, beta):
        self.w = np.ones(k)
        self.buffer = []
        self.lr, self.interval, self.beta = lr, interval, beta

    def step(self, primary, auxiliary, lams):
        update = [None if p is None else p.copy() for p in primary]
        dots = []
        for w, lam, task in zip(self.w, lams, auxiliary):
            for v, a in enumerate(task):
                if a is not None:
                    update[v] = w * lam * a if update[v] is None else update[v] + w * lam * a
            dots.append(
                sum(
                    float(np.sum(p * a))
                    for p, a in zip(primary, task)
                    if p is not None and a is not None
                )
            )
        self.buffer.append(self.lr * np.array(dots))
        if len(self.buffer) == self.interval:
            self.w = np.clip(self.w + self.beta * np.mean(self.buffer, axis=0), 0.0, None)
            self.buffer = []
        return update


class OLAuxUpdateTest(TestCase):
    def test_several_steps_match_numpy_with_the_state_carried(self):
        rng = np.random.default_rng(0)
        lams, lr, interval = [0.5, 2.0], 0.01, 2
        method = OLAux(num_auxiliary=2, learning_rate=lr, interval=interval)
        self.assertEqual(method.weight_learning_rate, 10.0)  # β = 5 N
        reference = NumpyOLAux(2, lr, interval, 10.0)
        state = method.init([np.zeros(s) for s in SHAPES])
        for step in range(7):
            # Variable 2 is the primary's alone, 3 the auxiliary tasks' head.
            # The first auxiliary task follows the primary, the second opposes
            # it: its weight falls to 0 (the clip), the first's rises.
            primary = [rng.normal(size=s) for s in SHAPES[:3]] + [None]
            helpful = [p + 0.3 * rng.normal(size=s) for p, s in zip(primary[:2], SHAPES)]
            harmful = [-p + 0.3 * rng.normal(size=s) for p, s in zip(primary[:2], SHAPES)]
            head = rng.normal(size=SHAPES[3])
            first = helpful + [None, head]
            second = harmful + [None, 2 * head]
            expected = reference.step(primary, [first, second], lams)
            update, state = method.update(
                tensors(primary), [tensors(first), tensors(second)], lams, state
            )
            for v, (u, e) in enumerate(zip(update, expected)):
                self.assertEqual(u is None, e is None)
                if e is not None:
                    self.assertAllClose(u, e, atol=1e-5, rtol=1e-5, msg=f"step {step} var {v}")
            self.assertAllClose(state["weights"], reference.w, atol=1e-6, rtol=1e-5)
            self.assertEqual(int(state["count"]), len(reference.buffer))
            logs = method.logs(state, ["helpful", "harmful"])
            self.assertAllClose(
                [logs["helpful_ol_aux_weight"], logs["harmful_ol_aux_weight"]], reference.w
            )
        self.assertGreater(reference.w[0], 1.0)
        self.assertEqual(reference.w[1], 0.0)

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, "`interval` must be a positive integer; got 0"):
            OLAux(interval=0)
        with self.assertRaisesRegex(ValueError, "`learning_rate` must be a positive number"):
            OLAux(learning_rate=-1.0)
        with self.assertRaisesRegex(ValueError, "`initial_weight` must be a number >= 0"):
            OLAux(initial_weight=-0.5)
        method = OLAux(num_auxiliary=1)
        grads = tensors([np.ones(3)])
        with self.assertRaisesRegex(ValueError, "num_auxiliary=1 .* has 2: pass num_auxiliary=2"):
            method.update(grads, [grads, grads], [1.0, 1.0], method.init(grads))

    def test_serialization(self):
        method = OLAux(num_auxiliary=2, learning_rate=0.1, interval=3, initial_weight=0.5)
        revived = self.run_serialization_test(method)
        self.assertEqual(revived.get_config(), method.get_config())
        self.assertEqual(revived.weight_learning_rate, 15.0)
        self.assertIs(keras.saving.get_registered_object("keras_aux.learned>OLAux"), OLAux)


class OLAuxModelTest(TestCase):
    def test_training_steps_match_numpy(self):
        x, y = data()
        lams, lr, interval = {"recon": 0.5, "extra": 2.0}, 0.05, 2
        model = linear_model(aux_tasks=("recon", "extra"))
        model.compile(
            keras.optimizers.SGD(lr),
            loss="mse",
            loss_weights=lams,
            censoring=OLAux(num_auxiliary=2, learning_rate=lr, interval=interval),
        )
        reference = NumpyOLAux(2, lr, interval, 5.0 * interval)
        paths = [v.path for v in model.trainable_variables]
        for step in range(5):
            grads = numpy_gradients(model, x, y)
            primary = [grads["label"].get(p) for p in paths]
            aux = [[grads[t].get(p) for p in paths] for t in model.auxiliary_names]
            update = reference.step(primary, aux, [lams[t] for t in model.auxiliary_names])
            before = [np.asarray(v) for v in model.trainable_variables]
            logs = model.train_on_batch(x, y, return_dict=True)
            for path, old, u, v in zip(paths, before, update, model.trainable_variables):
                self.assertAllClose(v, old - lr * u, atol=1e-5, rtol=1e-5, msg=f"{step} {path}")
            for name, w in zip(model.auxiliary_names, reference.w):
                self.assertAllClose(logs[f"{name}_ol_aux_weight"], w, atol=1e-6, rtol=1e-5)
        self.assertFalse(np.allclose(reference.w, 1.0))  # the weights did move

    def test_a_step_with_non_finite_gradients_leaves_the_state_untouched(self):
        # The rule of every stateful censoring method: the step a loss-scale
        # optimizer would skip must not advance the weights or the sums.
        x, y = data()
        model = linear_model(aux_tasks=("recon", "extra"))
        model.compile(
            keras.optimizers.SGD(0.05),
            loss="mse",
            censoring=OLAux(num_auxiliary=2, learning_rate=0.05, interval=2),
        )
        model.train_on_batch(x, y)
        before = {k: np.asarray(v) for k, v in model.censor_state.items()}
        self.assertEqual(int(before["count"]), 1)
        bad = dict(y, label=np.full_like(y["label"], np.nan))
        logs = model.train_on_batch(x, bad, return_dict=True)
        for key, value in model.censor_state.items():
            np.testing.assert_array_equal(np.asarray(value), before[key])
        self.assertAllClose(logs["recon_ol_aux_weight"], before["weights"][0], atol=0)

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
            # 4 steps an epoch, a weight update every 3: saved mid-interval.
            censoring=OLAux(num_auxiliary=2, learning_rate=0.5, interval=3),
        )
        return model

    def test_fit_logs_the_weights_and_saving_mid_fit_resumes_the_same_run(self):
        uninterrupted = self.compiled()
        history = self.fit(uninterrupted, epochs=4)
        for name in ("recon", "extra"):
            values = history.history[f"{name}_ol_aux_weight"]
            self.assertEqual(len(values), 4)
            self.assertTrue(np.all(np.asarray(values) >= 0.0))
        self.assertFalse(np.allclose(history.history["recon_ol_aux_weight"], 1.0))

        first = self.compiled()
        self.fit(first, epochs=2)
        self.assertEqual(int(first.censor_state["count"]), 2)  # 8 steps, N = 3
        path = os.path.join(self.get_temp_dir(), "model.keras")
        first.save(path)
        resumed = keras.saving.load_model(path)
        self.assertIsInstance(resumed.censor, OLAux)
        for key in ("weights", "sums", "count"):
            self.assertAllClose(resumed.censor_state[key], first.censor_state[key], atol=0)
        second_history = self.fit(resumed, epochs=4, initial_epoch=2)
        for a, b in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
            self.assertAllClose(a, b, atol=1e-6, rtol=1e-6)
        for key in ("weights", "sums", "count"):
            self.assertAllClose(
                resumed.censor_state[key], uninterrupted.censor_state[key], atol=1e-6, rtol=1e-6
            )
        for name in ("recon", "extra"):
            self.assertAllClose(
                second_history.history[f"{name}_ol_aux_weight"],
                history.history[f"{name}_ol_aux_weight"][2:],
                atol=1e-6,
                rtol=1e-6,
            )
