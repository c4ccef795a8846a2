"""Tests of the censoring functions (`keras_aux.censoring.functions`) against an
independent numpy implementation."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from keras_aux import censoring
from keras_aux.testing.censoring_reference import np_censor, np_combine


def to_tf(grads):
    return [None if g is None else tf.constant(g, tf.float32) for g in grads]


def assert_lists_close(actual, expected, atol=1e-5):
    assert len(actual) == len(expected)
    for x, y in zip(actual, expected):
        if y is None:
            assert x is None
        else:
            np.testing.assert_allclose(np.asarray(x), y, atol=atol, rtol=1e-5)


# Named geometric cases in 2-D: obtuse, acute, orthogonal, zero a, zero m.
CASES = {
    "obtuse": ([1.0, 0.5], [-2.0, 1.0]),
    "acute": ([1.0, 0.5], [2.0, 1.5]),
    "orthogonal": ([1.0, 2.0], [-2.0, 1.0]),
    "zero_a": ([0.0, 0.0], [1.0, -1.0]),
    "zero_m": ([1.0, -3.0], [0.0, 0.0]),
    "elementwise_zero_m": ([1.0, -3.0], [0.0, 2.0]),
}


@pytest.mark.parametrize("mode,case", list(itertools.product(censoring.MODES, CASES)))
def test_censor_named_cases_match_numpy(mode, case):
    a, m = CASES[case]
    got = censoring.censor(tf.constant(a), tf.constant(m), mode)
    np.testing.assert_allclose(got.numpy(), np_censor(a, m, mode), atol=1e-7)


def test_censor_hand_computed_values():
    # Projection of a=(1, 0.5) against m=(-2, 1): a·m = -1.5, ‖m‖² = 5.
    got = censoring.censor(tf.constant([1.0, 0.5]), tf.constant([-2.0, 1.0]), "projection")
    np.testing.assert_allclose(got.numpy(), [1.0 - 0.6, 0.5 + 0.3], atol=1e-7)
    # Projection removes the component along m entirely: result ⟂ m.
    assert abs(float(tf.reduce_sum(got * tf.constant([-2.0, 1.0])))) < 1e-6
    # Weighted cosine of acute vectors scales a by the cosine.
    a, m = np.array([1.0, 0.0]), np.array([1.0, 1.0])
    got = censoring.censor(tf.constant(a), tf.constant(m), "weighted_cosine")
    np.testing.assert_allclose(got.numpy(), a / np.sqrt(2.0), atol=1e-7)
    # Parameter-wise keeps agreeing elements, halves elements where m is 0.
    got = censoring.censor(
        tf.constant([1.0, -2.0, 3.0]), tf.constant([2.0, 1.0, 0.0]), "parameter_wise"
    )
    np.testing.assert_allclose(got.numpy(), [1.0, 0.0, 1.5])


@pytest.mark.parametrize("mode", censoring.MODES)
def test_censor_random_vectors_match_numpy(mode):
    rng = np.random.default_rng(0)
    for _ in range(20):
        a, m = rng.normal(size=7), rng.normal(size=7)
        got = censoring.censor(tf.constant(a, tf.float32), tf.constant(m, tf.float32), mode)
        np.testing.assert_allclose(got.numpy(), np_censor(a, m, mode), atol=1e-5, rtol=1e-5)


def random_grads(rng, shapes, none_at=()):
    return [None if i in none_at else rng.normal(size=s) for i, s in enumerate(shapes)]


SHAPES = [(3, 4), (4,), (2, 2, 2), (5,)]


@pytest.mark.parametrize(
    "mode,granularity", list(itertools.product(censoring.MODES, censoring.GRANULARITIES))
)
def test_combine_matches_numpy_with_none_gradients(mode, granularity):
    rng = np.random.default_rng(1)
    for trial in range(10):
        # Variable 2 has only a primary gradient (primary head), variable 3
        # only an auxiliary gradient (auxiliary head).
        p = random_grads(rng, SHAPES, none_at=(3,))
        a = random_grads(rng, SHAPES, none_at=(2,))
        if trial == 0:  # an exactly obtuse pair on the shared variables
            a[0], a[1] = -p[0], -p[1]
        lam = 0.3
        got = censoring.combine(to_tf(p), to_tf(a), lam, mode, granularity)
        assert_lists_close(got, np_combine(p, [a], [lam], mode, granularity))


@pytest.mark.parametrize("granularity", censoring.GRANULARITIES)
def test_combine_several_tasks_each_with_own_weight(granularity):
    rng = np.random.default_rng(2)
    p = random_grads(rng, SHAPES, none_at=(3,))
    a1 = random_grads(rng, SHAPES, none_at=(2,))
    a2 = random_grads(rng, SHAPES, none_at=(2, 3))
    got = censoring.combine(to_tf(p), [to_tf(a1), to_tf(a2)], [0.5, 2.0], "projection", granularity)
    expected = np_combine(p, [a1, a2], [0.5, 2.0], "projection", granularity)
    assert_lists_close(got, expected)


def test_global_and_per_variable_differ_when_they_should():
    # Variable 0 is obtuse, variable 1 strongly acute: globally acute.
    p = [np.array([1.0, 0.0]), np.array([10.0, 0.0])]
    a = [np.array([-1.0, 0.0]), np.array([10.0, 0.0])]
    glob = censoring.combine(to_tf(p), to_tf(a), 1.0, "unweighted_cosine", "global")
    per = censoring.combine(to_tf(p), to_tf(a), 1.0, "unweighted_cosine", "per_variable")
    np.testing.assert_allclose(glob[0].numpy(), [0.0, 0.0])  # p + a
    np.testing.assert_allclose(per[0].numpy(), [1.0, 0.0])  # p, a dropped


def test_variable_with_no_gradient_stays_none():
    p = [tf.ones(2), None]
    a = [tf.ones(2), None]
    out = censoring.combine(p, a, 1.0, "projection")
    assert out[1] is None


def test_cosine_similarity_over_shared_variables():
    p = [tf.constant([1.0, 0.0]), tf.constant([3.0]), None]
    a = [tf.constant([0.0, 2.0]), tf.constant([4.0]), tf.constant([9.0])]
    expected = (12.0) / (np.sqrt(10.0) * np.sqrt(20.0))
    np.testing.assert_allclose(float(censoring.cosine_similarity(p, a)), expected, rtol=1e-6)
    assert float(censoring.cosine_similarity([tf.zeros(2)], [tf.ones(2)])) == 0.0


@pytest.mark.parametrize("mode", censoring.MODES)
def test_combine_traces_under_xla(mode):
    rng = np.random.default_rng(4)
    p = random_grads(rng, SHAPES, none_at=(3,))
    a = random_grads(rng, SHAPES, none_at=(2,))

    @tf.function(jit_compile=True)
    def step(p_list, a_list):
        return censoring.combine(p_list, a_list, 0.7, mode, "global")

    got = step(
        [tf.constant(g, tf.float32) for g in p[:3]] + [None],
        [tf.constant(g, tf.float32) for g in a[:2]] + [None, tf.constant(a[3], tf.float32)],
    )
    assert_lists_close(got, np_combine(p, [a], [0.7], mode, "global"))


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="Unknown censoring mode"):
        censoring.censor(tf.ones(2), tf.ones(2), "pcgradd")
    with pytest.raises(ValueError, match="granularity"):
        censoring.combine([tf.ones(2)], [tf.ones(2)], 1.0, "projection", "layer")
    with pytest.raises(ValueError, match="shape"):
        censoring.censor([tf.ones(2)], [tf.ones(3)], "projection")
    with pytest.raises(ValueError, match="one entry per variable"):
        censoring.combine([tf.ones(2), tf.ones(2)], [tf.ones(2)], 1.0)
    with pytest.raises(ValueError, match="weights"):
        censoring.combine([tf.ones(2)], [[tf.ones(2)], [tf.ones(2)]], [1.0])
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        censoring.get("projection", ema_alpha=0.0)
    with pytest.raises(ValueError, match="Variable 1: the primary gradient has shape"):
        censoring.combine([tf.ones(2), tf.ones(3)], [tf.ones(2), tf.ones(4)], 1.0)
    with pytest.raises(ValueError, match="dtype float16"):
        censoring.combine([tf.ones(2)], [tf.ones(2, tf.float16)], 1.0)


def test_embedding_gradients_are_densified():
    # A tape returns tf.IndexedSlices for embedding lookups: rows 0 and 2 of a 4×3 table.
    values = np.array([[1.0, -2.0, 0.5], [3.0, 1.0, -1.0]])
    sparse = tf.IndexedSlices(
        tf.constant(values, tf.float32), tf.constant([0, 2]), tf.constant([4, 3])
    )
    dense = np.zeros((4, 3))
    dense[[0, 2]] = values
    p = [np.ones((4, 3))]
    got = censoring.combine(to_tf(p), [sparse], 0.5, "projection")
    assert_lists_close(got, np_combine(p, [[dense]], [0.5], "projection", "global"))
    expected = float(dense.ravel() @ p[0].ravel()) / (np.linalg.norm(dense) * np.linalg.norm(p[0]))
    np.testing.assert_allclose(
        float(censoring.cosine_similarity(to_tf(p), [sparse])), expected, rtol=1e-6
    )
