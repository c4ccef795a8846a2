"""FairGrad: α-fair resource allocation between the tasks.

``w > 0`` with ``G w = w^(−1/α)`` (`solvers.solve_power_equation`); ``1/K``
each when ``α = 0`` (linear scalarisation). The aggregation is ``wᵀ J``.

Reference: Ban & Ji (2024), "Fair Resource Allocation in Multi-Task
Learning", ICML, Eq. 4; as TorchJD's ``FairGrad`` (which solves the same
equation with ``scipy.optimize.least_squares``, bounds ``w ≥ 0``, at most
``100·K`` evaluations; here Newton's method to convergence).
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator
from keras_aux.censoring.aggregation.solvers import solve_power_equation


@keras.saving.register_keras_serializable(package=PACKAGE)
class FairGrad(GramianWeightedAggregator):
    """FairGrad (Ban & Ji 2024, Eq. 4), as TorchJD's ``FairGrad``.

    Args:
        alpha: the fairness parameter α ≥ 0 (1: proportional fairness, the
            same weights as Nash-MTL before its clipping).
        iterations, regularization: of the solver.
    """

    def __init__(self, alpha=1.0, iterations=60, regularization=1e-9):
        if alpha < 0:
            raise ValueError(f"`alpha` must be non-negative; got {alpha}.")
        self.alpha = float(alpha)
        self.iterations = int(iterations)
        self.regularization = float(regularization)

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        if self.alpha == 0:
            return ops.full((k,), 1.0 / k, dtype=gramian_.dtype), state
        w = solve_power_equation(gramian_, self.alpha, self.regularization, self.iterations)
        return w, state

    def get_config(self):
        return {
            "alpha": self.alpha,
            "iterations": self.iterations,
            "regularization": self.regularization,
        }
