"""The backend-neutral part of censored training: `BaseAuxiliaryTrainer`.

Tasks and their targets, losses and λ's, `compile` and its config, per-task
metrics, the censoring method and its state, class weights, export, and the
pieces of a step written in ``keras.ops``: the forward pass of each task batch,
the task objectives, the censored update and the state it leaves. One small
trainer per backend adds the gradients and the optimizer step
(`keras_aux.models.backend`): TensorFlow with a tape and `tf.distribute`, JAX
with a stateless step over ``jax.vjp``. `keras_aux.AuxiliaryTrainer` is the
one for the current Keras backend, as ``keras.Model`` is built on Keras's own
per-backend trainers.

Each step runs one forward pass per batch, takes the primary gradient ``p``
(primary loss plus the model's regularisation losses) and each auxiliary
gradient ``a_k``, and applies what the compiled censoring method
(`keras_aux.censoring.Censor`) returns, by default ``p + Σ_k λ_k · G(a_k, m)``.

References:
    Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
    gradient" (projection, moving average of the primary gradient).
    Du et al. (2018), "Adapting Auxiliary Losses Using Gradient Similarity",
    arXiv:1812.02224 (unweighted / weighted cosine). See docs/censoring.md.
"""

import contextlib
import functools
import math
import operator
import threading
import warnings

import keras
from keras import ops

from keras_aux import censoring as censoring_lib
from keras_aux import compat
from keras_aux import weighting as weighting_lib
from keras_aux.models import implicit
from keras_aux.models import logs as logs_lib
from keras_aux.models.task_data import TaskData, unwrap_task_data
from keras_aux.models.task_metrics import TaskMetrics, per_task

PER_TASK = "per_task"
FORWARD = "forward"
GRADIENT_PATHS = ("auto", PER_TASK, FORWARD)


def _same_rank(y_true, y_pred):
    """Aligns ranks that differ by a trailing 1 (as Keras does for function losses)."""
    true_rank, pred_rank = len(y_true.shape), len(y_pred.shape)
    if true_rank == pred_rank + 1 and y_true.shape[-1] == 1:
        y_true = keras.ops.squeeze(y_true, -1)
    elif pred_rank == true_rank + 1 and y_pred.shape[-1] == 1:
        y_pred = keras.ops.squeeze(y_pred, -1)
    return y_true, y_pred


@keras.saving.register_keras_serializable(package="keras_aux")
class FunctionLoss(keras.losses.Loss):
    """A loss function given by name (``"mae"``) as a `keras.losses.Loss`:
    reduction, sample weights and distribution scaling come from `Loss`."""

    def __init__(self, fn, name=None, reduction="sum_over_batch_size", dtype=None):
        self.fn = keras.losses.get(fn) if isinstance(fn, str) else fn
        super().__init__(
            name=name or getattr(self.fn, "__name__", "loss"), reduction=reduction, dtype=dtype
        )

    def call(self, y_true, y_pred):
        y_true, y_pred = _same_rank(keras.ops.convert_to_tensor(y_true), y_pred)
        return self.fn(y_true, y_pred)

    def get_config(self):
        config = super().get_config()
        config["fn"] = keras.saving.serialize_keras_object(self.fn)
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["fn"] = keras.saving.deserialize_keras_object(config["fn"])
        return cls(**config)


def _resolve_loss(identifier, task):
    if identifier is None:
        raise ValueError(f"No loss given for output {task!r}.")
    try:
        loss = keras.losses.get(identifier)
    except ValueError as error:
        raise ValueError(f"Unknown loss {identifier!r} for output {task!r}: {error}") from None
    if loss is None:
        raise ValueError(f"Unknown loss {identifier!r} for output {task!r}.")
    if isinstance(loss, keras.losses.Loss):
        return loss
    return FunctionLoss(loss)


class CensorState(keras.metrics.Metric):
    """Holds a censoring method's state as variables: training state, like the
    optimizer's.

    A `keras.metrics.Metric` in form only: Keras threads the variables of a
    model's metrics through every backend's step (the stateless JAX step
    included) and never counts them among the model's weights
    (``count_params``, ``summary``, ``export``). It never resets and logs
    nothing. Keras's saving reaches it through the model's
    ``censor_state_holder`` property, so `.keras` files, ``save_weights``,
    `ModelCheckpoint` and `BackupAndRestore` carry it.
    """

    def __init__(self, name="censor_state"):
        super().__init__(name=name)
        self._held = _Untracked([])

    def assign_structure(self, leaves):
        """Replaces the held variables by new ones with ``leaves`` as values."""
        # Gradients are all-reduced before censoring, so every replica computes
        # the same state.
        self._held.value = [
            keras.Variable(
                leaf, trainable=False, aggregation="only_first_replica", name=f"state_{i}"
            )
            for i, leaf in enumerate(leaves)
        ]

    @property
    def state_variables(self):
        """The held variables, in order."""
        return list(self._held.value)

    @property
    def variables(self):
        return self.state_variables

    def update_state(self, *args, **kwargs):
        """Unused: the train step assigns the state (`assign_censor_state`)."""
        raise NotImplementedError("The censoring state is assigned by the train step.")

    def reset_state(self):
        """Kept across epochs and evaluations (Keras resets metrics there)."""

    def result(self):
        """Nothing to log."""
        return {}

    def save_own_variables(self, store):
        """Saves the held variables (as a layer does)."""
        for i, variable in enumerate(self.state_variables):
            store[str(i)] = variable.numpy()

    #: A holder without variables ignores a file's (else the count must match).
    ignores_unexpected = False

    def _missing_warning(self):
        return (
            "The file holds no censoring state (it was written before keras-aux saved it): "
            "the moving average of the primary gradient starts afresh."
        )

    def _mismatch_error(self, found, expected):
        return (
            f"The file holds {found} censoring state variables but the compiled censoring "
            f"method has {expected}: compile the model with the method it was saved with."
        )

    def load_own_variables(self, store):
        """Loads the state; a file without any (written by keras-aux 0.1, which
        did not save the moving average) leaves it at its initial value."""
        variables = self.state_variables
        if not variables and self.ignores_unexpected:
            return
        if variables and not list(store.keys()):
            warnings.warn(self._missing_warning(), stacklevel=2)
            return
        if len(store.keys()) != len(variables):
            raise ValueError(self._mismatch_error(len(store.keys()), len(variables)))
        for i, variable in enumerate(variables):
            variable.assign(store[str(i)])

    def get_config(self):
        return {"name": self.name}


class WeightingState(CensorState):
    """Holds a loss weighting's state (``trainable=False``), or the parameters
    the model's optimizer trains for it (``trainable=True``: uncertainty
    weighting's log-variances), as `CensorState` holds the censoring state.

    Keras's saving reaches it through the model's ``loss_weighting_holder`` /
    ``loss_weighting_parameters_holder`` properties. The state holder is
    among the model's metrics (threaded through every backend's step, never
    reset, logging nothing); the parameters holder is not, and its variables
    join the model's ``trainable_variables`` instead.
    """

    def __init__(self, name="loss_weighting_state", trainable=False):
        super().__init__(name=name)
        self.holds_trainable = trainable

    def assign_structure(self, leaves):
        """Replaces the held variables by new ones with ``leaves`` as values
        (copied: on JAX, two variables made from one array would share, and
        the step donate, one buffer)."""
        aggregation = "none" if self.holds_trainable else "only_first_replica"
        self._held.value = [
            keras.Variable(
                ops.convert_to_numpy(leaf),
                trainable=self.holds_trainable,
                aggregation=aggregation,
                name=f"{self.name}_{i}",
            )
            for i, leaf in enumerate(leaves)
        ]

    # A model compiled without a loss weighting ignores the file's.
    ignores_unexpected = True

    def _missing_warning(self):
        return f"The file holds no {self.name}: the loss weighting starts afresh."

    def _mismatch_error(self, found, expected):
        return (
            f"The file holds {found} {self.name} variables but the compiled loss weighting has "
            f"{expected}: compile the model with the loss weighting it was saved with."
        )


class LossWeightingEpochs(keras.callbacks.Callback):
    """Closes each epoch of the loss weighting's state (DWA's and GradNorm's
    epoch means); `fit` adds it by itself for a method that ``needs_epochs``."""

    def on_epoch_end(self, epoch, logs=None):
        self.model.end_loss_weighting_epoch()


class _Untracked:
    """Holds an object out of Keras's automatic tracking (a plain attribute
    holding a layer would make it one of the model's layers)."""

    def __init__(self, value):
        self.value = value


class _CompiledTasks:
    """What `compile` resolved: one plain object, so Keras does not track it
    as model state (recompiling replaces it; nothing leaks into `weights`)."""

    def __init__(
        self,
        losses,
        weights,
        censor,
        track_cosine,
        trackers,
        cosines,
        loss_tracker,
        task_metrics,
    ):
        self.losses = losses
        self.weights = weights
        self.censor = censor
        self.track_cosine = track_cosine
        self.loss_trackers = trackers
        self.cosine_trackers = cosines
        self.loss_tracker = loss_tracker
        self.task_metrics = task_metrics  # {task: TaskMetrics}, tasks with compiled metrics
        self.gradient_path = PER_TASK  # or FORWARD, set by `compile`
        self.reached = None  # forward path, TensorFlow: the variables each auxiliary task reaches
        self.state_structure = None  # what `censor.init` returned, once built
        self.state_num_variables = None  # trainable variables it was built for
        self.warned_unshared = False
        self.weighting = None  # the `LossWeighting`, set by `compile`
        self.weighting_structure = None  # what `weighting.init` returned
        self.weighting_parameter_names = []  # the names `weighting.parameters` gave, sorted
        # `snapshot_loss_weighting_parameters`, for one step, by thread: MirroredStrategy
        # traces each replica's step in a thread of its own.
        self.parameter_snapshot = {}


class BaseAuxiliaryTrainer:
    """The backend-neutral part of `keras_aux.AuxiliaryTrainer` (see there).

    A backend's trainer subclasses it and implements ``train_step`` (and, for
    a stateless backend, ``test_step``) from the pieces here; it may override
    the hooks ``_state_scope`` (where state and metric variables are created),
    ``_eager_state_scope`` (the same, from inside a traced step) and
    ``_replica_share`` / ``_global_value`` (a per-replica loss share) and
    ``_replica_mean`` (a per-replica value averaged over replicas).

    Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224). See docs/censoring.md.
    """

    def __init__(self, *args, primary=None, input_targets=None, task_names=None, **kwargs):
        super().__init__(*args, **kwargs)
        self._tasks = None
        self._class_weights = None
        self._censor_state = _Untracked(CensorState())
        self._loss_weighting_state = _Untracked(WeightingState())
        self._loss_weighting_parameters = _Untracked(
            WeightingState("loss_weighting_parameters", trainable=True)
        )
        self._task_names = list(task_names) if task_names is not None else None
        if self._task_names is None:
            self._task_names = self._default_task_names()
        self.primary = primary
        self.input_targets = dict(input_targets or {})
        # Without `primary` (e.g. `keras.models.clone_model`), `compile` or
        # `configure_tasks` names it later.
        if primary is not None and self._task_names is not None:
            self.configure_tasks(primary, input_targets)

    # ------------------------------------------------------------------ tasks
    def _default_task_names(self):
        """Output names known without calling the model (None if unknown)."""
        return None

    @property
    def task_names(self):
        """The output names, the primary's included."""
        if self._task_names is None:
            raise ValueError(
                f"{type(self).__name__} does not know its output names yet: compile it with a "
                "`loss` dict keyed by output name, or pass `task_names=`."
            )
        return self._task_names

    @property
    def auxiliary_names(self):
        """The auxiliary output names, in output order."""
        return [t for t in self.task_names if t != self.primary]

    def _input_names(self):
        return None  # unknown for a subclassed model

    def configure_tasks(self, primary, input_targets=None):
        """Names the primary output and the outputs whose target the model computes.

        ``input_targets`` maps an output name to the name of a model input
        (the output reconstructs that input; None: the only input) or, on a
        functional model, to the name of one of its layers: the target is
        then that layer's output for the batch's ``x``, held fixed (see
        `_target_layer_model`). Called by the constructor; call it yourself
        on a model built without them (e.g. a `keras.models.clone_model` of
        an uncompiled model).
        """
        task_names = self.task_names
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
                "An auxiliary model needs at least one auxiliary output besides the "
                f"primary {primary!r}; use keras.Model for a single-output model."
            )
        self.primary = primary
        self.input_targets = self._validate_input_targets(input_targets or {})

    def _validate_input_targets(self, input_targets):
        input_names = self._input_names()
        resolved = {}
        for output_name, input_name in dict(input_targets).items():
            if output_name not in self.task_names:
                raise ValueError(
                    f"`input_targets` names output {output_name!r}, which is not an "
                    f"output; the outputs are {self.task_names}."
                )
            if output_name == self.primary:
                raise ValueError("The primary output cannot take its target from the inputs.")
            if input_names is not None:
                if input_name is None:
                    if len(input_names) != 1:
                        raise ValueError(
                            f"`input_targets[{output_name!r}]` is None but the model has "
                            f"{len(input_names)} inputs {input_names}: name one."
                        )
                    input_name = input_names[0]
                if input_name not in input_names:
                    layer_names = [layer.name for layer in self.layers]
                    if input_name not in layer_names:
                        raise ValueError(
                            f"`input_targets[{output_name!r}] = {input_name!r}` is not an input "
                            f"nor a layer of {self.name!r}; the inputs are {input_names}, the "
                            f"layers {layer_names}."
                        )
                    self._target_layer_model(input_name)  # builds it, or says why it cannot
            resolved[output_name] = input_name
        return resolved

    def _target_layer_model(self, layer_name):
        """``keras.Model(self.input, layer.output)`` for the layer ``layer_name``, built once.

        It shares the layers of this functional model, so calling it on the
        batch's ``x`` recomputes the part of the network in front of the
        layer: `_targets_by_task` takes its output, in inference mode and
        under ``stop_gradient``, as the target of the outputs that
        `input_targets` maps to the layer. The forward pass of the step
        computes the same tensor once more, because the step's forward pass
        (``self(x)``) returns the outputs only. That part must hold no
        weights: it is then a fixed function of ``x`` (a front end such as
        `keras_aux.layers.LogMelSpectrogram`), equal in both calls and cheap
        beside the network behind it, and the target does not depend on the
        variables at all, which matters on JAX: targets are computed outside
        the step's stateless scope, where a variable would give the value it
        had when the step was traced.
        """
        holder = getattr(self, "_target_layer_models", None)
        if holder is None:
            holder = self._target_layer_models = _Untracked({})
        if layer_name in holder.value:
            return holder.value[layer_name]
        # `output`: that of the layer's first call, for a layer the graph calls more than once.
        output = self.get_layer(layer_name).output
        model = keras.Model(self.input, output, name=f"{self.name}_{layer_name}_target")
        if model.weights:
            raise ValueError(
                f"`input_targets` names layer {layer_name!r}, but the layers from the inputs to "
                f"it hold weights {[w.path for w in model.weights]}: a layer's output can be a "
                "target only when it is a fixed function of the inputs (a front end without "
                "weights, such as keras_aux.layers.LogMelSpectrogram). Pass that target in `y` "
                "instead."
            )
        holder.value[layer_name] = model
        return model

    # ---------------------------------------------------------------- compile
    def compile(
        self,
        optimizer="rmsprop",
        loss=None,
        loss_weights=None,
        metrics=None,
        weighted_metrics=None,
        censoring="multitask",
        granularity=None,
        ema_alpha=1.0,
        track_gradient_cosine=None,
        gradient_path="auto",
        loss_weighting=None,
        **kwargs,
    ):
        """Configures training, as `keras.Model.compile`, plus censoring.

        Args:
            optimizer, **kwargs: as in `keras.Model.compile`
                (``jit_compile``, ``run_eagerly``, ``steps_per_execution``...).
            weighted_metrics: as ``metrics``, weighted by the sample weights
                (and, for the primary output, the class weights).
            loss: dict ``{task_name: loss}`` covering every output, a list in
                output order, or one loss for all outputs.
            loss_weights: dict ``{task_name: weight}`` (or a list in output
                order); auxiliary weights are the λ's (default 1), the primary
                weight scales the primary loss (default 1).
            metrics: a dict keyed by output name (``{"label": ["accuracy"]}``;
                each logged as ``<output>_<metric>``); a list (or one
                metric) measures the primary output. Each output's metrics
                measure that output on the batches that carry its target
                (with `zip_tasks`, each task's own batch; in evaluation,
                outputs without targets are left out).
            censoring: a name in `keras_aux.censoring.NAMES` (``"multitask"``
                is the ordinary λ-weighted sum) or a `keras_aux.censoring.Censor`
                instance, a user's own subclass included.
            granularity: ``"global"`` (default) or ``"per_variable"``, for a
                censoring given by name.
            ema_alpha: α in (0, 1] of the moving average of the primary
                gradient used as the censoring reference; 1 means the current
                primary gradient. Refused with a method that never reads the
                reference (``multitask``, ``single_task``). The average is
                training state: saved in `.keras` files and checkpoints, not
                counted among the model's weights nor exported.
            track_gradient_cosine: log ``<aux>_cosine``, the cosine between
                the primary and each auxiliary gradient over the variables
                both reach. Default: True unless the censoring ignores the
                auxiliary gradients (``"single_task"``), where it would cost one
                backward pass per auxiliary task, or the step takes the forward
                gradient path, which never forms ``a_k``.
            gradient_path: how the step gets what censoring reads (see
                docs/censoring.md, "Two gradient paths"): ``"per_task"``, one
                backward pass per task; ``"forward"``, a fixed number of passes
                whatever the number K of auxiliary tasks (projection and
                unweighted cosine with global granularity, with or without
                ``ema_alpha``, and no cosine metric); ``"auto"`` (default), the
                forward path where it serves and K ≥ 2, else per task.
            loss_weighting: None (default: the fixed weights alone), a name in
                `keras_aux.weighting.NAMES` (``"uncertainty"``, ``"dwa"``,
                ``"gradnorm"``, ``"gls"``, ``"rlw"``, ``"famo"``) or a
                `keras_aux.weighting.LossWeighting`: weights ω_i on the task
                losses, the primary's included, applied before the gradients
                are taken, so the censoring method sees the weighted task
                objectives (λ_k still multiplies each auxiliary one). Its
                state is training state, saved like the censoring state;
                each step logs ``<task>_weight``. See docs/weighting.md.
        """
        if self._task_names is None and isinstance(loss, dict) and self.primary is not None:
            self._task_names = [self.primary] + [t for t in loss if t != self.primary]
            self.configure_tasks(self.primary, self.input_targets)
        if self.primary is None or self.primary not in self.task_names:
            self.configure_tasks(self.primary, self.input_targets)
        losses = self._resolve_losses(loss)
        weights = self._resolve_loss_weights(loss_weights)
        plain = per_task(metrics, self.task_names, self.primary, "metrics")
        weighted = per_task(weighted_metrics, self.task_names, self.primary, "weighted_metrics")
        censor = censoring_lib.get(
            censoring,
            granularity=granularity,
            ema_alpha=ema_alpha,
            num_auxiliary=len(self.auxiliary_names),
        )
        path = self._resolve_gradient_path(gradient_path, censor, track_gradient_cosine)
        weighting = None if loss_weighting is None else weighting_lib.get(loss_weighting)
        path = self._weighting_gradient_path(weighting, gradient_path, path)
        if track_gradient_cosine is None:
            track_gradient_cosine = censor.needs_auxiliary_gradients and path == PER_TASK
        self._drop_censor_state()
        # Keras's compiled metrics expect every output's target in every
        # batch; each task keeps its own (`task_metrics`) instead.
        super().compile(optimizer=optimizer, loss=None, **kwargs)
        with self._state_scope():
            loss_tracker = keras.metrics.Mean(name="loss")
            trackers = {t: keras.metrics.Mean(name=f"{t}_loss") for t in self.task_names}
            cosines = {}
            if track_gradient_cosine:
                cosines = {t: keras.metrics.Mean(name=f"{t}_cosine") for t in self.auxiliary_names}
            task_metrics = {
                t: TaskMetrics(t, plain.get(t, ()), weighted.get(t, ()))
                for t in self.task_names
                if t in plain or t in weighted
            }
        self._tasks = _CompiledTasks(
            losses,
            weights,
            censor,
            bool(track_gradient_cosine),
            trackers,
            cosines,
            loss_tracker,
            task_metrics,
        )
        self._tasks.gradient_path = path
        self._build_loss_weighting(weighting)
        self._compile_arguments = dict(
            loss=loss,
            loss_weights=loss_weights,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            censoring=keras.saving.serialize_keras_object(censor),
            track_gradient_cosine=bool(track_gradient_cosine),
            gradient_path=gradient_path,
            loss_weighting=weighting,
            primary=self.primary,
            input_targets=dict(self.input_targets),
            task_names=list(self.task_names),
        )
        if self.built:
            self.build_censor_state()

    def _resolve_gradient_path(self, gradient_path, censor, track_gradient_cosine):
        """``"per_task"`` or ``"forward"`` for `compile`'s ``gradient_path``."""
        if gradient_path not in GRADIENT_PATHS:
            raise ValueError(
                f"Unknown `gradient_path` {gradient_path!r}. Expected one of {list(GRADIENT_PATHS)}."
            )
        serves = censor.scalar_form is not None and not track_gradient_cosine
        if gradient_path == FORWARD and not serves:
            why = (
                "the gradient cosine metric needs every auxiliary gradient; pass "
                "track_gradient_cosine=False"
                if censor.scalar_form is not None
                else "it serves projection and unweighted_cosine with granularity='global' "
                "(with or without ema_alpha); the other methods need every auxiliary gradient"
            )
            raise ValueError(
                f"gradient_path='forward' cannot serve censoring={censor!r} with "
                f"track_gradient_cosine={track_gradient_cosine!r}: {why}. Use "
                "gradient_path='per_task' or 'auto'."
            )
        if gradient_path == FORWARD or (
            gradient_path == "auto" and serves and len(self.auxiliary_names) >= 2
        ):
            return FORWARD
        return PER_TASK

    def get_compile_config(self):
        """Keras's compile config plus the censoring method (serialized) and the tasks."""
        config = super().get_compile_config()
        if config and self._tasks is not None:
            config.update(
                {
                    key: keras.saving.serialize_keras_object(value)
                    for key, value in self._compile_arguments.items()
                }
            )
        return config

    def compile_from_config(self, config):
        """Recompiles from a `.keras` file's compile config (see `compile`)."""
        config = dict(config)
        primary = config.pop("primary", None)
        input_targets = config.pop("input_targets", None)
        task_names = config.pop("task_names", None)
        if self._task_names is None and task_names is not None:
            self._task_names = list(task_names)
        if primary is not None and self.primary is None:
            self.configure_tasks(primary, input_targets)
        # Files written before censoring methods were objects hold a name and
        # its `granularity` / `ema_alpha`; newer ones a serialized `Censor`.
        censor = censoring_lib.get(
            config.pop("censoring", "multitask"),
            granularity=config.pop("granularity", None),
            ema_alpha=config.pop("ema_alpha", 1.0),
        )
        config = keras.saving.deserialize_keras_object(config)
        self.compile(censoring=censor, **config)
        if self.optimizer is not None and self.built:
            self.optimizer.build(self.trainable_variables)

    def _resolve_losses(self, loss):
        names = self.task_names
        if loss is None:
            raise ValueError(f"`loss` is required: a dict with one loss per output {names}.")
        if isinstance(loss, (list, tuple)):
            if len(loss) != len(names):
                raise ValueError(
                    f"`loss` is a list of {len(loss)} losses but the model has outputs {names}; "
                    "give one per output, in that order, or a dict keyed by output name."
                )
            loss = dict(zip(names, loss))
        if not isinstance(loss, dict):
            return {t: _resolve_loss(loss, t) for t in names}
        unknown = sorted(set(loss) - set(names))
        if unknown:
            raise ValueError(f"`loss` names unknown outputs {unknown}; the outputs are {names}.")
        missing = [t for t in names if t not in loss]
        if missing:
            raise ValueError(f"`loss` gives no loss for outputs {missing}.")
        return {t: _resolve_loss(loss[t], t) for t in names}

    def _resolve_loss_weights(self, loss_weights):
        names = self.task_names
        if isinstance(loss_weights, (list, tuple)):
            if len(loss_weights) != len(names):
                raise ValueError(
                    f"`loss_weights` is a list of {len(loss_weights)} but the model has outputs "
                    f"{names}."
                )
            loss_weights = dict(zip(names, loss_weights))
        loss_weights = dict(loss_weights or {})
        unknown = sorted(set(loss_weights) - set(names))
        if unknown:
            raise ValueError(
                f"`loss_weights` names unknown outputs {unknown}; the outputs are {names}."
            )
        weights = {}
        for t in names:
            w = loss_weights.get(t, 1.0)
            try:
                w = float(w)
            except (TypeError, ValueError):
                raise ValueError(f"`loss_weights[{t!r}]` must be a number; got {w!r}.") from None
            if not (w >= 0.0 and math.isfinite(w)):
                raise ValueError(f"`loss_weights[{t!r}]` must be finite and >= 0; got {w}.")
            weights[t] = w
        return weights

    @property
    def metrics(self):
        """Total loss, per-task losses, cosines, then each task's compiled metrics."""
        metrics = super().metrics
        if not self.compiled or self._tasks is None:
            return metrics
        tasks = self._tasks
        own = [
            tasks.loss_tracker,
            *tasks.loss_trackers.values(),
            *tasks.cosine_trackers.values(),
            *tasks.task_metrics.values(),
        ]
        holders = [self.censor_state_holder, self.loss_weighting_holder]
        return logs_lib.with_own_metrics(metrics, [*own, *holders])

    # ------------------------------------------------------- backend hooks
    def _state_scope(self):
        """Where the step's state and metric variables are created."""
        return contextlib.nullcontext()

    def _eager_state_scope(self):
        """The same, entered from inside a traced step."""
        return self._state_scope()

    def _replica_share(self, value):
        """A loss as this replica's share of the global value (identity on one device)."""
        return value

    def _global_value(self, value):
        """Undoes `_replica_share`, for logging the global value."""
        return value

    def _replica_mean(self, value):
        """A per-replica value (this replica's mean loss) as its mean over
        replicas, differentiable as this replica's own (identity on one device
        and where each replica already sees the global batch)."""
        return value

    # ---------------------------------------------------------- censor state
    @property
    def censor_state_holder(self):
        """The `CensorState` holding the censoring state: training state, saved
        and restored with the model but not one of its weights."""
        return self._censor_state.value

    def _drop_censor_state(self):
        if self._tasks is not None:
            self.censor_state_holder.assign_structure([])
            self._tasks.state_structure = None

    def build_censor_state(self):
        """Creates the censoring method's state as model variables.

        Done by `compile` on a built model, else before the first `fit` step
        (or in its first trace, when Keras builds the model there).
        The variables are model state: `.keras` files, `ModelCheckpoint` and
        `BackupAndRestore` carry them.
        """
        tasks = self._tasks
        if tasks is None:
            return
        variables = self.trainable_variables
        if not variables or (
            tasks.state_structure is not None and tasks.state_num_variables == len(variables)
        ):
            # Not built yet (a subclassed model without a strategy builds in
            # the first trace of the train step, which then calls this), or
            # done.
            return
        self._drop_censor_state()
        # Eager even when called from the first trace, like Keras's own
        # optimizer variables.
        with self._eager_state_scope():
            state = tasks.censor.init(variables)
            self.censor_state_holder.assign_structure(keras.tree.flatten(state))
        tasks.state_structure = state
        tasks.state_num_variables = len(variables)

    @property
    def censor(self):
        """The compiled censoring method (a `keras_aux.censoring.Censor`), or None."""
        return None if self._tasks is None else self._tasks.censor

    @property
    def gradient_path(self):
        """The gradient path `compile` chose: ``"per_task"`` or ``"forward"`` (None
        before `compile`); see docs/censoring.md, "Two gradient paths"."""
        return None if self._tasks is None else self._tasks.gradient_path

    @property
    def censor_state(self):
        """The censoring method's current state (the structure ``init`` returned)."""
        tasks = self._tasks
        if tasks is None or tasks.state_structure is None:
            return None
        leaves = [v.value for v in self.censor_state_holder.state_variables]
        return keras.tree.pack_sequence_as(tasks.state_structure, leaves)

    def make_train_function(self, force=False):
        """Keras's train function; the censor state is built first (after
        Keras builds the model, before callbacks such as `BackupAndRestore`
        restore state)."""
        self.build_censor_state()
        return super().make_train_function(force)

    # -------------------------------------------------------- loss weighting
    @staticmethod
    def _weighting_gradient_path(weighting, gradient_path, path):
        """The gradient path for a loss weighting: GradNorm reads each task's
        gradient, which the forward path never forms."""
        if weighting is None or not weighting.needs_gradient_norms or path != FORWARD:
            return path
        if gradient_path == FORWARD:
            raise ValueError(
                f"loss_weighting={weighting!r} needs each task's gradient norm, which "
                "gradient_path='forward' never forms. Use gradient_path='per_task' or 'auto'."
            )
        return PER_TASK

    @property
    def loss_weighting(self):
        """The compiled loss weighting (a `keras_aux.weighting.LossWeighting`), or None."""
        return None if self._tasks is None else self._tasks.weighting

    @property
    def loss_weighting_holder(self):
        """The `WeightingState` holding the loss weighting's state: training
        state, saved and restored with the model but not one of its weights."""
        return self._loss_weighting_state.value

    @property
    def loss_weighting_parameters_holder(self):
        """The `WeightingState` holding the loss weighting's parameters that the
        model's optimizer trains (uncertainty weighting's log-variances)."""
        return self._loss_weighting_parameters.value

    @property
    def trainable_variables(self):
        """The model's trainable variables, then the loss weighting's parameters."""
        if not self.trainable:
            return []
        # Keras may read it while the model is constructed, before the holder exists.
        holder = getattr(self, "_loss_weighting_parameters", None)
        parameters = holder.value.state_variables if holder is not None else []
        return super().trainable_variables + parameters

    @property
    def trainable_weights(self):
        """As `trainable_variables`."""
        return self.trainable_variables

    def _build_loss_weighting(self, weighting):
        """Creates the loss weighting's state and parameters as variables (in `compile`)."""
        tasks = self._tasks
        tasks.weighting = weighting
        num_tasks = len(self.task_names)
        state = weighting.init(num_tasks) if weighting is not None else {}
        parameters = weighting.parameters(num_tasks) if weighting is not None else {}
        tasks.weighting_structure = state
        tasks.weighting_parameter_names = sorted(parameters)
        with self._state_scope():
            self.loss_weighting_holder.assign_structure(keras.tree.flatten(state))
            self.loss_weighting_parameters_holder.assign_structure(
                [parameters[name] for name in tasks.weighting_parameter_names]
            )

    @property
    def loss_weighting_state(self):
        """The loss weighting's current state (the structure ``init`` returned), or None."""
        tasks = self._tasks
        if tasks is None or tasks.weighting is None:
            return None
        leaves = [v.value for v in self.loss_weighting_holder.state_variables]
        return keras.tree.pack_sequence_as(tasks.weighting_structure, leaves)

    def _loss_weighting_parameter_values(self):
        variables = self.loss_weighting_parameters_holder.state_variables
        return {n: v.value for n, v in zip(self._tasks.weighting_parameter_names, variables)}

    def snapshot_loss_weighting_parameters(self):
        """Reads the loss weighting's parameters as the step begins, for its
        logs and state update: a step that applies the optimizer's update
        before its logs (TensorFlow) calls it first. The stateless JAX step
        needs it not: its logs read the values the step began with."""
        tasks = self._tasks
        if tasks.weighting is not None and tasks.weighting_parameter_names:
            values = self._loss_weighting_parameter_values()
            snapshot = {n: ops.copy(v) for n, v in values.items()}
            tasks.parameter_snapshot[threading.get_ident()] = snapshot

    def end_loss_weighting_epoch(self):
        """Closes an epoch of the loss weighting's state (`LossWeightingEpochs`
        calls it at each epoch's end during `fit`)."""
        tasks = self._tasks
        if tasks is None or tasks.weighting is None:
            return
        new_state = tasks.weighting.end_epoch(self.loss_weighting_state)
        for variable, value in zip(
            self.loss_weighting_holder.state_variables, keras.tree.flatten(new_state)
        ):
            variable.assign(ops.cast(value, variable.dtype))

    def _task_loss_vector(self, task_losses):
        """The task losses, primary first, as global values in one vector
        (the mean over replicas: a loss weighting reads them non-linearly)."""
        names = [self.primary, *self.auxiliary_names]
        return self._replica_mean(ops.stack([self._global_value(task_losses[t]) for t in names]))

    def _weighted_task_losses(self, task_losses):
        """``{task: objective}`` before the λ's: the loss weighting's objectives
        (this replica's share) when one is compiled and every task has a loss,
        else the losses themselves."""
        tasks = self._tasks
        names = [self.primary, *self.auxiliary_names]
        if tasks.weighting is None or any(t not in task_losses for t in names):
            return dict(task_losses)
        objectives = tasks.weighting.objectives(
            self._task_loss_vector(task_losses),
            self.loss_weighting_state,
            self._loss_weighting_parameter_values(),
        )
        return {t: self._replica_share(objectives[i]) for i, t in enumerate(names)}

    def _weighting_needs_task_gradients(self):
        """True when the loss weighting reads each task's gradient (GradNorm),
        or keeps state under a loss-scale optimizer: the step must then tell
        whether it applied, which the one-pass total does not."""
        weighting = self._tasks.weighting
        if weighting is None:
            return False
        return weighting.needs_gradient_norms or isinstance(
            self.optimizer, keras.optimizers.LossScaleOptimizer
        )

    def _shared_gradient_norms(self, primary, auxiliary, omega):
        """Each task's gradient norm, unweighted, over the variables every task
        reaches: ``‖∇ objective_i‖ / (ω_i c_i)`` (``c`` the primary's fixed weight,
        1 for the auxiliary objectives, which carry no λ)."""
        grads = [primary, *auxiliary]
        shared = [i for i in range(len(primary)) if all(g[i] is not None for g in grads)]
        zero = ops.zeros((), "float32")
        norms = ops.stack(
            [
                ops.sqrt(
                    functools.reduce(
                        ops.add,
                        [ops.sum(ops.square(ops.cast(g[i], "float32"))) for i in shared],
                        zero,
                    )
                )
                for g in grads
            ]
        )
        scale = self._loss_scale()
        if scale is not None:
            norms = norms / ops.cast(scale, "float32")
        fixed = [self._tasks.weights[self.primary]] + [1.0] * len(auxiliary)
        return norms / ops.maximum(omega * ops.convert_to_tensor(fixed, "float32"), 1e-12)

    def _update_loss_weighting(self, task_losses, primary, auxiliary, applied):
        """Assigns the loss weighting's state after the step if it ``applied``
        (always, when the step does not tell); returns this step's weights as
        ``{"<task>_weight": ω_i}``."""
        tasks = self._tasks
        weighting = tasks.weighting
        names = [self.primary, *self.auxiliary_names]
        losses = ops.stop_gradient(self._task_loss_vector(task_losses))
        state = self.loss_weighting_state
        parameters = tasks.parameter_snapshot.pop(threading.get_ident(), None)
        if parameters is None:
            parameters = self._loss_weighting_parameter_values()
        omega = weighting.weights(losses, state, parameters)
        norms = None
        if weighting.needs_gradient_norms:
            norms = self._shared_gradient_norms(primary, auxiliary, omega)
        new_state = weighting.update(losses, state, norms)
        if applied is None:
            applied = ops.convert_to_tensor(True)
        for variable, value in zip(
            self.loss_weighting_holder.state_variables, keras.tree.flatten(new_state)
        ):
            value = ops.cast(value, variable.dtype)
            variable.assign(ops.where(applied, value, variable.value))
        return {f"{t}_weight": omega[i] for i, t in enumerate(names)}

    # --------------------------------------------------------------- the step
    def _outputs_by_task(self, y_pred):
        if isinstance(y_pred, dict):
            if set(y_pred) != set(self.task_names):
                raise ValueError(
                    f"The model returned outputs {sorted(y_pred)} but its tasks are "
                    f"{self.task_names}."
                )
            return y_pred
        flat = keras.tree.flatten(y_pred)
        if len(flat) != len(self.task_names):
            raise ValueError(
                f"The model returned {len(flat)} outputs but its tasks are {self.task_names}; "
                "return a dict keyed by task name."
            )
        return dict(zip(self.task_names, flat))

    def _input_by_name(self, x, input_name):
        if self._input_names() is None and input_name is not None:
            # A subclassed model's layers are not a graph the target could be computed from.
            if input_name in [layer.name for layer in self.layers] and not (
                isinstance(x, dict) and input_name in x
            ):
                raise ValueError(
                    f"`input_targets` names {input_name!r}, a layer of the subclassed model "
                    f"{self.name!r}, not one of its inputs: a layer's output can be a target "
                    "only on a functional model (`AuxiliaryModel`), whose graph says how to "
                    "compute it. Pass that target in `y` instead."
                )
        if isinstance(x, dict):
            if input_name not in x:
                raise ValueError(
                    f"`input_targets` names input {input_name!r}, which is not in the inputs "
                    f"{sorted(x)}."
                )
            return x[input_name]
        if isinstance(x, (list, tuple)):
            names = self._input_names()
            if names is None or input_name not in names:
                raise ValueError(
                    f"Cannot find input {input_name!r} in a list of inputs: pass a dict of "
                    "inputs keyed by name."
                )
            return x[names.index(input_name)]
        return x

    def _targets_by_task(self, x, y, tasks=None, required=True):
        """Targets of ``tasks`` (default: all) from ``y`` and `input_targets`.

        A non-dict ``y`` is the target of the first task of ``tasks`` (the
        primary output by default). Missing targets raise when ``required``,
        else the task is left out. A target `input_targets` maps to a layer is
        that layer's output for ``x`` (`_target_layer_model`, inference mode),
        under ``stop_gradient``: no gradient flows into it.
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
        input_names = self._input_names()
        for output_name, input_name in self.input_targets.items():
            if output_name in tasks and targets.get(output_name) is None:
                if input_names is not None and input_name not in input_names + [None]:
                    # A layer of the functional model: its output for this `x`, held fixed.
                    target = self._target_layer_model(input_name)(x, training=False)
                    targets[output_name] = ops.stop_gradient(target)
                else:
                    targets[output_name] = self._input_by_name(x, input_name)
        missing = [t for t in tasks if targets.get(t) is None]
        if missing and required:
            raise ValueError(
                f"No target for outputs {missing}: pass them in `y` (a dict keyed by "
                "output name) or declare `input_targets` for reconstruction outputs."
            )
        return {t: targets[t] for t in tasks if targets.get(t) is not None}

    def _sample_weight_for(self, sample_weight, task, target):
        if isinstance(sample_weight, dict):
            weight = sample_weight.get(task)
        else:
            weight = sample_weight
        if task == self.primary and self._class_weights is not None:
            class_weight = self._primary_class_weights(target)
            weight = class_weight if weight is None else weight * class_weight
        return weight

    def _primary_class_weights(self, target):
        """Per-sample weights from `fit(class_weight=...)`, for the primary task
        only, as Keras computes them: the class is the arg-max of a one-hot
        row, else the rounded label; a class without a weight weighs 1."""
        target = ops.convert_to_tensor(target)
        if len(target.shape) >= 2 and target.shape[-1] != 1:
            ids = ops.argmax(target, axis=-1)
        else:
            ids = ops.reshape(target, (-1,)) if len(target.shape) >= 2 else target
        ids = ops.cast(ops.round(ops.cast(ids, "float32")), "int32")
        table = self._class_weights
        size = table.shape[0]
        # Checked before the gather: an index out of range does not raise on a GPU.
        known = ops.logical_and(ids >= 0, ids < size)
        weights = ops.take(table, ops.clip(ids, 0, size - 1))
        return ops.where(known, weights, ops.ones_like(weights))

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
            t: ops.cast(
                self._tasks.losses[t](
                    target, outputs[t], self._sample_weight_for(sample_weight, t, target)
                ),
                "float32",
            )
            for t, target in targets.items()
        }

    def _regularization_loss(self):
        if not self.losses:
            return None
        total = sum(ops.cast(loss, "float32") for loss in self.losses)
        return self._replica_share(total)

    def _primary_objective(self, task_losses, weighted=None):
        """Weighted primary loss plus the regularisation losses (``weighted``:
        `_weighted_task_losses`, computed here when not given)."""
        if weighted is None:
            weighted = self._weighted_task_losses(task_losses)
        objective = self._tasks.weights[self.primary] * weighted[self.primary]
        regularization = self._regularization_loss()
        return objective if regularization is None else objective + regularization

    def _total_loss(self, task_losses):
        """The multitask objective: what ``"multitask"`` censoring descends
        (each task's loss weighted by the loss weighting, if any, and λ)."""
        weighted = self._weighted_task_losses(task_losses)
        total = self._primary_objective(task_losses, weighted)
        for t in self.auxiliary_names:
            if t in weighted:
                total = total + self._tasks.weights[t] * weighted[t]
        return total

    def task_objectives(self, task_losses):
        """What each gradient differentiates (call it where the step records gradients): the
        primary objective, then each auxiliary loss without its λ (λ is applied
        by the censoring method) but with the loss weighting's ω, if any, all
        loss-scaled for mixed precision."""
        weighted = self._weighted_task_losses(task_losses)
        objectives = [self._primary_objective(task_losses, weighted)]
        objectives += [weighted[t] for t in self.auxiliary_names]
        return [self.optimizer.scale_loss(o) for o in objectives]

    def _loss_scale(self):
        """The factor mixed precision's loss scaling puts on the gradients, or
        None without a `keras.optimizers.LossScaleOptimizer`."""
        if isinstance(self.optimizer, keras.optimizers.LossScaleOptimizer):
            return self.optimizer.scale_loss(ops.ones((), "float32"))
        return None

    @staticmethod
    def _scaled(grads, factor):
        return [None if g is None else g * ops.cast(factor, g.dtype) for g in grads]

    def combine_gradients(self, primary, auxiliary):
        """The compiled censoring method's update: ``(gradients, new_state)``.

        Pure: the step assigns ``new_state`` with `assign_censor_state`.
        """
        tasks = self._tasks
        weights = [tasks.weights[t] for t in self.auxiliary_names] if auxiliary else []
        self._warn_unshared(primary, auxiliary)
        self.build_censor_state()
        return tasks.censor.update(primary, auxiliary, weights, self.censor_state)

    @staticmethod
    def all_finite(grads):
        """True (a boolean scalar) when every gradient is finite: the test by
        which a `LossScaleOptimizer` applies a step or skips it."""
        checks = [ops.all(ops.isfinite(g)) for g in grads if g is not None]
        return ops.all(ops.stack(checks)) if checks else ops.convert_to_tensor(True)

    def assign_censor_state(self, new_state, applied):
        """Assigns the censoring method's new state if the step was ``applied``
        (a boolean scalar), else keeps the old one.

        The one rule that makes every stateful method safe under mixed
        precision: a step the loss-scale optimizer skips (non-finite
        gradients) must leave no trace, or one overflow would poison a moving
        average and every later step would be skipped too.
        """
        variables = self.censor_state_holder.state_variables
        for variable, value in zip(variables, keras.tree.flatten(new_state)):
            value = ops.cast(value, variable.dtype)
            variable.assign(ops.where(applied, value, variable.value))

    def _warn_unshared(self, primary, auxiliary):
        """Warns (once, at trace time) about auxiliary outputs that share no
        trainable variable with the primary: they cannot help it."""
        if self._tasks.warned_unshared:
            return
        self._tasks.warned_unshared = True
        for t, grads in zip(self.auxiliary_names, auxiliary):
            if not any(p is not None and a is not None for p, a in zip(primary, grads)):
                warnings.warn(
                    f"Auxiliary output {t!r} shares no trainable variable with the primary "
                    f"output {self.primary!r}: its gradient cannot reach the primary task, so "
                    "it trains only its own head (and its cosine logs 0).",
                    stacklevel=2,
                )

    def update_task_metrics(
        self, task_losses, batch_size, primary=None, auxiliary=None, applied=None
    ):
        """Updates the total, per-task loss and (when gradients are given) cosine
        trackers; the cosines leave out a step that was not ``applied``."""
        tasks = self._tasks
        tasks.loss_tracker.update_state(
            self._global_value(self._total_loss(task_losses)), sample_weight=batch_size
        )
        for t, value in task_losses.items():
            tasks.loss_trackers[t].update_state(self._global_value(value), sample_weight=batch_size)
        if primary is not None and auxiliary:
            for t, grads in zip(self.auxiliary_names, auxiliary):
                if t in tasks.cosine_trackers:
                    cosine = censoring_lib.cosine_similarity(primary, grads)
                    weight = None
                    if applied is not None:
                        cosine = ops.where(applied, cosine, ops.zeros_like(cosine))
                        weight = ops.cast(applied, cosine.dtype)
                    tasks.cosine_trackers[t].update_state(cosine, sample_weight=weight)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics of the tasks that ``y`` has targets for.

        Keras's hook, with ``y`` a dict ``{task_name: target}`` that may leave
        tasks out (their metrics are then not updated) and ``y_pred`` the
        model's outputs. Returns the metrics' current results.
        """
        del x
        outputs = self._outputs_by_task(y_pred)
        for t, target in y.items():
            metrics = self._tasks.task_metrics.get(t)
            if metrics is not None:
                weight = self._sample_weight_for(sample_weight, t, target)
                metrics.update_state(target, outputs[t], weight)
        return self._logs(training=False, tasks=set(y))

    def _logs(self, training, tasks=None):
        skip = set() if training else {id(m) for m in self._tasks.cosine_trackers.values()}
        if tasks is not None:
            for per_task_metrics in (self._tasks.loss_trackers, self._tasks.task_metrics):
                skip |= {id(m) for t, m in per_task_metrics.items() if t not in tasks}
        return logs_lib.metric_logs(m for m in self.metrics if id(m) not in skip)

    @staticmethod
    def _batch_size(x):
        return ops.shape(next(t for t in keras.tree.flatten(x) if t is not None))[0]

    def _task_batches(self, data, training):
        """``[(x, targets, sample_weight)]``: one forward pass each.

        Plain ``(x, y[, w])`` data is one batch for every task; `TaskData`
        (see `keras_aux.models.zip_tasks`) gives the primary task its batch and
        every auxiliary task its own. In evaluation, auxiliary targets may be
        missing: those tasks are left out of the losses and logs. A meta
        batch (`TaskData.meta`) is not among them: see `_meta_batch`.
        """
        data = unwrap_task_data(data)
        if isinstance(data, TaskData) and not data.auxiliary:
            data = data.primary  # plain data, with a meta batch beside it
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

    def _censor_needs_meta_batch(self):
        """Whether the compiled censoring method learns from a meta batch (AuxiNash)."""
        return self._tasks.censor.needs_meta_batch

    def _meta_batch(self, data):
        """The training step's meta batch ``(x, {primary: y}, sample_weight)``
        (`TaskData.meta`), or None; refused when the compiled loss weighting
        or censoring method needs one and the data has none, or the data has
        one and nothing uses it."""
        data = unwrap_task_data(data)
        meta = data.meta if isinstance(data, TaskData) else None
        weighting = self._tasks.weighting
        if self._censor_needs_meta_batch():
            user = f"censoring={self._tasks.censor!r}"
            implicit.check_supported(self)
            needs = True
        else:
            user = f"loss_weighting={weighting!r}"
            needs = weighting is not None and weighting.needs_meta_batch
        if needs and meta is None:
            raise ValueError(
                f"{user} learns from a meta batch of the primary task beside every training "
                "batch, and the data has none: pass "
                "keras_aux.models.with_meta_batches(train_dataset, meta=...) (or "
                "zip_tasks(..., meta=...))."
            )
        if meta is None:
            return None
        if not needs:
            raise ValueError(
                f"The data has meta batches (`TaskData.meta`), but loss_weighting={weighting!r} "
                f"does not use them, nor does censoring={self._tasks.censor!r}: compile with one "
                "that does (keras_aux.learned.AutoLambda, keras_aux.learned.AuxiNash) or leave "
                "`meta` out."
            )
        if not isinstance(meta, (list, tuple)):
            meta = (meta,)
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(tuple(meta))
        return x, self._targets_by_task(x, y, [self.primary]), sample_weight

    def lookahead_losses(self, mapping, batches):
        """The task losses (primary first, float32) over ``batches`` with the
        variables read from ``mapping`` (``[(variable, value)]``, the trainable
        ones at least), in training mode; nothing the forward pass assigns
        (BatchNorm's statistics, seeds) reaches a variable."""
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
            task_losses, _ = self._forward(batches, training=True)
            return self._task_loss_vector(task_losses)

    def lookahead_meta_loss(self, mapping, meta_batch):
        """The primary loss (unweighted) on the meta batch, read as `lookahead_losses`."""
        with keras.StatelessScope(state_mapping=mapping, collect_losses=True):
            task_losses, _ = self._forward([meta_batch], training=True)
            return self._global_value(task_losses[self.primary])

    def meta_loss_scale(self):
        """The factor on the losses of Auto-λ's meta passes: mixed precision's
        current loss scale (float16 gradients of small losses would underflow
        to zero), 1 without a `keras.optimizers.LossScaleOptimizer`. The
        backends divide it out of every gradient and product."""
        scale = self._loss_scale()
        return ops.convert_to_tensor(1.0, "float32") if scale is None else scale

    def _unscaled_optimizer(self):
        """The compiled optimizer, inside its `LossScaleOptimizer` if any."""
        optimizer = self.optimizer
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            return optimizer.inner_optimizer
        return optimizer

    def _lookahead_optimizer(self):
        """The compiled `keras.optimizers.SGD` when it has momentum, else None."""
        optimizer = self._unscaled_optimizer()
        if isinstance(optimizer, keras.optimizers.SGD) and optimizer.momentum:
            return optimizer
        return None

    def _lookahead_step_size(self, learning_rate):
        """``−∂θ′/∂g``: α, or ``α(1 + μ)`` for Nesterov momentum (`lookahead_parameters`)."""
        optimizer = self._lookahead_optimizer()
        if optimizer is not None and optimizer.nesterov:
            return learning_rate * (1.0 + optimizer.momentum)
        return learning_rate

    def lookahead_parameters(self, theta, g, learning_rate):
        """Auto-λ's look-ahead ``θ′``: the compiled optimizer's next step along
        ``g`` (one value or None per trainable variable) when it is
        `keras.optimizers.SGD` with momentum, ``θ + μ m − α g`` (Nesterov:
        ``θ + μ(μ m − α g) − α g``, ``m`` its velocity), else plain SGD
        ``θ − α g`` (the reference's rule for optimizers without momentum);
        with the compiled optimizer's ``weight_decay`` ``w``, ``θ`` first
        becomes ``θ − α w θ`` (Keras's decoupled decay, before the step). As
        in the reference, every trainable variable is decayed: Keras has no
        public query of `exclude_from_weight_decay`."""
        optimizer = self._lookahead_optimizer()
        decay = self._unscaled_optimizer().weight_decay
        velocities = [None] * len(theta)
        momentum = 0.0
        if optimizer is not None:
            if not self.optimizer.built:
                # TensorFlow builds it in its first `apply`, after this step reads it.
                with self._eager_state_scope():
                    self.optimizer.build(self.trainable_variables)
            momentum = optimizer.momentum
            # Built over the trainable variables, in their order.
            if len(optimizer.momentums) != len(theta):
                raise ValueError(
                    f"The optimizer holds {len(optimizer.momentums)} momentum variables for "
                    f"{len(theta)} trainable variables: build it with model.trainable_variables."
                )
            velocities = [m.value for m in optimizer.momentums]
        lookahead = []
        for t, d, m in zip(theta, g, velocities):
            if d is None:
                lookahead.append(t)
                continue
            step = -ops.cast(learning_rate, t.dtype) * d
            if decay:
                t = t - ops.cast(learning_rate * decay, t.dtype) * t
            if m is not None:
                velocity = momentum * m + step
                step = momentum * velocity + step if optimizer.nesterov else velocity
            lookahead.append(t + step)
        return lookahead

    def lookahead_products(self, theta, v, batches, fixed, exact):
        """Auto-λ's ``h_i = ⟨∇L_i(θ), v⟩``: ``exact()`` (the backend's ``J v``),
        or with ``meta_gradient="central_difference"`` the reference's
        ``[L_i(θ + εv) − L_i(θ − εv)] / (2ε)``, ``ε = 0.01 / ‖v‖`` (two more
        forward passes, no backward one). ``theta``, ``v``: one value per
        trainable variable (``v`` may hold None for 0); ``fixed``: the rest of
        the mapping `lookahead_losses` reads."""
        if self._tasks.weighting.meta_gradient == "exact":
            return exact()
        v = [ops.zeros_like(t) if u is None else u for t, u in zip(theta, v)]
        norm = ops.sqrt(functools.reduce(ops.add, [ops.sum(ops.square(u)) for u in v]))
        epsilon = 0.01 / norm
        variables = self.trainable_variables

        def at(sign):
            moved = [t + ops.cast(sign * epsilon, t.dtype) * u for t, u in zip(theta, v)]
            return self.lookahead_losses(list(zip(variables, moved)) + list(fixed), batches)

        return (at(1.0) - at(-1.0)) / (2.0 * epsilon)

    def advance_meta_weighting(self, meta_products):
        """The loss weighting's meta step (Auto-λ), before the model's step on
        the same batch, which then uses the new weights: assigns the state.

        Args:
            meta_products: ``fn(weights, learning_rate) -> h``, per task
                ``h_i = ⟨∇L_i(θ), ∇L_meta(θ′)⟩`` with ``θ′`` the optimizer's next
                step along ``g = Σ_i λ_i ∇L_i(θ)`` (`lookahead_parameters`; α
                the model optimizer's current learning rate): the backend's part
                (`lookahead_losses`, `lookahead_meta_loss`).
        """
        weighting = self._tasks.weighting
        state = self.loss_weighting_state
        learning_rate = ops.cast(self.optimizer.learning_rate, "float32")
        products = meta_products(weighting.lookahead_weights(state), learning_rate)
        # ∂L_meta(θ′)/∂λ_i = −(step size) h_i: the look-ahead is linear in g.
        new_state = weighting.meta_update(state, products, self._lookahead_step_size(learning_rate))
        # A non-finite meta-gradient leaves the state as it was. The condition
        # also ties every assignment to the batch: a graph run that fails
        # fetching one (the end of a dataset) then assigns nothing.
        finite = ops.all(ops.isfinite(products))
        for variable, value in zip(
            self.loss_weighting_holder.state_variables, keras.tree.flatten(new_state)
        ):
            variable.assign(ops.where(finite, ops.cast(value, variable.dtype), variable.value))

    def _forward(self, batches, training):
        """Per-task losses over the batches, and what the compiled metrics need."""
        task_losses, predictions = {}, []
        for x, targets, sample_weight in batches:
            y_pred = self(x, training=training)
            task_losses.update(self.compute_task_losses(targets, y_pred, sample_weight))
            predictions.append((x, targets, y_pred, sample_weight))
        return task_losses, predictions

    def _update_compiled_metrics(self, predictions):
        # Each task's metrics measure its output on the batch carrying its target.
        for x, targets, y_pred, sample_weight in predictions:
            self.compute_metrics(x, targets, y_pred, sample_weight)

    def _gradients_needed(self):
        """``"total"`` (one backward pass of the weighted total), ``"primary"``
        (one, of the primary objective), ``"tasks"`` (one per task) or
        ``"forward"`` (the forward gradient path: `scalar_censored_update`)."""
        tasks = self._tasks
        if tasks.gradient_path == FORWARD:
            return "forward"
        if tasks.track_cosine:
            return "tasks"
        if self._weighting_needs_task_gradients():
            return "tasks"
        if not tasks.censor.needs_auxiliary_gradients:
            return "primary"
        if tasks.censor.is_linear:
            return "total"
        return "tasks"

    def censored_update(self, primary, auxiliary, implicit_terms=None):
        """The gradients to apply from the task gradients, and whether the step applies.

        Censoring (and its state, a moving average) sees true gradients under
        mixed precision: the loss scale changes during training. It is a power
        of two, so dividing and multiplying back is exact. The new censoring
        state is assigned only if the update is finite, the step a
        `LossScaleOptimizer` applies (`assign_censor_state`).

        Args:
            primary, auxiliary: the task gradients.
            implicit_terms: for a censoring method with a meta batch
                (AuxiNash), the backend's part of its hyper-step
                (`keras_aux.models.implicit.advance_censor_state`).

        Returns:
            ``(gradients, applied)``: loss-scaled like the task gradients, and
            a boolean scalar.
        """
        scale = self._loss_scale()
        if scale is not None:
            primary = self._scaled(primary, 1.0 / scale)
            auxiliary = [self._scaled(grads, 1.0 / scale) for grads in auxiliary]
        grads, new_state = self.combine_gradients(primary, auxiliary)
        applied = self.all_finite(grads)
        if implicit_terms is not None:
            new_state = implicit.advance_censor_state(
                self, primary, auxiliary, new_state, implicit_terms
            )
        self.assign_censor_state(new_state, applied)
        if scale is not None:
            grads = self._scaled(grads, scale)
        return grads, applied

    def leave_forward_path(self, reason):
        """For a backend whose forward path cannot differentiate the model
        (JAX: a ``custom_vjp`` function has no forward mode), at tracing.

        With ``gradient_path="forward"`` asked for, raises a ValueError giving
        ``reason``; with ``"auto"``, warns, takes the per-task path from then
        on (`gradient_path` says so) and returns what the step now needs
        (`_gradients_needed`).
        """
        if self._compile_arguments["gradient_path"] == FORWARD:
            raise ValueError(
                f"gradient_path='forward' cannot differentiate this model: {reason}. "
                "Compile with gradient_path='per_task' or 'auto'."
            )
        warnings.warn(
            f"The forward gradient path cannot differentiate this model: {reason}. It "
            "takes the per-task path (one backward pass per task) instead.",
            stacklevel=3,
        )
        self._tasks.gradient_path = PER_TASK
        return self._gradients_needed()

    def scalar_censored_update(self, primary, reached, directional, reweighted):
        """The forward gradient path's update, and whether the step applies.

        For a method with a ``scalar_form`` (projection, unweighted cosine,
        global granularity): the step takes the primary gradient ``p`` and
        gradients of reweighted totals ``Jᵀu = Σ_i u_i ∇L_i``, never one
        ``a_k``; every ``a_k·m`` comes from one directional derivative of the
        auxiliary losses along the reference ``m``, set to 0 off the variables
        ``p`` reaches, so each is summed over the variables ``a_k`` shares
        with ``p``.

        ``"shift"`` (``G = a + c m``): ``Jᵀ(1 + β, λ_1, …, λ_K) + Σ_i (C_i m_i
        − β p_i)`` with ``C_i = Σ_{k shares i} λ_k c_k``. When ``m`` is ``p``
        (no moving average), ``β = Σ_k λ_k c_k`` folds the shift into the
        backward pass and ``p`` is needed afterwards only on the variables not
        every auxiliary task shares (the primary's head): the step never holds
        ``p`` and a second full gradient at once. Otherwise ``β = 0``.
        ``"keep"`` (``G = w a``) takes ``Jᵀ(1, λ_1 w_1, …)`` on the variables
        ``p`` reaches and ``Jᵀ(1, λ_1, …)`` elsewhere (auxiliary heads).
        Loss scaling, state and ``applied`` are as in `censored_update`.

        Args:
            primary: one gradient (or None) per trainable variable, of the
                loss-scaled primary objective.
            reached: per auxiliary task, the indices of the variables it
                reaches (None in its per-task gradient otherwise).
            directional: ``fn(tangent) -> [J_k·tangent]``, the derivative of
                each loss-scaled auxiliary objective along ``tangent`` (one
                tensor per variable, None for 0: those ``p`` does not reach).
            reweighted: ``fn(u) -> Jᵀu``, the gradient of the loss-scaled
                ``u_0 L_p + Σ_k u_k L_k`` for ``K + 1`` scalars ``u`` (one
                tensor or None per variable).

        Returns:
            ``(gradients, applied)``, as `censored_update`.

        Reference: Lemaire 2018 (projection); Du et al. 2018,
        arXiv:1812.02224 (unweighted cosine). See docs/censoring.md.
        """
        tasks = self._tasks
        censor = tasks.censor
        weights = [tasks.weights[t] for t in self.auxiliary_names]
        self._warn_unshared(
            primary, [[True if i in r else None for i in range(len(primary))] for r in reached]
        )
        scale = self._loss_scale()
        if scale is not None:
            primary = self._scaled(primary, 1.0 / scale)
        self.build_censor_state()
        reference, new_state = censor.scalar_reference(primary, self.censor_state)
        dots = directional(reference)
        if scale is not None:
            dots = [d / scale for d in dots]
        squares = {i: ops.sum(m * m) for i, m in enumerate(reference) if m is not None}
        shared = [[i for i in sorted(r) if i in squares] for r in reached]
        reference_squares = [
            functools.reduce(ops.add, [squares[i] for i in s], ops.zeros((), "float32"))
            for s in shared
        ]
        coefficients = censor.scalar_coefficients(dots, reference_squares)

        def gradient(*cotangent):
            grads = reweighted([ops.cast(u, "float32") for u in cotangent])
            return grads if scale is None else self._scaled(grads, 1.0 / scale)

        if censor.scalar_form == "shift":
            shifts = [ops.cast(lam, "float32") * c for lam, c in zip(weights, coefficients)]
            folded = all(m is g for m, g in zip(reference, primary))  # no moving average
            zero = ops.zeros((), "float32")
            beta = functools.reduce(ops.add, shifts, zero) if folded else zero
            grads = gradient(1.0 + beta, *weights)
            for i in squares:
                sharing = [s for s, indices in zip(shifts, shared) if i in indices]
                if len(sharing) == (len(shifts) if folded else 0):
                    continue  # C_i = β: nothing left to add on this variable
                c = functools.reduce(ops.add, sharing, -beta)
                grads[i] = grads[i] + ops.cast(c, grads[i].dtype) * reference[i]
        else:
            kept = gradient(1.0, *[lam * w for lam, w in zip(weights, coefficients)])
            total = gradient(1.0, *weights)
            grads = [k if p is not None else t for p, k, t in zip(primary, kept, total)]
        applied = self.all_finite(grads)
        self.assign_censor_state(new_state, applied)
        if scale is not None:
            grads = self._scaled(grads, scale)
        return grads, applied

    def step_objectives(self, task_losses, needed):
        """What the step differentiates (loss-scaled), for `_gradients_needed`'s
        answer: the weighted total, the primary objective, or every task's
        (``"tasks"`` and ``"forward"``)."""
        if needed == "total":
            return [self.optimizer.scale_loss(self._total_loss(task_losses))]
        if needed == "primary":
            return [self.optimizer.scale_loss(self._primary_objective(task_losses))]
        return self.task_objectives(task_losses)

    def step_logs(self, batches, task_losses, predictions, primary, auxiliary, applied):
        """Updates the step's trackers and compiled metrics; returns the logs.
        ``primary`` / ``auxiliary``: the task gradients (None when the step did
        not take them), for the cosine metrics and GradNorm's gradient norms,
        loss-scaled as the step took them. The loss weighting's state advances
        here, after the metrics read it."""
        self.update_task_metrics(
            task_losses, self._batch_size(batches[0][0]), primary, auxiliary, applied
        )
        self._update_compiled_metrics(predictions)
        logs = self._logs(training=True)
        # What a learned censoring method (OL-AUX's weights, ...) holds after this step.
        logs.update(self._tasks.censor.logs(self.censor_state, self.auxiliary_names))
        if self._tasks.weighting is not None:
            logs.update(self._update_loss_weighting(task_losses, primary, auxiliary, applied))
        return logs

    def evaluate_batches(self, data):
        """The test step's work (stateful): per-task losses and compiled
        metrics, without gradients; auxiliary tasks without targets are left
        out. Returns the logs."""
        batches = self._task_batches(data, training=False)
        task_losses, predictions = self._forward(batches, training=False)
        self.update_task_metrics(task_losses, self._batch_size(batches[0][0]))
        self._update_compiled_metrics(predictions)
        return self._logs(training=False, tasks=set(task_losses))

    # -------------------------------------------------------------------- fit
    def fit(self, *args, class_weight=None, **kwargs):
        """`keras.Model.fit`. ``class_weight`` (``{class_id: weight}``; classes
        it leaves out weigh 1, as in Keras) weights the primary task's loss
        only: class weights are about the primary task's classes, and an
        auxiliary loss (e.g. a reconstruction) has none."""
        args = list(args)
        if len(args) > 9:  # class_weight given positionally
            class_weight, args[9] = args[9], None
        self._class_weights = self._class_weight_table(class_weight)
        if self.loss_weighting is not None and self.loss_weighting.needs_epochs:
            if len(args) > 5:  # callbacks given positionally
                args[5] = [LossWeightingEpochs(), *(args[5] or [])]
            else:
                kwargs["callbacks"] = [LossWeightingEpochs(), *(kwargs.get("callbacks") or [])]
        try:
            return super().fit(*args, **kwargs)
        finally:
            self._class_weights = None

    @staticmethod
    def _class_weight_table(class_weight):
        """``{class_id: weight}`` as a dense table up to the largest id; the
        classes it leaves out weigh 1, as in Keras."""
        if class_weight is None:
            return None
        if not isinstance(class_weight, dict) or not class_weight:
            raise ValueError(
                f"`class_weight` must be a non-empty dict {{class_id: weight}}; got "
                f"{class_weight!r}."
            )
        table = {}
        for key, value in class_weight.items():
            try:
                class_id = operator.index(key)
            except TypeError:
                class_id = -1
            if isinstance(key, bool) or class_id < 0:
                raise ValueError(
                    f"`class_weight` keys must be class ids (integers >= 0); got {key!r}."
                )
            try:
                weight = float(value)
            except (TypeError, ValueError):
                weight = math.nan
            if not (math.isfinite(weight) and weight >= 0.0):
                raise ValueError(
                    f"`class_weight[{key!r}]` must be a finite number >= 0; got {value!r}."
                )
            table[class_id] = weight
        return ops.convert_to_tensor(
            [table.get(k, 1.0) for k in range(max(table) + 1)], dtype="float32"
        )

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
            input_signature: as `keras.Model.export`; by default the one Keras
                infers from the model.
            outputs: ``"primary"`` (the served endpoint ``serve`` returns the
                primary output tensor) or ``"all"`` (every output, as Keras).
        """
        if outputs not in ("primary", "all"):
            raise ValueError(f"`outputs` must be 'primary' or 'all'; got {outputs!r}.")
        if outputs == "all" or format != "tf_saved_model":
            return super().export(
                filepath, format=format, verbose=verbose, input_signature=input_signature, **kwargs
            )
        if self.primary is None:
            raise ValueError("Name the primary output (`configure_tasks`) before exporting it.")
        input_signature = input_signature or compat.input_signature(self)
        archive = keras.export.ExportArchive()
        archive.track(self)

        def serve(*args):
            return self._outputs_by_task(self(*args, training=False))[self.primary]

        archive.add_endpoint("serve", serve, input_signature)
        archive.write_out(filepath, verbose=bool(verbose) if verbose is not None else True)
