"""Train-step cost of MAXL (second and first order) relative to the Single
baseline: same backbone, same batch, one run, with and without XLA.

Timed configurations (each a compiled model; rounds are interleaved so that
background load hits all of them alike; the median step is reported):

- ``single``: the 4-layer ConvNet with a primary head, focal loss, SGD.
- ``maxl order k, stage 1`` / ``stage 2``: one step of each stage alone (the
  paper's schedule alternates whole epochs of them, so its average step
  costs the mean of the two).
- ``maxl order k, both stages``: a stage-1 and a stage-2 update on the same
  batch (``schedule="interleaved"``, k = 1): the cost of one θ1 update plus
  one θ2 update, the comparison the goals (≤ 4× second order, ≤ 3× first
  order) are read against here.

The gradient-cosine metric is off in the timed MAXL models (it adds one
backward pass in stage 1); one row with it on shows its price.

Run: ``python -m benchmarks.maxl_cost`` (writes ``benchmarks/results/maxl_cost.md``).

Reference: Liu, Davison & Johns (2019), MAXL; docs/maxl.md.
"""

import os
import platform
import statistics
import time

import keras
import numpy as np
from absl import app, flags

from keras_aux.experiments.reporting import backend_description, write_markdown
from keras_aux.losses import FocalLoss
from keras_aux.maxl import MAXL, conv4_backbone, single_task_network

FLAGS = flags.FLAGS
flags.DEFINE_list("xla", ["false", "true"], "jit_compile settings to time.")
flags.DEFINE_integer("rounds", 4, "Interleaved timing rounds.")
flags.DEFINE_integer("steps", 8, "Timed steps per configuration per round.")
flags.DEFINE_integer("warmup", 2, "Untimed steps per configuration (tracing, XLA compile).")
flags.DEFINE_integer("batch_size", 100, "Batch size.")
flags.DEFINE_string("output", "benchmarks/results/maxl_cost.md", "Markdown table path.")

PSI = [3] * 10
SHAPE = (28, 28, 1)


def batch(size):
    rng = np.random.default_rng(0)
    x = rng.random((size, *SHAPE)).astype("float32")
    y = rng.integers(0, len(PSI), size=size).astype("int32")
    return x, y


def single(jit):
    keras.utils.set_random_seed(0)
    model = single_task_network(conv4_backbone(SHAPE, seed=0), len(PSI), seed=0)
    model.compile(keras.optimizers.SGD(0.01), loss={"primary": FocalLoss()}, jit_compile=jit)
    x, y = batch(FLAGS.batch_size)
    return lambda: model.train_on_batch(x, {"primary": y})


def maxl(jit, order, stage, cosine=False):
    keras.utils.set_random_seed(0)
    model = MAXL.from_backbone(
        conv4_backbone,
        SHAPE,
        PSI,
        seed=0,
        order=order,
        schedule="interleaved" if stage == "both" else "epoch",
        track_gradient_cosine=cosine,
    )
    model.compile(jit_compile=jit)
    if stage != "both":
        model.stage = stage  # the paper schedule's function for that stage
    x, y = batch(FLAGS.batch_size)
    return lambda: model.train_on_batch(x, y)


def configurations():
    rows = [("single", lambda jit: single(jit))]
    for order in (2, 1):
        for stage in (1, 2, "both"):
            label = f"maxl order {order}, " + (
                "both stages" if stage == "both" else f"stage {stage} only"
            )
            rows.append((label, lambda jit, o=order, s=stage: maxl(jit, o, s)))
    rows.append(
        (
            "maxl order 2, both stages, with gradient cosine",
            lambda jit: maxl(jit, 2, "both", cosine=True),
        )
    )
    return rows


def main(argv):
    del argv
    jobs = []
    for jit in [s.lower() == "true" for s in FLAGS.xla]:
        for label, make in configurations():
            step = make(jit)
            for _ in range(FLAGS.warmup):
                step()
            jobs.append({"xla": jit, "config": label, "step": step, "times": []})
    progress = keras.utils.Progbar(FLAGS.rounds, unit_name="round")
    for r in range(FLAGS.rounds):
        for job in jobs:
            for _ in range(FLAGS.steps):
                start = time.perf_counter()
                job["step"]()
                job["times"].append(time.perf_counter() - start)
        progress.update(r + 1)
    medians = {(j["xla"], j["config"]): statistics.median(j["times"]) for j in jobs}
    lines = [
        "# MAXL train-step cost relative to Single",
        "",
        f"`python -m benchmarks.maxl_cost --rounds={FLAGS.rounds} --steps={FLAGS.steps}` on "
        f"{platform.node() or 'this machine'} ({os.cpu_count()} CPUs, {backend_description()}, "
        f"Keras {keras.__version__}); 4-layer ConvNet (32-64-128-256) on 28×28×1, ψ = 3 × 10, "
        f"batch {FLAGS.batch_size}, SGD; median of {FLAGS.rounds * FLAGS.steps} steps per "
        "configuration in interleaved rounds; one run. Ratio = median step ÷ the Single step with "
        "the same XLA setting. Goals (read on 'both stages', one θ1 and one θ2 update): second "
        "order ≤ 4×, first order ≤ 3×. The paper's schedule alternates stage-1 and stage-2 epochs, "
        "so its average step is the mean of the two 'only' rows.",
        "",
        "| XLA | configuration | median step (ms) | ratio to Single |",
        "|---|---|---:|---:|",
    ]
    for job in jobs:
        median = medians[(job["xla"], job["config"])]
        ratio = median / medians[(job["xla"], "single")]
        lines.append(
            f"| {'on' if job['xla'] else 'off'} | {job['config']} | {median * 1e3:.1f} | "
            f"{ratio:.2f}× |"
        )
    write_markdown(lines, FLAGS.output)


if __name__ == "__main__":
    app.run(main)
