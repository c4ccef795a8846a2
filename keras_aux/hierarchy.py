"""Label hierarchies ψ of MAXL: primary class ``i`` owns the contiguous block
``[sum(ψ[:i]), sum(ψ[:i+1]))`` of auxiliary classes.

- ψ itself: `validate_psi`, `parse_psi` (from a command line), `block_starts`,
  `primary_of_auxiliary`, `block_matrix` (the mask of the hierarchical softmax).
- Human hierarchies, the targets of MAXL's Human baseline: a grouping of fine
  classes into coarse ones gives the coarse primary labels, ψ and the fine
  auxiliary labels (`coarse_and_fine`). `FASHION_MNIST_COARSE` groups the ten
  Fashion-MNIST classes (`keras_aux.datasets.images.FASHION_MNIST_CLASSES`)
  into four; `cifar100_grouping` reads CIFAR-100's 20 super-classes off its
  labels. Loading the images is `keras_aux.datasets.images`'s job.

References: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with
Meta Auxiliary Learning" (MAXL), §3.3 (ψ) and §4 (the Human baseline);
docs/maxl.md#label-hierarchy. Xiao, Rasul & Vollgraf (2017), "Fashion-MNIST";
Krizhevsky (2009), "Learning Multiple Layers of Features from Tiny Images"
(CIFAR-100's coarse and fine labels).
"""

import numpy as np

# The coarse grouping of the ten Fashion-MNIST classes (named in
# `keras_aux.datasets.images.FASHION_MNIST_CLASSES`): the primary task of the
# Human baseline, whose auxiliary task is the fine class. Each entry lists the
# fine classes of one coarse class, in the order they take inside its
# auxiliary block. ψ = [4, 2, 3, 1].
FASHION_MNIST_COARSE = (
    (0, 2, 4, 6),  # tops: T-shirt/top, Pullover, Coat, Shirt
    (1, 3),  # bottoms and dresses: Trouser, Dress
    (5, 7, 9),  # footwear: Sandal, Sneaker, Ankle boot
    (8,),  # bags: Bag
)
FASHION_MNIST_COARSE_NAMES = ("tops", "bottoms_and_dresses", "footwear", "bags")


def validate_psi(psi):
    """Returns ψ as a tuple of positive ints, or raises ``ValueError`` naming the problem."""
    if isinstance(psi, (str, bytes)) or not hasattr(psi, "__iter__"):
        raise ValueError(
            f"`psi` must be a list of positive ints (one per primary class); got {psi!r}."
        )
    values = list(psi)
    if not values:
        raise ValueError("`psi` must name at least one primary class; got an empty list.")
    for i, value in enumerate(values):
        if isinstance(value, bool) or int(value) != value or int(value) < 1:
            raise ValueError(
                f"`psi[{i}]` = {value!r}: every entry must be a positive int "
                "(the number of auxiliary classes of that primary class)."
            )
    return tuple(int(v) for v in values)


def block_starts(psi):
    """First auxiliary class of each primary class's block (length ``len(ψ) + 1``)."""
    return np.concatenate([[0], np.cumsum(validate_psi(psi))]).astype(np.int64)


def primary_of_auxiliary(psi):
    """For each auxiliary class, the primary class whose block holds it."""
    psi = validate_psi(psi)
    return np.repeat(np.arange(len(psi)), psi).astype(np.int64)


def block_matrix(psi):
    """``M[i, k] = 1`` when auxiliary class ``k`` is in primary class ``i``'s block."""
    owner = primary_of_auxiliary(psi)
    return (owner[None, :] == np.arange(len(psi))[:, None]).astype(np.float32)


def parse_psi(text, num_primary=None):
    """ψ from a command-line string: ``"3"`` (with ``num_primary``) or ``"2,3,5"``."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    try:
        values = [int(p) for p in parts]
    except ValueError:
        raise ValueError(
            f"Cannot read ψ from {text!r}: expected ints like '3' or '2,3,5'."
        ) from None
    if len(values) == 1 and num_primary is not None:
        values = values * num_primary
    psi = validate_psi(values)
    if num_primary is not None and len(psi) != num_primary:
        raise ValueError(
            f"ψ {list(psi)} has {len(psi)} entries but the primary task has {num_primary} classes."
        )
    return psi


# ---------------------------------------------------------------------------------------------
# Human hierarchies (the Human baseline of MAXL)
# ---------------------------------------------------------------------------------------------


def coarse_and_fine(labels, grouping=FASHION_MNIST_COARSE):
    """Coarse primary labels, ψ and fine auxiliary labels from a grouping of
    fine classes: the targets of MAXL's Human baseline.

    ``grouping[c]`` lists the fine classes of coarse class ``c``; fine class
    ``grouping[c][j]`` becomes auxiliary class ``sum(ψ[:c]) + j``, inside the
    contiguous block MAXL gives coarse class ``c``. With
    `FASHION_MNIST_COARSE`, ψ = (4, 2, 3, 1) and e.g. Coat (4) → coarse 0
    (tops), auxiliary 2; Bag (8) → coarse 3, auxiliary 9.

    Args:
        labels: int fine labels, any shape.
        grouping: a sequence of non-empty sequences of fine class ids; each
            id at most once.

    Returns:
        ``(coarse, psi, auxiliary)``: int64 arrays of ``labels``'s shape and
        ψ as a tuple of ints.

    Raises:
        ValueError: a malformed grouping, or a label in no group.

    Reference: Liu, Davison & Johns (2019), MAXL, §4 ("Human" baseline).
    """
    fine_to_coarse, fine_to_aux, psi = _grouping_tables(grouping)
    labels = np.asarray(labels)
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"`labels` must be ints; got dtype {labels.dtype}.")
    labels = labels.astype(np.int64)
    if labels.size:
        bad = (labels < 0) | (labels >= len(fine_to_coarse))
        bad |= fine_to_coarse[np.clip(labels, 0, len(fine_to_coarse) - 1)] < 0
        if bad.any():
            raise ValueError(
                f"labels {sorted(set(labels[bad].tolist()))[:10]} belong to no group of the "
                f"grouping {grouping!r}."
            )
    return fine_to_coarse[labels], psi, fine_to_aux[labels]


def _grouping_tables(grouping):
    if isinstance(grouping, (str, bytes)) or not hasattr(grouping, "__iter__"):
        raise ValueError(f"`grouping` must be a list of lists of fine class ids; got {grouping!r}.")
    groups = [list(g) if hasattr(g, "__iter__") else None for g in grouping]
    if not groups or any(not g for g in groups):
        raise ValueError(f"`grouping` must be non-empty lists of fine class ids; got {grouping!r}.")
    flat = [v for g in groups for v in g]
    if any(isinstance(v, bool) or int(v) != v or v < 0 for v in flat):
        raise ValueError(f"`grouping` must hold ints >= 0; got {grouping!r}.")
    flat = [int(v) for v in flat]
    if len(set(flat)) != len(flat):
        raise ValueError(f"A fine class appears in more than one place in {grouping!r}.")
    fine_to_coarse = np.full(max(flat) + 1, -1, dtype=np.int64)
    fine_to_aux = np.full(max(flat) + 1, -1, dtype=np.int64)
    aux = 0
    for coarse, group in enumerate(groups):
        for fine in group:
            fine_to_coarse[int(fine)] = coarse
            fine_to_aux[int(fine)] = aux
            aux += 1
    return fine_to_coarse, fine_to_aux, tuple(len(g) for g in groups)


def cifar100_grouping(coarse, fine):
    """The grouping of fine into coarse classes seen in CIFAR-100 labels, for
    `coarse_and_fine`: ``grouping[c]`` = the sorted fine classes that occur
    with coarse class ``c``.

    Raises:
        ValueError: a fine class seen with two coarse classes, or a coarse
            class in ``0..max`` never seen.
    """
    coarse = np.asarray(coarse, dtype=np.int64).reshape(-1)
    fine = np.asarray(fine, dtype=np.int64).reshape(-1)
    if coarse.shape != fine.shape:
        raise ValueError(f"{coarse.shape[0]} coarse labels but {fine.shape[0]} fine labels.")
    pairs = np.unique(np.stack([fine, coarse], axis=1), axis=0)
    if len(np.unique(pairs[:, 0])) != len(pairs):
        raise ValueError("A fine class occurs with more than one coarse class.")
    grouping = [sorted(pairs[pairs[:, 1] == c, 0].tolist()) for c in range(coarse.max() + 1)]
    if any(not g for g in grouping):
        raise ValueError("Some coarse class in 0..max has no examples.")
    return tuple(tuple(g) for g in grouping)
