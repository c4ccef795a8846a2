"""Every gradient method of keras-aux side by side, on two auxiliary-learning problems (issue 23
§6): single task, multitask, projection and the cosine modes (Lemaire 2018; Du et al. 2018), the
gradient aggregators of `keras_aux.censoring.aggregation` (symmetric, the primary one more row,
and two primary-aware forms), the loss weightings of `keras_aux.weighting` and the learned
weightings of `keras_aux.learned`, each with one auxiliary weight λ = 1.

Two parts:

- ``synthetic``: seed 004's synthetic task on the published data realisation (same / similar /
  unrelated auxiliary task), the protocol of `keras_aux.experiments.synthetic` (its MLP, Adam,
  batch 100, early stopping on the validation primary MSE with patience 10; seed = shared initial
  weights and shuffling); metric: test primary MSE (lower is better).
- ``fashion``: Fashion-MNIST with a small labelled primary set (1,000 training images, 100 per
  class, drawn per seed) and an auxiliary task on all 60,000 training images: the coarse grouping
  of `keras_aux.hierarchy.FASHION_MNIST_COARSE` (helpful) or labels drawn at random (harmful).
  MLP 784 → 256 → 128 (ReLU), softmax heads of 10 units, Adam, batch 100 per task, early stopping
  on the validation primary loss (1,000 other training images, patience 10, best weights
  restored); metric: test primary accuracy on the 10,000 test images (higher is better).

Every run is appended to a CSV as soon as it ends; a restart skips the runs already there. Runs
go seed by seed (all methods of seed 0, then seed 1, ...), so a partial log gives every method
the same seeds. `summarize` writes the table (mean ± std, paired difference vs single task with
its 95 % t-interval, paired t-test p-value Holm-adjusted over the methods of a situation) and
the plot.

References: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
gradient"; Du et al. (2018), "Adapting auxiliary losses using gradient similarity"; Xiao, Rasul &
Vollgraf (2017), "Fashion-MNIST"; Holm (1979), "A simple sequentially rejective multiple test
procedure"; the papers of each method in docs/aggregation.md, docs/weighting.md and
docs/learned_weighting.md.
"""

import dataclasses
import functools
import time

import keras
import numpy as np

from keras_aux import censoring, weighting
from keras_aux.censoring.aggregation import AsymmetricGradVac, AuxiliaryAggregated
from keras_aux.datasets.synthetic_tasks import SITUATIONS, make_synthetic_tasks
from keras_aux.experiments import reporting, synthetic
from keras_aux.hierarchy import coarse_and_fine
from keras_aux.learned import MetaBalance, OLAux
from keras_aux.models import AuxiliaryModel, zip_tasks
from keras_aux.utils.optional import require_tensorflow

FIELDS = ["part", "situation", "method", "seed", "metric", "epochs", "seconds"]
BATCH = 100
AGGREGATORS = (*censoring.AGGREGATOR_NAMES, "gradvac", "pcgrad")
WEIGHTINGS = weighting.NAMES


def _methods():
    """``{name: (family, compile keyword arguments factory)}``; a factory builds fresh censoring
    objects for every model (they hold no state, but a model owns its own)."""
    methods = {
        "single_task": ("baseline", lambda: {"censoring": "single_task"}),
        "multitask": ("baseline", lambda: {"censoring": "multitask"}),
        # The moving average α = 0.01 of the synthetic experiment's best cells.
        "projection": ("censoring", lambda: {"censoring": "projection", "ema_alpha": 0.01}),
        "unweighted_cosine": (
            "censoring",
            lambda: {"censoring": "unweighted_cosine", "ema_alpha": 0.01},
        ),
        "weighted_cosine": (
            "censoring",
            lambda: {"censoring": "weighted_cosine", "ema_alpha": 0.01},
        ),
    }
    for name in AGGREGATORS:
        methods[name] = ("aggregator", lambda name=name: {"censoring": name})
    methods["aux_upgrad_projection"] = (
        "primary-aware",
        lambda: {"censoring": AuxiliaryAggregated("upgrad", censor="projection", num_auxiliary=1)},
    )
    methods["asymmetric_gradvac"] = (
        "primary-aware",
        lambda: {"censoring": AsymmetricGradVac(num_auxiliary=1)},
    )
    for name in WEIGHTINGS:
        methods[name] = (
            "loss weighting",
            lambda name=name: {"censoring": "multitask", "loss_weighting": name},
        )
    methods["metabalance"] = ("learned", lambda: {"censoring": MetaBalance(num_auxiliary=1)})
    methods["ol_aux"] = ("learned", lambda: {"censoring": OLAux(num_auxiliary=1)})
    return methods


METHODS = _methods()
PARTS = ("fashion", "synthetic")
FASHION_SITUATIONS = ("coarse", "random")
HIGHER_IS_BETTER = {"fashion": True, "synthetic": False}


def validate_methods(names):
    """``names`` as a tuple, refusing unknown ones (the error lists ``METHODS``)."""
    unknown = [n for n in names if n not in METHODS]
    if unknown:
        raise ValueError(f"Unknown methods {unknown}; expected names from {list(METHODS)}.")
    return tuple(names)


# ---------------------------------------------------------------------------------------------
# Fashion-MNIST part
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FashionData:
    """One seed's Fashion-MNIST problem: the small primary set, its validation set, the
    auxiliary set (all training images) with its labels, and the test set; images flattened to
    784 floats in [0, 1]."""

    x_primary: np.ndarray
    y_primary: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_auxiliary: np.ndarray
    y_auxiliary: dict
    x_test: np.ndarray
    y_test: np.ndarray


def make_fashion_data(images, seed, per_class=100, val_size=1000):
    """The seed's split of ``images`` (``load_fashion_mnist()``'s ``((x, y), (x_test,
    y_test))``): ``per_class`` primary images of each class and ``val_size`` other ones for
    validation, drawn with ``seed``; auxiliary labels on every training image: ``"coarse"``
    (`coarse_and_fine`'s four groups) and ``"random"`` (uniform over the ten classes, drawn with
    ``seed``, independent of the image).

    Reference: Xiao, Rasul & Vollgraf (2017), Fashion-MNIST; the coarse grouping of Liu, Davison
    & Johns (2019), MAXL §4.
    """
    (x, y), (x_test, y_test) = images
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    primary = np.concatenate([order[y[order] == c][:per_class] for c in range(10)])
    rest = np.setdiff1d(order, primary, assume_unique=True)
    val = rng.choice(rest, val_size, replace=False)
    flat = lambda a: (a.reshape(len(a), -1) / 255.0).astype("float32")  # noqa: E731
    x_all = flat(x)
    coarse, _, _ = coarse_and_fine(y)
    return FashionData(
        x_primary=x_all[primary],
        y_primary=y[primary].astype("int32"),
        x_val=x_all[val],
        y_val=y[val].astype("int32"),
        x_auxiliary=x_all,
        y_auxiliary={
            "coarse": coarse.astype("int32"),
            "random": rng.integers(0, 10, len(y)).astype("int32"),
        },
        x_test=flat(x_test),
        y_test=y_test.astype("int32"),
    )


def fashion_mlp(seed, input_dim=784, hidden=(256, 128), classes=10):
    """The Fashion-MNIST network: shared ReLU layers and two softmax heads (``primary``,
    ``auxiliary``) of ``classes`` units, initial weights fixed by ``seed``.

    Reference: a small MLP in the spirit of Lemaire (2018)'s synthetic network.
    """
    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)  # noqa: E731
    x = keras.Input((input_dim,), name="x")
    h = x
    for i, units in enumerate(hidden):
        h = keras.layers.Dense(units, activation="relu", kernel_initializer=init(i))(h)
    outputs = {
        name: keras.layers.Dense(
            classes, activation="softmax", kernel_initializer=init(len(hidden) + k), name=name
        )(h)
        for k, name in enumerate(("primary", "auxiliary"))
    }
    return AuxiliaryModel(x, outputs, primary="primary")


def _compile(model, method, loss, steps, metrics=None):
    model.compile(
        keras.optimizers.Adam(),
        loss=loss,
        loss_weights={"auxiliary": 1.0},
        metrics=metrics,
        track_gradient_cosine=False,
        jit_compile=True,
        steps_per_execution=steps,
        **METHODS[method][1](),
    )
    return model


def _fit(model, primary, auxiliary, validation, max_epochs, patience, seed):
    tf = require_tensorflow("for keras_aux.experiments.comparison (tf.data datasets)")
    primary = tf.data.Dataset.from_tensor_slices(primary)
    primary = primary.shuffle(len(primary), seed=seed).batch(BATCH)
    n = len(auxiliary[1])
    auxiliary = (
        tf.data.Dataset.from_tensor_slices(auxiliary)
        .shuffle(n, seed=seed + 1)
        .batch(BATCH)
        .repeat()
    )
    stop = keras.callbacks.EarlyStopping(
        "val_primary_loss", mode="min", patience=patience, restore_best_weights=True
    )
    history = model.fit(
        zip_tasks(primary, {"auxiliary": auxiliary}),
        validation_data=tf.data.Dataset.from_tensors(validation),
        epochs=max_epochs,
        verbose=0,
        callbacks=[stop],
        shuffle=False,
    )
    return len(history.history["loss"])


def run_fashion(data, situation, method, seed, max_epochs=200, patience=10):
    """Trains one method on one seed's Fashion-MNIST problem (`make_fashion_data`) with the
    ``situation``'s auxiliary labels; returns (test primary accuracy, epochs, seconds).

    Reference: issue 23 §6; Xiao, Rasul & Vollgraf (2017), Fashion-MNIST.
    """
    keras.utils.set_random_seed(seed)
    steps = len(data.y_primary) // BATCH
    model = _compile(
        fashion_mlp(seed),
        method,
        "sparse_categorical_crossentropy",
        steps,
        metrics={"primary": ["accuracy"]},
    )
    start = time.perf_counter()
    epochs = _fit(
        model,
        (data.x_primary, data.y_primary),
        (data.x_auxiliary, data.y_auxiliary[situation]),
        (data.x_val, data.y_val),
        max_epochs,
        patience,
        seed,
    )
    scores = model.evaluate(data.x_test, data.y_test, batch_size=2000, verbose=0, return_dict=True)
    return float(scores["primary_accuracy"]), epochs, time.perf_counter() - start


def run_synthetic(data, situation, method, seed, max_epochs=1000, patience=10):
    """Trains one method on seed 004's synthetic task (`make_synthetic_tasks`), the protocol of
    `keras_aux.experiments.synthetic`; returns (test primary MSE, epochs, seconds).

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    keras.utils.set_random_seed(seed)
    steps = data.x_train1.shape[0] // BATCH
    model = _compile(synthetic.build_mlp(seed), method, "mse", steps)
    start = time.perf_counter()
    epochs = _fit(
        model,
        data.primary("train"),
        data.auxiliary(situation),
        data.primary("val"),
        max_epochs,
        patience,
        seed,
    )
    x_test, y_test = data.primary("test")
    scores = model.evaluate(x_test, y_test, batch_size=2000, verbose=0, return_dict=True)
    return float(scores["primary_loss"]), epochs, time.perf_counter() - start


# ---------------------------------------------------------------------------------------------
# The resumable loop
# ---------------------------------------------------------------------------------------------


def situations_of(part):
    """The auxiliary situations of a part."""
    return FASHION_SITUATIONS if part == "fashion" else SITUATIONS


def plan(parts, methods, seeds):
    """Every run, part by part, then seed major: ``[(part, situation, method, seed)]``, so a
    log cut short holds every method at the same seeds.

    Reference: issue 23 §6.
    """
    return [
        (part, situation, method, seed)
        for part in parts
        for seed in seeds
        for situation in situations_of(part)
        for method in methods
    ]


def run_key(row):
    """Identity of a run in the CSV."""
    return (row["part"], row["situation"], row["method"], int(row["seed"]))


@dataclasses.dataclass
class ComparisonConfig:
    """What to run (the flags of ``benchmarks/method_comparison.py``).

    Attributes:
        parts: ``"fashion"`` and/or ``"synthetic"``, run in this order.
        methods: names of ``METHODS``.
        seeds: seed numbers.
        csv: the run log (appended; runs already in it are skipped).
        output: the summary table; the plot goes beside it as ``.png``.
        fashion_max_epochs, synthetic_max_epochs: upper bounds (early stopping ends runs first).
        fashion_dir: where the Fashion-MNIST files are (None: the usual places).
    """

    parts: tuple = PARTS
    methods: tuple = tuple(METHODS)
    seeds: tuple = tuple(range(10))
    csv: str = "benchmarks/results/method_comparison.csv"
    output: str = "benchmarks/results/method_comparison.md"
    fashion_max_epochs: int = 200
    synthetic_max_epochs: int = 1000
    fashion_dir: str = None


_print_now = functools.partial(print, flush=True)


def run(config, log=_print_now):
    """Runs every run of ``config`` not yet in its CSV, appending each as it ends, with the
    progress and an estimate of the time left; then writes the summary (`summarize`).

    Reference: issue 23 §6.
    """
    validate_methods(config.methods)
    for part in config.parts:
        if part not in PARTS:
            raise ValueError(f"Unknown part {part!r}; expected one of {PARTS}.")
    done = {run_key(r) for r in reporting.read_rows(config.csv)}
    todo = [r for r in plan(config.parts, config.methods, config.seeds) if r not in done]
    log(f"{len(todo)} runs to do ({len(done)} already in {config.csv})")
    images, fashion, synthetic_data = None, {}, None
    started = time.perf_counter()
    for i, (part, situation, method, seed) in enumerate(todo):
        if part == "fashion":
            if images is None:
                from keras_aux.datasets.images import load_fashion_mnist

                images = load_fashion_mnist(config.fashion_dir)
            if seed not in fashion:
                fashion = {seed: make_fashion_data(images, seed)}
            metric, epochs, seconds = run_fashion(
                fashion[seed], situation, method, seed, config.fashion_max_epochs
            )
        else:
            if synthetic_data is None:
                synthetic_data = make_synthetic_tasks(seed=0)
            metric, epochs, seconds = run_synthetic(
                synthetic_data, situation, method, seed, config.synthetic_max_epochs
            )
        reporting.append_row(
            config.csv,
            {
                "part": part,
                "situation": situation,
                "method": method,
                "seed": seed,
                "metric": f"{metric:.6f}",
                "epochs": epochs,
                "seconds": f"{seconds:.2f}",
            },
            FIELDS,
        )
        elapsed = time.perf_counter() - started
        left = elapsed / (i + 1) * (len(todo) - i - 1)
        log(
            f"[{i + 1}/{len(todo)}] {part} {situation} {method} seed {seed}: {metric:.4f} "
            f"({epochs} epochs, {seconds:.1f} s); about {left / 3600:.2f} h left"
        )
    return summarize(reporting.read_rows(config.csv), config.output)


# ---------------------------------------------------------------------------------------------
# Statistics, table and plot
# ---------------------------------------------------------------------------------------------


def compare(rows, part, situation):
    """Each method of one (part, situation) against single task, paired by seed.

    Returns:
        One dict per method with runs (single task first, then the CSV's order): ``method``,
        ``n`` (its seeds), ``mean``, ``std``, ``diff`` (mean paired difference vs single task,
        in the metric's units), ``half`` (half-width of its 95 % t-interval), ``pairs``, ``p``
        (two-sided paired t-test) and ``p_holm`` (Holm-adjusted over the methods of this
        situation), ``seconds`` (mean per run).

    Reference: Holm (1979); the paired comparisons of docs/censoring.md#synthetic-experiment.
    """
    runs = {}
    for r in rows:
        if r["part"] == part and r["situation"] == situation:
            runs.setdefault(r["method"], {})[int(r["seed"])] = (
                float(r["metric"]),
                float(r["seconds"]),
            )
    single = {s: v[0] for s, v in runs.get("single_task", {}).items()}
    out = []
    names = sorted(
        runs, key=lambda m: (m != "single_task", list(METHODS).index(m) if m in METHODS else 99)
    )
    for method in names:
        values = np.array([v[0] for v in runs[method].values()])
        ours, theirs = reporting.pair_by_seed({s: v[0] for s, v in runs[method].items()}, single)
        if method == "single_task" or not ours:
            diff, half, pairs, p = float("nan"), float("nan"), 0, float("nan")
        else:
            diff, half, pairs = reporting.paired_difference(ours, theirs)
            p = reporting.paired_t_pvalue(ours, theirs)
        out.append(
            {
                "method": method,
                "family": METHODS[method][0] if method in METHODS else "?",
                "n": len(values),
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                "diff": diff,
                "half": half,
                "pairs": pairs,
                "p": p,
                "seconds": float(np.mean([v[1] for v in runs[method].values()])),
            }
        )
    adjusted = reporting.holm_adjusted([r["p"] for r in out])
    for r, p in zip(out, adjusted):
        r["p_holm"] = float(p)
    return out


def _present(rows):
    return [
        (part, situation)
        for part in PARTS
        for situation in situations_of(part)
        if any(r["part"] == part and r["situation"] == situation for r in rows)
    ]


def summarize(rows, output):
    """Writes (and prints) the markdown table of the run log to ``output`` and the plot beside it
    as ``.png`` (`plot_comparison`); returns the markdown.

    Reference: issue 23 §6; Holm (1979).
    """
    scale = {"fashion": 100.0, "synthetic": 1.0}
    lines = [
        "# Method comparison: every gradient method of keras-aux against single task",
        "",
        "`python -m benchmarks.method_comparison` (keras_aux/experiments/comparison.py). λ = 1 "
        "for every method; projection and the cosine modes use the moving average α = 0.01. "
        "**diff**: mean over seeds of the paired difference to single task (same seed: same "
        "initial weights, data and shuffling) ± the half-width of its 95 % t-interval; **p**: "
        "two-sided paired t-test, Holm-adjusted over the methods of the situation.",
        "",
        "- **fashion**: Fashion-MNIST, 1,000 labelled primary images (100 per class, drawn per "
        "seed), the auxiliary task on all 60,000 training images: `coarse` (the four groups of "
        "`FASHION_MNIST_COARSE`, helpful) or `random` (random labels, harmful); MLP 784-256-128, "
        "Adam, batch 100 per task, early stopping on 1,000 validation images (patience 10). "
        "Test primary accuracy in %, higher is better.",
        "- **synthetic**: seed 004's task on the published realisation, the protocol of "
        "`benchmarks/synthetic_censoring.py` (MLP 4×Dense(100), Adam, batch 100, patience 10). "
        "Test primary MSE, lower is better.",
    ]
    for part, situation in _present(rows):
        k = scale[part]
        unit = "accuracy (%)" if part == "fashion" else "MSE"
        lines += [
            "",
            f"## {part}: {situation} auxiliary task",
            "",
            f"| method | family | seeds | test {unit} | diff vs single | p (Holm) | s / run |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for r in compare(rows, part, situation):
            fmt = ".2f" if part == "fashion" else ".4f"
            if r["method"] == "single_task" or r["pairs"] == 0:
                diff = "–"
            else:
                half = "" if np.isnan(r["half"]) else f" ± {k * r['half']:{fmt}}"
                diff = f"{k * r['diff']:+{fmt}}{half}"
            std = "" if np.isnan(r["std"]) else f" ± {k * r['std']:{fmt}}"
            lines.append(
                f"| {r['method']} | {r['family']} | {r['n']} | {k * r['mean']:{fmt}}{std} | "
                f"{diff} | {reporting.format_pvalue(r['p_holm'])} | {r['seconds']:.1f} |"
            )
    table = reporting.write_markdown(lines, output)
    plot_comparison(rows, output.replace(".md", ".png"))
    return table


_FAMILY_COLORS = {
    "baseline": "tab:gray",
    "censoring": "tab:green",
    "aggregator": "tab:blue",
    "primary-aware": "tab:cyan",
    "loss weighting": "tab:orange",
    "learned": "tab:red",
}


def plot_comparison(rows, path):
    """One panel per (part, situation): each method's paired difference to single task with its
    95 % interval (horizontal bars, coloured by family), positive = better than single task.

    Reference: issue 23 §6.
    """
    present = _present(rows)
    if not present:
        return None
    plt = reporting.pyplot()
    fig, axes = plt.subplots(
        1, len(present), figsize=(3.6 * len(present), 0.22 * len(METHODS) + 1.5), squeeze=False
    )
    for ax, (part, situation) in zip(axes[0], present):
        sign = 100.0 if HIGHER_IS_BETTER[part] else -1.0
        table = [r for r in compare(rows, part, situation) if r["pairs"] > 0]
        y = np.arange(len(table))[::-1]
        for yi, r in zip(y, table):
            half = 0.0 if np.isnan(r["half"]) else abs(sign) * r["half"]
            ax.errorbar(
                sign * r["diff"],
                yi,
                xerr=half,
                fmt="o",
                ms=3,
                capsize=2,
                color=_FAMILY_COLORS.get(r["family"], "k"),
            )
        ax.axvline(0.0, color="k", lw=0.8, ls="--")
        ax.set_yticks(y)
        ax.set_yticklabels([r["method"] for r in table], fontsize=7)
        ax.set_title(f"{part}: {situation}", fontsize=9)
        ax.set_xlabel(
            "Δ test accuracy (points)" if part == "fashion" else "−Δ test MSE", fontsize=8
        )
        ax.tick_params(axis="x", labelsize=7)
    fig.suptitle("vs single task, paired by seed, 95 % intervals (right = better)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
