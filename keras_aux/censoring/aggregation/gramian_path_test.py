"""Tests of the Gramian path of `Aggregated` and `AuxiliaryAggregated`
(`aggregate_by_gramian`): the flat path's numbers for every Gramian-weighted
method (None gradients, mixed shapes and dtypes, scales, state), against
independent NumPy computations (mean weights; MGDA's two-row closed form),
and without ever building the flat matrix.

Backend-neutral (no TensorFlow import): the JAX tier runs it under JAX."""

import keras
import numpy as np
import pytest
from keras import ops

from keras_aux.censoring import aggregation as agg
from keras_aux.censoring.aggregation.censor import aggregate_by_gramian, aggregate_flat

# Mixed shapes; variable 1 is reached by the primary task only, variable 3 by no task.
SHAPES = [(3, 2), (4,), (2, 2, 2), (5,), (7,)]
GRAMIAN_METHODS = [
    name for name in agg.NAMES if isinstance(agg.get(name), agg.GramianWeightedAggregator)
]


def random_tasks(rng, num_auxiliary, dtype="float32"):
    """[primary, auxiliary...] gradient lists as NumPy arrays, with Nones."""
    primary = [rng.normal(size=s).astype(dtype) for s in SHAPES]
    primary[3] = None
    auxiliary = []
    for k in range(num_auxiliary):
        grads = [rng.normal(size=s).astype(dtype) for s in SHAPES]
        grads[1] = grads[3] = None
        if k % 2:
            grads[4] = None  # a head only some tasks reach
        auxiliary.append(grads)
    return primary, auxiliary


def tensors(grads):
    return [None if g is None else ops.convert_to_tensor(g) for g in grads]


def numpy_of(grads):
    return [None if g is None else ops.convert_to_numpy(g) for g in grads]


def assert_close(got, expected, rtol):
    """Per variable: None alike, same shape, within ``rtol`` of the largest entry."""
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g is None) == (e is None)
        if e is None:
            continue
        g, e = np.asarray(g, np.float64), np.asarray(e, np.float64)
        assert g.shape == e.shape
        np.testing.assert_allclose(g, e, rtol=0, atol=rtol * np.max(np.abs(e)))


# CAGrad's 500 solver iterations run op by op here (eager): 100 keep the test fast.
OPTIONS = {"cagrad": {"iterations": 100}}


def aggregator_for(name, num_rows):
    aggregator = agg.get(name, **OPTIONS.get(name, {}))
    return aggregator, aggregator.init(num_rows)


def concatenated(grads):
    return np.concatenate(
        [np.ravel(ops.convert_to_numpy(g)).astype(np.float64) for g in grads if g is not None]
    )


def relative_difference(got, expected):
    """``‖got − expected‖ / ‖expected‖`` over every variable."""
    got, expected = concatenated(got), concatenated(expected)
    return np.linalg.norm(got - expected) / np.linalg.norm(expected)


@pytest.mark.parametrize("name", GRAMIAN_METHODS)
def test_gramian_path_equals_flat_path(name):
    rng = np.random.default_rng(0)
    primary, auxiliary = random_tasks(rng, 3)
    tasks = [tensors(primary)] + [tensors(a) for a in auxiliary]
    tasks64 = [[None if g is None else ops.cast(g, "float64") for g in task] for task in tasks]
    scales = [None, 0.5, 2.0, 1.5]
    aggregator, state = aggregator_for(name, len(tasks))
    # A stateful method twice: the second call from the first's state (GradVac's targets,
    # the counters).
    for _ in range(2 if aggregator.stateful else 1):
        flat, flat_state = aggregate_flat(aggregator, tasks, scales, state)
        gramian, gramian_state = aggregate_by_gramian(aggregator, tasks, scales, state)
        exact, _ = aggregate_flat(aggregator, tasks64, scales, state)
        # 1e-6 relative, or twice the flat path's own float32 error where the method is more
        # sensitive than that: Aligned-MTL's Λ^(−½) amplifies the rounding of G (measured
        # 1.3e-6 on JAX, where its flat path happens to be closer to float64).
        floor = 3e-6 if name == "aligned_mtl" else 1e-6
        tolerance = max(floor, 2.0 * relative_difference(flat, exact))
        assert relative_difference(gramian, flat) <= tolerance
        assert relative_difference(gramian, exact) <= tolerance
        assert [g is None for g in gramian] == [g is None for g in flat]
        assert gramian[3] is None
        for g, f in zip(gramian, flat):
            assert g is None or tuple(g.shape) == tuple(f.shape)
            assert g is None or keras.backend.standardize_dtype(g.dtype) == "float32"
        keras.tree.map_structure(
            lambda a, b: np.testing.assert_allclose(
                ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-6
            ),
            gramian_state,
            flat_state,
        )
        state = flat_state


@pytest.mark.parametrize("name", ["upgrad", "mgda", "gradvac"])
def test_auxiliary_aggregated_gramian_path_equals_flat_path(name):
    rng = np.random.default_rng(1)
    primary, auxiliary = random_tasks(rng, 4)
    weights = [0.5, 2.0, 1.0, 0.25]
    censor = agg.AuxiliaryAggregated(name, "projection", num_auxiliary=4)
    state = censor.init([])
    grads, new_state = censor.update(
        tensors(primary), [tensors(a) for a in auxiliary], weights, state
    )
    combined, aggregator_state = aggregate_flat(
        censor.aggregator, [tensors(a) for a in auxiliary], weights, state["aggregator"]
    )
    expected, _ = censor.censor.update(tensors(primary), [combined], [1.0], state["censor"])
    assert_close(numpy_of(grads), numpy_of(expected), rtol=1e-6)
    keras.tree.map_structure(
        lambda a, b: np.testing.assert_allclose(
            ops.convert_to_numpy(a), ops.convert_to_numpy(b), atol=1e-6
        ),
        new_state["aggregator"],
        aggregator_state,
    )


class MeanWeighting(agg.GramianWeightedAggregator):
    """``w = 1/K`` from the Gramian's size; its flat path must never run."""

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        return ops.full((k,), 1.0 / k, dtype=gramian_.dtype), state

    def update(self, matrix, state):
        raise AssertionError("the flat matrix was built")


def test_aggregated_takes_the_gramian_path_mean_weights_against_numpy():
    rng = np.random.default_rng(2)
    primary, auxiliary = random_tasks(rng, 3)
    weights = [0.5, 2.0, 1.5]
    censor = agg.Aggregated(MeanWeighting())
    grads, _ = censor.update(tensors(primary), [tensors(a) for a in auxiliary], weights, ())
    rows = [primary] + auxiliary
    scales = [1.0] + weights
    expected = []
    for v in range(len(SHAPES)):
        present = [s * r[v].astype(np.float64) for s, r in zip(scales, rows) if r[v] is not None]
        expected.append(sum(present) / len(rows) if present else None)
    assert_close(numpy_of(grads), expected, rtol=1e-6)


def test_mgda_two_rows_against_the_closed_form():
    rng = np.random.default_rng(3)
    primary, auxiliary = random_tasks(rng, 1)
    weight = 0.7
    grads, _ = agg.Aggregated("mgda").update(
        tensors(primary), [tensors(auxiliary[0])], [weight], ()
    )

    def flat(grads):
        return np.concatenate(
            [np.zeros(int(np.prod(s))) if g is None else g.ravel() for g, s in zip(grads, SHAPES)]
        ).astype(np.float64)

    a, b = flat(primary), weight * flat(auxiliary[0])
    # min_{γ ∈ [0, 1]} ‖γ a + (1 − γ) b‖²: γ = ⟨b − a, b⟩ / ‖a − b‖², clipped.
    gamma = np.clip(np.dot(b - a, b) / np.dot(a - b, a - b), 0.0, 1.0)
    assert 0.0 < gamma < 1.0  # an interior solution: the test reads the formula
    expected = gamma * a + (1.0 - gamma) * b
    got = np.concatenate(
        [
            np.zeros(int(np.prod(s))) if g is None else np.ravel(g)
            for g, s in zip(numpy_of(grads), SHAPES)
        ]
    )
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5 * np.max(np.abs(expected)))


def test_dtypes_as_the_flat_path():
    rng = np.random.default_rng(4)
    aggregator = agg.UPGrad()
    # float64 everywhere: combined in float64 (where the backend keeps float64: JAX without
    # jax_enable_x64 makes it float32).
    primary, auxiliary = random_tasks(rng, 2, dtype="float64")
    tasks = [tensors(primary)] + [tensors(a) for a in auxiliary]
    if keras.backend.standardize_dtype(tasks[0][0].dtype) == "float64":
        flat, _ = aggregate_flat(aggregator, tasks, [None, 1.0, 3.0], ())
        gramian, _ = aggregate_by_gramian(aggregator, tasks, [None, 1.0, 3.0], ())
        assert_close(numpy_of(gramian), numpy_of(flat), rtol=1e-12)
        assert all(
            g is None or keras.backend.standardize_dtype(g.dtype) == "float64" for g in gramian
        )
    # A float16 variable among float32 ones: combined in float32, returned in float16.
    primary, auxiliary = random_tasks(rng, 2)
    primary[0] = primary[0].astype("float16")
    for a in auxiliary:
        a[0] = a[0].astype("float16")
    tasks = [tensors(primary)] + [tensors(a) for a in auxiliary]
    flat, _ = aggregate_flat(aggregator, tasks, [None, 1.0, 3.0], ())
    gramian, _ = aggregate_by_gramian(aggregator, tasks, [None, 1.0, 3.0], ())
    assert_close(numpy_of(gramian), numpy_of(flat), rtol=1e-3)
    assert [None if g is None else keras.backend.standardize_dtype(g.dtype) for g in gramian] == [
        None if g is None else keras.backend.standardize_dtype(g.dtype) for g in flat
    ]
    assert keras.backend.standardize_dtype(gramian[0].dtype) == "float16"


def test_no_variable_reached_gives_nones_and_keeps_the_state():
    aggregator = agg.RandomWeighting(seed=3)
    state = aggregator.init(2)
    grads, new_state = aggregate_by_gramian(
        aggregator, [[None, None], [None, None]], [None, 1.0], state
    )
    assert grads == [None, None]
    assert int(ops.convert_to_numpy(new_state)) == 0
