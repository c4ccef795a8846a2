"""Mask SoftMax of MAXL: a softmax over the auxiliary classes of each example's
primary class only.

Reference: Liu, Davison & Johns (2019), MAXL, §3.3 ("Mask SoftMax for
Hierarchical Predictions"); docs/maxl.md#masked-softmax.
"""

import keras
import numpy as np
from keras import ops

from keras_aux import hierarchy


@keras.saving.register_keras_serializable(package="keras_aux")
class HierarchicalMaskedSoftmax(keras.layers.Layer):
    """Softmax of ``logits`` restricted to the block of the primary label.

    Call it on ``[logits, primary_label]``: ``logits`` of shape ``(batch,
    sum(ψ))``; ``primary_label`` either integer class ids of shape ``(batch,)``
    or ``(batch, 1)``, or one-hot rows of shape ``(batch, len(ψ))``. The output
    has exactly zero mass outside the block and sums to one inside it.

    Numerically stable: the maximum is taken over the block only and entries
    outside it are set to ``-inf`` before the softmax. The reference code
    multiplies ``exp(logits)`` by a 1e-8 mask instead, which overflows for large
    logits and leaks a little mass; the paper's ``exp(M ⊙ ŷ)`` would leak a lot.

    Args:
        psi: list of positive ints, the number of auxiliary classes of each
            primary class (unbalanced hierarchies allowed).
    """

    def __init__(self, psi, **kwargs):
        super().__init__(**kwargs)
        self.psi = hierarchy.validate_psi(psi)
        self._blocks = hierarchy.block_matrix(self.psi)

    @property
    def num_primary(self):
        """``len(ψ)``."""
        return len(self.psi)

    @property
    def num_auxiliary(self):
        """``sum(ψ)``."""
        return sum(self.psi)

    def _check_shapes(self, logits_shape, label_shape):
        if logits_shape[-1] is not None and logits_shape[-1] != self.num_auxiliary:
            raise ValueError(
                f"HierarchicalMaskedSoftmax with ψ={list(self.psi)} expects {self.num_auxiliary} "
                f"(= sum ψ) logits; got shape {tuple(logits_shape)}."
            )
        if len(label_shape) == 2 and label_shape[-1] not in (1, None, self.num_primary):
            raise ValueError(
                f"The primary label must be class ids of shape (batch,) or (batch, 1), or one-hot "
                f"rows of width {self.num_primary} (= len ψ); got shape {tuple(label_shape)}."
            )
        if len(label_shape) not in (1, 2):
            raise ValueError(
                f"The primary label must have rank 1 or 2; got shape {tuple(label_shape)}."
            )

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2:
            raise ValueError("HierarchicalMaskedSoftmax is called on [logits, primary_label].")
        self._check_shapes(*input_shape)
        self.built = True

    def mask(self, primary_label):
        """Boolean ``(batch, sum ψ)`` mask of the block of each primary label."""
        label = ops.convert_to_tensor(primary_label)
        blocks = ops.convert_to_tensor(self._blocks)
        if len(label.shape) == 2 and label.shape[-1] == self.num_primary and self.num_primary > 1:
            return ops.matmul(ops.cast(label, "float32"), blocks) > 0.5
        ids = ops.cast(ops.reshape(label, (-1,)), "int32")
        ids = _checked_ids(ids, self.num_primary)
        return ops.take(blocks, ids, axis=0) > 0.5

    def call(self, inputs):
        logits, primary_label = inputs
        mask = self.mask(primary_label)
        masked = ops.where(mask, logits, ops.full_like(logits, -np.inf))
        return ops.softmax(masked, axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0])

    def get_config(self):
        config = super().get_config()
        config.update(psi=list(self.psi))
        return config


def _checked_ids(ids, num_primary):
    """Checks that the labels lie in ``[0, num_primary)`` (an out-of-range label would otherwise
    give an all-``-inf`` row: NaN).

    TensorFlow backend: graph assertions, raising ``InvalidArgumentError`` when the step runs
    (eagerly, in a ``tf.function``; XLA drops them). Other backends: concrete (eager) labels
    raise ``ValueError`` here; labels traced under ``jax.jit`` have no value to check, and an
    out-of-range one gives a NaN row.
    """
    message = f"primary labels must be in [0, {num_primary}) (ψ has {num_primary} entries)"
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf  # Keras's backend: already imported

        if not isinstance(ids, tf.Tensor) and not tf.is_tensor(ids):
            return ids
        with tf.control_dependencies(
            [
                tf.debugging.assert_non_negative(ids, message=message),
                tf.debugging.assert_less(ids, tf.constant(num_primary, ids.dtype), message=message),
            ]
        ):
            return tf.identity(ids)
    if isinstance(ids, keras.KerasTensor):
        return ids
    if backend == "jax":
        import jax

        if isinstance(ids, jax.core.Tracer):
            return ids
    values = ops.convert_to_numpy(ids)
    if values.size and (values.min() < 0 or values.max() >= num_primary):
        raise ValueError(f"{message}; got {values.min()}..{values.max()}.")
    return ids
