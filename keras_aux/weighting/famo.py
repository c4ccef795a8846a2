"""FAMO, fast adaptive multitask optimization (Liu, Feng, Stone & Liu 2023).

With ``z = softmax(w)`` and ``D_i = L_i − L_i^* + 1e-8``, the step descends
``Σ_i z_i log D_i / c``, ``c = Σ_i z_i / D_i`` (constant): task i's weight is
``ω_i = z_i / (c D_i)``. The logits ``w`` then take an Adam step (with L2
weight decay γ) along ``J_softmax(w)ᵀ δ``, ``δ_i = log D_i(before) − log
D_i(after)``, the decrease of each task's log loss over the step.

Reference: Liu et al. (2023), "FAMO: Fast Adaptive Multitask Optimization",
NeurIPS (code: Cranial-XIX/FAMO, ``famo.py``; also LibMTL's ``FAMO``). See
docs/weighting.md.
"""

import keras
from keras import ops

from keras_aux.weighting.base import PACKAGE, LossWeighting, adam_step, positive_float

EPSILON = 1e-8


@keras.saving.register_keras_serializable(package=PACKAGE)
class FAMO(LossWeighting):
    """FAMO (Liu et al. 2023, "FAMO: Fast Adaptive Multitask Optimization"),
    as the reference ``famo.py`` with ``L^* = 0``.

    The reference measures the loss after the step on the same batch (one
    more forward pass); here it is the next step's loss (on the next batch),
    so the logits' update for step t is taken at the start of step t + 1.

    Args:
        learning_rate: Adam's learning rate for the logits (0.025, as the reference).
        gamma: Adam's L2 weight decay γ on the logits (0.01, as ``famo.py``;
            LibMTL uses 1e-3).
        fix_primary: see `LossWeighting`.
    """

    def __init__(self, learning_rate=0.025, gamma=0.01, fix_primary=False):
        super().__init__(fix_primary=fix_primary)
        self.learning_rate = positive_float(learning_rate, "learning_rate")
        self.gamma = positive_float(gamma, "gamma", allow_zero=True)

    def init(self, num_tasks):
        """The logits (0), Adam's moments and step, the previous step's losses."""
        zeros = ops.zeros((num_tasks,), "float32")
        return {
            "logits": zeros,
            "adam_m": zeros,
            "adam_v": zeros,
            "adam_step": ops.zeros((), "float32"),
            "previous_losses": zeros,
            "has_previous": ops.zeros((), "float32"),
        }

    def _logits_step(self, losses, state):
        """The logits' Adam step for the loss change from the previous step to
        these losses (none on the first step)."""
        w = state["logits"]
        delta = ops.log(state["previous_losses"] + EPSILON) - ops.log(losses + EPSILON)
        z = ops.softmax(w)
        grad = z * (delta - ops.sum(z * delta))  # J_softmax(w)ᵀ δ
        logits, m, v, step = adam_step(
            w,
            grad,
            state["adam_m"],
            state["adam_v"],
            state["adam_step"],
            self.learning_rate,
            weight_decay=self.gamma,
        )
        ready = state["has_previous"] > 0.0
        return {
            "logits": ops.where(ready, logits, w),
            "adam_m": ops.where(ready, m, state["adam_m"]),
            "adam_v": ops.where(ready, v, state["adam_v"]),
            "adam_step": ops.where(ready, step, state["adam_step"]),
        }

    def method_weights(self, losses, state, parameters):
        z = ops.softmax(self._logits_step(losses, state)["logits"])
        d = losses + EPSILON
        c = ops.sum(z / d)
        return z / (c * d)

    def update(self, losses, state, gradient_norms=None):
        """The logits after their pending step; these losses become the previous ones."""
        losses = ops.cast(losses, "float32")
        return {
            **self._logits_step(losses, state),
            "previous_losses": losses,
            "has_previous": ops.ones((), "float32"),
        }

    def get_config(self):
        return {**super().get_config(), "learning_rate": self.learning_rate, "gamma": self.gamma}
