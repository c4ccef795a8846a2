"""PCGrad-style symmetric projection between auxiliary tasks.

Each auxiliary gradient is stripped of its conflict with every other
auxiliary gradient: for task ``i`` and, in turn, every other task ``j``, if
``a_i'·a_j < 0`` then ``a_i' ← a_i' − (a_i'·a_j / ‖a_j‖²) a_j`` (on the
variables both tasks reach, as one vector). The de-conflicted gradients then
go to a second method that censors them against the primary gradient
(`Multitask` by default, i.e. no censoring against the primary).

Departure from the paper: PCGrad visits the other tasks in a random order each
step; here the order is fixed (task index), so a step is deterministic and
needs no random state. The primary gradient is never modified.

Reference: Yu, Kumar, Gupta, Levine, Hausman, Finn (2020), "Gradient Surgery
for Multi-Task Learning", NeurIPS (Algorithm 1). See docs/censoring.md.
"""

import keras
from keras import ops

from keras_aux.censoring.base import Censor, check_gradients, sum_of_products


def project_conflicts(auxiliary):
    """PCGrad's projection among a list of gradient lists (pure).

    Args:
        auxiliary: list of tasks' gradient lists (one tensor or None per
            variable, the same length for every task).

    Returns:
        A list like ``auxiliary``: each task's gradient with the components
        that conflict with the other tasks' (original) gradients removed.

    Reference: Yu et al. 2020, Algorithm 1 (fixed instead of random order).
    """
    out = []
    for i, task in enumerate(auxiliary):
        projected = list(task)
        for j, other in enumerate(auxiliary):
            if j == i:
                continue
            shared = [
                v
                for v, (x, y) in enumerate(zip(projected, other))
                if x is not None and y is not None
            ]
            if not shared:
                continue
            x = [projected[v] for v in shared]
            y = [other[v] for v in shared]
            coefficient = ops.divide_no_nan(
                -ops.minimum(sum_of_products(x, y), 0.0), sum_of_products(y, y)
            )
            for v, xv, yv in zip(shared, x, y):
                projected[v] = xv + coefficient * yv
        out.append(projected)
    return out


@keras.saving.register_keras_serializable(package="keras_aux")
class PCGrad(Censor):
    """Symmetric projection between auxiliary tasks, then ``censor`` against the primary.

    Args:
        censor: the method applied to the de-conflicted auxiliary gradients
            (a `Censor` or a name; default ``"multitask"``). Its state is this
            method's state.

    Example: ``PCGrad(Projection())`` removes conflicts among the auxiliary
    tasks and then each task's conflict with the primary gradient.

    Reference: Yu et al. (2020), "Gradient Surgery for Multi-Task Learning",
    NeurIPS.
    """

    def __init__(self, censor="multitask"):
        from keras_aux.censoring import get

        self.censor = get(censor)
        if not self.censor.needs_auxiliary_gradients:
            raise ValueError(
                f"PCGrad needs a method that uses the auxiliary gradients; got {self.censor!r}."
            )

    @property
    def uses_reference(self):
        return self.censor.uses_reference

    def init(self, variables):
        """The wrapped method's state."""
        return self.censor.init(variables)

    def update(self, primary, auxiliary, weights, state, reference=None):
        """De-conflicts ``auxiliary`` among itself, then runs the wrapped method."""
        weights = check_gradients(primary, auxiliary, weights, reference)
        return self.censor.update(
            primary, project_conflicts(auxiliary), weights, state, reference=reference
        )

    def get_config(self):
        return {"censor": keras.saving.serialize_keras_object(self.censor)}

    @classmethod
    def from_config(cls, config):
        return cls(keras.saving.deserialize_keras_object(config["censor"]))
