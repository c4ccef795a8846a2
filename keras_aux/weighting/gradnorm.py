"""GradNorm (Chen, Badrinarayanan, Lee & Rabinovich 2018).

Weights ``ω = K · softmax(ℓ)``; after each step the logits ``ℓ`` descend the
GradNorm loss ``Σ_i |ω_i n_i − Ḡ r_i^α|`` with ``n_i`` the norm of task i's
gradient on the shared weights, ``Ḡ = mean_i ω_i n_i`` and ``r_i`` the
relative inverse training rate ``L̃_i / mean_j L̃_j``, ``L̃_i = L_i / L_i(0)``
(``Ḡ r_i^α`` held constant). The first epoch weighs every task 1 and
measures ``L_i(0)``, its mean loss.

Reference: Chen et al. (2018), "GradNorm: Gradient Normalization for Adaptive
Loss Balancing in Deep Multitask Networks", ICML; as LibMTL's ``GradNorm``.
See docs/weighting.md.
"""

import keras
from keras import ops

from keras_aux.weighting.base import (
    PACKAGE,
    LossWeighting,
    accumulate,
    adam_step,
    close_epoch,
    epoch_state,
    positive_float,
)


def gradnorm_logit_gradient(logits, gradient_norms, losses, initial_losses, alpha):
    """The gradient of the GradNorm loss with respect to the logits ``ℓ``.

    ``∂/∂ℓ_j Σ_i |ω_i n_i − C_i| = K z_j (u_j − Σ_i z_i u_i)`` with ``z =
    softmax(ℓ)``, ``ω = K z``, ``u_i = sign(ω_i n_i − C_i) n_i`` and the
    constant ``C_i = mean(ω n) · r_i^α``.
    """
    k = logits.shape[0]
    z = ops.softmax(logits)
    omega = k * z
    weighted = omega * gradient_norms
    relative = losses / initial_losses
    rate = relative / ops.mean(relative)
    target = ops.mean(weighted) * ops.power(rate, alpha)
    u = ops.sign(weighted - target) * gradient_norms
    return k * z * (u - ops.sum(z * u))


@keras.saving.register_keras_serializable(package=PACKAGE)
class GradNorm(LossWeighting):
    """GradNorm (Chen et al. 2018, "GradNorm: Gradient Normalization for
    Adaptive Loss Balancing in Deep Multitask Networks"), as LibMTL's
    ``GradNorm`` (weights ``K · softmax(ℓ)``, ``ℓ`` starting at 1).

    The logits are trained by their own Adam step (torch's defaults, no
    weight decay) on the GradNorm loss, with their own learning rate.

    Args:
        alpha: the restoring force α (1.5, as LibMTL).
        learning_rate: Adam's learning rate for the logits (1e-3).
        fix_primary: see `LossWeighting`.
    """

    needs_epochs = True
    needs_gradient_norms = True

    def __init__(self, alpha=1.5, learning_rate=1e-3, fix_primary=False):
        super().__init__(fix_primary=fix_primary)
        self.alpha = positive_float(alpha, "alpha", allow_zero=True)
        self.learning_rate = positive_float(learning_rate, "learning_rate")

    def init(self, num_tasks):
        """The logits (1), Adam's moments and step, the first epoch's mean
        losses and the epoch accumulators."""
        zeros = ops.zeros((num_tasks,), "float32")
        return {
            **epoch_state(num_tasks),
            "logits": ops.ones((num_tasks,), "float32"),
            "adam_m": zeros,
            "adam_v": zeros,
            "adam_step": ops.zeros((), "float32"),
            "initial_losses": ops.ones((num_tasks,), "float32"),
        }

    def method_weights(self, losses, state, parameters):
        k = losses.shape[0]
        dynamic = k * ops.softmax(state["logits"])
        return ops.where(state["epochs"] >= 1.0, dynamic, ops.ones_like(dynamic))

    def update(self, losses, state, gradient_norms=None):
        """After the first epoch, one Adam step of the logits on the GradNorm loss."""
        if gradient_norms is None:
            raise ValueError("GradNorm's update needs `gradient_norms`, one per task.")
        losses = ops.cast(losses, "float32")
        new = accumulate(state, losses)
        grad = gradnorm_logit_gradient(
            state["logits"],
            ops.cast(gradient_norms, "float32"),
            losses,
            state["initial_losses"],
            self.alpha,
        )
        logits, m, v, step = adam_step(
            state["logits"],
            grad,
            state["adam_m"],
            state["adam_v"],
            state["adam_step"],
            self.learning_rate,
        )
        learning = state["epochs"] >= 1.0
        for key, value in (("logits", logits), ("adam_m", m), ("adam_v", v), ("adam_step", step)):
            new[key] = ops.where(learning, value, state[key])
        return new

    def end_epoch(self, state):
        """After the first epoch, records its mean losses as ``L(0)``."""
        mean, new, had_steps = close_epoch(state)
        first = ops.logical_and(had_steps, state["epochs"] == 0.0)
        new["initial_losses"] = ops.where(first, mean, state["initial_losses"])
        return new

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "learning_rate": self.learning_rate,
        }
