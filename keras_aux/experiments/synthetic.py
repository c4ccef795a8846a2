"""The synthetic censoring experiment of seed 004: single task, multitask and the censoring
modes on a primary task with a same / similar / unrelated auxiliary task.

Protocol (docs/censoring.md#synthetic-experiment; Lemaire 2018, synthetic experiment, with the
cosine modes of Du et al. 2018): data from `keras_aux.datasets.synthetic_tasks` (numpy seed 0, the reference notebook's draw
order: the published realisation; other data seeds are other realisations); the
primary task learns on train1, the auxiliary task on train2 (`keras_aux.models.zip_tasks`: a
different input batch each step); MLP of four shared Dense(100, ReLU) and one linear Dense(100)
head per task, MSE; Adam (defaults); batch 100; early stopping on the validation primary loss,
patience 10, best weights restored; metric = test primary MSE. Seed ``s`` fixes the initial
weights, identical for every configuration, and the shuffling.

Here: the seeded model, the grid, one run (`run_one`), a chunk of the grid with its resumable
CSV (`run`), and the summary table and plot (`summarize`). ``benchmarks/synthetic_censoring.py``
is the command line.

Reference: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
gradient", synthetic experiment (Figures 11–13); Du et al. (2018), "Adapting auxiliary losses
using gradient similarity"; docs/censoring.md#synthetic-experiment.
"""

import dataclasses
import time

import keras
import numpy as np
import tensorflow as tf

from keras_aux.architectures import auxiliary_mlp
from keras_aux.datasets.synthetic_tasks import SITUATIONS, make_synthetic_tasks
from keras_aux.experiments import reporting
from keras_aux.models import zip_tasks

FIELDS = [
    "situation",
    "mode",
    "granularity",
    "alpha",
    "lam",
    "seed",
    "data_seed",
    "test_loss",
    "epochs",
    "seconds",
]
BATCH = 100


def build_mlp(seed):
    """The article's MLP with seeded initial weights (same seed, same weights).

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    return auxiliary_mlp(seed=seed)


def grid(
    situations,
    modes,
    lambdas,
    projection_alphas,
    cosine_alphas,
    single_task,
    granularity,
    seeds,
    data_seeds=(0,),
):
    """All runs as dicts (situation, mode, granularity, alpha, lam, seed, data_seed), data-seed
    then seed major: a grid cut short has every cell at fewer seeds, not some cells missing.

    Per situation: the single-task baseline (if ``single_task``), then every mode with each of
    its α (multitask: 1; projection and parameter-wise: ``projection_alphas``; the cosine modes
    of Du et al. 2018: ``cosine_alphas``) and each λ. ``data_seeds`` are the data realisations
    (`make_synthetic_tasks` seeds; 0 is the published one).

    Reference: Lemaire (2018), synthetic experiment (its grid); docs/censoring.md.
    """
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
            "data_seed": int(data_seed),
        }
        for data_seed in data_seeds
        for seed in range(seeds)
        for s, m, a, lam in configs
    ]


def run_key(row):
    """Identity of a run in the CSV.

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    return (
        row["situation"],
        row["mode"],
        row["granularity"],
        float(row["alpha"]),
        float(row["lam"]),
        int(row["seed"]),
        int(row["data_seed"]),
    )


def compile_mlp(mode, granularity, alpha, lam, steps, seed=0):
    """A compiled MLP for one configuration (its training function traced on first fit):
    Adam, MSE, λ on the auxiliary output, the censoring mode, granularity and α, XLA, one
    ``tf.function`` call per ``steps`` (an epoch).

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    keras.utils.set_random_seed(seed)
    model = build_mlp(seed)
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
    model.optimizer.build(model.trainable_variables)
    return model


def _state(model):
    """Every variable a run changes: weights, the censoring state (e.g. the
    gradient average) and optimizer slots."""
    return (
        list(model.weights)
        + list(model.censor_state_holder.state_variables)
        + list(model.optimizer.variables)
    )


def copy_state(source, target):
    """Gives ``target`` the state of ``source`` (same configuration): weights,
    optimizer slots and step, and the gradient average.

    Reusing one compiled model per configuration skips the ~2.5 s of tracing
    and XLA compilation that a fresh model's first ``fit`` costs; the result is
    bit-identical (tested), since the compiled program and its inputs are the same.

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    for var, value in zip(_state(target), _state(source), strict=True):
        var.assign(value.value)


def run_one(data, situation, mode, granularity, alpha, lam, seed, max_epochs=1000, models=None):
    """Trains one configuration; returns (test primary MSE, epochs run, seconds).

    ``models``: an optional dict in which compiled models are kept per
    (mode, granularity, α, λ) and reused (reset to the seed's initial state)
    by later runs of the same configuration, whatever the situation or seed.

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    steps = data.x_train1.shape[0] // BATCH
    key = (mode, granularity, float(alpha), float(lam))
    if models is not None and key in models:
        model = models[key]
        copy_state(compile_mlp(*key, steps, seed), model)
    else:
        model = compile_mlp(mode, granularity, alpha, lam, steps, seed)
        if models is not None:
            models[key] = model
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
        # One prebuilt batch of the 1,000 validation rows: numpy arrays would
        # make Keras rebuild an input pipeline eagerly every epoch (~20 ms).
        validation_data=tf.data.Dataset.from_tensors(data.primary("val")),
        epochs=max_epochs,
        verbose=0,
        callbacks=[stop],
        shuffle=False,  # the datasets shuffle themselves, seeded
    )
    x_test, y_test = data.primary("test")
    test_loss = model.evaluate(x_test, y_test, batch_size=2000, verbose=0, return_dict=True)[
        "primary_loss"
    ]
    return float(test_loss), len(history.history["loss"]), time.perf_counter() - start


def append_run(path, row):
    """Appends one run to the CSV (several chunks may write at once).

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    reporting.append_row(path, row, FIELDS)


def _cells(rows):
    """``{(data_seed, situation, mode, granularity, α, λ): {seed: (loss, seconds, epochs)}}``."""
    cells = {}
    for r in rows:
        key = (
            int(r["data_seed"]),
            r["situation"],
            r["mode"],
            r["granularity"],
            float(r["alpha"]),
            float(r["lam"]),
        )
        cells.setdefault(key, {})[int(r["seed"])] = (
            float(r["test_loss"]),
            float(r["seconds"]),
            int(r["epochs"]),
        )
    return cells


def _single_task(cells, data_seed, situation):
    """The single-task runs of a data realisation and situation (``{seed: run}``)."""
    for key, runs in cells.items():
        if key[:3] == (data_seed, situation, "single_task"):
            return runs
    return {}


def effect_vs_single_task(cells, key):
    """Paired effect of a cell on the test MSE relative to single task, in percent: the mean
    over seeds of ``100 · (MSE − single-task MSE) / single-task MSE`` (same seed: same initial
    weights) with its 95 % t-interval; negative is better. ``(nan, nan, 0)`` without pairs.

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    single = _single_task(cells, key[0], key[1])
    ours, theirs = reporting.pair_by_seed(cells[key], single)
    return reporting.paired_difference(
        [run[0] for run in ours], [run[0] for run in theirs], relative=True
    )


# The key cells run on other data realisations: (label, mode, α, λ).
KEY_CELLS = (
    ("multitask λ=1", "multitask", 1.0, 1.0),
    ("multitask λ=3", "multitask", 1.0, 3.0),
    ("projection α=0.01 λ=1", "projection", 0.01, 1.0),
    ("projection α=0.01 λ=3", "projection", 0.01, 3.0),
    ("weighted cosine α=0.01 λ=1", "weighted_cosine", 0.01, 1.0),
    ("weighted cosine α=0.01 λ=3", "weighted_cosine", 0.01, 3.0),
)


def ranking_rows(cells):
    """Whether the article's ranking holds, per data realisation and situation, on the key
    cells (`KEY_CELLS`, global granularity). The article's two claims (Lemaire 2018, Figures
    12–13): projection with α = 0.01 beats multitask in every situation; weighted cosine
    (α = 0.01) beats both only when the tasks are unrelated.

    Returns:
        One dict per (data seed, situation) with all key cells present: ``means`` (label →
        mean test MSE), ``seeds`` (the fewest seeds of a cell), ``projection_beats_multitask``
        (at λ = 1 and at λ = 3) and ``cosine_best`` (weighted cosine at its better λ below both
        other modes at theirs), and ``as_in_article`` (both claims as the article has them).

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    rows = []
    for data_seed, situation in sorted({(k[0], k[1]) for k in cells}):
        single = _single_task(cells, data_seed, situation)
        means, counts = {}, []
        for label, mode, alpha, lam in KEY_CELLS:
            runs = cells.get((data_seed, situation, mode, "global", alpha, lam))
            if runs:
                means[label] = float(np.mean([run[0] for run in runs.values()]))
                counts.append(len(runs))
        if len(means) < len(KEY_CELLS) or not single:
            continue
        projection_wins = all(
            means[f"projection α=0.01 λ={lam}"] < means[f"multitask λ={lam}"] for lam in (1, 3)
        )
        best = {
            name: min(means[f"{name} λ={lam}"] for lam in (1, 3))
            for name in ("multitask", "projection α=0.01", "weighted cosine α=0.01")
        }
        cosine_best = best["weighted cosine α=0.01"] < min(
            best["multitask"], best["projection α=0.01"]
        )
        rows.append(
            {
                "data_seed": data_seed,
                "situation": situation,
                "seeds": min(counts + [len(single)]),
                "single": float(np.mean([run[0] for run in single.values()])),
                "means": means,
                "projection_beats_multitask": projection_wins,
                "cosine_best": cosine_best,
                "as_in_article": projection_wins and cosine_best == (situation == "unrelated"),
            }
        )
    return rows


def _order(key):
    data_seed, situation, mode, granularity, alpha, lam = key
    return (
        data_seed,
        SITUATIONS.index(situation) if situation in SITUATIONS else 9,
        mode != "single_task",
        mode,
        granularity,
        -alpha,
        lam,
    )


def summarize(rows, output, data_seed=0):
    """Writes (and prints) the markdown summary of the run log to ``output`` and the plot of
    ``data_seed``'s cells beside it as ``.png`` (`plot_summary`); returns the markdown.

    1. Every cell of the data realisation ``data_seed`` (0: the published one): mean ± std
       test primary MSE over seeds, and its paired effect relative to single task in percent
       (`effect_vs_single_task`).
    2. The article's ranking on each data realisation in the log (`ranking_rows`).

    Reference: Lemaire (2018), synthetic experiment (Figures 11–13); docs/censoring.md.
    """
    cells = _cells(rows)
    lines = [
        "# Synthetic experiment of seed 004: test primary MSE (lower is better)",
        "",
        "`python -m benchmarks.synthetic_censoring` (docs/censoring.md#synthetic-experiment): "
        "MLP 4×Dense(100) + two heads, Adam, batch 100, early stopping on validation primary loss "
        "(patience 10), primary on train1, auxiliary on train2; mean ± std over seeds (shared "
        "initial weights per seed). **vs single**: mean over seeds of the paired change of the "
        "test MSE relative to single task with the same seed, in percent, ± the half-width of "
        "its 95 % t-interval (negative: better than single task).",
        "",
        f"## Data realisation {data_seed}"
        + (" (the reference notebook's, numpy seed 0)" if data_seed == 0 else ""),
        "",
        "| situation | mode | granularity | α | λ | seeds | test MSE | vs single | epochs | s / run |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    mine = {k: v for k, v in cells.items() if k[0] == data_seed}
    for key in sorted(mine, key=_order):
        values = np.array(list(mine[key].values()))
        std = values[:, 0].std(ddof=1) if len(values) > 1 else 0.0
        _, situation, mode, granularity, alpha, lam = key
        lam_text = "–" if mode == "single_task" else f"{lam:g}"
        if mode == "single_task":
            effect = "–"
        else:
            mean, half, n = effect_vs_single_task(cells, key)
            effect = (
                "n/a" if n == 0 else f"{mean:+.1f} % ± {half:.1f}" if n > 1 else f"{mean:+.1f} %"
            )
        lines.append(
            f"| {situation} | {mode} | {granularity} | {alpha:g} | {lam_text} | {len(values)} | "
            f"{values[:, 0].mean():.4f} ± {std:.4f} | {effect} | {values[:, 2].mean():.0f} | "
            f"{values[:, 1].mean():.1f} |"
        )
    ranking = ranking_rows(cells)
    if ranking:
        lines += [
            "",
            "## The article's ranking on each data realisation",
            "",
            "Key cells (global granularity), mean test MSE. The article's claims (Figures 12–13): "
            "**A** projection with α = 0.01 beats multitask in every situation (here: at λ = 1 "
            "and at λ = 3); **B** weighted cosine (α = 0.01) beats both only when the tasks are "
            "unrelated (here: its better λ against the better λ of each other mode).",
            "",
            "| data seed | situation | seeds | single | "
            + " | ".join(label for label, *_ in KEY_CELLS)
            + " | A | B | as in the article |",
            "|---:|---|---:|---:|" + "---:|" * len(KEY_CELLS) + "---|---|---|",
        ]
        yes = lambda flag: "yes" if flag else "no"  # noqa: E731
        for r in ranking:
            lines.append(
                f"| {r['data_seed']} | {r['situation']} | {r['seeds']} | {r['single']:.4f} | "
                + " | ".join(f"{r['means'][label]:.4f}" for label, *_ in KEY_CELLS)
                + f" | {yes(r['projection_beats_multitask'])} | {yes(r['cosine_best'])} | "
                f"{yes(r['as_in_article'])} |"
            )
        held = sum(r["as_in_article"] for r in ranking)
        lines += ["", f"Both claims hold as in the article on {held} of {len(ranking)} rows."]
    table = reporting.write_markdown(lines, output)
    plot_summary({k[1:]: v for k, v in mine.items()}, output.replace(".md", ".png"))
    return table


_MODE_COLORS = {
    "multitask": "tab:blue",
    "projection": "tab:green",
    "parameter_wise": "tab:orange",
    "unweighted_cosine": "tab:purple",
    "weighted_cosine": "tab:red",
}
_ALPHA_LINESTYLES = {0.01: "-", 0.1: "--", 1.0: ":"}


def _curve_style(mode, granularity, alpha):
    """One colour per mode, one line style per α and one marker per granularity, so that a
    dozen curves stay tellable apart (the default colour cycle repeats after ten)."""
    return {
        "color": _MODE_COLORS.get(mode, "tab:gray"),
        "ls": "-" if mode == "multitask" else _ALPHA_LINESTYLES.get(float(alpha), "-."),
        "marker": "o" if granularity == "global" else "s",
    }


def plot_summary(cells, path):
    """One panel per situation: mean test MSE (± std) against λ for every
    (mode, granularity, α), the single-task level as a dashed line.

    ``cells``: ``{(situation, mode, granularity, α, λ): {seed: (loss, ...)}}``.

    Reference: Lemaire (2018), synthetic experiment (Figures 11–13); docs/censoring.md.
    """
    plt = reporting.pyplot()
    situations = [s for s in SITUATIONS if any(k[0] == s for k in cells)]
    if not situations:
        return None
    fig, axes = plt.subplots(
        1, len(situations), figsize=(4.6 * len(situations), 4.0), squeeze=False
    )
    for ax, situation in zip(axes[0], situations):
        curves = {}
        for (sit, mode, granularity, alpha, lam), runs in cells.items():
            if sit != situation:
                continue
            losses = np.array([run[0] for run in runs.values()])
            if mode == "single_task":
                ax.axhline(losses.mean(), color="k", ls="--", lw=1, label="single task")
                continue
            label = mode if mode == "multitask" else f"{mode} α={alpha:g}"
            if granularity != "global":
                label += f" ({granularity})"
            std = losses.std(ddof=1) if len(losses) > 1 else 0.0
            curve = (label, mode, granularity, alpha)
            curves.setdefault(curve, []).append((lam, losses.mean(), std))
        for (label, *style), points in sorted(curves.items()):
            lam, mean, std = map(np.array, zip(*sorted(points)))
            ax.errorbar(
                lam, mean, yerr=std, ms=3, capsize=2, lw=1, label=label, **_curve_style(*style)
            )
        ax.set_xscale("log")
        ax.set_xlabel("λ")
        ax.set_title(f"auxiliary task: {situation}")
    axes[0][0].set_ylabel("test primary MSE (lower is better)")
    axes[0][-1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


@dataclasses.dataclass
class SyntheticConfig:
    """The grid of the synthetic experiment and one process's share of it (the flags of
    ``benchmarks/synthetic_censoring.py``).

    Attributes:
        situations: auxiliary-task situations (``same``, ``similar``, ``unrelated``).
        lambdas: auxiliary weights λ.
        projection_alphas: moving-average α of the primary gradient for the projection and
            parameter-wise modes.
        cosine_alphas: α for the two cosine modes (Du et al. 2018).
        modes: censoring modes (`keras_aux.censoring.MODES`).
        single_task: include the single-task baseline (once per situation).
        granularity: ``"global"`` or ``"per_variable"``.
        seeds: initialisations (seeds 0 .. seeds-1).
        data_seeds: data realisations (`make_synthetic_tasks` seeds; 0 is the published one).
        max_epochs: upper bound on epochs (early stopping ends runs first).
        chunk: this process's chunk index (0 <= chunk < num_chunks).
        num_chunks: number of parallel chunks; chunk i runs every num_chunks-th run of the grid.
        csv: the run log, appended to under a file lock (runs already in it are skipped).
        output: the summary table; the plot goes beside it as ``.png``.
        threads: TensorFlow intra- and inter-op threads per process (0: TensorFlow's default);
            set by `set_threads` before TensorFlow starts.

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """

    situations: tuple = SITUATIONS
    lambdas: tuple = (0.1, 0.3, 1.0, 3.0, 10.0)
    projection_alphas: tuple = (1.0, 0.1, 0.01)
    cosine_alphas: tuple = (0.01,)
    modes: tuple = ("multitask", "projection", "unweighted_cosine", "weighted_cosine")
    single_task: bool = True
    granularity: str = "global"
    seeds: int = 20
    data_seeds: tuple = (0,)
    max_epochs: int = 1000
    chunk: int = 0
    num_chunks: int = 1
    csv: str = "benchmarks/results/synthetic_censoring.csv"
    output: str = "benchmarks/results/synthetic_censoring.md"
    threads: int = 1

    def runs(self):
        """Every run of the grid (`grid`), this chunk's or not."""
        return grid(
            self.situations,
            self.modes,
            self.lambdas,
            self.projection_alphas,
            self.cosine_alphas,
            self.single_task,
            self.granularity,
            self.seeds,
            self.data_seeds,
        )


def set_threads(threads):
    """One TensorFlow thread pool size per process (intra- and inter-op; 0 keeps TensorFlow's
    default): these small matrices run faster on one core than split over two, so run one chunk
    per core. Must run before TensorFlow executes anything.

    Reference: the synthetic experiment's runtime (docs/censoring.md#synthetic-experiment).
    """
    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def run(config, log=print):
    """Runs this chunk's share of the grid, skipping the runs already in ``config.csv`` and
    appending each finished one, then writes the summary of the whole CSV (`summarize`).

    One compiled model per configuration, reused across seeds and situations (`run_one`).

    Returns:
        The summary table.

    Raises:
        ValueError: not ``0 <= chunk < num_chunks``.

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    if not 0 <= config.chunk < config.num_chunks:
        raise ValueError(f"Need 0 <= chunk < num_chunks; got {config.chunk}, {config.num_chunks}.")
    runs = config.runs()
    done = {run_key(r) for r in reporting.read_rows(config.csv)}
    mine = [
        r
        for i, r in enumerate(runs)
        if i % config.num_chunks == config.chunk and run_key(r) not in done
    ]
    log(
        f"{len(runs)} runs in the grid, {len(done)} done, {len(mine)} for chunk {config.chunk}/{config.num_chunks}"
    )
    data = {}  # per data seed, made on first use
    progress = keras.utils.Progbar(len(mine), unit_name="run")
    models = {}  # compiled once per configuration, reused across seeds and situations
    for i, r in enumerate(mine):
        if r["data_seed"] not in data:
            data[r["data_seed"]] = make_synthetic_tasks(seed=r["data_seed"])
        test_loss, epochs, seconds = run_one(
            data[r["data_seed"]],
            r["situation"],
            r["mode"],
            r["granularity"],
            r["alpha"],
            r["lam"],
            r["seed"],
            config.max_epochs,
            models=models,
        )
        append_run(
            config.csv,
            {**r, "test_loss": f"{test_loss:.6f}", "epochs": epochs, "seconds": f"{seconds:.2f}"},
        )
        progress.update(i + 1, values=[("s/run", seconds)])
    return summarize(reporting.read_rows(config.csv), config.output)
