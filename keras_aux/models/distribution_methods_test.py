"""The newer methods of keras-aux under data parallelism: the same global
batches on one device and on two replicas give the same weights and the same
method state, on TensorFlow (`tf.distribute.MirroredStrategy` over the two
logical CPUs of conftest.py, on the integration tier) and on JAX
(`keras.distribution.DataParallel` over two host devices, in a subprocess as
backends_test.py, on the JAX tier).

Covered: the forward gradient path, every loss weighting
(`keras_aux.weighting.NAMES`), one gradient aggregator of each kind
(`AGGREGATORS` below), and the learned methods
MetaBalance, OL-AUX and Auto-λ. Tolerance: 1e-5 relative (1e-6 absolute) in
float32 after two SGD-with-momentum steps. The randomised methods (RLW, the
``random`` aggregator, GradDrop) draw from a counter-based generator whose
only inputs are the seed and the step counter, so both runs draw the same
numbers and must agree within the same tolerance. Also compared: the
last logs (losses, `<task>_weight`...).
"""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_aux import censoring, weighting
from keras_aux.learned import AutoLambda, MetaBalance, OLAux
from keras_aux.models import TaskData
from keras_aux.models.backends_test import N_IN, trunk_model
from keras_aux.testing import TestCase, jax_tier_only, requires_tensorflow_backend

N_SAMPLES, BATCH = 32, 16
AUXILIARY = ("recon", "side")

# One aggregator of each kind. Every aggregator reads the same all-reduced per-task
# gradients; the stateless Gramian-weighted ones (DualProj, MGDA, IMTL-G, Aligned-MTL,
# CAGrad, FairGrad) then differ from UPGrad only in the weights computed from the same
# Gramian, which aggregators_test.py checks against NumPy (each cost ~8 s per tier here).
AGGREGATORS = (
    "upgrad",  # Gramian path, a solver
    "nash_mtl",  # Gramian path, an iterative solver
    "config",  # flat path
    "graddrop",  # flat path, randomised, with state
    "random",  # Gramian path, randomised, with state
)
assert set(AGGREGATORS) <= set(censoring.AGGREGATOR_NAMES)

# name → compile arguments (beyond optimizer and loss); every one trains two steps.
CONFIGS = {
    "forward/projection": dict(censoring="projection", gradient_path="forward", ema_alpha=0.5),
    "forward/unweighted_cosine": dict(censoring="unweighted_cosine", gradient_path="forward"),
    **{f"weighting/{name}": dict(loss_weighting=name) for name in weighting.NAMES},
    **{f"aggregator/{name}": dict(censoring=name) for name in AGGREGATORS},
    "learned/metabalance": dict(censoring=lambda: MetaBalance(num_auxiliary=len(AUXILIARY))),
    "learned/ol_aux": dict(
        censoring=lambda: OLAux(num_auxiliary=len(AUXILIARY), learning_rate=0.05, interval=1)
    ),
    "learned/auto_lambda": dict(loss_weighting=lambda: AutoLambda(learning_rate=0.05)),
    "learned/auto_lambda_central_difference": dict(
        loss_weighting=lambda: AutoLambda(learning_rate=0.05, meta_gradient="central_difference")
    ),
}


def uses_meta_batches(name):
    return name.startswith("learned/auto_lambda")


def tanh_model(seed=0):
    """x → tanh trunk → linear heads (the primary "label" and two auxiliary
    tasks): small, and non-linear so that the tasks' gradients disagree."""
    return trunk_model(seed, AUXILIARY, activation="tanh")


def make_data(seed=3):
    """Training data and, for Auto-λ, a meta batch per step (primary task only)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_SAMPLES, N_IN)).astype("float32")
    y = {
        "label": rng.normal(size=(N_SAMPLES, 2)).astype("float32"),
        **{t: rng.normal(size=(N_SAMPLES, 3)).astype("float32") for t in AUXILIARY},
    }
    xm = rng.normal(size=(N_SAMPLES, N_IN)).astype("float32")
    ym = rng.normal(size=(N_SAMPLES, 2)).astype("float32")
    return x, y, xm, ym


def compiled_model(name):
    model = tanh_model()
    arguments = {k: v() if callable(v) else v for k, v in CONFIGS[name].items()}
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        loss="mse",
        loss_weights={"recon": 0.5, "side": 2.0},
        **arguments,
    )
    return model


def result_of(model, logs):
    """Everything the steps changed: weights (the loss weighting's trained
    parameters included), censoring state, loss weighting state, and the
    last logs (losses, ``<task>_weight``, cosines...)."""
    weighting_state = model.loss_weighting_state
    return {
        "logs": {k: float(v) for k, v in sorted(logs.items())},
        "weights": [np.asarray(v, np.float64).tolist() for v in model.trainable_variables],
        "all_weights": [np.asarray(w, np.float64).tolist() for w in model.get_weights()],
        "censor_state": [
            np.asarray(s, np.float64).tolist() for s in keras.tree.flatten(model.censor_state)
        ],
        "weighting_state": [
            np.asarray(s, np.float64).tolist()
            for s in keras.tree.flatten(weighting_state if weighting_state is not None else {})
        ],
    }


def train_jax(name):
    """Two steps on the JAX backend, one global batch each (`train_on_batch`
    takes `TaskData` there, for the meta batches)."""
    x, y, xm, ym = make_data()
    model = compiled_model(name)
    for step in range(N_SAMPLES // BATCH):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        train = (x[batch], {t: v[batch] for t, v in y.items()})
        if uses_meta_batches(name):
            logs = model.train_on_batch(
                TaskData(train, {}, (xm[batch], ym[batch])), return_dict=True
            )
        else:
            logs = model.train_on_batch(*train, return_dict=True)
    return result_of(model, logs)


def assert_same_results(test, one, two, name):
    """``two`` (two replicas) equals ``one`` (one device), after steps that
    moved the weights."""
    initial = [np.asarray(v, np.float64) for v in tanh_model().trainable_variables]
    test.assertFalse(
        all(np.allclose(a, b) for a, b in zip(initial, one["weights"])), f"{name}: no step"
    )
    test.assertEqual(sorted(one["logs"]), sorted(two["logs"]), name)
    for key, value in one["logs"].items():
        test.assertAllClose(two["logs"][key], value, atol=1e-6, rtol=1e-5, msg=f"{name}: {key}")
    for key in ("weights", "all_weights", "censor_state", "weighting_state"):
        test.assertEqual(len(one[key]), len(two[key]), f"{name}: {key}")
        for i, (a, b) in enumerate(zip(one[key], two[key])):
            test.assertAllClose(b, a, atol=1e-6, rtol=1e-5, msg=f"{name}: {key}[{i}]")


@requires_tensorflow_backend
class ReplicaMeanTest(TestCase):
    def test_replica_mean_is_the_mean_with_the_gradient_of_the_replicas_own_value(self):
        import tensorflow as tf

        from keras_aux.models import distribution
        from keras_aux.testing import mirrored_strategy

        if len(tf.config.list_logical_devices("CPU")) < 2:
            self.skipTest("needs 2 logical CPU devices (configured in conftest.py)")
        strategy = mirrored_strategy()
        local = np.array([[1.0, 4.0], [3.0, -2.0]], "float32")  # replica r holds local[r]
        values = strategy.experimental_distribute_values_from_function(
            lambda context: tf.constant(local[context.replica_id_in_sync_group])
        )

        @tf.function
        def step(value):
            replica = tf.distribute.get_replica_context().replica_id_in_sync_group
            with tf.GradientTape() as tape:
                tape.watch(value)
                mean = distribution.replica_mean(value)
                # Weighted by replica, so that a gradient summed over replicas would differ.
                objective = tf.cast(replica + 1, tf.float32) * tf.reduce_sum(tf.square(mean))
            (mean_again,) = distribution.all_reduce_mean([value])
            return mean, mean_again, tape.gradient(objective, value)

        results = strategy.run(step, args=(values,))
        means, means_again, gradients = (strategy.experimental_local_results(r) for r in results)
        expected = local.mean(axis=0)
        for r in range(2):
            self.assertAllClose(means[r], expected)
            self.assertAllClose(means_again[r], expected)
            # d/dx_r (r + 1) Σ m², m the mean read as if it were x_r: 2 (r + 1) m.
            self.assertAllClose(gradients[r], 2.0 * (r + 1) * expected)


# Every configuration trains twice (about 90 s of test time in all): the integration tier
# runs this class; the fast tier keeps MirroredStrategy's own checks (auxiliary_test.py,
# maxl/backend/tensorflow_trainer_test.py) and the replica mean above.
@pytest.mark.integration
@requires_tensorflow_backend
class MirroredStrategyMethodsTest(TestCase):
    def train_tensorflow(self, name, strategy):
        import tensorflow as tf

        x, y, xm, ym = make_data()
        with strategy.scope():
            model = compiled_model(name)
        train = tf.data.Dataset.from_tensor_slices((x, y)).batch(BATCH)
        if uses_meta_batches(name):
            from keras_aux.models import with_meta_batches

            meta = tf.data.Dataset.from_tensor_slices((xm, ym)).batch(BATCH)
            train = with_meta_batches(train, meta=meta)
        history = model.fit(train, epochs=1, verbose=0).history
        return result_of(model, {k: v[-1] for k, v in history.items()})

    def assert_two_replicas_match_one_device(self, group):
        """Each configuration of ``group`` (a `CONFIGS` prefix) trains on one
        device and on two replicas, from the same weights and batches."""
        import tensorflow as tf

        from keras_aux.testing import mirrored_strategy

        if len(tf.config.list_logical_devices("CPU")) < 2:
            self.skipTest("needs 2 logical CPU devices (configured in conftest.py)")
        names = [name for name in CONFIGS if name.startswith(group + "/")]
        self.assertTrue(names, group)
        for name in names:
            with self.subTest(name):
                keras.backend.clear_session()
                one = self.train_tensorflow(name, tf.distribute.get_strategy())
                keras.backend.clear_session()
                two = self.train_tensorflow(name, mirrored_strategy())
                assert_same_results(self, one, two, name)

    # One test per group, so that pytest-xdist's workers share them.
    @pytest.mark.filterwarnings("ignore")
    def test_forward_gradient_path(self):
        self.assert_two_replicas_match_one_device("forward")

    @pytest.mark.filterwarnings("ignore")
    def test_loss_weightings(self):
        # Failed before the task losses were averaged over replicas (DWA, GradNorm, GLS, FAMO
        # read each replica's own losses) and the parameter snapshot was kept per replica
        # (uncertainty weighting's logged weight).
        self.assert_two_replicas_match_one_device("weighting")

    @pytest.mark.filterwarnings("ignore")
    def test_aggregators(self):
        self.assert_two_replicas_match_one_device("aggregator")

    @pytest.mark.filterwarnings("ignore")
    def test_learned_methods(self):
        # Auto-λ failed before its look-ahead gradient, meta-gradient and products were
        # averaged over replicas.
        self.assert_two_replicas_match_one_device("learned")


# Every configuration on one device or over two (XLA's host platform split in
# two); prints the results of each.
_DATA_PARALLEL = textwrap.dedent(
    """
    import json, sys
    import keras
    from keras_aux.models import distribution_methods_test as t
    devices = keras.distribution.list_devices("cpu")
    assert len(devices) == 2, devices
    if sys.argv[1] == "data_parallel":
        keras.distribution.set_distribution(keras.distribution.DataParallel(devices=devices))
    print("RESULT " + json.dumps({name: t.train_jax(name) for name in t.CONFIGS}))
    """
)


def _run_jax(mode):
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
        XLA_FLAGS="--xla_force_host_platform_device_count=2",
    )
    result = subprocess.run(
        [sys.executable, "-c", _DATA_PARALLEL, mode],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, result.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT ") :])


# The TensorFlow tiers check MirroredStrategy above.
@jax_tier_only
class DataParallelMethodsTest(TestCase):
    def test_two_devices_give_the_update_and_state_of_one(self):
        one, two = _run_jax("one_device"), _run_jax("data_parallel")
        self.assertEqual(sorted(one), sorted(CONFIGS))
        for name in CONFIGS:
            with self.subTest(name):
                assert_same_results(self, one[name], two[name], name)
