"""Does the reconstruction auxiliary loss help? Seed 001's claim, tested on
the real audio we have: FSDD spoken digits in a low-data regime.

Protocol (one run per configuration and seed):
- Data: FSDD (``--data_dir``, default ``../shared/data/fsdd``). Training:
  the first ``--train_takes`` training takes (indices 5, 6, ...) of every
  speaker and digit; validation (best-epoch checkpoint): takes 45–49; test:
  the official test takes 0–4 (300 clips). 16 kHz, 1 s (zero-padded),
  log-mel exactly as the genre front end; whole clips, no crops.
- Model: the genre LSTM of docs/reconstruction.md#network unchanged (BiLSTM 2×128, dropout
  0.3), 10 classes. Adam ``--learning_rate`` × 0.97 per epoch, batch 16,
  ``--epochs`` epochs, weights of the best validation accuracy restored.
- Configurations: λ ∈ ``--lambdas`` with plain multitask, plus λ = 10 with
  ``--censoring_mode`` (projection).
- ``--seeds`` seeds; the same seed gives the same initial weights to every
  configuration.

Writes every run to ``benchmarks/results/reconstruction_fsdd.csv`` (resumable:
finished runs are skipped) and a mean ± std table to
``benchmarks/results/reconstruction_fsdd.md`` plus a PNG.

Reference: seed 001; Le, Patterson & White (2018), "Supervised autoencoders".
"""

import os
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from keras_aux.architectures import compile_genre_lstm, genre_lstm
from keras_aux.audio import datasets
from keras_aux.audio.pipeline import audio_pipeline
from keras_aux.experiments.reporting import append_row, read_rows, write_markdown
from keras_aux.layers import LogMelSpectrogram

DEFAULT_FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd"

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", str(DEFAULT_FSDD), "FSDD root (holding recordings/).")
flags.DEFINE_integer("train_takes", 2, "Training takes per speaker and digit (low-data regime).")
flags.DEFINE_list("lambdas", ["0", "1", "2", "10"], "Reconstruction weights (multitask).")
flags.DEFINE_string(
    "censoring_mode", "projection", "Extra configuration: λ=10 with this censoring."
)
flags.DEFINE_integer("seeds", 5, "Seeds per configuration.")
flags.DEFINE_integer("epochs", 40, "Epochs per run.")
flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate (× 0.97 per epoch).")
flags.DEFINE_string("output_dir", "benchmarks/results", "Where the CSV, table and PNG go.")

FIELDS = ["config", "lambda", "censoring", "seed", "test_accuracy", "best_epoch", "seconds"]


def features(files):
    """All clips of a file list as log-mel arrays ``(n, 32, 128)`` and labels."""
    pipeline = audio_pipeline(
        files.paths,
        files.labels,
        training=False,
        duration=1.0,
        frontend=LogMelSpectrogram(),
        batch_size=64,
    )
    xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in pipeline.dataset])
    return np.concatenate(xs), np.concatenate(ys)


def load_data(data_dir, train_takes):
    """(train, validation, test) arrays following the protocol above."""
    full = datasets.fsdd(data_dir)
    takes = np.array([int(Path(p).stem.split("_")[2]) for p in full["train"].paths])
    validation = full["train"].subset(np.flatnonzero(takes >= 45))
    train = datasets.fsdd(data_dir, train_takes=train_takes)["train"]
    return features(train), features(validation), features(full["test"])


def run(config, lam, mode, seed, data):
    """One training run; returns the CSV row."""
    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = compile_genre_lstm(
        genre_lstm(10), reconstruction_weight=lam, learning_rate=FLAGS.learning_rate, censoring=mode
    )
    lr0 = FLAGS.learning_rate
    stop = keras.callbacks.EarlyStopping(
        "val_genre_accuracy", mode="max", patience=FLAGS.epochs, restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=16,
        epochs=FLAGS.epochs,
        verbose=0,
        callbacks=[
            keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr0 * 0.97**epoch),
            stop,
        ],
    )
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["genre_accuracy"]
    best_epoch = int(np.argmax(history.history["val_genre_accuracy"])) + 1
    return {
        "config": config,
        "lambda": lam,
        "censoring": mode,
        "seed": seed,
        "test_accuracy": f"{accuracy:.4f}",
        "best_epoch": best_epoch,
        "seconds": f"{seconds:.1f}",
    }


def write_summary(rows, output_dir, configs):
    """Mean ± std table (markdown) and a PNG of test accuracy per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = [
        "# Reconstruction auxiliary loss on FSDD (low-data regime)",
        "",
        f"`python -m benchmarks.reconstruction_fsdd --train_takes={FLAGS.train_takes} --epochs={FLAGS.epochs} "
        f"--seeds={FLAGS.seeds}`: genre LSTM of docs/reconstruction.md#network on FSDD digits, "
        f"{FLAGS.train_takes * 60} training clips ({FLAGS.train_takes} takes × 6 speakers × 10 digits), "
        "validation takes 45–49 (best-epoch checkpoint), official test takes 0–4 (300 clips). "
        f"Adam {FLAGS.learning_rate:g} × 0.97/epoch, batch 16. Test accuracy, mean ± std over seeds.",
        "",
        "| configuration | λ | censoring | seeds | test accuracy | mean best epoch | s / run |",
        "|---|---:|---|---:|---:|---:|---:|",
    ]
    means, stds, labels = [], [], []
    for config, lam, mode in configs:
        runs = [r for r in rows if r["config"] == config]
        if not runs:
            continue
        acc = np.array([float(r["test_accuracy"]) for r in runs])
        epochs = np.mean([int(r["best_epoch"]) for r in runs])
        secs = np.mean([float(r["seconds"]) for r in runs])
        lines.append(
            f"| {config} | {lam:g} | {mode} | {len(runs)} | {acc.mean():.4f} ± {acc.std(ddof=1) if len(acc) > 1 else 0:.4f} "
            f"| {epochs:.1f} | {secs:.0f} |"
        )
        means.append(acc.mean())
        stds.append(acc.std(ddof=1) if len(acc) > 1 else 0.0)
        labels.append(config)
    table = write_markdown(lines, os.path.join(output_dir, "reconstruction_fsdd.md"))
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(labels, means, yerr=stds, capsize=4, color="#4c72b0")
    ax.set_ylabel("test accuracy (FSDD, 10 digits)")
    ax.set_ylim(max(0.0, min(means) - 0.15), min(1.0, max(means) + 0.1))
    ax.set_title(f"Reconstruction loss, {FLAGS.train_takes * 60} training clips, mean ± std")
    plt.xticks(rotation=20)
    fig.tight_layout()
    fig.savefig(os.path.join(output_dir, "reconstruction_fsdd.png"), dpi=120)
    return table


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    if not os.path.isdir(FLAGS.data_dir):
        raise app.UsageError(f"FSDD not found at {FLAGS.data_dir}; pass --data_dir.")
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    configs = [(f"λ={float(lam):g}", float(lam), "multitask") for lam in FLAGS.lambdas]
    configs.append((f"λ=10 {FLAGS.censoring_mode}", 10.0, FLAGS.censoring_mode))
    csv_path = os.path.join(FLAGS.output_dir, "reconstruction_fsdd.csv")
    rows = read_rows(csv_path)
    done = {(r["config"], int(r["seed"])) for r in rows}
    todo = [
        (c, lam, mode, seed)
        for seed in range(FLAGS.seeds)
        for c, lam, mode in configs
        if (c, seed) not in done
    ]
    print(f"{len(done)} runs already in {csv_path}; {len(todo)} to go")
    data = load_data(FLAGS.data_dir, FLAGS.train_takes)
    print("train / validation / test:", [d[0].shape for d in data])
    progress = keras.utils.Progbar(len(todo), unit_name="run")
    for i, (config, lam, mode, seed) in enumerate(todo):
        row = run(config, lam, mode, seed, data)
        append_row(csv_path, row, FIELDS)
        rows.append(row)
        progress.update(i + 1, values=[("test_acc", float(row["test_accuracy"]))])
    write_summary(rows, FLAGS.output_dir, configs)


if __name__ == "__main__":
    app.run(main)
