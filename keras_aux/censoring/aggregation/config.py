"""ConFIG: the conflict-free direction with equal cosine to every task gradient.

With unit rows ``u_i = g_i / ‖g_i‖`` (zero rows stay zero), ``d = U⁺ p``
(``p = 1`` by default), ``d̂ = d / ‖d‖`` and the aggregation
``(Σ_i g_iᵀ d̂) · d̂``. ``U⁺`` is computed from the Gramian of the unit rows,
``U⁺ p = Uᵀ (U Uᵀ)⁺ p``, with ``torch.linalg.pinv``'s cut-off for ``U``
(singular values below ``max(K, n) · eps · σ_max``), raised to
``√(10 K eps) · σ_max`` when that is larger (the Gramian's rounding noise).

Reference: Liu, Chu, Thuerey (2024), "ConFIG: Towards Conflict-free Training
of Physics Informed Neural Networks", Eq. 2; as TorchJD's ``ConFIG``.
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import (
    PACKAGE,
    WeightedAggregator,
    gramian,
    machine_epsilon,
    pinv_psd,
)
from keras_aux.censoring.aggregation.upgrad import preference


@keras.saving.register_keras_serializable(package=PACKAGE)
class ConFIG(WeightedAggregator):
    """ConFIG (Liu et al. 2024, Eq. 2), as TorchJD's ``ConFIG``.

    Args:
        pref_vector: target weights ``p`` (default 1 each).
    """

    def __init__(self, pref_vector=None):
        self.pref_vector = None if pref_vector is None else [float(x) for x in pref_vector]

    def weights(self, matrix, state):
        k, n = matrix.shape
        g = gramian(matrix)
        p = preference(self.pref_vector, k, g.dtype, 1.0)
        norms = ops.sqrt(ops.maximum(ops.diagonal(g), 0.0))
        inv_norms = ops.where(norms > 0, 1.0 / ops.where(norms > 0, norms, 1.0), 0.0)
        unit_gramian = g * inv_norms[:, None] * inv_norms[None, :]
        rtol = max(k, n if n is not None else k) * machine_epsilon(g.dtype)
        # σ(U)² = λ(U Uᵀ): torch's cut-off squared, but never under the rounding
        # noise of the Gramian's eigenvalues (10 K eps), where they would blow up.
        cutoff = max(rtol * rtol, 10 * k * machine_epsilon(g.dtype))
        coefficients = ops.matmul(pinv_psd(unit_gramian, cutoff), p)
        # d = Σ_i c_i u_i; ‖d‖² = cᵀ (U Uᵀ) c.
        d_norm = ops.sqrt(
            ops.maximum(ops.sum(coefficients * ops.matmul(unit_gramian, coefficients)), 0.0)
        )
        d_norm = ops.maximum(d_norm, 1e-12)
        row_weights = coefficients * inv_norms / d_norm  # d̂ = Σ row_weights_i g_i
        length = ops.sum(ops.matmul(g, row_weights))  # Σ_j g_jᵀ d̂
        return length * row_weights, state

    def get_config(self):
        return {"pref_vector": self.pref_vector}
