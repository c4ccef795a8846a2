"""Cost of the gradient aggregation alone: `Aggregated.update` compiled by XLA on random
gradients shaped like a network's variables, on the flat path and on the Gramian path, as
a share of the network's plain Keras train step measured in the same run (issue 23 §5).

For every aggregator of `keras_aux.censoring.aggregation.NAMES` (GradVac and PCGrad
included) at K = ``--k`` auxiliary tasks, and the solver methods (``--growth_methods``)
also at K = ``--growth_k``:

- *flat path*: `aggregate_flat`, what `Aggregated.update` did for every method before the
  Gramian path: the (K+1) × P matrix of the flattened gradients, the aggregator's
  ``update`` on it, the split back into variables;
- *Gramian path*: `Aggregated.update` itself, which for a `GramianWeightedAggregator`
  takes `aggregate_by_gramian` (G = Σ_v J_v J_vᵀ one variable at a time, the weights
  from G, each variable's Σ_k w_k g_{k,v}); for the other methods (ConFIG, GradDrop,
  Nash-MTL) it is the flat path, and only that is timed.

The gradients are random normal numbers with the network's variable shapes and the
pattern of a multi-task model: the shared variables have every task's gradient, each
head's only its own task's (None for the others). The weights λ are 1. Each update is
compiled (``tf.function(jit_compile=True)`` / ``jax.jit``) and timed on its own, the
gradients already on the device; the plain step is ``train_on_batch`` of the same
network as a `keras.Model` with the λ-weighted sum of the losses (benchmarks/step_overhead's
``plain``), ``jit_compile=True``, on the same batch every call. Every configuration is
timed in ``--rounds`` interleaved rounds of ``--steps`` calls; the table reports medians
and the ratios (flat ÷ Gramian, and each ÷ the plain step). On JAX, also XLA's
temporary buffers of each compiled update and of the plain step
(``memory_analysis().temp_size_in_bytes``).

Networks: ``mlp`` (benchmarks/step_overhead's: 250 inputs, four Dense(100) and K + 1
Dense(100) heads, batch 100; about 0.19 M parameters at K = 8) and ``cnn``
(benchmarks/gpu_check's: about 2.3 M parameters, batch ``--cnn_batch``).

Run: ``python -m benchmarks.aggregation_cost`` (or ``KERAS_BACKEND=jax python -m ...``)
→ ``benchmarks/results/aggregation_cost.md``. Smoke run: ``--networks=mlp --k=2
--growth_k= --rounds=1 --steps=2 --warmup=1 --output=/tmp/aggregation_cost.md``.

References: the aggregators' papers (docs/aggregation.md); the Gramian view of
Quinton & Rey (2024), "Jacobian Descent for Multi-Objective Optimization",
arXiv:2406.16232.
"""

import gc
import platform
import statistics
import time

import keras
import numpy as np
from absl import app, flags

# step_overhead defines --rounds, --steps, --warmup and --output; gpu_check --cnn_batch,
# --cnn_width and --memory (and its CNN). They are this script's too.
from benchmarks import gpu_check, step_overhead
from benchmarks.step_overhead import PLAIN, build
from keras_aux.censoring import aggregation
from keras_aux.censoring.aggregation.censor import aggregate_flat
from keras_aux.experiments.reporting import backend_description, write_markdown

FLAGS = flags.FLAGS
flags.DEFINE_list("networks", ["mlp", "cnn"], "Networks whose variable shapes are used.")
flags.DEFINE_list("k", ["2", "4", "8"], "Numbers of auxiliary tasks (every method).")
flags.DEFINE_list("growth_k", ["16", "32"], "Larger numbers of auxiliary tasks (--growth_methods).")
flags.DEFINE_list(
    "growth_methods",
    ["upgrad", "dual_proj", "mgda", "cagrad", "nash_mtl", "fairgrad", "pcgrad", "gradvac"],
    "Methods also timed at --growth_k (the solvers, and the K-step loops of PCGrad/GradVac).",
)
flags.DEFINE_list("methods", list(aggregation.NAMES), "Aggregators (aggregation.NAMES).")
# gpu_check's --memory (on JAX: XLA's temporary buffers) applies to each compiled update here.
for _name in ("rounds", "steps", "warmup", "output", "cnn_batch", "cnn_width", "memory"):
    flags.declare_key_flag(_name)
FLAGS.set_default("output", "benchmarks/results/aggregation_cost.md")
FLAGS.set_default("cnn_batch", 32)
FLAGS.set_default("steps", 10)

ON_TENSORFLOW = step_overhead.ON_TENSORFLOW
MIB = 2.0**20


def task_gradients(model, outputs, k, seed):
    """Random (primary, auxiliary, weights) shaped like ``model``'s gradients: a
    variable of a head (the layer named like an output) has only its task's."""
    rng = np.random.default_rng(seed)
    tasks = list(outputs)
    grads = [[] for _ in tasks]
    for variable in model.trainable_variables:
        owner = variable.path.split("/")[0]
        for t, task in enumerate(tasks):
            reached = owner not in tasks or owner == task
            value = rng.normal(size=variable.shape).astype("float32") if reached else None
            grads[t].append(None if value is None else keras.ops.convert_to_tensor(value))
    weights = [keras.ops.convert_to_tensor(1.0) for _ in range(k)]
    return grads[0], grads[1:], weights


def update_functions(method, k):
    """``{path: compiled update}`` of one method at ``k`` auxiliary tasks, and its state."""
    censor = aggregation.Aggregated(method, num_auxiliary=k)
    aggregator = censor.aggregator_for(k)

    def flat(primary, auxiliary, weights, state):
        return aggregate_flat(aggregator, [primary, *auxiliary], [None, *weights], state)

    functions = {"flat": flat}
    if isinstance(aggregator, aggregation.GramianWeightedAggregator):
        functions["gramian"] = censor.update
    return {path: gpu_check.compiled(f) for path, f in functions.items()}, censor.init([])


def first_gradient(result):
    grads, _ = result
    return next(g for g in grads if g is not None)


def temp_bytes(function, args):
    """XLA's temporary buffers of a JAX-compiled ``function(*args)`` (bytes)."""
    return function.lower(*args).compile().memory_analysis().temp_size_in_bytes


def main(argv):
    del argv
    methods = FLAGS.methods
    for name in methods + FLAGS.growth_methods:
        aggregation.get(name)  # an unknown name fails here, before any compilation
    jobs = [(network, int(k)) for network in FLAGS.networks for k in FLAGS.k]
    jobs += [(network, int(k)) for network in FLAGS.networks for k in FLAGS.growth_k]

    # Build and compile everything first, then time it all in interleaved rounds.
    calls, plain_memory, update_memory, parameters = {}, {}, {}, {}
    count = sum(1 + len(methods if str(k) in FLAGS.k else FLAGS.growth_methods) for _, k in jobs)
    print(f"Building and compiling {count} network sizes and methods.")
    progress = keras.utils.Progbar(count, unit_name="configuration")
    done = 0
    for network, k in jobs:
        graph = gpu_check.cnn_graph if network == "cnn" else network
        model, x, y = build(graph, k, PLAIN, True)
        x, y = gpu_check.on_device(x), gpu_check.on_device(y)
        for _ in range(FLAGS.warmup):
            model.train_on_batch(x, y)
        calls[(network, k, "plain", "step")] = lambda model=model, x=x, y=y: model.train_on_batch(
            x, y
        )
        parameters[(network, k)] = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
        if FLAGS.memory and not ON_TENSORFLOW:
            plain_memory[(network, k)] = step_overhead.xla_temp_bytes(model, x, y)
        outputs = list(model.output) if isinstance(model.output, dict) else model.output_names
        primary, auxiliary, weights = task_gradients(model, outputs, k, seed=k)
        done += 1
        progress.update(done)
        for method in methods if str(k) in FLAGS.k else FLAGS.growth_methods:
            functions, state = update_functions(method, k)
            args = (primary, auxiliary, weights, state)
            for path, function in functions.items():
                for _ in range(FLAGS.warmup):
                    gpu_check.wait(first_gradient(function(*args)))
                calls[(network, k, method, path)] = lambda function=function, args=args: (
                    gpu_check.wait(first_gradient(function(*args)))
                )
                if FLAGS.memory and not ON_TENSORFLOW:
                    update_memory[(network, k, method, path)] = temp_bytes(function, args)
            done += 1
            progress.update(done)

    print(f"\nTiming: {FLAGS.rounds} interleaved rounds of {FLAGS.steps} calls per configuration.")
    times = {name: [] for name in calls}
    gc.collect()
    gc.freeze()  # the traced graphs stay out of collections landing in timed calls
    progress = keras.utils.Progbar(FLAGS.rounds * len(calls), unit_name="configuration")
    for r in range(FLAGS.rounds):
        for i, (name, call) in enumerate(calls.items()):
            for _ in range(FLAGS.steps):
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
            progress.update(r * len(calls) + i + 1)
    gc.unfreeze()
    median = {name: statistics.median(t) for name, t in times.items()}
    write_markdown(table(jobs, median, parameters, plain_memory, update_memory), FLAGS.output)


def command_line():
    """The command that reproduces this run (every flag given)."""
    prefix = "" if ON_TENSORFLOW else f"KERAS_BACKEND={keras.backend.backend()} "
    parts = [f"{prefix}python -m benchmarks.aggregation_cost"]
    for name in ["networks", "k", "growth_k", "growth_methods", "methods", "memory", "rounds",
                 "steps", "warmup", "cnn_batch", "cnn_width"]:  # fmt: skip
        if FLAGS[name].present:
            value = FLAGS[name].value
            value = ",".join(value) if isinstance(value, list) else value
            parts.append(f"--{name}={str(value).lower() if isinstance(value, bool) else value}")
    return " ".join(parts)


def table(jobs, median, parameters, plain_memory, update_memory):
    """The Markdown lines of the result."""
    memory = bool(update_memory)
    lines = [
        "# Cost of the gradient aggregation alone",
        "",
        f"`{command_line()}` — {backend_description()}, {platform.processor() or 'CPU'} "
        f"({gpu_check.device_name()}), XLA. Median of {FLAGS.rounds} interleaved rounds of "
        f"{FLAGS.steps} calls. `Aggregated(method).update` on random gradients with the "
        "network's variable shapes (heads: their own task's only), compiled alone: *flat* "
        "builds the (K+1) × P matrix, *Gramian* sums G = Σ_v J_v J_vᵀ over the variables "
        "(the path `Aggregated` takes for a Gramian-weighted method; — where a method has "
        "none). % of plain: the update's time ÷ the plain Keras train step of the same "
        "network (K + 1 heads, λ-weighted sum of the losses, `jit_compile=True`) in this run.",
        "",
    ]
    for network, k in dict.fromkeys(jobs):
        plain = median[(network, k, "plain", "step")]
        batch = FLAGS.cnn_batch if network == "cnn" else 100
        line = (
            f"- `{network}`, K = {k}: {parameters[(network, k)]:,} parameters, plain step "
            f"{plain * 1e3:.2f} ms (batch {batch})"
        )
        if (network, k) in plain_memory:
            line += f", its XLA temporaries {plain_memory[(network, k)] / MIB:.1f} MiB"
        lines.append(line + ".")
    lines += [
        "",
        "| network | K | method | flat (ms) | Gramian (ms) | flat ÷ Gramian | flat, % of plain "
        "| Gramian, % of plain |" + (" flat temp (MiB) | Gramian temp (MiB) |" if memory else ""),
        "|---|---|---|---|---|---|---|---|" + ("---|---|" if memory else ""),
    ]
    for network, k in dict.fromkeys(jobs):
        plain = median[(network, k, "plain", "step")]
        methods = FLAGS.methods if str(k) in FLAGS.k else FLAGS.growth_methods
        for method in methods:
            flat = median[(network, k, method, "flat")]
            gramian = median.get((network, k, method, "gramian"))
            row = (
                f"| {network} | {k} | {method} | {flat * 1e3:.3f} | "
                + ("—" if gramian is None else f"{gramian * 1e3:.3f}")
                + " | "
                + ("—" if gramian is None else f"{flat / gramian:.2f}×")
                + f" | {100 * flat / plain:.1f} % | "
                + ("—" if gramian is None else f"{100 * gramian / plain:.1f} %")
                + " |"
            )
            if memory:
                flat_mib = update_memory[(network, k, method, "flat")] / MIB
                gramian_bytes = update_memory.get((network, k, method, "gramian"))
                row += f" {flat_mib:.2f} | " + (
                    "—" if gramian_bytes is None else f"{gramian_bytes / MIB:.2f}"
                )
                row += " |"
            lines.append(row)
    return lines


if __name__ == "__main__":
    app.run(main)
