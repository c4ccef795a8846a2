"""Dynamic weight average (DWA; Liu, Johns & Davison 2019).

From the third epoch on, ``ω = K · softmax(r / T)`` with ``r_i = L̄_i(e-1) /
L̄_i(e-2)``, the ratio of task ``i``'s mean training loss over the last two
epochs; the first two epochs weigh every task 1.

Reference: Liu, Johns & Davison (2019), "End-to-End Multi-Task Learning with
Attention", CVPR (code: lorenmt/mtan); as LibMTL's ``DWA``. See
docs/weighting.md.
"""

import keras
from keras import ops

from keras_aux.weighting.base import (
    PACKAGE,
    LossWeighting,
    accumulate,
    close_epoch,
    epoch_state,
    positive_float,
)


@keras.saving.register_keras_serializable(package=PACKAGE)
class DWA(LossWeighting):
    """Dynamic weight average (Liu, Johns & Davison 2019, "End-to-End
    Multi-Task Learning with Attention"), as LibMTL's ``DWA``.

    The mean loss of each epoch is the mean of the step losses of its
    applied steps; the epochs come from the callback `fit` adds.

    Args:
        temperature: the softmax temperature ``T`` (2, as the paper and code).
        fix_primary: see `LossWeighting`.
    """

    needs_epochs = True

    def __init__(self, temperature=2.0, fix_primary=False):
        super().__init__(fix_primary=fix_primary)
        self.temperature = positive_float(temperature, "temperature")

    def init(self, num_tasks):
        """The epoch accumulators and the last two epochs' mean losses."""
        return {**epoch_state(num_tasks), "history": ops.ones((2, num_tasks), "float32")}

    def method_weights(self, losses, state, parameters):
        history = state["history"]
        k = losses.shape[0]
        ratio = history[1] / history[0]
        dynamic = k * ops.softmax(ratio / self.temperature)
        return ops.where(state["epochs"] >= 2.0, dynamic, ops.ones_like(dynamic))

    def update(self, losses, state, gradient_norms=None):
        """Adds the step's losses to the epoch's mean."""
        return accumulate(state, ops.cast(losses, "float32"))

    def end_epoch(self, state):
        """Shifts the epoch's mean loss into the two-epoch history."""
        mean, new, had_steps = close_epoch(state)
        shifted = ops.stack([state["history"][1], mean])
        new["history"] = ops.where(had_steps, shifted, state["history"])
        return new

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
