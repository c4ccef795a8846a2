"""DualProj: project the mean of the rows onto the dual cone of the rows.

``w = argmin_{v ≥ u} vᵀ Ĝ v`` with ``u = p`` (``1/K`` by default) and
``Ĝ = G / trace(G) + reg_eps · I``; the aggregation is ``wᵀ J``.

Reference: Lopez-Paz & Ranzato (2017), "Gradient Episodic Memory for
Continual Learning", Eq. 11; as TorchJD's ``DualProj``.
"""

import keras

from keras_aux.censoring.aggregation.base import (
    PACKAGE,
    GramianWeightedAggregator,
    normalize,
    regularize,
)
from keras_aux.censoring.aggregation.solvers import project_onto_dual_cone
from keras_aux.censoring.aggregation.upgrad import preference


@keras.saving.register_keras_serializable(package=PACKAGE)
class DualProj(GramianWeightedAggregator):
    """DualProj (Lopez-Paz & Ranzato 2017, GEM Eq. 11), as TorchJD's ``DualProj``.

    Args: as `UPGrad` (``pref_vector`` weights the rows before projecting).
    """

    def __init__(
        self,
        pref_vector=None,
        norm_eps=1e-4,
        reg_eps=1e-4,
        fista_iterations=300,
        active_set_iterations=10,
    ):
        self.pref_vector = None if pref_vector is None else [float(x) for x in pref_vector]
        self.norm_eps = float(norm_eps)
        self.reg_eps = float(reg_eps)
        self.fista_iterations = int(fista_iterations)
        self.active_set_iterations = int(active_set_iterations)

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        u = preference(self.pref_vector, k, gramian_.dtype, 1.0 / k)[None, :]
        g = regularize(normalize(gramian_, self.norm_eps), self.reg_eps)
        v = project_onto_dual_cone(u, g, self.fista_iterations, self.active_set_iterations)
        return v[0], state

    def get_config(self):
        return {
            "pref_vector": self.pref_vector,
            "norm_eps": self.norm_eps,
            "reg_eps": self.reg_eps,
            "fista_iterations": self.fista_iterations,
            "active_set_iterations": self.active_set_iterations,
        }
