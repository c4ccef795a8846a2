"""Uncertainty weighting (Kendall, Gal & Cipolla 2018).

Each task ``i`` has a learned log-variance ``s_i`` and contributes
``L_i / (2 e^{s_i}) + s_i / 2`` to the objective; ``s`` is trained by the
model's own optimizer together with the model's weights.

Reference: Kendall, Gal & Cipolla (2018), "Multi-Task Learning Using
Uncertainty to Weigh Losses for Scene Geometry and Semantics", CVPR; the code
follows LibMTL's ``UW`` (one formula for every task, ``s`` initialised to
-0.5). See docs/weighting.md.
"""

import keras
from keras import ops

from keras_aux.weighting.base import PACKAGE, LossWeighting


@keras.saving.register_keras_serializable(package=PACKAGE)
class UncertaintyWeighting(LossWeighting):
    """Uncertainty weighting (Kendall, Gal & Cipolla 2018, "Multi-Task
    Learning Using Uncertainty to Weigh Losses for Scene Geometry and
    Semantics"), as LibMTL's ``UW``.

    Objective ``Σ_i L_i / (2 e^{s_i}) + s_i / 2``; weight ``ω_i = 1 / (2 e^{s_i})``.
    The log-variances ``s`` (parameter ``"log_variance"``) are trainable
    variables of the model, trained by its optimizer.

    Args:
        initial_log_variance: the initial ``s_i`` (-0.5, as LibMTL).
        fix_primary: see `LossWeighting`; the primary task then has no ``s``
            term and weight 1.
    """

    def __init__(self, initial_log_variance=-0.5, fix_primary=False):
        super().__init__(fix_primary=fix_primary)
        try:
            value = float(initial_log_variance)
        except (TypeError, ValueError):
            value = float("nan")
        if not abs(value) < float("inf"):
            raise ValueError(
                f"`initial_log_variance` must be a finite number; got {initial_log_variance!r}."
            )
        self.initial_log_variance = value

    def parameters(self, num_tasks):
        """The log-variances, one per task."""
        return {"log_variance": ops.full((num_tasks,), self.initial_log_variance, "float32")}

    def method_weights(self, losses, state, parameters):
        return 0.5 * ops.exp(-ops.convert_to_tensor(parameters["log_variance"]))

    def objectives(self, losses, state, parameters=None):
        """``L_i / (2 e^{s_i}) + s_i / 2``, differentiable in ``s`` (with
        ``fix_primary``, the primary's is ``L_0 + 0 · s_0``)."""
        s = ops.convert_to_tensor(parameters["log_variance"])
        losses = ops.convert_to_tensor(losses)
        terms = 0.5 * ops.exp(-s) * losses + 0.5 * s
        if self.fix_primary:
            first = ops.arange(s.shape[0]) == 0
            terms = ops.where(first, losses + 0.0 * s, terms)
        return terms

    def get_config(self):
        return {**super().get_config(), "initial_log_variance": self.initial_log_variance}
