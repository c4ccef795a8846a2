"""Feeding each task from its own data: the primary task on one batch, every
auxiliary task on a batch of its own dataset, in the same training step.

Reference: Lemaire (2018), synthetic experiment: the primary task learns on
train1 and the auxiliary task on train2, "a different input batch each step".
"""

from typing import Any, NamedTuple

from keras_aux.utils.optional import require_tensorflow


class TaskData(NamedTuple):
    """One step's batches: ``primary`` is ``(x, y[, sample_weight])``;
    ``auxiliary`` maps auxiliary output names to their own ``(x, y[, sample_weight])``
    (``y`` may be omitted for outputs whose target is their input)."""

    primary: Any
    auxiliary: dict


def zip_tasks(primary, auxiliary):
    """Zips a primary dataset with one dataset per auxiliary output.

    Args:
        primary: ``tf.data.Dataset`` of batched ``(x, y)`` (or ``(x, y, w)``).
        auxiliary: dict ``{output_name: tf.data.Dataset}`` of batched
            ``(x, y)`` or ``(x,)`` elements.

    Returns:
        A ``tf.data.Dataset`` of `TaskData`, for ``AuxiliaryModel.fit``. It
        ends with the shortest input: repeat the auxiliary datasets
        (``.repeat()``) to make the primary one set the epoch length.

    Needs TensorFlow (``tf.data``), also under the JAX backend.
    """
    tf = require_tensorflow("for keras_aux.models.zip_tasks (tf.data datasets)")
    if not isinstance(primary, tf.data.Dataset):
        raise ValueError(f"`primary` must be a tf.data.Dataset; got {type(primary).__name__}.")
    if not isinstance(auxiliary, dict) or not auxiliary:
        raise ValueError("`auxiliary` must be a non-empty dict {output_name: tf.data.Dataset}.")
    for name, ds in auxiliary.items():
        if not isinstance(ds, tf.data.Dataset):
            raise ValueError(
                f"`auxiliary[{name!r}]` must be a tf.data.Dataset; got {type(ds).__name__}."
            )
    names = sorted(auxiliary)
    zipped = tf.data.Dataset.zip((primary,) + tuple(auxiliary[n] for n in names))
    return zipped.map(lambda p, *aux: TaskData(p, dict(zip(names, aux))))
