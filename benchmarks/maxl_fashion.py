"""MAXL against its baselines on Fashion-MNIST: Single, Human, Random,
K-Means and MAXL with the 4-layer ConvNet, several seeds, mean ± std test
accuracy of the primary task.

Primary task: the four coarse Fashion-MNIST groups (tops / bottoms and
dresses / footwear / bags), so that Human has a real hierarchy (the ten fine
classes, ψ = [4, 2, 3, 1]); every method uses that ψ. The protocol is
`keras_aux.experiments.maxl` (`run_benchmark`): same backbone, focal loss, SGD 0.1 with
momentum 0.9, weight decay 5e-4 and cosine annealing for θ1, SGD 1e-3 with weight
decay 5e-4 for MAXL's generator, test accuracy after the last epoch (no
selection on the test set). Budgeted for a 2-core CPU: a training subset and
a narrower ConvNet (flags below; the table states them).

Resumable: each finished run is appended to ``--csv``; runs already there are
skipped. ``--summarize`` only rewrites the table and plot.

Run: ``python -m benchmarks.maxl_fashion`` (writes
``benchmarks/results/maxl_fashion.{csv,md,png}``).

Reference: Liu, Davison & Johns (2019), MAXL, §4 (baselines); docs/maxl.md#baselines.
"""

import tensorflow as tf
from absl import app, flags

from keras_aux.experiments import maxl
from keras_aux.experiments.reporting import read_rows

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


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    config = maxl.BenchmarkConfig(
        methods=tuple(FLAGS.methods),
        seeds=FLAGS.seeds,
        epochs=FLAGS.epochs,
        train_size=FLAGS.train_size,
        filters=tuple(int(f) for f in FLAGS.filters),
        order=FLAGS.order,
        data_dir=FLAGS.data_dir,
        csv=FLAGS.csv,
        output=FLAGS.output,
    )
    if FLAGS.summarize:
        maxl.summarize_benchmark(read_rows(config.csv), config)
    else:
        maxl.run_benchmark(config)


if __name__ == "__main__":
    app.run(main)
