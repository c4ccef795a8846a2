"""Tests of the aggregators: TorchJD's published values, independent numpy/scipy
computations of each formula, and the properties TorchJD tests (non-conflicting,
permutation invariance, linearity under scaling)."""

import functools

import numpy as np
import pytest
import tensorflow as tf
from scipy.optimize import least_squares, minimize

from keras_aux.censoring import aggregation as agg
from keras_aux.testing import TestCase
from keras_aux.testing.censoring_reference import np_pcgrad_rows

# TorchJD's published values (tests/unit/aggregation/test_values.py of
# github.com/SimplexLab/TorchJD at 862baeda, checked there to atol 1e-4) for
# J = [[-4, 1, 1], [6, 1, 1]].
J_BASE = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])
TORCHJD_VALUES = {
    ("upgrad", ()): [0.2929, 1.9004, 1.9004],
    ("mgda", ()): [0.0, 1.0, 1.0],
    ("dual_proj", ()): [0.5563, 1.1109, 1.1109],
    ("imtl_g", ()): [0.0767, 1.0, 1.0],
    ("aligned_mtl", ()): [0.2133, 0.9673, 0.9673],
    ("cagrad", (("c", 0.5),)): [0.1835, 1.2041, 1.2041],
    ("fairgrad", (("alpha", 1.0),)): [0.0766, 0.9985, 0.9985],
    ("nash_mtl", ()): [0.0542, 0.7061, 0.7061],
    ("config", ()): [0.1588, 2.0706, 2.0706],
    ("pcgrad", ()): [0.5848, 3.8012, 3.8012],
    ("gradvac", ()): [0.5848, 3.8012, 3.8012],
}
# The same file's weightings (w with A(J) = wᵀJ) on G = J Jᵀ.
TORCHJD_WEIGHTS = {
    "upgrad": [1.1109, 0.7894],
    "dual_proj": [0.6109, 0.5000],
    "mgda": [0.6000, 0.4000],
    "imtl_g": [0.5923, 0.4077],
    "aligned_mtl": [0.5591, 0.4083],
    "cagrad": [0.7041, 0.5000],
    "fairgrad": [0.5915, 0.4071],
    "pcgrad": [2.2222, 1.5789],
    "gradvac": [2.2222, 1.5789],
}

DETERMINISTIC = (
    "upgrad",
    "dual_proj",
    "mgda",
    "imtl_g",
    "aligned_mtl",
    "cagrad",
    "nash_mtl",
    "fairgrad",
    "config",
    "pcgrad",
    "gradvac",
)


@functools.cache
def _compiled(name, options, shape, dtype):
    aggregator = agg.get(name, **{k: list(v) if isinstance(v, tuple) else v for k, v in options})
    return tf.function(
        aggregator.__call__,
        input_signature=[tf.TensorSpec(shape, dtype)],
        jit_compile=True,
        autograph=False,
    )


def run(name, matrix, **options):
    """The aggregation under XLA (one compiled function per name, options and shape)."""
    matrix = np.asarray(matrix)
    options = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in options.items()))
    fn = _compiled(name, options, matrix.shape, matrix.dtype.name)
    return np.asarray(fn(tf.constant(matrix)))


# ---------------------------------------------------------------- numpy references


def np_normalize(g, eps=1e-4):
    t = np.trace(g)
    return np.zeros_like(g) if t < eps else g / t


def np_dual_cone(u, g):
    """argmin vᵀGv s.t. v ≥ u (scipy SLSQP, tight tolerance)."""
    res = minimize(
        lambda v: v @ g @ v,
        np.maximum(u, 0) + 1.0,
        jac=lambda v: 2 * g @ v,
        constraints=[{"type": "ineq", "fun": lambda v: v - u, "jac": lambda v: np.eye(len(u))}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    return res.x


def np_upgrad(j):
    k = len(j)
    g = np_normalize(j @ j.T) + 1e-4 * np.eye(k)
    return sum(np_dual_cone(np.eye(k)[i] / k, g) for i in range(k)) @ j


def np_dual_proj(j):
    k = len(j)
    g = np_normalize(j @ j.T) + 1e-4 * np.eye(k)
    return np_dual_cone(np.ones(k) / k, g) @ j


def np_mgda_frank_wolfe(j, epsilon=1e-3, max_iters=100):
    """Sener & Koltun 2018, Algorithm 2, transcribed."""
    g = j @ j.T
    k = len(g)
    alpha = np.ones(k) / k
    for _ in range(max_iters):
        t = int(np.argmin(g @ alpha))
        e = np.eye(k)[t]
        a, b, c = alpha @ g @ e, alpha @ g @ alpha, e @ g @ e
        gamma = 1.0 if c <= a else (0.0 if b <= a else (b - a) / (b + c - 2 * a))
        alpha = (1 - gamma) * alpha + gamma * e
        if gamma < epsilon:
            break
    return alpha @ j


def np_min_norm(j):
    """The exact min-norm point of the convex hull of the rows (scipy SLSQP)."""
    g = j @ j.T
    k = len(g)
    res = minimize(
        lambda w: w @ g @ w,
        np.ones(k) / k,
        jac=lambda w: 2 * g @ w,
        bounds=[(0, 1)] * k,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        method="SLSQP",
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    return res.x @ j


def np_imtl_g(j):
    g = j @ j.T
    v = np.linalg.pinv(g) @ np.sqrt(np.diag(g))
    return (v / v.sum()) @ j


def np_aligned_mtl(j):
    g = j @ j.T
    lam, v = np.linalg.eigh(g)
    rank = int((lam > lam.max() * len(g) * np.finfo(np.float32).eps).sum())
    lam, v = lam[::-1][:rank], v[:, ::-1][:, :rank]
    b = np.sqrt(lam[-1]) * v @ np.diag(1 / np.sqrt(lam)) @ v.T
    return (b @ (np.ones(len(g)) / len(g))) @ j


def np_cagrad(j, c):
    k = len(j)
    g = np_normalize(j @ j.T)
    b = g @ np.ones(k) / k
    rho = c * np.sqrt(np.ones(k) @ g @ np.ones(k)) / k
    res = minimize(
        lambda w: b @ w + rho * np.sqrt(w @ g @ w),
        np.ones(k) / k,
        bounds=[(0, 1)] * k,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        method="SLSQP",
        options={"ftol": 1e-15, "maxiter": 1000},
    )
    w = res.x
    return (np.ones(k) / k + rho / np.sqrt(w @ g @ w) * w) @ j


def np_power_root(g, alpha):
    """The positive root of G x = x^(−1/α) (scipy least_squares, as TorchJD's FairGrad)."""
    k = len(g)
    res = least_squares(
        lambda x: g @ x - np.power(x, -1.0 / alpha),
        np.ones(k) / k,
        bounds=(0, np.inf),
        xtol=1e-15,
        ftol=1e-15,
        gtol=1e-15,
    )
    return res.x


def np_nash_mtl(j, max_norm=1.0):
    v = np_power_root(j @ j.T, 1.0) @ j
    norm = np.linalg.norm(v)
    return v / norm * max_norm if max_norm > 0 and norm > max_norm else v


def np_fairgrad(j, alpha):
    return np_power_root(j @ j.T, alpha) @ j


def np_config(j):
    units = j / np.linalg.norm(j, axis=1, keepdims=True)
    d = np.linalg.pinv(units) @ np.ones(len(j))
    d = d / np.linalg.norm(d)
    return (j @ d).sum() * d


def np_gradvac(j, targets, beta=0.5, eps=1e-8):
    """Wang et al. 2021 on the rows (fixed order); returns (vector, new targets)."""
    targets = targets.copy()
    out = np.zeros(j.shape[1])
    for i in range(len(j)):
        g = j[i].copy()
        for k in range(len(j)):
            if k == i:
                continue
            phi = g @ j[k] / (np.linalg.norm(g) * np.linalg.norm(j[k]) + eps)
            hat = targets[i, k]
            if phi < hat:
                w = (
                    np.linalg.norm(g)
                    * (hat * np.sqrt(1 - phi**2) - phi * np.sqrt(1 - hat**2))
                    / (np.linalg.norm(j[k]) * np.sqrt(1 - hat**2) + eps)
                )
                g = g + w * j[k]
            targets[i, k] = (1 - beta) * hat + beta * phi
        out += g
    return out, targets


NUMPY = {
    "upgrad": np_upgrad,
    "dual_proj": np_dual_proj,
    "mgda": np_mgda_frank_wolfe,
    "imtl_g": np_imtl_g,
    "aligned_mtl": np_aligned_mtl,
    "cagrad": functools.partial(np_cagrad, c=0.5),
    "nash_mtl": np_nash_mtl,
    "fairgrad": functools.partial(np_fairgrad, alpha=1.0),
    "config": np_config,
    "pcgrad": np_pcgrad_rows,
    "gradvac": lambda j: np_gradvac(j, np.zeros((len(j), len(j))))[0],
}
OPTIONS = {"cagrad": {"c": 0.5}, "fairgrad": {"alpha": 1.0}}


def random_matrix(seed, k, n):
    return np.random.default_rng(seed).normal(size=(k, n))


# Full row rank (K < n) with conflicting rows.
SHAPES = [(3, 7), (5, 12), (8, 20)]
# K > n: a rank-deficient Gramian.
RANK_DEFICIENT = (6, 4)


# ---------------------------------------------------------------- TorchJD values


@pytest.mark.parametrize("key", list(TORCHJD_VALUES), ids=[k[0] for k in TORCHJD_VALUES])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_torchjd_published_values(key, dtype):
    name, options = key
    expected = TORCHJD_VALUES[key]
    actual = run(name, J_BASE.astype(dtype), **dict(options))
    np.testing.assert_allclose(actual, expected, atol=1e-4, rtol=0)


@pytest.mark.parametrize("name", ["mgda", "imtl_g", "nash_mtl", "pcgrad", "config"])
def test_eager_equals_xla(name):
    j = random_matrix(1, 4, 9).astype(np.float32)
    np.testing.assert_allclose(np.asarray(agg.aggregate(name, j)), run(name, j), atol=1e-5)


@pytest.mark.parametrize("name", list(TORCHJD_WEIGHTS))
def test_torchjd_published_weights(name):
    aggregator = agg.get(name, **OPTIONS.get(name, {}))
    g = tf.constant(J_BASE @ J_BASE.T)
    weights = tf.function(aggregator.gramian_weights, jit_compile=True, autograph=False)
    w, _ = weights(g, aggregator.init(2))
    np.testing.assert_allclose(np.asarray(w), TORCHJD_WEIGHTS[name], atol=1e-4, rtol=0)


# ---------------------------------------------------------------- numpy formulas


@pytest.mark.parametrize("name", DETERMINISTIC)
@pytest.mark.parametrize("shape", SHAPES + [RANK_DEFICIENT], ids=str)
def test_matches_numpy(name, shape):
    j = random_matrix(sum(shape), *shape)
    expected = NUMPY[name](j)
    actual = run(name, j, **OPTIONS.get(name, {}))
    # float64: the solvers' accuracy (docs/aggregation.md), far inside 1e-5.
    np.testing.assert_allclose(actual, expected, atol=1e-5 * np.abs(expected).max(), rtol=0)


@pytest.mark.parametrize("name", DETERMINISTIC)
def test_float32_matches_numpy(name):
    """Within single-precision rounding of the float64 result, where the Gramian is
    singular (TorchJD's values check float32 on a regular one)."""
    j = random_matrix(sum(RANK_DEFICIENT), *RANK_DEFICIENT)
    expected = NUMPY[name](j)
    actual = run(name, j.astype(np.float32), **OPTIONS.get(name, {}))
    np.testing.assert_allclose(actual, expected, atol=2e-3 * np.abs(expected).max(), rtol=0)


def test_mgda_is_close_to_the_exact_min_norm_point():
    for seed, shape in enumerate(SHAPES):
        j = random_matrix(seed, *shape)
        exact = np_min_norm(j)
        # TorchJD's stopping rule (γ < 10⁻³) leaves Frank–Wolfe short of the
        # optimum: the norm is within 10 %, not the vector.
        norm = np.linalg.norm(run("mgda", j))
        assert np.linalg.norm(exact) - 1e-9 <= norm <= 1.1 * np.linalg.norm(exact)
        # Run longer, Frank–Wolfe's norm converges (O(1/t)) to the optimum.
        long = np.linalg.norm(run("mgda", j, epsilon=1e-9, max_iters=20000))
        np.testing.assert_allclose(long, np.linalg.norm(exact), rtol=1e-3)


def test_fairgrad_other_alphas_and_zero():
    j = random_matrix(5, 4, 9)
    for alpha in (0.5, 2.0, 5.0):
        expected = np_fairgrad(j, alpha)
        np.testing.assert_allclose(
            run("fairgrad", j, alpha=alpha), expected, atol=1e-6 * np.abs(expected).max()
        )
    np.testing.assert_allclose(run("fairgrad", j, alpha=0.0), j.mean(axis=0), atol=1e-12)


def test_nash_mtl_unclipped_is_fairgrad_alpha_one():
    j = random_matrix(6, 4, 9)
    np.testing.assert_allclose(
        run("nash_mtl", j, max_norm=0.0), run("fairgrad", j, alpha=1.0), rtol=1e-8
    )


def test_cagrad_zero_c_is_the_mean():
    j = random_matrix(8, 4, 9)
    np.testing.assert_allclose(run("cagrad", j, c=0.0), j.mean(axis=0), atol=1e-12)


def test_aligned_mtl_scale_modes():
    j = random_matrix(9, 4, 9)
    g = j @ j.T
    lam, v = np.linalg.eigh(g)
    for mode, scale in (("min", lam[0]), ("median", lam[1]), ("rmse", lam.mean())):
        b = np.sqrt(scale) * v @ np.diag(1 / np.sqrt(lam)) @ v.T
        expected = (b @ np.full(4, 0.25)) @ j
        np.testing.assert_allclose(run("aligned_mtl", j, scale_mode=mode), expected, rtol=1e-8)


def test_preference_vectors():
    j = random_matrix(10, 3, 8)
    p = [0.2, 0.5, 0.3]
    g = np_normalize(j @ j.T) + 1e-4 * np.eye(3)
    expected = sum(np_dual_cone(np.eye(3)[i] * p[i], g) for i in range(3)) @ j
    np.testing.assert_allclose(run("upgrad", j, pref_vector=p), expected, atol=1e-6)
    np.testing.assert_allclose(
        run("dual_proj", j, pref_vector=p), np_dual_cone(np.array(p), g) @ j, atol=1e-6
    )


def test_gradvac_state_over_steps_matches_numpy():
    aggregator = agg.GradVac(beta=0.3)
    state = aggregator.init(4)
    targets = np.zeros((4, 4))
    step = tf.function(aggregator.update, jit_compile=True, autograph=False)
    for seed in range(4):
        j = random_matrix(100 + seed, 4, 6) + 0.3  # partly aligned rows
        expected, targets = np_gradvac(j, targets, beta=0.3)
        vector, state = step(tf.constant(j), state)
        # The targets are kept in float32 (model variables): single-precision agreement.
        np.testing.assert_allclose(np.asarray(vector), expected, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(state), targets, atol=1e-6)


# ---------------------------------------------------------------- properties (as TorchJD)

NON_CONFLICTING = ("upgrad", "dual_proj", "mgda", "cagrad", "nash_mtl", "fairgrad", "config")
# PCGrad and GradVac project the rows in index order, so their result depends on it.
PERMUTATION_INVARIANT = tuple(n for n in DETERMINISTIC if n not in ("pcgrad", "gradvac"))
LINEAR_UNDER_SCALING = {"upgrad": 6e-2, "config": 1e-6}


@pytest.mark.parametrize("name", NON_CONFLICTING)
def test_non_conflicting(name):
    """TorchJD's criterion: the norm of ``J x`` is that of its non-negative part
    (to 4·10⁻⁴: UPGrad and DualProj regularise the Gramian by 10⁻⁴ I, which
    allows slightly negative products)."""
    for seed, shape in enumerate(SHAPES):
        j = random_matrix(seed, *shape)
        inner = j @ run(name, j, **OPTIONS.get(name, {}))
        positive = np.linalg.norm(inner[inner >= 0])
        np.testing.assert_allclose(positive, np.linalg.norm(inner), atol=4e-4, rtol=4e-4)


@pytest.mark.parametrize("name", ["upgrad", "dual_proj"])
def test_non_conflicting_exactly_without_regularization(name):
    for seed, shape in enumerate(SHAPES):
        j = random_matrix(seed, *shape)
        inner = j @ run(name, j, reg_eps=0.0)
        assert inner.min() >= -1e-9 * np.abs(j).max() ** 2, (name, shape, inner)


@pytest.mark.parametrize("name", PERMUTATION_INVARIANT)
def test_permutation_invariant(name):
    rng = np.random.default_rng(11)
    for seed, shape in enumerate(SHAPES):
        j = random_matrix(seed, *shape)
        vector = run(name, j, **OPTIONS.get(name, {}))
        for _ in range(3):
            permuted = run(name, j[rng.permutation(len(j))], **OPTIONS.get(name, {}))
            np.testing.assert_allclose(permuted, vector, atol=1e-6 * np.abs(vector).max())


@pytest.mark.parametrize("name", list(LINEAR_UNDER_SCALING))
def test_linear_under_scaling(name):
    rng = np.random.default_rng(12)
    tol = LINEAR_UNDER_SCALING[name]
    j = random_matrix(3, 5, 12)
    for _ in range(3):
        c1, c2 = rng.uniform(size=5), rng.uniform(size=5)
        a, b = rng.uniform(), rng.uniform()
        x1, x2 = run(name, c1[:, None] * j), run(name, c2[:, None] * j)
        x = run(name, (a * c1 + b * c2)[:, None] * j)
        np.testing.assert_allclose(x, a * x1 + b * x2, atol=tol, rtol=tol)


@pytest.mark.parametrize("name", agg.NAMES)
def test_expected_structure_and_finite_on_degenerate_matrices(name):
    # One shape, so one compiled function per aggregator (zero columns change nothing here).
    matrices = [
        np.zeros((3, 5)),
        np.array([[1.0, 2.0, 0, 0, 0], [0, 0, 0, 0, 0], [2.0, 4.0, 0, 0, 0]]),  # zero, parallel
        np.array([[1.0, 0, 0, 0, 0], [-1.0, 0, 0, 0, 0], [0, 1.0, 0, 0, 0]]),  # opposite rows
    ]
    for j in matrices:
        vector = run(name, j, **OPTIONS.get(name, {}))  # under XLA: eager solvers are slow
        assert vector.shape == (j.shape[1],)
        assert np.isfinite(vector).all(), (name, j, vector)


# ---------------------------------------------------------------- randomised methods


def test_random_weighting_is_a_softmax_of_normals():
    aggregator = agg.RandomWeighting(seed=3)
    j = np.eye(3)  # the aggregation is the weight vector itself
    step = tf.function(aggregator.update, jit_compile=True, autograph=False)
    state, draws = aggregator.init(3), []
    for _ in range(2000):
        w, state = step(tf.constant(j), state)
        draws.append(np.asarray(w))
    draws = np.array(draws)
    np.testing.assert_allclose(draws.sum(axis=1), 1.0, atol=1e-12)
    assert (draws > 0).all()
    log_ratio = np.log(draws[:, 0] / draws[:, 1])  # z_0 − z_1 ~ N(0, 2)
    assert abs(log_ratio.mean()) < 0.1
    assert abs(log_ratio.var() - 2.0) < 0.2
    assert len({tuple(np.round(d, 12)) for d in draws}) == len(draws)
    # Same seed and counter: same draw; other seed: another draw.
    again = np.asarray(agg.RandomWeighting(seed=3)(j))
    np.testing.assert_allclose(again, draws[0])
    assert not np.allclose(np.asarray(agg.RandomWeighting(seed=4)(j)), draws[0])


def test_graddrop_sign_choice_frequency_is_the_purity():
    j = np.array([[1.0, 2.0, -1.0, 0.5], [-3.0, 1.0, -2.0, -0.5], [1.0, -1.0, 3.0, 0.0]])
    purity = 0.5 * (1 + j.sum(0) / np.abs(j).sum(0))
    positive = np.where(j > 0, j, 0).sum(0)
    negative = np.where(j < 0, j, 0).sum(0)
    aggregator = agg.GradDrop(seed=0)
    step = tf.function(aggregator.update, jit_compile=True, autograph=False)
    state, outputs = aggregator.init(3), []
    for _ in range(3000):
        vector, state = step(tf.constant(j), state)
        outputs.append(np.asarray(vector))
    outputs = np.array(outputs)
    # Each coordinate is the sum of its positive or of its negative entries...
    chose_positive = np.isclose(outputs, positive)
    assert (chose_positive | np.isclose(outputs, negative)).all()
    # ... the positive one with probability P (4 σ of a binomial).
    frequency = chose_positive.mean(0)
    sigma = np.sqrt(purity * (1 - purity) / len(outputs))
    assert (np.abs(frequency - purity) <= 4 * sigma + 1e-12).all(), (frequency, purity)


def test_graddrop_full_leak_is_the_sum():
    j = random_matrix(0, 3, 6)
    vector = agg.GradDrop(leak=[1.0, 1.0, 1.0])(j)
    np.testing.assert_allclose(np.asarray(vector), j.sum(0), rtol=1e-12)


# ---------------------------------------------------------------- API


class ApiTest(TestCase):
    def test_get_and_names(self):
        self.assertEqual(set(agg.NAMES), set(agg.AGGREGATORS))
        for name in agg.NAMES:
            aggregator = agg.get(name)
            self.assertIsInstance(aggregator, agg.Aggregator)
            self.assertIs(agg.get(aggregator), aggregator)
        with self.assertRaisesRegex(ValueError, "Unknown aggregator"):
            agg.get("nope")
        with self.assertRaisesRegex(ValueError, "matrix"):
            agg.aggregate("upgrad", np.ones(3))

    def test_serialization_round_trip(self):
        for name in agg.NAMES:
            revived = self.run_serialization_test(agg.get(name, **OPTIONS.get(name, {})))
            self.assertAllClose(
                revived(J_BASE), agg.aggregate(name, J_BASE, **OPTIONS.get(name, {})), atol=1e-12
            )
