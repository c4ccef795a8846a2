"""Nash-MTL: the Nash bargaining solution between the tasks.

``α > 0`` with ``G α = 1/α`` (`solvers.solve_power_equation` with power 1);
the aggregation is ``αᵀ J``, rescaled to norm ``max_norm`` when longer (and
``max_norm > 0``). Since ``‖αᵀJ‖² = αᵀGα = K``, with the default
``max_norm = 1`` and K ≥ 2 the result is the unit vector along ``αᵀJ``.

Reference: Navon et al. (2022), "Multi-Task Learning as a Bargaining Game",
ICML, Algorithm 1; as TorchJD's ``NashMTL``, except that the solution is
computed to convergence at every call (TorchJD: at most 20 cvxpy/ECOS
sequential convex steps, warm-started from the previous call's α, with
``update_weights_every`` reuse): stateless here. See docs/aggregation.md.
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator
from keras_aux.censoring.aggregation.solvers import solve_power_equation


@keras.saving.register_keras_serializable(package=PACKAGE)
class NashMTL(GramianWeightedAggregator):
    """Nash-MTL (Navon et al. 2022, Algorithm 1), as TorchJD's ``NashMTL``.

    Args:
        max_norm: the aggregation's norm is clipped to it (0: no clipping).
        iterations: damped Newton steps of the solver.
        regularization: relative ridge of the solver (keeps a solution when
            a positive combination of the rows vanishes).
    """

    def __init__(self, max_norm=1.0, iterations=60, regularization=1e-9):
        if max_norm < 0:
            raise ValueError(f"`max_norm` must be non-negative; got {max_norm}.")
        self.max_norm = float(max_norm)
        self.iterations = int(iterations)
        self.regularization = float(regularization)

    def gramian_weights(self, g, state):
        """The bargaining solution ``α`` of ``G α = 1/α``, clipped to ``max_norm``."""
        alpha = solve_power_equation(g, 1.0, self.regularization, self.iterations)
        if self.max_norm > 0:
            norm = ops.sqrt(ops.maximum(ops.sum(alpha * ops.matmul(g, alpha)), 0.0))
            alpha = ops.where(
                norm > self.max_norm, alpha * (self.max_norm / ops.maximum(norm, 1e-30)), alpha
            )
        return alpha, state

    def get_config(self):
        return {
            "max_norm": self.max_norm,
            "iterations": self.iterations,
            "regularization": self.regularization,
        }
