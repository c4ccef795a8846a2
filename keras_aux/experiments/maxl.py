"""MAXL and its baselines on image data (Liu, Davison & Johns 2019), as plain functions.

Methods (Liu, Davison & Johns 2019, §4): ``single`` (primary task only),
``human`` (a real fine label as the auxiliary target), ``random`` (a fixed,
well-balanced random auxiliary class inside each example's primary block),
``kmeans`` (clusters of an auto-encoder's latent code within each primary
class, re-computed every epoch), and ``maxl`` (generated labels, meta-gradient).
Every method uses the same backbone, focal loss (γ = 2) on the primary task
and the same θ1 optimiser, so only the auxiliary task differs.

Primary task per dataset: Fashion-MNIST is grouped into four coarse classes
(tops / bottoms and dresses / footwear / bags, ψ = [4, 2, 3, 1],
`keras_aux.hierarchy.FASHION_MNIST_COARSE`) so that the Human baseline has
a real hierarchy; CIFAR-100 uses its 20 coarse classes (fine labels for
Human); MNIST, CIFAR-10 and digits keep their ten classes (no Human).

Two experiments: `run` (one method on one dataset, with TensorBoard logs, ``result.json`` and a
SavedModel: ``trainers/train_maxl.py``) and `run_benchmark` (every method over several seeds on
Fashion-MNIST, a resumable CSV, a table and plots: ``benchmarks/maxl_fashion.py``).

Reference: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with Meta Auxiliary
Learning"; docs/maxl.md.
"""

import dataclasses
import json
import os
import time

import keras
import numpy as np

from keras_aux import baselines, hierarchy
from keras_aux.architectures import BACKBONES, multitask_network, single_task_network
from keras_aux.datasets import images
from keras_aux.experiments import reporting
from keras_aux.losses import FocalLoss
from keras_aux.models import MAXL

METHODS = ("maxl", "single", "human", "random", "kmeans")
DATASETS = ("fashion_mnist", "mnist", "cifar10", "cifar100", "digits")


@dataclasses.dataclass
class ImageTask:
    """Train / validation / test arrays of one primary task (images float32 in [0, 1]).

    Reference: the image datasets of Liu, Davison & Johns (2019), §4; docs/maxl.md.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: list
    human_psi: tuple = None  # the real hierarchy, when the dataset has one
    human_train: np.ndarray = None  # fine labels as auxiliary classes under human_psi

    @property
    def num_primary(self):
        """Number of primary classes."""
        return len(self.class_names)

    @property
    def input_shape(self):
        """Shape of one image, channels last."""
        return self.x_train.shape[1:]


def _scale(x, maximum):
    """Float32 images in [0, 1] with a channel axis."""
    x = np.asarray(x, np.float32) / maximum
    return x[..., None] if x.ndim == 3 else x


def load_task(dataset, data_dir=None, train_size=None, val_size=5000, seed=0):
    """An `ImageTask` from local files.

    Args:
        dataset: one of `DATASETS`.
        data_dir: where the files are (see `keras_aux.datasets.images`).
        train_size: training examples kept (a stratified-by-chance random
            subset; None keeps all that are not used for validation).
        val_size: examples held out of the training set for validation.
        seed: subset and split seed.

    Reference: Liu, Davison & Johns (2019), §4 (datasets and their hierarchies); docs/maxl.md.
    """
    if dataset not in DATASETS:
        raise ValueError(f"Unknown dataset {dataset!r}; expected one of {list(DATASETS)}.")
    human_psi = fine = None
    if dataset == "fashion_mnist":
        (x, y_fine), (x_test, y_test_fine) = images.load_fashion_mnist(data_dir)
        y, human_psi, fine = hierarchy.coarse_and_fine(y_fine)
        y_test = hierarchy.coarse_and_fine(y_test_fine)[0]
        names = list(hierarchy.FASHION_MNIST_COARSE_NAMES)
    elif dataset == "cifar100":
        (x, y_both), (x_test, y_test_both) = images.load_cifar100(data_dir, label_mode="both")
        grouping = hierarchy.cifar100_grouping(y_both["coarse"], y_both["fine"])
        y, human_psi, fine = hierarchy.coarse_and_fine(y_both["fine"], grouping)
        y_test = hierarchy.coarse_and_fine(y_test_both["fine"], grouping)[0]
        names = [f"coarse_{i}" for i in range(len(grouping))]
    else:
        loader = {
            "mnist": images.load_mnist,
            "cifar10": images.load_cifar10,
            "digits": lambda _: images.load_digits(),
        }[dataset]
        (x, y), (x_test, y_test) = loader(data_dir)
        names = [str(i) for i in range(10)]
    maximum = 16.0 if dataset == "digits" else 255.0  # digits are counts in 0..16
    order = np.random.default_rng(seed).permutation(len(x))
    val_size = min(int(val_size), len(x) // 5)
    val, train = order[:val_size], order[val_size:]
    if train_size is not None:
        if train_size > len(train):
            raise ValueError(f"train_size={train_size} but only {len(train)} examples remain.")
        train = train[: int(train_size)]
    return ImageTask(
        _scale(x[train], maximum),
        np.asarray(y)[train].astype(np.int64),
        _scale(x[val], maximum),
        np.asarray(y)[val].astype(np.int64),
        _scale(x_test, maximum),
        np.asarray(y_test).astype(np.int64),
        names,
        human_psi,
        None if fine is None else np.asarray(fine)[train].astype(np.int64),
    )


def default_psi(task, method, psi=None):
    """ψ: given, else the dataset's own hierarchy (so every method has the
    Human baseline's auxiliary capacity), else three per primary class.

    ``psi`` may be a sequence (one count per primary class) or a string
    (`keras_aux.hierarchy.parse_psi`: ``"3"`` for every class, ``"2,3,..."``).

    Reference: Liu, Davison & Johns (2019), §3 (the hierarchy ψ); docs/maxl.md.
    """
    if isinstance(psi, str):
        psi = hierarchy.parse_psi(psi, task.num_primary) if psi else None
    if psi is not None:
        psi = hierarchy.validate_psi(psi)
        if len(psi) != task.num_primary:
            raise ValueError(f"ψ has {len(psi)} entries for {task.num_primary} primary classes.")
        if method == "human" and psi != task.human_psi:
            raise ValueError(
                f"The Human baseline's ψ is the dataset's own: {list(task.human_psi)}."
            )
        return psi
    if method == "human" and task.human_psi is None:
        raise ValueError("This dataset has no label hierarchy: the Human baseline needs one.")
    return task.human_psi or (3,) * task.num_primary


@dataclasses.dataclass
class TrainConfig:
    """What one run trains: the method and every hyperparameter.

    Attributes:
        method: one of `METHODS`.
        backbone: ``"conv4"``, ``"vgg16"`` or ``"mlp"`` (`keras_aux.architectures.BACKBONES`),
            the same for both of MAXL's networks.
        filters: conv4 widths (None: the paper's 32, 64, 128, 256).
        psi: ψ, auxiliary classes per primary class: a sequence, a string for
            `keras_aux.hierarchy.parse_psi` (``"3"``, ``"2,3,..."``), or None (`default_psi`).
        order: MAXL's meta-gradient: 2 exact, 1 finite-difference estimate.
        schedule: MAXL's stage schedule, ``"epoch"`` (the paper's alternation of whole stage-1
            and stage-2 epochs) or ``"interleaved"``.
        stage2_every: interleaved schedule: stage 2 every k steps.
        epochs: epochs (MAXL's epoch schedule: one stage-1 and one stage-2 pass each).
        batch_size: batch size.
        learning_rate: θ1's SGD learning rate, cosine-annealed over the run.
        momentum: θ1's SGD momentum.
        weight_decay: θ1's weight decay (0: none).
        generator_learning_rate: θ2's (the label generator's) SGD learning rate.
        generator_weight_decay: θ2's weight decay (0: none).
        entropy_weight: weight of MAXL's entropy regulariser.
        seed: weights and random labels (and, in `run` and `run_benchmark`, the subset and
            split).
        jit_compile: XLA.

    Reference: Liu, Davison & Johns (2019), §4 and Appendix B (hyperparameters); docs/maxl.md.
    """

    method: str = "maxl"
    backbone: str = "conv4"
    filters: tuple | None = None
    psi: tuple | str | None = None
    order: int = 2
    schedule: str = "epoch"
    stage2_every: int = 1
    epochs: int = 10
    batch_size: int = 100
    learning_rate: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    generator_learning_rate: float = 1e-3
    generator_weight_decay: float = 5e-4
    entropy_weight: float = 0.2
    seed: int = 0
    jit_compile: bool = False


def _backbone(config, input_shape, seed, name):
    fn = BACKBONES[config.backbone]
    if config.backbone == "conv4" and config.filters:
        return fn(input_shape, filters=tuple(config.filters), seed=seed, name=name)
    return fn(input_shape, seed=seed, name=name)


def _theta1_optimizer(config, steps):
    # The paper's Appendix B for the image datasets: SGD 0.1, momentum 0.9,
    # weight decay 5e-4, cosine annealing over the run.
    schedule = keras.optimizers.schedules.CosineDecay(config.learning_rate, max(steps, 1))
    return keras.optimizers.SGD(
        schedule, momentum=config.momentum, weight_decay=config.weight_decay or None
    )


def build(config, task):
    """``(compiled model, fit epochs, ψ)`` for one method.

    Reference: Liu, Davison & Johns (2019), §3–4 (MAXL and the baselines); docs/maxl.md.
    """
    if config.method not in METHODS:
        raise ValueError(f"Unknown method {config.method!r}; expected one of {list(METHODS)}.")
    if config.backbone not in BACKBONES:
        raise ValueError(f"Unknown backbone {config.backbone!r}; expected {sorted(BACKBONES)}.")
    psi = default_psi(task, config.method, config.psi)
    steps = config.epochs * int(np.ceil(len(task.x_train) / config.batch_size))
    keras.utils.set_random_seed(config.seed)
    shape = task.input_shape
    if config.method == "maxl":
        model = MAXL.from_backbone(
            lambda s, seed, name: _backbone(config, s, seed, name),
            shape,
            psi,
            seed=config.seed,
            order=config.order,
            schedule=config.schedule,
            stage2_every=config.stage2_every,
            entropy_weight=config.entropy_weight,
        )
        model.compile(
            _theta1_optimizer(config, steps),
            keras.optimizers.SGD(
                config.generator_learning_rate,
                weight_decay=config.generator_weight_decay or None,
            ),
            jit_compile=config.jit_compile,
        )
        # The paper's epoch is a stage-1 pass and a stage-2 pass: two fit epochs.
        fit_epochs = config.epochs * (2 if config.schedule == "epoch" else 1)
        return model, fit_epochs, psi
    backbone = _backbone(config, shape, config.seed, "backbone")
    if config.method == "single":
        model = single_task_network(backbone, task.num_primary, seed=config.seed)
        losses = {"primary": FocalLoss()}
    else:
        model = multitask_network(backbone, psi, seed=config.seed)
        losses = {"primary": FocalLoss(), "auxiliary": FocalLoss()}
    model.compile(
        _theta1_optimizer(config, steps),
        loss=losses,
        metrics={"primary": ["sparse_categorical_accuracy"]},
        jit_compile=config.jit_compile,
    )
    return model, config.epochs, psi


def _primary_head(model):
    """A model serving the primary probabilities only (for evaluation and export)."""
    if isinstance(model, MAXL):
        return model
    return keras.Model(model.input, model.output["primary"], name=f"{model.name}_primary")


def train(config, task, callbacks=(), verbose=0):
    """Trains one run; returns ``(result dict, served model)``.

    The result holds the test accuracy of the primary task after the last
    epoch (no early stopping, no selection on the test set), the best
    validation accuracy, and the seconds the training took.

    Reference: Liu, Davison & Johns (2019), §4 (evaluation); docs/maxl.md#baselines.
    """
    model, fit_epochs, psi = build(config, task)
    callbacks = list(callbacks)
    x, y = task.x_train, task.y_train
    start = time.perf_counter()
    if config.method == "maxl":
        history = model.fit(
            x,
            y,
            batch_size=config.batch_size,
            epochs=fit_epochs,
            validation_data=(task.x_val, task.y_val),
            callbacks=callbacks,
            verbose=verbose,
        )
    else:
        if config.method == "single":
            data = (x, {"primary": y})
        elif config.method in ("human", "random"):
            labels = (
                task.human_train
                if config.method == "human"
                else baselines.random_auxiliary_labels(y, psi, seed=config.seed)
            )
            data = (x, {"primary": y, "auxiliary": np.eye(sum(psi), dtype=np.float32)[labels]})
        else:  # kmeans: labels in a table that a callback re-clusters every epoch
            start_labels = baselines.random_auxiliary_labels(y, psi, seed=config.seed)
            table = baselines.AuxiliaryLabelTable(start_labels, y, psi)
            callbacks.append(baselines.KMeansRelabel(table, x, every=1, seed=config.seed))
            data = (table.dataset(x, batch_size=config.batch_size, seed=config.seed),)
        fit_kwargs = {} if config.method == "kmeans" else {"batch_size": config.batch_size}
        val_targets = {"primary": task.y_val}
        if config.method != "single":
            # Keras needs a target per output: all-zero rows give an auxiliary
            # validation loss of 0, so val_loss is the primary loss.
            val_targets["auxiliary"] = np.zeros((len(task.y_val), sum(psi)), np.float32)
        history = model.fit(
            *data,
            epochs=fit_epochs,
            validation_data=(task.x_val, val_targets),
            callbacks=callbacks,
            verbose=verbose,
            **fit_kwargs,
        )
    seconds = time.perf_counter() - start
    served = _primary_head(model)
    probabilities = served.predict(task.x_test, batch_size=1000, verbose=0)
    test_accuracy = float(np.mean(np.argmax(probabilities, -1) == task.y_test))
    val_key = next(k for k in history.history if k.startswith("val_") and "accuracy" in k)
    result = {
        **dataclasses.asdict(config),
        "psi": list(psi),
        "test_accuracy": test_accuracy,
        "best_val_accuracy": float(np.max(history.history[val_key])),
        "fit_epochs": fit_epochs,
        "seconds": round(seconds, 1),
    }
    if config.method == "maxl":
        usage = history.history.get("auxiliary_usage")
        result["auxiliary_usage"] = float(usage[-1]) if usage else None
    return result, served


def plot_learned_labels(model, task, path, per_class=8, max_examples=2000):
    """A PNG grid: for every auxiliary class (one row), the training images the
    MAXL label generator assigns to it most confidently; rows are grouped by
    primary class (the block of ψ each auxiliary class belongs to).

    Reference: Liu, Davison & Johns (2019), MAXL, Figure 6.
    """
    plt = reporting.pyplot()
    x, y = task.x_train[:max_examples], task.y_train[:max_examples]
    labels = model.generate_labels(x, y)
    owner = hierarchy.primary_of_auxiliary(model.psi)
    rows = len(owner)
    fig, axes = plt.subplots(rows, per_class, figsize=(per_class * 0.9, rows * 0.95), squeeze=False)
    for k in range(rows):
        best = np.argsort(-labels[:, k])[:per_class]
        share = np.mean(np.argmax(labels[y == owner[k]], -1) == k) if np.any(y == owner[k]) else 0
        for j, ax in enumerate(axes[k]):
            ax.axis("off")
            if j < len(best) and labels[best[j], k] > 0:
                image = x[best[j]]
                ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray")
        axes[k][0].set_title(
            f"{task.class_names[owner[k]]} / aux {k} ({share:.0%})", fontsize=7, loc="left"
        )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclasses.dataclass
class RunConfig:
    """One method on one dataset, logged and exported (the flags of ``trainers/train_maxl.py``).

    Attributes:
        dataset: one of `DATASETS`.
        data_dir: where the dataset's files are (None: the known places of
            `keras_aux.datasets.images`).
        train_size: training examples used (None: all that are not held out).
        val_size: training examples held out for validation.
        logdir: TensorBoard logs, ``result.json`` and ``learned_labels.png``, one sub-folder per
            run (`run_name` + ``_seed<seed>``).
        export_dir: SavedModel destination (None: ``saved_models/<run_name>``).
        train: the method and its hyperparameters; ``train.seed`` also draws the subset and
            the split.

    Reference: Liu, Davison & Johns (2019), §4; docs/maxl.md.
    """

    dataset: str = "fashion_mnist"
    data_dir: str | None = None
    train_size: int | None = None
    val_size: int = 5000
    logdir: str = "logs/maxl"
    export_dir: str | None = None
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)

    @property
    def run_name(self):
        """``<dataset>_<method>``, with ``_order<order>`` for MAXL."""
        order = f"_order{self.train.order}" if self.train.method == "maxl" else ""
        return f"{self.dataset}_{self.train.method}{order}"

    @property
    def run_dir(self):
        """The run's log folder: ``logdir/<run_name>_seed<seed>``."""
        return os.path.join(self.logdir, f"{self.run_name}_seed{self.train.seed}")


def run(config, log=print, verbose=2):
    """Trains one method on one dataset: data → `train` with TensorBoard logs →
    ``result.json`` in the run's log folder → for MAXL, ``learned_labels.png``
    (`plot_learned_labels`) → SavedModel serving the primary class probabilities, with
    ``labels.json`` (the class names) beside it.

    Args:
        config: a `RunConfig`.
        log: prints the data summary and the learned-labels plot's path.
        verbose: Keras' ``fit`` verbosity.

    Returns:
        ``(result, export_dir)``: ``result`` is `train`'s result dict (also in ``result.json``).

    Reference: Liu, Davison & Johns (2019), §4; docs/maxl.md.
    """
    train_config = config.train
    task = load_task(
        config.dataset, config.data_dir, config.train_size, config.val_size, train_config.seed
    )
    run_dir = config.run_dir
    log(
        f"{train_config.method} on {config.dataset}: {len(task.x_train)} train / "
        f"{len(task.x_val)} val / {len(task.x_test)} test, primary classes {task.class_names}"
    )
    result, served = train(
        train_config, task, callbacks=[keras.callbacks.TensorBoard(run_dir)], verbose=verbose
    )
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    if train_config.method == "maxl":
        plot = plot_learned_labels(served, task, os.path.join(run_dir, "learned_labels.png"))
        log(f"learned auxiliary labels: {plot}")
    export_dir = config.export_dir or os.path.join("saved_models", config.run_name)
    served.export(export_dir, verbose=False)
    with open(os.path.join(export_dir, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(task.class_names, f)
    return result, export_dir


BENCHMARK_FIELDS = [
    "method",
    "seed",
    "test_accuracy",
    "best_val_accuracy",
    "seconds",
    "auxiliary_usage",
]


@dataclasses.dataclass
class BenchmarkConfig:
    """MAXL against its baselines on Fashion-MNIST's four coarse classes, several seeds (the
    flags of ``benchmarks/maxl_fashion.py``). Budgeted for a 2-core CPU: a training subset and a
    narrower ConvNet.

    Attributes:
        methods: the methods (`METHODS`), in the order they run within a seed.
        seeds: seeds 0 .. seeds-1 (each: its own training subset, split and initial weights).
        epochs: epochs (MAXL: one stage-1 and one stage-2 pass each).
        train_size: training examples (a low-data regime).
        filters: the 4-layer ConvNet's widths.
        order: MAXL's meta-gradient order.
        data_dir: Fashion-MNIST's files (None: the known places).
        csv: the run log, appended to (runs already in it are skipped).
        output: the summary table; the plots go beside it (``.png``, ``_labels.png``).

    Reference: Liu, Davison & Johns (2019), §4 (baselines); docs/maxl.md#baselines.
    """

    methods: tuple = ("single", "human", "random", "kmeans", "maxl")
    seeds: int = 3
    epochs: int = 8
    train_size: int = 6000
    filters: tuple = (16, 32, 64, 128)
    order: int = 2
    data_dir: str | None = None
    csv: str = "benchmarks/results/maxl_fashion.csv"
    output: str = "benchmarks/results/maxl_fashion.md"


def run_benchmark(config, log=print):
    """Runs every (method, seed) not yet in ``config.csv``, appending each to it, then writes
    the summary (`summarize_benchmark`). The same protocol as `train`: same backbone, focal
    loss, SGD 0.1 with momentum 0.9, weight decay 5e-4 and cosine annealing for θ1, SGD 1e-3
    with weight decay 5e-4 for MAXL's generator, test accuracy after the last epoch. MAXL's
    learned labels of seed 0 are drawn to ``<output>_labels.png``.

    Returns:
        The summary table (`summarize_benchmark`).

    Reference: Liu, Davison & Johns (2019), §4 (baselines); docs/maxl.md#baselines.
    """
    done = {(r["method"], int(r["seed"])) for r in reporting.read_rows(config.csv)}
    runs = [(m, s) for s in range(config.seeds) for m in config.methods if (m, s) not in done]
    log(f"{len(runs)} runs to do ({len(done)} already in {config.csv})")
    progress = keras.utils.Progbar(len(runs), unit_name="run")
    tasks = {}
    for i, (method, seed) in enumerate(runs):
        if seed not in tasks:
            tasks = {
                seed: load_task("fashion_mnist", config.data_dir, config.train_size, seed=seed)
            }
        train_config = TrainConfig(
            method=method,
            filters=tuple(config.filters),
            order=config.order,
            epochs=config.epochs,
            seed=seed,
        )
        result, served = train(train_config, tasks[seed])
        if method == "maxl" and seed == 0:
            plot_learned_labels(served, tasks[seed], config.output.replace(".md", "_labels.png"))
        reporting.append_row(
            config.csv, {**result, "method": method, "seed": seed}, BENCHMARK_FIELDS
        )
        progress.update(i + 1, values=[("s/run", result["seconds"])])
        log(f"\n{method} seed {seed}: test accuracy {result['test_accuracy']:.4f}")
    return summarize_benchmark(reporting.read_rows(config.csv), config)


def summarize_benchmark(rows, config):
    """Writes (and prints) ``config.output``, the mean ± std test accuracy per method against
    Single, and its plot (``.png``) from the run log's ``rows``; returns the table.

    Reference: Liu, Davison & Johns (2019), §4 (baselines); docs/maxl.md#baselines.
    """
    by_method = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)
    order = [m for m in METHODS if m in by_method]
    order = ["single"] + [m for m in order if m != "single"] if "single" in order else order
    filters = ",".join(str(f) for f in config.filters)
    lines = [
        "# MAXL and its baselines on Fashion-MNIST (4 coarse classes)",
        "",
        f"`python -m benchmarks.maxl_fashion` — 4-layer ConvNet ({filters}), "
        f"{config.train_size} training images, {config.epochs} epochs (MAXL: {config.epochs} "
        f"stage-1 and {config.epochs} stage-2 passes, order {config.order}), batch 100, "
        "ψ = [4, 2, 3, 1]; test accuracy of the primary task on the 10,000 test images after the "
        "last epoch; mean ± std over seeds (each seed: its own training subset, split and "
        "initial weights).",
        "",
        "| method | seeds | test accuracy | vs Single | best val accuracy | s / run |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    single = None
    if "single" in by_method:
        single = np.mean([float(r["test_accuracy"]) for r in by_method["single"]])
    for method in order:
        acc = np.array([float(r["test_accuracy"]) for r in by_method[method]])
        val = np.array([float(r["best_val_accuracy"]) for r in by_method[method]])
        secs = np.array([float(r["seconds"]) for r in by_method[method]])
        std = acc.std(ddof=1) if len(acc) > 1 else 0.0
        delta = "–" if single is None else f"{(acc.mean() - single) * 100:+.2f} pt"
        lines.append(
            f"| {method} | {len(acc)} | {acc.mean():.4f} ± {std:.4f} | {delta} | "
            f"{val.mean():.4f} | {secs.mean():.0f} |"
        )
    table = reporting.write_markdown(lines, config.output)
    plot_benchmark(by_method, order, config.output.replace(".md", ".png"))
    return table


def plot_benchmark(by_method, order, path):
    """Bars of the mean test accuracy per method (± std, each seed a dot) as a PNG.

    Reference: Liu, Davison & Johns (2019), §4 (baselines); docs/maxl.md#baselines.
    """
    plt = reporting.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for i, method in enumerate(order):
        acc = [float(r["test_accuracy"]) for r in by_method[method]]
        ax.bar(i, np.mean(acc), yerr=np.std(acc, ddof=1) if len(acc) > 1 else 0, capsize=4)
        ax.scatter([i] * len(acc), acc, color="k", s=10, zorder=3)
    ax.set_xticks(range(len(order)), order)
    values = [float(r["test_accuracy"]) for m in order for r in by_method[m]]
    ax.set_ylim(min(values) - 0.01, max(values) + 0.005)
    ax.set_ylabel("test accuracy (primary, 4 classes)")
    ax.set_title("Fashion-MNIST: MAXL and baselines")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
