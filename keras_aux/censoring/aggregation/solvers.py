"""Fixed-iteration solvers, in ``keras.ops``, for the aggregators' small problems.

Every solver runs a fixed number of iterations (``ops.fori_loop``), so it
traces once under XLA and never calls back into Python, numpy, cvxpy or
quadprog. They are meant for ``K`` up to about 32 rows: each iteration costs
``O(K²)`` (``O(K³)`` where it solves a ``K × K`` linear system). Measured
accuracies are in docs/aggregation.md.
"""

from keras import ops


def _eye(k, dtype):
    return ops.eye(k, dtype=dtype)


def project_onto_simplex(y):
    """Euclidean projection of each row of ``y`` (``[..., K]``) onto the probability simplex.

    Exact (sort-based; Held, Wolfe & Crowder 1974; Duchi et al. 2008).
    """
    k = y.shape[-1]
    u = -ops.sort(-y, axis=-1)
    css = ops.cumsum(u, axis=-1)
    index = ops.cast(ops.arange(1, k + 1), y.dtype)
    positive = ops.cast(u - (css - 1.0) / index > 0, "int32")
    rho = ops.maximum(ops.sum(positive, axis=-1, keepdims=True), 1)
    theta = (ops.take_along_axis(css, rho - 1, axis=-1) - 1.0) / ops.cast(rho, y.dtype)
    return ops.maximum(y - theta, 0.0)


def project_onto_dual_cone(u, gramian, fista_iterations=300, active_set_iterations=10):
    """Weights ``v`` of the projection of ``Jᵀu`` onto the dual cone of ``J``'s rows.

    Solves, for each row ``u`` of ``u`` (``[B, K]``), the quadratic program
    ``min_v vᵀ G v  s.t.  v ≥ u`` (Proposition 1 of Quinton & Rey 2024,
    arXiv:2406.16232), with ``G`` symmetric positive definite (UPGrad and
    DualProj pass ``G / trace(G) + 10⁻⁴ I``, as TorchJD does).

    Solver: ``fista_iterations`` of accelerated projected gradient (FISTA,
    step ``1/λ_max(G)``, adaptive restart of O'Donoghue & Candès 2015), whose
    iterate gives an active set that ``active_set_iterations`` of the
    primal-dual active-set method (Hintermüller, Ito & Kunisch 2003; a
    semismooth Newton method: solve ``v_A = u_A``, ``(Gv)_F = 0``; update
    ``A = {i : (Gv)_i > v_i − u_i}``) polish to the exact solution. The
    polished solution is kept when it satisfies the KKT conditions
    (``v ≥ u``, ``Gv ≥ 0``, ``(Gv)ᵢ(vᵢ − uᵢ) = 0`` to 10⁻⁵ relative), else
    the FISTA iterate is returned. Accuracy: exact to rounding (about 10⁻⁶
    relative in float32) whenever the KKT check passes, which it did on every
    random matrix tried (K ≤ 32, docs/aggregation.md).
    """
    dtype = gramian.dtype
    k = gramian.shape[0]
    values = ops.linalg.eigh(gramian)[0]
    step = 1.0 / ops.maximum(ops.max(values), 1e-30)

    def fista(_, carry):
        x, y, t = carry
        x_new = ops.maximum(y - step * ops.matmul(y, gramian), u)
        t_new = (1.0 + ops.sqrt(1.0 + 4.0 * t * t)) / 2.0
        restart = ops.sum((y - x_new) * (x_new - x), axis=-1) > 0
        momentum = ops.where(restart, 0.0, (t - 1.0) / t_new)
        y_new = x_new + momentum[:, None] * (x_new - x)
        return x_new, y_new, ops.where(restart, ops.ones_like(t_new), t_new)

    t0 = ops.ones((u.shape[0],), dtype=dtype)
    x, _, _ = ops.fori_loop(0, fista_iterations, fista, (u, u, t0))

    eye = _eye(k, dtype)

    def active_set(_, v):
        multipliers = ops.matmul(v, gramian)
        active = ops.cast(multipliers > v - u, dtype)
        free = 1.0 - active
        system = free[:, :, None] * gramian[None, :, :] + active[:, :, None] * eye[None]
        return ops.linalg.solve(system, (active * u)[:, :, None])[:, :, 0]

    v = ops.fori_loop(0, active_set_iterations, active_set, x)
    multipliers = ops.matmul(v, gramian)
    scale = ops.max(ops.abs(u), axis=-1, keepdims=True) + 1e-30
    tol = 1e-5 if dtype == "float64" else 1e-4
    ok = ops.all(
        (v - u >= -tol * scale)
        & (multipliers >= -tol * scale)
        & (ops.abs(multipliers * (v - u)) <= tol * scale * scale),
        axis=-1,
    )
    ok = ok & ops.all(ops.isfinite(v), axis=-1)
    return ops.where(ok[:, None], v, x)


def min_norm_frank_wolfe(gramian, epsilon=1e-3, max_iters=100):
    """MGDA's weights: the min-norm point ``min_{w ∈ Δ} wᵀ G w``, by Frank–Wolfe.

    Algorithm 2 of Sener & Koltun 2018 ("Multi-Task Learning as
    Multi-Objective Optimization"), as TorchJD runs it: start at the uniform
    weights; at most ``max_iters`` iterations, each moving towards the vertex
    ``e_t``, ``t = argmin (Gw)``, with the exact line-search step ``γ``; stop
    (here: freeze the iterate) after the first step with ``γ < epsilon``.
    Same iterates as TorchJD's loop. Accuracy: that of Frank–Wolfe with this
    stopping rule, exact for two rows, not for more (docs/aggregation.md).
    """
    k = gramian.shape[0]
    dtype = gramian.dtype
    alpha0 = ops.ones((k,), dtype=dtype) / k

    def body(_, carry):
        alpha, done = carry
        g_alpha = ops.matmul(gramian, alpha)
        t = ops.argmin(g_alpha)
        e_t = ops.one_hot(t, k, dtype=dtype)
        a = ops.sum(g_alpha * e_t)
        b = ops.sum(alpha * g_alpha)
        c = ops.sum(ops.matmul(gramian, e_t) * e_t)
        denominator = b + c - 2.0 * a
        ratio = (b - a) / ops.where(denominator == 0, ops.ones_like(denominator), denominator)
        gamma = ops.where(c <= a, 1.0, ops.where(b <= a, 0.0, ratio))
        new = (1.0 - gamma) * alpha + gamma * e_t
        alpha = ops.where(done, alpha, new)
        return alpha, done | (gamma < epsilon)

    alpha, _ = ops.fori_loop(0, max_iters, body, (alpha0, ops.convert_to_tensor(False)))
    return alpha


def solve_power_equation(gramian, alpha=1.0, regularization=1e-9, iterations=60, powers=None):
    """The positive ``x`` with ``G x = c ⊙ x^(−1/α)`` (elementwise; ``c = powers``, 1 by default).

    Nash-MTL's bargaining solution is ``α = 1`` (``G x = 1/x``, Navon et al.
    2022, Eq. 3 of "Multi-Task Learning as a Bargaining Game"); FairGrad's
    weights solve it for its α (Ban & Ji 2024, Eq. 4 of "Fair Resource
    Allocation in Multi-Task Learning"). With positive ``powers`` ``c`` and
    ``α = 1`` it is AuxiNash's asymmetric bargaining solution,
    ``xᵢ (G x)ᵢ = cᵢ`` (Shamsian et al. 2023, "Auxiliary Learning as an
    Asymmetric Bargaining Game").

    ``x`` minimises the strictly convex ``½ xᵀ Ĝ x − Σ cᵢ h(xᵢ)`` with
    ``h' (x) = x^(−1/α)``, where ``Ĝ = G / s + regularization · I`` and ``s``
    the mean of ``diag(G)``; then ``x = x̂ · s^(−α/(α+1))``. Solver:
    ``iterations`` damped Newton steps (step ``1/(1 + λ)``, ``λ`` the Newton
    decrement, and at most 0.9 of the way to the boundary ``x = 0``) from the
    solution for orthogonal rows, ``x̂ᵢ = (Ĝᵢᵢ / cᵢ)^(−α/(α+1))``. For ``α = 1``
    the function is self-concordant and damped Newton converges globally and
    then quadratically (for powers below 1 the function is not self-concordant
    but the boundary guard keeps the iterates positive); 60 iterations reach rounding accuracy on
    the random matrices of docs/aggregation.md, and with powers down to 10⁻⁴
    (docs/learned_weighting.md, AuxiNash). The regularization (relative 10⁻⁹, invisible in float32 except on
    zero rows) keeps
    a solution when a positive combination of the rows vanishes.

    Returns ``x`` (zeros when ``G`` is zero).
    """
    k = gramian.shape[0]
    dtype = gramian.dtype
    scale = ops.trace(gramian) / k
    safe_scale = ops.where(scale > 0, scale, ops.ones_like(scale))
    g = gramian / safe_scale + regularization * _eye(k, dtype)
    p = alpha / (alpha + 1.0)
    c = ops.ones((k,), dtype) if powers is None else ops.cast(powers, dtype)
    x0 = ops.power(ops.maximum(ops.diagonal(g), regularization) / c, -p)

    def body(_, x):
        grad = ops.matmul(g, x) - c * ops.power(x, -1.0 / alpha)
        hess = g + ops.diag(c * ops.power(x, -1.0 / alpha - 1.0) / alpha)
        dx = -ops.linalg.solve(hess, grad[:, None])[:, 0]
        decrement = ops.sqrt(ops.maximum(-ops.sum(grad * dx), 0.0))
        to_boundary = ops.min(ops.where(dx < 0, -x / ops.where(dx < 0, dx, -1.0), 1e30))
        t = ops.minimum(1.0 / (1.0 + decrement), 0.9 * to_boundary)
        return x + t * dx

    x = ops.fori_loop(0, iterations, body, x0)
    x = x * ops.power(safe_scale, -p)
    return ops.where(scale > 0, x, ops.zeros_like(x))


def minimize_linear_plus_norm_on_simplex(b, gramian, rho, iterations=500):
    """``argmin_{w ∈ Δ} bᵀw + ρ √(wᵀ G w)``: CAGrad's dual problem (Liu et al. 2021).

    Solver: ``iterations`` of accelerated projected gradient (FISTA with
    adaptive restart) onto the simplex (`project_onto_simplex`), with step
    ``1/L`` where ``L = ρ λ_max(G) / √(wᵀGw)`` is the curvature of the norm
    term at the current point. Accuracy on docs/aggregation.md's random
    matrices (K ≤ 32): the aggregation within 3.3·10⁻⁶ relative of SLSQP's.
    """
    k = gramian.shape[0]
    dtype = gramian.dtype
    lmax = ops.maximum(ops.max(ops.linalg.eigh(gramian)[0]), 1e-30)
    w0 = ops.ones((k,), dtype=dtype) / k
    floor = 1e-12

    def gradient(w):
        gw = ops.matmul(gramian, w)
        norm = ops.sqrt(ops.maximum(ops.sum(w * gw), floor))
        return b + rho * gw / norm, norm

    def objective(w):
        return ops.sum(b * w) + rho * ops.sqrt(
            ops.maximum(ops.sum(w * ops.matmul(gramian, w)), 0.0)
        )

    def body(_, carry):
        x, y, t = carry
        grad, norm = gradient(y)
        lipschitz = rho * lmax / norm + 1e-30
        x_new = project_onto_simplex(y - grad / lipschitz)
        t_new = (1.0 + ops.sqrt(1.0 + 4.0 * t * t)) / 2.0
        restart = objective(x_new) > objective(x)
        y_new = x_new + ops.where(restart, 0.0, (t - 1.0) / t_new) * (x_new - x)
        return x_new, y_new, ops.where(restart, ops.ones_like(t_new), t_new)

    x, _, _ = ops.fori_loop(0, iterations, body, (w0, w0, ops.ones((), dtype=dtype)))
    return x
