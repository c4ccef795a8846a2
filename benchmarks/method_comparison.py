"""Every gradient method of keras-aux beside single task, multitask, projection and the cosine
modes, on seed 004's synthetic task and on Fashion-MNIST with a small primary set (issue 23 §6;
the protocol in `keras_aux.experiments.comparison`).

Resumable: each finished run is appended to ``--csv`` and skipped on restart; seeds are the
outer loop, so a partial log gives every method the same seeds. ``--report_only`` writes the
table (``--output``) and its plot (``.png`` beside it) from the CSV.

Usage::

    python -m benchmarks.method_comparison --parts=fashion,synthetic --seeds=10
    python -m benchmarks.method_comparison --parts=fashion --methods=single_task,upgrad --seeds=3
    python -m benchmarks.method_comparison --report_only

Reference: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
gradient"; Holm (1979); the papers of docs/aggregation.md, docs/weighting.md and
docs/learned_weighting.md.
"""

import tensorflow as tf
from absl import app, flags

from keras_aux.experiments import comparison
from keras_aux.experiments.reporting import read_rows

FLAGS = flags.FLAGS
flags.DEFINE_list("parts", list(comparison.PARTS), "Parts, in this order: fashion, synthetic.")
flags.DEFINE_list("methods", list(comparison.METHODS), "Methods (names of comparison.METHODS).")
flags.DEFINE_integer("seeds", 10, "Seeds 0 .. seeds-1 (with --first_seed: first_seed ..).")
flags.DEFINE_integer("first_seed", 0, "First seed.")
flags.DEFINE_string("csv", "benchmarks/results/method_comparison.csv", "Run log (appended).")
flags.DEFINE_string("output", "benchmarks/results/method_comparison.md", "Summary table.")
flags.DEFINE_integer("fashion_max_epochs", 200, "Epoch cap of a Fashion-MNIST run.")
flags.DEFINE_integer("synthetic_max_epochs", 1000, "Epoch cap of a synthetic run.")
flags.DEFINE_string("fashion_dir", None, "Fashion-MNIST files (default: the usual places).")
flags.DEFINE_integer("threads", 1, "TensorFlow intra- and inter-op threads (0: default).")
flags.DEFINE_bool("report_only", False, "Only write the table and plot from the CSV.")


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    if FLAGS.threads:
        tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
        tf.config.threading.set_inter_op_parallelism_threads(FLAGS.threads)
    if FLAGS.report_only:
        comparison.summarize(read_rows(FLAGS.csv), FLAGS.output)
        return
    try:
        methods = comparison.validate_methods(FLAGS.methods)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    comparison.run(
        comparison.ComparisonConfig(
            parts=tuple(FLAGS.parts),
            methods=methods,
            seeds=tuple(range(FLAGS.first_seed, FLAGS.first_seed + FLAGS.seeds)),
            csv=FLAGS.csv,
            output=FLAGS.output,
            fashion_max_epochs=FLAGS.fashion_max_epochs,
            synthetic_max_epochs=FLAGS.synthetic_max_epochs,
            fashion_dir=FLAGS.fashion_dir,
        )
    )


if __name__ == "__main__":
    app.run(main)
