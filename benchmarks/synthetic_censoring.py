"""Seed 004's synthetic experiment: single task, multitask and the censoring
modes on a primary task with a same / similar / unrelated auxiliary task.

Protocol (methods.md §2, Lemaire 2018): data from
`keras_aux.data.synthetic_tasks` (numpy seed 0); the primary task learns on
train1, the auxiliary task on train2 (`keras_aux.data.zip_tasks`: a different
input batch each step); MLP of four shared Dense(100, ReLU) and one linear
Dense(100) head per task, MSE; Adam (defaults); batch 100; early stopping on
the validation primary loss, patience 10, best weights restored; metric =
test primary MSE. Seed ``s`` fixes the initial weights, identical for every
configuration, and the shuffling.

Runs are fast by construction: XLA (``jit_compile=True``) and one
``tf.function`` call per epoch (``steps_per_execution`` = steps per epoch).

Parallel-safe and resumable: ``--chunk=i --num_chunks=n`` runs every n-th
configuration; each finished run is appended (under a file lock) to
``--csv``, and runs already in it are skipped. ``--summarize`` writes
``benchmarks/results/synthetic_censoring.md`` (mean ± std per cell) from the
CSV.

Usage::

    python -m benchmarks.synthetic_censoring --seeds=20               # the default grid
    python -m benchmarks.synthetic_censoring --chunk=0 --num_chunks=2 &
    python -m benchmarks.synthetic_censoring --chunk=1 --num_chunks=2 &
    python -m benchmarks.synthetic_censoring --summarize

Reference: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the
auxiliary gradient", synthetic experiment (Figures 11–13).
"""

import csv
import fcntl
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from benchmarks.report import write_markdown
from keras_aux.architectures import auxiliary_mlp
from keras_aux.data import zip_tasks
from keras_aux.data.synthetic_tasks import SITUATIONS, make_synthetic_tasks

FLAGS = flags.FLAGS
flags.DEFINE_list("situations", list(SITUATIONS), "Auxiliary-task situations.")
flags.DEFINE_list("lambdas", ["1", "3", "10"], "Auxiliary weights λ.")
flags.DEFINE_list("projection_alphas", ["1", "0.1", "0.01"], "EMA α for multitask-free projection.")
flags.DEFINE_list("cosine_alphas", ["0.01"], "EMA α for the two cosine modes.")
flags.DEFINE_list(
    "modes", ["multitask", "projection", "unweighted_cosine", "weighted_cosine"], "Modes."
)
flags.DEFINE_bool("single_task", True, "Include the single-task baseline (once per situation).")
flags.DEFINE_enum("granularity", "global", ["global", "per_variable"], "Censoring granularity.")
flags.DEFINE_integer("seeds", 20, "Initialisations (seeds 0 .. seeds-1).")
flags.DEFINE_integer("max_epochs", 1000, "Upper bound on epochs (early stopping ends runs first).")
flags.DEFINE_integer("chunk", 0, "This process's chunk index.")
flags.DEFINE_integer("num_chunks", 1, "Number of parallel chunks.")
flags.DEFINE_string("csv", "benchmarks/results/synthetic_censoring.csv", "Run log (appended).")
flags.DEFINE_string("output", "benchmarks/results/synthetic_censoring.md", "Summary table.")
flags.DEFINE_bool("summarize", False, "Only write the summary table from the CSV.")

FIELDS = [
    "situation",
    "mode",
    "granularity",
    "alpha",
    "lam",
    "seed",
    "test_loss",
    "epochs",
    "seconds",
]
BATCH = 100


def build_mlp(seed):
    """The article's MLP with seeded initial weights (same seed, same weights)."""
    return auxiliary_mlp(seed=seed)


def grid(
    situations, modes, lambdas, projection_alphas, cosine_alphas, single_task, granularity, seeds
):
    """All runs as dicts (situation, mode, granularity, alpha, lam, seed), seed-major."""
    configs = []
    for situation in situations:
        if single_task:
            configs.append((situation, "single_task", 1.0, 0.0))
        for mode in modes:
            alphas = {
                "multitask": [1.0],
                "projection": projection_alphas,
                "parameter_wise": projection_alphas,
            }
            for alpha in alphas.get(mode, cosine_alphas):
                for lam in lambdas:
                    configs.append((situation, mode, float(alpha), float(lam)))
    return [
        {
            "situation": s,
            "mode": m,
            "granularity": granularity,
            "alpha": a,
            "lam": lam,
            "seed": seed,
        }
        for seed in range(seeds)
        for s, m, a, lam in configs
    ]


def run_key(row):
    """Identity of a run in the CSV."""
    return (
        row["situation"],
        row["mode"],
        row["granularity"],
        float(row["alpha"]),
        float(row["lam"]),
        int(row["seed"]),
    )


def run_one(data, situation, mode, granularity, alpha, lam, seed, max_epochs=1000):
    """Trains one configuration; returns (test primary MSE, epochs run, seconds)."""
    keras.utils.set_random_seed(seed)
    model = build_mlp(seed)
    steps = data.x_train1.shape[0] // BATCH
    model.compile(
        keras.optimizers.Adam(),
        loss="mse",
        loss_weights={"auxiliary": lam},
        censoring=mode,
        granularity=granularity,
        ema_alpha=alpha,
        track_gradient_cosine=False,
        jit_compile=True,
        steps_per_execution=steps,
    )
    x1, y1 = data.primary("train")
    x2, y2 = data.auxiliary(situation)
    primary = tf.data.Dataset.from_tensor_slices((x1, y1)).shuffle(len(x1), seed=seed).batch(BATCH)
    auxiliary = (
        tf.data.Dataset.from_tensor_slices((x2, y2))
        .shuffle(len(x2), seed=seed + 1)
        .batch(BATCH)
        .repeat()
    )
    stop = keras.callbacks.EarlyStopping(
        "val_primary_loss", mode="min", patience=10, restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        zip_tasks(primary, {"auxiliary": auxiliary}),
        validation_data=data.primary("val"),
        validation_batch_size=1000,
        epochs=max_epochs,
        verbose=0,
        callbacks=[stop],
    )
    x_test, y_test = data.primary("test")
    test_loss = model.evaluate(x_test, y_test, batch_size=2000, verbose=0, return_dict=True)[
        "primary_loss"
    ]
    return float(test_loss), len(history.history["loss"]), time.perf_counter() - start


def read_runs(path):
    """Rows of the CSV (empty if it does not exist)."""
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def append_run(path, row):
    """Appends one row under an exclusive lock (several chunks may write)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", newline="", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            writer = csv.DictWriter(f, fieldnames=FIELDS)
            if f.tell() == 0:
                writer.writeheader()
            writer.writerow(row)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def summarize(rows, output):
    """Mean ± std of the test primary MSE per (situation, mode, α, λ)."""
    cells = {}
    for r in rows:
        key = (r["situation"], r["mode"], r["granularity"], float(r["alpha"]), float(r["lam"]))
        cells.setdefault(key, []).append(
            (float(r["test_loss"]), float(r["seconds"]), int(r["epochs"]))
        )
    lines = [
        "# Synthetic experiment of seed 004: test primary MSE (lower is better)",
        "",
        "`python -m benchmarks.synthetic_censoring` (methods.md §2): MLP 4×Dense(100) + two heads, Adam, batch 100, "
        "early stopping on validation primary loss (patience 10), primary on train1, auxiliary on train2; "
        "mean ± std over seeds (shared initial weights per seed).",
        "",
        "| situation | mode | granularity | α | λ | seeds | test MSE | epochs | s / run |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in sorted(
        cells,
        key=lambda k: (SITUATIONS.index(k[0]) if k[0] in SITUATIONS else 9, k[1], -k[3], k[4]),
    ):
        values = np.array(cells[key])
        std = values[:, 0].std(ddof=1) if len(values) > 1 else 0.0
        situation, mode, granularity, alpha, lam = key
        lam_text = "–" if mode == "single_task" else f"{lam:g}"
        lines.append(
            f"| {situation} | {mode} | {granularity} | {alpha:g} | {lam_text} | {len(values)} | "
            f"{values[:, 0].mean():.4f} ± {std:.4f} | {values[:, 2].mean():.0f} | {values[:, 1].mean():.1f} |"
        )
    return write_markdown(lines, output)


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    if FLAGS.summarize:
        summarize(read_runs(FLAGS.csv), FLAGS.output)
        return
    if not 0 <= FLAGS.chunk < FLAGS.num_chunks:
        raise app.UsageError("Need 0 <= --chunk < --num_chunks.")
    runs = grid(
        FLAGS.situations,
        FLAGS.modes,
        FLAGS.lambdas,
        FLAGS.projection_alphas,
        FLAGS.cosine_alphas,
        FLAGS.single_task,
        FLAGS.granularity,
        FLAGS.seeds,
    )
    done = {run_key(r) for r in read_runs(FLAGS.csv)}
    mine = [
        r
        for i, r in enumerate(runs)
        if i % FLAGS.num_chunks == FLAGS.chunk and run_key(r) not in done
    ]
    print(
        f"{len(runs)} runs in the grid, {len(done)} done, {len(mine)} for chunk {FLAGS.chunk}/{FLAGS.num_chunks}"
    )
    data = make_synthetic_tasks(seed=0)
    progress = keras.utils.Progbar(len(mine), unit_name="run")
    for i, r in enumerate(mine):
        test_loss, epochs, seconds = run_one(
            data,
            r["situation"],
            r["mode"],
            r["granularity"],
            r["alpha"],
            r["lam"],
            r["seed"],
            FLAGS.max_epochs,
        )
        append_run(
            FLAGS.csv,
            {**r, "test_loss": f"{test_loss:.6f}", "epochs": epochs, "seconds": f"{seconds:.2f}"},
        )
        progress.update(i + 1, values=[("s/run", seconds)])
    summarize(read_runs(FLAGS.csv), FLAGS.output)


if __name__ == "__main__":
    app.run(main)
