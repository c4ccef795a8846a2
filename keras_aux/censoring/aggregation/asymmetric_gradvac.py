"""Asymmetric GradVac: each auxiliary gradient's cosine with the primary raised to a target.

For each auxiliary task ``k``, over the variables that have ``a_k`` and the
reference ``m`` (the primary gradient, or its moving average), with
``φ = ⟨a_k, m⟩ / (‖a_k‖ ‖m‖ + eps)`` and the task's target ``φ̂_k``: if
``φ < φ̂_k``,

    a_k ← a_k + ‖a_k‖ (φ̂_k √(1 − φ²) − φ √(1 − φ̂_k²)) / (‖m‖ √(1 − φ̂_k²) + eps) · m,

which makes the cosine ``φ̂_k`` (up to ``eps``); then
``φ̂_k ← (1 − β) φ̂_k + β φ``. The update is ``p + Σ_k λ_k a_k``. Only the
auxiliary gradients move, only towards the primary one: never the primary
towards them, nor the auxiliaries towards each other. The state is ``φ̂``
(one float32 per auxiliary task, zeros at ``init``), so with ``β = 0`` the
targets stay 0 and the method is PCGrad's projection against the primary,
i.e. the ``projection`` mode (up to ``eps``).

Reference: Wang, Tsvetkov, Firat & Cao (2021), "Gradient Vaccine:
Investigating and Improving Multi-task Optimization in Massively Multilingual
Models", ICLR (Algorithm 1, applied to the pairs (auxiliary, primary) only).
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE
from keras_aux.censoring.base import Censor, check_gradients, sum_of_products


def vaccinate(a, m, target, eps):
    """GradVac's correction of one gradient ``a`` towards ``m`` (lists of tensors, one vector).

    Returns ``(a', φ, moved)``: ``a`` with its cosine to ``m`` raised to
    ``target`` when below it, the cosine ``φ`` before, and whether both norms
    are positive (else ``a`` is returned unchanged, as the censoring modes do).
    """
    a_sq, m_sq, dot = sum_of_products(a, a), sum_of_products(m, m), sum_of_products(a, m)
    moved = ops.logical_and(a_sq > 0.0, m_sq > 0.0)
    norm_a, norm_m = ops.sqrt(a_sq), ops.sqrt(m_sq)
    phi = dot / (norm_a * norm_m + eps)
    target = ops.cast(target, phi.dtype)
    sin_phi = ops.sqrt(ops.maximum(1.0 - phi * phi, 0.0))
    sin_target = ops.sqrt(ops.maximum(1.0 - target * target, 0.0))
    coefficient = norm_a * (target * sin_phi - phi * sin_target) / (norm_m * sin_target + eps)
    coefficient = ops.where(
        ops.logical_and(moved, phi < target), coefficient, ops.zeros_like(coefficient)
    )
    return [x + coefficient * y for x, y in zip(a, m)], phi, moved


@keras.saving.register_keras_serializable(package=PACKAGE)
class AsymmetricGradVac(Censor):
    """GradVac (Wang et al. 2021) of the auxiliary gradients against the primary only.

    Args:
        num_auxiliary: the number K of auxiliary tasks (one target each).
        beta: EMA rate of the cosine targets, in [0, 1] (default 0.5, as
            TorchJD's ``GradVac``).
        eps: added to the denominators (default 10⁻⁸, as TorchJD).

    The cosines are taken over the variables that have the primary (or
    reference) and the auxiliary gradient, as one vector (the ``global``
    granularity of the modes); variables with only an auxiliary gradient get
    ``λ_k a_k``. A task whose gradient or reference is zero there keeps its
    gradient and its target.

    Reference: Wang, Tsvetkov, Firat & Cao (2021), "Gradient Vaccine:
    Investigating and Improving Multi-task Optimization in Massively
    Multilingual Models", ICLR.
    """

    def __init__(self, num_auxiliary, beta=0.5, eps=1e-8):
        num_auxiliary = int(num_auxiliary)
        if num_auxiliary < 1:
            raise ValueError(f"`num_auxiliary` must be at least 1; got {num_auxiliary}.")
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"`beta` must be in [0, 1]; got {beta}.")
        if eps < 0:
            raise ValueError(f"`eps` must be non-negative; got {eps}.")
        self.num_auxiliary = num_auxiliary
        self.beta = float(beta)
        self.eps = float(eps)

    def init(self, variables):
        """The cosine targets ``φ̂`` (``num_auxiliary`` float32 zeros)."""
        del variables
        return ops.zeros((self.num_auxiliary,), dtype="float32")

    def update(self, primary, auxiliary, weights, state, reference=None):
        """``p + Σ_k λ_k a_k'`` with ``a_k'`` vaccinated towards ``m``; the new targets."""
        weights = check_gradients(primary, auxiliary, weights, reference)
        if len(auxiliary) != self.num_auxiliary:
            raise ValueError(
                f"AsymmetricGradVac was built for {self.num_auxiliary} auxiliary tasks; got "
                f"{len(auxiliary)}."
            )
        reference = primary if reference is None else reference
        out = list(primary)
        targets = []
        for k, (task, lam) in enumerate(zip(auxiliary, weights)):
            target = state[k]
            shared = [
                i
                for i, (p, a) in enumerate(zip(primary, task))
                if p is not None and a is not None and reference[i] is not None
            ]
            adjusted = {}
            if shared:
                moved_a, phi, moved = vaccinate(
                    [task[i] for i in shared], [reference[i] for i in shared], target, self.eps
                )
                adjusted = dict(zip(shared, moved_a))
                phi = ops.cast(phi, "float32")
                target = ops.where(moved, (1.0 - self.beta) * target + self.beta * phi, target)
            targets.append(target)
            for i, a in enumerate(task):
                if a is None:
                    continue
                contribution = ops.multiply(ops.cast(lam, a.dtype), adjusted.get(i, a))
                out[i] = contribution if out[i] is None else ops.add(out[i], contribution)
        return out, ops.stack(targets)

    def get_config(self):
        return {"num_auxiliary": self.num_auxiliary, "beta": self.beta, "eps": self.eps}
