"""MAXL against its baselines on Fashion-MNIST: Single, Human, Random,
K-Means and MAXL with the 4-layer ConvNet, several seeds, mean ± std test
accuracy of the primary task.

Primary task: the four coarse Fashion-MNIST groups (tops / bottoms and
dresses / footwear / bags), so that Human has a real hierarchy (the ten fine
classes, ψ = [4, 2, 3, 1]); every method uses that ψ. The protocol is
`trainers.maxl_experiment`: same backbone, focal loss, SGD 0.1 with momentum
0.9, weight decay 5e-4 and cosine annealing for θ1, SGD 1e-3 with weight
decay 5e-4 for MAXL's generator, test accuracy after the last epoch (no
selection on the test set). Budgeted for a 2-core CPU: a training subset and
a narrower ConvNet (flags below; the table states them).

Resumable: each finished run is appended to ``--csv``; runs already there are
skipped. ``--summarize`` only rewrites the table and plot.

Run: ``python -m benchmarks.maxl_fashion`` (writes
``benchmarks/results/maxl_fashion.{csv,md,png}``).

Reference: Liu, Davison & Johns (2019), MAXL, §4 (baselines); docs/maxl.md#baselines.
"""

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.report import append_row, read_rows, write_markdown
from trainers import maxl_experiment

FLAGS = flags.FLAGS
flags.DEFINE_list("methods", ["single", "human", "random", "kmeans", "maxl"], "Methods.")
flags.DEFINE_integer("seeds", 3, "Seeds 0 .. seeds-1 (subset, split, weights).")
flags.DEFINE_integer("epochs", 8, "Epochs (MAXL: stage-1 + stage-2 passes each).")
flags.DEFINE_integer("train_size", 6000, "Training examples (a low-data regime).")
flags.DEFINE_list("filters", ["16", "32", "64", "128"], "ConvNet widths.")
flags.DEFINE_integer("order", 2, "MAXL meta-gradient order.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST files (default: known places).")
flags.DEFINE_string("csv", "benchmarks/results/maxl_fashion.csv", "Run log (appended).")
flags.DEFINE_string("output", "benchmarks/results/maxl_fashion.md", "Summary table.")
flags.DEFINE_bool("summarize", False, "Only rewrite the table and plot from the CSV.")

FIELDS = ["method", "seed", "test_accuracy", "best_val_accuracy", "seconds", "auxiliary_usage"]


def summarize(rows, output):
    by_method = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)
    order = [m for m in maxl_experiment.METHODS if m in by_method]
    order = ["single"] + [m for m in order if m != "single"] if "single" in order else order
    lines = [
        "# MAXL and its baselines on Fashion-MNIST (4 coarse classes)",
        "",
        f"`python -m benchmarks.maxl_fashion` — 4-layer ConvNet ({','.join(FLAGS.filters)}), "
        f"{FLAGS.train_size} training images, {FLAGS.epochs} epochs (MAXL: {FLAGS.epochs} stage-1 "
        f"and {FLAGS.epochs} stage-2 passes, order {FLAGS.order}), batch 100, ψ = [4, 2, 3, 1]; test "
        "accuracy of the primary task on the 10,000 test images after the last epoch; mean ± std "
        "over seeds (each seed: its own training subset, split and initial weights).",
        "",
        "| method | seeds | test accuracy | vs Single | best val accuracy | s / run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    single = None
    if "single" in by_method:
        single = np.mean([float(r["test_accuracy"]) for r in by_method["single"]])
    for method in order:
        acc = np.array([float(r["test_accuracy"]) for r in by_method[method]])
        val = np.array([float(r["best_val_accuracy"]) for r in by_method[method]])
        secs = np.array([float(r["seconds"]) for r in by_method[method]])
        std = acc.std(ddof=1) if len(acc) > 1 else 0.0
        delta = "–" if single is None else f"{(acc.mean() - single) * 100:+.2f} pt"
        lines.append(
            f"| {method} | {len(acc)} | {acc.mean():.4f} ± {std:.4f} | {delta} | "
            f"{val.mean():.4f} | {secs.mean():.0f} |"
        )
    write_markdown(lines, output)
    plot(by_method, order, output.replace(".md", ".png"))


def plot(by_method, order, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, method in enumerate(order):
        acc = [float(r["test_accuracy"]) for r in by_method[method]]
        ax.bar(i, np.mean(acc), yerr=np.std(acc, ddof=1) if len(acc) > 1 else 0, capsize=4)
        ax.scatter([i] * len(acc), acc, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(order)), order)
    values = [float(r["test_accuracy"]) for m in order for r in by_method[m]]
    ax.set_ylim(min(values) - 0.01, max(values) + 0.005)
    ax.set_ylabel("test accuracy (primary, 4 classes)")
    ax.set_title("Fashion-MNIST: MAXL and baselines")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    if FLAGS.summarize:
        summarize(read_rows(FLAGS.csv), FLAGS.output)
        return
    done = {(r["method"], int(r["seed"])) for r in read_rows(FLAGS.csv)}
    runs = [(m, s) for s in range(FLAGS.seeds) for m in FLAGS.methods if (m, s) not in done]
    print(f"{len(runs)} runs to do ({len(done)} already in {FLAGS.csv})")
    progress = keras.utils.Progbar(len(runs), unit_name="run")
    tasks = {}
    for i, (method, seed) in enumerate(runs):
        if seed not in tasks:
            tasks = {
                seed: maxl_experiment.load_task(
                    "fashion_mnist", FLAGS.data_dir, FLAGS.train_size, seed=seed
                )
            }
        config = maxl_experiment.TrainConfig(
            method=method,
            filters=tuple(int(f) for f in FLAGS.filters),
            order=FLAGS.order,
            epochs=FLAGS.epochs,
            seed=seed,
        )
        result, served = maxl_experiment.train(config, tasks[seed])
        if method == "maxl" and seed == 0:
            maxl_experiment.plot_learned_labels(
                served, tasks[seed], FLAGS.output.replace(".md", "_labels.png")
            )
        append_row(FLAGS.csv, {**result, "method": method, "seed": seed}, FIELDS)
        progress.update(i + 1, values=[("s/run", result["seconds"])])
        print(f"\n{method} seed {seed}: test accuracy {result['test_accuracy']:.4f}")
    summarize(read_rows(FLAGS.csv), FLAGS.output)


if __name__ == "__main__":
    app.run(main)
