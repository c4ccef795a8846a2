"""The moving average of the primary gradient as the censoring reference.

``M(0) = p(0)`` and ``M(t) = α · p(t) + (1 − α) · M(t−1)``; the wrapped method
then judges the auxiliary gradients against ``M(t)`` instead of ``p(t)``
(the current ``p(t)`` is still what gets applied).

Reference: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the
auxiliary gradient", synthetic experiment. See docs/censoring.md.
"""

import keras
from keras import ops

from keras_aux.censoring.base import Censor, check_gradients, validate_alpha


def ema_update(averages, grads, alpha, is_first):
    """One step of the moving average (pure).

    Args:
        averages: list of tensors ``M(t−1)``.
        grads: list of primary gradients ``p(t)`` (None allowed: that
            average is returned unchanged).
        alpha: smoothing constant in (0, 1]; 1 means ``M(t) = p(t)``.
        is_first: boolean scalar tensor, True at t = 0 (then ``M = p``).

    Returns:
        The list ``M(t)``.

    Reference: Lemaire 2018 (moving average ``M`` of the primary gradient).
    """
    if len(averages) != len(grads):
        raise ValueError(f"`averages` has {len(averages)} tensors but `grads` has {len(grads)}.")
    out = []
    for m, g in zip(averages, grads):
        if g is None:
            out.append(m)
            continue
        m = ops.cast(m, g.dtype)
        out.append(ops.where(is_first, g, alpha * g + (1.0 - alpha) * m))
    return out


@keras.saving.register_keras_serializable(package="keras_aux")
class MovingAverage(Censor):
    """Judges the auxiliary gradients against a moving average of ``p``.

    Wraps another method (any `Censor`, e.g. `Projection`) and hands it
    ``reference=M(t)``. State: the averages (one tensor per variable), a flag
    set after the first step, and the wrapped method's state.

    Args:
        censor: the method that uses the average (a `Censor` or a name).
        alpha: smoothing constant α in (0, 1].

    Reference: Lemaire 2018.
    """

    def __init__(self, censor, alpha):
        from keras_aux.censoring import get

        self.censor = get(censor)
        self.alpha = validate_alpha(alpha)
        if not self.censor.uses_reference:
            # Refused rather than ignored: the average would cost one backward
            # pass per task and a copy of the weights, and change nothing.
            raise ValueError(
                f"A moving average of the primary gradient (ema_alpha={self.alpha}) changes "
                f"nothing for {self.censor!r}, which never compares the auxiliary gradients "
                "with the primary one; use ema_alpha=1 with it, or a method that does "
                "(projection, unweighted_cosine, weighted_cosine, parameter_wise)."
            )

    @property
    def needs_auxiliary_gradients(self):
        return self.censor.needs_auxiliary_gradients

    def init(self, variables):
        """Zero averages, the first-step flag, and the wrapped method's state."""
        return {
            "average": [ops.zeros(tuple(v.shape), dtype=v.dtype) for v in variables],
            "started": ops.zeros((), dtype="int32"),
            "inner": self.censor.init(variables),
        }

    def update(self, primary, auxiliary, weights, state, reference=None):
        """Advances the average with ``primary`` and runs the wrapped method
        against it. A ``reference`` given here is what gets averaged."""
        check_gradients(primary, auxiliary, weights, reference)
        source = primary if reference is None else reference
        average = ema_update(state["average"], source, self.alpha, ops.equal(state["started"], 0))
        grads, inner = self.censor.update(
            primary,
            auxiliary,
            weights,
            state["inner"],
            reference=[None if g is None else m for g, m in zip(source, average)],
        )
        return grads, {
            "average": average,
            "started": ops.ones_like(state["started"]),
            "inner": inner,
        }

    @property
    def scalar_form(self):
        """The wrapped method's (the average only changes the reference)."""
        return self.censor.scalar_form

    def scalar_coefficients(self, dots, reference_squares):
        """The wrapped method's, against the average."""
        return self.censor.scalar_coefficients(dots, reference_squares)

    def scalar_reference(self, primary, state):
        """``M(t)`` (None where ``primary`` is None) and the state `update`
        leaves, for the forward path (the wrapped method is stateless there)."""
        average = ema_update(state["average"], primary, self.alpha, ops.equal(state["started"], 0))
        reference = [None if g is None else m for g, m in zip(primary, average)]
        return reference, {
            "average": average,
            "started": ops.ones_like(state["started"]),
            "inner": state["inner"],
        }

    def get_config(self):
        return {"censor": keras.saving.serialize_keras_object(self.censor), "alpha": self.alpha}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["censor"] = keras.saving.deserialize_keras_object(config["censor"])
        return cls(**config)
