"""Train-step cost of `AuxiliaryModel` under each censoring mode, relative to
the same network compiled as a plain Keras multi-output model (sum of
λ-weighted losses), with and without XLA, in one run.

Every configuration is timed in interleaved rounds (round-robin over the
configurations) so that the machine's background load hits all of them alike;
the table reports the median step time and its ratio to the plain step of the
same network and XLA setting.

Two networks:
- ``mlp``: the synthetic experiment of Lemaire (2018): 250 inputs, four shared
  Dense(100, ReLU), two linear Dense(100) heads, MSE, batch 100.
- ``lstm``: a reduced genre-LSTM (seed 001) shape: 128 frames × 64 mel bands,
  one BiLSTM(64), max over time → Dense classifier, per-frame Dense
  reconstruction of the input, batch 32.

Run: ``python -m benchmarks.step_overhead`` (writes
``benchmarks/results/step_overhead.md``).
"""

import os
import platform
import statistics
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.report import write_markdown
from keras_aux import AuxiliaryModel, censoring

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp", "lstm"], "Networks to time.")
flags.DEFINE_list("xla", ["false", "true"], "jit_compile settings to time.")
flags.DEFINE_integer("rounds", 5, "Interleaved timing rounds.")
flags.DEFINE_integer("steps", 20, "Timed steps per configuration per round.")
flags.DEFINE_integer("warmup", 3, "Untimed steps per configuration (tracing, XLA compile).")
flags.DEFINE_string("output", "benchmarks/results/step_overhead.md", "Markdown table path.")

LAMBDA = 1.0


def mlp_graph():
    x = keras.Input((250,), name="x")
    h = x
    for i in range(4):
        h = keras.layers.Dense(100, activation="relu", name=f"shared_{i}")(h)
    outputs = {
        "primary": keras.layers.Dense(100, name="primary")(h),
        "auxiliary": keras.layers.Dense(100, name="auxiliary")(h),
    }
    losses = {"primary": "mse", "auxiliary": "mse"}
    rng = np.random.default_rng(0)
    data_x = rng.uniform(size=(100, 250)).astype("float32")
    y = {
        "primary": rng.normal(size=(100, 100)).astype("float32"),
        "auxiliary": rng.normal(size=(100, 100)).astype("float32"),
    }
    return x, outputs, losses, data_x, y, {}


def lstm_graph():
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

# (label, censoring mode or None for the plain model, ema_alpha, track_gradient_cosine)
CONFIGS = (
    [("plain keras", None, 1.0, False), ("multitask, no cosine metric", "multitask", 1.0, False)]
    + [(m, m, 1.0, True) for m in censoring.MODES]
    + [("projection, EMA α=0.01", "projection", 0.01, True)]
)


def build(graph_fn, config, jit):
    """A compiled model for one configuration, plus its (x, y) batch."""
    keras.utils.set_random_seed(0)
    x, outputs, losses, data_x, y, input_targets = graph_fn()
    primary, auxiliary = list(outputs)
    weights = {auxiliary: LAMBDA}
    _, mode, alpha, track_cosine = config
    if mode is None:
        model = keras.Model(x, outputs)
        model.compile(
            keras.optimizers.Adam(1e-3),
            loss=losses,
            loss_weights={primary: 1.0, **weights},
            jit_compile=jit,
        )
        y = dict(y)
        for name, _ in input_targets.items():
            y[name] = data_x
    else:
        model = AuxiliaryModel(x, outputs, primary=primary, input_targets=input_targets)
        model.compile(
            keras.optimizers.Adam(1e-3),
            loss=losses,
            loss_weights=weights,
            censoring=mode,
            ema_alpha=alpha,
            jit_compile=jit,
            track_gradient_cosine=track_cosine,
        )
    return model, data_x, y


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    jobs = []
    for model_name in FLAGS.models:
        for jit in [s.lower() == "true" for s in FLAGS.xla]:
            for config in CONFIGS:
                model, x, y = build(GRAPHS[model_name], config, jit)
                for _ in range(FLAGS.warmup):
                    model.train_on_batch(x, y)
                jobs.append(
                    {
                        "model": model_name,
                        "xla": jit,
                        "config": config[0],
                        "fit": (model, x, y),
                        "times": [],
                    }
                )
    progress = keras.utils.Progbar(FLAGS.rounds, unit_name="round")
    for r in range(FLAGS.rounds):
        for job in jobs:
            model, x, y = job["fit"]
            for _ in range(FLAGS.steps):
                start = time.perf_counter()
                model.train_on_batch(x, y)
                job["times"].append(time.perf_counter() - start)
        progress.update(r + 1)

    plain = {
        (j["model"], j["xla"]): statistics.median(j["times"])
        for j in jobs
        if j["config"] == "plain keras"
    }
    lines = [
        "# Train-step overhead of censoring",
        "",
        f"`python -m benchmarks.step_overhead --rounds={FLAGS.rounds} --steps={FLAGS.steps}` on "
        f"{platform.node() or 'this machine'} ({os.cpu_count()} CPUs, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__}); median of {FLAGS.rounds * FLAGS.steps} steps per configuration, "
        "interleaved rounds. Ratio = median step ÷ the plain Keras multi-output step of the same network "
        f"and XLA setting (λ = {LAMBDA:g}). Goal: ≤ 1.5×. Every censoring mode (and the cosine metric) "
        "needs one backward pass per task; only multitask without the cosine metric takes one pass.",
        "",
        "| network | XLA | configuration | median step (ms) | ratio to plain |",
        "|---|---|---|---:|---:|",
    ]
    for job in jobs:
        median = statistics.median(job["times"])
        ratio = median / plain[(job["model"], job["xla"])]
        lines.append(
            f"| {job['model']} | {'yes' if job['xla'] else 'no'} | {job['config']} | {1000 * median:.2f} | {ratio:.2f}× |"
        )
    write_markdown(lines, FLAGS.output)


if __name__ == "__main__":
    app.run(main)
