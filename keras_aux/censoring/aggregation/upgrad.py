"""UPGrad: project each row onto the dual cone of the rows, then combine.

``w = Σ_i v_i`` where ``v_i = argmin_{v ≥ u_i} vᵀ Ĝ v``, ``u_i = p_i e_i``
(``p`` the preference vector, ``1/K`` by default) and
``Ĝ = G / trace(G) + reg_eps · I`` (zeros instead of ``G / trace(G)`` when
``trace(G) < norm_eps``); the aggregation is ``wᵀ J``.

Reference: Quinton & Rey (2024), "Jacobian Descent for Multi-Objective
Optimization", arXiv:2406.16232; defaults and normalisation as TorchJD's
``UPGrad`` (``norm_eps = reg_eps = 10⁻⁴``).
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import (
    PACKAGE,
    GramianWeightedAggregator,
    normalize,
    regularize,
)
from keras_aux.censoring.aggregation.solvers import project_onto_dual_cone


def preference(pref_vector, k, dtype, default):
    """``pref_vector`` as a tensor of length ``k``, or ``default`` (1/K or 1) repeated."""
    if pref_vector is None:
        return ops.full((k,), default, dtype=dtype)
    if len(pref_vector) != k:
        raise ValueError(f"`pref_vector` has {len(pref_vector)} entries for {k} rows.")
    return ops.convert_to_tensor(pref_vector, dtype=dtype)


class DualConeAggregator(GramianWeightedAggregator):
    """What UPGrad and DualProj share: a preference vector, the normalised and
    regularised Gramian, and the dual-cone solver's settings.

    Args:
        pref_vector: weights of the rows (list of K floats); default ``1/K`` each.
        norm_eps: below this ``trace(G)`` the normalised Gramian is zero.
        reg_eps: added to the normalised Gramian's diagonal.
        fista_iterations, active_set_iterations: of the dual-cone solver
            (`solvers.project_onto_dual_cone`).
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

    def solver_gramian(self, gramian_):
        """``Ĝ = G / trace(G) + reg_eps · I``, what the dual-cone solver reads."""
        return regularize(normalize(gramian_, self.norm_eps), self.reg_eps)

    def get_config(self):
        return {
            "pref_vector": self.pref_vector,
            "norm_eps": self.norm_eps,
            "reg_eps": self.reg_eps,
            "fista_iterations": self.fista_iterations,
            "active_set_iterations": self.active_set_iterations,
        }


@keras.saving.register_keras_serializable(package=PACKAGE)
class UPGrad(DualConeAggregator):
    """UPGrad (Quinton & Rey 2024, arXiv:2406.16232), as TorchJD's ``UPGrad``.

    Args:
        pref_vector: weights of the projected rows (list of K floats);
            default ``1/K`` each.
        norm_eps: below this ``trace(G)`` the normalised Gramian is zero.
        reg_eps: added to the normalised Gramian's diagonal.
        fista_iterations, active_set_iterations: of the dual-cone solver
            (`solvers.project_onto_dual_cone`).
    """

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        u = ops.diag(preference(self.pref_vector, k, gramian_.dtype, 1.0 / k))
        g = self.solver_gramian(gramian_)
        v = project_onto_dual_cone(u, g, self.fista_iterations, self.active_set_iterations)
        return ops.sum(v, axis=0), state
