"""Censoring the auxiliary gradient: pure functions on lists of gradients.

The update direction for a primary gradient ``p`` and auxiliary gradients
``a_k`` with weights ``λ_k`` is ``p + Σ_k λ_k · G(a_k, m)``, where ``m`` (the
vector ``a_k`` is judged against) is ``p`` itself or an exponential moving
average of ``p``. ``G`` is one of six modes:

| mode                | G(a, m)                                            |
|---------------------|----------------------------------------------------|
| ``single_task``     | 0                                                  |
| ``multitask``       | a                                                  |
| ``unweighted_cosine`` | a if a·m > 0 else 0                              |
| ``weighted_cosine`` | max(a·m, 0) · a / (‖a‖ ‖m‖)                        |
| ``projection``      | a − min(a·m, 0) · m / ‖m‖²                         |
| ``parameter_wise``  | a ⊙ (sign(a ⊙ m) + 1) / 2                          |

If ‖a‖ = 0 or ‖m‖ = 0, every mode but ``single_task`` returns ``a`` unchanged
(the reference implementation's rule).

References:
    Du, Czarnecki, Jayakumar, Pascanu, Lakshminarayanan (2018), "Adapting
    Auxiliary Losses Using Gradient Similarity", arXiv:1812.02224 (cosine
    modes). Lemaire (2018), "Auxiliary tasks in deep learning: projecting the
    auxiliary gradient" (projection, the moving average of the primary
    gradient, the toy and synthetic experiments).

Like optax transformations, every function here takes and returns plain
tensors; the only state (the moving average) is explicit, in ``GradientEMA``.
All branching on values uses ``tf.where``, so the functions trace under
``tf.function(jit_compile=True)``.
"""

import keras
import tensorflow as tf

SINGLE_TASK = "single_task"
MULTITASK = "multitask"
UNWEIGHTED_COSINE = "unweighted_cosine"
WEIGHTED_COSINE = "weighted_cosine"
PROJECTION = "projection"
PARAMETER_WISE = "parameter_wise"
MODES = (
    SINGLE_TASK,
    MULTITASK,
    UNWEIGHTED_COSINE,
    WEIGHTED_COSINE,
    PROJECTION,
    PARAMETER_WISE,
)

GLOBAL = "global"
PER_VARIABLE = "per_variable"
GRANULARITIES = (GLOBAL, PER_VARIABLE)


def validate_mode(mode):
    """Returns ``mode`` if it names one of ``MODES``, else raises ValueError."""
    if mode not in MODES:
        raise ValueError(f"Unknown censoring mode {mode!r}. Expected one of {list(MODES)}.")
    return mode


def validate_granularity(granularity):
    """Returns ``granularity`` if it is ``"global"`` or ``"per_variable"``."""
    if granularity not in GRANULARITIES:
        raise ValueError(
            f"Unknown censoring granularity {granularity!r}. Expected one of {list(GRANULARITIES)}."
        )
    return granularity


def validate_alpha(alpha):
    """Returns ``alpha`` as a float if 0 < alpha <= 1, else raises ValueError."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        raise ValueError(f"`ema_alpha` must be a number in (0, 1]; got {alpha!r}.") from None
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"`ema_alpha` must be in (0, 1] (1 means no averaging); got {alpha}.")
    return alpha


def _dense(g):
    """Densifies `tf.IndexedSlices` (embedding gradients); passes None through."""
    if g is None or not isinstance(g, tf.IndexedSlices):
        return g
    return tf.convert_to_tensor(g)


def _as_list(x, what):
    if isinstance(x, (list, tuple)):
        if not x:
            raise ValueError(f"`{what}` is an empty list.")
        return [tf.convert_to_tensor(_dense(t)) for t in x]
    return [tf.convert_to_tensor(_dense(x))]


def _sum_of_products(xs, ys):
    return tf.add_n([tf.reduce_sum(x * y) for x, y in zip(xs, ys)])


def censor(a, m, mode):
    """Censors an auxiliary gradient ``a`` against a reference ``m``.

    ``a`` and ``m`` are tensors of one shape, or equal-length lists of tensors
    with matching shapes; a list is treated as one vector (the flattened
    concatenation of its tensors), which is the *global* granularity.

    Args:
        a: auxiliary gradient (tensor or list of tensors).
        m: reference: the primary gradient or its moving average.
        mode: one of ``MODES`` (see the module docstring for the formulas).

    Returns:
        ``G(a, m)`` with the structure of ``a``.

    Reference: Du et al. 2018 (arXiv:1812.02224); Lemaire 2018 (projection).
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
        if not x.shape.is_compatible_with(y.shape):
            raise ValueError(
                f"Tensor {i} of `a` has shape {x.shape} but tensor {i} of `m` has shape {y.shape}."
            )
    out = _censor_list(a_list, m_list, mode)
    return out[0] if single else out


def _censor_list(a_list, m_list, mode):
    if mode == SINGLE_TASK:
        return [tf.zeros_like(x) for x in a_list]
    if mode == MULTITASK:
        return list(a_list)
    a_sq = _sum_of_products(a_list, a_list)
    m_sq = _sum_of_products(m_list, m_list)
    degenerate = tf.logical_or(tf.equal(a_sq, 0.0), tf.equal(m_sq, 0.0))
    if mode == PARAMETER_WISE:
        return [
            tf.where(degenerate, x, x * (tf.sign(x * y) + 1.0) / 2.0)
            for x, y in zip(a_list, m_list)
        ]
    # The other three modes are G = c_a · a + c_m · m with scalar
    # coefficients, so the global mode never concatenates the variables.
    dot = _sum_of_products(a_list, m_list)
    zero = tf.zeros_like(dot)
    one = tf.ones_like(dot)
    if mode == UNWEIGHTED_COSINE:
        coef_a = tf.where(dot > 0.0, one, zero)
    elif mode == WEIGHTED_COSINE:
        coef_a = tf.math.divide_no_nan(tf.maximum(dot, 0.0), tf.sqrt(a_sq) * tf.sqrt(m_sq))
    else:  # PROJECTION
        coef_m = tf.math.divide_no_nan(-tf.minimum(dot, 0.0), m_sq)
        coef_m = tf.where(degenerate, zero, coef_m)
        return [x + coef_m * y for x, y in zip(a_list, m_list)]
    coef_a = tf.where(degenerate, one, coef_a)
    return [coef_a * x for x in a_list]


def cosine_similarity(x, y):
    """Cosine between two gradients over the variables where both exist.

    ``x`` and ``y`` are equal-length lists (None allowed); the tensors present
    in both are treated as one flattened vector. Returns 0 when that vector is
    empty or either norm is zero.
    """
    pairs = [(_dense(u), _dense(v)) for u, v in zip(x, y) if u is not None and v is not None]
    if not pairs:
        return tf.constant(0.0)
    xs, ys = zip(*pairs)
    dot = _sum_of_products(xs, ys)
    norms = tf.sqrt(_sum_of_products(xs, xs)) * tf.sqrt(_sum_of_products(ys, ys))
    return tf.math.divide_no_nan(dot, norms)


def ema_update(averages, grads, alpha, is_first):
    """One step of the moving average of the primary gradient (pure).

    ``M(0) = p(0)`` and ``M(t) = α · p(t) + (1 − α) · M(t−1)``.

    Args:
        averages: list of tensors ``M(t−1)`` (None where ``grads`` is None).
        grads: list of primary gradients ``p(t)`` (None allowed).
        alpha: smoothing constant in (0, 1]; 1 means ``M(t) = p(t)``.
        is_first: boolean scalar tensor, True at t = 0.

    Returns:
        The list ``M(t)``, None where ``grads`` is None.

    Reference: Lemaire 2018, "projecting the auxiliary gradient", synthetic
    experiment.
    """
    if len(averages) != len(grads):
        raise ValueError(f"`averages` has {len(averages)} tensors but `grads` has {len(grads)}.")
    out = []
    for m, g in zip(averages, grads):
        if g is None:
            out.append(None)
            continue
        g = tf.convert_to_tensor(_dense(g))
        out.append(tf.where(is_first, g, alpha * g + (1.0 - alpha) * tf.cast(m, g.dtype)))
    return out


class GradientEMA:
    """Explicit state for the moving average of the primary gradient.

    Holds one non-trainable variable per model variable and a step counter,
    created once by ``build``. ``update(grads)`` assigns and returns ``M(t)``.
    Variables are created with ``aggregation="only_first_replica"``: under a
    ``tf.distribute`` strategy the gradients are all-reduced before they reach
    here, so every replica computes the same average.

    Reference: Lemaire 2018 (moving average ``M`` of the primary gradient).
    """

    def __init__(self, alpha):
        self.alpha = validate_alpha(alpha)
        self.averages = None
        self.count = None

    @property
    def built(self):
        return self.averages is not None

    def build(self, variables):
        """Creates one zero slot per variable in ``variables``."""
        self.averages = [
            keras.Variable(
                tf.zeros(v.shape, dtype=v.dtype),
                trainable=False,
                aggregation="only_first_replica",
                name=f"ema_{i}",
            )
            for i, v in enumerate(variables)
        ]
        self.count = keras.Variable(
            0,
            dtype="int64",
            trainable=False,
            aggregation="only_first_replica",
            name="ema_count",
        )

    def update(self, grads):
        """Advances the average with the primary gradients and returns ``M(t)``."""
        if not self.built:
            raise ValueError("GradientEMA.build(variables) must be called before update().")
        values = ema_update(
            [v.value for v in self.averages], grads, self.alpha, tf.equal(self.count.value, 0)
        )
        for var, value in zip(self.averages, values):
            if value is not None:
                var.assign(tf.cast(value, var.dtype))
        self.count.assign_add(1)
        return values


def _task_lists(aux_grads, weight, num_vars):
    """Normalises one or several auxiliary tasks to lists of (grads, λ)."""
    if not isinstance(aux_grads, (list, tuple)) or not aux_grads:
        raise ValueError("`aux_grads` must be a non-empty list of gradients.")
    several = isinstance(aux_grads[0], (list, tuple))
    tasks = list(aux_grads) if several else [aux_grads]
    weights = list(weight) if isinstance(weight, (list, tuple)) else [weight] * len(tasks)
    if len(weights) != len(tasks):
        raise ValueError(f"Got {len(tasks)} auxiliary gradient lists but {len(weights)} weights.")
    for k, task in enumerate(tasks):
        if not isinstance(task, (list, tuple)) or len(task) != num_vars:
            got = len(task) if isinstance(task, (list, tuple)) else type(task).__name__
            raise ValueError(
                f"Auxiliary gradient list {k} must have one entry per variable "
                f"({num_vars}, like `primary_grads`); got {got}."
            )
    return tasks, weights


def combine(
    primary_grads,
    aux_grads,
    weight=1.0,
    mode=PROJECTION,
    granularity=GLOBAL,
    ema=None,
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
        ema: optional ``GradientEMA``; when given it is advanced with
            ``primary_grads`` and its average is the reference ``m``.
            The current ``p`` is still what gets added.

    Returns:
        One tensor (or None) per variable. Variables with only auxiliary
        gradients get ``Σ_k λ_k a_k``; variables with only a primary gradient
        get ``p``; variables with neither get None.

    Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224).
    """
    validate_mode(mode)
    validate_granularity(granularity)
    primary = [_dense(g) for g in primary_grads]
    tasks, weights = _task_lists(aux_grads, weight, len(primary))
    tasks = [[_dense(g) for g in task] for task in tasks]
    reference = ema.update(primary) if ema is not None else primary

    out = list(primary)
    for task, lam in zip(tasks, weights):
        shared = [
            i for i, (p, a) in enumerate(zip(primary, task)) if p is not None and a is not None
        ]
        if granularity == GLOBAL and shared:
            censored = _censor_list([task[i] for i in shared], [reference[i] for i in shared], mode)
        else:
            censored = [_censor_list([task[i]], [reference[i]], mode)[0] for i in shared]
        adjusted = dict(zip(shared, censored))
        for i, a in enumerate(task):
            if a is None:
                continue
            contribution = lam * adjusted.get(i, a)
            out[i] = contribution if out[i] is None else out[i] + contribution
    return out
