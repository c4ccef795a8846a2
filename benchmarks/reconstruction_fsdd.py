"""Does the reconstruction auxiliary loss help? Seed 001's claim on FSDD spoken digits in a
low-data regime, each run trained until its validation accuracy plateaus, and every λ compared
with λ = 0 per seed (paired difference, 95 % interval).

The protocol is `keras_aux.experiments.reconstruction` (docs/reconstruction.md#fsdd-benchmark);
this script only turns its flags into a `ReconstructionConfig`.

Resumable and parallel-safe: each finished run is appended to
``benchmarks/results/reconstruction_fsdd.csv`` and skipped by a rerun; ``--chunk=i
--num_chunks=n`` runs every n-th run. ``--summarize`` only rewrites the table and plot.

Usage::

    python -m benchmarks.reconstruction_fsdd --data_dir=../shared/data/fsdd
    python -m benchmarks.reconstruction_fsdd --chunk=0 --num_chunks=2 &
    python -m benchmarks.reconstruction_fsdd --chunk=1 --num_chunks=2 &

Reference: seed 001; Le, Patterson & White (2018), "Supervised autoencoders".
"""

from pathlib import Path

import tensorflow as tf
from absl import app, flags

from keras_aux.experiments import reconstruction
from keras_aux.experiments.reporting import read_rows

DEFAULT_FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd"
DEFAULTS = reconstruction.ReconstructionConfig()

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", str(DEFAULT_FSDD), "FSDD root (holding recordings/).")
flags.DEFINE_integer("train_takes", DEFAULTS.train_takes, "Training takes per speaker and digit.")
flags.DEFINE_list("lambdas", [f"{v:g}" for v in DEFAULTS.lambdas], "λ values (multitask).")
flags.DEFINE_string(
    "censoring_mode", DEFAULTS.censoring_mode, "Extra configuration: λ=10 with this censoring."
)
flags.DEFINE_integer("seeds", DEFAULTS.seeds, "Seeds per configuration.")
flags.DEFINE_integer("max_epochs", DEFAULTS.max_epochs, "Upper bound on epochs per run.")
flags.DEFINE_integer("patience", DEFAULTS.patience, "Epochs without a better val accuracy.")
flags.DEFINE_float("learning_rate", DEFAULTS.learning_rate, "Adam learning rate (× 0.97/epoch).")
flags.DEFINE_string("output_dir", DEFAULTS.output_dir, "Where the CSV, table and PNG go.")
flags.DEFINE_integer("chunk", 0, "This process's chunk index.")
flags.DEFINE_integer("num_chunks", 1, "Number of parallel chunks.")
flags.DEFINE_bool("summarize", False, "Only write the table and plot from the CSV.")


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    config = reconstruction.ReconstructionConfig(
        data_dir=FLAGS.data_dir,
        train_takes=FLAGS.train_takes,
        lambdas=tuple(float(v) for v in FLAGS.lambdas),
        censoring_mode=FLAGS.censoring_mode,
        seeds=FLAGS.seeds,
        max_epochs=FLAGS.max_epochs,
        patience=FLAGS.patience,
        learning_rate=FLAGS.learning_rate,
        output_dir=FLAGS.output_dir,
        chunk=FLAGS.chunk,
        num_chunks=FLAGS.num_chunks,
    )
    if FLAGS.summarize:
        reconstruction.summarize(read_rows(config.csv()), config)
        return
    try:
        reconstruction.run(config)
    except ValueError as error:
        raise app.UsageError(str(error)) from error


if __name__ == "__main__":
    app.run(main)
