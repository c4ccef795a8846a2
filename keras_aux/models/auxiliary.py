"""`AuxiliaryModel`: a functional Keras model with one primary output and
auxiliary outputs, trained by censoring each auxiliary gradient.

References:
    Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
    gradient" (projection, moving average of the primary gradient).
    Du et al. (2018), "Adapting Auxiliary Losses Using Gradient Similarity",
    arXiv:1812.02224 (unweighted / weighted cosine).
"""

import keras
import tensorflow as tf

# What Keras itself uses: the wrapper around function losses given by name
# (rank alignment, reduction, distribution scaling) and the per-replica
# loss scaling of its own train step.
from keras.src.losses.loss import scale_loss_for_distribution, unscale_loss_for_distribution
from keras.src.losses.losses import LossFunctionWrapper

from keras_aux import censoring as censoring_lib
from keras_aux.models.task_data import TaskData
from keras_aux.models import distribution


def _resolve_loss(identifier, task):
    if identifier is None:
        raise ValueError(f"No loss given for output {task!r}.")
    loss = keras.losses.get(identifier)
    if loss is None:
        raise ValueError(f"Unknown loss {identifier!r} for output {task!r}.")
    if isinstance(loss, keras.losses.Loss):
        return loss
    return LossFunctionWrapper(loss, name=getattr(loss, "__name__", "loss"))


class _CompiledTasks:
    """What `compile` resolved: one plain object, so Keras does not track it
    as model state (recompiling replaces it; nothing leaks into `weights`)."""

    def __init__(self, losses, weights, mode, granularity, ema, track_cosine, trackers, cosines):
        self.losses = losses
        self.weights = weights
        self.mode = mode
        self.granularity = granularity
        self.ema = ema
        self.track_cosine = track_cosine
        self.loss_trackers = trackers
        self.cosine_trackers = cosines


@keras.saving.register_keras_serializable(package="keras_aux")
class AuxiliaryModel(keras.Model):
    """A functional model with one primary output and N auxiliary outputs.

    Build it like a functional model whose outputs are a dict of named
    tensors, name the primary one, and compile with per-output losses; the
    auxiliary losses' weights are the λ's. Each step runs one forward pass
    under one tape, takes the primary gradient ``p`` (primary loss plus the
    model's regularisation losses) and each auxiliary gradient ``a_k``, and
    applies ``p + Σ_k λ_k · G(a_k, m)`` with the compiled censoring mode
    (see `keras_aux.censoring`).

    Example:

    ```python
    x = keras.Input((20,), name="features")
    h = keras.layers.Dense(64, activation="relu")(x)
    model = AuxiliaryModel(
        x,
        {"label": keras.layers.Dense(3, activation="softmax")(h),
         "reconstruction": keras.layers.Dense(20)(h)},
        primary="label",
        input_targets={"reconstruction": "features"},
    )
    model.compile(
        optimizer="adam",
        loss={"label": "sparse_categorical_crossentropy", "reconstruction": "mae"},
        loss_weights={"reconstruction": 10.0},
        censoring="projection",
    )
    model.fit(features, labels)  # the reconstruction target is the input
    ```

    Args:
        inputs: functional inputs (tensor, list or dict).
        outputs: dict ``{task_name: tensor}``, or a list whose task names are
            the output layers' names.
        name: model name.
        primary: the name of the primary output.
        input_targets: optional ``{output_name: input_name}``: those outputs
            are trained to reproduce that model input (before any layer of the
            model, e.g. before input dropout), so ``y`` need not repeat ``x``.
            ``input_name`` may be None when the model has a single input.
            A target given explicitly in ``y`` takes precedence (denoising).

    Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224).
    """

    def __init__(self, inputs, outputs, name=None, *, primary=None, input_targets=None, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        if isinstance(outputs, dict):
            task_names = list(outputs.keys())
        else:
            task_names = list(self.output_names)
        if primary is None:
            raise ValueError(
                f"`primary` must name the primary output; the outputs are {task_names}."
            )
        if primary not in task_names:
            raise ValueError(
                f"`primary={primary!r}` is not an output; the outputs are {task_names}."
            )
        if len(task_names) < 2:
            raise ValueError(
                "An AuxiliaryModel needs at least one auxiliary output besides the "
                f"primary {primary!r}; use keras.Model for a single-output model."
            )
        self.task_names = task_names
        self.primary = primary
        self.auxiliary_names = [t for t in task_names if t != primary]
        self.input_targets = self._validate_input_targets(input_targets or {})
        self._tasks = None

    # ------------------------------------------------------------------ config
    def _validate_input_targets(self, input_targets):
        input_names = [t.name for t in self.inputs]
        resolved = {}
        for output_name, input_name in dict(input_targets).items():
            if output_name not in self.task_names:
                raise ValueError(
                    f"`input_targets` names output {output_name!r}, which is not an "
                    f"output; the outputs are {self.task_names}."
                )
            if output_name == self.primary:
                raise ValueError("The primary output cannot take its target from the inputs.")
            if input_name is None:
                if len(input_names) != 1:
                    raise ValueError(
                        f"`input_targets[{output_name!r}]` is None but the model has "
                        f"{len(input_names)} inputs {input_names}: name one."
                    )
                input_name = input_names[0]
            if input_name not in input_names:
                raise ValueError(
                    f"`input_targets[{output_name!r}] = {input_name!r}` is not an input; "
                    f"the inputs are {input_names}."
                )
            resolved[output_name] = input_name
        return resolved

    def get_config(self):
        config = super().get_config()
        config["primary"] = self.primary
        config["input_targets"] = dict(self.input_targets)
        return config

    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        weighted_metrics=None,
        censoring="multitask",
        granularity="global",
        ema_alpha=1.0,
        track_gradient_cosine=True,
        **kwargs,
    ):
        """Configures training, as `keras.Model.compile`, plus censoring.

        Args:
            optimizer, metrics, weighted_metrics, **kwargs: as in
                `keras.Model.compile` (``jit_compile``, ``run_eagerly``,
                ``steps_per_execution``...). ``metrics`` dicts are keyed by
                task name.
            loss: dict ``{task_name: loss}`` covering every output, or one
                loss for all outputs.
            loss_weights: dict ``{task_name: weight}``; auxiliary weights are
                the λ's (default 1), the primary weight scales the primary loss
                (default 1).
            censoring: one of `keras_aux.censoring.MODES`; ``"multitask"`` is
                the ordinary λ-weighted sum.
            granularity: ``"global"`` or ``"per_variable"``.
            ema_alpha: smoothing constant α in (0, 1] of the moving average of
                the primary gradient used as the censoring reference; 1 means
                the current primary gradient.
            track_gradient_cosine: log ``<aux>_cosine``, the cosine between
                the primary and each auxiliary gradient over the variables
                both reach. With ``censoring="multitask"`` and this False,
                the step takes one backward pass (the plain Keras cost);
                otherwise one per task.
        """
        losses = self._resolve_losses(loss)
        weights = self._resolve_loss_weights(loss_weights)
        censoring_lib.validate_mode(censoring)
        censoring_lib.validate_granularity(granularity)
        ema_alpha = censoring_lib.validate_alpha(ema_alpha)
        super().compile(
            optimizer=optimizer,
            loss=None,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            **kwargs,
        )
        with self.distribute_strategy.scope():
            ema = None
            if ema_alpha < 1.0:
                ema = censoring_lib.GradientEMA(ema_alpha)
                ema.build(self.trainable_variables)
            trackers = {t: keras.metrics.Mean(name=f"{t}_loss") for t in self.task_names}
            cosines = {}
            if track_gradient_cosine:
                cosines = {t: keras.metrics.Mean(name=f"{t}_cosine") for t in self.auxiliary_names}
        self._tasks = _CompiledTasks(
            losses, weights, censoring, granularity, ema, track_gradient_cosine, trackers, cosines
        )
        # Keras saves `_compile_config` in `.keras` files; record our own args.
        self._compile_config.config.update(
            loss=loss,
            loss_weights=loss_weights,
            censoring=censoring,
            granularity=granularity,
            ema_alpha=ema_alpha,
            track_gradient_cosine=track_gradient_cosine,
        )

    def compile_from_config(self, config):
        """Recompiles from a `.keras` file's compile config (see `compile`)."""
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _resolve_losses(self, loss):
        if loss is None:
            raise ValueError(
                f"`loss` is required: a dict with one loss per output {self.task_names}."
            )
        if not isinstance(loss, dict):
            return {t: _resolve_loss(loss, t) for t in self.task_names}
        unknown = sorted(set(loss) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"`loss` names unknown outputs {unknown}; the outputs are {self.task_names}."
            )
        missing = [t for t in self.task_names if t not in loss]
        if missing:
            raise ValueError(f"`loss` gives no loss for outputs {missing}.")
        return {t: _resolve_loss(loss[t], t) for t in self.task_names}

    def _resolve_loss_weights(self, loss_weights):
        loss_weights = dict(loss_weights or {})
        unknown = sorted(set(loss_weights) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"`loss_weights` names unknown outputs {unknown}; the outputs are {self.task_names}."
            )
        weights = {}
        for t in self.task_names:
            w = loss_weights.get(t, 1.0)
            try:
                w = float(w)
            except (TypeError, ValueError):
                raise ValueError(f"`loss_weights[{t!r}]` must be a number; got {w!r}.") from None
            if not w >= 0.0:
                raise ValueError(f"`loss_weights[{t!r}]` must be >= 0; got {w}.")
            weights[t] = w
        return weights

    @property
    def metrics(self):
        metrics = super().metrics
        if not self.compiled or self._tasks is None:
            return metrics
        own = list(self._tasks.loss_trackers.values()) + list(self._tasks.cosine_trackers.values())
        # Order: total loss, per-task losses, cosines, then compiled metrics.
        return metrics[:1] + own + metrics[1:]

    # --------------------------------------------------------------- the step
    def _outputs_by_task(self, y_pred):
        if isinstance(y_pred, dict):
            return y_pred
        return dict(zip(self.task_names, keras.tree.flatten(y_pred)))

    def _input_by_name(self, x, input_name):
        if isinstance(x, dict):
            return x[input_name]
        if isinstance(x, (list, tuple)):
            return x[[t.name for t in self.inputs].index(input_name)]
        return x

    def _targets_by_task(self, x, y, tasks=None, required=True):
        """Targets of ``tasks`` (default: all) from ``y`` and `input_targets`.

        A non-dict ``y`` is the target of the first task of ``tasks`` (the
        primary output by default). Missing targets raise when ``required``,
        else the task is left out.
        """
        tasks = list(self.task_names if tasks is None else tasks)
        if y is None:
            targets = {}
        elif isinstance(y, dict):
            unknown = sorted(set(y) - set(self.task_names))
            if unknown:
                raise ValueError(
                    f"`y` names unknown outputs {unknown}; the outputs are {self.task_names}."
                )
            targets = dict(y)
        elif isinstance(y, (list, tuple)):
            if len(y) != len(self.task_names):
                raise ValueError(
                    f"`y` is a sequence of {len(y)} targets but the model has outputs "
                    f"{self.task_names}; pass a dict keyed by output name."
                )
            targets = dict(zip(self.task_names, y))
        else:
            targets = {tasks[0]: y}
        for output_name, input_name in self.input_targets.items():
            if output_name in tasks and targets.get(output_name) is None:
                targets[output_name] = self._input_by_name(x, input_name)
        missing = [t for t in tasks if targets.get(t) is None]
        if missing and required:
            raise ValueError(
                f"No target for outputs {missing}: pass them in `y` (a dict keyed by "
                "output name) or declare `input_targets` for reconstruction outputs."
            )
        return {t: targets[t] for t in tasks if targets.get(t) is not None}

    def _sample_weight_for(self, sample_weight, task):
        if isinstance(sample_weight, dict):
            return sample_weight.get(task)
        return sample_weight

    def compute_task_losses(self, targets, y_pred, sample_weight=None):
        """Unweighted losses of the tasks in ``targets``: ``{task_name: scalar}``.

        ``targets`` maps output names to targets (resolved, e.g. by the steps
        from ``y`` and `input_targets`). Under a distribution strategy each
        value is this replica's share (losses divide by the number of
        replicas, as Keras losses do).
        """
        if self._tasks is None:
            raise ValueError("Call `compile()` before training or evaluating the model.")
        outputs = self._outputs_by_task(y_pred)
        return {
            t: tf.cast(
                self._tasks.losses[t](
                    target, outputs[t], self._sample_weight_for(sample_weight, t)
                ),
                "float32",
            )
            for t, target in targets.items()
        }

    def _regularization_loss(self):
        if not self.losses:
            return None
        return scale_loss_for_distribution(tf.cast(tf.add_n(self.losses), "float32"))

    def _primary_objective(self, task_losses):
        """Weighted primary loss plus the regularisation losses."""
        objective = self._tasks.weights[self.primary] * task_losses[self.primary]
        regularization = self._regularization_loss()
        return objective if regularization is None else objective + regularization

    def _total_loss(self, task_losses):
        """The multitask objective: what ``"multitask"`` censoring descends."""
        total = self._primary_objective(task_losses)
        for t in self.auxiliary_names:
            if t in task_losses:
                total = total + self._tasks.weights[t] * task_losses[t]
        return total

    def task_objectives(self, task_losses):
        """What each gradient differentiates (call it under the tape): the
        primary objective, then each unweighted auxiliary loss (λ is applied
        by `combine`), all loss-scaled for mixed precision."""
        objectives = [self._primary_objective(task_losses)]
        objectives += [task_losses[t] for t in self.auxiliary_names]
        return [self.optimizer.scale_loss(o) for o in objectives]

    def compute_task_gradients(self, tape, objectives, variables):
        """Primary and auxiliary gradients from one persistent tape: the
        forward pass is shared, one backward pass per task."""
        grads = [tape.gradient(o, variables) for o in objectives]
        return grads[0], grads[1:]

    def all_reduce_gradients(self, primary, auxiliary):
        """Sums each task's gradients over replicas, before (non-linear) censoring."""
        reduced = iter(
            distribution.all_reduce_sum([g for grads in [primary, *auxiliary] for g in grads])
        )
        lists = [[next(reduced) for _ in grads] for grads in [primary, *auxiliary]]
        return lists[0], lists[1:]

    def combine_gradients(self, primary, auxiliary):
        """``p + Σ_k λ_k · G(a_k, m)`` with the compiled censoring settings."""
        tasks = self._tasks
        weights = [tasks.weights[t] for t in self.auxiliary_names]
        return censoring_lib.combine(
            primary, auxiliary, weights, tasks.mode, tasks.granularity, ema=tasks.ema
        )

    def apply_gradients(self, grads, variables, all_reduced=True):
        """One optimizer step (None entries skipped). ``all_reduced``: the
        gradients were already summed over replicas by `all_reduce_gradients`."""
        distribution.apply_gradients(self.optimizer, grads, variables, all_reduced)

    def update_task_metrics(self, task_losses, batch_size, primary=None, auxiliary=None):
        """Updates the total, per-task loss and (when gradients are given) cosine trackers."""
        tasks = self._tasks
        self._loss_tracker.update_state(
            unscale_loss_for_distribution(self._total_loss(task_losses)), sample_weight=batch_size
        )
        for t, value in task_losses.items():
            tasks.loss_trackers[t].update_state(
                unscale_loss_for_distribution(value), sample_weight=batch_size
            )
        if primary is not None:
            for t, grads in zip(self.auxiliary_names, auxiliary):
                if t in tasks.cosine_trackers:
                    tasks.cosine_trackers[t].update_state(
                        censoring_lib.cosine_similarity(primary, grads)
                    )

    def _logs(self, training, tasks=None):
        skip = set() if training else {id(m) for m in self._tasks.cosine_trackers.values()}
        skip |= {
            id(m)
            for t, m in self._tasks.loss_trackers.items()
            if tasks is not None and t not in tasks
        }
        return distribution.metric_logs(m for m in self.metrics if id(m) not in skip)

    @staticmethod
    def _batch_size(x):
        return tf.shape(next(t for t in keras.tree.flatten(x) if t is not None))[0]

    def _task_batches(self, data, training):
        """``[(x, targets, sample_weight)]``: one forward pass each.

        Plain ``(x, y[, w])`` data is one batch for every task; `TaskData`
        (see `keras_aux.data.zip_tasks`) gives the primary task its batch and
        every auxiliary task its own. In evaluation, auxiliary targets may be
        missing: those tasks are left out of the losses and logs.
        """
        if not isinstance(data, TaskData):
            x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
            targets = self._targets_by_task(x, y, required=training)
            if self.primary not in targets:
                raise ValueError(f"No target for the primary output {self.primary!r}.")
            return [(x, targets, sample_weight)]
        unknown = sorted(set(data.auxiliary) - set(self.auxiliary_names))
        if unknown:
            raise ValueError(
                f"`TaskData.auxiliary` names {unknown}, which are not auxiliary outputs "
                f"{self.auxiliary_names}."
            )
        missing = [t for t in self.auxiliary_names if t not in data.auxiliary]
        if missing and training:
            raise ValueError(f"`TaskData` has no data for the auxiliary outputs {missing}.")
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data.primary)
        batches = [(x, self._targets_by_task(x, y, [self.primary]), sample_weight)]
        for task, task_data in data.auxiliary.items():
            if not isinstance(task_data, (list, tuple)):
                task_data = (task_data,)
            xa, ya, wa = keras.utils.unpack_x_y_sample_weight(tuple(task_data))
            batches.append((xa, self._targets_by_task(xa, ya, [task]), wa))
        return batches

    def _forward(self, batches, training):
        """Per-task losses over the batches, and what the compiled metrics need."""
        task_losses, predictions = {}, []
        for x, targets, sample_weight in batches:
            y_pred = self(x, training=training)
            task_losses.update(self.compute_task_losses(targets, y_pred, sample_weight))
            predictions.append((targets, y_pred, sample_weight))
        return task_losses, predictions

    def _update_compiled_metrics(self, predictions):
        if self._compile_metrics is None:
            return
        # Compiled metrics follow the primary batch (the first), as in Keras.
        targets, y_pred, sample_weight = predictions[0]
        outputs = self._outputs_by_task(y_pred)
        self._compile_metrics.update_state(targets, {t: outputs[t] for t in targets}, sample_weight)

    def train_step(self, data):
        """One forward pass per batch, per-task gradients, censoring, one optimizer step."""
        batches = self._task_batches(data, training=True)
        # Multitask without the cosine metric is linear in the gradients: one
        # backward pass of the λ-weighted total, exactly the plain Keras step.
        one_pass = self._tasks.mode == censoring_lib.MULTITASK and not self._tasks.track_cosine
        with tf.GradientTape(persistent=not one_pass) as tape:
            task_losses, predictions = self._forward(batches, training=True)
            if one_pass:
                total = self.optimizer.scale_loss(self._total_loss(task_losses))
            else:
                objectives = self.task_objectives(task_losses)
        variables = self.trainable_variables
        if one_pass:
            self.apply_gradients(tape.gradient(total, variables), variables, all_reduced=False)
            primary = auxiliary = None
        else:
            primary, auxiliary = self.compute_task_gradients(tape, objectives, variables)
            del tape
            primary, auxiliary = self.all_reduce_gradients(primary, auxiliary)
            self.apply_gradients(self.combine_gradients(primary, auxiliary), variables)
        self.update_task_metrics(task_losses, self._batch_size(batches[0][0]), primary, auxiliary)
        self._update_compiled_metrics(predictions)
        return self._logs(training=True)

    def test_step(self, data):
        """Per-task losses and compiled metrics, without gradients; auxiliary
        tasks without targets are left out."""
        batches = self._task_batches(data, training=False)
        task_losses, predictions = self._forward(batches, training=False)
        self.update_task_metrics(task_losses, self._batch_size(batches[0][0]))
        self._update_compiled_metrics(predictions)
        return self._logs(training=False, tasks=set(task_losses))

    # ----------------------------------------------------------------- export
    def export(
        self,
        filepath,
        format="tf_saved_model",
        verbose=None,
        input_signature=None,
        outputs="primary",
        **kwargs,
    ):
        """Exports for serving; by default the endpoint returns the primary output only.

        Args:
            filepath: destination directory.
            format: as `keras.Model.export`.
            outputs: ``"primary"`` (the served endpoint ``serve`` returns the
                primary output tensor) or ``"all"`` (every output, as Keras).
        """
        if outputs not in ("primary", "all"):
            raise ValueError(f"`outputs` must be 'primary' or 'all'; got {outputs!r}.")
        if outputs == "all" or format != "tf_saved_model":
            return super().export(
                filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs
            )
        from keras.src.export.export_utils import get_input_signature

        input_signature = input_signature or get_input_signature(self)
        archive = keras.export.ExportArchive()
        archive.track(self)

        def serve(*args):
            return self._outputs_by_task(self(*args, training=False))[self.primary]

        archive.add_endpoint("serve", serve, input_signature)
        archive.write_out(filepath, verbose=bool(verbose) if verbose is not None else True)
