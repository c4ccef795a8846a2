"""PCGrad as an aggregator: symmetric projection of conflicting rows, then the sum.

For each row ``i``, starting from ``g_i``, and for every other row ``j`` in
index order: if ``⟨g_i^PC, g_j⟩ < 0`` then ``g_i^PC −= ⟨g_i^PC, g_j⟩ / ‖g_j‖² g_j``.
The aggregation is ``Σ_i g_i^PC``. Only the Gramian is needed: with
``g_i^PC = Σ_k C_ik g_k``, ``⟨g_i^PC, g_j⟩ = (C G)_ij``.

Reference: Yu et al. (2020), "Gradient Surgery for Multi-Task Learning",
NeurIPS, Algorithm 1; as TorchJD's ``PCGrad`` except the order: TorchJD (and
the paper) visit the other rows in a random order per row, here the order is
fixed (deterministic, no random state), as in
`keras_aux.censoring.PCGrad`. With two rows the orders coincide.
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator


def pcgrad_coefficients(gramian_):
    """The matrix ``C`` with ``g_i^PC = Σ_k C_ik g_k`` (fixed order ``j = 0..K−1``)."""
    k = gramian_.shape[0]
    dtype = gramian_.dtype
    eye = ops.eye(k, dtype=dtype)
    c = eye
    diagonal = ops.diagonal(gramian_)
    for j in range(k):
        inner = ops.matmul(c, gramian_[:, j])  # ⟨g_i^PC, g_j⟩ for every i
        conflict = (inner < 0) & (ops.arange(k) != j)
        step = ops.where(conflict, inner / ops.where(diagonal[j] > 0, diagonal[j], 1.0), 0.0)
        c = c - step[:, None] * eye[j][None, :]
    return c


@keras.saving.register_keras_serializable(package=PACKAGE)
class PCGrad(GramianWeightedAggregator):
    """PCGrad (Yu et al. 2020, Algorithm 1) with a fixed order, as TorchJD's ``PCGrad``."""

    def gramian_weights(self, gramian_, state):
        return ops.sum(pcgrad_coefficients(gramian_), axis=0), state
