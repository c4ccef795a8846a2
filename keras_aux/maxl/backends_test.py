"""`MAXL` on TensorFlow against JAX, each in its own process: the θ2
meta-gradient of both orders (float64, after a stage-1 step that fills θ1's
momentum), a stage-2 step, a short `fit` and `.keras` files read on the other
backend; and on JAX, `keras.distribution.DataParallel` over two host devices
against one device on the same global batch; and a backend without a MAXL
trainer (NumPy) refused at construction.

This module runs on whichever backend Keras uses (the JAX tier runs it
without TensorFlow; the cross-backend test then skips).
"""

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_aux.testing import TestCase, jax_tier_only

# The same networks and weights on every backend (initializers draw backend-specific numbers).
_SETUP = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import keras
    import keras_aux
    from keras_aux.maxl import MAXL
    from keras_aux.maxl.model_test import PSI, build_networks, make_data

    def fresh(order=2, schedule="interleaved", seed=0):
        multitask, generator = build_networks(seed, generator_hidden=4)
        model = MAXL(multitask, generator, PSI, order=order, schedule=schedule, stage2_every=2)
        rng = np.random.default_rng(seed)
        model.set_weights([rng.normal(scale=0.5, size=w.shape) if w.ndim else w
                           for w in model.get_weights()])
        model.compile(keras.optimizers.SGD(0.1, momentum=0.9, weight_decay=1e-3),
                      keras.optimizers.SGD(0.05, momentum=0.5))
        return model

    def numpy(values):
        return [np.asarray(keras.ops.convert_to_numpy(v)).tolist() for v in values]
    """
)

# Prints the meta-gradients, the weights after stage 1 + stage 2 and after a
# short fit, and saves that model as <backend>.keras; loads `sys.argv[2]` if given.
_RUN = _SETUP + textwrap.dedent(
    """
    keras.config.set_floatx("float64")
    x, y = make_data(32, seed=4)
    out = {}
    for order in (2, 1):
        model = fresh(order)
        model.stage_one(x[:16], y[:16])
        grads, meta_loss, _ = model.meta_gradients(x[16:], y[16:])
        model.stage_two(x[16:], y[16:])
        out[f"order {order}"] = {"grads": numpy(grads), "meta_loss": float(meta_loss),
                                 "weights": numpy(model.weights)}
    for schedule in ("interleaved", "epoch"):
        model = fresh(2, schedule)
        history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
        out[schedule] = {"weights": numpy(model.weights),
                         "logs": {k: [float(v) for v in vs] for k, vs in history.items()}}
    model.save(os.path.join(sys.argv[1], keras.backend.backend() + ".keras"))
    out["predict"] = np.asarray(model.predict(x, verbose=0)).tolist()
    out["labels"] = model.generate_labels(x, y).tolist()
    if len(sys.argv) > 2:
        loaded = keras.saving.load_model(sys.argv[2])
        out["loaded"] = {"predict": np.asarray(loaded.predict(x, verbose=0)).tolist(),
                         "labels": loaded.generate_labels(x, y).tolist(),
                         "optimizers": numpy(loaded.optimizer.variables
                                             + loaded.generator_optimizer.variables)}
    out["optimizers"] = numpy(model.optimizer.variables + model.generator_optimizer.variables)
    print("RESULT " + json.dumps(out))
    """
)

_LOAD = _SETUP + textwrap.dedent(
    """
    keras.config.set_floatx("float64")
    x, y = make_data(32, seed=4)
    loaded = keras.saving.load_model(sys.argv[1])
    print("RESULT " + json.dumps({
        "predict": np.asarray(loaded.predict(x, verbose=0)).tolist(),
        "labels": loaded.generate_labels(x, y).tolist(),
        "optimizers": numpy(loaded.optimizer.variables + loaded.generator_optimizer.variables),
    }))
    """
)

# The same runs on one device, then under DataParallel over two host devices.
_DATA_PARALLEL = _SETUP + textwrap.dedent(
    """
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == 2, devices
    x, y = make_data(64, seed=5)
    out = {}
    for mode in ("one_device", "data_parallel"):
        if mode == "data_parallel":
            keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
        for order, schedule in ((2, "interleaved"), (1, "interleaved"), (2, "epoch")):
            model = fresh(order, schedule)
            kernel = model.multitask_network.trainable_variables[0].value
            assert len(kernel.sharding.device_set) == (2 if mode == "data_parallel" else 1)
            history = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
            out[f"{mode} {order} {schedule}"] = {
                "weights": numpy(model.weights),
                "logs": {k: float(v[-1]) for k, v in history.items()},
            }
    print("RESULT " + json.dumps(out))
    """
)


def _run(script, backend, *args, env=None):
    env = {
        **os.environ,
        "KERAS_BACKEND": backend,
        "JAX_PLATFORMS": "cpu",
        "JAX_ENABLE_X64": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        **(env or {}),
    }
    result = subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, timeout=900, env=env
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


def _backends_available():
    return all(importlib.util.find_spec(m) is not None for m in ("tensorflow", "jax"))


# Slow (one process per backend): run by the integration tier.
@pytest.mark.integration
@pytest.mark.skipif(not _backends_available(), reason="needs both TensorFlow and JAX installed")
class CrossBackendTest(TestCase):
    def test_tensorflow_and_jax_give_the_same_meta_gradient_and_read_each_others_files(self):
        directory = self.get_temp_dir()
        tf_run = _run(_RUN, "tensorflow", directory)
        jax_run = _run(_RUN, "jax", directory, os.path.join(directory, "tensorflow.keras"))
        for order in (2, 1):
            key = f"order {order}"
            grads = np.concatenate([np.ravel(g) for g in tf_run[key]["grads"]])
            self.assertGreater(np.abs(grads).max(), 1e-3, key)  # the check has teeth
            for a, b in zip(tf_run[key]["grads"], jax_run[key]["grads"], strict=True):
                self.assertAllClose(b, a, atol=1e-10, rtol=1e-5, msg=key)
            self.assertAllClose(jax_run[key]["meta_loss"], tf_run[key]["meta_loss"], rtol=1e-10)
            for a, b in zip(tf_run[key]["weights"], jax_run[key]["weights"], strict=True):
                self.assertAllClose(b, a, atol=1e-10, rtol=1e-8, msg=key)
        for schedule in ("interleaved", "epoch"):
            for a, b in zip(tf_run[schedule]["weights"], jax_run[schedule]["weights"], strict=True):
                self.assertAllClose(b, a, atol=1e-9, rtol=1e-7, msg=schedule)
            self.assertEqual(sorted(tf_run[schedule]["logs"]), sorted(jax_run[schedule]["logs"]))
            for name, values in tf_run[schedule]["logs"].items():
                self.assertAllClose(jax_run[schedule]["logs"][name], values, atol=1e-9, rtol=1e-7)
        # A file saved on one backend loads on the other: predictions, labels, optimizers.
        jax_loaded = _run(_LOAD, "tensorflow", os.path.join(directory, "jax.keras"))
        for saved, loaded in ((tf_run, jax_run["loaded"]), (jax_run, jax_loaded)):
            for key in ("predict", "labels"):
                self.assertAllClose(loaded[key], saved[key], atol=1e-10, rtol=1e-8, msg=key)
            for a, b in zip(saved["optimizers"], loaded["optimizers"], strict=True):
                self.assertAllClose(b, a)


@jax_tier_only
class DataParallelTest(TestCase):
    def test_two_devices_give_the_update_of_one(self):
        env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2", "JAX_ENABLE_X64": "0"}
        runs = _run(_DATA_PARALLEL, "jax", env=env)
        for case in ("2 interleaved", "1 interleaved", "2 epoch"):
            one, two = runs[f"one_device {case}"], runs[f"data_parallel {case}"]
            for a, b in zip(one["weights"], two["weights"], strict=True):
                self.assertAllClose(b, a, atol=1e-5, rtol=1e-5, msg=case)
            self.assertEqual(sorted(one["logs"]), sorted(two["logs"]))
            for name, value in one["logs"].items():
                self.assertAllClose(two["logs"][name], value, atol=1e-5, rtol=1e-5, msg=name)


_REFUSED = textwrap.dedent(
    """
    import keras_aux
    from keras_aux.maxl.model_test import PSI, build_networks
    try:
        keras_aux.MAXL(*build_networks(0), PSI)
    except RuntimeError as error:
        print("RESULT " + __import__("json").dumps(str(error)))
    """
)


class OtherBackendTest(TestCase):
    def test_a_backend_without_a_trainer_is_refused_at_construction(self):
        # Keras's numpy backend imports jax.
        pytest.importorskip("jax", reason="jax is not installed in this environment")
        message = _run(_REFUSED, "numpy")
        self.assertIn("TensorFlow and JAX backends", message)
        self.assertIn("'numpy'", message)
