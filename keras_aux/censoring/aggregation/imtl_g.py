"""IMTL-G: the update whose projections on every unit task gradient are equal.

``w = G⁺ d / Σ(G⁺ d)`` with ``d = √diag(G)`` (zeros when ``|Σ(G⁺ d)| < 10⁻¹²``);
the aggregation is ``wᵀ J``. With linearly independent rows this is IMTL-G;
the pseudo-inverse extends it to dependent rows.

References: Liu et al. (2021), "Towards Impartial Multi-task Learning", ICLR;
the generalisation of Quinton & Rey (2024), arXiv:2406.16232; as TorchJD's
``IMTLG``.
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator, pinv_psd


@keras.saving.register_keras_serializable(package=PACKAGE)
class IMTLG(GramianWeightedAggregator):
    """IMTL-G (Liu et al. 2021), generalised as in TorchJD's ``IMTLG``."""

    def gramian_weights(self, gramian_, state):
        d = ops.sqrt(ops.maximum(ops.diagonal(gramian_), 0.0))
        v = ops.matmul(pinv_psd(gramian_), d)
        total = ops.sum(v)
        small = ops.abs(total) < 1e-12
        return ops.where(small, ops.zeros_like(v), v / ops.where(small, 1.0, total)), state
