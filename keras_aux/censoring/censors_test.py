"""Tests of the censoring objects (`Censor`, the modes, `MovingAverage`, `PCGrad`)
against independent numpy computations, their serialization, XLA and JAX."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_aux import censoring
from keras_aux.censoring.functions_test import (
    SHAPES,
    assert_lists_close,
    np_combine,
    random_grads,
    to_tf,
)


def np_pcgrad(tasks):
    """PCGrad (fixed order) on lists of numpy arrays, written from Yu et al. 2020."""
    out = []
    for i, task in enumerate(tasks):
        g = [None if x is None else x.astype(np.float64).copy() for x in task]
        for j, other in enumerate(tasks):
            if j == i:
                continue
            shared = [v for v in range(len(g)) if g[v] is not None and other[v] is not None]
            if not shared:
                continue
            x = np.concatenate([g[v].ravel() for v in shared])
            y = np.concatenate([other[v].ravel() for v in shared])
            dot = x @ y
            if dot < 0 and y @ y > 0:
                for v in shared:
                    g[v] = g[v] - dot / (y @ y) * other[v]
        out.append(g)
    return out


@pytest.mark.parametrize("name", censoring.MODES)
def test_get_finds_todays_names_and_matches_combine(name):
    rng = np.random.default_rng(0)
    p = random_grads(rng, SHAPES, none_at=(3,))
    a = random_grads(rng, SHAPES, none_at=(2,))
    for granularity in censoring.GRANULARITIES:
        method = censoring.get(name, granularity=granularity)
        assert isinstance(method, censoring.MODE_CLASSES[name])
        grads, state = method.update(to_tf(p), [to_tf(a)], [0.4], method.init([]))
        assert state == ()
        assert_lists_close(grads, np_combine(p, [a], [0.4], name, granularity))


def test_moving_average_matches_numpy_recursion_and_is_pure():
    rng = np.random.default_rng(3)
    alpha = 0.1
    variables = [tf.Variable(np.zeros(s, np.float32)) for s in SHAPES]
    method = censoring.get("projection", ema_alpha=alpha)
    assert isinstance(method, censoring.MovingAverage)
    state = method.init(variables)
    expected_m = None
    for _ in range(5):
        p = random_grads(rng, SHAPES, none_at=(3,))
        a = random_grads(rng, SHAPES, none_at=(2,))
        if expected_m is None:
            expected_m = [np.zeros(s) if g is None else g.copy() for g, s in zip(p, SHAPES)]
        else:
            expected_m = [
                m if g is None else alpha * g + (1 - alpha) * m for g, m in zip(p, expected_m)
            ]
        before = [np.asarray(x).copy() for x in state["average"]]
        grads, new_state = method.update(to_tf(p), [to_tf(a)], [0.5], state)
        # Pure: the old state is not modified.
        assert_lists_close([np.asarray(x) for x in state["average"]], before)
        reference = [None if g is None else m for g, m in zip(p, expected_m)]
        assert_lists_close(
            grads, np_combine(p, [a], [0.5], "projection", "global", reference=reference)
        )
        assert_lists_close([np.asarray(x) for x in new_state["average"]], expected_m)
        state = new_state


def test_moving_average_alpha_one_is_no_averaging():
    method = censoring.MovingAverage("projection", 1.0)
    state = method.init([tf.zeros(3)])
    _, state = method.update([tf.constant([1.0, 2.0, 3.0])], [[tf.ones(3)]], [1.0], state)
    _, state = method.update([tf.constant([-1.0, 0.0, 5.0])], [[tf.ones(3)]], [1.0], state)
    np.testing.assert_allclose(np.asarray(state["average"][0]), [-1.0, 0.0, 5.0])


def test_pcgrad_matches_numpy_and_removes_conflicts():
    rng = np.random.default_rng(5)
    for trial in range(10):
        p = random_grads(rng, SHAPES, none_at=(3,))
        tasks = [random_grads(rng, SHAPES, none_at=(2,)) for _ in range(3)]
        if trial == 0:  # tasks 0 and 1 exactly opposed on variable 0
            tasks[1][0] = -tasks[0][0]
        projected = np_pcgrad(tasks)
        got = censoring.project_conflicts([to_tf(t) for t in tasks])
        for g, e in zip(got, projected):
            assert_lists_close(g, e)
        # Composed with projection against the primary.
        method = censoring.PCGrad(censoring.Projection())
        grads, _ = method.update(to_tf(p), [to_tf(t) for t in tasks], [0.5, 1.0, 2.0], ())
        expected = np_combine(p, projected, [0.5, 1.0, 2.0], "projection", "global")
        assert_lists_close(grads, expected)


def test_pcgrad_two_opposed_tasks_hand_computed():
    # a1 = (1, 0), a2 = (-1, 1): a1·a2 = -1 < 0.
    # a1' = a1 + (1/2) a2 = (0.5, 0.5); a2' = a2 + 1 · a1 = (0, 1).
    got = censoring.project_conflicts([[tf.constant([1.0, 0.0])], [tf.constant([-1.0, 1.0])]])
    np.testing.assert_allclose(got[0][0].numpy(), [0.5, 0.5])
    np.testing.assert_allclose(got[1][0].numpy(), [0.0, 1.0])
    # Neither conflicts with the other's original gradient any more.
    assert float(tf.reduce_sum(got[0][0] * tf.constant([-1.0, 1.0]))) >= 0
    assert float(tf.reduce_sum(got[1][0] * tf.constant([1.0, 0.0]))) >= 0


@keras.saving.register_keras_serializable(package="keras_aux_test")
class ClippedAuxiliary(censoring.Censor):
    """A user's method: each auxiliary gradient clipped to a global norm."""

    def __init__(self, max_norm=1.0):
        self.max_norm = max_norm

    def update(self, primary, auxiliary, weights, state, reference=None):
        out = list(primary)
        for task, lam in zip(auxiliary, weights):
            clipped, _ = tf.clip_by_global_norm([g for g in task if g is not None], self.max_norm)
            clipped = iter(clipped)
            for i, g in enumerate(task):
                if g is not None:
                    c = lam * next(clipped)
                    out[i] = c if out[i] is None else out[i] + c
        return out, state

    def get_config(self):
        return {"max_norm": self.max_norm}


@pytest.mark.parametrize(
    "method",
    [
        censoring.Projection("per_variable"),
        censoring.MovingAverage(censoring.WeightedCosine(), 0.25),
        censoring.PCGrad(censoring.MovingAverage("projection", 0.5)),
        ClippedAuxiliary(0.5),
    ],
    ids=repr,
)
def test_serialization_round_trips(method):
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(method)))
    revived = keras.saving.deserialize_keras_object(config)
    assert type(revived) is type(method)
    assert revived.get_config() == method.get_config()
    assert censoring.get(config).get_config() == method.get_config()


def test_get_rejects_bad_identifiers():
    with pytest.raises(ValueError, match="Unknown censoring 'pcgradd'"):
        censoring.get("pcgradd")
    with pytest.raises(ValueError, match="must be a name"):
        censoring.get(3)
    with pytest.raises(ValueError, match="granularity` is set on the censoring instance"):
        censoring.get(censoring.Projection(), granularity="per_variable")
    with pytest.raises(ValueError, match="granularity"):
        censoring.Projection("layer")
    with pytest.raises(ValueError, match="PCGrad needs a method"):
        censoring.PCGrad("single_task")
    with pytest.raises(NotImplementedError, match="must implement `update`"):
        censoring.Censor().update([], [], [], ())


@pytest.mark.parametrize("name", [*censoring.NAMES, "ema"])
def test_update_traces_under_xla(name):
    rng = np.random.default_rng(4)
    p = random_grads(rng, SHAPES, none_at=(3,))
    tasks = [random_grads(rng, SHAPES, none_at=(2,)) for _ in range(2)]
    method = censoring.get("projection", ema_alpha=0.5) if name == "ema" else censoring.get(name)
    state = method.init([tf.zeros(s) for s in SHAPES])

    def step(p_present, tasks_present, state):
        # None gradients are structure, not arguments: rebuilt inside.
        primary = [*p_present, None]
        auxiliary = [[t[0], t[1], None, t[2]] for t in tasks_present]
        return method.update(primary, auxiliary, [0.7, 0.2], state)

    args = (
        [tf.constant(g, tf.float32) for g in p[:3]],
        [[tf.constant(t[v], tf.float32) for v in (0, 1, 3)] for t in tasks],
        state,
    )
    eager = step(*args)
    compiled = tf.function(step, jit_compile=True)
    xla = compiled(*args)
    # The HLO exists only if XLA compiled the update.
    assert "HloModule" in compiled.experimental_get_compiler_ir(*args)(stage="hlo")
    keras.tree.map_structure(
        lambda x, y: np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-5),
        eager,
        xla,
    )


JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import jax, jax.numpy as jnp
    from keras_aux import censoring

    rng = np.random.default_rng(0)
    p = [rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=4).astype("float32")]
    a = [[rng.normal(size=(3, 2)).astype("float32"), None] for _ in range(2)]
    method = censoring.PCGrad(censoring.MovingAverage("projection", 0.5))
    state = method.init([jnp.zeros((3, 2)), jnp.zeros(4)])
    to_jax = lambda xs: [None if x is None else jnp.asarray(x) for x in xs]
    step = jax.jit(lambda p, a, s: method.update(p, a, [1.0, 0.5], s))
    grads, state = step(to_jax(p), [to_jax(t) for t in a], state)
    assert isinstance(grads[0], jax.Array), type(grads[0])
    np.save("{out}", np.concatenate([np.asarray(grads[0]).ravel(), np.asarray(grads[1])]))
    """
)


def test_pure_functions_run_on_jax_arrays(tmp_path):
    pytest.importorskip("jax", reason="jax is not installed in this environment")
    out = tmp_path / "grads.npy"
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT.format(out=out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rng = np.random.default_rng(0)
    p = [rng.normal(size=(3, 2)).astype("float32"), rng.normal(size=4).astype("float32")]
    a = [[rng.normal(size=(3, 2)).astype("float32"), None] for _ in range(2)]
    # First step of a moving average: the reference is p itself.
    expected = np_combine(p, np_pcgrad(a), [1.0, 0.5], "projection", "global")
    got = np.load(out)
    np.testing.assert_allclose(
        got, np.concatenate([expected[0].ravel(), expected[1]]), atol=1e-5, rtol=1e-5
    )
