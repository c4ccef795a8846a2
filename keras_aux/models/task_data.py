"""Feeding each task from its own data: the primary task on one batch, every
auxiliary task on a batch of its own dataset, in the same training step; and
a meta batch of the primary task beside them, for a loss weighting that
learns from a look-ahead step (`keras_aux.learned.AutoLambda`).

References: Lemaire (2018), synthetic experiment: the primary task learns on
train1 and the auxiliary task on train2, "a different input batch each step".
Liu, James, Davison & Johns (2022), "Auto-Lambda: Disentangling Dynamic Task
Relationships", TMLR: the meta objective is measured on a second, reshuffled
stream of the training data.
"""

from typing import Any, NamedTuple

from keras_aux.utils.optional import require_tensorflow


class TaskData(NamedTuple):
    """One step's batches: ``primary`` is ``(x, y[, sample_weight])``;
    ``auxiliary`` maps auxiliary output names to their own ``(x, y[, sample_weight])``
    (``y`` may be omitted for outputs whose target is their input); an empty
    ``auxiliary`` means ``primary`` is plain data carrying every task's target.
    ``meta``, when not None, is a batch ``(x, y[, sample_weight])`` of the
    primary task for a loss weighting's meta objective (Liu et al. 2022,
    Auto-λ); ``y`` is the primary target."""

    primary: Any
    auxiliary: dict
    meta: Any = None


def unwrap_task_data(data):
    """``data``, or the `TaskData` inside it when Keras wrapped one as ``(TaskData, None,
    None)``: ``train_on_batch(task_data)`` and ``test_on_batch(task_data)`` pass their
    ``(x, y, sample_weight)`` with ``x`` a `TaskData`."""
    if (
        isinstance(data, (list, tuple))
        and not isinstance(data, TaskData)
        and data
        and isinstance(data[0], TaskData)
        and all(part is None for part in data[1:])
    ):
        return data[0]
    return data


def zip_tasks(primary, auxiliary, meta=None):
    """Zips a primary dataset with one dataset per auxiliary output.

    Args:
        primary: ``tf.data.Dataset`` of batched ``(x, y)`` (or ``(x, y, w)``).
        auxiliary: dict ``{output_name: tf.data.Dataset}`` of batched
            ``(x, y)`` or ``(x,)`` elements.
        meta: None, or a ``tf.data.Dataset`` of batched ``(x, y[, w])`` of
            the primary task: the meta batches of a loss weighting that
            needs them (`keras_aux.learned.AutoLambda`).

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
    if meta is None:
        zipped = tf.data.Dataset.zip((primary,) + tuple(auxiliary[n] for n in names))
        return zipped.map(lambda p, *aux: TaskData(p, dict(zip(names, aux))))
    _check_dataset(tf, meta, "meta")
    zipped = tf.data.Dataset.zip((primary, meta) + tuple(auxiliary[n] for n in names))
    return zipped.map(lambda p, m, *aux: TaskData(p, dict(zip(names, aux)), m))


def with_meta_batches(train, meta=None, seed=None):
    """Pairs each training batch with a meta batch of the primary task.

    Auto-λ (Liu et al. 2022) measures its meta objective on "a second loader
    over the training set with its own shuffle"; by default ``meta`` is that:
    ``train`` unbatched, reshuffled (buffer: the whole dataset, ``seed``)
    and batched again with the batch size of ``train``'s first batch,
    repeated so that ``train`` sets the epoch length. AuxiNash (Shamsian et
    al. 2023) should rather get a held-out split of the primary task as
    ``meta`` (docs/learned_weighting.md explains why).

    Args:
        train: ``tf.data.Dataset`` of batched ``(x, y[, w])``, ``y`` every
            task's targets as `AuxiliaryModel.fit` takes them (a dict keyed
            by output name, or the primary's target alone with
            ``input_targets`` for the others).
        meta: None, or a ``tf.data.Dataset`` of batched ``(x, y[, w])``,
            ``y`` as in ``train`` or the primary target alone (only the
            primary loss is measured on it), repeated as needed.
        seed: the reshuffle's seed, for the default ``meta``.

    Returns:
        A ``tf.data.Dataset`` of `TaskData` (``auxiliary`` empty: each
        training batch carries every task), for ``AuxiliaryModel.fit``.

    Needs TensorFlow (``tf.data``), also under the JAX backend.
    """
    tf = require_tensorflow("for keras_aux.models.with_meta_batches (tf.data datasets)")
    _check_dataset(tf, train, "train")
    if meta is None:
        first = next(iter(train))
        batch_size = int(tf.shape(tf.nest.flatten(first)[0])[0])
        unbatched = train.unbatch()
        size = int(unbatched.reduce(0, lambda count, _: count + 1))
        meta = unbatched.shuffle(size, seed=seed, reshuffle_each_iteration=True)
        meta = meta.batch(batch_size, drop_remainder=size >= batch_size).repeat()
    _check_dataset(tf, meta, "meta")
    return tf.data.Dataset.zip((train, meta)).map(lambda t, m: TaskData(t, {}, m))


def _check_dataset(tf, dataset, name):
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"`{name}` must be a tf.data.Dataset; got {type(dataset).__name__}.")
