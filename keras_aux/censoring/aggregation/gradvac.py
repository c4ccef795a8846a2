"""GradVac: raise the cosine between task gradients to an EMA target.

For each row ``i`` and every other row ``j`` in index order, with
``φ = cos(g_i^PC, g_j)`` and the target ``φ̂_ij``: if ``φ < φ̂_ij`` then
``g_i^PC += ‖g_i^PC‖ (φ̂_ij √(1−φ²) − φ √(1−φ̂_ij²)) / (‖g_j‖ √(1−φ̂_ij²) + eps) · g_j``;
then ``φ̂_ij ← (1−β) φ̂_ij + β φ`` (``φ`` before the correction). The
aggregation is ``Σ_i g_i^PC``; the state is ``φ̂`` (``K × K``, zeros at
``init``), so the first call from zero targets is PCGrad.

Reference: Wang, Tsvetkov, Firat & Cao (2021), "Gradient Vaccine:
Investigating and Improving Multi-task Optimization in Massively Multilingual
Models", ICLR; as TorchJD's ``GradVac`` (``beta = 0.5``, ``eps = 10⁻⁸``,
everything from the Gramian), except the order of the other rows: random in
TorchJD, fixed here (deterministic; identical with two rows).
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator


@keras.saving.register_keras_serializable(package=PACKAGE)
class GradVac(GramianWeightedAggregator):
    """GradVac (Wang et al. 2021), as TorchJD's ``GradVac`` with a fixed order.

    Args:
        beta: EMA rate of the cosine targets, in [0, 1].
        eps: added to the denominators.
    """

    stateful = True
    needs_num_rows = True

    def __init__(self, beta=0.5, eps=1e-8):
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"`beta` must be in [0, 1]; got {beta}.")
        if eps < 0:
            raise ValueError(f"`eps` must be non-negative; got {eps}.")
        self.beta = float(beta)
        self.eps = float(eps)

    def init(self, num_rows):
        """The cosine targets ``φ̂`` (``K × K`` float32 zeros)."""
        return ops.zeros((num_rows, num_rows), dtype="float32")

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        dtype = gramian_.dtype
        targets = ops.cast(state, dtype)
        eye = ops.eye(k, dtype=dtype)
        c = eye
        norm_j_all = ops.sqrt(ops.maximum(ops.diagonal(gramian_), 0.0))
        others = ops.arange(k)
        for j in range(k):
            cg = ops.matmul(c, gramian_)  # ⟨g_i^PC, g_l⟩
            dot = cg[:, j]
            norm_i = ops.sqrt(ops.maximum(ops.sum(cg * c, axis=1), 0.0))
            norm_j = norm_j_all[j]
            phi = dot / (norm_i * norm_j + self.eps)
            hat = targets[:, j]
            active = others != j
            correct = active & (phi < hat)
            sqrt_phi = ops.sqrt(ops.maximum(1.0 - phi * phi, 0.0))
            sqrt_hat = ops.sqrt(ops.maximum(1.0 - hat * hat, 0.0))
            w = norm_i * (hat * sqrt_phi - phi * sqrt_hat) / (norm_j * sqrt_hat + self.eps)
            c = c + ops.where(correct, w, 0.0)[:, None] * eye[j][None, :]
            new_hat = ops.where(active, (1.0 - self.beta) * hat + self.beta * phi, hat)
            targets = targets + (new_hat - hat)[:, None] * eye[j][None, :]
        return ops.sum(c, axis=0), ops.cast(targets, "float32")

    def get_config(self):
        return {"beta": self.beta, "eps": self.eps}
