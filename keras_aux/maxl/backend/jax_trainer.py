"""The JAX stages of `keras_aux.maxl.MAXL`: stateless, as Keras's own JAX
trainer. Every value (both networks' weights and statistics, both
optimisers' slots, the metrics) comes in as an array and goes out updated;
the networks run through ``stateless_call``, the optimisers through
``stateless_apply``.

- Stage 1: ``jax.vjp`` of ``(L_pri, L_aux)`` in θ1 (two backward passes when
  the gradient cosine is logged), then θ1's optimizer.
- Stage 2, ``order=2``: the meta objective ``L_pri(θ1 − α ∇θ1 L_train(θ1, θ2))
  + w·H(θ2)`` written as a function of θ2 with the inner gradient taken by
  ``jax.grad`` inside it; ``jax.grad`` of that function is the exact
  second-order meta-gradient (nested differentiation through the virtual step).
- Stage 2, ``order=1``: the DARTS finite-difference estimate; one ``jax.vjp``
  of the generator carries the label gradient back to θ2.
- The interleaved schedule runs stage 2 every k-th step under ``jax.lax.cond``;
  the paper schedule has one traced function per stage.

The generator's optimizer is not among the state Keras threads through a
JAX step (``model.optimizer`` is θ1's), so its variables travel among the
metric variables, held by `GeneratorOptimizerState`. Under
`keras.distribution.DataParallel` the batch is one array sharded over the
devices: every mean, and so every gradient, is already the global one.

A TensorFlow tape gives no gradient (None) for a variable a loss does not
reach, and the optimizer then leaves it alone (no weight decay, no momentum);
JAX gives zeros, so the variables each loss reaches are read from the traced
program (`keras_aux.models.backend.jax_trainer.reached_variables`) and the
others get None, as on TensorFlow.

Reference: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with
Meta Auxiliary Learning", NeurIPS; docs/maxl.md.
"""

import contextlib
import warnings

import jax
import jax.numpy as jnp
import keras
from keras import ops

from keras_aux import censoring as censoring_lib
from keras_aux.models.backend.jax_trainer import reached_variables


class GeneratorOptimizerState(keras.metrics.Metric):
    """Holds the label generator's optimizer variables (the same variable
    objects) so that Keras threads them through its stateless JAX step.

    A `keras.metrics.Metric` in form only, as
    `keras_aux.models.base_trainer.CensorState`: Keras passes the variables of
    a model's metrics into and out of every JAX step. It never resets and logs
    nothing; the optimizer itself is saved as the model's ``generator_optimizer``.
    """

    def __init__(self, optimizer, name="generator_optimizer_state"):
        super().__init__(name=name)
        self._held = _Unsaved(optimizer)

    @property
    def variables(self):
        return list(self._held.value.variables)

    def update_state(self, *args, **kwargs):
        """Unused: stage 2 applies the generator's optimizer."""
        raise NotImplementedError("The generator's optimizer state is updated by stage 2.")

    def reset_state(self):
        """Kept across epochs and evaluations (Keras resets metrics there)."""

    def result(self):
        """Nothing to log."""
        return {}


class _Unsaved:
    """A plain holder: what it holds is neither tracked by Keras nor walked by its saving."""

    def __init__(self, value):
        self.value = value


class _Values:
    """The step's values, by variable: read and replaced as lists of variables,
    and turned back into Keras's state tuple at the end."""

    def __init__(self, groups, state):
        self.groups = groups
        self.values = {}
        for variables, values in zip(groups, state):
            for variable, value in zip(variables, values):
                self.values[id(variable)] = value
        self.variables = {id(v): v for variables in groups for v in variables}

    def get(self, variables):
        return [self.values[id(v)] for v in variables]

    def set(self, variables, values):
        for variable, value in zip(variables, values):
            self.values[id(variable)] = value

    def read(self, scope, variables):
        """Takes the values ``scope`` (a `keras.StatelessScope`) assigned."""
        for variable in variables:
            new = scope.get_current_value(variable)
            if new is not None:
                self.values[id(variable)] = new

    def mapping(self):
        return [(self.variables[key], value) for key, value in self.values.items()]

    def leaves(self):
        return [self.values[key] for key in self.variables]

    def with_leaves(self, leaves):
        """A copy holding ``leaves`` (in the order of `leaves`)."""
        copy = _Values(self.groups, self.state())
        copy.values = dict(zip(self.variables, leaves))
        return copy

    def state(self):
        return tuple([self.values[id(v)] for v in variables] for variables in self.groups)


@contextlib.contextmanager
def _ignoring_missing_gradients():
    """A variable no loss reaches gets None, on purpose (as on TensorFlow)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables")
        yield


class JAXMAXLTrainer:
    """MAXL's stages and steps written for JAX (a mixin before `keras.Model`)."""

    # ------------------------------------------------------ backend hooks
    def _state_scope(self):
        return contextlib.nullcontext()

    def _replica_share(self, value):
        return value

    def _global_value(self, value):
        return value

    def _entropy(self, labels):
        """``(H, H)``: on JAX the batch is global, so ``H`` is its own surrogate."""
        entropy = self._batch_entropy(labels)
        return entropy, entropy

    def _generator_optimizer_built(self):
        """Holds the generator's optimizer variables among the metric variables."""
        self._generator_state = _Unsaved(GeneratorOptimizerState(self.generator_optimizer))

    def _held_state(self):
        holder = getattr(self, "_generator_state", None)
        return [] if holder is None else [holder.value]

    # ------------------------------------------------------------ the state
    def _train_groups(self):
        """The variables of Keras's train state, in its order."""
        return (
            self.trainable_variables,
            self.non_trainable_variables,
            self.optimizer.variables,
            self.metrics_variables,
        )

    def _current_values(self):
        groups = self._train_groups()
        return _Values(groups, [[v.value for v in variables] for variables in groups])

    def _assign(self, values):
        for variables, new in zip(values.groups, values.state()):
            for variable, value in zip(variables, new):
                variable.assign(value)

    def _update_trackers(self, values, update):
        """Runs ``update()`` (metric updates) on ``values`` and keeps the results."""
        with keras.StatelessScope(state_mapping=values.mapping()) as scope:
            update()
        values.read(scope, self.metrics_variables)

    def _inputs(self, x, y):
        x = keras.tree.map_structure(ops.convert_to_tensor, x)
        return x, self._primary_ids(y)

    def _generator_function(self, values, x, y):
        """``θ2 ↦ (generated labels, new generator statistics)`` (training mode)."""
        generator = self.label_generator
        statistics = values.get(generator.non_trainable_variables)
        inputs = self._generator_inputs(x, y)

        def generate(theta2):
            return generator.stateless_call(theta2, statistics, inputs, training=True)

        return generate

    def _multitask(self, theta1, statistics, x):
        """``(primary, auxiliary, new statistics)`` of the multi-task network at ``theta1``."""
        outputs, statistics = self.multitask_network.stateless_call(
            theta1, statistics, x, training=True
        )
        return (*self._split(outputs), statistics)

    # ---------------------------------------------------------------- stages
    def _stage_one(self, values, x, y):
        multitask = self.multitask_network
        theta1 = values.get(multitask.trainable_variables)
        statistics = values.get(multitask.non_trainable_variables)
        generate = self._generator_function(values, x, y)
        labels, generator_statistics = generate(
            values.get(self.label_generator.trainable_variables)
        )
        labels = jax.lax.stop_gradient(labels)

        def losses(t1):
            primary, auxiliary, new = self._multitask(t1, statistics, x)
            return [self._focal(y, primary), self._focal(labels, auxiliary)], (primary, new)

        reached = reached_variables(lambda t1: losses(t1)[0], list(theta1))
        (l_pri, l_aux), vjp, (primary, statistics) = jax.vjp(losses, theta1, has_aux=True)
        one, zero = jnp.ones_like(l_pri), jnp.zeros_like(l_pri)
        (g_pri,) = vjp([one, zero])
        (g_aux,) = vjp([zero, one])
        g_pri = [g if i in reached[0] else None for i, g in enumerate(g_pri)]
        g_aux = [g if i in reached[1] else None for i, g in enumerate(g_aux)]
        grads = [
            None
            if p is None and a is None
            else (0 if p is None else p) + (0 if a is None else self.auxiliary_weight * a)
            for p, a in zip(g_pri, g_aux)
        ]
        with _ignoring_missing_gradients():
            theta1, slots = self.optimizer.stateless_apply(
                values.get(self.optimizer.variables), grads, theta1
            )
        values.set(multitask.trainable_variables, theta1)
        values.set(self.optimizer.variables, slots)
        values.set(multitask.non_trainable_variables, statistics)
        values.set(self.label_generator.non_trainable_variables, generator_statistics)

        def update():
            if self.track_gradient_cosine:
                # Heads get None from the other task: the cosine is over the shared weights.
                self._trackers.cosine.update_state(censoring_lib.cosine_similarity(g_pri, g_aux))
            self._update_metrics(y, primary, l_pri, l_aux, labels, self._batch_entropy(labels))

        self._update_trackers(values, update)
        return values

    def _meta_gradients(self, values, x, y):
        """``(θ2's gradient, L_pri(θ1⁺), (primary probabilities, L_pri, L_aux,
        labels, H), new multi-task statistics, new generator statistics)``."""
        with keras.StatelessScope(state_mapping=values.mapping()):
            alpha = self._inner_learning_rate()
        generate = self._generator_function(values, x, y)
        theta2 = values.get(self.label_generator.trainable_variables)
        (reached,) = reached_variables(lambda t2: [generate(t2)[0]], list(theta2))
        if self.order == 2:
            grads, outputs = self._second_order(values, x, y, alpha, generate, theta2)
        else:
            grads, outputs = self._first_order(values, x, y, alpha, generate, theta2)
        grads = [g if i in reached else None for i, g in enumerate(grads)]
        return (grads, *outputs)

    def _second_order(self, values, x, y, alpha, generate, theta2):
        """Exact: the inner gradient is taken by ``jax.grad`` inside the meta
        objective, a function of θ2, and ``jax.grad`` of that objective
        differentiates through it (Hessian-vector products by nested AD)."""
        theta1 = values.get(self.multitask_network.trainable_variables)
        statistics = values.get(self.multitask_network.non_trainable_variables)

        def meta_objective(t2):
            labels, generator_statistics = generate(t2)

            def train_loss(t1):
                primary, auxiliary, new = self._multitask(t1, statistics, x)
                l_pri, l_aux = self._focal(y, primary), self._focal(labels, auxiliary)
                return l_pri + self.auxiliary_weight * l_aux, (primary, l_pri, l_aux, new)

            inner, (primary, l_pri, l_aux, new) = jax.grad(train_loss, has_aux=True)(theta1)
            fast = [t - alpha * g for t, g in zip(theta1, inner)]
            primary_fast, _, _ = self._multitask(fast, new, x)
            meta_loss = self._focal(y, primary_fast)
            entropy = self._batch_entropy(labels)
            outputs = (
                meta_loss,
                (primary, l_pri, l_aux, labels, entropy),
                new,
                generator_statistics,
            )
            return meta_loss + self.entropy_weight * entropy, outputs

        return jax.grad(meta_objective, has_aux=True)(theta2)

    def _first_order(self, values, x, y, alpha, generate, theta2):
        """The DARTS estimate (docs/maxl.md#first-order-variant)."""
        theta1 = values.get(self.multitask_network.trainable_variables)
        statistics = values.get(self.multitask_network.non_trainable_variables)
        labels, generator_vjp, generator_statistics = jax.vjp(generate, theta2, has_aux=True)
        fixed = jax.lax.stop_gradient(labels)

        def train_loss(t1):
            primary, auxiliary, new = self._multitask(t1, statistics, x)
            l_pri, l_aux = self._focal(y, primary), self._focal(fixed, auxiliary)
            return l_pri + self.auxiliary_weight * l_aux, (primary, l_pri, l_aux, new)

        (reached,) = reached_variables(lambda t1: [train_loss(t1)[0]], list(theta1))
        inner, (primary, l_pri, l_aux, statistics) = jax.grad(train_loss, has_aux=True)(theta1)
        inner = [g if i in reached else None for i, g in enumerate(inner)]
        with keras.StatelessScope(state_mapping=values.mapping()):
            fast = self._virtual_sgd_step(theta1, inner, alpha)

        def primary_loss(f):
            return self._focal(y, self._multitask(f, statistics, x)[0])

        meta_loss, direction = jax.value_and_grad(primary_loss)(fast)
        norm = jnp.sqrt(sum(jnp.sum(jnp.square(d)) for d in direction))
        epsilon = 0.01 / (norm + 1e-12)
        aux_plus = self._multitask(
            [t + epsilon * d for t, d in zip(theta1, direction)], statistics, x
        )[1]
        aux_minus = self._multitask(
            [t - epsilon * d for t, d in zip(theta1, direction)], statistics, x
        )[1]

        def surrogate(q):
            # Only L_aux depends on θ2 (through the labels), and linearly.
            difference = self._focal(q, aux_plus) - self._focal(q, aux_minus)
            return -alpha * self.auxiliary_weight * difference / (
                2.0 * epsilon
            ) + self.entropy_weight * self._batch_entropy(q)

        (grads,) = generator_vjp(jax.grad(surrogate)(labels))
        entropy = self._batch_entropy(labels)
        losses = (primary, l_pri, l_aux, labels, entropy)
        return grads, (meta_loss, losses, statistics, generator_statistics)

    def _stage_two(self, values, x, y):
        grads, meta_loss, losses, statistics, generator_statistics = self._meta_gradients(
            values, x, y
        )
        generator = self.label_generator
        optimizer = self.generator_optimizer
        with _ignoring_missing_gradients():
            theta2, slots = optimizer.stateless_apply(
                values.get(optimizer.variables), grads, values.get(generator.trainable_variables)
            )
        values.set(generator.trainable_variables, theta2)
        values.set(optimizer.variables, slots)
        values.set(self.multitask_network.non_trainable_variables, statistics)
        values.set(generator.non_trainable_variables, generator_statistics)

        def update():
            self._update_metrics(y, *losses)
            self._trackers.primary_loss_after_step.update_state(meta_loss)

        self._update_trackers(values, update)
        return values

    # ------------------------------------------- public, on concrete arrays
    def stage_one(self, x, y):
        """Updates θ1 on L_pri + L_aux with the generated labels held fixed."""
        x, y = self._inputs(x, y)
        self._assign(self._stage_one(self._current_values(), x, y))

    def stage_two(self, x, y):
        """Updates θ2 on L_pri(θ1⁺) + w · H (second or first order)."""
        x, y = self._inputs(x, y)
        self._assign(self._stage_two(self._current_values(), x, y))

    def meta_gradients(self, x, y):
        """θ2's gradient of the meta objective, the primary loss after the
        virtual step, and the stage's ``(primary probabilities, L_pri, L_aux,
        labels, H)``; applies nothing."""
        x, y = self._inputs(x, y)
        grads, meta_loss, losses, _, _ = self._meta_gradients(self._current_values(), x, y)
        return grads, meta_loss, losses

    # ------------------------------------------------------------ the steps
    def train_step(self, state, data):
        """Stage 1 or stage 2 (paper schedule), or stage 1 then every k-th
        step stage 2 on the same batch (interleaved)."""
        return self._train_step(state, data, self.stage)

    def _train_step(self, state, data, stage):
        x, y = self._unpack(data)
        values = _Values(self._train_groups(), state)
        if self.schedule == "epoch":
            step = self._stage_one if stage == 1 else self._stage_two
            values = step(values, x, y)
        else:
            values = self._stage_one(values, x, y)
            (counter,) = values.get([self._step_counter])
            if self.stage2_every == 1:
                values = self._stage_two(values, x, y)
            else:
                leaves = jax.lax.cond(
                    counter % self.stage2_every == 0,
                    lambda leaves: self._stage_two(values.with_leaves(leaves), x, y).leaves(),
                    lambda leaves: leaves,
                    values.leaves(),
                )
                values = values.with_leaves(leaves)
            values.set([self._step_counter], [counter + 1])
        with keras.StatelessScope(state_mapping=values.mapping()):
            logs = self._stage_logs()
        return logs, values.state()

    def test_step(self, state, data):
        """Primary focal loss and accuracy (and compiled metrics) of the multi-task
        network, and the collapse diagnostics of the labels the generator assigns
        to these examples in inference mode (``auxiliary_usage``, ``auxiliary_entropy``)."""
        x, y = self._unpack(data)
        groups = (self.trainable_variables, self.non_trainable_variables, self.metrics_variables)
        values = _Values(groups, state)
        with keras.StatelessScope(state_mapping=values.mapping()) as scope:
            logs = self._test_batch(x, y)
        values.read(scope, self.non_trainable_variables)
        values.read(scope, self.metrics_variables)
        return logs, values.state()

    def make_train_function(self, force=False):
        """One traced function per stage for the paper schedule (see `train_step`)."""
        if self.schedule != "epoch":
            super().make_train_function(force)
            return self.train_function
        if self.train_function is not None and not force:
            return self.train_function
        functions = {stage: self._stage_function(stage) for stage in (1, 2)}

        def train_function(state, iterator):
            return functions[self.stage](state, iterator)

        self.train_function = train_function
        return train_function

    def _stage_function(self, stage):
        """The train function of one stage: ``(state, iterator) -> (logs, state)``
        over ``steps_per_execution`` batches, jitted as Keras jits its own.
        (Two ``jax.jit`` of the same bound method would share one trace.)"""

        def step(state, data):
            return self._train_step(state, data, stage)

        if not self.run_eagerly and self.jit_compile:
            shardings = None
            if keras.distribution.distribution() is not None:
                groups = self._train_groups()
                shardings = (None, tuple([v.value.sharding for v in g] for g in groups))
            step = jax.jit(step, donate_argnums=0, out_shardings=shardings)
        count = self.steps_per_execution

        def train_function(state, iterator):
            logs, state = step(state, next(iterator))
            for _ in range(count - 1):
                try:
                    data = next(iterator)
                except StopIteration:
                    break
                logs, state = step(state, data)
            return logs, state

        return train_function
