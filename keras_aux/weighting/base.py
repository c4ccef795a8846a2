"""The one small base of every loss weighting: ``LossWeighting``.

A loss weighting turns the vector of task losses ``L = (L_0, ..., L_{K-1})``
(the primary task first, then the auxiliary tasks in output order) into one
weight per task, as optax turns gradients into updates: pure functions of
explicit state, written in ``keras.ops``, that never touch a variable.

- ``init(num_tasks) -> state``: the method's state (a dict of tensors; ``{}``
  when it has none);
- ``parameters(num_tasks) -> {name: initial value}``: parameters trained by
  the model's own optimizer with the model's weights (uncertainty
  weighting's log-variances; ``{}`` for the others);
- ``weights(losses, state, parameters) -> ω``: the per-task weights of this
  step, constants for the model's gradient;
- ``objectives(losses, state, parameters)``: the per-task objectives the
  step differentiates, ``ω_i · L_i`` unless the method says otherwise;
- ``update(losses, state, gradient_norms=None) -> state``: the state after an
  applied step (methods with ``needs_gradient_norms`` receive the norm of
  each task's gradient on the shared weights);
- ``end_epoch(state) -> state``: the state after an epoch, for methods with
  ``needs_epochs`` (`keras_aux.AuxiliaryTrainer.fit` calls it through a
  callback it adds by itself).

`keras_aux.AuxiliaryModel` keeps the state in model variables (saved with
the model, restored bit-identically, untouched by a step the loss-scale
optimizer skips). See docs/weighting.md.
"""

from keras import ops

PACKAGE = "keras_aux"


def positive_float(value, name, allow_zero=False):
    """``value`` as a float, or a ValueError naming ``name`` and what is allowed."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (number >= 0.0 if allow_zero else number > 0.0) or number == float("inf"):
        allowed = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"`{name}` must be {allowed}; got {value!r}.")
    return number


def adam_step(params, grad, m, v, step, learning_rate, weight_decay=0.0):
    """One step of torch's ``Adam`` (L2 ``weight_decay`` added to the gradient,
    β = (0.9, 0.999), ε = 1e-8), as the reference codes train their logits.

    Returns ``(params, m, v, step)``.
    """
    beta1, beta2, epsilon = 0.9, 0.999, 1e-8
    grad = grad + weight_decay * params
    step = step + 1.0
    m = beta1 * m + (1.0 - beta1) * grad
    v = beta2 * v + (1.0 - beta2) * ops.square(grad)
    m_hat = m / (1.0 - ops.power(beta1, step))
    v_hat = v / (1.0 - ops.power(beta2, step))
    return params - learning_rate * m_hat / (ops.sqrt(v_hat) + epsilon), m, v, step


def epoch_state(num_tasks):
    """The running sum of the task losses over the current epoch, its step
    count and the number of finished epochs."""
    return {
        "epoch_sum": ops.zeros((num_tasks,), "float32"),
        "epoch_steps": ops.zeros((), "float32"),
        "epochs": ops.zeros((), "float32"),
    }


def accumulate(state, losses):
    """``state`` with this step's losses added to the epoch's running sum."""
    state = dict(state)
    state["epoch_sum"] = state["epoch_sum"] + losses
    state["epoch_steps"] = state["epoch_steps"] + 1.0
    return state


def close_epoch(state):
    """``(mean losses of the epoch, state with the sum reset and one more
    epoch counted, had_steps)``; ``had_steps`` is False for an epoch without a
    step (then nothing changes)."""
    steps = state["epoch_steps"]
    had_steps = steps > 0
    mean = state["epoch_sum"] / ops.maximum(steps, 1.0)
    new = dict(state)
    new["epoch_sum"] = ops.where(had_steps, ops.zeros_like(state["epoch_sum"]), state["epoch_sum"])
    new["epoch_steps"] = ops.where(had_steps, 0.0, steps)
    new["epochs"] = ops.where(had_steps, state["epochs"] + 1.0, state["epochs"])
    return mean, new, had_steps


class LossWeighting:
    """Base of the loss weightings (see the module docstring).

    The references treat every task alike, and so do these methods: the
    primary task is one more task whose weight the method sets. With
    ``fix_primary=True`` the primary's weight is held at 1 (its loss enters
    as is) and only the auxiliary weights follow the method.

    Args:
        fix_primary: keep the primary task's weight at 1.
    """

    #: The method needs `end_epoch` at each epoch's end.
    needs_epochs = False
    #: ``update`` needs each task's gradient norm on the shared weights.
    needs_gradient_norms = False
    #: Each training batch comes with a meta batch of the primary task
    #: (`keras_aux.models.TaskData.meta`) and the method takes a meta step on
    #: it (``meta_update``; Auto-λ).
    needs_meta_batch = False

    def __init__(self, fix_primary=False):
        if not isinstance(fix_primary, bool):
            raise ValueError(f"`fix_primary` must be True or False; got {fix_primary!r}.")
        self.fix_primary = fix_primary

    def init(self, num_tasks):
        """The initial state for ``num_tasks`` tasks (primary included)."""
        del num_tasks
        return {}

    def parameters(self, num_tasks):
        """``{name: initial value}`` of the parameters the model's optimizer trains."""
        del num_tasks
        return {}

    def method_weights(self, losses, state, parameters):
        """The method's weights, every task alike (subclasses implement it)."""
        raise NotImplementedError

    def weights(self, losses, state, parameters=None):
        """The per-task weights ω of this step (a vector of ``len(losses)``)."""
        losses = ops.convert_to_tensor(losses, "float32")
        omega = self.method_weights(losses, state, parameters or {})
        return self._held_primary(omega)

    def objectives(self, losses, state, parameters=None):
        """The per-task objectives the step differentiates: ``ω_i · L_i`` with ω
        held constant, so that their gradients are ``ω_i ∇L_i``."""
        losses = ops.convert_to_tensor(losses)
        omega = ops.stop_gradient(self.weights(losses, state, parameters))
        return omega * losses

    def update(self, losses, state, gradient_norms=None):
        """The state after an applied step with these losses."""
        del losses, gradient_norms
        return state

    def end_epoch(self, state):
        """The state after an epoch."""
        return state

    def _held_primary(self, omega):
        if not self.fix_primary:
            return omega
        first = ops.arange(omega.shape[0]) == 0
        return ops.where(first, ops.ones_like(omega), omega)

    def get_config(self):
        """The constructor arguments."""
        return {"fix_primary": self.fix_primary}

    @classmethod
    def from_config(cls, config):
        """Rebuilds the method from `get_config`'s output."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"
