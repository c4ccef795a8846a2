"""The TensorFlow stages of `keras_aux.maxl.MAXL`: tapes over the networks'
calls, the second-order term from an outer tape around the inner gradient,
and every gradient summed over `tf.distribute` replicas before a non-linear
use (`keras_aux.models.distribution`), so a `MirroredStrategy` run matches one
device on the global batch. Runs under XLA (``jit_compile=True``).

Reference: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with
Meta Auxiliary Learning", NeurIPS; docs/maxl.md.
"""

import tensorflow as tf

from keras_aux import censoring as censoring_lib
from keras_aux.losses.focal import EPSILON
from keras_aux.models import distribution


class TensorFlowMAXLTrainer:
    """MAXL's stages and steps written for TensorFlow (a mixin before `keras.Model`)."""

    def _state_scope(self):
        return self.distribute_strategy.scope()

    def _held_state(self):
        """None: TensorFlow steps update both optimizers' variables in place."""
        return []

    def _generator_optimizer_built(self):
        """Nothing to do: TensorFlow steps update the optimizers' variables in place."""

    def _replica_share(self, value):
        return distribution.scale_loss(value)

    def _global_value(self, value):
        return distribution.unscale_loss(value)

    def _entropy(self, labels):
        """``(H, surrogate)``: ``H`` of the global batch (the batch mean of the
        generated labels averaged over replicas), and this replica's term whose
        gradients, summed over replicas by the optimizer, are ``∇θ2 H``.

        ``∇θ2 H = (∂q̄/∂θ2)ᵀ u`` with ``u = log(q̄ + ε) + q̄ / (q̄ + ε)``; the
        surrogate ``⟨q̄_r, u⟩ / R`` needs no gradient through a collective op.
        """
        local = tf.reduce_mean(labels, axis=0)
        replicas = distribution.num_replicas()
        mean = tf.stop_gradient(local)
        if replicas > 1:
            mean = distribution.all_reduce_sum([mean])[0] / replicas
        entropy = tf.reduce_sum(mean * tf.math.log(mean + EPSILON))
        slope = tf.math.log(mean + EPSILON) + mean / (mean + EPSILON)
        return entropy, tf.reduce_sum(local * slope) / replicas

    def _train_losses(self, x, y, labels, training=True):
        """``(L_pri, L_aux, primary probabilities, auxiliary probabilities)`` at θ1."""
        primary, auxiliary = self._split(self.multitask_network(x, training=training))
        return self._focal(y, primary), self._focal(labels, auxiliary), primary, auxiliary

    def _functional_forward(self, values, x):
        """The multi-task network with its trainable weights replaced by
        ``values`` (BatchNorm on batch statistics; moving averages untouched)."""
        net = self.multitask_network
        non_trainable = [v.value for v in net.non_trainable_variables]
        outputs, _ = net.stateless_call(values, non_trainable, x, training=True)
        return self._split(outputs)

    # ---------------------------------------------------------------- stages
    def apply_gradients(self, optimizer, grads, variables, all_reduced):
        """One step of ``optimizer`` (see `distribution.apply_gradients`)."""
        distribution.apply_gradients(optimizer, grads, variables, all_reduced)

    def stage_one(self, x, y):
        """Updates θ1 on L_pri + L_aux with the generated labels held fixed."""
        trackers = self._trackers
        labels = tf.stop_gradient(self._generate(x, y, training=True))
        theta1 = self.multitask_network.trainable_variables
        with tf.GradientTape(persistent=self.track_gradient_cosine) as tape:
            l_pri, l_aux, primary, _ = self._train_losses(x, y, labels)
            total = l_pri + self.auxiliary_weight * l_aux
        if self.track_gradient_cosine:
            # Both lists in one all-reduce.
            both = distribution.all_reduce_sum(
                tape.gradient(l_pri, theta1) + tape.gradient(l_aux, theta1)
            )
            g_pri, g_aux = both[: len(theta1)], both[len(theta1) :]
            del tape
            # Heads get a None gradient from the other task: the cosine is
            # over the shared weights only.
            trackers.cosine.update_state(censoring_lib.cosine_similarity(g_pri, g_aux))
            grads = [
                None
                if p is None and a is None
                else (0 if p is None else p) + (0 if a is None else self.auxiliary_weight * a)
                for p, a in zip(g_pri, g_aux)
            ]
            self.apply_gradients(self.optimizer, grads, theta1, all_reduced=True)
        else:
            self.apply_gradients(
                self.optimizer, tape.gradient(total, theta1), theta1, all_reduced=False
            )
        self._update_metrics(y, primary, l_pri, l_aux, labels, self._entropy(labels)[0])

    def stage_two(self, x, y):
        """Updates θ2 on L_pri(θ1⁺) + w · H (second or first order)."""
        grads, meta_loss, losses = self.meta_gradients(x, y)
        self.apply_gradients(
            self.generator_optimizer,
            grads,
            self.label_generator.trainable_variables,
            all_reduced=False,
        )
        self._update_metrics(y, *losses)
        self._trackers.primary_loss_after_step.update_state(distribution.unscale_loss(meta_loss))

    def meta_gradients(self, x, y):
        """θ2's gradient of the meta objective, the primary loss after the
        virtual step, and the stage's ``(primary probabilities, L_pri, L_aux,
        labels, H)`` (for the metrics); applies nothing."""
        if self.order == 2:
            return self._second_order_gradients(x, y)
        return self._first_order_gradients(x, y)

    def _second_order_gradients(self, x, y):
        """Exact: ``∇θ2 L_pri(θ1 − α g(θ2)) = −α J_g(θ2)ᵀ v``, ``v = ∇L_pri(θ1⁺)``.

        The outer tape records the inner gradient ``g`` (the second-order
        part); ``v`` comes from a functional forward at θ1⁺. The
        vector-Jacobian product is taken as the gradient of ``−α⟨g, v⟩`` with
        ``v`` held fixed, which is the same number as differentiating through
        the virtual step and keeps every collective op out of the backward pass.
        """
        theta1 = self.multitask_network.trainable_variables
        theta2 = self.label_generator.trainable_variables
        alpha = self._inner_learning_rate()
        with tf.GradientTape() as outer:
            labels = self._generate(x, y, training=True)
            with tf.GradientTape() as inner:
                l_pri, l_aux, primary, _ = self._train_losses(x, y, labels)
                total = l_pri + self.auxiliary_weight * l_aux
            # Taken inside `outer`: the inner gradient stays differentiable in θ2.
            local = inner.gradient(total, theta1)
            with outer.stop_recording():
                grads = distribution.all_reduce_sum(local)
                fast = [v.value if g is None else v - alpha * g for v, g in zip(theta1, grads)]
                with tf.GradientTape() as fast_tape:
                    fast_tape.watch(fast)
                    primary_fast, _ = self._functional_forward(fast, x)
                    meta_loss = self._focal(y, primary_fast)
                slopes = distribution.all_reduce_sum(fast_tape.gradient(meta_loss, fast))
            entropy, entropy_term = self._entropy(labels)
            products = [
                tf.reduce_sum(g * tf.stop_gradient(s))
                for g, s in zip(local, slopes)
                if g is not None and s is not None
            ]
            surrogate = -alpha * tf.add_n(products) + self.entropy_weight * entropy_term
        losses = (primary, l_pri, l_aux, labels, entropy)
        return outer.gradient(surrogate, theta2), meta_loss, losses

    def _first_order_gradients(self, x, y):
        theta1 = self.multitask_network.trainable_variables
        theta2 = self.label_generator.trainable_variables
        alpha = self._inner_learning_rate()
        with tf.GradientTape() as generator_tape:
            labels = self._generate(x, y, training=True)
            fixed = tf.stop_gradient(labels)
            with tf.GradientTape() as tape:
                l_pri, l_aux, primary, _ = self._train_losses(x, y, fixed)
                total = l_pri + self.auxiliary_weight * l_aux
            grads = distribution.all_reduce_sum(tape.gradient(total, theta1))
            fast = self._virtual_sgd_step([v.value for v in theta1], grads, alpha)
            with tf.GradientTape() as fast_tape:
                fast_tape.watch(fast)
                primary_fast, _ = self._functional_forward(fast, x)
                meta_loss = self._focal(y, primary_fast)
            with generator_tape.stop_recording():
                direction = distribution.all_reduce_sum(fast_tape.gradient(meta_loss, fast))
            direction = [
                tf.zeros_like(f) if d is None else tf.stop_gradient(d)
                for f, d in zip(fast, direction)
            ]
            epsilon = 0.01 / (tf.linalg.global_norm(direction) + 1e-12)
            values = [v.value for v in theta1]
            plus = [v + epsilon * d for v, d in zip(values, direction)]
            minus = [v - epsilon * d for v, d in zip(values, direction)]
            # Only L_aux depends on θ2 (through the labels), and linearly: the
            # two perturbed forwards need no backward pass through θ1.
            _, aux_plus = self._functional_forward(plus, x)
            _, aux_minus = self._functional_forward(minus, x)
            difference = self._focal(labels, tf.stop_gradient(aux_plus)) - self._focal(
                labels, tf.stop_gradient(aux_minus)
            )
            entropy, entropy_term = self._entropy(labels)
            surrogate = (
                -alpha * self.auxiliary_weight * difference / (2.0 * epsilon)
                + self.entropy_weight * entropy_term
            )
        losses = (primary, l_pri, l_aux, labels, entropy)
        return generator_tape.gradient(surrogate, theta2), meta_loss, losses

    # ------------------------------------------------------------ the steps
    def train_step(self, data):
        """Stage 1 or stage 2 (paper schedule), or stage 1 then every k-th
        step stage 2 on the same batch (interleaved)."""
        x, y = self._unpack(data)
        if self.schedule == "epoch":
            # The stage is fixed per epoch: `make_train_function` keeps one
            # traced function per stage, so no step carries the other's work.
            if self.stage == 1:
                self.stage_one(x, y)
            else:
                self.stage_two(x, y)
        else:
            self.stage_one(x, y)
            if self.stage2_every == 1:
                self.stage_two(x, y)
            else:

                def run_stage_two():
                    self.stage_two(x, y)
                    return tf.constant(True)

                tf.cond(
                    tf.equal(self._step_counter.value % self.stage2_every, 0),
                    run_stage_two,
                    lambda: tf.constant(False),
                )
            self._step_counter.assign_add(1)
        return self._stage_logs()

    def test_step(self, data):
        """Primary focal loss and accuracy (and compiled metrics) of the multi-task
        network, and the collapse diagnostics of the labels the generator assigns
        to these examples in inference mode (``auxiliary_usage``, ``auxiliary_entropy``).

        The diagnostics cost one forward pass of the generator per evaluated
        batch; under ``fit`` they describe the generator as it is at the end of
        the epoch (the validation pass), on held-out data.
        """
        x, y = self._unpack(data)
        return self._test_batch(x, y)

    def make_train_function(self, force=False):
        """One traced function per stage for the paper schedule (see `train_step`)."""
        if self.schedule != "epoch":
            super().make_train_function(force)
            return self.train_function
        if self.train_function is not None and not force:
            return self.train_function
        functions = {}
        for stage in (1, 2):
            super().make_train_function(force=True)
            functions[stage] = self.train_function

        def train_function(iterator):
            return functions[self.stage](iterator)

        self.train_function = train_function
        return train_function
