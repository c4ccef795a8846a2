"""DualProj: project the mean of the rows onto the dual cone of the rows.

``w = argmin_{v ≥ u} vᵀ Ĝ v`` with ``u = p`` (``1/K`` by default) and
``Ĝ = G / trace(G) + reg_eps · I``; the aggregation is ``wᵀ J``.

Reference: Lopez-Paz & Ranzato (2017), "Gradient Episodic Memory for
Continual Learning", Eq. 11; as TorchJD's ``DualProj``.
"""

import keras

from keras_aux.censoring.aggregation.base import PACKAGE
from keras_aux.censoring.aggregation.solvers import project_onto_dual_cone
from keras_aux.censoring.aggregation.upgrad import DualConeAggregator, preference


@keras.saving.register_keras_serializable(package=PACKAGE)
class DualProj(DualConeAggregator):
    """DualProj (Lopez-Paz & Ranzato 2017, GEM Eq. 11), as TorchJD's ``DualProj``.

    Args: as `DualConeAggregator` (``pref_vector`` weights the rows before projecting).
    """

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        u = preference(self.pref_vector, k, gramian_.dtype, 1.0 / k)[None, :]
        g = self.solver_gramian(gramian_)
        v = project_onto_dual_cone(u, g, self.fista_iterations, self.active_set_iterations)
        return v[0], state
