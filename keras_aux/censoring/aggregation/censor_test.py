"""Tests of `Aggregated`: the same as `aggregate` on the flattened rows
[p, λ_1 a_1, ...], state threading, serialization, and one aggregator under JAX."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_aux.censoring import Censor
from keras_aux.censoring import aggregation as agg
from keras_aux.censoring.aggregation.aggregators_test import J_BASE, np_gradvac, np_upgrad
from keras_aux.testing import TestCase

SHAPES = [(3, 2), (4,), (2, 2, 2), (5,)]


def random_grads(rng, none_at=()):
    return [None if i in none_at else rng.normal(size=s) for i, s in enumerate(SHAPES)]


def flatten(grads):
    return np.concatenate(
        [np.zeros(int(np.prod(s))) if g is None else g.ravel() for g, s in zip(grads, SHAPES)]
    )


def to_tf(grads):
    return [None if g is None else tf.constant(g) for g in grads]


@pytest.mark.parametrize("name", ["upgrad", "mgda", "pcgrad", "config", "graddrop", "random"])
def test_aggregated_equals_aggregate_on_flattened_rows(name):
    rng = np.random.default_rng(0)
    p = random_grads(rng, none_at=(3,))
    a = [random_grads(rng, none_at=(1, 3)), random_grads(rng, none_at=(3,))]
    weights = [0.5, 2.0]
    censor = agg.Aggregated(name)
    assert isinstance(censor, Censor)
    grads, state = censor.update(to_tf(p), [to_tf(x) for x in a], weights, censor.init([]))
    matrix = np.stack([flatten(p)] + [w * flatten(x) for w, x in zip(weights, a)])
    aggregator = agg.get(name)
    expected, expected_state = aggregator.update(tf.constant(matrix), aggregator.init(3))
    assert grads[3] is None  # None in every row
    got = np.concatenate([np.asarray(g).ravel() for g in grads if g is not None])
    np.testing.assert_allclose(got, np.asarray(expected)[: got.size], atol=1e-12)
    for g, s in zip(grads, SHAPES):
        assert g is None or tuple(g.shape) == s
    keras.tree.map_structure(
        lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)),
        state,
        expected_state,
    )
    if name == "upgrad":
        np.testing.assert_allclose(got, np_upgrad(matrix)[: got.size], atol=1e-6)


def test_gradvac_threads_its_state_and_needs_the_task_count():
    with pytest.raises(ValueError, match="num_auxiliary"):
        agg.Aggregated("gradvac")
    censor = agg.Aggregated("gradvac", num_auxiliary=2, beta=0.3)
    state = censor.init([])
    assert tuple(state.shape) == (3, 3)
    targets = np.zeros((3, 3))
    rng = np.random.default_rng(1)
    step = tf.function(censor.update, jit_compile=True, autograph=False)
    for _ in range(3):
        p, a1, a2 = (random_grads(rng) for _ in range(3))
        grads, state = step(to_tf(p), [to_tf(a1), to_tf(a2)], [1.0, 0.5], state)
        matrix = np.stack([flatten(p), flatten(a1), 0.5 * flatten(a2)])
        expected, targets = np_gradvac(matrix, targets, beta=0.3)
        got = np.concatenate([np.asarray(g).ravel() for g in grads])
        # float32 targets in the state: single-precision agreement.
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(state), targets, atol=1e-6)


def test_float32_gradients_keep_their_dtype():
    rng = np.random.default_rng(2)
    p = [g.astype(np.float32) for g in random_grads(rng)]
    a = [g.astype(np.float32) for g in random_grads(rng)]
    censor = agg.Aggregated("dual_proj")
    grads, _ = censor.update(to_tf(p), [to_tf(a)], [1.0], censor.init([]))
    assert all(keras.backend.standardize_dtype(g.dtype) == "float32" for g in grads)


class AggregatedSerializationTest(TestCase):
    def test_get_config_round_trip(self):
        for censor in (
            agg.Aggregated("cagrad", c=0.25),
            agg.Aggregated(agg.UPGrad(pref_vector=[0.5, 0.3, 0.2])),
            agg.Aggregated("gradvac", num_auxiliary=3, beta=0.1),
            agg.Aggregated("graddrop", seed=7),
        ):
            revived = self.run_serialization_test(censor)
            self.assertEqual(type(revived.aggregator), type(censor.aggregator))
            self.assertEqual(revived.aggregator.get_config(), censor.aggregator.get_config())
            self.assertEqual(revived.num_auxiliary, censor.num_auxiliary)
        serialized = keras.saving.serialize_keras_object(agg.Aggregated("mgda"))
        again = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
        self.assertIsInstance(again, agg.Aggregated)
        self.assertIsInstance(again.aggregator, agg.MGDA)
        self.assertFalse(again.uses_reference)


JAX_SCRIPT = textwrap.dedent(
    """
    import json
    import numpy as np
    from keras_aux.censoring import aggregation as agg
    j = np.array({j}, dtype=np.float32)
    out = {{
        name: np.asarray(agg.aggregate(name, j, **opts)).tolist()
        for name, opts in [("upgrad", {{}}), ("cagrad", {{"c": 0.5}}), ("nash_mtl", {{}}),
                           ("random", {{}})]
    }}
    import keras
    out["backend"] = keras.backend.backend()
    print(json.dumps(out))
    """
)


# One process per backend: run by the integration tier, as primary_aware_test.py's.
@pytest.mark.integration
def test_same_numbers_under_jax():
    pytest.importorskip("jax", reason="jax is not installed in this environment")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT.format(j=J_BASE.tolist())],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.pop("backend") == "jax"
    j = J_BASE.astype(np.float32)
    for name, vector in out.items():
        options = {"c": 0.5} if name == "cagrad" else {}
        expected = np.asarray(
            tf.function(agg.get(name, **options).__call__, jit_compile=True, autograph=False)(
                tf.constant(j)
            )
        )
        np.testing.assert_allclose(vector, expected, atol=1e-5, err_msg=name)
