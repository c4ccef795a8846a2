"""The label hierarchy ψ of MAXL: primary class ``i`` owns the contiguous block
``[sum(ψ[:i]), sum(ψ[:i+1]))`` of auxiliary classes.

Reference: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with
Meta Auxiliary Learning" (MAXL), §3.3; docs/maxl.md#label-hierarchy.
"""

import numpy as np


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
