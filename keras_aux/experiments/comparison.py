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
import json
import os
import time
import warnings

import keras
import numpy as np

from keras_aux import censoring, weighting
from keras_aux.censoring.aggregation import Aggregated, AsymmetricGradVac, AuxiliaryAggregated
from keras_aux.datasets.synthetic_tasks import SITUATIONS, make_synthetic_tasks
from keras_aux.experiments import reporting, synthetic
from keras_aux.hierarchy import coarse_and_fine
from keras_aux.learned import AutoLambda, AuxiNash, BranchWeights, ForkMerge, MetaBalance, OLAux
from keras_aux.models import AuxiliaryModel, zip_tasks
from keras_aux.utils.optional import require_tensorflow

FIELDS = ["part", "situation", "method", "seed", "metric", "epochs", "seconds", "auxiliary_weight"]
BATCH = 100
# "pcgrad" as a name is the auxiliary-only PCGrad of `keras_aux.censoring` (with one auxiliary
# task exactly multitask); the catalogue's PCGrad treats the primary as one more task.
AGGREGATORS = (*censoring.AGGREGATOR_NAMES, "gradvac")
WEIGHTINGS = weighting.NAMES
# ForkMerge: Δt epochs per branch, so a round (primary-only branch, then primary + auxiliary) is
# 2Δt epochs; early stopping counts merges (3 merges ≈ the other methods' 10 epochs of patience).
FORK_EPOCHS = 2
FORK_PATIENCE = 3


@dataclasses.dataclass(frozen=True)
class Method:
    """How the benchmark trains one method.

    Attributes:
        family: its row group in the table and colour in the plot.
        options: ``() -> dict`` of `AuxiliaryModel.compile` arguments (fresh objects per model).
        meta: where its meta batches come from: None, ``"train"`` (the primary training set
            reshuffled, Auto-λ's reference) or ``"validation"`` (the held-out validation set,
            AuxiNash's default here).
        fork_merge: trained by the `ForkMerge` callback (merges chosen on validation).
        weight_log: the log holding the auxiliary task's learned weight (recorded per epoch).
    """

    family: str
    options: object
    meta: str = None
    fork_merge: bool = False
    weight_log: str = None


def _methods():
    """``{name: Method}``, in the table's order."""
    methods = {
        "single_task": Method("baseline", lambda: {"censoring": "single_task"}),
        "multitask": Method("baseline", lambda: {"censoring": "multitask"}),
        # The moving average α = 0.01 of the synthetic experiment's best cells.
        "projection": Method("censoring", lambda: {"censoring": "projection", "ema_alpha": 0.01}),
        "unweighted_cosine": Method(
            "censoring", lambda: {"censoring": "unweighted_cosine", "ema_alpha": 0.01}
        ),
        "weighted_cosine": Method(
            "censoring", lambda: {"censoring": "weighted_cosine", "ema_alpha": 0.01}
        ),
    }
    for name in AGGREGATORS:
        methods[name] = Method("aggregator", lambda name=name: {"censoring": name})
    methods["pcgrad"] = Method("aggregator", lambda: {"censoring": Aggregated("pcgrad")})
    methods["aux_upgrad_projection"] = Method(
        "primary-aware",
        lambda: {"censoring": AuxiliaryAggregated("upgrad", censor="projection", num_auxiliary=1)},
    )
    methods["asymmetric_gradvac"] = Method(
        "primary-aware", lambda: {"censoring": AsymmetricGradVac(num_auxiliary=1)}
    )
    for name in WEIGHTINGS:
        methods[name] = Method(
            "loss weighting",
            lambda name=name: {"censoring": "multitask", "loss_weighting": name},
        )
    methods["metabalance"] = Method(
        "learned",
        lambda: {"censoring": MetaBalance(num_auxiliary=1)},
        weight_log="auxiliary_metabalance_factor",
    )
    methods["ol_aux"] = Method(
        "learned",
        lambda: {"censoring": OLAux(num_auxiliary=1)},
        weight_log="auxiliary_ol_aux_weight",
    )
    # Auto-λ with the reference's defaults (λ = 0.1 for both tasks, exact meta-gradient) and
    # its CIFAR meta learning rate, 3e-4, the closest of its settings to small images.
    methods["auto_lambda"] = Method(
        "learned",
        lambda: {"censoring": "multitask", "loss_weighting": AutoLambda(learning_rate=3e-4)},
        meta="train",
        weight_log="auxiliary_weight",
    )
    # AuxiNash with the reference's defaults, its meta batches from the held-out validation set
    # (which early stopping also reads; the test set stays unseen).
    methods["auxinash"] = Method(
        "learned",
        lambda: {"censoring": AuxiNash(num_auxiliary=1)},
        meta="validation",
        weight_log="auxiliary_auxinash_power",
    )
    methods["fork_merge"] = Method(
        "learned",
        lambda: {"censoring": "multitask", "loss_weighting": BranchWeights()},
        fork_merge=True,
        weight_log="fork_merge_weight_1",
    )
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
        **METHODS[method].options(),
    )
    return model


@dataclasses.dataclass
class RunResult:
    """What one run gives: the test metric, the epochs trained, the seconds of `fit`, and for a
    learned method the auxiliary weight it ended on (at the restored epoch or merge) and its
    trajectory, one value per epoch (per merge for ForkMerge); None otherwise."""

    metric: float
    epochs: int
    seconds: float
    auxiliary_weight: float = None
    trajectory: list = None


def _fit(model, method, primary, auxiliary, validation, max_epochs, patience, seed):
    """Trains ``model`` as ``method`` trains; returns ``(epochs, auxiliary weight, trajectory)``."""
    tf = require_tensorflow("for keras_aux.experiments.comparison (tf.data datasets)")
    spec = METHODS[method]
    primary = tf.data.Dataset.from_tensor_slices(primary)
    n = len(auxiliary[1])
    auxiliary = (
        tf.data.Dataset.from_tensor_slices(auxiliary)
        .shuffle(n, seed=seed + 1)
        .batch(BATCH)
        .repeat()
    )
    meta = None
    if spec.meta is not None:
        source = primary if spec.meta == "train" else tf.data.Dataset.from_tensor_slices(validation)
        meta = source.shuffle(len(source), seed=seed + 2).batch(BATCH).repeat()
    primary = primary.shuffle(len(primary), seed=seed).batch(BATCH)
    validation_data = tf.data.Dataset.from_tensors(validation)
    callbacks = []
    if spec.fork_merge:
        # Merges are logged as fork_merge_primary_loss; early stopping then counts merges.
        callbacks.append(ForkMerge(validation_data, epochs_per_fork=FORK_EPOCHS))
        monitor, patience = "fork_merge_primary_loss", FORK_PATIENCE
        max_epochs -= max_epochs % (2 * FORK_EPOCHS)
    else:
        monitor = "val_primary_loss"
    callbacks.append(
        keras.callbacks.EarlyStopping(
            monitor, mode="min", patience=patience, restore_best_weights=True
        )
    )
    with warnings.catch_warnings():
        # Between merges the ForkMerge monitor is absent: early stopping skips those epochs.
        warnings.filterwarnings("ignore", message="Early stopping conditioned on metric")
        history = model.fit(
            zip_tasks(primary, {"auxiliary": auxiliary}, meta=meta),
            validation_data=None if spec.fork_merge else validation_data,
            epochs=max_epochs,
            verbose=0,
            callbacks=callbacks,
            shuffle=False,
        )
    logs = history.history
    epochs = len(logs["loss"])
    if spec.weight_log is None:
        return epochs, None, None
    trajectory = [float(w) for w in logs[spec.weight_log]]
    best = int(np.argmin(logs[monitor]))  # the epoch (merge) whose weights were restored
    return epochs, trajectory[best], trajectory


def run_fashion(data, situation, method, seed, max_epochs=200, patience=10):
    """Trains one method on one seed's Fashion-MNIST problem (`make_fashion_data`) with the
    ``situation``'s auxiliary labels; returns a `RunResult` (metric: test primary accuracy).

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
    epochs, weight, trajectory = _fit(
        model,
        method,
        (data.x_primary, data.y_primary),
        (data.x_auxiliary, data.y_auxiliary[situation]),
        (data.x_val, data.y_val),
        max_epochs,
        patience,
        seed,
    )
    seconds = time.perf_counter() - start
    scores = model.evaluate(data.x_test, data.y_test, batch_size=2000, verbose=0, return_dict=True)
    return RunResult(float(scores["primary_accuracy"]), epochs, seconds, weight, trajectory)


def run_synthetic(data, situation, method, seed, max_epochs=1000, patience=10):
    """Trains one method on seed 004's synthetic task (`make_synthetic_tasks`), the protocol of
    `keras_aux.experiments.synthetic`; returns a `RunResult` (metric: test primary MSE).

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    keras.utils.set_random_seed(seed)
    steps = data.x_train1.shape[0] // BATCH
    model = _compile(synthetic.build_mlp(seed), method, "mse", steps)
    start = time.perf_counter()
    epochs, weight, trajectory = _fit(
        model,
        method,
        data.primary("train"),
        data.auxiliary(situation),
        data.primary("val"),
        max_epochs,
        patience,
        seed,
    )
    seconds = time.perf_counter() - start
    x_test, y_test = data.primary("test")
    scores = model.evaluate(x_test, y_test, batch_size=2000, verbose=0, return_dict=True)
    return RunResult(float(scores["primary_loss"]), epochs, seconds, weight, trajectory)


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

    The learned methods' weight trajectories go beside the CSV, one JSON line per run
    (``<csv stem>_weights.jsonl``).
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


def pending(config):
    """The runs of ``config`` not yet in its CSV, in `plan`'s order."""
    validate_methods(config.methods)
    for part in config.parts:
        if part not in PARTS:
            raise ValueError(f"Unknown part {part!r}; expected one of {PARTS}.")
    done = {run_key(r) for r in reporting.read_rows(config.csv)}
    return [r for r in plan(config.parts, config.methods, config.seeds) if r not in done]


def run(config, log=_print_now, max_runs=None):
    """Runs the runs of ``config`` not yet in its CSV (at most ``max_runs``), appending each as
    it ends, with the progress and an estimate of the time left; then writes the summary
    (`report`) and returns the number of runs still to do.

    One process compiles a few hundred models at most: XLA's compiled code is never unmapped,
    and after about 200 runs its JIT fails to map more ("Cannot allocate memory") and
    TensorFlow crashes. ``benchmarks/method_comparison.py`` therefore runs ``max_runs`` at a
    time, each batch in a fresh process.

    Reference: issue 23 §6.
    """
    todo = pending(config)
    log(f"{len(todo)} runs to do ({config.csv})")
    left_after = max(len(todo) - max_runs, 0) if max_runs else 0
    todo = todo[: max_runs or None]
    images, fashion, synthetic_data = None, {}, None
    started = time.perf_counter()
    for i, (part, situation, method, seed) in enumerate(todo):
        # Hundreds of models in one process: drop the previous ones' graphs and functions.
        keras.backend.clear_session()
        if part == "fashion":
            if images is None:
                from keras_aux.datasets.images import load_fashion_mnist

                images = load_fashion_mnist(config.fashion_dir)
            if seed not in fashion:
                fashion = {seed: make_fashion_data(images, seed)}
            result = run_fashion(fashion[seed], situation, method, seed, config.fashion_max_epochs)
        else:
            if synthetic_data is None:
                synthetic_data = make_synthetic_tasks(seed=0)
            result = run_synthetic(
                synthetic_data, situation, method, seed, config.synthetic_max_epochs
            )
        row = {"part": part, "situation": situation, "method": method, "seed": seed}
        if result.trajectory is not None:
            # Before the CSV row: a run in the CSV always has its trajectory.
            with open(weights_path(config.csv), "a", encoding="utf-8") as f:
                f.write(json.dumps({**row, "trajectory": result.trajectory}) + "\n")
        weight = "" if result.auxiliary_weight is None else f"{result.auxiliary_weight:.6f}"
        row.update(
            metric=f"{result.metric:.6f}",
            epochs=result.epochs,
            seconds=f"{result.seconds:.2f}",
            auxiliary_weight=weight,
        )
        reporting.append_row(config.csv, row, FIELDS)
        elapsed = time.perf_counter() - started
        left = elapsed / (i + 1) * (len(todo) - i - 1)
        log(
            f"[{i + 1}/{len(todo)}] {part} {situation} {method} seed {seed}: "
            f"{result.metric:.4f} ({result.epochs} epochs, {result.seconds:.1f} s); "
            f"about {left / 3600:.2f} h left"
        )
    report(config.csv, config.output)
    return left_after


def report(csv_path, output):
    """The summary of a run log: `summarize`'s table and plot, and the learned weights'
    trajectories (`plot_weight_trajectories`, ``<output stem>_weights.png``); returns the table.

    Reference: issue 23 §6, issue 24 §3.
    """
    plot_weight_trajectories(read_trajectories(csv_path), output.replace(".md", "_weights.png"))
    return summarize(reporting.read_rows(csv_path), output)


def weights_path(csv_path):
    """Where the learned methods' weight trajectories of a run log go."""
    return csv_path[: -len(".csv")] + "_weights.jsonl"


def read_trajectories(csv_path):
    """``{(part, situation, method, seed): [weight per epoch]}`` from `weights_path` (the last
    line of a run wins: a rerun replaces it)."""
    path = weights_path(csv_path)
    if not os.path.exists(path):
        return {}
    out = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                item = json.loads(line)
                out[run_key(item)] = item["trajectory"]
    return out


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
        situation), ``seconds`` (median over its runs: a run slowed by the machine's other
        work, or paused, does not move it).

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
                "family": METHODS[method].family if method in METHODS else "?",
                "n": len(values),
                "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if len(values) > 1 else float("nan"),
                "diff": diff,
                "half": half,
                "pairs": pairs,
                "p": p,
                "seconds": float(np.median([v[1] for v in runs[method].values()])),
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
        "two-sided paired t-test, Holm-adjusted over the methods of the situation. **s / run**: "
        "median wall-clock seconds of a run's `fit` on a shared 2-core machine, two runs at a "
        "time, one thread each.",
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
    lines += learned_weight_lines(rows)
    table = reporting.write_markdown(lines, output)
    plot_comparison(rows, output.replace(".md", ".png"))
    return table


def learned_weights(rows):
    """For each learned method with Fashion-MNIST runs of both auxiliary tasks: its final
    auxiliary weights per seed (``coarse``, ``random``) and in how many of the seeds with both
    the harmful (random) auxiliary ended below the helpful (coarse) one.

    Reference: issue 24 §3.
    """
    out = {}
    for method, spec in METHODS.items():
        if spec.weight_log is None:
            continue
        final = {
            situation: {
                int(r["seed"]): float(r["auxiliary_weight"])
                for r in rows
                if r["part"] == "fashion"
                and r["situation"] == situation
                and r["method"] == method
                and r.get("auxiliary_weight")
            }
            for situation in FASHION_SITUATIONS
        }
        both = sorted(set(final["coarse"]) & set(final["random"]))
        if both:
            below = sum(final["random"][s] < final["coarse"][s] for s in both)
            out[method] = {**final, "seeds": both, "random_below": below}
    return out


def learned_weight_lines(rows):
    """The markdown section of `learned_weights`."""
    table = learned_weights(rows)
    if not table:
        return []
    lines = [
        "",
        "## Learned auxiliary weights (fashion)",
        "",
        "The weight each learned method gave the auxiliary task at the end of a run (the epoch, "
        "or merge, whose weights early stopping restored): MetaBalance's magnitude factor, "
        "OL-AUX's weight, Auto-λ's λ, AuxiNash's bargaining power, ForkMerge's merge weight of "
        "the primary-plus-auxiliary branch. **random below coarse**: in how many seeds the "
        "harmful auxiliary task ended with a smaller weight than the helpful one.",
        "",
        "| method | coarse (helpful) | random (harmful) | random below coarse |",
        "|---|---:|---:|---:|",
    ]
    for method, r in table.items():
        coarse = np.array([r["coarse"][s] for s in r["seeds"]])
        random = np.array([r["random"][s] for s in r["seeds"]])
        lines.append(
            f"| {method} | {coarse.mean():.3f} ± {coarse.std():.3f} | "
            f"{random.mean():.3f} ± {random.std():.3f} | "
            f"{r['random_below']} of {len(r['seeds'])} |"
        )
    return lines


def plot_weight_trajectories(trajectories, path):
    """One panel per learned method: the auxiliary weight per epoch (per merge for ForkMerge) on
    Fashion-MNIST, helpful (coarse) against harmful (random) auxiliary, mean over seeds with its
    range (a run that stopped early keeps its last value). Returns ``path``, or None without
    fashion trajectories.

    Reference: issue 24 §1 and §3.
    """
    methods = [m for m in METHODS if any(k[0] == "fashion" and k[2] == m for k in trajectories)]
    if not methods:
        return None
    plt = reporting.pyplot()
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 2.8), squeeze=False)
    colors = {"coarse": "tab:green", "random": "tab:red"}
    for ax, method in zip(axes[0], methods):
        for situation in FASHION_SITUATIONS:
            runs = [
                t
                for (part, sit, m, _), t in sorted(trajectories.items())
                if part == "fashion" and sit == situation and m == method and t
            ]
            if not runs:
                continue
            length = max(len(t) for t in runs)
            padded = np.array([t + [t[-1]] * (length - len(t)) for t in runs])
            x = np.arange(1, length + 1)
            ax.plot(
                x,
                padded.mean(0),
                "o-",
                ms=2,
                color=colors[situation],
                label=f"{situation} ({len(runs)})",
            )
            ax.fill_between(x, padded.min(0), padded.max(0), color=colors[situation], alpha=0.2)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("merge" if METHODS[method].fork_merge else "epoch", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("auxiliary weight", fontsize=8)
    fig.suptitle("Learned auxiliary weight, Fashion-MNIST (mean over seeds, range)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


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
