"""Random loss weighting (RLW; Lin et al. 2022).

At every step ``ω = softmax(z)`` with ``z ~ N(0, I_K)`` drawn afresh.

Reference: Lin, Ye, Zhang & Tsang (2022), "Reasonable Effectiveness of
Random Weighting: A Litmus Test for Multi-Task Learning", TMLR; as LibMTL's
``RLW`` with its default normal distribution. See docs/weighting.md.
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation import rng
from keras_aux.weighting.base import PACKAGE, LossWeighting


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomLossWeighting(LossWeighting):
    """Random loss weighting (Lin et al. 2022, "Reasonable Effectiveness of
    Random Weighting: A Litmus Test for Multi-Task Learning"), as LibMTL's
    ``RLW`` (normal distribution).

    The draws come from a counter-based generator (`keras_aux.censoring.
    aggregation.rng`, the same numbers on every backend): the state is the
    step counter, so a resumed run draws what the uninterrupted one would.

    Args:
        seed: integer seed.
        fix_primary: see `LossWeighting`.
    """

    def __init__(self, seed=0, fix_primary=False):
        super().__init__(fix_primary=fix_primary)
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise ValueError(f"`seed` must be an integer; got {seed!r}.")
        self.seed = seed

    def init(self, num_tasks):
        """The step counter, 0."""
        del num_tasks
        return {"step": ops.zeros((), "int32")}

    def method_weights(self, losses, state, parameters):
        z = rng.normal(self.seed, state["step"], (losses.shape[0],), "float32")
        return ops.softmax(z)

    def update(self, losses, state, gradient_norms=None):
        """Advances the counter."""
        return {"step": state["step"] + 1}

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
