"""Training diagnostics of keras-aux as Keras metrics (they reset every epoch).

References: Liu, Davison & Johns (2019), MAXL, Appendix C (the share of
auxiliary classes the label generator actually assigns).
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_aux")
class AuxiliaryClassUsage(keras.metrics.Metric):
    """Fraction of the ``num_classes`` auxiliary classes that are the arg-max of
    at least one generated label since the last reset.

    1.0 means every auxiliary class is used; a collapsed label generator (the
    failure the MAXL entropy term prevents) drives it towards
    ``len(ψ) / sum(ψ)``.
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
        return ops.mean(ops.cast(self.counts > 0, self.dtype))

    def reset_state(self):
        self.counts.assign(ops.zeros_like(self.counts))

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}


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
        current = ops.divide_no_nan(self.total, self.count)
        return ops.where(self.count > 0, current, self.held)

    def reset_state(self):
        self.held.assign(ops.cast(self.result(), self.held.dtype))
        super().reset_state()
