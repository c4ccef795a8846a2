"""What the TensorFlow train steps of keras-aux share: summing (or averaging)
per-replica values under a `tf.distribute` strategy before a non-linear use,
and applying gradients summed that way.

A strategy's optimizer sums gradients over replicas itself; censoring (Du et
al. 2018; Lemaire 2018) and MAXL's virtual step (Liu et al. 2019) need the
global gradient *before* that, so they sum it here and divide it back before
the optimizer's own sum. The loss weightings (docs/weighting.md) and Auto-λ's
meta step (Liu et al. 2022) read the global task losses and gradients the same
way (`replica_mean`, `all_reduce_mean`).
"""

import tensorflow as tf


def dense(g):
    """Densifies `tf.IndexedSlices` (embedding gradients); passes None through."""
    if g is None or not isinstance(g, tf.IndexedSlices):
        return g
    return tf.convert_to_tensor(g)


def scale_loss(value):
    """A loss divided by the replica count, as Keras losses are under a strategy
    (their per-replica sums then add up to the global mean)."""
    replicas = num_replicas()
    return value if replicas == 1 else value / tf.cast(replicas, value.dtype)


def unscale_loss(value):
    """Undoes `scale_loss`, for logging the global value."""
    replicas = num_replicas()
    return value if replicas == 1 else value * tf.cast(replicas, value.dtype)


def num_replicas():
    """Replicas of the current strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def all_reduce_sum(values):
    """Sums a list of tensors (None kept in place) over replicas in one
    all-reduce; the identity on one device or outside a replica context."""
    context = tf.distribute.get_replica_context()
    if context is None or num_replicas() == 1:
        return values
    present = [dense(v) for v in values if v is not None]
    reduced = iter(context.all_reduce(tf.distribute.ReduceOp.SUM, present))
    return [None if v is None else next(reduced) for v in values]


def all_reduce_mean(values):
    """Averages a list of tensors (None kept in place) over replicas in one
    all-reduce: the global value of per-replica means (gradients of this
    replica's mean loss, say); the identity on one device."""
    replicas = num_replicas()
    if replicas == 1:
        return values
    return [None if v is None else v / replicas for v in all_reduce_sum(values)]


def replica_mean(value):
    """``value``'s mean over replicas, differentiable as this replica's own
    ``value``: a loss weighting reads the global task losses (non-linearly:
    DWA's ratios, the geometric mean, FAMO's history), while each replica's
    gradient stays its share of the global one (the optimizer, or
    `all_reduce_sum`, adds them up)."""
    if num_replicas() == 1 or tf.distribute.get_replica_context() is None:
        return value
    (mean,) = all_reduce_mean([value])
    return value + tf.stop_gradient(mean - value)


def apply_gradients(optimizer, grads, variables, all_reduced):
    """One ``optimizer`` step (None gradients skipped). ``all_reduced``
    gradients (from `all_reduce_sum`) are divided by the replica count, since
    the optimizer sums over replicas once more."""
    replicas = num_replicas()
    if all_reduced and tf.distribute.get_replica_context() is not None and replicas > 1:
        grads = [None if g is None else g / replicas for g in grads]
    pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
    optimizer.apply([g for g, _ in pairs], [v for _, v in pairs])
