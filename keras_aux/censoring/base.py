"""The one small base of every censoring method: ``Censor``.

Like an optax gradient transformation, a censoring method is a pair of pure
functions with explicit state:

- ``init(variables) -> state``: the state for these variables (a nested
  structure of tensors; ``()`` when the method has none);
- ``update(primary, auxiliary, weights, state, reference=None) ->
  (gradients, new_state)``: from the primary gradient ``p`` (one tensor or
  None per variable), the auxiliary gradients ``a_k`` (one such list per
  auxiliary task) and their weights ``λ_k``, the gradient to apply.

Neither touches a variable: `keras_aux.AuxiliaryModel` keeps the state in
model variables (so `.keras` files, checkpoints and `BackupAndRestore` carry
it) and assigns what ``update`` returns. The math is written with
``keras.ops``, so it traces under XLA and runs on JAX arrays as well.

See docs/censoring.md.
"""

import functools

import keras
from keras import ops

GLOBAL = "global"
PER_VARIABLE = "per_variable"
GRANULARITIES = (GLOBAL, PER_VARIABLE)


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


def sum_of_products(xs, ys):
    """``Σ_i ⟨x_i, y_i⟩`` over two equal-length lists of tensors (one vector)."""
    return functools.reduce(ops.add, [ops.sum(x * y) for x, y in zip(xs, ys)])


def _describe(g):
    return f"shape {tuple(g.shape)} and dtype {keras.backend.standardize_dtype(g.dtype)}"


def check_gradients(primary, auxiliary, weights, reference=None):
    """Validates the arguments of ``Censor.update``; returns ``weights`` as a list.

    Raises ValueError naming the task and the variable (by position) when the
    lists differ in length, or a gradient's shape or dtype differs from the
    primary gradient's of the same variable.
    """
    if not isinstance(primary, (list, tuple)):
        raise ValueError(
            f"`primary` must be a list with one gradient (or None) per variable; got {primary!r}."
        )
    if not isinstance(auxiliary, (list, tuple)):
        raise ValueError("`auxiliary` must be a list of gradient lists, one per auxiliary task.")
    if not isinstance(weights, (list, tuple)):
        weights = [weights] * len(auxiliary)
    if len(weights) != len(auxiliary):
        raise ValueError(
            f"Got {len(auxiliary)} auxiliary gradient lists but {len(weights)} weights."
        )
    named = [("reference", reference)] if reference is not None else []
    named += [(f"auxiliary task {k}", task) for k, task in enumerate(auxiliary)]
    for what, grads in named:
        if not isinstance(grads, (list, tuple)) or len(grads) != len(primary):
            got = len(grads) if isinstance(grads, (list, tuple)) else type(grads).__name__
            raise ValueError(
                f"The gradient list of {what} must have one entry per variable "
                f"({len(primary)}, like `primary`); got {got}."
            )
        for i, (p, g) in enumerate(zip(primary, grads)):
            if p is None or g is None:
                continue
            same_dtype = keras.backend.standardize_dtype(
                p.dtype
            ) == keras.backend.standardize_dtype(g.dtype)
            if tuple(p.shape) != tuple(g.shape) or not same_dtype:
                raise ValueError(
                    f"Variable {i}: the primary gradient has {_describe(p)} but the gradient "
                    f"of {what} has {_describe(g)}."
                )
    return list(weights)


@keras.saving.register_keras_serializable(package="keras_aux")
class Censor:
    """Base of the censoring methods: ``init`` and ``update`` with explicit state.

    Subclass it and implement ``update`` (and ``init`` if the method keeps
    state); ``get_config`` / ``from_config`` make it savable in `.keras`
    files (register the subclass with
    ``keras.saving.register_keras_serializable``). Pass an instance as
    ``AuxiliaryModel.compile(censoring=...)``.

    Two class attributes tell the train step what it must compute, so a method
    pays only for the gradients it reads:

    - ``needs_auxiliary_gradients`` (default True): False when ``update``
      ignores the auxiliary gradients (``SingleTask``): the step then takes
      one backward pass and passes ``auxiliary=[]``.
    - ``is_linear`` (default False): True when ``update`` is exactly
      ``p + Σ_k λ_k a_k`` (``Multitask``): the step may then take one backward
      pass of the weighted total instead of one per task.

    A third, ``uses_reference`` (default True), is False when ``update``
    never reads ``reference`` (``Multitask``, ``SingleTask``): a moving
    average of the primary gradient (`MovingAverage`) would change nothing
    there, so it is refused. A fourth, ``needs_meta_batch`` (default False),
    is True when the method learns from a meta batch of the primary task
    beside every training batch (`keras_aux.learned.AuxiNash`).

    Reference: Lemaire 2018 and Du et al. 2018 (arXiv:1812.02224) for the
    methods; the design follows optax's ``GradientTransformation``. See
    docs/censoring.md.
    """

    needs_auxiliary_gradients = True
    is_linear = False
    uses_reference = True
    needs_meta_batch = False

    scalar_form = None
    """Whether the train step may take the *forward gradient path*
    (docs/censoring.md, "Two gradient paths"): None (default) when ``update``
    needs every ``a_k``; ``"shift"`` when, on the variables ``a_k`` shares
    with ``p``, ``G(a_k, m) = a_k + c_k m``, and ``"keep"`` when
    ``G(a_k, m) = w_k a_k``, with scalars ``c_k`` / ``w_k`` that depend only
    on ``a_k·m`` and ``‖m‖²`` (`scalar_coefficients`)."""

    def scalar_coefficients(self, dots, reference_squares):
        """``c_k`` (form ``"shift"``) or ``w_k`` (``"keep"``) of each task from
        ``dots[k] = a_k·m`` and ``reference_squares[k] = ‖m‖²``, both over the
        variables ``a_k`` shares with ``p``; only for a method with a
        ``scalar_form``."""
        del dots, reference_squares
        raise NotImplementedError(f"{type(self).__name__} has no `scalar_form`.")

    def scalar_reference(self, primary, state):
        """The reference ``m`` (one tensor or None per variable) and the new
        state, for the forward path: ``(primary, state)`` unless the method
        keeps a reference of its own (`MovingAverage`)."""
        return list(primary), state

    def init(self, variables):
        """The initial state for ``variables`` (a list of variables or tensors).

        Returns a nested structure (tuple, list or dict) of tensors; ``()``
        when the method keeps no state.
        """
        del variables
        return ()

    def update(self, primary, auxiliary, weights, state, reference=None):
        """The gradient to apply, and the new state.

        Args:
            primary: list with one primary gradient (or None) per variable.
            auxiliary: list of auxiliary tasks' gradient lists, each like
                ``primary``.
            weights: list of λ_k (floats or scalar tensors), one per task.
            state: what ``init`` (or the previous ``update``) returned.
            reference: optional list like ``primary``: what the auxiliary
                gradients are judged against instead of ``primary`` (a moving
                average of it, from `MovingAverage`).

        Returns:
            ``(gradients, new_state)``: one tensor (or None) per variable, and
            a state of the same structure as ``state``.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement `update`.")

    def logs(self, state, auxiliary_names):
        """What the method learned, to log with every training step.

        Args:
            state: the current state (what ``update`` returned last).
            auxiliary_names: the auxiliary tasks' names, in the order of the
                ``auxiliary`` lists given to ``update``.

        Returns:
            A dict ``{name: scalar tensor}``; ``{}`` (the default) when the
            method learns nothing worth logging.
        """
        del state, auxiliary_names
        return {}

    def get_config(self):
        """Constructor arguments, JSON-serialisable."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Recreates the method from ``get_config()``."""
        return cls(**config)

    def __repr__(self):
        # Attributes named like the config keys (nested methods shown as
        # objects, not as their serialized configs).
        config = self.get_config()
        args = ", ".join(f"{k}={getattr(self, k, config[k])!r}" for k in config)
        return f"{type(self).__name__}({args})"
