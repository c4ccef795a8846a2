"""The TensorFlow train step of `keras_aux.AuxiliaryTrainer`: one persistent
tape over the forward passes, one backward pass per task, per-task gradients
summed over `tf.distribute` replicas before (non-linear) censoring, and one
optimizer step — or, on the forward gradient path, a fixed number of passes
whatever the number of tasks (`_forward_path_update`). Runs under XLA
(``jit_compile=True``) and `MirroredStrategy`.

Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224). See docs/censoring.md.
"""

import contextlib
import functools

import tensorflow as tf

from keras_aux.models import distribution
from keras_aux.models.base_trainer import BaseAuxiliaryTrainer


class TensorFlowAuxiliaryTrainer(BaseAuxiliaryTrainer):
    """`BaseAuxiliaryTrainer` with the step written for TensorFlow."""

    def _state_scope(self):
        return self.distribute_strategy.scope()

    def _eager_state_scope(self):
        stack = contextlib.ExitStack()
        stack.enter_context(tf.init_scope())
        stack.enter_context(self.distribute_strategy.scope())
        return stack

    def _replica_share(self, value):
        return distribution.scale_loss(value)

    def _global_value(self, value):
        return distribution.unscale_loss(value)

    def _replica_mean(self, value):
        return distribution.replica_mean(value)

    def train_step(self, data):
        """One forward pass per batch, per-task gradients, censoring, one optimizer step."""
        batches = self._task_batches(data, training=True)
        meta_batch = self._meta_batch(data)
        implicit_terms = None
        if meta_batch is not None and self._censor_needs_meta_batch():
            implicit_terms = functools.partial(self._implicit_terms, batches, meta_batch)
        elif meta_batch is not None:
            self.advance_meta_weighting(functools.partial(self._meta_products, batches, meta_batch))
        needed = self._gradients_needed()
        self.snapshot_loss_weighting_parameters()  # logged as the step began
        with tf.GradientTape(persistent=needed in ("tasks", "forward")) as tape:
            task_losses, predictions = self._forward(batches, training=True)
            objectives = self.step_objectives(task_losses, needed)
        variables = self.trainable_variables
        primary = auxiliary = applied = None
        if needed == "total":
            # Linear and unmeasured: exactly the plain Keras step.
            grads = tape.gradient(objectives[0], variables)
            distribution.apply_gradients(self.optimizer, grads, variables, all_reduced=False)
        elif needed == "forward":
            update, applied = self._forward_path_update(tape, objectives, variables)
            del tape
            distribution.apply_gradients(self.optimizer, update, variables, all_reduced=True)
        else:
            # Dense (embedding gradients arrive as `tf.IndexedSlices`), so
            # censoring and the cosine metric read tensors.
            grads = [
                [distribution.dense(g) for g in tape.gradient(o, variables)] for o in objectives
            ]
            del tape
            flat = distribution.all_reduce_sum([g for task in grads for g in task])
            primary, *auxiliary = [
                flat[i * len(variables) : (i + 1) * len(variables)] for i in range(len(grads))
            ]
            update, applied = self.censored_update(primary, auxiliary, implicit_terms)
            distribution.apply_gradients(self.optimizer, update, variables, all_reduced=True)
        return self.step_logs(batches, task_losses, predictions, primary, auxiliary, applied)

    def _meta_products(self, batches, meta_batch, weights, learning_rate):
        """Auto-λ's ``h_i = ⟨∇L_i(θ), v⟩``, ``v = ∇L_meta(θ′)`` at the look-ahead
        ``θ′ = θ − α g``, ``g = Σ_i λ_i ∇L_i(θ)``, exactly: ``g`` is taken under
        a second tape that watches λ, whose gradient along ``v`` is then
        ``J v``, every task's derivative along ``v`` at once (as
        `_forward_path_update`), or a central difference
        (`lookahead_products`). Every forward pass reads the variables through
        a `keras.StatelessScope`, so none of them changes."""
        variables = list(self.trainable_variables)
        theta = [tf.convert_to_tensor(v.value) for v in variables]
        weights = tf.convert_to_tensor(weights, tf.float32)
        # Mixed precision: every backward pass runs on loss-scaled values (`meta_loss_scale`).
        scale = self.meta_loss_scale()
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(weights)
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(theta)
                losses = self.lookahead_losses(list(zip(variables, theta)), batches)
            g = inner.gradient(losses, theta, output_gradients=weights * scale)
            g = [None if d is None else distribution.dense(d) / scale for d in g]
        # Under a strategy, g, v and h are this replica's: θ′ and h need the global ones.
        lookahead = self.lookahead_parameters(theta, distribution.all_reduce_mean(g), learning_rate)
        with tf.GradientTape(watch_accessed_variables=False) as meta_tape:
            meta_tape.watch(lookahead)
            meta_loss = self.lookahead_meta_loss(list(zip(variables, lookahead)), meta_batch)
        v = distribution.all_reduce_mean(
            [
                None if u is None else distribution.dense(u) / scale
                for u in meta_tape.gradient(meta_loss, lookahead, output_gradients=scale)
            ]
        )

        def exact():
            scaled = [None if u is None else u * scale for u in v]
            (products,) = distribution.all_reduce_mean(
                [_derivatives_along(outer, g, weights, scaled) / scale]
            )
            return products

        return self.lookahead_products(theta, v, batches, [], exact)

    def _implicit_terms(self, batches, meta_batch, weights, shared):
        """AuxiNash's hyper-step terms over the variables of index in ``shared``
        (the others held at their values): ``∇_W L_meta`` on the meta batch,
        and ``v ↦ H v``, ``H`` the Hessian of ``Σᵢ wᵢ Lᵢ`` on the step's
        batches, by reverse over reverse (the gradient under a persistent
        tape, differentiated along ``v``). Every forward pass reads the
        variables through a `keras.StatelessScope`, so none of them changes.
        Refused under a strategy with several replicas."""
        if distribution.num_replicas() > 1:
            raise ValueError(
                f"censoring={self.censor!r} does not support a tf.distribute strategy with "
                f"{distribution.num_replicas()} replicas: its hyper-step differentiates the "
                "model on one device."
            )
        variables = list(self.trainable_variables)
        theta = [tf.convert_to_tensor(v.value) for v in variables]
        shared_values = [theta[i] for i in shared]

        def mapping(values):
            current = list(theta)
            for i, value in zip(shared, values):
                current[i] = value
            return list(zip(variables, current))

        with tf.GradientTape(watch_accessed_variables=False) as meta_tape:
            meta_tape.watch(shared_values)
            meta_loss = self.lookahead_meta_loss(mapping(shared_values), meta_batch)
        meta_gradient = _dense_or_zeros(meta_tape.gradient(meta_loss, shared_values), shared_values)
        weights = tf.convert_to_tensor(weights, tf.float32)
        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as outer:
            outer.watch(shared_values)
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(shared_values)
                losses = self.lookahead_losses(mapping(shared_values), batches)
                objective = tf.reduce_sum(weights * losses)
            gradient = _dense_or_zeros(inner.gradient(objective, shared_values), shared_values)

        def hvp(vector):
            products = outer.gradient(gradient, shared_values, output_gradients=vector)
            return _dense_or_zeros(products, shared_values)

        return meta_gradient, hvp

    def _forward_path_update(self, tape, objectives, variables):
        """`scalar_censored_update` from a fixed number of passes over the tape.

        The primary gradient is taken as ``Jᵀu`` (``u = (1, 0, …, 0)``, ``J``
        the Jacobian of the task objectives) under a second tape that watches
        ``u``; the gradient of ``⟨Jᵀu, t⟩`` with respect to ``u`` is then
        ``J t``, every task's derivative along ``t`` at once (forward mode by
        reverse over reverse: the forward pass is not repeated). Which
        variables each task reaches is read once, from its gradient's
        None-ness on the first step (kept for the compiled model): under
        `tf.function` those gradients feed nothing and are pruned; run eagerly
        they cost one backward pass per task on that step only.
        """
        if self._tasks.reached is None:
            self._tasks.reached = [
                {i for i, g in enumerate(tape.gradient(o, variables)) if g is not None}
                for o in objectives
            ]
        reached = self._tasks.reached
        selector = tf.constant([1.0] + [0.0] * (len(objectives) - 1), objectives[0].dtype)
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(selector)
            # Per replica: the directional derivatives are reduced after.
            along = tape.gradient(objectives, variables, output_gradients=tf.unstack(selector))
            along = [
                None if i not in reached[0] else distribution.dense(g) for i, g in enumerate(along)
            ]
        primary = distribution.all_reduce_sum(along)

        def directional(tangent):
            derivatives = _derivatives_along(outer, along, selector, tangent)
            (derivatives,) = distribution.all_reduce_sum([derivatives])
            return tf.unstack(derivatives)[1:]

        def reweighted(cotangent):
            cotangent = [tf.cast(u, o.dtype) for u, o in zip(cotangent, objectives)]
            # Every weight waits for all: the auxiliary heads' part of this
            # backward pass (constant weights λ_k) would otherwise run early,
            # beside the primary gradient's (2.9 against 2.4 MiB, K = 16 mlp).
            with tf.control_dependencies(cotangent):
                cotangent = [tf.identity(u) for u in cotangent]
            grads = tape.gradient(objectives, variables, output_gradients=cotangent)
            return distribution.all_reduce_sum([distribution.dense(g) for g in grads])

        return self.scalar_censored_update(primary, reached[1:], directional, reweighted)

    def test_step(self, data):
        """Per-task losses and compiled metrics, without gradients; auxiliary
        tasks without targets are left out."""
        return self.evaluate_batches(data)


def _derivatives_along(outer, gradients, weights, tangent):
    """``J t``: every task's derivative along ``tangent``, from ``gradients`` =
    ``Jᵀ weights`` taken under the tape ``outer`` that watches ``weights``
    (forward mode by reverse over reverse: the gradient of ``⟨Jᵀw, t⟩`` in
    ``w``). A variable without a gradient or a tangent adds nothing."""
    present = [(g, t) for g, t in zip(gradients, tangent) if g is not None and t is not None]
    if not present:
        return tf.zeros_like(weights)
    return outer.gradient(
        [g for g, _ in present], weights, output_gradients=[t for _, t in present]
    )


def _dense_or_zeros(gradients, like):
    """Dense gradients, zeros where a tape gave None (a variable a loss does not reach)."""
    return [
        tf.zeros_like(v) if g is None else distribution.dense(g) for g, v in zip(gradients, like)
    ]
