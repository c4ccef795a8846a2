"""MGDA: the min-norm element of the convex hull of the rows.

``w ≈ argmin_{w ∈ Δ} wᵀ G w`` by Frank–Wolfe (`solvers.min_norm_frank_wolfe`);
the aggregation is ``wᵀ J``.

References: Désidéri (2012), "Multiple-gradient descent algorithm (MGDA) for
multiobjective optimization"; Sener & Koltun (2018), "Multi-Task Learning as
Multi-Objective Optimization", Algorithm 2 (the solver); as TorchJD's ``MGDA``.
"""

import keras

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator
from keras_aux.censoring.aggregation.solvers import min_norm_frank_wolfe


@keras.saving.register_keras_serializable(package=PACKAGE)
class MGDA(GramianWeightedAggregator):
    """MGDA (Désidéri 2012; Sener & Koltun 2018, Algorithm 2), as TorchJD's ``MGDA``.

    Args:
        epsilon: Frank–Wolfe stops after a step ``γ < epsilon``.
        max_iters: at most this many Frank–Wolfe steps.
    """

    def __init__(self, epsilon=1e-3, max_iters=100):
        if epsilon <= 0 or max_iters <= 0:
            raise ValueError("`epsilon` and `max_iters` must be positive.")
        self.epsilon = float(epsilon)
        self.max_iters = int(max_iters)

    def gramian_weights(self, gramian_, state):
        return min_norm_frank_wolfe(gramian_, self.epsilon, self.max_iters), state

    def get_config(self):
        return {"epsilon": self.epsilon, "max_iters": self.max_iters}
