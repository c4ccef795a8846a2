"""Random loss weighting (RLW): a random convex combination of the rows.

``w = softmax(z)``, ``z ~ N(0, I_K)``, fresh at every call; the aggregation
is ``wᵀ J``. The weights do not read ``J`` at all, so the method is a
`GramianWeightedAggregator` (only ``G``'s size and dtype are used): a model
takes the Gramian path, where XLA drops the unused ``G``.

Reference: Lin et al. (2022), "Reasonable Effectiveness of Random Weighting:
A Litmus Test for Multi-Task Learning", TMLR, Algorithm 2; as TorchJD's
``Random``. The numbers come from `rng` (seeded, counter in the state), not
from torch's generator, so single draws differ from TorchJD's.
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation import rng
from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator


@keras.saving.register_keras_serializable(package=PACKAGE)
class RandomWeighting(GramianWeightedAggregator):
    """RLW (Lin et al. 2022, Algorithm 2), as TorchJD's ``Random``.

    Args:
        seed: integer seed; the state (``init``) is a call counter, so
            successive ``update`` calls draw new weights.
    """

    randomized = True
    stateful = True

    def __init__(self, seed=0):
        self.seed = int(seed)

    def init(self, num_rows):
        """The call counter (int32 scalar), 0."""
        del num_rows
        return ops.zeros((), dtype="int32")

    def gramian_weights(self, gramian_, state):
        k = gramian_.shape[0]
        z = rng.normal(self.seed, state, (k,), gramian_.dtype)
        return ops.softmax(z), state + 1

    def get_config(self):
        return {"seed": self.seed}
