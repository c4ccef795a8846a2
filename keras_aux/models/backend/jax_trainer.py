"""The JAX train step of `keras_aux.AuxiliaryTrainer`: stateless, as Keras's
own JAX trainer. The state ``(trainable, non_trainable, optimizer, metrics)``
comes in as arrays; the backend-neutral step (forward passes, censoring, its
state, the metrics) runs inside a `keras.StatelessScope` that maps every
variable to its array; the per-task gradients come from one ``jax.linearize``
of the task objectives, each task's output transposed alone (`task_gradient`;
one ``jax.vjp`` batched with ``jax.vmap`` for a model that calls a
``custom_vjp`` function), or on the forward gradient path from one
``jax.linearize`` too (`_forward_path_update`); the optimizer step is
``stateless_apply``. The censoring state is among the metric variables
(`CensorState`), so it is threaded through the step like any other state.

A TensorFlow tape gives no gradient (None) for a variable a task does not
reach, and censoring treats those variables apart (an auxiliary head gets
``Σ_k λ_k a_k``; the cosine is taken over the variables both tasks reach).
JAX gives zeros instead, so which variables each task reaches is read from
the traced program (`reached_variables`) and the others get None, as on
TensorFlow: both backends give the same update.

Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224). See docs/censoring.md.
"""

import warnings

import jax
import jax.numpy as jnp
import keras

from keras_aux.models.base_trainer import BaseAuxiliaryTrainer


def reached_variables(fn, args):
    """For each output of ``fn(args)``, the indices of the leaves of ``args`` it
    depends on through a differentiable path.

    Read from the program JAX traces (its jaxpr): an output depends on an
    input when a chain of equations links them, except through
    ``stop_gradient``. An equation's outputs depend on all its inputs, so a
    nested program (a scan, a jit) counts as a whole: this may over-state
    what a task reaches, never under-state it.
    """
    return reached_in(jax.make_jaxpr(fn)(args).jaxpr)


def reached_in(jaxpr):
    """`reached_variables` of a traced program (a jaxpr): for each output, the
    indices of the inputs it depends on through a differentiable path."""
    depends = {var: {i} for i, var in enumerate(jaxpr.invars)}

    def of(var):
        if type(var).__name__ == "Literal":
            return set()
        return depends.get(var, set())

    for eqn in jaxpr.eqns:
        found = set()
        if eqn.primitive.name != "stop_gradient":
            for var in eqn.invars:
                found |= of(var)
        for var in eqn.outvars:
            depends[var] = found
    return [of(var) for var in jaxpr.outvars]


def calls_custom_vjp(jaxpr):
    """Whether a traced program (a jaxpr) calls a ``custom_vjp`` function,
    nested programs included: it has no forward-mode derivative, and
    `jax.linearize` fails on it only when the step is lowered."""
    for eqn in jaxpr.eqns:
        if eqn.primitive.name.startswith("custom_vjp"):
            return True
        for value in eqn.params.values():
            for inner in value if isinstance(value, (list, tuple)) else [value]:
                inner = getattr(inner, "jaxpr", inner)
                if hasattr(inner, "eqns") and calls_custom_vjp(inner):
                    return True
    return False


def _stacked(objectives, trainable_values):
    values, aux = objectives(trainable_values)
    return jnp.stack(values), aux


def _as_tuple(objectives, trainable_values):
    values, aux = objectives(trainable_values)
    return tuple(values), aux


def task_gradient(linear, primals, values, k):
    """Task ``k``'s gradient ``Jᵀe_k`` from ``linear`` (``t ↦ J t`` of
    `jax.linearize` at ``primals``, one output per task, ``values``): only
    output ``k`` is transposed, so the other tasks' backward passes are left
    out. Transposing every output with a one-hot cotangent runs them on
    zeros (XLA does not prune them): K + 1 task gradients then cost O(K²)
    head passes."""
    (grads,) = jax.linear_transpose(lambda t: linear(t)[k], primals)(jnp.ones_like(values[k]))
    return grads


def _current(scope, variables, old):
    values = []
    for variable, value in zip(variables, old):
        new = scope.get_current_value(variable)
        values.append(value if new is None else new)
    return values


class JAXAuxiliaryTrainer(BaseAuxiliaryTrainer):
    """`BaseAuxiliaryTrainer` with a stateless step for JAX."""

    def _task_values(self, batches, needed, trainable, non_trainable, optimizer_vars, metrics_vars):
        """``objectives(trainable) -> (list of loss-scaled objectives, (task
        losses, predictions, new non-trainable values))``."""
        fixed = (
            list(zip(self.non_trainable_variables, non_trainable))
            + list(zip(self.optimizer.variables, optimizer_vars))
            + list(zip(self.metrics_variables, metrics_vars))
        )

        def objectives(trainable_values):
            mapping = list(zip(self.trainable_variables, trainable_values)) + fixed
            with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
                task_losses, predictions = self._forward(batches, training=True)
                values = self.step_objectives(task_losses, needed)
            updated = _current(scope, self.non_trainable_variables, non_trainable)
            return values, (task_losses, predictions, updated)

        return objectives

    def train_step(self, state, data):
        """One forward pass per batch, per-task gradients, censoring, one optimizer step."""
        trainable, non_trainable, optimizer_vars, metrics_vars = state
        batches = self._task_batches(data, training=True)
        meta_batch = self._meta_batch(data)
        implicit_terms = None
        if meta_batch is not None and self._censor_needs_meta_batch():
            implicit_terms = self._implicit_terms(
                batches, meta_batch, trainable, non_trainable, optimizer_vars, metrics_vars
            )
        elif meta_batch is not None:
            metrics_vars = self._meta_step(
                batches, meta_batch, trainable, non_trainable, optimizer_vars, metrics_vars
            )
        needed = self._gradients_needed()
        objectives = self._task_values(
            batches, needed, trainable, non_trainable, optimizer_vars, metrics_vars
        )
        program = jax.make_jaxpr(lambda t: objectives(t)[0])(list(trainable)).jaxpr
        reached = reached_in(program)
        # Forward mode (a linearization) serves the forward path, and per-task gradients
        # that transpose one task's output each (`task_gradient`).
        forward_mode = needed in ("forward", "tasks") and not calls_custom_vjp(program)
        if needed == "forward" and not forward_mode:
            needed = self.leave_forward_path(
                "it calls a `custom_vjp` function (as Keras's quantized layers and "
                "`keras.ops.custom_gradient` do), which has no forward-mode derivative"
            )
        if needed == "forward":
            # Linearized once: its transpose gives gradients, itself derivatives along a tangent.
            values, linear, (task_losses, predictions, non_trainable) = jax.linearize(
                lambda t: _stacked(objectives, t), list(trainable), has_aux=True
            )
            vjp = jax.linear_transpose(linear, list(trainable))
        elif forward_mode:
            values, linear, (task_losses, predictions, non_trainable) = jax.linearize(
                lambda t: _as_tuple(objectives, t), list(trainable), has_aux=True
            )
            per_task = [
                task_gradient(linear, list(trainable), values, k) for k in range(len(values))
            ]
        else:
            values, vjp, (task_losses, predictions, non_trainable) = jax.vjp(
                lambda t: _stacked(objectives, t), list(trainable), has_aux=True
            )
            count = values.shape[0]
            (stacked,) = jax.vmap(vjp)(jnp.eye(count, dtype=values.dtype))
            per_task = [[g[k] for g in stacked] for k in range(count)]
        if needed != "forward":
            grads = [
                [g if i in reached[k] else None for i, g in enumerate(task)]
                for k, task in enumerate(per_task)
            ]
        mapping = (
            list(zip(self.trainable_variables, trainable))
            + list(zip(self.non_trainable_variables, non_trainable))
            + list(zip(self.optimizer.variables, optimizer_vars))
            + list(zip(self.metrics_variables, metrics_vars))
        )
        primary = auxiliary = applied = None
        with keras.StatelessScope(state_mapping=mapping) as scope:
            if needed == "total":
                update = grads[0]
            elif needed == "forward":
                update, applied = self._forward_path_update(reached, linear, vjp, trainable)
            else:
                primary, *auxiliary = grads
                update, applied = self.censored_update(primary, auxiliary, implicit_terms)
            logs = self.step_logs(batches, task_losses, predictions, primary, auxiliary, applied)
        metrics_vars = _current(scope, self.metrics_variables, metrics_vars)
        with warnings.catch_warnings():
            # A variable no task reaches has no gradient, on purpose (None, as on TensorFlow).
            warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
            trainable, optimizer_vars = self.optimizer.stateless_apply(
                optimizer_vars, update, trainable
            )
        return logs, (trainable, non_trainable, optimizer_vars, metrics_vars)

    def _meta_step(
        self, batches, meta_batch, trainable, non_trainable, optimizer_vars, metrics_vars
    ):
        """`advance_meta_weighting` (Auto-λ) on the step's state; returns the
        metric variables' values after it (the loss weighting's state among
        them). ``h = J v`` comes from one ``jax.linearize`` of the task losses
        (its transpose gives ``g = Jᵀλ``, itself the derivative along ``v``):
        exact, one pass each way whatever the number of tasks; or a central
        difference (`lookahead_products`)."""
        fixed = (
            list(zip(self.non_trainable_variables, non_trainable))
            + list(zip(self.optimizer.variables, optimizer_vars))
            + list(zip(self.metrics_variables, metrics_vars))
        )

        def losses(values):
            return self.lookahead_losses(
                list(zip(self.trainable_variables, values)) + fixed, batches
            )

        def meta_loss(values):
            mapping = list(zip(self.trainable_variables, values)) + fixed
            return self.lookahead_meta_loss(mapping, meta_batch)

        def meta_products(weights, learning_rate):
            # Mixed precision: every pass runs on loss-scaled values (`meta_loss_scale`).
            scale = self.meta_loss_scale()
            _, linear = jax.linearize(losses, list(trainable))
            cotangent = jnp.asarray(weights, "float32") * scale
            (g,) = jax.linear_transpose(linear, list(trainable))(cotangent)
            g = [d / scale for d in g]
            lookahead = self.lookahead_parameters(list(trainable), g, learning_rate)
            v = [u / scale for u in jax.grad(lambda t: meta_loss(t) * scale)(lookahead)]
            return self.lookahead_products(
                trainable, v, batches, fixed, lambda: linear([u * scale for u in v]) / scale
            )

        mapping = list(zip(self.trainable_variables, trainable)) + fixed
        with keras.StatelessScope(state_mapping=mapping) as scope:
            self.advance_meta_weighting(meta_products)
        return _current(scope, self.metrics_variables, metrics_vars)

    def _implicit_terms(
        self, batches, meta_batch, trainable, non_trainable, optimizer_vars, metrics_vars
    ):
        """AuxiNash's hyper-step terms (``fn(weights, shared) -> (meta_gradient,
        hvp)``, `keras_aux.models.implicit`) at the step's state: ``∇_W L_meta``
        by ``jax.grad``, and ``v ↦ H v`` from one ``jax.linearize`` of the
        gradient of ``Σᵢ wᵢ Lᵢ`` (forward over reverse), both in the variables
        of index in ``shared``, the others held at their values."""
        fixed = (
            list(zip(self.non_trainable_variables, non_trainable))
            + list(zip(self.optimizer.variables, optimizer_vars))
            + list(zip(self.metrics_variables, metrics_vars))
        )

        def implicit_terms(weights, shared):
            def mapping(values):
                current = list(trainable)
                for i, value in zip(shared, values):
                    current[i] = value
                return list(zip(self.trainable_variables, current)) + fixed

            def objective(values):
                return jnp.sum(weights * self.lookahead_losses(mapping(values), batches))

            shared_values = [trainable[i] for i in shared]
            meta_gradient = jax.grad(
                lambda values: self.lookahead_meta_loss(mapping(values), meta_batch)
            )(shared_values)
            _, hvp = jax.linearize(jax.grad(objective), shared_values)
            return meta_gradient, hvp

        return implicit_terms

    def _forward_path_update(self, reached, linear, vjp, trainable):
        """`scalar_censored_update` from the linearized task objectives: ``linear``
        (``t ↦ J t``, every task's derivative along ``t`` in one forward-mode
        pass over the saved linearization) and its transpose ``vjp`` (``u ↦
        Jᵀu``). Each gradient is its own transpose pass, one after the other:
        batched with ``jax.vmap`` they would hold two sets of backward
        temporaries at once."""
        count = len(reached)
        reach_total = set().union(*reached)
        (primary,) = vjp(jnp.asarray([1.0] + [0.0] * (count - 1), "float32"))
        primary = [g if i in reached[0] else None for i, g in enumerate(primary)]

        def directional(tangent):
            zeros = [jnp.zeros_like(v) if t is None else t for t, v in zip(tangent, trainable)]
            return list(linear(zeros)[1:])

        def reweighted(cotangent):
            # The barrier keeps XLA from folding the constant λ_k into the
            # auxiliary heads' backward and running it early, before the
            # primary gradient is done with (which held both at once: 3.1
            # against 2.0 MiB on the K = 16 mlp).
            (grads,) = vjp(jax.lax.optimization_barrier(jnp.stack(cotangent)))
            return [g if i in reach_total else None for i, g in enumerate(grads)]

        return self.scalar_censored_update(primary, reached[1:], directional, reweighted)

    def test_step(self, state, data):
        """Per-task losses and compiled metrics, without gradients; auxiliary
        tasks without targets are left out."""
        trainable, non_trainable, metrics_vars = state
        mapping = (
            list(zip(self.trainable_variables, trainable))
            + list(zip(self.non_trainable_variables, non_trainable))
            + list(zip(self.metrics_variables, metrics_vars))
        )
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True) as scope:
            logs = self.evaluate_batches(data)
        non_trainable = _current(scope, self.non_trainable_variables, non_trainable)
        metrics_vars = _current(scope, self.metrics_variables, metrics_vars)
        return logs, (trainable, non_trainable, metrics_vars)
