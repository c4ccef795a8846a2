"""Cost of a censored train step: time and memory of `AuxiliaryModel` under each
censoring method, against the plain Keras multi-output step of the same network
and against the floor every censored step has, with and without XLA, in one run.

Three measures (issue 10 §6):

1. **Step time per censoring method** (``--models``, ``--xla``): every method of
   `keras_aux.censoring.NAMES` with its default `compile` settings (so
   ``single_task`` takes one backward pass and the other methods one per task,
   the cosine metric included), plus ``multitask`` without the cosine metric
   (one backward pass of the weighted total) and ``projection`` judged against
   a moving average of the primary gradient (α = 0.01). Two references:

   - *plain keras*: the same network as a `keras.Model` compiled with the sum
     of λ-weighted losses (one backward pass);
   - *the floor*: a bare train step of the same network (`FloorModel`, a
     `keras.Model` whose ``train_step`` is compiled into a `tf.function` with
     the same ``jit_compile``): one forward pass under a persistent tape, one
     ``tape.gradient`` per task (primary loss, then each λ-weighted auxiliary
     loss), and the sum applied with the same optimizer (Adam). The update is
     applied because every censored step applies one: the floor is the
     cheapest step that takes the gradients a censored step takes, so "ratio
     to floor" is what the censoring arithmetic, the metrics and the
     bookkeeping of `AuxiliaryModel` add. A one-backward-pass floor (gradient
     of the weighted total) is the reference of the one-pass configurations
     (``single_task``, ``multitask`` without cosine) and shows what Keras's
     own step (its loss and metric bookkeeping) adds to the plain one.

2. **Growth with the number of auxiliary tasks** (``--scaling_k``): the ``mlp``
   trunk with K auxiliary heads, K = 1, 4, 8, for plain Keras, the floor
   (1 + K backward passes), ``multitask`` (cosine on), ``projection``,
   ``pcgrad`` and ``single_task``.

3. **Peak memory of a step** (``--memory_k``, TensorFlow): each configuration runs alone in
   a fresh subprocess (``--probe``) whose CPU device allocates through a BFC
   allocator (``TF_CPU_ALLOCATOR_USE_BFC=true``). Its statistics
   (`tf.config.experimental.get_memory_info("CPU:0")`) give, after the warm-up
   steps, the bytes held (weights, optimizer slots, censoring state) and,
   after `reset_memory_stats`, the peak over ``--memory_steps`` steps: "step
   peak" is that peak minus the bytes held before the steps, i.e. the
   activations, gradients and temporaries of a step, every tensor counted
   (rounded up to 256 bytes). The batch is held as tensors and ops run one at
   a time (``inter_op_parallelism_threads=1``) to steady the peak, which still
   varies by about ±15% from process to process (``--memory_repeats`` takes
   the median of several). TensorFlow's default CPU allocator (oneDNN's)
   also reports statistics, but only for allocations of 256 KiB or more: on
   the mlp, whose tensors are all smaller, it reports 0. Limits: only tensors
   from TensorFlow's CPU allocator are counted, not Python objects, graphs,
   or memory a kernel library allocates by itself. The process's resident
   set is reported too: how far its peak (``VmHWM``, reset through
   ``/proc/self/clear_refs``; `resource.getrusage`'s ``ru_maxrss`` cannot be
   reset and already holds the peak of importing TensorFlow, so its increase
   over the steps is 0) rose during the warm-up steps (tracing and XLA
   compilation included) and during the measured steps. It covers
   everything, but in pages and malloc arenas: once the first steps have
   grown the heap, a step reuses freed memory and it barely moves.

4. **The two gradient paths** (``--forward_k``, either backend): projection
   with global granularity on the ``mlp`` trunk with K auxiliary heads, K = 1,
   2, 4, 8, 16, on the per-task path (one backward pass per task) and on the
   forward path (the primary gradient, one directional derivative of the K
   auxiliary losses and the update's backward pass: a fixed number of
   passes), both without the cosine metric, against plain Keras: median step,
   ratio to plain, compile time (the first step: tracing and compilation) and
   the step's peak memory — on TensorFlow the allocator's step peak of
   measure 3 (XLA off), on JAX XLA's own account of the compiled step's
   temporary buffers (``memory_analysis().temp_size_in_bytes``, the state
   donated as Keras's JAX trainer does), both as ratios to plain.
   ``KERAS_BACKEND=jax python -m benchmarks.step_overhead --forward_k=1,2,4,8,16``
   runs it on JAX (the TensorFlow-only tables 1–3 are then left out: their
   floor is a TensorFlow tape).

5. **Every method with K auxiliary tasks** (``--methods_k``, TensorFlow; off by
   default): on the ``mlp`` trunk with K heads, every gradient method of
   docs/aggregation.md, every loss weighting of docs/weighting.md (on
   ``multitask``) and the learned weightings (MetaBalance, OL-AUX, Auto-λ with
   its meta batch, AuxiNash between and with hyper-steps, a ForkMerge branch's
   step), beside plain Keras and the floors, with XLA (``--methods_xla``); the
   share of the step above the floor (1 − floor ÷ step: the aggregation, its
   solvers, and the bookkeeping) and, at ``--methods_memory_k``, the step peak
   memory of measure 3; and the time of a ForkMerge merge (``--methods_merge``).
   ``--methods_configs`` picks configurations (plain and the floors are always
   in). ``python -m benchmarks.step_overhead --models= --scaling_k=
   --memory_k= --methods_k=2,4,8 --output=benchmarks/results/step_overhead_methods.md``.

Every timed configuration is timed in interleaved rounds (round-robin over the
configurations) so that the machine's background load hits all of them alike;
the tables report the median step time. Ratios are taken within the same
network, XLA setting and number of auxiliary tasks.

Networks:
- ``mlp``: the synthetic experiment of Lemaire (2018): 250 inputs, four shared
  Dense(100, ReLU), a linear Dense(100) primary head and K linear Dense(100)
  auxiliary heads, MSE, batch 100.
- ``lstm``: a reduced genre-LSTM (seed 001) shape: 128 frames × 64 mel bands,
  one BiLSTM(64), max over time → Dense classifier, per-frame Dense
  reconstruction of the input, batch 32 (one auxiliary task).

Run: ``python -m benchmarks.step_overhead`` (writes
``benchmarks/results/step_overhead.md``; about 10 minutes on 2 quiet CPU cores:
~4 building and compiling 62 configurations, ~3 timing, ~2.5 for 12 memory
processes). Shorter: ``--xla=false``, ``--models=mlp``, ``--scaling_k=`` or
``--memory_k=`` (empty: skip). Smoke run: ``--rounds=1 --steps=2 --warmup=1``.

References:
    Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
    gradient" (projection, moving average of the primary gradient).
    Du et al. (2018), "Adapting Auxiliary Losses Using Gradient Similarity",
    arXiv:1812.02224 (unweighted / weighted cosine).
    Yu et al. (2020), "Gradient Surgery for Multi-Task Learning", NeurIPS
    (PCGrad). See docs/censoring.md.
"""

import dataclasses
import functools
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import keras
import numpy as np
from absl import app, flags

from keras_aux import AuxiliaryModel, censoring, learned, weighting
from keras_aux.experiments.reporting import write_markdown
from keras_aux.models import TaskData

ON_TENSORFLOW = keras.backend.backend() == "tensorflow"
if ON_TENSORFLOW:
    import tensorflow as tf

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp", "lstm"], "Networks of the per-method table.")
flags.DEFINE_list("xla", ["false", "true"], "jit_compile settings of the per-method table.")
flags.DEFINE_list(
    "configs", None, "Configurations (keys) of the per-method table; default: all of CONFIGS."
)
flags.DEFINE_list("scaling_k", ["1", "4", "8"], "Numbers of auxiliary tasks (mlp); empty: skip.")
flags.DEFINE_list("scaling_xla", ["false"], "jit_compile settings of the scaling table.")
flags.DEFINE_list(
    "scaling_configs", None, "Configurations (keys) of the scaling table; default: SCALING_TABLE."
)
flags.DEFINE_list("memory_k", ["1", "4", "8"], "Numbers of auxiliary tasks (mlp); empty: skip.")
flags.DEFINE_list(
    "memory_configs", ["plain", "floor", "projection", "pcgrad"], "Configurations (keys) measured."
)
flags.DEFINE_integer("memory_steps", 10, "Steps per memory measurement (after the warm-up).")
flags.DEFINE_bool("memory_xla", False, "jit_compile of the memory measurements.")
flags.DEFINE_integer(
    "memory_repeats", 1, "Fresh processes per memory measurement (the median is reported)."
)
flags.DEFINE_list(
    "forward_k", [], "Numbers of auxiliary tasks of the gradient-path table (mlp); empty: skip."
)
flags.DEFINE_enum(
    "forward_xla",
    "auto",
    ["auto", "true", "false"],
    "jit_compile of the gradient-path table; auto: off on TensorFlow, on on JAX (whose "
    "steps without it run op by op).",
)
flags.DEFINE_bool("forward_memory", True, "Measure the gradient-path table's peak memory.")
flags.DEFINE_list(
    "methods_k", [], "Numbers of auxiliary tasks of the every-method table (mlp); empty: skip."
)
flags.DEFINE_list("methods_xla", ["true"], "jit_compile settings of the every-method table.")
flags.DEFINE_list(
    "methods_memory_k", ["8"], "Numbers of auxiliary tasks whose every-method peak memory is taken."
)
flags.DEFINE_list(
    "methods_configs",
    None,
    "Configurations (keys) of the every-method table; default: MANY_TASKS_TABLE (plain and "
    "the floors are always added: they are the references).",
)
flags.DEFINE_bool(
    "methods_merge", True, "Time a ForkMerge merge at each K of the every-method table."
)
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds.")
flags.DEFINE_integer("steps", 20, "Timed steps per configuration per round.")
flags.DEFINE_integer("warmup", 3, "Untimed steps per configuration (tracing, XLA compile).")
flags.DEFINE_string("output", "benchmarks/results/step_overhead.md", "Markdown table path.")
flags.DEFINE_string(
    "probe", None, "Internal: 'network,K,config,xla' — measure one configuration's memory."
)

LAMBDA = 1.0
MERGE_VALIDATION = 1000
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MIB = 2.0**20


# ------------------------------------------------------------------ networks
def mlp_graph(k=1):
    """Lemaire's synthetic network with ``k`` auxiliary heads."""
    x = keras.Input((250,), name="x")
    h = x
    for i in range(4):
        h = keras.layers.Dense(100, activation="relu", name=f"shared_{i}")(h)
    names = ["auxiliary"] if k == 1 else [f"auxiliary_{i}" for i in range(k)]
    outputs = {"primary": keras.layers.Dense(100, name="primary")(h)}
    outputs.update({t: keras.layers.Dense(100, name=t)(h) for t in names})
    losses = {t: "mse" for t in outputs}
    rng = np.random.default_rng(0)
    data_x = rng.uniform(size=(100, 250)).astype("float32")
    y = {t: rng.normal(size=(100, 100)).astype("float32") for t in outputs}
    return x, outputs, losses, data_x, y, {}


def lstm_graph(k=1):
    """The reduced genre-LSTM: one auxiliary task (reconstruction of the input)."""
    if k != 1:
        raise ValueError("The lstm network has one auxiliary task.")
    x = keras.Input((128, 64), name="mel")
    h = keras.layers.Bidirectional(keras.layers.LSTM(64, return_sequences=True))(x)
    pooled = keras.layers.GlobalMaxPooling1D()(h)
    label = keras.layers.Dense(8, activation="softmax", name="genre")(
        keras.layers.Dense(64, activation="relu")(pooled)
    )
    recon = keras.layers.Dense(64, name="reconstruction")(h)
    outputs = {"genre": label, "reconstruction": recon}
    losses = {"genre": "sparse_categorical_crossentropy", "reconstruction": "mae"}
    rng = np.random.default_rng(0)
    data_x = rng.uniform(size=(32, 128, 64)).astype("float32")
    y = {"genre": rng.integers(0, 8, size=32).astype("int32")}
    return x, outputs, losses, data_x, y, {"reconstruction": "mel"}


GRAPHS = {"mlp": mlp_graph, "lstm": lstm_graph}


# ----------------------------------------------------------- configurations
@dataclasses.dataclass(frozen=True)
class Config:
    """One timed configuration.

    Attributes:
        key: short name (flags, subprocess probes).
        label: name in the tables.
        kind: ``"plain"`` (keras.Model), ``"floor"`` (`FloorModel`) or
            ``"auxiliary"`` (`AuxiliaryModel`).
        mode: censoring name, for ``"auxiliary"``.
        ema_alpha: `compile(ema_alpha=...)`.
        track_cosine: `compile(track_gradient_cosine=...)`; None: the default.
        per_task: for ``"floor"``: one backward pass per task (else one of
            the weighted total).
        gradient_path: `compile(gradient_path=...)`.
        weighting: `compile(loss_weighting=...)`: a name of
            `keras_aux.weighting.NAMES` or of `LEARNED_WEIGHTINGS`, or None.
    """

    key: str
    label: str
    kind: str
    mode: str | None = None
    ema_alpha: float = 1.0
    track_cosine: bool | None = None
    per_task: bool = True
    gradient_path: str = "auto"
    weighting: str | None = None

    def censor(self, k):
        """The `Censor` that `compile` gets for ``k`` auxiliary tasks."""
        if self.mode in LEARNED:
            return LEARNED[self.mode](num_auxiliary=k)
        return censoring.get(self.mode, ema_alpha=self.ema_alpha, num_auxiliary=k)

    def loss_weighting(self):
        """The `LossWeighting` that `compile` gets, or None."""
        if self.weighting in LEARNED_WEIGHTINGS:
            return LEARNED_WEIGHTINGS[self.weighting]()
        return None if self.weighting is None else weighting.get(self.weighting)

    @property
    def meta(self):
        """Whether a step takes a meta batch beside the training batch (Auto-λ, AuxiNash)."""
        if self.kind != "auxiliary":
            return False
        uses = self.loss_weighting()
        return self.censor(1).needs_meta_batch or (uses is not None and uses.needs_meta_batch)

    def forward_path(self, k):
        """Whether `compile` picks the forward gradient path (its rule: a method
        with a ``scalar_form``, no cosine metric, and K ≥ 2 unless forced)."""
        if self.kind != "auxiliary":
            return False
        serves = self.censor(k).scalar_form is not None and self.weighting is None
        serves = serves and not self.track_cosine
        return self.gradient_path == "forward" or (
            self.gradient_path == "auto" and serves and k >= 2
        )

    def backward_passes(self, k):
        """Backward passes of one step with ``k`` auxiliary tasks (the rule of
        `AuxiliaryTrainer`'s step: one of the weighted total or of the primary
        objective when nothing reads the auxiliary gradients separately; on the
        forward path, the primary gradient and the update's, plus the weighted
        total's for the unweighted cosine, and one directional derivative
        not counted here). None for a loss weighting with meta passes (Auto-λ: one of the
        weighted total, the look-ahead and its products on the meta batch), whose floor
        is then the one-pass floor."""
        if self.kind == "plain":
            return 1
        if self.kind == "floor":
            return 1 + k if self.per_task else 1
        censor = self.censor(k)
        uses = self.loss_weighting()
        if uses is not None and uses.needs_meta_batch:
            return None
        if uses is not None and uses.needs_gradient_norms:
            return 1 + k
        if self.forward_path(k):
            return 2 if censor.scalar_form == "shift" else 3
        track = censor.needs_auxiliary_gradients if self.track_cosine is None else self.track_cosine
        if not track and (not censor.needs_auxiliary_gradients or censor.is_linear):
            return 1
        return 1 + k


# Censors whose state has one entry per auxiliary task: built for the model's K.
LEARNED = {
    "metabalance": learned.MetaBalance,
    "ol_aux": learned.OLAux,
    "auxinash": learned.AuxiNash,
    # The hyper-step at every step: its cost, which the default pays every 25 steps.
    "auxinash_every_step": functools.partial(learned.AuxiNash, update_every=1),
}
# Learned loss weightings (on `multitask`); ForkMerge's steps are `BranchWeights` steps.
LEARNED_WEIGHTINGS = {
    "auto_lambda": learned.AutoLambda,
    "auto_lambda_central": functools.partial(
        learned.AutoLambda, meta_gradient="central_difference"
    ),
    "branch_weights": learned.BranchWeights,
}
PLAIN = Config("plain", "plain keras", "plain")
FLOOR_1 = Config("floor_1", "floor: bare step, 1 backward pass", "floor", per_task=False)
FLOOR = Config("floor", "floor: bare step, 1 backward pass per task", "floor")
CONFIGS = {
    c.key: c
    for c in [
        PLAIN,
        FLOOR_1,
        FLOOR,
        Config("multitask_no_cosine", "multitask, no cosine metric", "auxiliary", "multitask",
               track_cosine=False),
        *[Config(name, name, "auxiliary", name) for name in censoring.NAMES],
        Config("projection_ema", "projection, EMA α=0.01", "auxiliary", "projection", 0.01),
        Config("projection_per_task", "projection, per-task path", "auxiliary", "projection",
               track_cosine=False, gradient_path="per_task"),
        Config("projection_forward", "projection, forward path", "auxiliary", "projection",
               track_cosine=False, gradient_path="forward"),
        Config("gradvac", "gradvac", "auxiliary", "gradvac"),
        *[Config(f"weighting_{name}", f"loss weighting {name} (multitask)", "auxiliary",
                 "multitask", track_cosine=False, weighting=name) for name in weighting.NAMES],
        Config("metabalance", "MetaBalance", "auxiliary", "metabalance"),
        Config("ol_aux", "OL-AUX", "auxiliary", "ol_aux"),
        Config("auto_lambda", "Auto-λ, exact (multitask)", "auxiliary", "multitask",
               track_cosine=False, weighting="auto_lambda"),
        Config("auto_lambda_central", "Auto-λ, central difference (multitask)", "auxiliary",
               "multitask", track_cosine=False, weighting="auto_lambda_central"),
        Config("auxinash", "AuxiNash, between hyper-steps", "auxiliary", "auxinash"),
        Config("auxinash_every_step", "AuxiNash, hyper-step every step", "auxiliary",
               "auxinash_every_step"),
        Config("fork_merge", "ForkMerge, a branch's step (multitask)", "auxiliary", "multitask",
               track_cosine=False, weighting="branch_weights"),
    ]
}  # fmt: skip
LEARNED_KEYS = ["auto_lambda", "auto_lambda_central", "auxinash", "auxinash_every_step",
                "fork_merge"]  # fmt: skip
FORWARD_TABLE = ["plain", "projection_per_task", "projection_forward"]
# Table 1 (K = 1): the censoring methods; every method at K = 2, 4, 8 in table 5.
METHOD_TABLE = [
    key
    for key in CONFIGS
    if key not in FORWARD_TABLE[1:]
    and key not in ("gradvac", "metabalance", "ol_aux", *LEARNED_KEYS)
    and CONFIGS[key].weighting is None
]
# Table 5 (every method at K = 2, 4, 8): without the cosine metric where a method would
# add it, so each costs its own passes.
MANY_TASKS_TABLE = [
    "plain",
    "floor_1",
    "floor",
    "multitask_no_cosine",
    "projection",
    "pcgrad",
    *[name for name in censoring.NAMES if name not in censoring.MODES and name != "pcgrad"],
    "gradvac",
    *[f"weighting_{name}" for name in weighting.NAMES],
    "metabalance",
    "ol_aux",
    *LEARNED_KEYS,
]
SCALING_TABLE = ["plain", "floor_1", "floor", "single_task", "multitask", "projection", "pcgrad"]


class FloorModel(keras.Model):
    """The floor of a censored step: one forward pass under a persistent tape,
    one ``tape.gradient`` per task (or one of the weighted total), the sum
    applied with the compiled optimizer; no censoring, metrics or state.

    Built like a functional model, plus ``task_losses`` (``[(task, loss
    function, weight)]``, primary first) and ``per_task``.
    """

    def __init__(self, inputs, outputs, *, task_losses, per_task, **kwargs):
        super().__init__(inputs, outputs, **kwargs)
        self.task_losses = tuple(task_losses)
        self.per_task = per_task

    def train_step(self, data):
        """One forward pass, the gradients, their sum applied; logs the total loss."""
        x, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        variables = self.trainable_variables
        with tf.GradientTape(persistent=self.per_task) as tape:
            y_pred = self(x, training=True)
            losses = [w * tf.reduce_mean(fn(y[t], y_pred[t])) for t, fn, w in self.task_losses]
            total = tf.add_n(losses)
            objectives = losses if self.per_task else [total]
        summed = None
        for objective in objectives:
            grads = tape.gradient(objective, variables)
            if summed is None:
                summed = grads
            else:
                summed = [
                    a if b is None else b if a is None else a + b for a, b in zip(summed, grads)
                ]
        del tape
        self.optimizer.apply(summed, variables)
        return {"loss": total}


def build(network, k, config, jit):
    """A compiled model for one configuration, plus its (x, y) batch.

    ``network`` is a name of `GRAPHS` or a graph function like them (``k -> (input,
    outputs, losses, x, y, input targets)``). A configuration that learns from meta
    batches gets ``x`` = a `TaskData` whose meta batch is the primary task's (the same
    examples: the cost is what is measured) and ``y`` = None."""
    keras.utils.set_random_seed(0)
    graph = GRAPHS[network] if isinstance(network, str) else network
    x, outputs, losses, data_x, y, input_targets = graph(k)
    primary, *auxiliary = list(outputs)
    weights = {t: LAMBDA for t in auxiliary}
    if config.kind == "auxiliary":
        model = AuxiliaryModel(x, outputs, primary=primary, input_targets=input_targets)
        model.compile(
            keras.optimizers.Adam(1e-3),
            loss=losses,
            loss_weights=weights,
            censoring=config.censor(k),
            jit_compile=jit,
            track_gradient_cosine=config.track_cosine,
            gradient_path=config.gradient_path,
            loss_weighting=config.loss_weighting(),
        )
        if config.meta:
            return model, TaskData((data_x, y), {}, (data_x, y[primary])), None
        return model, data_x, y
    y = dict(y)
    for name in input_targets:
        y[name] = data_x
    if config.kind == "plain":
        model = keras.Model(x, outputs)
        model.compile(
            keras.optimizers.Adam(1e-3),
            loss=losses,
            loss_weights={primary: 1.0, **weights},
            jit_compile=jit,
        )
    else:
        task_losses = [(t, keras.losses.get(losses[t]), weights.get(t, 1.0)) for t in outputs]
        model = FloorModel(x, outputs, task_losses=task_losses, per_task=config.per_task)
        model.compile(keras.optimizers.Adam(1e-3), jit_compile=jit)
    return model, data_x, y


# ------------------------------------------------------------------- memory
def _rss_kib():
    """``(VmRSS, VmHWM)`` of this process in KiB, from /proc/self/status."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def _reset_peak_rss():
    """Resets this process's peak resident set to its current one (Linux ≥ 4.0);
    False where that is not possible (the high-water mark then keeps the peak
    of TensorFlow's import and of building the model)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss_growth(steps):
    """Runs ``steps()`` and returns how far the process's peak resident set
    rose above its resident set before them, in bytes (None if the peak
    cannot be reset)."""
    if not _reset_peak_rss():
        steps()
        return None
    before, _ = _rss_kib()
    steps()
    _, peak = _rss_kib()
    return 1024 * (peak - before)


def probe(spec):
    """Measures one configuration's memory in this (fresh) process; prints JSON.

    ``spec`` is ``"network,K,config key,xla"``. Needs TensorFlow's CPU
    allocator statistics (``TF_CPU_ALLOCATOR_USE_BFC=true``, set by
    `run_probe`).
    """
    network, k, key, jit = spec.split(",")
    k, jit = int(k), jit.lower() == "true"
    # Ops one at a time: with concurrent ops the set of tensors alive at the
    # peak, hence the peak, changes from run to run.
    tf.config.threading.set_inter_op_parallelism_threads(1)
    model, x, y = build(network, k, CONFIGS[key], jit)
    # The batch as tensors once (counted in "held"), not converted at every step.
    x, y = keras.tree.map_structure(lambda v: v if v is None else tf.convert_to_tensor(v), (x, y))
    try:
        tf.config.experimental.get_memory_info("CPU:0")
    except ValueError as error:
        raise RuntimeError(
            "No allocator statistics for CPU:0: run with TF_CPU_ALLOCATOR_USE_BFC=true."
        ) from error

    def steps(n):
        return lambda: [model.train_on_batch(x, y) for _ in range(n)]

    rss_first = _peak_rss_growth(steps(max(FLAGS.warmup, 1)))
    gc.collect()
    held = tf.config.experimental.get_memory_info("CPU:0")["current"]
    tf.config.experimental.reset_memory_stats("CPU:0")
    rss_later = _peak_rss_growth(steps(FLAGS.memory_steps))
    peak = tf.config.experimental.get_memory_info("CPU:0")["peak"]
    print(
        json.dumps(
            {
                "held": held,
                "step_peak": peak - held,
                "rss_first": rss_first,
                "rss_later": rss_later,
            }
        )
    )


def xla_temp_bytes(model, x, y):
    """XLA's account of a compiled JAX train step's temporary buffers (bytes):
    what the step allocates beyond its state, compiled as Keras compiles it
    (the state donated, so the new state takes its buffers; without that, XLA
    may place temporaries in the output buffers and report almost none)."""
    import jax

    state = tuple(
        [v.value for v in variables]
        for variables in (
            model.trainable_variables,
            model.non_trainable_variables,
            model.optimizer.variables,
            model.metrics_variables,
        )
    )
    compiled = jax.jit(model.train_step, donate_argnums=0).lower(state, (x, y)).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def run_probe(network, k, key, jit):
    """`probe` in ``--memory_repeats`` fresh subprocesses; the median of each measure."""
    results = [_run_probe_once(network, k, key, jit) for _ in range(FLAGS.memory_repeats)]
    return {
        name: None
        if any(r[name] is None for r in results)
        else statistics.median(r[name] for r in results)
        for name in results[0]
    }


def _run_probe_once(network, k, key, jit):
    """`probe` in one fresh subprocess; its JSON result."""
    command = [
        sys.executable,
        "-m",
        "benchmarks.step_overhead",
        f"--probe={network},{k},{key},{'true' if jit else 'false'}",
        f"--warmup={FLAGS.warmup}",
        f"--memory_steps={FLAGS.memory_steps}",
    ]
    # A BFC allocator for the CPU device: TensorFlow's default (oneDNN) CPU
    # allocator counts only allocations of 256 KiB or more in its statistics.
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TF_CPU_ALLOCATOR_USE_BFC="true")
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------ tables
def command_line():
    """The command that reproduces this run (rounds and steps, and every flag given)."""
    parts = ["python -m benchmarks.step_overhead"]
    for name in ["rounds", "steps"]:
        parts.append(f"--{name}={FLAGS[name].value}")
    for name in [
        "warmup",
        "models",
        "xla",
        "scaling_k",
        "scaling_xla",
        "memory_k",
        "memory_configs",
        "memory_steps",
        "memory_xla",
        "memory_repeats",
        "forward_k",
        "forward_xla",
        "forward_memory",
        "methods_k",
        "methods_xla",
        "methods_memory_k",
        "methods_configs",
        "methods_merge",
    ]:
        if FLAGS[name].present:
            value = FLAGS[name].value
            value = ",".join(value) if isinstance(value, list) else value
            parts.append(f"--{name}={str(value).lower() if isinstance(value, bool) else value}")
    return " ".join(parts)


def backend_prefix():
    return "" if ON_TENSORFLOW else f"KERAS_BACKEND={keras.backend.backend()} "


def backend_version():
    if ON_TENSORFLOW:
        return f"TensorFlow {tf.__version__}"
    import jax

    return f"JAX {jax.__version__}"


def forward_table(jobs, median, compile_seconds, memory):
    """The gradient-path table (measure 4): its Markdown lines."""
    jit = jobs[0][2]
    memory_note = (
        "the allocator's step peak (MiB; measure 3: the median of "
        f"{FLAGS.memory_repeats} fresh processes, XLA off)"
        if ON_TENSORFLOW
        else "XLA's temporary buffers of the compiled step, its state donated as Keras does "
        "(MiB; `memory_analysis().temp_size_in_bytes`)"
    )
    lines = [
        "## Two gradient paths: projection with K auxiliary tasks (mlp)",
        "",
        f"Backend {keras.backend.backend()}, XLA {'on' if jit else 'off'}. Projection with global "
        "granularity, no cosine metric, on the per-task path (1 + K backward passes) and on the "
        "forward path (the primary gradient, one directional derivative of the K auxiliary "
        "losses and the update's backward pass), against plain Keras at the same K. "
        "**compile** = the first step (tracing, compilation and one step); **memory** = "
        f"{memory_note}, with its ratio to plain. Goal at K = 16: the forward path at most 2.5× "
        "plain in time and 1.5× in memory.",
        "",
        "| K | configuration | backward passes | median step (ms) | ratio to plain "
        "| compile (s) | memory (MiB) | memory ratio to plain |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in jobs:
        network, k, jit, key = name
        plain = (network, k, jit, PLAIN.key)
        mem, mem_ratio = memory.get(name), "—"
        if mem is not None and memory.get(plain):
            mem_ratio = f"{mem / memory[plain]:.2f}×"
        lines.append(
            f"| {k} | {CONFIGS[key].label} | {CONFIGS[key].backward_passes(k)} "
            f"| {1000 * median[name]:.2f} | {median[name] / median[plain]:.2f}× "
            f"| {compile_seconds[name]:.1f} | {'—' if mem is None else f'{mem / MIB:.2f}'} "
            f"| {mem_ratio} |"
        )
    lines.append("")
    largest = max(k for _, k, _, _ in jobs)
    forward = ("mlp", largest, jit, "projection_forward")
    plain = ("mlp", largest, jit, PLAIN.key)
    if forward in median:

        def against(ratio, goal):
            met = "met" if ratio <= goal else "not met"
            return f"{ratio:.2f}× plain (goal ≤ {goal}×: {met})"

        verdict = "in time " + against(median[forward] / median[plain], 2.5)
        if memory.get(forward) is not None and memory.get(plain):
            verdict += ", in memory " + against(memory[forward] / memory[plain], 1.5)
        lines += [f"At K = {largest} the forward path is {verdict}.", ""]
    return lines


def many_tasks_table(jobs, ratios, median, memory):
    """The every-method table (``--methods_k``): its Markdown lines."""
    lines = [
        "## Every method with K auxiliary tasks (mlp)",
        "",
        "Each gradient method of docs/aggregation.md (its `compile` defaults, the cosine metric "
        "off), each loss weighting of docs/weighting.md (on `multitask`) and the learned weightings "
        "of docs/learned_weighting.md: MetaBalance, OL-AUX, Auto-λ (exact forward-mode "
        "meta-gradient and the reference's central difference; a meta batch the size of the "
        "training batch beside it, its passes counted in the step, its floor the one-pass one), "
        "AuxiNash (between hyper-steps, and with its hyper-step at every step: the default pays it "
        "every 25 steps) and a ForkMerge branch's step (`BranchWeights` on `multitask`; its merges "
        "are in the next table). **above floor** = 1 − floor ÷ step, the share of the step beyond "
        "the floor with as many backward passes (the aggregation, solvers included, plus the "
        "bookkeeping of `AuxiliaryModel`: an upper bound of the aggregation's share; goal at "
        "K = 8: under 10 %). **memory** = the step peak of the memory table below (XLA off) as a "
        "ratio to plain, at the K it was taken.",
        "",
        "| XLA | K | configuration | backward passes | median step (ms) | ratio to plain "
        "| ratio to floor | above floor | memory ratio to plain |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for network, k, jit, key in jobs:
        m, to_plain, to_floor = ratios(network, k, jit, key)
        floor = median.get((network, k, jit, floor_of(CONFIGS[key], k)))
        step = median[(network, k, jit, key)]
        above = (
            "—"
            if floor is None or CONFIGS[key].kind != "auxiliary"
            else (f"{100 * (1 - floor / step):.0f} %")
        )
        mem, plain = memory.get((network, k, key)), memory.get((network, k, PLAIN.key))
        mem_ratio = "—"
        if mem and plain and plain["step_peak"] > 0:
            mem_ratio = f"{mem['step_peak'] / plain['step_peak']:.2f}×"
        lines.append(
            f"| {'yes' if jit else 'no'} | {k} | {CONFIGS[key].label} "
            f"| {CONFIGS[key].backward_passes(k) or '—'} | {m} | {to_plain} | {to_floor} | {above} "
            f"| {mem_ratio} |"
        )
    lines.append("")
    period = learned.AuxiNash().update_every
    for network, k, jit, key in jobs:
        every = median.get((network, k, jit, "auxinash_every_step"))
        if key != "auxinash" or every is None:
            continue
        between = median[(network, k, jit, key)]
        amortised = between + (every - between) / period
        lines.append(
            f"- AuxiNash at K = {k} (XLA {'on' if jit else 'off'}), its hyper-step every "
            f"{period} steps: {1000 * amortised:.2f} ms per step amortised, "
            f"{amortised / median[(network, k, jit, PLAIN.key)]:.2f}× plain."
        )
    if lines[-1] != "":
        lines.append("")
    return lines


def merge_cost(k, jit, rounds, steps_per_branch=3):
    """Seconds of a ForkMerge merge on the mlp with ``k`` auxiliary tasks.

    The callback (two branches: the primary alone, the primary with every auxiliary task;
    one epoch per fork; ``MERGE_VALIDATION`` validation examples in batches of 100) is
    driven through its hooks, ``steps_per_branch`` steps per branch. Returns
    ``(evaluation, merge, evaluations)``: the medians over ``rounds`` rounds of the end of a
    branch's epoch that does not merge (one evaluation on validation, for the branch's best
    epoch) and of the merge on top of it, and the number of evaluations of a merge.
    """
    model, x, y = build("mlp", k, CONFIGS["fork_merge"], jit)
    rng = np.random.default_rng(1)
    validation = (
        rng.uniform(size=(MERGE_VALIDATION, 250)).astype("float32"),
        {t: rng.normal(size=(MERGE_VALIDATION, 100)).astype("float32") for t in y},
    )
    fork = learned.ForkMerge(validation, epochs_per_fork=1, batch_size=100)
    fork.set_model(model)
    fork.set_params({"epochs": 2 * (rounds + 1), "verbose": 0})
    fork.on_train_begin()
    evaluation, merge = [], []
    for round_ in range(rounds + 1):  # round 0 warms up (traces evaluate)
        ends = []
        for branch in range(fork.num_branches):
            epoch = round_ * fork.num_branches + branch
            fork.on_epoch_begin(epoch)
            for _ in range(steps_per_branch):
                model.train_on_batch(x, y)
            start = time.perf_counter()
            fork.on_epoch_end(epoch, {})
            ends.append(time.perf_counter() - start)
        if round_:
            evaluation.append(ends[0])
            merge.append(ends[-1] - ends[0])
    evaluations = 1 + (fork.num_branches - 1) * len(fork.alphas)
    return statistics.median(evaluation), statistics.median(merge), evaluations


def merge_table(merges, median):
    """The ForkMerge merge table: its Markdown lines."""
    lines = [
        "## A ForkMerge merge (mlp)",
        "",
        "ForkMerge (docs/learned_weighting.md) with its two default branches (the primary task "
        "alone; the primary with every auxiliary task), one epoch per fork, "
        f"{MERGE_VALIDATION} validation examples (batches of 100), driven through the "
        "callback's hooks. Each branch's epoch ends with one evaluation on the validation set "
        "(its best epoch is kept, as the reference does); the last branch's also merges: the "
        "greedy search over the α grid evaluates up to 1 + (B − 1) × 6 merges and sets the "
        "weights. Times are medians over the rounds, and in plain steps of the same K.",
        "",
        "| XLA | K | end of a branch's epoch (ms) | merge (ms) | evaluations per merge "
        "| merge in plain steps |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for (k, jit), (evaluation, merge, evaluations) in merges.items():
        plain = median.get(("mlp", k, jit, PLAIN.key))
        in_steps = "—" if plain is None else f"{merge / plain:.0f}"
        lines.append(
            f"| {'yes' if jit else 'no'} | {k} | {1000 * evaluation:.1f} | {1000 * merge:.1f} "
            f"| {evaluations} | {in_steps} |"
        )
    lines.append("")
    return lines


def check_keys(keys):
    """``keys``, after checking that each names a configuration of `CONFIGS`."""
    unknown = [key for key in keys if key not in CONFIGS]
    if unknown:
        raise app.UsageError(f"Unknown configurations {unknown}; the keys are {list(CONFIGS)}.")
    return list(keys)


def floor_of(config, k):
    """The floor with as many backward passes as ``config``."""
    return FLOOR_1.key if config.backward_passes(k) in (1, None) else FLOOR.key


def main(argv):
    del argv
    if ON_TENSORFLOW:
        tf.get_logger().setLevel("ERROR")
    else:
        # Tables 1-3 compare with a TensorFlow tape (the floor) and read TensorFlow's allocator.
        given = [
            n for n in ("models", "scaling_k", "memory_k", "methods_k", "probe") if FLAGS[n].present
        ]
        if any(FLAGS[n].value for n in given):
            raise app.UsageError(
                f"--{', --'.join(given)} need the TensorFlow backend (Keras runs on "
                f"{keras.backend.backend()!r}); on it only --forward_k runs."
            )
        FLAGS.models, FLAGS.scaling_k, FLAGS.memory_k, FLAGS.methods_k = [], [], [], []
    if FLAGS.probe:
        probe(FLAGS.probe)
        return

    # (network, K, jit, config key) of every timed configuration; the K = 1
    # mlp rows are shared by the per-method and scaling tables.
    method_configs = check_keys(METHOD_TABLE if FLAGS.configs is None else FLAGS.configs)
    scaling_configs = check_keys(
        SCALING_TABLE if FLAGS.scaling_configs is None else FLAGS.scaling_configs
    )
    method_jobs = [
        (network, 1, s.lower() == "true", key)
        for network in FLAGS.models
        for s in FLAGS.xla
        for key in method_configs
    ]
    scaling_jobs = [
        ("mlp", int(k), s.lower() == "true", key)
        for s in FLAGS.scaling_xla
        for k in FLAGS.scaling_k
        for key in scaling_configs
    ]
    many_configs = MANY_TASKS_TABLE
    if FLAGS.methods_configs is not None:
        references = [PLAIN.key, FLOOR_1.key, FLOOR.key]
        many_configs = references + [
            key for key in check_keys(FLAGS.methods_configs) if key not in references
        ]
    many_jobs = [
        ("mlp", int(k), s.lower() == "true", key)
        for s in FLAGS.methods_xla
        for k in FLAGS.methods_k
        for key in many_configs
    ]
    names = list(dict.fromkeys(method_jobs + scaling_jobs + many_jobs))
    memory_jobs = [
        ("mlp", int(k), key) for k in FLAGS.memory_k for key in check_keys(FLAGS.memory_configs)
    ]
    if many_jobs:
        memory_jobs += [
            ("mlp", int(k), key)
            for k in FLAGS.methods_memory_k
            for key in many_configs
            if key != FLOOR_1.key
        ]
        memory_jobs = list(dict.fromkeys(memory_jobs))
    forward_jit = not ON_TENSORFLOW if FLAGS.forward_xla == "auto" else FLAGS.forward_xla == "true"
    forward_jobs = [
        ("mlp", int(k), forward_jit, key) for k in FLAGS.forward_k for key in FORWARD_TABLE
    ]
    names = list(dict.fromkeys(names + forward_jobs))

    print(f"Building and warming up {len(names)} configurations (tracing, XLA compilation).")
    fits, compile_seconds = {}, {}
    progress = keras.utils.Progbar(len(names), unit_name="configuration")
    for i, (network, k, jit, key) in enumerate(names):
        model, x, y = build(network, k, CONFIGS[key], jit)
        start = time.perf_counter()
        model.train_on_batch(x, y)  # the first step traces and compiles
        compile_seconds[(network, k, jit, key)] = time.perf_counter() - start
        for _ in range(FLAGS.warmup - 1):
            model.train_on_batch(x, y)
        fits[(network, k, jit, key)] = (model, x, y)
        progress.update(i + 1)
    # One more untimed step each once all are built: the first call of a
    # model after other models were built is slow (~100 ms on the mlp).
    for model, x, y in fits.values():
        model.train_on_batch(x, y)

    print(f"\nTiming: {FLAGS.rounds} interleaved rounds of {FLAGS.steps} steps per configuration.")
    times = {name: [] for name in names}
    # The models' traced graphs stay out of the garbage collector's full
    # collections, which would otherwise land in random timed steps.
    gc.collect()
    gc.freeze()
    progress = keras.utils.Progbar(FLAGS.rounds * len(names), unit_name="configuration")
    for r in range(FLAGS.rounds):
        for i, name in enumerate(names):
            model, x, y = fits[name]
            for _ in range(FLAGS.steps):
                start = time.perf_counter()
                model.train_on_batch(x, y)
                times[name].append(time.perf_counter() - start)
            progress.update(r * len(names) + i + 1)
    gc.unfreeze()
    median = {name: statistics.median(t) for name, t in times.items()}
    merges = {}
    if many_jobs and FLAGS.methods_merge:
        print(f"\nForkMerge merges: {FLAGS.rounds} rounds at each K.")
        for s in FLAGS.methods_xla:
            for k in FLAGS.methods_k:
                jit = s.lower() == "true"
                merges[(int(k), jit)] = merge_cost(int(k), jit, FLAGS.rounds)
    forward_memory = {}
    if forward_jobs and FLAGS.forward_memory and not ON_TENSORFLOW:
        for name in forward_jobs:
            forward_memory[name] = xla_temp_bytes(*fits[name])
    del fits
    gc.collect()
    if forward_jobs and FLAGS.forward_memory and ON_TENSORFLOW:
        print(f"\nMemory of the gradient-path table: {len(forward_jobs)} fresh processes.")
        for name in forward_jobs:
            network, k, _, key = name
            forward_memory[name] = run_probe(network, k, key, False)["step_peak"]

    memory = {}
    if memory_jobs:
        print(
            f"\nMemory: {len(memory_jobs)} configurations, each in {FLAGS.memory_repeats} fresh "
            "process(es)."
        )
        progress = keras.utils.Progbar(len(memory_jobs), unit_name="configuration")
        for i, (network, k, key) in enumerate(memory_jobs):
            memory[(network, k, key)] = run_probe(network, k, key, FLAGS.memory_xla)
            progress.update(i + 1)
    print()

    lines = [
        "# Cost of a censored train step",
        "",
        f"`{backend_prefix()}{command_line()}` on {platform.node() or 'this machine'} "
        f"({os.cpu_count()} CPUs, {backend_version()}, Keras {keras.__version__}); median of "
        f"{FLAGS.rounds * FLAGS.steps} steps per configuration, interleaved rounds, all "
        "configurations timed in the same run. λ = "
        f"{LAMBDA:g} for every auxiliary task, Adam.",
        "",
    ]
    if method_jobs or scaling_jobs:
        lines += [
            "- **ratio to plain** = median step ÷ the plain Keras multi-output step (sum of λ-weighted "
            "losses, one backward pass) of the same network, XLA setting and number K of auxiliary "
            "tasks. Goal: ≤ 1.5×.",
            "- **ratio to floor** = median step ÷ the *floor* with as many backward passes: a bare "
            "`keras.Model.train_step` of the same network (compiled with the same `jit_compile`) that "
            "runs one forward pass under a persistent tape, takes one `tape.gradient` per task "
            "(primary loss, each λ-weighted auxiliary loss) and applies their sum with Adam — no "
            "censoring, metrics or state. It is the unavoidable cost of a step that needs one "
            "gradient per task; what is above it is censoring arithmetic and bookkeeping. One-pass "
            "configurations (plain, `single_task`, `multitask` without the cosine metric) are "
            "compared with the one-pass floor (gradient of the weighted total).",
            "- Every censoring method with its `compile` defaults: one backward pass per task, "
            "the `<aux>_cosine` metric included, except `single_task` (primary gradient only: one "
            "backward pass, no cosine metric, so it should cost about a plain step). `multitask` "
            "without the cosine metric takes one backward pass of the weighted total: exactly the "
            "plain step. With K ≥ 2, `projection` (and `unweighted_cosine`) take the forward "
            "gradient path by default: the primary gradient, one directional derivative of the K "
            "auxiliary losses and the update's backward pass, no cosine metric (docs/censoring.md, "
            '"Two gradient paths"); their ratio to floor is then against the floor of 1 + K '
            "backward passes, which they do not take.",
            "",
        ]

    def ratios(network, k, jit, key):
        """Median (ms) and its ratios to plain and to the floor, formatted
        ("—" where the reference was not timed)."""
        m = median[(network, k, jit, key)]

        def ratio(reference):
            reference = median.get((network, k, jit, reference))
            return "—" if reference is None else f"{m / reference:.2f}×"

        return f"{1000 * m:.2f}", ratio(PLAIN.key), ratio(floor_of(CONFIGS[key], k))

    if method_jobs:
        lines += [
            "## Step time per censoring method (one auxiliary task)",
            "",
            "| network | XLA | configuration | backward passes | median step (ms) "
            "| ratio to plain | ratio to floor |",
            "|---|---|---|---:|---:|---:|---:|",
        ]
        for network, k, jit, key in method_jobs:
            m, to_plain, to_floor = ratios(network, k, jit, key)
            lines.append(
                f"| {network} | {'yes' if jit else 'no'} | {CONFIGS[key].label} "
                f"| {CONFIGS[key].backward_passes(k)} | {m} | {to_plain} | {to_floor} |"
            )
        lines.append("")

    if scaling_jobs:
        lines += [
            "## Growth with the number K of auxiliary tasks (mlp)",
            "",
            "The mlp trunk with K auxiliary Dense(100) heads (MSE); ratios at the same K.",
            "",
            "| XLA | K | configuration | backward passes | median step (ms) | ratio to plain "
            "| ratio to floor |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        for network, k, jit, key in scaling_jobs:
            m, to_plain, to_floor = ratios(network, k, jit, key)
            lines.append(
                f"| {'yes' if jit else 'no'} | {k} | {CONFIGS[key].label} "
                f"| {CONFIGS[key].backward_passes(k)} | {m} | {to_plain} | {to_floor} |"
            )
        lines.append("")

    if many_jobs:
        lines += many_tasks_table(many_jobs, ratios, median, memory)
    if merges:
        lines += merge_table(merges, median)
    if memory_jobs:
        lines += [
            "## Peak memory of a step (mlp)",
            "",
            f"Each configuration alone in a fresh process (median of {FLAGS.memory_repeats}), XLA "
            f"{'on' if FLAGS.memory_xla else 'off'}, {max(FLAGS.warmup, 1)} warm-up step(s) then "
            f"{FLAGS.memory_steps} measured steps on the batch held as tensors, one op at a time "
            "(`inter_op_parallelism_threads=1`), the CPU device allocating through a BFC "
            "allocator (`TF_CPU_ALLOCATOR_USE_BFC=true`; TensorFlow's default oneDNN allocator "
            "counts only allocations ≥ 256 KiB in its statistics, none of the mlp's). The step "
            "peak still varies by about ±15% from process to process (the op order TensorFlow "
            "picks); differences smaller than that are noise.",
            "",
            "- **held**: bytes the allocator holds before the measured steps (weights, optimizer "
            "slots, censoring state; `tf.config.experimental.get_memory_info('CPU:0')`).",
            "- **step peak**: the allocator's peak during the measured steps minus what it held: "
            "the activations, gradients and temporaries of a step, every tensor counted (in "
            "256-byte chunks); ratio to plain at the same K. Not counted: Python objects, graphs, "
            "memory a kernel library allocates by itself.",
            "- **RSS, first steps** / **RSS, later steps**: how far the process's peak resident "
            "set (`VmHWM`, reset through `/proc/self/clear_refs`) rose above its resident set "
            "during the warm-up steps (tracing, function instantiation and XLA compilation "
            "included) / during the measured steps. It counts everything but only in pages and "
            "malloc arenas: after the first steps, freed memory is reused and it barely moves.",
            "",
            "| K | configuration | backward passes | held (MiB) | step peak (MiB) "
            "| step peak ratio to plain | RSS, first steps (MiB) | RSS, later steps (MiB) |",
            "|---:|---|---:|---:|---:|---:|---:|---:|",
        ]

        def mib(value, digits):
            return "—" if value is None else f"{value / MIB:.{digits}f}"

        for network, k, key in memory_jobs:
            result = memory[(network, k, key)]
            plain = memory.get((network, k, PLAIN.key))
            ratio = "—"
            if plain and plain["step_peak"] > 0:
                ratio = f"{result['step_peak'] / plain['step_peak']:.2f}×"
            lines.append(
                f"| {k} | {CONFIGS[key].label} | {CONFIGS[key].backward_passes(k) or '—'} "
                f"| {mib(result['held'], 2)} | {mib(result['step_peak'], 2)} | {ratio} "
                f"| {mib(result['rss_first'], 1)} | {mib(result['rss_later'], 1)} |"
            )
        lines.append("")
    if forward_jobs:
        lines += forward_table(forward_jobs, median, compile_seconds, forward_memory)
    write_markdown(lines[:-1] if lines[-1] == "" else lines, FLAGS.output)


if __name__ == "__main__":
    app.run(main)
