"""Implicit differentiation for a censoring method that learns from a meta batch
(`keras_aux.learned.AuxiNash`): the backend-neutral half of its hyper-step.

The method's weights ``α`` set the training objective ``Σᵢ αᵢ Lᵢ``; the
meta objective is the primary loss ``L_meta`` on a meta batch at the weights
``W`` training reaches. By the implicit function theorem,
``∂L_meta/∂αᵢ = −⟨∇_W Lᵢ, H⁻¹ ∇_W L_meta⟩`` (``H`` the Hessian of the
training objective in ``W``); the reference approximates ``H⁻¹`` by a
truncated Neumann series and the trainers supply its two ingredients on each
backend (``∇_W L_meta``, and ``v ↦ H v``), differentiated in the shared
variables only, every other variable held at its value.

Reference: Shamsian et al. (2023), "Auxiliary Learning as an Asymmetric
Bargaining Game", ICML (code AvivSham/auxinash, ``implicit_diff.Hypergrad``,
after Lorraine, Vicol & Duvenaud 2020, "Optimizing Millions of
Hyperparameters by Implicit Differentiation", AISTATS). See
docs/learned_weighting.md.
"""

import keras
from keras import ops


def neumann_series(meta_gradient, hvp, learning_rate, terms):
    """``Σ_{j=0}^{terms} (I − η H)ʲ g``, the reference's ``approx_inverse_hvp``:
    ``v = p = g``, then ``terms`` times ``v ← v − η H v``, ``p ← p + v``.
    Without the series' final factor ``η`` (as the reference; it only scales
    the hypergradient, whose norm is clipped after).

    Args:
        meta_gradient: ``g``, a list of tensors.
        hvp: ``fn(list) -> list``, ``v ↦ H v``.
        learning_rate: ``η``.
        terms: the number of terms after the first.
    """
    total = vector = list(meta_gradient)
    for _ in range(terms):
        product = hvp(vector)
        vector = [v - ops.cast(learning_rate, v.dtype) * h for v, h in zip(vector, product)]
        total = [t + v for t, v in zip(total, vector)]
    return total


def check_supported(trainer):
    """Refuses what the hyper-step does not handle: a loss weighting beside it,
    mixed precision's loss scaling, a distribution over several devices."""
    censor = trainer.censor
    if trainer._tasks.weighting is not None:
        raise ValueError(
            f"censoring={censor!r} learns the task weights itself; compile it without a "
            f"loss_weighting (got {trainer._tasks.weighting!r})."
        )
    if isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer):
        raise ValueError(
            f"censoring={censor!r} does not support mixed precision's loss scaling (its "
            "Hessian-vector products would run on scaled float16 values): train in float32."
        )
    if keras.distribution.distribution() is not None:
        raise ValueError(
            f"censoring={censor!r} does not support a keras.distribution setting: its "
            "hyper-step differentiates the model on one device."
        )


def advance_censor_state(trainer, primary, auxiliary, new_state, implicit_terms):
    """``new_state`` after the censoring method's hyper-step when it is due
    (`meta_due`, a condition traced on both backends), else as it is.

    Args:
        trainer: the `BaseAuxiliaryTrainer`.
        primary, auxiliary: the step's task gradients (unscaled).
        new_state: what the method's ``update`` returned.
        implicit_terms: ``fn(weights, shared) -> (meta_gradient, hvp)``, the
            backend's part: ``∇_W L_meta`` and ``v ↦ H v`` over the variables
            of index in ``shared``, ``H`` the Hessian of ``Σᵢ wᵢ Lᵢ`` on the
            step's batches.
    """
    censor = trainer.censor
    lams = [trainer._tasks.weights[t] for t in trainer.auxiliary_names]
    shared = censor.shared_variables(primary, auxiliary)

    def hyper_step():
        weights = censor.training_weights(new_state, lams)
        meta_gradient, hvp = implicit_terms(weights, shared)
        series = neumann_series(
            meta_gradient, hvp, censor.neumann_learning_rate, censor.neumann_terms
        )
        vector = [None] * len(primary)
        for index, value in zip(shared, series):
            vector[index] = value
        products = censor.task_products(primary, auxiliary, lams, vector)
        return censor.meta_update(new_state, products)

    def keep():
        return {"powers": new_state["powers"], "momentum": new_state["momentum"]}

    stepped = ops.cond(censor.meta_due(new_state), hyper_step, keep)
    return {**new_state, **stepped}
