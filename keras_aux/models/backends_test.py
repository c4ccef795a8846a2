"""`AuxiliaryModel` on every backend keras-aux supports (TensorFlow, JAX):
one step against a NumPy computation of the gradients and of the censoring,
and the same training run on both backends giving the same weights, state
and logs, and `.keras` files that load on the other backend.

This module runs on whichever backend Keras uses (the JAX tier runs it
without TensorFlow); the cross-backend test runs both in subprocesses.
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_aux import censoring
from keras_aux.models import AuxiliaryModel, TaskData
from keras_aux.testing import TestCase, jax_tier_only
from keras_aux.testing.censoring_reference import np_combine

N_IN, N_HIDDEN = 5, 4


def trunk_model(seed=0, aux_tasks=("recon",), activation=None):
    """x → dense trunk (``activation``) → linear heads, the primary "label" and
    one per auxiliary task, with seeded weights."""
    x = keras.Input((N_IN,), name="x")
    h = keras.layers.Dense(N_HIDDEN, activation=activation, name="trunk")(x)
    outputs = {"label": keras.layers.Dense(2, name="label")(h)}
    for task in aux_tasks:
        outputs[task] = keras.layers.Dense(3, name=task)(h)
    model = AuxiliaryModel(x, outputs, primary="label")
    rng = np.random.default_rng(seed)
    model.set_weights(
        [rng.normal(scale=0.5, size=w.shape).astype("float32") for w in model.weights]
    )
    return model


def linear_model(seed=0, aux_tasks=("recon",)):
    """x → linear trunk → linear heads: gradients have a closed form."""
    return trunk_model(seed, aux_tasks)


def numpy_gradients(model, x, targets):
    """{task: {variable path: gradient}} of each task's MSE, by hand."""
    w = {v.path: np.asarray(v, np.float64) for v in model.trainable_variables}
    h = x @ w["trunk/kernel"] + w["trunk/bias"]
    grads = {}
    for task, y in targets.items():
        out = h @ w[f"{task}/kernel"] + w[f"{task}/bias"]
        d_out = 2.0 * (out - y) / out.size
        d_h = d_out @ w[f"{task}/kernel"].T
        grads[task] = {
            "trunk/kernel": x.T @ d_h,
            "trunk/bias": d_h.sum(0),
            f"{task}/kernel": h.T @ d_out,
            f"{task}/bias": d_out.sum(0),
        }
    return grads


class OneStepTest(TestCase):
    def data(self, n=16, seed=1):
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(n, N_IN))
        return x, {"label": rng.normal(size=(n, 2)), "recon": rng.normal(size=(n, 3))}

    def test_one_step_matches_numpy_for_every_mode(self):
        x, targets = self.data()
        lam, lr = 1.5, 0.1
        for mode in censoring.MODES:
            for granularity in censoring.GRANULARITIES:
                model = linear_model()
                model.compile(
                    keras.optimizers.SGD(lr),
                    loss="mse",
                    loss_weights={"recon": lam},
                    censoring=mode,
                    granularity=granularity,
                )
                paths = [v.path for v in model.trainable_variables]
                grads = numpy_gradients(model, x, targets)
                primary, recon = (
                    [g.get(p) for p in paths] for g in (grads["label"], grads["recon"])
                )
                # Single task takes no auxiliary gradient: its head is not trained.
                auxiliary = [] if mode == "single_task" else [recon]
                update = np_combine(primary, auxiliary, [lam], mode, granularity)
                before = [np.asarray(v) for v in model.trainable_variables]
                model.train_on_batch(
                    x.astype("float32"), {k: v.astype("float32") for k, v in targets.items()}
                )
                for path, old, u, v in zip(paths, before, update, model.trainable_variables):
                    expected = old if u is None else old - lr * u
                    self.assertAllClose(
                        v, expected, atol=1e-6, rtol=1e-5, msg=f"{mode} {granularity} {path}"
                    )

    def test_train_on_batch_and_test_on_batch_take_task_data(self):
        # Each task fed its own batch (`TaskData`) through train_on_batch, here the same x for
        # both: the step is the one of plain data, which the test above checks against NumPy.
        x, targets = self.data()
        x = x.astype("float32")
        targets = {k: v.astype("float32") for k, v in targets.items()}
        task_data = TaskData((x, targets["label"]), {"recon": (x, targets["recon"])})
        results = []
        for data in [(x, targets), (task_data,)]:
            model = linear_model()
            model.compile(keras.optimizers.SGD(0.1), loss="mse", censoring="projection")
            logs = model.train_on_batch(*data, return_dict=True)
            results.append(
                (logs, model.get_weights(), model.test_on_batch(*data, return_dict=True))
            )
        (plain_logs, plain_weights, plain_test), (logs, weights, test) = results
        for got, want in zip(weights, plain_weights, strict=True):
            self.assertAllClose(got, want, atol=1e-6)
        for name in ["label_loss", "recon_loss", "loss"]:
            self.assertAllClose(logs[name], plain_logs[name], atol=1e-6, msg=name)
            self.assertAllClose(test[name], plain_test[name], atol=1e-6, msg=name)

    def test_an_aggregator_aggregates_the_primary_and_weighted_auxiliary_gradients(self):
        # `compile(censoring="upgrad")`: the rows are [p, λ a] flattened over
        # the variables (0 where a task has no gradient), aggregated by the
        # method `keras_aux.censoring.aggregate` checks against TorchJD.
        x, targets = self.data()
        lam, lr = 1.5, 0.1
        for name in ("upgrad", "mgda", "cagrad"):
            model = linear_model()
            model.compile(
                keras.optimizers.SGD(lr), loss="mse", loss_weights={"recon": lam}, censoring=name
            )
            variables = model.trainable_variables
            grads = numpy_gradients(model, x, targets)
            rows = np.stack(
                [
                    np.concatenate(
                        [
                            scale * grads[task].get(v.path, np.zeros(v.shape)).ravel()
                            for v in variables
                        ]
                    )
                    for task, scale in (("label", 1.0), ("recon", lam))
                ]
            )
            self.assertIsInstance(model.censor, censoring.Aggregated)
            flat = np.asarray(censoring.aggregate(name, rows.astype("float32")))
            before = [np.asarray(v) for v in variables]
            model.train_on_batch(
                x.astype("float32"), {k: v.astype("float32") for k, v in targets.items()}
            )
            offset = 0
            for old, v in zip(before, variables):
                update = flat[offset : offset + old.size].reshape(old.shape)
                offset += old.size
                self.assertAllClose(v, old - lr * update, atol=1e-5, rtol=1e-4, msg=name)

    def test_an_aggregator_takes_no_granularity_nor_average(self):
        with self.assertRaisesRegex(ValueError, "granularity='per_variable'"):
            censoring.get("upgrad", granularity="per_variable")
        with self.assertRaisesRegex(ValueError, "changes nothing"):
            censoring.get("upgrad", ema_alpha=0.5)
        with self.assertRaisesRegex(ValueError, r"Aggregated\('gradvac', num_auxiliary=K\)"):
            censoring.get("gradvac")
        self.assertNotIn("gradvac", censoring.NAMES)

    def test_compile_gives_gradvac_the_number_of_auxiliary_tasks(self):
        x, targets = self.data()
        model = linear_model()
        model.compile(keras.optimizers.SGD(0.1), loss="mse", censoring="gradvac")
        self.assertIsInstance(model.censor, censoring.Aggregated)
        self.assertEqual(type(model.censor.method).__name__, "GradVac")
        self.assertEqual(model.censor.num_auxiliary, len(model.auxiliary_names))
        model.train_on_batch(
            x.astype("float32"), {k: v.astype("float32") for k, v in targets.items()}
        )
        # The state holds one target per pair of tasks (K + 1 rows).
        (state,) = keras.tree.flatten(model.censor_state)
        self.assertEqual(state.shape, (len(model.auxiliary_names) + 1,) * 2)

    def test_moving_average_state_and_logs(self):
        x, targets = self.data()
        model = linear_model()
        model.compile(keras.optimizers.SGD(0.1), loss="mse", censoring="projection", ema_alpha=0.25)
        paths = [v.path for v in model.trainable_variables]
        first = numpy_gradients(model, x, targets)["label"]
        logs = model.train_on_batch(
            x.astype("float32"),
            {k: v.astype("float32") for k, v in targets.items()},
            return_dict=True,
        )
        second = numpy_gradients(model, x, targets)["label"]
        model.train_on_batch(
            x.astype("float32"), {k: v.astype("float32") for k, v in targets.items()}
        )
        state = model.censor_state
        self.assertEqual(int(state["started"]), 1)
        for path, average in zip(paths, state["average"]):
            if path in first:
                expected = 0.25 * second[path] + 0.75 * first[path]
                self.assertAllClose(average, expected, atol=1e-6, rtol=1e-5)
            else:  # the auxiliary head: no primary gradient, the average stays 0
                self.assertAllClose(average, np.zeros_like(average))
        self.assertIn("recon_cosine", logs)
        self.assertEqual(len(model.weights), 6)  # the state is not a weight


class _CrashAt(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch) == (self.epoch, self.batch):
            raise RuntimeError("simulated crash")


class ResumeTest(TestCase):
    """On the current backend: a run stopped and resumed with `BackupAndRestore`
    equals the uninterrupted one bit for bit, the moving average included."""

    def train(self, callbacks=()):
        rng = np.random.default_rng(5)
        x = rng.normal(size=(64, N_IN)).astype("float32")
        y = {"label": rng.normal(size=(64, 2)).astype("float32")}
        y["recon"] = rng.normal(size=(64, 3)).astype("float32")
        model = linear_model(seed=2)
        model.compile(
            keras.optimizers.Adam(0.01), loss="mse", censoring="projection", ema_alpha=0.1
        )
        model.fit(
            x, y, batch_size=16, epochs=4, shuffle=False, verbose=0, callbacks=list(callbacks)
        )
        return model

    def test_crash_and_resume_equals_uninterrupted_run_bit_for_bit(self):
        backup = os.path.join(self.get_temp_dir(), "backup")
        uninterrupted = self.train()
        with self.assertRaisesRegex(RuntimeError, "simulated crash"):
            self.train([keras.callbacks.BackupAndRestore(backup), _CrashAt(2, 1)])
        resumed = self.train([keras.callbacks.BackupAndRestore(backup)])
        for a, b in zip(resumed.get_weights(), uninterrupted.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(
            keras.tree.flatten(resumed.censor_state),
            keras.tree.flatten(uninterrupted.censor_state),
            strict=True,
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        self.assertEqual(int(resumed.optimizer.iterations), 16)


def _backends_available():
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "jax"))


# Run on each backend in a fresh process; prints a JSON of final weights,
# censoring state and logs for each configuration.
_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import keras
    import keras_aux
    from keras_aux import censoring
    from keras_aux.models.backends_test import linear_model

    @keras.saving.register_keras_serializable(package="backends_test")
    class HalfAuxiliary(censoring.Censor):
        def update(self, primary, auxiliary, weights, state, reference=None):
            out = list(primary)
            for task, lam in zip(auxiliary, weights):
                for i, a in enumerate(task):
                    if a is not None:
                        out[i] = 0.5 * lam * a if out[i] is None else out[i] + 0.5 * lam * a
            return out, state

    rng = np.random.default_rng(3)
    x = rng.normal(size=(48, 5)).astype("float32")
    y = {"label": rng.normal(size=(48, 2)).astype("float32"),
         "recon": rng.normal(size=(48, 3)).astype("float32"),
         "side": rng.normal(size=(48, 3)).astype("float32")}
    runs = {}
    # Every mode and granularity meets NumPy on each backend in OneStepTest; here,
    # several steps of the methods whose update depends on which variables each task
    # reaches, or on state.
    configs = [("single_task", "global", 1.0), ("multitask", "global", 1.0),
               ("weighted_cosine", "per_variable", 1.0), ("parameter_wise", "global", 1.0),
               ("projection", "global", 0.1), ("unweighted_cosine", "per_variable", 0.5)]
    for mode, granularity, alpha in configs:
        configs_key = f"{mode}/{granularity}/{alpha}"
        model = linear_model(aux_tasks=("recon", "side"))
        model.compile(keras.optimizers.Adam(0.01), loss="mse",
                      loss_weights={"recon": 2.0, "side": 0.5}, censoring=mode,
                      granularity=granularity, ema_alpha=alpha)
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        runs[configs_key] = (model, history.history)
    for name, method in [("pcgrad", censoring.PCGrad(censoring.Projection())),
                         ("custom", HalfAuxiliary())]:
        model = linear_model(aux_tasks=("recon", "side"))
        model.compile(keras.optimizers.SGD(0.05, momentum=0.9), loss="mse", censoring=method)
        weights = rng.uniform(0.5, 2.0, size=48).astype("float32")
        history = model.fit(x, y, sample_weight=weights, batch_size=16, epochs=2, shuffle=False,
                            verbose=0)
        runs[name] = (model, history.history)
    out = {}
    for key, (model, history) in runs.items():
        out[key] = {
            "weights": [np.asarray(w).tolist() for w in model.get_weights()],
            "state": [np.asarray(s).tolist() for s in keras.tree.flatten(model.censor_state)],
            "logs": {k: [float(v) for v in vs] for k, vs in history.items()},
        }
    model = runs["projection/global/0.1"][0]
    model.save(os.path.join(sys.argv[1], keras.backend.backend() + ".keras"))
    out["evaluate"] = model.evaluate(x, {"label": y["label"]}, verbose=0, return_dict=True)
    out["predict"] = np.asarray(model.predict(x, verbose=0)["label"]).tolist()
    print("RESULT " + json.dumps(out))
    """
)

_LOAD = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    import keras_aux
    model = keras.saving.load_model(sys.argv[1])
    x = np.random.default_rng(3).normal(size=(48, 5)).astype("float32")
    state = [np.asarray(s).tolist() for s in keras.tree.flatten(model.censor_state)]
    print("RESULT " + json.dumps({"label": np.asarray(model.predict(x, verbose=0)["label"]).tolist(),
                                  "state": state}))
    """
)


def _run(script, backend, *args, env=None):
    env = dict(
        os.environ,
        KERAS_BACKEND=backend,
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
        **(env or {}),
    )
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=600, env=env
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


# Slow (one process per backend): run by the integration tier.
@pytest.mark.integration
@pytest.mark.skipif(not _backends_available(), reason="needs both TensorFlow and JAX installed")
class CrossBackendTest(TestCase):
    def test_tensorflow_and_jax_train_alike_and_read_each_others_files(self):
        directory = self.get_temp_dir()
        results = {b: _run(_SCRIPT, b, directory) for b in ("tensorflow", "jax")}
        tf_runs, jax_runs = results["tensorflow"], results["jax"]
        for key in tf_runs:
            if key in ("evaluate", "predict"):
                continue
            for a, b in zip(tf_runs[key]["weights"], jax_runs[key]["weights"], strict=True):
                self.assertAllClose(b, a, atol=1e-6, rtol=1e-5, msg=key)
            for a, b in zip(tf_runs[key]["state"], jax_runs[key]["state"], strict=True):
                self.assertAllClose(b, a, atol=1e-6, rtol=1e-5, msg=key)
            self.assertEqual(sorted(tf_runs[key]["logs"]), sorted(jax_runs[key]["logs"]), key)
            for name, values in tf_runs[key]["logs"].items():
                self.assertAllClose(jax_runs[key]["logs"][name], values, atol=1e-5, rtol=1e-5)
        self.assertEqual(sorted(tf_runs["evaluate"]), sorted(jax_runs["evaluate"]))
        # A file saved on one backend loads on the other, censoring state included.
        for saved, loader in (("tensorflow", "jax"), ("jax", "tensorflow")):
            loaded = _run(_LOAD, loader, os.path.join(directory, f"{saved}.keras"))
            self.assertAllClose(loaded["label"], results[saved]["predict"], atol=1e-5, rtol=1e-5)
            for a, b in zip(results[saved]["projection/global/0.1"]["state"], loaded["state"]):
                self.assertAllClose(b, a)


# The same run on one device and under `keras.distribution.DataParallel` over
# two (XLA's host platform split in two); prints weights, state and logs.
_DATA_PARALLEL = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    from keras_aux.models.backends_test import linear_model
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == 2, devices
    if sys.argv[1] == "data_parallel":
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    rng = np.random.default_rng(3)
    x = rng.normal(size=(64, 5)).astype("float32")
    y = {"label": rng.normal(size=(64, 2)).astype("float32"),
         "recon": rng.normal(size=(64, 3)).astype("float32")}
    model = linear_model()
    model.compile(keras.optimizers.Adam(0.01), loss="mse", censoring="projection",
                  ema_alpha=0.1)
    history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    print("RESULT " + json.dumps({
        "weights": [np.asarray(w).tolist() for w in model.get_weights()],
        "state": [np.asarray(s).tolist() for s in keras.tree.flatten(model.censor_state)],
        "logs": {k: float(v[-1]) for k, v in history.items()},
    }))
    """
)


@jax_tier_only
class DataParallelTest(TestCase):
    def test_two_devices_give_the_update_of_one(self):
        # On JAX the global batch is one array sharded over the devices, so each
        # task's gradient is already the global one when censoring reads it.
        flags = "--xla_force_host_platform_device_count=2"
        env = {"XLA_FLAGS": flags}
        one, two = (
            _run(_DATA_PARALLEL, "jax", mode, env=env) for mode in ("one_device", "data_parallel")
        )
        for key in ("weights", "state"):
            for a, b in zip(one[key], two[key], strict=True):
                self.assertAllClose(b, a, atol=1e-6, rtol=1e-5)
        self.assertEqual(sorted(one["logs"]), sorted(two["logs"]))
        for name, value in one["logs"].items():
            self.assertAllClose(two["logs"][name], value, atol=1e-6, rtol=1e-5)
