"""Focal loss on probabilities with soft targets, and MAXL's batch entropy
regulariser.

References: Lin, Goyal, Girshick, He & Dollár (2017), "Focal Loss for Dense
Object Detection"; Liu, Davison & Johns (2019), MAXL, §3.1 and §3.4 (the
reference code adds 1e-20 inside both logarithms); docs/maxl.md#focal-loss and
docs/maxl.md#entropy-regulariser.
"""

import keras
from keras import ops

EPSILON = 1e-20


def _dense_targets(y_true, y_pred):
    """One-hot rows for sparse class ids; soft or one-hot targets unchanged."""
    y_true = ops.convert_to_tensor(y_true)
    classes = y_pred.shape[-1]
    sparse = len(y_true.shape) < len(y_pred.shape) or (
        y_true.shape[-1] == 1 and classes is not None and classes > 1
    )
    if sparse:
        ids = ops.cast(ops.reshape(y_true, ops.shape(y_pred)[:-1]), "int32")
        return ops.one_hot(ids, classes, dtype=y_pred.dtype)
    if y_true.shape[-1] is not None and classes is not None and y_true.shape[-1] != classes:
        raise ValueError(
            f"Focal loss targets have {y_true.shape[-1]} classes but predictions have {classes}."
        )
    return ops.cast(y_true, y_pred.dtype)


@keras.saving.register_keras_serializable(package="keras_aux")
def focal_loss(y_true, y_pred, gamma=2.0, epsilon=EPSILON):
    """Per-example focal loss ``−Σ_k t_k (1 − p_k)^γ log(p_k + ε)``.

    ``y_pred`` holds probabilities (not logits). ``y_true`` is soft or one-hot
    rows, or integer class ids (shape ``(batch,)`` or ``(batch, 1)``).
    """
    y_pred = ops.convert_to_tensor(y_pred)
    targets = _dense_targets(y_true, y_pred)
    weights = ops.power(1.0 - y_pred, gamma)
    return -ops.sum(targets * weights * ops.log(y_pred + epsilon), axis=-1)


@keras.saving.register_keras_serializable(package="keras_aux")
class FocalLoss(keras.losses.Loss):
    """Focal loss on probabilities with soft targets (MAXL's loss for both tasks).

    Args:
        gamma: focusing parameter γ (2 in MAXL); γ = 0 is cross-entropy.
        epsilon: added inside the logarithm (1e-20, as in the reference code).
    """

    def __init__(
        self, gamma=2.0, epsilon=EPSILON, reduction="sum_over_batch_size", name="focal_loss", **kw
    ):
        if gamma < 0:
            raise ValueError(f"Focal loss `gamma` must be >= 0; got {gamma}.")
        super().__init__(reduction=reduction, name=name, **kw)
        self.gamma = float(gamma)
        self.epsilon = float(epsilon)

    def call(self, y_true, y_pred):
        return focal_loss(y_true, y_pred, self.gamma, self.epsilon)

    def get_config(self):
        config = super().get_config()
        config.update(gamma=self.gamma, epsilon=self.epsilon)
        return config


@keras.saving.register_keras_serializable(package="keras_aux")
def negative_batch_entropy(probabilities, epsilon=EPSILON):
    """MAXL's entropy regulariser ``H = Σ_k q̄_k log(q̄_k + ε)``, ``q̄`` the batch
    mean of the generated label distributions.

    It is a *negative* entropy: minimising it spreads the generated labels over
    all auxiliary classes, against the collapse the paper describes (§3.4).
    """
    mean = ops.mean(ops.convert_to_tensor(probabilities), axis=0)
    return ops.sum(mean * ops.log(mean + epsilon))
