"""The six censoring modes: ``p + Σ_k λ_k · G(a_k, m)`` for one choice of ``G``.

| mode                  | G(a, m)                                    |
|-----------------------|--------------------------------------------|
| ``single_task``       | 0                                          |
| ``multitask``         | a                                          |
| ``unweighted_cosine`` | a if a·m > 0 else 0                        |
| ``weighted_cosine``   | max(a·m, 0) · a / (‖a‖ ‖m‖)                |
| ``projection``        | a − min(a·m, 0) · m / ‖m‖²                 |
| ``parameter_wise``    | a ⊙ (sign(a ⊙ m) + 1) / 2                  |

``m`` is the primary gradient, or the ``reference`` given to ``update`` (a
moving average of it, see `MovingAverage`). If ‖a‖ = 0 or ‖m‖ = 0, every mode
but ``single_task`` returns ``a`` unchanged (the reference implementation's
rule). With ``granularity="global"``, G sees the variables that have both
gradients as one flattened vector; with ``"per_variable"``, each variable
tensor separately. Variables with only auxiliary gradients (an auxiliary
head) get ``Σ_k λ_k a_k``.

References: Du, Czarnecki, Jayakumar, Pascanu, Lakshminarayanan (2018),
"Adapting Auxiliary Losses Using Gradient Similarity", arXiv:1812.02224
(cosine modes); Lemaire (2018), "Auxiliary tasks in deep learning: projecting
the auxiliary gradient" (projection, parameter-wise). See docs/censoring.md.
"""

import keras
from keras import ops

from keras_aux.censoring.base import (
    GLOBAL,
    Censor,
    check_gradients,
    sum_of_products,
    validate_granularity,
)


class GradientCensor(Censor):
    """A censoring mode: one function ``G(a, m)`` applied to every auxiliary task.

    Subclasses implement ``censor(a, m)`` on lists of tensors that form one
    vector; the base handles granularity, variables without gradients, the
    reference and the weights. Stateless.

    Args:
        granularity: ``"global"`` or ``"per_variable"``.
    """

    def __init__(self, granularity=GLOBAL):
        self.granularity = validate_granularity(granularity)

    def censor(self, a, m):
        """``G(a, m)`` for one auxiliary gradient ``a`` and reference ``m``
        (equal-length lists of tensors, one vector); returns a list like ``a``."""
        raise NotImplementedError(f"{type(self).__name__} must implement `censor`.")

    def update(self, primary, auxiliary, weights, state, reference=None):
        """``p + Σ_k λ_k · G(a_k, m)`` per variable (see `Censor.update`)."""
        weights = check_gradients(primary, auxiliary, weights, reference)
        reference = primary if reference is None else reference
        out = list(primary)
        for task, lam in zip(auxiliary, weights):
            shared = [
                i
                for i, (p, a) in enumerate(zip(primary, task))
                if p is not None and a is not None and reference[i] is not None
            ]
            if self.granularity == GLOBAL and shared:
                censored = self.censor([task[i] for i in shared], [reference[i] for i in shared])
            else:
                censored = [self.censor([task[i]], [reference[i]])[0] for i in shared]
            adjusted = dict(zip(shared, censored))
            for i, a in enumerate(task):
                if a is None:
                    continue
                contribution = ops.multiply(ops.cast(lam, a.dtype), adjusted.get(i, a))
                out[i] = contribution if out[i] is None else ops.add(out[i], contribution)
        return out, state

    def get_config(self):
        return {"granularity": self.granularity}


def _norms_squared(a, m):
    a_sq, m_sq = sum_of_products(a, a), sum_of_products(m, m)
    degenerate = ops.logical_or(ops.equal(a_sq, 0.0), ops.equal(m_sq, 0.0))
    return a_sq, m_sq, degenerate


@keras.saving.register_keras_serializable(package="keras_aux")
class SingleTask(GradientCensor):
    """``G = 0``: the auxiliary gradients never reach shared variables.

    The train step takes the primary gradient only (one backward pass), so
    the auxiliary outputs' own variables are not trained either; their losses
    are still logged. Reference: the single-task baseline of Lemaire 2018.
    """

    needs_auxiliary_gradients = False
    uses_reference = False

    def censor(self, a, m):
        return [ops.zeros_like(x) for x in a]


@keras.saving.register_keras_serializable(package="keras_aux")
class Multitask(GradientCensor):
    """``G = a``: the ordinary λ-weighted sum of the task gradients.

    Linear, so the train step may take one backward pass of the weighted
    total. Reference: the multitask baseline of Lemaire 2018 and Du et al. 2018.
    """

    is_linear = True
    uses_reference = False

    def censor(self, a, m):
        return list(a)


@keras.saving.register_keras_serializable(package="keras_aux")
class UnweightedCosine(GradientCensor):
    """``G = a`` if ``a·m > 0`` else 0. Reference: Du et al. 2018
    (arXiv:1812.02224), Algorithm 1."""

    def censor(self, a, m):
        _, _, degenerate = _norms_squared(a, m)
        keep = ops.logical_or(degenerate, sum_of_products(a, m) > 0.0)
        return [ops.where(keep, x, ops.zeros_like(x)) for x in a]

    @property
    def scalar_form(self):
        """``"keep"`` with global granularity: ``G = w a``, ``w ∈ {0, 1}``."""
        return "keep" if self.granularity == GLOBAL else None

    def scalar_coefficients(self, dots, reference_squares):
        """``w_k = 1`` if ``a_k·m > 0`` or ``‖m‖ = 0``, else 0. ``‖a_k‖ = 0``
        (the other degenerate case) is left out: ``a_k`` is then 0 on the
        shared variables, kept or not."""
        return [
            ops.cast(ops.logical_or(ops.equal(sq, 0.0), dot > 0.0), dot.dtype)
            for dot, sq in zip(dots, reference_squares)
        ]


@keras.saving.register_keras_serializable(package="keras_aux")
class WeightedCosine(GradientCensor):
    """``G = max(cos(a, m), 0) · a``. Reference: Du et al. 2018
    (arXiv:1812.02224), the weighted variant."""

    def censor(self, a, m):
        a_sq, m_sq, degenerate = _norms_squared(a, m)
        cosine = ops.divide_no_nan(
            ops.maximum(sum_of_products(a, m), 0.0), ops.sqrt(a_sq) * ops.sqrt(m_sq)
        )
        coefficient = ops.where(degenerate, ops.ones_like(cosine), cosine)
        return [coefficient * x for x in a]


@keras.saving.register_keras_serializable(package="keras_aux")
class Projection(GradientCensor):
    """``G = a − min(a·m, 0) · m / ‖m‖²``: the component of ``a`` that
    opposes ``m`` is removed. Reference: Lemaire 2018."""

    def censor(self, a, m):
        _, m_sq, degenerate = _norms_squared(a, m)
        coefficient = ops.divide_no_nan(-ops.minimum(sum_of_products(a, m), 0.0), m_sq)
        coefficient = ops.where(degenerate, ops.zeros_like(coefficient), coefficient)
        return [x + coefficient * y for x, y in zip(a, m)]

    @property
    def scalar_form(self):
        """``"shift"`` with global granularity: ``G = a + c m``."""
        return "shift" if self.granularity == GLOBAL else None

    def scalar_coefficients(self, dots, reference_squares):
        """``c_k = −min(a_k·m, 0) / ‖m‖²``, 0 when ``‖m‖ = 0``; ``‖a_k‖ = 0``
        gives ``a_k·m = 0``, so ``c_k = 0`` as in `censor`."""
        return [
            ops.divide_no_nan(-ops.minimum(dot, 0.0), sq)
            for dot, sq in zip(dots, reference_squares)
        ]


@keras.saving.register_keras_serializable(package="keras_aux")
class ParameterWise(GradientCensor):
    """``G = a ⊙ (sign(a ⊙ m) + 1) / 2``: each element of ``a`` kept where it
    agrees in sign with ``m``, halved where either is 0. Reference: Lemaire 2018."""

    def censor(self, a, m):
        _, _, degenerate = _norms_squared(a, m)
        return [ops.where(degenerate, x, x * (ops.sign(x * y) + 1.0) / 2.0) for x, y in zip(a, m)]


MODE_CLASSES = {
    "single_task": SingleTask,
    "multitask": Multitask,
    "unweighted_cosine": UnweightedCosine,
    "weighted_cosine": WeightedCosine,
    "projection": Projection,
    "parameter_wise": ParameterWise,
}
