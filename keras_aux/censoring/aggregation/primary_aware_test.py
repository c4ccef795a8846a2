"""Tests of the primary-aware forms (docs/aggregation.md, "Primary-aware forms"):
`AuxiliaryAggregated`, `AsymmetricGradVac` and `Aggregated(primary_weight=...)`,
each against an independent NumPy computation, their guarantees as property
tests on random gradients, state threading and resuming, serialization, and
real `fit`s of an `AuxiliaryModel` on this backend and, from TensorFlow, the
same numbers under JAX.

Backend-neutral (no TensorFlow import): the JAX tier runs it under JAX."""

import itertools
import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_aux import censoring
from keras_aux.censoring import aggregation as agg
from keras_aux.models import AuxiliaryModel
from keras_aux.models.backends_test import linear_model, numpy_gradients
from keras_aux.testing import TestCase, requires_tensorflow_backend
from keras_aux.testing.censoring_reference import np_combine, np_pcgrad_rows

SHAPES = [(3, 2), (4,), (2, 2, 2), (5,)]
MODES = ("projection", "unweighted_cosine", "weighted_cosine", "parameter_wise")


def random_grads(rng, none_at=()):
    return [None if i in none_at else rng.normal(size=s) for i, s in enumerate(SHAPES)]


def to_tensors(grads):
    # float32: the JAX tier runs without 64-bit floats.
    return [None if g is None else keras.ops.convert_to_tensor(g, "float32") for g in grads]


def to_numpy(grads):
    return [None if g is None else np.asarray(g, np.float64) for g in grads]


def flat(grads, present=None, shapes=SHAPES):
    """The concatenation over the variables (None as zeros, or only ``present``)."""
    return np.concatenate(
        [
            np.zeros(int(np.prod(s))) if g is None else np.ravel(g)
            for i, (g, s) in enumerate(zip(grads, shapes))
            if present is None or i in present
        ]
    )


def split(vector, variables, shapes=SHAPES):
    """A vector laid out by `flat` over ``variables``, back to one array per variable."""
    out, offset = [None] * len(shapes), 0
    for v in variables:
        size = int(np.prod(shapes[v]))
        out[v] = vector[offset : offset + size].reshape(shapes[v])
        offset += size
    return out


# ---------------------------------------------------------------- numpy references


def np_dual_cone(u, g):
    """argmin vᵀGv s.t. v ≥ u, exactly: the KKT point found by enumerating the
    active sets (fine for the few rows here)."""
    k = len(u)
    for free in itertools.product([False, True], repeat=k):
        free = np.array(free)
        v = u.astype(np.float64).copy()
        if free.any():
            gff = g[np.ix_(free, free)]
            v[free] = np.linalg.solve(gff, -g[np.ix_(free, ~free)] @ u[~free])
        multipliers = g @ v
        if (v >= u - 1e-12).all() and (multipliers[~free] >= -1e-12).all():
            return v
    raise AssertionError("no KKT point")


def np_upgrad(j, pref=None):
    """Quinton & Rey 2024: Σ_i of the projections of p_i e_i, Ĝ = G/tr G + 10⁻⁴ I."""
    k = len(j)
    pref = np.full(k, 1.0 / k) if pref is None else np.asarray(pref, np.float64)
    g = j @ j.T
    g = (g / np.trace(g) if np.trace(g) >= 1e-4 else np.zeros_like(g)) + 1e-4 * np.eye(k)
    return sum(np_dual_cone(np.eye(k)[i] * pref[i], g) for i in range(k)) @ j


def np_dual_proj(j, pref=None):
    k = len(j)
    pref = np.full(k, 1.0 / k) if pref is None else np.asarray(pref, np.float64)
    g = j @ j.T
    g = g / np.trace(g) + 1e-4 * np.eye(k)
    return np_dual_cone(pref, g) @ j


NUMPY_AGGREGATORS = {"upgrad": np_upgrad, "dual_proj": np_dual_proj, "pcgrad": np_pcgrad_rows}


def np_auxiliary_aggregated(
    p, aux, lams, aggregate, mode, granularity="global", reference=None, shapes=SHAPES
):
    """Aggregate the rows λ_k a_k, split the result back, censor it against p."""
    reached = [v for v in range(len(shapes)) if any(a[v] is not None for a in aux)]
    rows = np.stack([lam * flat(a, reached, shapes) for a, lam in zip(aux, lams)])
    combined = split(aggregate(rows), reached, shapes)
    return np_combine(p, [combined], [1.0], mode, granularity, reference)


def np_asymmetric_gradvac(p, aux, lams, targets, beta, eps=1e-8, reference=None, shapes=SHAPES):
    """Wang et al. 2021 on the pairs (a_k, m) only, over the variables both have."""
    m_list = p if reference is None else reference
    out = [None if g is None else g.copy() for g in p]
    targets = np.array(targets, np.float64)
    for k, (a_list, lam) in enumerate(zip(aux, lams)):
        shared = [
            v
            for v in range(len(shapes))
            if p[v] is not None and a_list[v] is not None and m_list[v] is not None
        ]
        adjusted = list(a_list)
        if shared:
            a, m = flat(a_list, shared, shapes), flat(m_list, shared, shapes)
            na, nm = np.linalg.norm(a), np.linalg.norm(m)
            if na > 0 and nm > 0:
                phi, hat = a @ m / (na * nm + eps), targets[k]
                if phi < hat:
                    a = (
                        a
                        + na
                        * (hat * np.sqrt(1 - phi**2) - phi * np.sqrt(1 - hat**2))
                        / (nm * np.sqrt(1 - hat**2) + eps)
                        * m
                    )
                targets[k] = (1 - beta) * hat + beta * phi
            for v, g in enumerate(split(a, shared, shapes)):
                if g is not None:
                    adjusted[v] = g
        for v, g in enumerate(adjusted):
            if g is not None:
                out[v] = lam * g if out[v] is None else out[v] + lam * g
    return out, targets


def np_asymmetric_pcgrad(p, aux, lams):
    """Yu et al.'s rule with the primary as the only other task: a_k loses its
    component along p when ⟨a_k, p⟩ < 0 (over the variables both have)."""
    out = [None if g is None else g.copy() for g in p]
    for a_list, lam in zip(aux, lams):
        shared = [v for v in range(len(SHAPES)) if p[v] is not None and a_list[v] is not None]
        a, m = flat(a_list, shared), flat(p, shared)
        if a @ m < 0:
            a = a - (a @ m) / (m @ m) * m
        adjusted = list(a_list)
        for v, g in enumerate(split(a, shared)):
            if g is not None:
                adjusted[v] = g
        for v, g in enumerate(adjusted):
            if g is not None:
                out[v] = lam * g if out[v] is None else out[v] + lam * g
    return out


def assert_grads_close(got, expected, atol):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert (g is None) == (e is None), (g, e)
        if e is not None:
            np.testing.assert_allclose(np.asarray(g), e, atol=atol, rtol=0)


def random_case(seed, k):
    """Primary (without variable 3), K auxiliary tasks reaching various variables
    (variable 3 is an auxiliary head), λ's, and a reference like p."""
    rng = np.random.default_rng(seed)
    p = random_grads(rng, none_at=(3,))
    aux = [random_grads(rng, none_at=[(1,), (), (0, 2)][i % 3]) for i in range(k)]
    lams = list(rng.uniform(0.2, 2.0, size=k))
    reference = random_grads(rng, none_at=(3,))
    return p, aux, lams, reference


_COMPILED = {}


def step(censor, p, aux, lams, state=None, reference=None):
    """``censor.update`` on NumPy gradient lists, traced once per censor and
    structure (tf.function / jax.jit: the dual-cone solvers are slow eagerly);
    returns the gradients as NumPy arrays (None kept) and the new state."""
    if censor not in _COMPILED:
        backend = keras.backend.backend()
        if backend == "tensorflow":
            import tensorflow as tf

            _COMPILED[censor] = tf.function(censor.update, autograph=False)
        elif backend == "jax":
            import jax

            _COMPILED[censor] = jax.jit(censor.update)
        else:
            _COMPILED[censor] = censor.update
    grads, state = _COMPILED[censor](
        to_tensors(p),
        [to_tensors(a) for a in aux],
        [keras.ops.convert_to_tensor(lam, "float32") for lam in lams],
        censor.init([]) if state is None else state,
        None if reference is None else to_tensors(reference),
    )
    return to_numpy(grads), state


# ---------------------------------------------------------------- AuxiliaryAggregated


@pytest.mark.parametrize("method", list(NUMPY_AGGREGATORS))
@pytest.mark.parametrize("mode", MODES)
def test_auxiliary_aggregated_matches_numpy(method, mode):
    p, aux, lams, reference = random_case(sum(map(ord, method + mode)), 3)
    # Each mode once against the primary, projection and one more mode in the
    # other settings too (the composition does not depend on the mode).
    settings = [("global", None)]
    if mode in ("projection", "weighted_cosine"):
        settings += [("per_variable", None), ("global", reference)]
    for granularity, ref in settings:
        censor = agg.AuxiliaryAggregated(method, censoring.MODE_CLASSES[mode](granularity))
        grads, _ = step(censor, p, aux, lams, reference=ref)
        expected = np_auxiliary_aggregated(
            p, aux, lams, NUMPY_AGGREGATORS[method], mode, granularity, ref
        )
        assert_grads_close(grads, expected, atol=1e-4)


def test_auxiliary_aggregated_never_conflicts_with_the_primary():
    """With any censoring mode but multitask, ⟨update − p, m⟩ ≥ 0 (per variable
    too with per_variable granularity); with projection it is max(⟨d, m⟩, 0),
    ``d`` the aggregation of the rows λ_k a_k. Random gradients, 4 seeds each."""
    settings = [
        (mode, granularity, False) for mode in MODES for granularity in ("global", "per_variable")
    ]
    settings += [("projection", "global", True), ("weighted_cosine", "global", True)]
    for method, k in (("upgrad", 3), ("pcgrad", 2)):
        censors = {
            (mode, granularity): agg.AuxiliaryAggregated(
                method, censoring.MODE_CLASSES[mode](granularity)
            )
            for mode, granularity, _ in settings
        }
        for seed in range(4):
            p, aux, lams, reference = random_case(100 + seed, k)
            rows = np.stack([lam * flat(a) for a, lam in zip(aux, lams)])
            d = np.asarray(agg.aggregate(method, rows.astype(np.float32)), np.float64)
            for mode, granularity, with_reference in settings:
                ref = reference if with_reference else None
                grads, _ = step(censors[mode, granularity], p, aux, lams, reference=ref)
                m_list = reference if with_reference else p
                m = flat(m_list)
                change = flat(grads) - flat(p)
                scale = np.linalg.norm(change) * np.linalg.norm(m)
                assert change @ m >= -1e-6 * scale, (method, seed, mode, granularity)
                if granularity == "per_variable":
                    for v in range(3):  # the variables m has
                        assert np.sum((grads[v] - p[v]) * m_list[v]) >= -1e-6 * scale
                if mode == "parameter_wise":
                    assert ((flat(grads) - flat(p)) * m >= -1e-6 * scale).all()
                if mode == "projection" and granularity == "global":
                    np.testing.assert_allclose(change @ m, max(d @ m, 0.0), atol=1e-5 * scale)


@pytest.mark.parametrize("method", ["upgrad", "dual_proj", "mgda", "pcgrad", "imtl_g", "config"])
def test_one_auxiliary_task_is_the_censoring_mode(method):
    """For K = 1 these aggregators return the single row: the form is the mode."""
    p, aux, lams, reference = random_case(7, 1)
    for mode, references in (("projection", (None, reference)), ("parameter_wise", (None,))):
        censor = agg.AuxiliaryAggregated(method, mode)
        for ref in references:
            got, _ = step(censor, p, aux, lams, reference=ref)
            expected, _ = step(censoring.get(mode), p, aux, lams, reference=ref)
            assert_grads_close(got, expected, atol=1e-5)


def test_auxiliary_aggregated_properties_under_permutation_and_scaling():
    """As TorchJD tests its aggregators: with a permutation-invariant aggregator
    the update does not depend on the order of the auxiliary tasks; scaling the
    primary gradient by c > 0 scales only its own term (projection depends on
    the direction of m alone)."""
    p, aux, lams, _ = random_case(8, 3)
    censor = agg.AuxiliaryAggregated("upgrad", "projection")
    base, _ = step(censor, p, aux, lams)
    order = [2, 0, 1]
    permuted, _ = step(censor, p, [aux[i] for i in order], [lams[i] for i in order])
    assert_grads_close(permuted, base, atol=1e-4)
    scaled, _ = step(censor, [None if g is None else 3.0 * g for g in p], aux, lams)
    expected = [b if g is None else b + 2.0 * g for b, g in zip(base, p)]
    assert_grads_close(scaled, expected, atol=1e-4)


def test_auxiliary_aggregated_threads_a_stateful_aggregator():
    """GradVac over the auxiliary rows keeps its K × K targets in the state."""
    censor = agg.AuxiliaryAggregated("gradvac", "projection", num_auxiliary=2, beta=0.3)
    state = censor.init([])
    assert tuple(state["aggregator"].shape) == (2, 2)
    targets = np.zeros((2, 2))
    for seed in range(3):
        p, aux, lams, _ = random_case(20 + seed, 2)
        _, state = step(censor, p, aux, lams, state)
        rows = np.stack([lam * flat(a) for a, lam in zip(aux, lams)])
        targets = np_gradvac_targets(rows, targets, 0.3)
        np.testing.assert_allclose(np.asarray(state["aggregator"]), targets, atol=1e-5)
    with pytest.raises(ValueError, match="num_auxiliary"):
        agg.AuxiliaryAggregated("gradvac")
    with pytest.raises(ValueError, match="built for 2 auxiliary tasks; got 1"):
        censor.update(to_tensors(p), [to_tensors(aux[0])], [1.0], state)


def np_gradvac_targets(j, targets, beta, eps=1e-8):
    """GradVac's new cosine targets (Wang et al. 2021) on the rows, index order."""
    targets = targets.copy()
    for i in range(len(j)):
        g = j[i].copy()
        for k in range(len(j)):
            if k == i:
                continue
            phi = g @ j[k] / (np.linalg.norm(g) * np.linalg.norm(j[k]) + eps)
            hat = targets[i, k]
            if phi < hat:
                g = (
                    g
                    + np.linalg.norm(g)
                    * (hat * np.sqrt(1 - phi**2) - phi * np.sqrt(1 - hat**2))
                    / (np.linalg.norm(j[k]) * np.sqrt(1 - hat**2) + eps)
                    * j[k]
                )
            targets[i, k] = (1 - beta) * hat + beta * phi
    return targets


# ---------------------------------------------------------------- asymmetric PCGrad / GradVac


def test_asymmetric_pcgrad_is_the_projection_mode():
    """PCGrad's rule with the primary as the only other task, for every K: the
    projection mode (global); and AsymmetricGradVac with β = 0 (targets stay 0)."""
    for k in (1, 2, 4):
        p, aux, lams, _ = random_case(30 + k, k)
        expected = np_asymmetric_pcgrad(p, aux, lams)
        projection, _ = step(censoring.Projection(), p, aux, lams)
        assert_grads_close(projection, expected, atol=1e-5)
        gradvac = agg.AsymmetricGradVac(k, beta=0.0)
        state = None
        for _ in range(2):
            grads, state = step(gradvac, p, aux, lams, state)
            assert_grads_close(grads, expected, atol=1e-5)
            np.testing.assert_array_equal(np.asarray(state), np.zeros(k))


def test_asymmetric_gradvac_matches_numpy_over_steps():
    censor = agg.AsymmetricGradVac(3, beta=0.3)
    state = None
    targets = np.zeros(3)
    for seed in range(4):
        p, aux, lams, reference = random_case(40 + seed, 3)
        # Partly aligned with p: positive and negative cosines both occur.
        aux = [[g if g is None or q is None else g + 0.4 * q for g, q in zip(a, p)] for a in aux]
        ref = reference if seed % 2 else None
        grads, state = step(censor, p, aux, lams, state, reference=ref)
        expected, targets = np_asymmetric_gradvac(p, aux, lams, targets, 0.3, reference=ref)
        assert_grads_close(grads, expected, atol=1e-5)
        # float32 targets (model variables): single-precision agreement.
        np.testing.assert_allclose(np.asarray(state), targets, atol=1e-6)
    assert (np.abs(targets) > 1e-3).all()


def test_asymmetric_gradvac_raises_each_cosine_to_its_target():
    """The guarantee: cos(a_k', m) = max(cos(a_k, m), φ̂_k): each auxiliary
    gradient alone is moved, towards m only (the tasks do not interact)."""
    rng = np.random.default_rng(50)
    for seed in range(6):
        k = 1 + seed % 3
        p = random_grads(rng, none_at=(3,))
        aux = [random_grads(rng, none_at=(3,)) for _ in range(k)]
        targets = rng.uniform(-0.9, 0.9, size=k).astype(np.float32)
        censor = agg.AsymmetricGradVac(k)
        m = flat(p)
        for i, a in enumerate(aux):
            lams = [0.0] * k
            lams[i] = 1.0
            grads, _ = step(censor, p, aux, lams, keras.ops.convert_to_tensor(targets))
            moved, before = flat(grads) - m, flat(a)
            cos_before = before @ m / (np.linalg.norm(before) * np.linalg.norm(m))
            cos_after = moved @ m / (np.linalg.norm(moved) * np.linalg.norm(m))
            np.testing.assert_allclose(cos_after, max(cos_before, targets[i]), atol=1e-5)


def test_asymmetric_gradvac_permutation_and_scaling():
    """Permuting the tasks permutes their targets and leaves the update;
    scaling m by c > 0 changes nothing; scaling λ_k scales task k's term."""
    p, aux, lams, reference = random_case(70, 3)
    targets = np.array([0.3, -0.2, 0.6], np.float32)
    censor = agg.AsymmetricGradVac(3)
    base, base_state = step(censor, p, aux, lams, keras.ops.convert_to_tensor(targets))
    order = [1, 2, 0]
    permuted, permuted_state = step(
        censor,
        p,
        [aux[i] for i in order],
        [lams[i] for i in order],
        keras.ops.convert_to_tensor(targets[order]),
    )
    assert_grads_close(permuted, base, atol=1e-5)
    np.testing.assert_allclose(np.asarray(permuted_state), np.asarray(base_state)[order])
    with_m, _ = step(censor, p, aux, lams, keras.ops.convert_to_tensor(targets), reference)
    scaled_m = [None if g is None else 4.0 * g for g in reference]
    with_scaled_m, _ = step(censor, p, aux, lams, keras.ops.convert_to_tensor(targets), scaled_m)
    assert_grads_close(with_scaled_m, with_m, atol=1e-5)
    scaled_lams = [2.5 * lams[0]] + lams[1:]
    scaled, _ = step(censor, p, aux, scaled_lams, keras.ops.convert_to_tensor(targets))
    expected, _ = np_asymmetric_gradvac(p, aux, scaled_lams, targets, 0.5)
    assert_grads_close(scaled, expected, atol=1e-5)


def test_asymmetric_gradvac_degenerate_gradients_keep_gradient_and_target():
    censor = agg.AsymmetricGradVac(2)
    zeros = [np.zeros(s) for s in SHAPES]
    p, aux, lams, _ = random_case(80, 2)
    for primary, auxiliary in ((zeros, aux), (p, [zeros, aux[1]])):
        grads, state = step(
            censor, primary, auxiliary, lams, keras.ops.convert_to_tensor([0.5, 0.5], "float32")
        )
        assert all(g is None or np.isfinite(g).all() for g in grads)
        expected, expected_targets = np_asymmetric_gradvac(
            primary, auxiliary, lams, [0.5, 0.5], 0.5
        )
        assert_grads_close(grads, expected, atol=1e-5)
        np.testing.assert_allclose(np.asarray(state), expected_targets, atol=1e-6)


# ---------------------------------------------------------------- primary_weight


def test_primary_weight_sets_the_preference_vector():
    p, aux, lams, _ = random_case(90, 2)
    rows = np.stack([flat(p)] + [lam * flat(a) for a, lam in zip(aux, lams)])
    for method, reference in (("upgrad", np_upgrad), ("dual_proj", np_dual_proj)):
        for weight in (0.5, 3.0):
            grads, _ = step(agg.Aggregated(method, primary_weight=weight), p, aux, lams)
            expected = reference(rows, pref=[weight, 1.0, 1.0])
            np.testing.assert_allclose(
                flat(grads), expected, atol=2e-4 * np.abs(expected).max(), err_msg=method
            )


def test_primary_weight_without_conflict_is_the_weighted_sum():
    """With w = 1 and rows that do not conflict, UPGrad and DualProj give
    p + Σ λ_k a_k (the multitask update); w scales the primary's term."""
    rng = np.random.default_rng(91)
    # Positive entries: every pair of rows has a positive inner product.
    p = [np.abs(g) + 0.1 for g in random_grads(rng)]
    aux = [[np.abs(g) for g in random_grads(rng)] for _ in range(2)]
    lams = list(rng.uniform(0.2, 2.0, size=2))
    for method, weight in (("upgrad", 1.0), ("upgrad", 2.0), ("dual_proj", 1.0)):
        grads, _ = step(agg.Aggregated(method, primary_weight=weight), p, aux, lams)
        expected = weight * flat(p) + sum(lam * flat(a) for a, lam in zip(aux, lams))
        np.testing.assert_allclose(flat(grads), expected, rtol=1e-4)


def test_primary_weight_keeps_upgrad_non_conflicting():
    """UPGrad's guarantee holds whatever the preference: ⟨update, row⟩ ≥ 0 for
    the primary and each λ_k a_k (exactly with reg_eps = 0). And, the dual-cone
    problem being invariant to v ↦ Dv, [w, 1, ...] on the rows [p, λ_k a_k] is
    [w, λ_1, ...] on the rows [p, a_k]."""
    for seed in range(3):
        p, aux, lams, _ = random_case(200 + seed, 1 + seed % 3)
        weight = [0.5, 2.0, 5.0][seed % 3]
        censor = agg.Aggregated(agg.UPGrad(reg_eps=0.0), primary_weight=weight)
        grads, _ = step(censor, p, aux, lams)
        update = flat(grads)
        rows = [flat(p)] + [lam * flat(a) for a, lam in zip(aux, lams)]
        scale = np.linalg.norm(update) * max(np.linalg.norm(r) for r in rows)
        assert min(r @ update for r in rows) >= -1e-5 * scale
        raw = np.stack([flat(p)] + [flat(a) for a in aux]).astype(np.float32)
        same = agg.UPGrad(reg_eps=0.0, pref_vector=[weight, *lams])(raw)
        np.testing.assert_allclose(update, np.asarray(same), atol=1e-4 * np.abs(update).max())


def test_primary_weight_bad_input_is_named():
    with pytest.raises(ValueError, match="does not take"):
        agg.Aggregated("mgda", primary_weight=2.0)
    with pytest.raises(ValueError, match="pass one"):
        agg.Aggregated(agg.UPGrad(pref_vector=[0.5, 0.5]), primary_weight=2.0)
    with pytest.raises(ValueError, match="must be positive; got -1.0"):
        agg.Aggregated("upgrad", primary_weight=-1)


# ---------------------------------------------------------------- API and serialization


class PrimaryAwareApiTest(TestCase):
    def test_serialization_round_trip(self):
        for censor in (
            agg.AuxiliaryAggregated("upgrad"),
            agg.AuxiliaryAggregated("cagrad", censoring.WeightedCosine("per_variable"), c=0.25),
            agg.AuxiliaryAggregated("gradvac", "unweighted_cosine", num_auxiliary=3, beta=0.2),
            agg.AuxiliaryAggregated("mgda", agg.AsymmetricGradVac(1, beta=0.1)),
            agg.AsymmetricGradVac(2, beta=0.25, eps=1e-6),
            agg.Aggregated("dual_proj", primary_weight=2.0),
        ):
            revived = self.run_serialization_test(censor)
            self.assertEqual(revived.get_config(), censor.get_config())
            again = censoring.get(
                json.loads(json.dumps(keras.saving.serialize_keras_object(censor)))
            )
            self.assertEqual(type(again), type(censor))
            self.assertEqual(repr(again), repr(censor))
        self.assertEqual(
            keras.saving.serialize_keras_object(agg.AsymmetricGradVac(2))["registered_name"],
            "keras_aux.aggregation>AsymmetricGradVac",
        )

    def test_reference_and_moving_average(self):
        self.assertTrue(agg.AuxiliaryAggregated("upgrad").uses_reference)
        self.assertFalse(agg.AuxiliaryAggregated("upgrad", "multitask").uses_reference)
        self.assertTrue(agg.AsymmetricGradVac(1).uses_reference)
        average = censoring.get(agg.AuxiliaryAggregated("pcgrad"), ema_alpha=0.5)
        self.assertIsInstance(average, censoring.MovingAverage)
        with self.assertRaisesRegex(ValueError, "changes nothing"):
            censoring.get(agg.AuxiliaryAggregated("upgrad", "multitask"), ema_alpha=0.5)

    def test_bad_input_is_named(self):
        with self.assertRaisesRegex(ValueError, "needs a method that uses the auxiliary"):
            agg.AuxiliaryAggregated("upgrad", "single_task")
        with self.assertRaisesRegex(ValueError, "Unknown aggregator"):
            agg.AuxiliaryAggregated("sum")
        with self.assertRaisesRegex(ValueError, r"`beta` must be in \[0, 1\]; got 2"):
            agg.AsymmetricGradVac(2, beta=2)
        with self.assertRaisesRegex(ValueError, "at least 1; got 0"):
            agg.AsymmetricGradVac(0)
        p, aux, lams, _ = random_case(1, 2)
        with self.assertRaisesRegex(ValueError, "built for 3 auxiliary tasks; got 2"):
            agg.AsymmetricGradVac(3).update(
                to_tensors(p), [to_tensors(a) for a in aux], lams, np.zeros(3, np.float32)
            )


# ---------------------------------------------------------------- in a model

AUX_TASKS = ("recon", "extra")
LAMS = {"recon": 1.5, "extra": 0.5}


def model_data(n=16, seed=1):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 5))
    targets = {"label": rng.normal(size=(n, 2))}
    targets.update({t: rng.normal(size=(n, 3)) for t in AUX_TASKS})
    return x.astype("float32"), {k: v.astype("float32") for k, v in targets.items()}


def model_censors():
    return {
        "auxiliary_upgrad_projection": agg.AuxiliaryAggregated("upgrad", "projection"),
        "auxiliary_pcgrad_weighted_cosine": agg.AuxiliaryAggregated("pcgrad", "weighted_cosine"),
        "asymmetric_gradvac": agg.AsymmetricGradVac(2, beta=0.5),
        "upgrad_primary_weight": agg.Aggregated("upgrad", primary_weight=2.0),
    }


def compiled_model(censor, lr=0.1):
    model = linear_model(aux_tasks=AUX_TASKS)
    model.compile(keras.optimizers.SGD(lr), loss="mse", loss_weights=dict(LAMS), censoring=censor)
    return model


def expected_update(name, p, aux, lams, targets, shapes):
    """(update, new targets) of one step, by the NumPy references above."""
    if name == "auxiliary_upgrad_projection":
        return np_auxiliary_aggregated(
            p, aux, lams, np_upgrad, "projection", shapes=shapes
        ), targets
    if name == "auxiliary_pcgrad_weighted_cosine":
        update = np_auxiliary_aggregated(
            p, aux, lams, np_pcgrad_rows, "weighted_cosine", shapes=shapes
        )
        return update, targets
    if name == "asymmetric_gradvac":
        return np_asymmetric_gradvac(p, aux, lams, targets, 0.5, shapes=shapes)
    rows = np.stack(
        [flat(p, shapes=shapes)] + [lam * flat(a, shapes=shapes) for a, lam in zip(aux, lams)]
    )
    vector = np_upgrad(rows, pref=[2.0, 1.0, 1.0])
    return split(vector, range(len(shapes)), shapes), targets


@pytest.mark.parametrize("name", list(model_censors()))
def test_train_steps_match_numpy(name):
    x, targets = model_data()
    model = compiled_model(model_censors()[name])
    variables = model.trainable_variables
    paths = [v.path for v in variables]
    shapes = [tuple(v.shape) for v in variables]
    state_targets = np.zeros(2)
    for _ in range(3):
        grads = numpy_gradients(model, x.astype(np.float64), targets)
        p = [grads["label"].get(path) for path in paths]
        aux = [[grads[t].get(path) for path in paths] for t in AUX_TASKS]
        update, state_targets = expected_update(
            name, p, aux, [LAMS[t] for t in AUX_TASKS], state_targets, shapes
        )
        before = [np.asarray(v) for v in variables]
        model.train_on_batch(x, targets)
        for path, old, u, v in zip(paths, before, update, variables):
            expected = old if u is None else old - 0.1 * u
            np.testing.assert_allclose(np.asarray(v), expected, atol=2e-5, err_msg=f"{name} {path}")
    if name == "asymmetric_gradvac":
        np.testing.assert_allclose(np.asarray(model.censor_state), state_targets, atol=1e-5)


def test_fit_resumed_from_a_saved_model_equals_the_uninterrupted_run(tmp_path):
    """AsymmetricGradVac's targets are training state: a `.keras` file carries
    them, and training resumed from it continues as if never stopped."""
    x, targets = model_data(n=32)
    whole = compiled_model(agg.AsymmetricGradVac(2, beta=0.3))
    whole.fit(x, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
    first = compiled_model(agg.AsymmetricGradVac(2, beta=0.3))
    first.fit(x, targets, batch_size=8, epochs=1, shuffle=False, verbose=0)
    path = os.path.join(tmp_path, "model.keras")
    first.save(path)
    resumed = keras.saving.load_model(path)
    assert isinstance(resumed, AuxiliaryModel)
    assert isinstance(resumed.censor, agg.AsymmetricGradVac)
    np.testing.assert_array_equal(np.asarray(resumed.censor_state), np.asarray(first.censor_state))
    assert np.abs(np.asarray(first.censor_state)).min() > 0
    resumed.fit(x, targets, batch_size=8, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(whole.get_weights(), resumed.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(whole.censor_state), np.asarray(resumed.censor_state), atol=1e-6
    )


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import keras
    sys.path.insert(0, {root!r})
    from keras_aux.censoring.aggregation import primary_aware_test as t

    out = {{"backend": keras.backend.backend()}}
    x, targets = t.model_data(n=32)
    for name, censor in t.model_censors().items():
        model = t.compiled_model(censor)
        model.fit(x, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        out[name] = {{
            "weights": [np.asarray(w).tolist() for w in model.get_weights()],
            "state": [np.asarray(s).tolist() for s in keras.tree.flatten(model.censor_state)],
        }}
    print(json.dumps(out))
    """
)


# Slow (one process per backend): run by the integration tier.
@pytest.mark.integration
@requires_tensorflow_backend
def test_same_numbers_under_jax():
    pytest.importorskip("jax", reason="jax is not installed in this environment")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    result = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT.format(root=root)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.pop("backend") == "jax"
    x, targets = model_data(n=32)
    for name, censor in model_censors().items():
        model = compiled_model(censor)
        model.fit(x, targets, batch_size=8, epochs=2, shuffle=False, verbose=0)
        for a, b in zip(model.get_weights(), out[name]["weights"]):
            np.testing.assert_allclose(a, b, atol=1e-5, err_msg=name)
        for a, b in zip(keras.tree.flatten(model.censor_state), out[name]["state"]):
            np.testing.assert_allclose(np.asarray(a), b, atol=1e-5, err_msg=name)
