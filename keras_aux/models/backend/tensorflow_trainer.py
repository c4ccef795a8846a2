"""The TensorFlow train step of `keras_aux.AuxiliaryTrainer`: one persistent
tape over the forward passes, one backward pass per task, per-task gradients
summed over `tf.distribute` replicas before (non-linear) censoring, and one
optimizer step. Runs under XLA (``jit_compile=True``) and `MirroredStrategy`.

Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224). See docs/censoring.md.
"""

import contextlib

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

    def train_step(self, data):
        """One forward pass per batch, per-task gradients, censoring, one optimizer step."""
        batches = self._task_batches(data, training=True)
        needed = self._gradients_needed()
        with tf.GradientTape(persistent=needed == "tasks") as tape:
            task_losses, predictions = self._forward(batches, training=True)
            objectives = self.step_objectives(task_losses, needed)
        variables = self.trainable_variables
        primary = auxiliary = applied = None
        if needed == "total":
            # Linear and unmeasured: exactly the plain Keras step.
            grads = tape.gradient(objectives[0], variables)
            distribution.apply_gradients(self.optimizer, grads, variables, all_reduced=False)
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
            update, applied = self.censored_update(primary, auxiliary)
            distribution.apply_gradients(self.optimizer, update, variables, all_reduced=True)
        return self.step_logs(batches, task_losses, predictions, primary, auxiliary, applied)

    def test_step(self, data):
        """Per-task losses and compiled metrics, without gradients; auxiliary
        tasks without targets are left out."""
        return self.evaluate_batches(data)
