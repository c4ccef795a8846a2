"""MAXL against its baselines on Fashion-MNIST: Single, Human, Random, K-Means and MAXL (order
2 and order 1) with the 4-layer ConvNet, five seeds, each run trained until its validation
accuracy plateaus; the test accuracy of the primary task, and per method the paired per-seed
difference to Single with its 95% confidence interval.

Primary task: the four coarse Fashion-MNIST groups (tops / bottoms and dresses / footwear /
bags), so that Human has a real hierarchy (the ten fine classes, ψ = [4, 2, 3, 1]); every method
uses that ψ. The protocol is `keras_aux.experiments.maxl.run_benchmark`: same backbone, focal
loss, SGD 0.1 with momentum 0.9, weight decay 5e-4 and cosine annealing over ``--max_epochs``
for θ1, SGD 1e-3 with weight decay 5e-4 for MAXL's generator; a run stops after
``--patience`` epochs without a new best validation accuracy (5,000 held-out training images)
and is tested with its best validation epoch's weights (no selection on the test set). The
paper trains 200 epochs; this budget is sized for a CPU: a training subset, a narrower ConvNet,
at most 40 epochs (flags below; the table states them).

Resumable and splittable: each finished (method, seed) run is appended to ``--csv`` at once, and
runs already there are skipped, so an interrupted benchmark continues where it stopped, and two
processes can share the log, each with its own ``--methods`` or ``--seeds`` (``--threads=1``
each on a 2-core machine). The log refuses runs of another protocol (other flags).
``--summarize`` only rewrites the table and plot.

Run::

    python -m benchmarks.maxl_fashion                   # everything: 6 methods x 5 seeds
    # or in two chunks, one per core:
    python -m benchmarks.maxl_fashion --threads=1 --methods=maxl_order2,single,human &
    python -m benchmarks.maxl_fashion --threads=1 --methods=maxl_order1,random,kmeans &
    python -m benchmarks.maxl_fashion --summarize

writes ``benchmarks/results/maxl_fashion.{csv,md,png}`` and ``maxl_fashion_labels.png``.

Reference: Liu, Davison & Johns (2019), MAXL, §4 (baselines); docs/maxl.md#baselines.
"""

import functools

import tensorflow as tf
from absl import app, flags

from keras_aux.experiments import maxl
from keras_aux.experiments.options import set_tensorflow_threads
from keras_aux.experiments.reporting import read_rows

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "methods", list(maxl.BENCHMARK_METHODS), f"Methods, from {list(maxl.BENCHMARK_METHODS)}."
)
flags.DEFINE_list("seeds", ["0", "1", "2", "3", "4"], "Seeds (subset, split, weights).")
flags.DEFINE_integer("max_epochs", 40, "Most epochs per run (MAXL: stage-1 + stage-2 passes).")
flags.DEFINE_integer("patience", 8, "Stop after this many epochs without a better val accuracy.")
flags.DEFINE_integer("train_size", 6000, "Training examples (a low-data regime).")
flags.DEFINE_list("filters", ["16", "32", "64", "128"], "ConvNet widths.")
flags.DEFINE_string("data_dir", None, "Fashion-MNIST files (default: known places).")
flags.DEFINE_string("csv", "benchmarks/results/maxl_fashion.csv", "Run log (appended).")
flags.DEFINE_string("output", "benchmarks/results/maxl_fashion.md", "Summary table.")
flags.DEFINE_integer("threads", 0, "TensorFlow threads per op pool (0: TensorFlow's default).")
flags.DEFINE_bool("summarize", False, "Only rewrite the table and plot from the CSV.")


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    set_tensorflow_threads(FLAGS.threads)
    config = maxl.BenchmarkConfig(
        methods=tuple(FLAGS.methods),
        seeds=tuple(int(s) for s in FLAGS.seeds),
        max_epochs=FLAGS.max_epochs,
        patience=FLAGS.patience,
        train_size=FLAGS.train_size,
        filters=tuple(int(f) for f in FLAGS.filters),
        data_dir=FLAGS.data_dir,
        csv=FLAGS.csv,
        output=FLAGS.output,
    )
    if FLAGS.summarize:
        maxl.summarize_benchmark(read_rows(config.csv), config)
    else:
        maxl.run_benchmark(config, log=functools.partial(print, flush=True))


if __name__ == "__main__":
    app.run(main)
