"""Aligned-MTL: align the principal components of the task gradients.

With ``G = V Λ Vᵀ`` restricted to the rank ``r`` eigenvalues above
``λ_max · K · 1.19·10⁻⁷``, ``B = √σ · V Λ^(−1/2) Vᵀ`` and ``w = B p``
(``p = 1/K`` by default); ``σ`` is the smallest kept eigenvalue
(``scale_mode="min"``), their lower median (``"median"``) or mean (``"rmse"``).
``B = I`` when ``r = 0``. The aggregation is ``wᵀ J``.

Reference: Senushkin et al. (2023), "Independent Component Alignment for
Multi-Task Learning", CVPR, Algorithm 1; as TorchJD's ``AlignedMTL`` (whose
rank tolerance uses float32's epsilon whatever the dtype, kept here).
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator
from keras_aux.censoring.aggregation.upgrad import preference

SCALE_MODES = ("min", "median", "rmse")


@keras.saving.register_keras_serializable(package=PACKAGE)
class AlignedMTL(GramianWeightedAggregator):
    """Aligned-MTL (Senushkin et al. 2023, Algorithm 1), as TorchJD's ``AlignedMTL``.

    Args:
        pref_vector: task weights ``p`` (default ``1/K`` each).
        scale_mode: ``"min"`` (default), ``"median"`` or ``"rmse"``.
    """

    def __init__(self, pref_vector=None, scale_mode="min"):
        if scale_mode not in SCALE_MODES:
            raise ValueError(f"Invalid scale_mode={scale_mode!r}. Expected one of {SCALE_MODES}.")
        self.pref_vector = None if pref_vector is None else [float(x) for x in pref_vector]
        self.scale_mode = scale_mode

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        p = preference(self.pref_vector, k, gramian_.dtype, 1.0 / k)
        values, vectors = ops.linalg.eigh(gramian_)  # ascending
        tol = ops.max(values) * k * 1.1920929e-07
        keep = values > tol
        rank = ops.sum(ops.cast(keep, "int32"))
        kept = ops.where(keep, values, 0.0)
        if self.scale_mode == "min":
            scale = ops.min(ops.where(keep, values, ops.max(values)))
        elif self.scale_mode == "median":
            index = k - rank + (rank - 1) // 2
            scale = ops.take(values, ops.clip(index, 0, k - 1))
        else:
            scale = ops.sum(kept) / ops.cast(ops.maximum(rank, 1), values.dtype)
        inv_sqrt = ops.where(keep, 1.0 / ops.sqrt(ops.where(keep, values, 1.0)), 0.0)
        balance = ops.sqrt(ops.maximum(scale, 0.0)) * ops.matmul(
            vectors * inv_sqrt[None, :], ops.transpose(vectors)
        )
        w = ops.matmul(balance, p)
        return ops.where(rank > 0, w, p), state

    def get_config(self):
        return {"pref_vector": self.pref_vector, "scale_mode": self.scale_mode}
