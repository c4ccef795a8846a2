"""Auto-λ (Liu, James, Davison & Johns 2022): task weights learned by a
meta optimiser from a one-step look-ahead of the model.

Every task's loss (the primary's too) has a raw weight λ_i. Each training
step first takes one meta step on λ: with ``g = Σ_i λ_i ∇L_i(θ)`` on the
training batch and ``θ′ = θ − α g`` (α the model optimizer's current learning
rate; SGD's momentum term added when it has one), the meta objective is the
primary loss at ``θ′`` on a meta batch, whose gradient in λ_i is
``−α ⟨∇L_i(θ), ∇L_meta(θ′)⟩``; λ takes an Adam step with it, and the model's
step on the same batch then uses the new λ.

Reference: Liu, James, Davison & Johns (2022), "Auto-Lambda: Disentangling
Dynamic Task Relationships", TMLR (code: lorenmt/auto-lambda). See
docs/learned_weighting.md.
"""

import keras
from keras import ops

from keras_aux.weighting.base import PACKAGE, LossWeighting, adam_step, positive_float

META_GRADIENTS = ("exact", "central_difference")


@keras.saving.register_keras_serializable(package=PACKAGE)
class AutoLambda(LossWeighting):
    """Auto-λ (Liu et al. 2022, "Auto-Lambda: Disentangling Dynamic Task
    Relationships"), auxiliary mode: the meta objective is the primary loss.

    A `keras_aux.weighting.LossWeighting`: pass it as
    ``AuxiliaryModel.compile(loss_weighting=AutoLambda())`` and train on data
    that carries a meta batch beside every training batch
    (`keras_aux.models.with_meta_batches`, or ``zip_tasks(..., meta=...)``).
    The meta-gradient is exact by default (per-task directional derivatives
    along ``∇L_meta(θ′)``; the reference's central difference is an option),
    and the look-ahead is the compiled optimizer's next step: Keras's SGD
    rule (momentum, Nesterov) for `keras.optimizers.SGD`, plain SGD for any
    other optimizer (the reference's rule for an optimizer without momentum),
    after the optimizer's ``weight_decay`` (Keras's decoupled ``θ − α w θ``).

    Args:
        learning_rate: the meta optimiser's (Adam) learning rate (1e-4, as the
            reference for dense prediction; it advises 3e-4 on CIFAR).
        initial_weight: every λ_i at the start (0.1, as the reference).
        meta_gradient: ``"exact"`` (default) or ``"central_difference"``:
            ``h_i ≈ [L_i(θ + εv) − L_i(θ − εv)] / (2ε)``, ``ε = 0.01 / ‖v‖``,
            ``v = ∇L_meta(θ′)``, as the reference (two forward passes in
            place of one derivative pass).
        fix_primary: see `LossWeighting` (the primary's λ then stays 1).
    """

    #: The train step brings a meta batch and calls `meta_update` before the model's step.
    needs_meta_batch = True

    def __init__(
        self, learning_rate=1e-4, initial_weight=0.1, meta_gradient="exact", fix_primary=False
    ):
        super().__init__(fix_primary=fix_primary)
        self.learning_rate = positive_float(learning_rate, "learning_rate")
        self.initial_weight = positive_float(initial_weight, "initial_weight", allow_zero=True)
        if meta_gradient not in META_GRADIENTS:
            raise ValueError(
                f"`meta_gradient` must be one of {list(META_GRADIENTS)}; got {meta_gradient!r}."
            )
        self.meta_gradient = meta_gradient

    def init(self, num_tasks):
        """λ (``initial_weight``) and its Adam moments and step."""
        zeros = ops.zeros((num_tasks,), "float32")
        return {
            "weights": ops.full((num_tasks,), self.initial_weight, "float32"),
            "adam_m": zeros,
            "adam_v": zeros,
            "adam_step": ops.zeros((), "float32"),
        }

    def method_weights(self, losses, state, parameters):
        return state["weights"]

    def lookahead_weights(self, state):
        """The λ of the look-ahead step (the primary's held at 1 with ``fix_primary``)."""
        return self._held_primary(state["weights"])

    def meta_update(self, state, products, learning_rate):
        """The state after the meta step: λ's Adam step along ``−α h``.

        Args:
            state: the current state.
            products: ``h_i = ⟨∇L_i(θ), ∇L_meta(θ′)⟩``, one per task.
            learning_rate: α, the model optimizer's current learning rate.
        """
        grad = -learning_rate * ops.cast(products, "float32")
        if self.fix_primary:
            grad = ops.where(ops.arange(grad.shape[0]) == 0, ops.zeros_like(grad), grad)
        weights, m, v, step = adam_step(
            state["weights"],
            grad,
            state["adam_m"],
            state["adam_v"],
            state["adam_step"],
            self.learning_rate,
        )
        return {"weights": weights, "adam_m": m, "adam_v": v, "adam_step": step}

    def get_config(self):
        return {
            **super().get_config(),
            "learning_rate": self.learning_rate,
            "initial_weight": self.initial_weight,
            "meta_gradient": self.meta_gradient,
        }
