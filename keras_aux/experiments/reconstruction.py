"""Does the reconstruction auxiliary loss help? Seed 001's claim, tested on real audio: FSDD
spoken digits in a low-data regime, trained until the validation accuracy has plateaued.

Protocol (docs/reconstruction.md#fsdd-benchmark; one run per configuration and seed):

- Data: FSDD. Training: the first ``train_takes`` training takes (indices 5, 6, ...) of every
  speaker and digit (2 takes: 120 clips); validation: takes 45–49 (300 clips); test: the
  official test takes 0–4 (300 clips). 16 kHz, 1 s (zero-padded), the genre front end's log-mel;
  whole clips, no crops.
- Model: the genre LSTM of docs/reconstruction.md#network unchanged (BiLSTM 2×128, dropout
  0.3), 10 classes. Adam ``learning_rate`` × 0.97 per epoch, batch 16.
- Budget: until the validation accuracy has not improved for ``patience`` epochs (at most
  ``max_epochs``), then the weights of the best validation epoch are restored and tested. The
  table reports how many runs hit ``max_epochs`` instead of stopping on the plateau.
- Configurations: λ ∈ ``lambdas`` with plain multitask, plus λ = 10 with ``censoring_mode``.
- Seed ``s`` gives every configuration the same initial weights and batch order, so each
  configuration is compared with λ = 0 **per seed** (paired difference, 95 % t-interval).

Here: data loading (`load_data`), one run (`run_one`), the resumable grid (`run`) and the
summary table and plot (`summarize`). ``benchmarks/reconstruction_fsdd.py`` is the command line.

Reference: seed 001 (reconstruction auxiliary loss); Le, Patterson & White (2018), "Supervised
autoencoders: improving generalization performance with unsupervised regularizers".
"""

import dataclasses
import os
import time
from pathlib import Path

import keras
import numpy as np

from keras_aux.experiments import reporting

FIELDS = [
    "config",
    "lambda",
    "censoring",
    "seed",
    "test_accuracy",
    "best_val_accuracy",
    "best_epoch",
    "epochs",
    "seconds",
]
BATCH = 16


@dataclasses.dataclass
class ReconstructionConfig:
    """The FSDD reconstruction benchmark (the flags of ``benchmarks/reconstruction_fsdd.py``).

    Attributes:
        data_dir: FSDD root (holding ``recordings/``).
        train_takes: training takes per speaker and digit (the low-data regime).
        lambdas: reconstruction weights λ run with plain multitask (0 is the baseline).
        censoring_mode: one more configuration, λ = 10 with this censoring ("" for none).
        seeds: seeds 0 .. seeds-1 per configuration.
        max_epochs: upper bound on epochs.
        patience: epochs without a better validation accuracy before a run stops.
        learning_rate: Adam's initial learning rate (× 0.97 per epoch).
        output_dir: where ``reconstruction_fsdd.{csv,md,png}`` go.
        chunk, num_chunks: this process runs every ``num_chunks``-th run from ``chunk``.

    Reference: seed 001; docs/reconstruction.md#fsdd-benchmark.
    """

    data_dir: str = ""
    train_takes: int = 2
    lambdas: tuple = (0.0, 0.1, 1.0, 2.0, 5.0, 10.0)
    censoring_mode: str = "projection"
    seeds: int = 8
    max_epochs: int = 200
    patience: int = 25
    learning_rate: float = 1e-3
    output_dir: str = "benchmarks/results"
    chunk: int = 0
    num_chunks: int = 1

    def configurations(self):
        """``(name, λ, censoring)`` of every configuration, λ = 0 first if present."""
        configs = [(f"λ={float(lam):g}", float(lam), "multitask") for lam in self.lambdas]
        if self.censoring_mode:
            configs.append((f"λ=10 {self.censoring_mode}", 10.0, self.censoring_mode))
        return configs

    def csv(self):
        """The run log."""
        return os.path.join(self.output_dir, "reconstruction_fsdd.csv")


def features(files):
    """All clips of an `AudioFileList` as log-mel arrays ``(n, 32, 128)`` and labels.

    Reference: seed 001's front end (docs/reconstruction.md#pre-processing), on 1 s clips.
    """
    from keras_aux.audio.pipeline import audio_pipeline
    from keras_aux.layers import LogMelSpectrogram

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
    """``((x, y) train, validation, test)`` following the protocol (module docstring).

    Reference: seed 001; docs/reconstruction.md#fsdd-benchmark.
    """
    from keras_aux.audio import datasets

    full = datasets.fsdd(data_dir)
    takes = np.array([int(Path(p).stem.split("_")[2]) for p in full["train"].paths])
    validation = full["train"].subset(np.flatnonzero(takes >= 45))
    train = datasets.fsdd(data_dir, train_takes=train_takes)["train"]
    return features(train), features(validation), features(full["test"])


def run_one(config, lam, mode, seed, data):
    """One training run until the validation plateau; returns its CSV row (without the name).

    Reference: seed 001; docs/reconstruction.md#fsdd-benchmark.
    """
    from keras_aux.architectures import compile_genre_lstm, genre_lstm

    (x_train, y_train), (x_val, y_val), (x_test, y_test) = data
    keras.utils.set_random_seed(seed)
    model = compile_genre_lstm(
        genre_lstm(10),
        reconstruction_weight=lam,
        learning_rate=config.learning_rate,
        censoring=mode,
    )
    lr0 = config.learning_rate
    stop = keras.callbacks.EarlyStopping(
        "val_genre_accuracy", mode="max", patience=config.patience, restore_best_weights=True
    )
    start = time.perf_counter()
    history = model.fit(
        x_train,
        y_train,
        validation_data=(x_val, y_val),
        batch_size=BATCH,
        epochs=config.max_epochs,
        verbose=0,
        callbacks=[
            keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr0 * 0.97**epoch),
            stop,
        ],
    )
    seconds = time.perf_counter() - start
    accuracy = model.evaluate(x_test, y_test, verbose=0, return_dict=True)["genre_accuracy"]
    val = history.history["val_genre_accuracy"]
    return {
        "lambda": lam,
        "censoring": mode,
        "seed": seed,
        "test_accuracy": f"{accuracy:.4f}",
        "best_val_accuracy": f"{max(val):.4f}",
        # Keras's EarlyStopping restores the first epoch with the best value.
        "best_epoch": int(np.argmax(val)) + 1,
        "epochs": len(val),
        "seconds": f"{seconds:.1f}",
    }


def run(config, log=print):
    """Runs this chunk's share of the configurations × seeds, skipping runs already in the CSV
    and appending each finished one, then writes the summary (`summarize`).

    Raises:
        ValueError: a missing ``data_dir`` or not ``0 <= chunk < num_chunks``.

    Reference: seed 001; docs/reconstruction.md#fsdd-benchmark.
    """
    if not os.path.isdir(config.data_dir):
        raise ValueError(f"FSDD not found at {config.data_dir!r}; give its folder (data_dir).")
    if not 0 <= config.chunk < config.num_chunks:
        raise ValueError(f"Need 0 <= chunk < num_chunks; got {config.chunk}, {config.num_chunks}.")
    done = {(r["config"], int(r["seed"])) for r in reporting.read_rows(config.csv())}
    runs = [
        (name, lam, mode, seed)
        for seed in range(config.seeds)
        for name, lam, mode in config.configurations()
    ]
    mine = [
        (name, lam, mode, seed)
        for i, (name, lam, mode, seed) in enumerate(runs)
        if i % config.num_chunks == config.chunk and (name, seed) not in done
    ]
    log(f"{len(runs)} runs, {len(done)} done, {len(mine)} for chunk {config.chunk}")
    if not mine:
        return summarize(reporting.read_rows(config.csv()), config)
    data = load_data(config.data_dir, config.train_takes)
    log(f"train / validation / test: {[d[0].shape for d in data]}")
    progress = keras.utils.Progbar(len(mine), unit_name="run")
    for i, (name, lam, mode, seed) in enumerate(mine):
        row = {"config": name, **run_one(config, lam, mode, seed, data)}
        reporting.append_row(config.csv(), row, FIELDS)
        progress.update(
            i + 1, values=[("test_acc", float(row["test_accuracy"])), ("epochs", row["epochs"])]
        )
    return summarize(reporting.read_rows(config.csv()), config)


def summarize(rows, config):
    """Writes (and prints) ``reconstruction_fsdd.md`` and ``.png`` from the run log; returns the
    markdown. Per configuration: test accuracy mean ± std, the paired difference from λ = 0 in
    points with its 95 % t-interval, the best and the last epochs, and how many runs reached
    ``max_epochs`` (no plateau within the budget).

    Reference: seed 001; docs/reconstruction.md#fsdd-benchmark.
    """
    by_config = {}
    for r in rows:
        by_config.setdefault(r["config"], {})[int(r["seed"])] = r
    baseline = by_config.get("λ=0", {})
    lines = [
        "# Reconstruction auxiliary loss on FSDD (low-data regime)",
        "",
        f"`python -m benchmarks.reconstruction_fsdd --train_takes={config.train_takes} "
        f"--seeds={config.seeds} --max_epochs={config.max_epochs} --patience={config.patience}`: "
        "genre LSTM of docs/reconstruction.md#network on FSDD digits, "
        f"{config.train_takes * 60} training clips ({config.train_takes} takes × 6 speakers × "
        "10 digits), validation takes 45–49, official test takes 0–4 (300 clips). Adam "
        f"{config.learning_rate:g} × 0.97/epoch, batch {BATCH}; each run trains until the "
        f"validation accuracy has not improved for {config.patience} epochs (at most "
        f"{config.max_epochs}) and is tested with its best validation epoch's weights. "
        "**vs λ=0**: mean over seeds of the paired difference in test accuracy from λ = 0 with "
        "the same seed (same initial weights and batch order), in points, ± the half-width of "
        "its 95 % t-interval. **p (Holm)**: the paired t-test's two-sided p-value for no "
        "difference, Holm-adjusted for the number of configurations compared with λ = 0 (one "
        "interval in several excluding zero is what chance alone often gives).",
        "",
        "| configuration | λ | censoring | seeds | test accuracy | vs λ=0 (pt) | p (Holm) | "
        "best epoch | epochs run | at max epochs | s / run |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    names, accuracies, effects, cells, pvalues = [], [], [], [], []
    for name, lam, mode in config.configurations():
        runs = by_config.get(name)
        if not runs:
            continue
        acc = np.array([float(r["test_accuracy"]) for r in runs.values()])
        std = acc.std(ddof=1) if len(acc) > 1 else 0.0
        effect, pvalue = "–", float("nan")
        if name != "λ=0":
            ours, theirs = (
                [100 * float(r["test_accuracy"]) for r in arm]
                for arm in reporting.pair_by_seed(runs, baseline)
            )
            mean, half, n = reporting.paired_difference(ours, theirs)
            effect = "n/a" if n == 0 else f"{mean:+.2f} ± {half:.2f}" if n > 1 else f"{mean:+.2f}"
            pvalue = reporting.paired_t_pvalue(ours, theirs)
            effects.append((name, mean, half))
        column = {
            key: np.mean([float(r[key]) for r in runs.values()])
            for key in ("best_epoch", "epochs", "seconds")
        }
        capped = sum(int(r["epochs"]) >= config.max_epochs for r in runs.values())
        cells.append(
            (
                f"| {name} | {lam:g} | {mode} | {len(acc)} | {acc.mean():.4f} ± {std:.4f} "
                f"| {effect} |",
                f"| {column['best_epoch']:.1f} | {column['epochs']:.1f} | {capped} | "
                f"{column['seconds']:.0f} |",
            )
        )
        pvalues.append(pvalue)
        names.append(name)
        accuracies.append(acc)
    for (start, end), p in zip(cells, reporting.holm_adjusted(pvalues), strict=True):
        lines.append(f"{start} {reporting.format_pvalue(p)} {end}")
    table = reporting.write_markdown(
        lines, os.path.join(config.output_dir, "reconstruction_fsdd.md")
    )
    if names:
        plot(names, accuracies, effects, os.path.join(config.output_dir, "reconstruction_fsdd.png"))
    return table


def plot(names, accuracies, effects, path):
    """Left: test accuracy of every run per configuration (mean marked); right: the paired
    difference from λ = 0 with its 95 % interval.

    Reference: seed 001; docs/reconstruction.md#fsdd-benchmark.
    """
    plt = reporting.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, acc in enumerate(accuracies):
        left.scatter(np.full(len(acc), i), acc, s=12, alpha=0.6, color="#4c72b0")
        left.hlines(acc.mean(), i - 0.3, i + 0.3, color="k")
    left.set_xticks(range(len(names)), names, rotation=20)
    left.set_ylabel("test accuracy (FSDD, 10 digits)")
    left.set_title("every run (bar: mean)")
    if effects:
        labels, means, halves = zip(*effects)
        right.errorbar(
            range(len(labels)), means, yerr=np.nan_to_num(halves), fmt="o", capsize=4, color="k"
        )
        right.axhline(0.0, color="grey", ls="--", lw=1)
        right.set_xticks(range(len(labels)), labels, rotation=20)
    right.set_ylabel("test accuracy − λ=0 (points)")
    right.set_title("paired difference from λ=0, 95 % CI")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
