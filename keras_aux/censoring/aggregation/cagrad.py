"""CAGrad: the conflict-averse direction within a ball around the mean gradient.

With ``Ĝ = G / trace(G)`` (zeros when ``trace(G) < norm_eps``),
``b = Ĝ 1/K``, ``ρ = c · √(1ᵀĜ1)/K`` (``c · ‖g₀‖`` for the normalised rows),
``w* = argmin_{w ∈ Δ} bᵀw + ρ √(wᵀĜw)`` and the weights
``1/K + ρ / √(w*ᵀĜw*) · w*`` (zeros when ``√(w*ᵀĜw*) < norm_eps``).
The aggregation is the weights' combination of the rows of ``J``.

Reference: Liu, Liu, Jin, Stone & Liu (2021), "Conflict-Averse Gradient
Descent for Multi-task Learning", NeurIPS, Algorithm 1; as TorchJD's
``CAGrad`` (which, like this, drops the paper's final rescaling by
``1/(1 + c²)``, and solves the dual problem on the normalised Gramian).
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator, normalize
from keras_aux.censoring.aggregation.solvers import minimize_linear_plus_norm_on_simplex


@keras.saving.register_keras_serializable(package=PACKAGE)
class CAGrad(GramianWeightedAggregator):
    """CAGrad (Liu et al. 2021, Algorithm 1), as TorchJD's ``CAGrad``.

    Args:
        c: radius of the ball, relative to the mean gradient's norm (≥ 0).
        norm_eps: threshold of the normalisation and of the final division.
        iterations: of the simplex solver
            (`solvers.minimize_linear_plus_norm_on_simplex`).
    """

    def __init__(self, c=0.5, norm_eps=1e-4, iterations=500):
        if c < 0:
            raise ValueError(f"`c` must be non-negative; got {c}.")
        self.c = float(c)
        self.norm_eps = float(norm_eps)
        self.iterations = int(iterations)

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        g = normalize(gramian_, self.norm_eps)
        mean = ops.full((k,), 1.0 / k, dtype=g.dtype)
        if self.c == 0:
            return mean, state
        b = ops.matmul(g, mean)
        rho = self.c * ops.sqrt(ops.maximum(ops.sum(mean * b), 0.0))
        w = minimize_linear_plus_norm_on_simplex(b, g, rho, self.iterations)
        norm = ops.sqrt(ops.maximum(ops.sum(w * ops.matmul(g, w)), 0.0))
        ok = norm >= self.norm_eps
        weights = mean + rho / ops.where(ok, norm, 1.0) * w
        return ops.where(ok, weights, ops.zeros_like(weights)), state

    def get_config(self):
        return {"c": self.c, "norm_eps": self.norm_eps, "iterations": self.iterations}
