"""Censoring as plain functions on gradient lists, for a user's own loop.

``combine(primary_grads, aux_grads, weight, mode, granularity)`` is the
one-call form of the stateless methods of `keras_aux.censoring.modes`;
``censor(a, m, mode)`` is ``G`` alone; ``cosine_similarity`` is the logged
diagnostic. All use ``keras.ops`` and trace under XLA.

References: Du et al. 2018 (arXiv:1812.02224); Lemaire 2018. See docs/censoring.md.
"""

import sys

from keras import ops

from keras_aux.censoring.base import GLOBAL, sum_of_products, validate_granularity
from keras_aux.censoring.modes import MODE_CLASSES

SINGLE_TASK = "single_task"
MULTITASK = "multitask"
UNWEIGHTED_COSINE = "unweighted_cosine"
WEIGHTED_COSINE = "weighted_cosine"
PROJECTION = "projection"
PARAMETER_WISE = "parameter_wise"
MODES = tuple(MODE_CLASSES)


def validate_mode(mode):
    """Returns ``mode`` if it names one of ``MODES``, else raises ValueError."""
    if mode not in MODES:
        raise ValueError(f"Unknown censoring mode {mode!r}. Expected one of {list(MODES)}.")
    return mode


def _as_list(x, what):
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"`{what}` is an empty list.")
        return [ops.convert_to_tensor(t) for t in x]
    return [ops.convert_to_tensor(x)]


def _dense(grads):
    """A gradient list with `tf.IndexedSlices` (what a tape returns for an
    embedding lookup) made dense; None kept. ``keras.ops`` keeps them sparse,
    and they only exist where TensorFlow is loaded."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return list(grads)
    return [tf.convert_to_tensor(g) if isinstance(g, tf.IndexedSlices) else g for g in grads]


def censor(a, m, mode):
    """Censors an auxiliary gradient ``a`` against a reference ``m``: ``G(a, m)``.

    ``a`` and ``m`` are tensors of one shape, or equal-length lists of tensors
    with matching shapes; a list is treated as one vector (the flattened
    concatenation of its tensors), which is the *global* granularity.

    Args:
        a: auxiliary gradient (tensor or list of tensors).
        m: reference: the primary gradient or its moving average.
        mode: one of ``MODES`` (formulas in `keras_aux.censoring.modes`).

    Returns:
        ``G(a, m)`` with the structure of ``a``.

    Reference: Du et al. 2018 (arXiv:1812.02224); Lemaire 2018.
    """
    validate_mode(mode)
    single = not isinstance(a, (list, tuple))
    a_list, m_list = _as_list(a, "a"), _as_list(m, "m")
    if len(a_list) != len(m_list):
        raise ValueError(
            f"`a` and `m` must have the same number of tensors; got "
            f"{len(a_list)} and {len(m_list)}."
        )
    for i, (x, y) in enumerate(zip(a_list, m_list)):
        if tuple(x.shape) != tuple(y.shape):
            raise ValueError(
                f"Tensor {i} of `a` has shape {x.shape} but tensor {i} of `m` has shape {y.shape}."
            )
    out = MODE_CLASSES[mode]().censor(a_list, m_list)
    return out[0] if single else out


def cosine_similarity(x, y):
    """Cosine between two gradients over the variables where both exist.

    ``x`` and ``y`` are equal-length lists (None allowed); the tensors present
    in both are treated as one flattened vector. Returns 0 when that vector is
    empty or either norm is zero.
    """
    pairs = [(u, v) for u, v in zip(_dense(x), _dense(y)) if u is not None and v is not None]
    if not pairs:
        return ops.convert_to_tensor(0.0)
    xs, ys = zip(*pairs)
    dot = sum_of_products(xs, ys)
    norms = ops.sqrt(sum_of_products(xs, xs)) * ops.sqrt(sum_of_products(ys, ys))
    return ops.divide_no_nan(dot, norms)


def _task_lists(aux_grads, weight):
    """Normalises one or several auxiliary tasks to lists of (grads, λ)."""
    if not isinstance(aux_grads, (list, tuple)) or not aux_grads:
        raise ValueError("`aux_grads` must be a non-empty list of gradients.")
    several = isinstance(aux_grads[0], (list, tuple))
    tasks = list(aux_grads) if several else [aux_grads]
    weights = list(weight) if isinstance(weight, (list, tuple)) else [weight] * len(tasks)
    return tasks, weights


def combine(
    primary_grads,
    aux_grads,
    weight=1.0,
    mode=PROJECTION,
    granularity=GLOBAL,
    reference=None,
):
    """Gradient to apply: ``p + Σ_k λ_k · G(a_k, m)`` per variable.

    Args:
        primary_grads: list with one gradient (or None) per variable.
        aux_grads: one auxiliary task's list of the same length, or a list of
            such lists (several auxiliary tasks, each censored against the same
            reference with its own weight).
        weight: λ, a float or tensor, or one per auxiliary task.
        mode: one of ``MODES``.
        granularity: ``"global"`` applies G once to the concatenation of the
            variables that have both gradients; ``"per_variable"`` applies G
            to each variable tensor separately.
        reference: optional list like ``primary_grads`` that ``m`` is taken
            from instead of ``primary_grads`` (e.g. a moving average of it;
            `MovingAverage` keeps one as explicit state).

    Returns:
        One tensor (or None) per variable. Variables with only auxiliary
        gradients get ``Σ_k λ_k a_k``; variables with only a primary gradient
        get ``p``; variables with neither get None.

    Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224).
    """
    validate_mode(mode)
    validate_granularity(granularity)
    tasks, weights = _task_lists(aux_grads, weight)
    grads, _ = MODE_CLASSES[mode](granularity).update(
        _dense(primary_grads),
        [_dense(task) for task in tasks],
        weights,
        (),
        reference=None if reference is None else _dense(reference),
    )
    return grads
