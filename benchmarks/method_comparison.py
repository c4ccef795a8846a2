"""Every gradient method of keras-aux beside single task, multitask, projection and the cosine
modes, on seed 004's synthetic task and on Fashion-MNIST with a small primary set (issue 23 §6;
the protocol in `keras_aux.experiments.comparison`).

Resumable: each finished run is appended to ``--csv`` and skipped on restart; seeds are the
outer loop, so a partial log gives every method the same seeds. ``--report_only`` writes the
table (``--output``), its plot (``.png`` beside it) and the learned weights' trajectories
(``_weights.png``, from ``<csv stem>_weights.jsonl``) from the logs.

Usage::

    python -m benchmarks.method_comparison --parts=fashion,synthetic --seeds=10
    python -m benchmarks.method_comparison --parts=fashion --methods=single_task,upgrad --seeds=3
    python -m benchmarks.method_comparison --report_only

Reference: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
gradient"; Holm (1979); the papers of docs/aggregation.md, docs/weighting.md and
docs/learned_weighting.md.
"""

import multiprocessing

import tensorflow as tf
from absl import app, flags

from keras_aux.experiments import comparison
from keras_aux.experiments.options import set_tensorflow_threads

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
flags.DEFINE_bool("report_only", False, "Only write the table and plots from the logs.")
flags.DEFINE_integer(
    "runs_per_process", 100, "Runs per fresh process (XLA's code maps run out after ~200)."
)


def _run_batch(config, threads, max_runs):
    """One batch of runs in a fresh (spawned) process."""
    set_tensorflow_threads(threads)
    tf.get_logger().setLevel("ERROR")
    comparison.run(config, max_runs=max_runs)


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    if FLAGS.report_only:
        comparison.report(FLAGS.csv, FLAGS.output)
        return
    try:
        methods = comparison.validate_methods(FLAGS.methods)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    config = comparison.ComparisonConfig(
        parts=tuple(FLAGS.parts),
        methods=methods,
        seeds=tuple(range(FLAGS.first_seed, FLAGS.first_seed + FLAGS.seeds)),
        csv=FLAGS.csv,
        output=FLAGS.output,
        fashion_max_epochs=FLAGS.fashion_max_epochs,
        synthetic_max_epochs=FLAGS.synthetic_max_epochs,
        fashion_dir=FLAGS.fashion_dir,
    )
    spawn = multiprocessing.get_context("spawn")
    left = len(comparison.pending(config))
    while left:
        batch = spawn.Process(
            target=_run_batch, args=(config, FLAGS.threads, FLAGS.runs_per_process)
        )
        batch.start()
        batch.join()
        before, left = left, len(comparison.pending(config))
        if batch.exitcode != 0:
            print(f"A batch process ended with exit code {batch.exitcode}; {left} runs left.")
            if left == before:
                raise SystemExit("No run finished in that process: stopping.")


if __name__ == "__main__":
    app.run(main)
