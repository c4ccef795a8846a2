"""Training diagnostics of keras-aux as Keras metrics (they reset every epoch).

References: Liu, Davison & Johns (2019), MAXL, Appendix C (the share of
auxiliary classes the label generator actually assigns) and §3.3 (the entropy
of the mean generated label); docs/maxl.md#diagnostics.
"""

import keras
import numpy as np
from keras import ops

from keras_aux import hierarchy


@keras.saving.register_keras_serializable(package="keras_aux")
class AuxiliaryClassUsage(keras.metrics.Metric):
    """Fraction of the ``num_classes`` auxiliary classes that are the arg-max of
    at least one generated label since the last reset.

    1.0 means every auxiliary class is used; a collapsed label generator (the
    failure the MAXL entropy term prevents) drives it towards
    ``len(ψ) / sum(ψ)``. `keras_aux.models.MAXL` feeds it the labels its
    generator assigns in inference mode (``training=False``, what
    ``generate_labels`` returns) in ``evaluate``: training-mode labels (batch
    statistics, dropout) can spread over every class while the generator's
    inference labels use a few.
    """

    def __init__(self, num_classes, name="auxiliary_usage", dtype=None):
        super().__init__(name=name, dtype=dtype)
        if int(num_classes) < 1:
            raise ValueError(f"`num_classes` must be >= 1; got {num_classes}.")
        self.num_classes = int(num_classes)
        self.counts = self.add_variable(
            shape=(self.num_classes,), initializer="zeros", name="counts", aggregation="sum"
        )

    def update_state(self, labels, sample_weight=None):
        """Counts the arg-max class of each row of ``labels`` (batch, num_classes)."""
        labels = ops.convert_to_tensor(labels)
        hits = ops.one_hot(ops.argmax(labels, axis=-1), self.num_classes, dtype=self.counts.dtype)
        self.counts.assign_add(ops.sum(hits, axis=0))

    def result(self):
        return ops.mean(ops.cast(self.counts.value > 0, self.dtype))

    def reset_state(self):
        self.counts.assign(ops.zeros(self.counts.shape, self.counts.dtype))

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}


@keras.saving.register_keras_serializable(package="keras_aux")
class AuxiliaryLabelEntropy(keras.metrics.Metric):
    """Entropy of the mean generated label within the primary classes, normalised to [0, 1].

    With ``q̄`` the mean of every generated label since the last reset (over
    ``sum ψ`` classes) and ``p_i`` its mass in primary class ``i``'s block
    (the share of examples of class ``i``: labels are zero outside their
    block), the result is::

        (H(q̄) − H(p)) / Σ_i p_i · log ψ_i  =  Σ_i p_i H(q̄_i) / Σ_i p_i log ψ_i

    where ``q̄_i`` is the mean label of class ``i``'s examples, renormalised
    over its block: the entropy of the auxiliary class given the primary
    class, divided by its largest value. 1.0: inside every primary class the
    mean label is uniform over its ψ_i classes; 0.0: every example of a class
    gets the same one-hot label (collapse). Soft labels that are uniform for
    every example also give 1.0, so read it together with
    `AuxiliaryClassUsage`, which looks at the arg-max. 0.0 when every ψ_i is 1
    (nothing to choose).

    Args:
        psi: the hierarchy ψ.
    """

    def __init__(self, psi, name="auxiliary_entropy", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.psi = hierarchy.validate_psi(psi)
        self.totals = self.add_variable(
            shape=(sum(self.psi),), initializer="zeros", name="totals", aggregation="sum"
        )
        self._blocks = np.asarray(hierarchy.block_matrix(self.psi), "float32").T  # (K, len ψ)
        self._log_psi = np.log(np.asarray(self.psi, "float32"))

    def update_state(self, labels, sample_weight=None):
        """Adds the rows of ``labels`` (batch, sum ψ) to the running sum."""
        labels = ops.cast(ops.convert_to_tensor(labels), self.totals.dtype)
        self.totals.assign_add(ops.sum(labels, axis=0))

    def result(self):
        totals = self.totals.value  # the tensor: backend ops (jnp) take no Variable
        total = ops.sum(totals)
        mean = ops.divide_no_nan(totals, total)
        shares = ops.matmul(mean[None, :], ops.cast(self._blocks, mean.dtype))[0]
        conditional = _entropy(mean) - _entropy(shares)
        largest = ops.sum(shares * ops.cast(self._log_psi, mean.dtype))
        return ops.cast(ops.divide_no_nan(conditional, largest), self.dtype)

    def reset_state(self):
        self.totals.assign(ops.zeros(self.totals.shape, self.totals.dtype))

    def get_config(self):
        return {"psi": list(self.psi), "name": self.name, "dtype": self.dtype}


def _entropy(p):
    """``−Σ p log p`` in nats, with ``0 log 0 = 0``."""
    safe = ops.where(p > 0, p, ops.ones_like(p))
    return -ops.sum(ops.where(p > 0, p * ops.log(safe), ops.zeros_like(p)))


def auxiliary_label_diagnostics(labels, psi):
    """``{"auxiliary_usage", "auxiliary_entropy"}`` of generated labels, as floats.

    The values `AuxiliaryClassUsage` and `AuxiliaryLabelEntropy` reach on
    ``labels`` (numpy rows over sum ψ classes, e.g. ``MAXL.generate_labels``).
    """
    labels = np.asarray(labels, "float32")
    usage = AuxiliaryClassUsage(sum(hierarchy.validate_psi(psi)))
    entropy = AuxiliaryLabelEntropy(psi)
    usage.update_state(labels)
    entropy.update_state(labels)
    return {
        "auxiliary_usage": float(usage.result()),
        "auxiliary_entropy": float(entropy.result()),
    }


@keras.saving.register_keras_serializable(package="keras_aux")
class HeldMean(keras.metrics.Mean):
    """A `keras.metrics.Mean` that shows its last value through epochs without updates.

    For a quantity measured only in some epochs, when showing the last value
    is wanted. (MAXL no longer uses it: it leaves unmeasured quantities out of
    an epoch's logs instead.)
    """

    def __init__(self, name="held_mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.held = self.add_variable(shape=(), initializer="zeros", name="held")

    def result(self):
        # The tensors: backend ops (jnp) take no Variable.
        total, count, held = self.total.value, self.count.value, self.held.value
        current = ops.divide_no_nan(total, count)
        return ops.where(count > 0, current, held)

    def reset_state(self):
        self.held.assign(ops.cast(self.result(), self.held.dtype))
        super().reset_state()
