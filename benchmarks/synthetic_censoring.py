"""Seed 004's synthetic experiment: single task, multitask and the censoring
modes on a primary task with a same / similar / unrelated auxiliary task.

Protocol (`keras_aux.experiments.synthetic`; docs/censoring.md#synthetic-experiment,
Lemaire 2018): data from `keras_aux.datasets.synthetic_tasks` (numpy seed 0 in the reference
notebook's draw order: the published realisation; ``--data_seeds`` adds others); the
primary task learns on train1, the auxiliary task on train2
(`keras_aux.models.zip_tasks`: a different input batch each step); MLP of four
shared Dense(100, ReLU) and one linear Dense(100) head per task, MSE; Adam
(defaults); batch 100; early stopping on the validation primary loss, patience
10, best weights restored; metric = test primary MSE. Seed ``s`` fixes the
initial weights, identical for every configuration, and the shuffling.

Runs are fast by construction: XLA (``jit_compile=True``); one
``tf.function`` call per epoch (``steps_per_execution`` = steps per epoch);
one compiled model per configuration, reset to each seed's initial state
instead of re-traced (bit-identical, tested); the validation set as one
prebuilt batch; and one TensorFlow thread per process (``--threads``), since
these small matrices run faster on one core than split over two: run one
chunk per core. ``seconds`` in the CSV is the run's ``fit`` + test time; the
first run of a configuration in a process also pays its compilation.

Parallel-safe and resumable: ``--chunk=i --num_chunks=n`` runs every n-th
configuration; each finished run is appended (under a file lock) to
``--csv``, and runs already in it are skipped. ``--summarize`` writes
``benchmarks/results/synthetic_censoring.md`` from the CSV: mean ± std per cell of the
published realisation with its paired effect against single task in percent, and whether the
article's ranking holds on each data realisation.

Usage::

    python -m benchmarks.synthetic_censoring --seeds=20               # the article's grid
    python -m benchmarks.synthetic_censoring --chunk=0 --num_chunks=2 &
    python -m benchmarks.synthetic_censoring --chunk=1 --num_chunks=2 &
    python -m benchmarks.synthetic_censoring --summarize
    # beyond the article's grid, 5 seeds: per-variable projection, parameter-wise, the cosine
    # modes at other α, and the key cells on three more data realisations
    python -m benchmarks.synthetic_censoring --seeds=5 --single_task=false \
        --modes=projection --projection_alphas=0.01 --granularity=per_variable
    python -m benchmarks.synthetic_censoring --seeds=5 --single_task=false \
        --modes=parameter_wise --projection_alphas=0.01
    python -m benchmarks.synthetic_censoring --seeds=5 --single_task=false \
        --modes=unweighted_cosine,weighted_cosine --cosine_alphas=0.1,1
    python -m benchmarks.synthetic_censoring --seeds=5 --data_seeds=1,2,3 --lambdas=1,3 \
        --modes=multitask,projection,weighted_cosine --projection_alphas=0.01

Reference: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the
auxiliary gradient", synthetic experiment (Figures 11–13).
"""

import tensorflow as tf
from absl import app, flags

from keras_aux.datasets.synthetic_tasks import SITUATIONS
from keras_aux.experiments import synthetic
from keras_aux.experiments.reporting import read_rows

FLAGS = flags.FLAGS
flags.DEFINE_list("situations", list(SITUATIONS), "Auxiliary-task situations.")
flags.DEFINE_list("lambdas", ["0.1", "0.3", "1", "3", "10"], "Auxiliary weights λ.")
flags.DEFINE_list("projection_alphas", ["1", "0.1", "0.01"], "EMA α for multitask-free projection.")
flags.DEFINE_list("cosine_alphas", ["0.01"], "EMA α for the two cosine modes.")
flags.DEFINE_list(
    "modes", ["multitask", "projection", "unweighted_cosine", "weighted_cosine"], "Modes."
)
flags.DEFINE_bool("single_task", True, "Include the single-task baseline (once per situation).")
flags.DEFINE_enum("granularity", "global", ["global", "per_variable"], "Censoring granularity.")
flags.DEFINE_integer("seeds", 20, "Initialisations (seeds 0 .. seeds-1).")
flags.DEFINE_list(
    "data_seeds", ["0"], "Data realisations (0: the published one, the reference's draw order)."
)
flags.DEFINE_integer("max_epochs", 1000, "Upper bound on epochs (early stopping ends runs first).")
flags.DEFINE_integer("chunk", 0, "This process's chunk index.")
flags.DEFINE_integer("num_chunks", 1, "Number of parallel chunks.")
flags.DEFINE_string("csv", "benchmarks/results/synthetic_censoring.csv", "Run log (appended).")
flags.DEFINE_string("output", "benchmarks/results/synthetic_censoring.md", "Summary table.")
flags.DEFINE_bool("summarize", False, "Only write the summary table from the CSV.")
flags.DEFINE_integer(
    "threads", 1, "TensorFlow intra- and inter-op threads per process (0: TensorFlow's default)."
)


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    config = synthetic.SyntheticConfig(
        situations=tuple(FLAGS.situations),
        lambdas=tuple(float(v) for v in FLAGS.lambdas),
        projection_alphas=tuple(float(v) for v in FLAGS.projection_alphas),
        cosine_alphas=tuple(float(v) for v in FLAGS.cosine_alphas),
        modes=tuple(FLAGS.modes),
        single_task=FLAGS.single_task,
        granularity=FLAGS.granularity,
        seeds=FLAGS.seeds,
        data_seeds=tuple(int(v) for v in FLAGS.data_seeds),
        max_epochs=FLAGS.max_epochs,
        chunk=FLAGS.chunk,
        num_chunks=FLAGS.num_chunks,
        csv=FLAGS.csv,
        output=FLAGS.output,
        threads=FLAGS.threads,
    )
    synthetic.set_threads(config.threads)
    if FLAGS.summarize:
        synthetic.summarize(read_rows(config.csv), config.output)
        return
    if not 0 <= config.chunk < config.num_chunks:
        raise app.UsageError("Need 0 <= --chunk < --num_chunks.")
    synthetic.run(config)


if __name__ == "__main__":
    app.run(main)
