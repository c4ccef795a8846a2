"""Auxiliary labels of MAXL's baselines: Random and K-Means, with a label table
that `fit` reads by example index so re-clustering takes effect at once.

The paper compares MAXL with four ways to get auxiliary labels for the same
multi-task network: Single (none), Human (a real finer hierarchy; see
`keras_aux.hierarchy.coarse_and_fine`), Random (each example a fixed random
auxiliary class inside its primary class's block) and K-Means (the cluster,
within its primary class, of an auto-encoder's latent code, re-clustered
during training).

Reference: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with
Meta Auxiliary Learning" (MAXL), §4; docs/maxl.md#baselines.
"""

import math
import warnings

import keras
import numpy as np

from keras_aux import hierarchy
from keras_aux.utils.optional import LazyTensorFlow, require

# On the TensorFlow backend `AuxiliaryLabelTable` keeps its labels in a tf.Variable read by a
# tf.data pipeline; on the others in a NumPy array read by a `keras.utils.PyDataset`.
tf = LazyTensorFlow("for the auxiliary label table of the baselines (tf.Variable, tf.data)")


def _primary_labels(primary_labels, psi):
    """``primary_labels`` as a 1-d int64 array in ``[0, len ψ)``, or ValueError."""
    labels = np.asarray(primary_labels)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"`primary_labels` must be int class ids of shape (N,) or (N, 1); got shape "
            f"{labels.shape}."
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`primary_labels` must be ints; got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= len(psi)):
        raise ValueError(
            f"`primary_labels` must be in [0, {len(psi)}) (ψ has {len(psi)} entries); found "
            f"{labels.min()}..{labels.max()}."
        )
    return labels


def random_auxiliary_labels(primary_labels, psi, seed=0):
    """The Random baseline: each example a fixed random auxiliary class inside
    the block of its primary class, well balanced.

    For primary class ``i`` the examples of that class are shuffled with
    ``np.random.default_rng([seed, i])`` and given the block's classes
    round-robin (``start_i + j mod ψ[i]`` for the ``j``-th shuffled example),
    so within each primary class the auxiliary class counts differ by at most
    one, and each class's assignment does not depend on the other classes.

    Args:
        primary_labels: int class ids, shape ``(N,)`` or ``(N, 1)``.
        psi: the hierarchy ψ.
        seed: an int >= 0; the same seed gives the same labels.

    Returns:
        int64 auxiliary labels of shape ``(N,)``.

    Raises:
        ValueError: bad ψ, labels outside ``[0, len ψ)``, or a bad seed.

    Reference: Liu, Davison & Johns (2019), MAXL, §4 ("Random" baseline).
    """
    psi = hierarchy.validate_psi(psi)
    labels = _primary_labels(primary_labels, psi)
    _check_seed(seed)
    starts = hierarchy.block_starts(psi)
    out = np.empty(len(labels), dtype=np.int64)
    for i, size in enumerate(psi):
        members = np.flatnonzero(labels == i)
        order = np.random.default_rng([seed, i]).permutation(members)
        out[order] = starts[i] + np.arange(len(order)) % size
    return out


def kmeans_auxiliary_labels(features, primary_labels, psi, seed=0, n_init=10):
    """The K-Means baseline's labels: within each primary class ``i``, K-Means
    with ``ψ[i]`` clusters on that class's feature rows; the auxiliary label
    is ``sum(ψ[:i])`` + the cluster id.

    Cluster ids are renumbered by order of first appearance among the class's
    examples (in dataset order), so re-clustering similar features gives
    similar labels instead of an arbitrary permutation of the block.

    A class with no more examples than clusters (``n_i <= ψ[i]``) is not
    clustered: its examples take the block's first ``n_i`` classes, one each,
    in dataset order. Degenerate features (fewer distinct rows than clusters,
    e.g. an untrained encoder) still give valid labels inside the block.

    Args:
        features: ``(N, ...)`` array (flattened to ``(N, D)``), e.g. an
            auto-encoder's latent codes.
        primary_labels: int class ids, shape ``(N,)`` or ``(N, 1)``.
        psi: the hierarchy ψ.
        seed: ``random_state`` of every K-Means run.
        n_init: K-Means restarts per class (the best inertia wins).

    Returns:
        int64 auxiliary labels of shape ``(N,)``.

    Raises:
        ImportError: scikit-learn is not installed (the `sklearn` extra).
        ValueError: mismatched lengths, non-finite features, bad ψ or labels.

    Reference: Liu, Davison & Johns (2019), MAXL, §4 ("K-Means" baseline).
    """
    purpose = "for the K-Means baseline (kmeans_auxiliary_labels)"
    cluster = require("sklearn.cluster", extra="sklearn", purpose=purpose, package="scikit-learn")
    exceptions = require(
        "sklearn.exceptions", extra="sklearn", purpose=purpose, package="scikit-learn"
    )
    KMeans, ConvergenceWarning = cluster.KMeans, exceptions.ConvergenceWarning
    psi = hierarchy.validate_psi(psi)
    labels = _primary_labels(primary_labels, psi)
    _check_seed(seed)
    if isinstance(n_init, bool) or not isinstance(n_init, int) or n_init < 1:
        raise ValueError(f"`n_init` must be a positive int; got {n_init!r}.")
    features = np.asarray(features, dtype=np.float64)
    if features.ndim < 1 or len(features) != len(labels):
        raise ValueError(
            f"`features` has {len(features) if features.ndim else 0} rows but there are "
            f"{len(labels)} primary labels."
        )
    features = features.reshape(len(features), -1)
    if not np.isfinite(features).all():
        raise ValueError("`features` holds NaN or infinite values.")
    starts = hierarchy.block_starts(psi)
    out = np.empty(len(labels), dtype=np.int64)
    for i, size in enumerate(psi):
        members = np.flatnonzero(labels == i)
        if len(members) <= size:
            out[members] = starts[i] + np.arange(len(members))
            continue
        with warnings.catch_warnings():
            # Fewer distinct points than clusters: K-Means warns but still
            # returns valid cluster ids, which is all a baseline label needs.
            warnings.simplefilter("ignore", ConvergenceWarning)
            clusters = KMeans(n_clusters=size, n_init=n_init, random_state=seed).fit_predict(
                features[members]
            )
        _, first = np.unique(clusters, return_index=True)
        rank = np.empty(size, dtype=np.int64)
        rank[clusters[np.sort(first)]] = np.arange(len(first))
        out[members] = starts[i] + rank[clusters]
    return out


def autoencoder(input_shape, latent_dim=32, hidden_units=(256,), seed=None, learning_rate=1e-3):
    """A small dense auto-encoder whose latent code feeds K-Means.

    Flatten → ``Dense(h, relu)`` for each ``h`` in ``hidden_units`` →
    ``Dense(latent_dim)`` (linear code) → the mirror image → ``Dense(prod
    input_shape, sigmoid)`` → reshaped to ``input_shape``. Inputs are expected
    in [0, 1] (the sigmoid output); the auto-encoder is compiled with Adam and
    mean squared error.

    Args:
        input_shape: shape of one example, e.g. ``(28, 28)``.
        latent_dim: size of the code.
        hidden_units: widths of the encoder's hidden layers (mirrored in the
            decoder); may be empty.
        seed: initial-weight seed.
        learning_rate: Adam's learning rate.

    Returns:
        ``(autoencoder_model, encoder_model)``; they share layers, so training
        the auto-encoder trains the encoder.

    Reference: Liu, Davison & Johns (2019), MAXL, §4 ("K-Means" baseline).
    """
    shape = tuple(int(d) for d in input_shape)
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"`input_shape` must be positive sizes (no batch axis); got {shape!r}.")
    if isinstance(latent_dim, bool) or not isinstance(latent_dim, int) or latent_dim < 1:
        raise ValueError(f"`latent_dim` must be a positive int; got {latent_dim!r}.")
    hidden = tuple(hidden_units)
    if any(isinstance(h, bool) or not isinstance(h, int) or h < 1 for h in hidden):
        raise ValueError(f"`hidden_units` must be positive ints; got {hidden_units!r}.")
    if seed is not None:
        _check_seed(seed)
    counter = iter(range(1, 1000))

    def init():
        if seed is None:
            return "glorot_uniform"
        return keras.initializers.GlorotUniform(seed=seed * 1000 + next(counter))

    inputs = keras.Input(shape, name="image")
    x = keras.layers.Flatten(name="flatten")(inputs)
    for k, units in enumerate(hidden, start=1):
        x = keras.layers.Dense(units, "relu", kernel_initializer=init(), name=f"encoder_{k}")(x)
    code = keras.layers.Dense(latent_dim, kernel_initializer=init(), name="latent")(x)
    x = code
    for k, units in enumerate(reversed(hidden), start=1):
        x = keras.layers.Dense(units, "relu", kernel_initializer=init(), name=f"decoder_{k}")(x)
    x = keras.layers.Dense(
        math.prod(shape), "sigmoid", kernel_initializer=init(), name="reconstruction_flat"
    )(x)
    reconstruction = keras.layers.Reshape(shape, name="reconstruction")(x)
    model = keras.Model(inputs, reconstruction, name="autoencoder")
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse")
    return model, keras.Model(inputs, code, name="encoder")


class AuxiliaryLabelTable:
    """Per-example auxiliary labels, and a dataset for `fit` that reads them by
    example index at run time.

    Re-assigning the table (e.g. after re-clustering) changes what the next
    epoch trains on without rebuilding the dataset. Every assignment is
    checked: each label must lie in its example's primary block.

    On the TensorFlow backend the labels are a `tf.Variable` and `dataset` a
    `tf.data` pipeline; on other backends (JAX) a NumPy array and a
    `keras.utils.PyDataset` (the same batches' contents; its shuffle order is
    NumPy's, not tf.data's), so the baselines need no TensorFlow there.

    Args:
        initial_labels: int auxiliary labels, shape ``(N,)``.
        primary_labels: int primary labels, shape ``(N,)`` or ``(N, 1)``.
        psi: the hierarchy ψ.

    Attributes:
        labels: the ``int64`` labels of shape ``(N,)``: a `tf.Variable` on the
            TensorFlow backend, else a NumPy array (assigned in place).
        primary_labels: the int64 numpy primary labels.
        psi: ψ as a tuple.

    Reference: Liu, Davison & Johns (2019), MAXL, §4 (Random and K-Means
    baselines train the multi-task network on such labels).
    """

    def __init__(self, initial_labels, primary_labels, psi):
        self.psi = hierarchy.validate_psi(psi)
        self.primary_labels = _primary_labels(primary_labels, self.psi)
        self._owner = hierarchy.primary_of_auxiliary(self.psi)
        self._tf_data = keras.backend.backend() == "tensorflow"
        labels = self._checked(initial_labels)
        if self._tf_data:
            self.labels = tf.Variable(labels, trainable=False, name="auxiliary_labels")
        else:
            self.labels = labels

    @property
    def num_examples(self):
        return len(self.primary_labels)

    @property
    def num_auxiliary(self):
        """``sum(ψ)``, the width of the one-hot auxiliary targets."""
        return sum(self.psi)

    def _checked(self, labels):
        labels = np.asarray(labels)
        if labels.shape != (self.num_examples,):
            raise ValueError(
                f"Auxiliary labels must have shape ({self.num_examples},) (one per example); got "
                f"{labels.shape}."
            )
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"Auxiliary labels must be ints; got dtype {labels.dtype}.")
        labels = labels.astype(np.int64)
        bad = (labels < 0) | (labels >= self.num_auxiliary)
        bad[~bad] = self._owner[labels[~bad]] != self.primary_labels[~bad]
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{int(bad.sum())} auxiliary labels lie outside their primary class's block of "
                f"ψ={list(self.psi)}; e.g. example {first} has primary "
                f"{self.primary_labels[first]} and auxiliary {labels[first]}."
            )
        return labels

    def numpy(self):
        """The current labels as an int64 array (a copy)."""
        return self.labels.numpy() if self._tf_data else self.labels.copy()

    def assign(self, labels):
        """Replaces the labels; returns how many changed."""
        labels = self._checked(labels)
        changed = int(np.sum(labels != self.numpy()))
        if self._tf_data:
            self.labels.assign(labels)
        else:
            self.labels[...] = labels  # in place: the dataset reads this array
        return changed

    def dataset(self, images, batch_size=32, shuffle=True, seed=None, drop_remainder=False):
        """A batched dataset of ``(image, {"primary": y, "auxiliary":
        one_hot(labels[index], sum ψ)})`` for `fit`: a `tf.data.Dataset` on the
        TensorFlow backend, else a `keras.utils.PyDataset`.

        The dataset iterates example indices (reshuffled every epoch when
        ``shuffle``) and gathers images, primary labels and the *current*
        contents of `labels` per batch, so an assignment made between epochs
        (or before `fit`) is what the following batches see. Primary labels
        are int64 class ids (use sparse or `FocalLoss` losses); auxiliary
        targets are float32 one-hot rows. Images keep their dtype.

        Do not combine with ``steps_per_epoch`` shorter than an epoch: Keras
        then keeps one iterator across epochs and its prefetched batches can
        predate a re-assignment.
        """
        images = np.asarray(images)
        if len(images) != self.num_examples:
            raise ValueError(
                f"{len(images)} images but the table holds {self.num_examples} labels."
            )
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive int; got {batch_size!r}.")
        if not self._tf_data:
            return _LabelTableBatches(self, images, batch_size, shuffle, seed, drop_remainder)
        image_tensor = tf.convert_to_tensor(images)
        primary = tf.convert_to_tensor(self.primary_labels)
        table, depth = self.labels, self.num_auxiliary

        def lookup(index):
            targets = {
                "primary": tf.gather(primary, index),
                # Read when the batch is produced, not when the dataset is built.
                "auxiliary": tf.one_hot(tf.gather(table, index), depth, dtype=tf.float32),
            }
            return tf.gather(image_tensor, index), targets

        indices = tf.data.Dataset.range(self.num_examples)
        if shuffle:
            indices = indices.shuffle(self.num_examples, seed=seed, reshuffle_each_iteration=True)
        batches = indices.batch(batch_size, drop_remainder=drop_remainder)
        return batches.map(lookup).prefetch(tf.data.AUTOTUNE)


class _LabelTableBatches(keras.utils.PyDataset):
    """`AuxiliaryLabelTable.dataset` without TensorFlow: batches of example indices (reshuffled
    every epoch when ``shuffle``, by a NumPy generator seeded with ``seed``), each reading the
    table's labels when the batch is produced."""

    def __init__(self, table, images, batch_size, shuffle, seed, drop_remainder):
        super().__init__()
        self._table = table
        self._images = images
        self._primary = table.primary_labels
        self._batch_size = batch_size
        self._shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        self._drop_remainder = drop_remainder
        self._order = self._new_order()

    def _new_order(self):
        n = self._table.num_examples
        return self._rng.permutation(n) if self._shuffle else np.arange(n)

    def __len__(self):
        n = self._table.num_examples
        return n // self._batch_size if self._drop_remainder else -(-n // self._batch_size)

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} of {len(self)}")
        rows = self._order[index * self._batch_size : (index + 1) * self._batch_size]
        # Read when the batch is produced, not when the dataset is built.
        auxiliary = np.eye(self._table.num_auxiliary, dtype=np.float32)[self._table.labels[rows]]
        return self._images[rows], {"primary": self._primary[rows], "auxiliary": auxiliary}

    def __iter__(self):
        """One epoch of batches (then reshuffled), as iterating a `tf.data.Dataset` gives."""
        for index in range(len(self)):
            yield self[index]
        self.on_epoch_end()

    def on_epoch_end(self):
        """Reshuffles for the next epoch (``shuffle``)."""
        if self._shuffle:
            self._order = self._new_order()


class KMeansRelabel(keras.callbacks.Callback):
    """The K-Means baseline's re-clustering during training.

    Before the first epoch and then every ``every`` epochs: trains the
    auto-encoder for ``autoencoder_epochs`` epochs on the training images,
    encodes them, clusters each primary class's codes with
    `kmeans_auxiliary_labels` and assigns the result to the table (which the
    `AuxiliaryLabelTable.dataset` feeding `fit` reads). The number of labels
    that changed is added to the epoch logs as ``"auxiliary_labels_changed"``
    (0 in epochs without re-clustering; at the first re-clustering, the count
    differing from the table's initial labels) and kept in `changes` as
    ``(epoch, changed)`` pairs.

    Args:
        table: the `AuxiliaryLabelTable` feeding `fit`.
        images: the training images, in the table's example order; uint8
            images are scaled to [0, 1], other dtypes used as float32 as is.
        autoencoder_model, encoder: from `autoencoder`; built from the image
            shape (``latent_dim``, ``seed``) when not given.
        every: re-clustering period in epochs.
        autoencoder_epochs: auto-encoder training epochs per re-clustering.
        batch_size: batch size of auto-encoder training and encoding.
        latent_dim: code size of the auto-encoder built when none is given.
        seed: K-Means ``random_state`` and the built auto-encoder's seed.
        n_init: K-Means restarts.
        verbose: 1 prints one line per re-clustering.

    Reference: Liu, Davison & Johns (2019), MAXL, §4 ("K-Means" baseline).
    """

    def __init__(
        self,
        table,
        images,
        autoencoder_model=None,
        encoder=None,
        every=1,
        autoencoder_epochs=2,
        batch_size=64,
        latent_dim=32,
        seed=0,
        n_init=10,
        verbose=0,
    ):
        super().__init__()
        if not isinstance(table, AuxiliaryLabelTable):
            raise TypeError(f"`table` must be an AuxiliaryLabelTable; got {type(table).__name__}.")
        for name, value in [("every", every), ("batch_size", batch_size)]:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int; got {value!r}.")
        if isinstance(autoencoder_epochs, bool) or not isinstance(autoencoder_epochs, int):
            raise ValueError(f"`autoencoder_epochs` must be an int; got {autoencoder_epochs!r}.")
        if autoencoder_epochs < 0:
            raise ValueError(f"`autoencoder_epochs` must be >= 0; got {autoencoder_epochs}.")
        if (autoencoder_model is None) != (encoder is None):
            raise ValueError("Give both `autoencoder_model` and `encoder`, or neither.")
        images = np.asarray(images)
        if len(images) != table.num_examples:
            raise ValueError(f"{len(images)} images but the table holds {table.num_examples}.")
        self.images = (
            images.astype(np.float32) / 255.0
            if images.dtype == np.uint8
            else images.astype(np.float32)
        )
        if autoencoder_model is None:
            autoencoder_model, encoder = autoencoder(
                images.shape[1:], latent_dim=latent_dim, seed=seed
            )
        self.table = table
        self.autoencoder_model = autoencoder_model
        self.encoder = encoder
        self.every = every
        self.autoencoder_epochs = autoencoder_epochs
        self.batch_size = batch_size
        self.seed = seed
        self.n_init = n_init
        self.verbose = verbose
        self.changes = []
        self._last_epoch = None
        self._changed = 0

    def relabel(self):
        """Trains the auto-encoder, re-clusters and assigns; returns the number
        of labels that changed."""
        if self.autoencoder_epochs:
            self.autoencoder_model.fit(
                self.images,
                self.images,
                epochs=self.autoencoder_epochs,
                batch_size=self.batch_size,
                shuffle=True,
                verbose=0,
            )
        codes = self.encoder.predict(self.images, batch_size=self.batch_size, verbose=0)
        labels = kmeans_auxiliary_labels(
            codes, self.table.primary_labels, self.table.psi, seed=self.seed, n_init=self.n_init
        )
        return self.table.assign(labels)

    def on_epoch_begin(self, epoch, logs=None):
        self._changed = 0
        if self._last_epoch is not None and epoch - self._last_epoch < self.every:
            return
        self._last_epoch = epoch
        self._changed = self.relabel()
        self.changes.append((epoch, self._changed))
        if self.verbose:
            print(
                f"KMeansRelabel: epoch {epoch + 1}: re-clustered, {self._changed} of "
                f"{self.table.num_examples} auxiliary labels changed."
            )

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["auxiliary_labels_changed"] = self._changed


def _check_seed(seed):
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"`seed` must be an int >= 0; got {seed!r}.")


__all__ = [
    "AuxiliaryLabelTable",
    "KMeansRelabel",
    "autoencoder",
    "kmeans_auxiliary_labels",
    "random_auxiliary_labels",
]
