"""Geometric loss strategy (GLS; Chennupati et al. 2019).

The objective is the geometric mean of the task losses, ``(Π_i L_i)^{1/K}``,
whose gradient weighs task ``i`` by ``ω_i = (Π_j L_j)^{1/K} / (K L_i)``.

Reference: Chennupati, Sistu, Yogamani & Rawashdeh (2019), "MultiNet++:
Multi-Stream Feature Aggregation and Geometric Loss Strategy for Multi-Task
Learning", CVPR Workshops; as LibMTL's ``GLS``. See docs/weighting.md.
"""

import keras
from keras import ops

from keras_aux.weighting.base import PACKAGE, LossWeighting


@keras.saving.register_keras_serializable(package=PACKAGE)
class GeometricLoss(LossWeighting):
    """Geometric loss strategy (Chennupati et al. 2019, "MultiNet++:
    Multi-Stream Feature Aggregation and Geometric Loss Strategy for
    Multi-Task Learning"), as LibMTL's ``GLS``.

    The step descends ``(Π_i L_i)^{1/K}`` through the weights
    ``ω_i = (Π_j L_j)^{1/K} / (K L_i)``, computed in log space; ``Σ_i ω_i L_i``
    is the geometric mean itself. The losses must be positive.

    Args:
        fix_primary: see `LossWeighting`.
    """

    def method_weights(self, losses, state, parameters):
        k = losses.shape[0]
        geometric_mean = ops.exp(ops.mean(ops.log(losses)))
        return geometric_mean / (k * losses)
