"""GradDrop: keep, per coordinate, only the rows of one randomly chosen sign.

``P = ½ (1 + Σ_i g_i / Σ_i |g_i|)`` per coordinate (½ where every row is 0),
``U ~ Uniform[0, 1)`` per coordinate, ``M_i = [P > U] [g_i > 0] + [P < U] [g_i < 0]``
and the aggregation ``Σ_i (ℓ_i + (1 − ℓ_i) M_i) g_i`` (``ℓ`` the leaks,
0 by default).

Reference: Chen et al. (2020), "Just Pick a Sign: Optimizing Deep Multitask
Models with Gradient Sign Dropout", NeurIPS, Algorithm 1 lines 10–15; as
TorchJD's ``GradDrop`` with its default ``f`` (identity: other ``f`` are not
serialisable and not offered). Random numbers from `rng`.
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation import rng
from keras_aux.censoring.aggregation.base import PACKAGE, Aggregator, check_matrix


@keras.saving.register_keras_serializable(package=PACKAGE)
class GradDrop(Aggregator):
    """GradDrop (Chen et al. 2020, Algorithm 1), as TorchJD's ``GradDrop``.

    Args:
        leak: one leak ``ℓ_i ∈ [0, 1]`` per row, or None (no leak).
        seed: integer seed; the state is a call counter.
    """

    randomized = True
    stateful = True

    def __init__(self, leak=None, seed=0):
        self.leak = None if leak is None else [float(x) for x in leak]
        self.seed = int(seed)

    @property
    def needs_num_rows(self):
        return self.leak is not None

    def init(self, num_rows):
        """The call counter (int32 scalar), 0."""
        if self.leak is not None and num_rows != len(self.leak):
            raise ValueError(f"GradDrop has {len(self.leak)} leaks for {num_rows} rows.")
        return ops.zeros((), dtype="int32")

    def update(self, matrix, state):
        matrix = check_matrix(matrix)
        k, n = matrix.shape
        if self.leak is not None and k != len(self.leak):
            raise ValueError(f"GradDrop has {len(self.leak)} leaks for {k} rows.")
        leak = (
            ops.zeros((k,), matrix.dtype)
            if self.leak is None
            else ops.convert_to_tensor(self.leak, dtype=matrix.dtype)
        )
        purity = 0.5 * (1.0 + ops.divide_no_nan(ops.sum(matrix, 0), ops.sum(ops.abs(matrix), 0)))
        u = rng.uniform(self.seed, state, (n,), matrix.dtype)
        keep_positive = ops.cast(purity > u, matrix.dtype)[None, :]
        keep_negative = ops.cast(purity < u, matrix.dtype)[None, :]
        mask = keep_positive * ops.cast(matrix > 0, matrix.dtype) + keep_negative * ops.cast(
            matrix < 0, matrix.dtype
        )
        factor = leak[:, None] + (1.0 - leak[:, None]) * mask
        return ops.sum(factor * matrix, axis=0), state + 1

    def get_config(self):
        return {"leak": self.leak, "seed": self.seed}
