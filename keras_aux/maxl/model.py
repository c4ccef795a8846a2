"""MAXL: meta auxiliary learning. A label-generation network learns the
auxiliary labels of a multi-task network through a meta-gradient.

Reference: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with
Meta Auxiliary Learning", NeurIPS (Algorithm 1; §3); docs/maxl.md for the
details only the reference code shows.

Notation: θ1 are the multi-task network's weights, θ2 the label generator's.

- Stage 1: θ1 ← θ1 − opt1(∇θ1 [L_pri(f(x), y) + L_aux(f(x), g(x, y))]), with
  the generated labels g held fixed.
- Stage 2: θ1⁺ = θ1 − α ∇θ1 [L_pri + L_aux], the graph kept; θ2 ← θ2 −
  opt2(∇θ2 [L_pri(f_{θ1⁺}(x), y) + 0.2 · H(g(x, y))]).
- First order (``order=1``): the finite-difference estimate of DARTS (Liu et
  al. 2019) replaces the second-order term; unlike the reference code, the
  entropy term's gradient reaches θ2.

This module is the backend-neutral model (configuration, losses in
`keras.ops`, the virtual step, schedules, metrics, evaluation, saving); the
stages and the train step of the current Keras backend come from
`keras_aux.maxl.backend` (TensorFlow or JAX), as Keras builds ``keras.Model``
on its backend's trainer (``keras/src/models/model.py``).
"""

import keras
from keras import ops

from keras_aux import compat, hierarchy
from keras_aux.losses.focal import EPSILON, focal_loss
from keras_aux.maxl import networks
from keras_aux.metrics import AuxiliaryClassUsage, AuxiliaryLabelEntropy
from keras_aux.models import logs as logs_lib

_BACKEND = keras.backend.backend()
if _BACKEND == "tensorflow":
    from keras_aux.maxl.backend.tensorflow_trainer import TensorFlowMAXLTrainer as MAXLTrainer
elif _BACKEND == "jax":
    from keras_aux.maxl.backend.jax_trainer import JAXMAXLTrainer as MAXLTrainer
else:

    class MAXLTrainer:
        """Stands in on a backend MAXL has no train step for."""

        def __init__(self, *args, **kwargs):
            raise RuntimeError(
                f"MAXL trains on the TensorFlow and JAX backends (its stage 2 differentiates "
                f"through a virtual step); KERAS_BACKEND is {_BACKEND!r}. Set "
                "KERAS_BACKEND=tensorflow or jax."
            )


SCHEDULES = ("epoch", "interleaved")


def _batch_mean(values):
    """The mean over the batch axis, in the values' own precision (`keras.ops.mean`
    on JAX reduces float64 in float32)."""
    return ops.sum(values, axis=0) / ops.cast(ops.shape(values)[0], values.dtype)


class _Trackers:
    """The metrics `compile` creates: one plain object, so Keras does not
    track them twice (see `MAXL.metrics`).

    ``usage`` and ``label_entropy`` are the collapse diagnostics: updated by
    `MAXL.test_step` only, on the labels the generator assigns in inference
    mode (docs/maxl.md#diagnostics)."""

    def __init__(self, psi, track_cosine):
        self.loss = keras.metrics.Mean(name="loss")
        self.primary_loss = keras.metrics.Mean(name="primary_loss")
        self.auxiliary_loss = keras.metrics.Mean(name="auxiliary_loss")
        self.primary_accuracy = keras.metrics.SparseCategoricalAccuracy(name="primary_accuracy")
        self.entropy = keras.metrics.Mean(name="entropy")
        self.usage = AuxiliaryClassUsage(sum(psi))
        self.label_entropy = AuxiliaryLabelEntropy(psi)
        # Measured by one stage only: logged only in the epochs that run it
        # (see `MAXL._stage_logs`), never as a zero or a copied value.
        self.primary_loss_after_step = keras.metrics.Mean(name="primary_loss_after_step")
        self.cosine = keras.metrics.Mean(name="gradient_cosine") if track_cosine else None

    def training(self):
        """The trackers the train steps update (the total loss apart)."""
        return [
            m
            for m in (
                self.primary_loss,
                self.primary_accuracy,
                self.auxiliary_loss,
                self.entropy,
                self.primary_loss_after_step,
                self.cosine,
            )
            if m is not None
        ]

    def evaluation(self):
        """The trackers `MAXL.test_step` updates (the total loss apart)."""
        return [self.primary_loss, self.primary_accuracy, self.usage, self.label_entropy]

    def inference_only(self):
        """The trackers no train step updates (left out of the training logs)."""
        return [self.usage, self.label_entropy]

    def all(self):
        """Every tracker but the total loss, each once (reset together by Keras)."""
        return self.training() + self.inference_only()


class AlternatingStages(keras.callbacks.Callback):
    """The paper's schedule: even epochs run stage 1, odd epochs stage 2.

    `MAXL.fit` adds it by itself when ``schedule="epoch"``; one epoch of the
    paper is therefore two `fit` epochs. The stage follows the epoch number,
    so a run resumed by `keras.callbacks.BackupAndRestore` continues where it was.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.model.stage = 1 + epoch % 2


@keras.saving.register_keras_serializable(package="keras_aux")
class MAXL(MAXLTrainer, keras.Model):
    """Meta auxiliary learning (MAXL) as a Keras model driven by `fit`.

    ``predict``, ``evaluate`` and ``export`` serve the multi-task network's
    primary output (class probabilities). ``evaluate`` (and so the validation
    pass of ``fit``) also reports the collapse diagnostics of the label
    generator in inference mode on its data, ``auxiliary_usage`` and
    ``auxiliary_entropy`` (``val_auxiliary_usage`` ... in ``fit``'s logs;
    docs/maxl.md#diagnostics); `generate_labels` returns the labels themselves.

    Args:
        multitask_network: a Keras model mapping an input batch to the dict
            ``{"primary": probabilities over len(ψ) classes, "auxiliary":
            probabilities over sum(ψ) classes}`` (or a two-item list in that
            order). See `keras_aux.architectures.multitask_network`.
        label_generator: a Keras model mapping ``[x, primary_label]`` (or the
            dict ``{"image": x, "primary_label": y}``) to soft auxiliary labels
            over sum(ψ) classes, zero outside the primary class's block (its
            last layer is normally `keras_aux.layers.HierarchicalMaskedSoftmax`).
            See `keras_aux.maxl.label_generator`. It must share no
            weights with the multi-task network.
        psi: the hierarchy ψ, one positive int per primary class.
        entropy_weight: weight of the batch entropy regulariser in stage 2 (0.2).
        auxiliary_weight: weight of the auxiliary loss in L_train (1 in the paper).
        inner_learning_rate: α of the virtual step; ``None`` (default) follows
            the θ1 optimizer's current learning rate, as the reference does.
        order: 2 (exact meta-gradient through the virtual step) or 1
            (finite-difference estimate; cheaper).
        schedule: ``"epoch"`` (the paper: alternate whole epochs of stage 1 and
            stage 2) or ``"interleaved"`` (stage 1 every step, stage 2 on the
            same batch every ``stage2_every`` steps).
        stage2_every: the ``k`` of the interleaved schedule.
        gamma: focal-loss focusing parameter for both tasks (2).
        track_gradient_cosine: log ``gradient_cosine``, the cosine between
            ∇L_pri and ∇L_aux on the shared weights (one more backward pass in
            stage 1).

    Trains on the TensorFlow and JAX backends (one trainer each, in
    `keras_aux.maxl.backend`), with the same updates on both; ``stage_one``,
    ``stage_two`` and ``meta_gradients`` are public on both.
    """

    def __init__(
        self,
        multitask_network,
        label_generator,
        psi,
        entropy_weight=0.2,
        auxiliary_weight=1.0,
        inner_learning_rate=None,
        order=2,
        schedule="epoch",
        stage2_every=1,
        gamma=2.0,
        track_gradient_cosine=True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.psi = hierarchy.validate_psi(psi)
        if order not in (1, 2):
            raise ValueError(f"`order` must be 1 or 2; got {order!r}.")
        if schedule not in SCHEDULES:
            raise ValueError(f"`schedule` must be one of {SCHEDULES}; got {schedule!r}.")
        if int(stage2_every) < 1:
            raise ValueError(f"`stage2_every` must be >= 1; got {stage2_every}.")
        for name, value in (
            ("entropy_weight", entropy_weight),
            ("auxiliary_weight", auxiliary_weight),
            ("gamma", gamma),
        ):
            if value < 0:
                raise ValueError(f"`{name}` must be >= 0; got {value}.")
        if inner_learning_rate is not None and inner_learning_rate <= 0:
            raise ValueError(f"`inner_learning_rate` must be > 0; got {inner_learning_rate}.")
        self.multitask_network = multitask_network
        self.label_generator = label_generator
        self.entropy_weight = float(entropy_weight)
        self.auxiliary_weight = float(auxiliary_weight)
        self.inner_learning_rate = inner_learning_rate
        self.order = int(order)
        self.schedule = schedule
        self.stage2_every = int(stage2_every)
        self.gamma = float(gamma)
        self.track_gradient_cosine = bool(track_gradient_cosine)
        self.stage = 1
        self._trackers = None
        self._evaluating = False
        self._validate_networks()
        # Both networks are functional models, built by construction.
        self.built = True
        self._step_counter = keras.Variable(
            0, dtype="int32", trainable=False, aggregation="only_first_replica", name="maxl_steps"
        )

    @classmethod
    def from_backbone(cls, backbone_fn, input_shape, psi, head_units=None, seed=None, **kwargs):
        """Builds both networks from one backbone factory (two separate copies).

        Args:
            backbone_fn: ``fn(input_shape, seed=None, name=...) -> keras.Model``
                from images to flat features, e.g. a value of
                `keras_aux.maxl.BACKBONES`.
            input_shape: image shape, e.g. ``(28, 28, 1)``.
            psi: the hierarchy ψ.
            head_units: hidden width of the heads (None: linear heads).
            seed: initial-weight seed (the generator uses ``seed + 1``).
            **kwargs: the other `MAXL` arguments.
        """
        other = None if seed is None else seed + 1
        multitask = networks.multitask_network(
            backbone_fn(input_shape, seed=seed, name="multitask_backbone"),
            psi,
            head_units=head_units,
            seed=seed,
        )
        generator = networks.label_generator(
            backbone_fn(input_shape, seed=other, name="generator_backbone"),
            psi,
            head_units=head_units,
            seed=other,
        )
        return cls(multitask, generator, psi, **kwargs)

    # ------------------------------------------------------------ validation
    def _validate_networks(self):
        num_primary, num_auxiliary = len(self.psi), sum(self.psi)
        outputs = self.multitask_network.outputs
        if isinstance(self.multitask_network.output, dict):
            missing = {"primary", "auxiliary"} - set(self.multitask_network.output)
            if missing:
                raise ValueError(
                    f"The multi-task network's output dict lacks {sorted(missing)}; it needs "
                    "'primary' and 'auxiliary'."
                )
            shapes = [self.multitask_network.output[k].shape for k in ("primary", "auxiliary")]
        elif outputs is not None and len(outputs) == 2:
            shapes = [t.shape for t in outputs]
        else:
            raise ValueError(
                "The multi-task network must output {'primary': ..., 'auxiliary': ...} "
                "(or a two-item list, primary first)."
            )
        for (what, expected), shape in zip(
            (("primary head", num_primary), ("auxiliary head", num_auxiliary)), shapes
        ):
            if shape[-1] != expected:
                raise ValueError(
                    f"ψ={list(self.psi)} needs {expected} classes on the {what} "
                    f"({'len' if what == 'primary head' else 'sum'} ψ); the multi-task network's "
                    f"{what} has shape {tuple(shape)}."
                )
        gen_shape = self.label_generator.output.shape
        if gen_shape[-1] != num_auxiliary:
            raise ValueError(
                f"ψ={list(self.psi)} needs {num_auxiliary} (= sum ψ) generated classes; the label "
                f"generator outputs shape {tuple(gen_shape)}."
            )
        shared = {id(v) for v in self.multitask_network.weights} & {
            id(v) for v in self.label_generator.weights
        }
        if shared:
            raise ValueError(
                "The multi-task network and the label generator share weights; MAXL needs two "
                "separate networks (build each from its own backbone)."
            )

    # ------------------------------------------------------------- compile
    def compile(
        self,
        optimizer=None,
        generator_optimizer=None,
        metrics=None,
        **kwargs,
    ):
        """Configures both optimisers.

        Args:
            optimizer: θ1's optimiser (multi-task network); default SGD, lr 0.01.
            generator_optimizer: θ2's optimiser (label generator); default
                SGD, lr 1e-3, weight decay 5e-4 (the paper's Appendix B).
            metrics: extra metrics on the primary output (class probabilities
                against integer labels).
            **kwargs: `keras.Model.compile` arguments (``jit_compile``,
                ``steps_per_execution``, ...). ``loss`` is not accepted: MAXL's
                losses are fixed by the method.
        """
        if "loss" in kwargs or "loss_weights" in kwargs:
            raise ValueError(
                "MAXL's losses are fixed (focal loss for both tasks, entropy term); set `gamma`, "
                "`auxiliary_weight` and `entropy_weight` on the model instead of `loss`."
            )
        optimizer = keras.optimizers.get(optimizer or keras.optimizers.SGD(0.01))
        generator_optimizer = keras.optimizers.get(
            generator_optimizer or keras.optimizers.SGD(1e-3, weight_decay=5e-4)
        )
        if optimizer is generator_optimizer:
            raise ValueError("`optimizer` and `generator_optimizer` must be two optimizer objects.")
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self.generator_optimizer = generator_optimizer
        with self._state_scope():
            self._trackers = _Trackers(self.psi, self.track_gradient_cosine)
            # Built here, each on its own network only (Keras would build
            # `optimizer` on every trainable variable, θ2 included).
            self.optimizer.build(self.multitask_network.trainable_variables)
            self.generator_optimizer.build(self.label_generator.trainable_variables)
        self._generator_optimizer_built()
        self._generator_optimizer_config = keras.optimizers.serialize(generator_optimizer)

    def get_compile_config(self):
        """Keras's compile config plus the generator's optimizer."""
        config = super().get_compile_config()
        if config and self._trackers is not None:
            config["generator_optimizer"] = self._generator_optimizer_config
        return config

    def compile_from_config(self, config):
        """Recompiles from a `.keras` file's compile config (both optimisers)."""
        config = dict(config)
        generator_optimizer = config.pop("generator_optimizer", None)
        optimizer = config.pop("optimizer", None)
        self.compile(
            optimizer=keras.optimizers.deserialize(optimizer) if optimizer else None,
            generator_optimizer=(
                keras.optimizers.deserialize(generator_optimizer) if generator_optimizer else None
            ),
            **{k: v for k, v in config.items() if k not in ("loss", "loss_weights")},
        )

    # Each backend's trainer provides the hooks `_state_scope` (where `compile`
    # creates variables), `_replica_share` / `_global_value` (a loss as this
    # replica's share and back), `_entropy`, `_held_state` (metric-form holders
    # of training state) and `_generator_optimizer_built`, and the stages.

    @property
    def metrics(self):
        """Every tracker (Keras resets them at each epoch and each ``evaluate``);
        each step logs the ones it updates."""
        if self._trackers is None:
            return self._with_own_metrics(None)
        return self._with_own_metrics(self._trackers.all() + self._held_state())

    def _with_own_metrics(self, own):
        """Our total-loss tracker and ``own`` first, then the compiled metrics."""
        metrics = super().metrics
        if own is None:
            return metrics
        return logs_lib.with_own_metrics(metrics, [self._trackers.loss, *own])

    # ---------------------------------------------------------- the networks
    def call(self, inputs, training=False):
        """The primary task's class probabilities."""
        return self._split(self.multitask_network(inputs, training=training))[0]

    @staticmethod
    def _split(outputs):
        if isinstance(outputs, dict):
            return outputs["primary"], outputs["auxiliary"]
        return outputs[0], outputs[1]

    def _primary_ids(self, y):
        """Integer primary labels of shape (batch,) from ids or one-hot rows."""
        y = ops.convert_to_tensor(y)
        rank = len(y.shape)
        if rank == 2 and y.shape[-1] == len(self.psi) and len(self.psi) > 1:
            return ops.cast(ops.argmax(y, axis=-1), "int32")
        if rank == 2 and y.shape[-1] == 1:
            y, rank = ops.squeeze(y, -1), 1
        if rank != 1:
            raise ValueError(
                f"MAXL needs primary labels as ids of shape (batch,) or (batch, 1), or one-hot rows "
                f"of width {len(self.psi)}; got shape {tuple(y.shape)}."
            )
        return ops.cast(y, "int32")

    def _generator_inputs(self, x, y):
        """The label generator's inputs for the batch ``x`` of primary class ``y``."""
        inputs = self.label_generator.input
        if isinstance(inputs, dict):
            if "primary_label" not in inputs or len(inputs) != 2:
                raise ValueError(
                    "A label generator with dict inputs must have exactly two: the input and "
                    "'primary_label'."
                )
            (x_key,) = [k for k in inputs if k != "primary_label"]
            return {x_key: x, "primary_label": y}
        return [x, y]

    def _generate(self, x, y, training):
        return self.label_generator(self._generator_inputs(x, y), training=training)

    def generate_labels(self, x, primary_labels, batch_size=256):
        """The soft auxiliary labels the generator assigns (inference mode), as numpy.

        Args:
            x: inputs (array or tensor).
            primary_labels: integer primary labels of the same examples.
        """
        ids = self._primary_ids(primary_labels)
        count = int(ids.shape[0])
        if count == 0:
            raise ValueError(
                "`generate_labels` got 0 examples: pass at least one input with its primary label."
            )
        sizes = {int(t.shape[0]) for t in keras.tree.flatten(x)}
        if sizes != {count}:
            raise ValueError(
                f"`generate_labels` got {count} primary labels but inputs of "
                f"{sorted(sizes)} examples: give one label per input."
            )
        outputs = []
        for start in range(0, count, batch_size):
            rows = slice(start, start + batch_size)
            xs = keras.tree.map_structure(lambda t, rows=rows: ops.convert_to_tensor(t[rows]), x)
            outputs.append(ops.convert_to_numpy(self._generate(xs, ids[rows], training=False)))
        return ops.convert_to_numpy(ops.concatenate(outputs, axis=0))

    # ---------------------------------------------------------------- losses
    def _focal(self, targets, probabilities):
        """Batch-mean focal loss (this replica's share of it)."""
        return self._replica_share(_batch_mean(focal_loss(targets, probabilities, self.gamma)))

    @staticmethod
    def _batch_entropy(labels):
        """``H = Σ_k q̄_k log(q̄_k + ε)`` of the batch-mean generated label ``q̄``
        (negative entropy: minimising it spreads the labels)."""
        mean = _batch_mean(labels)
        return ops.sum(mean * ops.log(mean + EPSILON))

    def _inner_learning_rate(self):
        """α of the virtual step (read inside the step: it may follow a schedule)."""
        dtype = self.multitask_network.trainable_variables[0].dtype
        if self.inner_learning_rate is not None:
            return ops.convert_to_tensor(self.inner_learning_rate, dtype)
        return ops.cast(self.optimizer.learning_rate, dtype)

    def _virtual_sgd_step(self, values, grads, alpha):
        """θ1' = what θ1's optimizer would do (momentum, weight decay) for SGD,
        else a plain gradient step (DARTS's virtual step; docs/maxl.md#first-order-variant).
        ``values`` are θ1's current values, ``grads`` their gradients (None: unreached)."""
        opt = self.optimizer
        sgd = isinstance(opt, keras.optimizers.SGD)
        if sgd and opt.momentum and len(opt.momentums) != len(values):
            # `compile` built θ1's optimizer on exactly these variables, so
            # its momentum slots are in the same order.
            raise ValueError(
                f"θ1's optimizer has {len(opt.momentums)} momentum slots for "
                f"{len(values)} variables: it must be built on the multi-task network's "
                "trainable variables only (as `MAXL.compile` does)."
            )
        fast = []
        for index, (value, g) in enumerate(zip(values, grads)):
            if g is None:
                fast.append(value)
                continue
            if sgd:
                if opt.weight_decay:
                    value = value - alpha * opt.weight_decay * value
                if opt.momentum:
                    m = ops.convert_to_tensor(opt.momentums[index])
                    step = opt.momentum * m - alpha * g
                    value = value + (opt.momentum * step - alpha * g if opt.nesterov else step)
                    fast.append(value)
                    continue
            fast.append(value - alpha * g)
        return fast

    # --------------------------------------------------------------- metrics
    def _update_metrics(self, y, primary, l_pri, l_aux, labels, entropy):
        """The training trackers of one stage, from its losses (replica shares)."""
        trackers = self._trackers
        batch = ops.shape(y)[0]
        l_pri = self._global_value(l_pri)
        l_aux = self._global_value(l_aux)
        trackers.loss.update_state(l_pri + self.auxiliary_weight * l_aux, sample_weight=batch)
        trackers.primary_loss.update_state(l_pri, sample_weight=batch)
        trackers.auxiliary_loss.update_state(l_aux, sample_weight=batch)
        trackers.primary_accuracy.update_state(y, primary)
        trackers.entropy.update_state(entropy)
        self.compute_metrics(None, y, primary)  # Keras's hook for the compiled metrics

    def _test_batch(self, x, y):
        """`test_step`'s work on one batch, on the variables' current values."""
        primary = self(x, training=False)
        l_pri = self._global_value(self._focal(y, primary))
        batch = ops.shape(y)[0]
        trackers = self._trackers
        trackers.loss.update_state(l_pri, sample_weight=batch)
        trackers.primary_loss.update_state(l_pri, sample_weight=batch)
        trackers.primary_accuracy.update_state(y, primary)
        labels = self._generate(x, y, training=False)
        trackers.usage.update_state(labels)
        trackers.label_entropy.update_state(labels)
        self.compute_metrics(x, y, primary)  # Keras's hook for the compiled metrics
        return logs_lib.metric_logs(self._with_own_metrics(self._trackers.evaluation()))

    # ------------------------------------------------------------ the steps
    def _unpack(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is None:
            raise ValueError("MAXL trains on (x, primary_label) batches; got no labels.")
        if sample_weight is not None:
            raise ValueError("MAXL does not support sample weights.")
        return x, self._primary_ids(y)

    def _stage_logs(self):
        """The logs of what this step measured. With the paper schedule, a
        stage-1 epoch does not measure ``primary_loss_after_step`` and a
        stage-2 epoch not ``gradient_cosine``: they are left out of that
        epoch's logs (and TensorBoard) instead of showing 0 or an old value."""
        skip = {id(m) for m in self._unmeasured()}
        return logs_lib.metric_logs(m for m in self.metrics if id(m) not in skip)

    def _unmeasured(self):
        """The trackers the train step does not update: the inference-mode
        diagnostics (`test_step`'s), and with the paper schedule the other
        stage's quantity."""
        trackers = self._trackers
        if trackers is None:
            return []
        unmeasured = trackers.inference_only()
        if self.schedule == "epoch":
            other = trackers.primary_loss_after_step if self.stage == 1 else trackers.cosine
            unmeasured += [] if other is None else [other]
        return unmeasured

    def get_metrics_result(self):
        """Keras's epoch-end results (read across replicas), of the trackers the
        running step updates: the same keys as the train step's logs (without
        what the current stage did not measure), or inside ``evaluate`` as
        `test_step`'s, so `fit` and ``evaluate`` report these global values."""
        if self._trackers is None:
            return super().get_metrics_result()
        if self._evaluating:
            return logs_lib.metric_logs(self._with_own_metrics(self._trackers.evaluation()))
        skip = {id(m) for m in self._unmeasured()}
        return logs_lib.metric_logs(m for m in self.metrics if id(m) not in skip)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`: the primary loss and accuracy, compiled
        metrics, and the inference-mode ``auxiliary_usage`` and
        ``auxiliary_entropy`` of the generated labels (see `test_step`)."""
        evaluating, self._evaluating = self._evaluating, True
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._evaluating = evaluating

    def fit(self, *args, **kwargs):
        """`keras.Model.fit`; with ``schedule="epoch"`` it adds `AlternatingStages`."""
        if self.schedule == "epoch":
            args = list(args)
            if len(args) > 5:
                args[5] = [AlternatingStages(), *(args[5] or [])]
            else:
                kwargs["callbacks"] = [AlternatingStages(), *(kwargs.get("callbacks") or [])]
        return super().fit(*args, **kwargs)

    def export(self, filepath, format="tf_saved_model", verbose=None, input_signature=None, **kw):
        """`keras.Model.export` serving the primary task's probabilities; the
        input signature defaults to the multi-task network's inputs."""
        if input_signature is None and format == "tf_saved_model":
            input_signature = compat.input_signature(self.multitask_network)
        return super().export(
            filepath, format=format, verbose=verbose, input_signature=input_signature, **kw
        )

    # --------------------------------------------------------- serialization
    def get_config(self):
        config = super().get_config()
        config.update(
            multitask_network=keras.saving.serialize_keras_object(self.multitask_network),
            label_generator=keras.saving.serialize_keras_object(self.label_generator),
            psi=list(self.psi),
            entropy_weight=self.entropy_weight,
            auxiliary_weight=self.auxiliary_weight,
            inner_learning_rate=self.inner_learning_rate,
            order=self.order,
            schedule=self.schedule,
            stage2_every=self.stage2_every,
            gamma=self.gamma,
            track_gradient_cosine=self.track_gradient_cosine,
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("multitask_network", "label_generator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
