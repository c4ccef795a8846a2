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

from keras_aux import baselines, hierarchy, metrics
from keras_aux.datasets import images
from keras_aux.experiments import reporting
from keras_aux.losses import FocalLoss
from keras_aux.maxl import BACKBONES, MAXL, multitask_network, single_task_network

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
        epochs: epochs (MAXL's epoch schedule: one stage-1 and one stage-2 pass each); with
            ``patience``, the most epochs.
        patience: None (default): train all ``epochs`` and test the last weights. A number:
            early stopping, after this many epochs (MAXL: paper epochs) without a new best
            validation accuracy of the primary task, and the weights of the best validation
            epoch are tested (selection on validation data, never on the test set). θ1's cosine
            annealing still runs over ``epochs``.
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
    patience: int | None = None
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
    epoch, or with ``config.patience`` of the best validation epoch's weights
    (early stopping; no selection on the test set), the best validation
    accuracy, the epochs trained and the best one (MAXL: paper epochs, each a
    stage-1 and a stage-2 pass), and the seconds the training took. For MAXL
    also ``val_auxiliary_usage`` and ``val_auxiliary_entropy``: the collapse
    diagnostics of the served generator in inference mode on the validation
    set (docs/maxl.md#diagnostics).

    Reference: Liu, Davison & Johns (2019), §4 (evaluation); docs/maxl.md#baselines.
    """
    model, fit_epochs, psi = build(config, task)
    callbacks = list(callbacks)
    val_key = _val_accuracy_key(config.method)
    # Fit epochs per epoch of the config: MAXL's paper schedule runs two (a
    # stage-2 pass moves θ2 and the multi-task network's BatchNorm statistics).
    per_epoch = fit_epochs // config.epochs if config.epochs else 1
    if config.patience is not None:
        if config.patience < 1:
            raise ValueError(f"`patience` must be >= 1 or None; got {config.patience}.")
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=val_key,
                mode="max",
                patience=config.patience * per_epoch,
                restore_best_weights=True,
            )
        )
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
    val_accuracy = history.history[val_key]
    # The served weights: the best validation epoch's (first of ties, as
    # EarlyStopping keeps them) or the last.
    served_index = int(np.argmax(val_accuracy)) if config.patience is not None else -1
    result = {
        **dataclasses.asdict(config),
        "psi": list(psi),
        "test_accuracy": test_accuracy,
        "best_val_accuracy": float(np.max(val_accuracy)),
        "epochs_trained": int(np.ceil(len(val_accuracy) / per_epoch)),
        "best_epoch": int(np.argmax(val_accuracy)) // per_epoch + 1,
        "fit_epochs": len(val_accuracy),
        "seconds": round(seconds, 1),
    }
    if config.method == "maxl":
        for key in ("val_auxiliary_usage", "val_auxiliary_entropy"):
            result[key] = float(history.history[key][served_index])
    return result, served


def _val_accuracy_key(method):
    """The validation accuracy of the primary task in ``fit``'s logs (Keras names a
    single-output model's metrics without the output's name)."""
    if method == "maxl":
        return "val_primary_accuracy"
    if method == "single":
        return "val_sparse_categorical_accuracy"
    return "val_primary_sparse_categorical_accuracy"


def plot_learned_labels(
    model, task, path, labels=None, per_class=8, max_examples=None, rows_per_column=16
):
    """Draws the auxiliary classes the MAXL label generator has learned, as a PNG.

    One row per auxiliary class, grouped under its primary class (its block of ψ): the
    training images whose arg-max generated label (inference mode, `MAXL.generate_labels`)
    is that class, most confident first (at most ``per_class``), and the share of the
    primary class's images it takes. A class that is the arg-max of no image is a grey
    "unused" row. The title gives the usage and the label entropy
    (`keras_aux.metrics.auxiliary_label_diagnostics`) and a caption says how to read it.
    Long lists of classes go into several columns of at most ``rows_per_column`` rows.

    Args:
        model: a trained `MAXL`.
        task: the `ImageTask` whose training images are drawn.
        path: the PNG's path.
        labels: ``model.generate_labels`` of the images (computed when None).
        per_class: images per row.
        max_examples: the first this many training images (None: all).
        rows_per_column: most rows (auxiliary classes) in one column.

    Returns:
        ``path``.

    Reference: Liu, Davison & Johns (2019), MAXL, Figure 6; docs/maxl.md#diagnostics.
    """
    import textwrap

    plt = reporting.pyplot()
    x, y = task.x_train[:max_examples], task.y_train[:max_examples]
    if labels is None:
        labels = model.generate_labels(x, y)
    labels = np.asarray(labels)[: len(x)]
    psi = tuple(model.psi)
    assigned = np.argmax(labels, -1)
    diagnostics = metrics.auxiliary_label_diagnostics(labels, psi)
    starts = hierarchy.block_starts(psi)
    # The columns: whole primary classes, at most `rows_per_column` rows each (a bigger
    # class gets a column of its own).
    columns, rows = [[]], 0
    for i, size in enumerate(psi):
        if columns[-1] and rows + size > rows_per_column:
            columns.append([])
            rows = 0
        columns[-1].append(i)
        rows += size
    gap = 0.4  # height of the space between two primary classes, in rows
    heights = [sum(psi[i] for i in c) + gap * (len(c) - 1) for c in columns]
    cell, label_width = 0.5, 1.9  # inches
    column_width = label_width + per_class * cell
    width = len(columns) * column_width + 0.3
    used = int(round(diagnostics["auxiliary_usage"] * sum(psi)))
    caption = (
        f"{len(x)} training images; entropy of the mean label within primary classes "
        f"{diagnostics['auxiliary_entropy']:.2f} (1: even, 0: collapsed). Rows: auxiliary "
        "classes, grouped under their primary class (bold, with its number of images). Each row "
        "shows the images whose arg-max generated label (inference mode) is that class, most "
        f"confident first (at most {per_class}); the % is the share of the primary class's "
        "images it takes. Grey rows: unused (the arg-max of no image)."
    )
    caption = "\n".join(textwrap.wrap(caption, int(width * 15)))
    header = 0.5 + 0.2 * (caption.count("\n") + 1)
    height = max(heights) * cell * 1.15 + header
    fig = plt.figure(figsize=(width, height))
    fig.suptitle(
        f"Learned auxiliary labels: {used} of {sum(psi)} auxiliary classes used",
        fontsize=10,
        y=1 - 0.12 / height,
        va="top",
    )
    fig.text(0.5, 1 - 0.45 / height, caption, ha="center", va="top", fontsize=7, color="0.25")
    outer = fig.add_gridspec(
        1, len(columns), left=0.01, right=0.99, bottom=0.01, top=1 - header / height, wspace=0.04
    )
    for c, primaries in enumerate(columns):
        entries, ratios = [], []
        for i in primaries:
            if entries:
                entries.append(None)
                ratios.append(gap)
            entries.extend((i, k) for k in range(starts[i], starts[i] + psi[i]))
            ratios.extend([1] * psi[i])
        if sum(ratios) < max(heights):  # keeps every row the same height
            entries.append(None)
            ratios.append(max(heights) - sum(ratios))
        grid = outer[c].subgridspec(
            len(entries),
            2,
            width_ratios=[label_width, per_class * cell],
            height_ratios=ratios,
            wspace=0.02,
            hspace=0.12,
        )
        for r, entry in enumerate(entries):
            if entry is None:
                continue
            i, k = entry
            in_class = y == i
            mine = np.flatnonzero(assigned == k)
            mine = mine[np.argsort(-labels[mine, k], kind="stable")][:per_class]
            share = np.mean(assigned[in_class] == k) if np.any(in_class) else 0.0
            label_ax = fig.add_subplot(grid[r, 0])
            label_ax.axis("off")
            text = f"aux {k}: {share:.0%}" if len(mine) else f"aux {k}: unused"
            first = k == starts[i]
            if first:
                label_ax.text(
                    0.98,
                    0.78,
                    f"{task.class_names[i]} ({int(in_class.sum())})",
                    ha="right",
                    va="center",
                    fontsize=7,
                    fontweight="bold",
                    transform=label_ax.transAxes,
                )
            label_ax.text(
                0.98,
                0.3 if first else 0.5,
                text,
                ha="right",
                va="center",
                fontsize=7,
                transform=label_ax.transAxes,
            )
            ax = fig.add_subplot(grid[r, 1])
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_anchor("W")
            if len(mine):
                ax.imshow(_montage(x[mine], per_class), interpolation="nearest")
            else:  # a grey montage of the same size
                ax.imshow(np.full_like(_montage(x[:0], per_class), 0.82), vmin=0, vmax=1)
                ax.text(
                    0.5,
                    0.5,
                    "unused",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="0.35",
                    transform=ax.transAxes,
                )
            for spine in ax.spines.values():
                spine.set_visible(not len(mine))
                spine.set_color("0.6")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _montage(images, per_class, pad=2):
    """``images`` (n ≤ per_class, h, w, 1 or 3) side by side on white, as RGB."""
    h, w = images.shape[1:3]
    out = np.ones((h, per_class * (w + pad) - pad, 3), np.float32)
    for j, image in enumerate(images):
        image = np.clip(image, 0, 1)
        out[:, j * (w + pad) : j * (w + pad) + w] = image  # a grey channel broadcasts
    return out


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
    for MAXL, the generated labels of every training image in inference mode:
    ``auxiliary_usage`` and ``auxiliary_entropy`` (`keras_aux.metrics.auxiliary_label_diagnostics`)
    and ``learned_labels.png`` (`plot_learned_labels`) → ``result.json`` in the run's log folder
    → SavedModel serving the primary class probabilities, with ``labels.json`` (the class names)
    beside it.

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
    if train_config.method == "maxl":
        # The labels of every training image in inference mode: the collapse
        # diagnostics of result.json and the picture.
        labels = served.generate_labels(task.x_train, task.y_train)
        result.update(metrics.auxiliary_label_diagnostics(labels, served.psi))
        plot = plot_learned_labels(
            served, task, os.path.join(run_dir, "learned_labels.png"), labels=labels
        )
        log(
            f"learned auxiliary labels: {plot} (usage {result['auxiliary_usage']:.3f}, "
            f"label entropy {result['auxiliary_entropy']:.3f} on the training images)"
        )
    with open(os.path.join(run_dir, "result.json"), "w", encoding="utf-8") as f:
        json.dump(result, f, indent=2)
    export_dir = config.export_dir or os.path.join("saved_models", config.run_name)
    served.export(export_dir, verbose=False)
    with open(os.path.join(export_dir, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(task.class_names, f)
    return result, export_dir


BENCHMARK_METHODS = {
    "single": ("single", 2),
    "human": ("human", 2),
    "random": ("random", 2),
    "kmeans": ("kmeans", 2),
    "maxl_order2": ("maxl", 2),
    "maxl_order1": ("maxl", 1),
}
"""The benchmark's methods: name → (`TrainConfig.method`, MAXL's order)."""

BENCHMARK_FIELDS = [
    "method",
    "seed",
    "protocol",
    "test_accuracy",
    "best_val_accuracy",
    "epochs_trained",
    "best_epoch",
    "seconds",
    "val_auxiliary_usage",
    "val_auxiliary_entropy",
]


@dataclasses.dataclass
class BenchmarkConfig:
    """MAXL (both orders) against its baselines on Fashion-MNIST's four coarse classes, several
    seeds, each run trained until its validation accuracy plateaus (the flags of
    ``benchmarks/maxl_fashion.py``). Budgeted for a CPU: a training subset and a narrower
    ConvNet.

    Attributes:
        methods: names from `BENCHMARK_METHODS`, in the order they run within a seed.
        seeds: the seeds run (each: its own training subset, split and initial weights).
        max_epochs: the most epochs of a run (MAXL: paper epochs, a stage-1 and a stage-2 pass
            each); θ1's cosine annealing runs over them.
        patience: early stopping after this many epochs without a new best validation accuracy
            of the primary task; the best validation epoch's weights are tested.
        train_size: training examples (a low-data regime).
        filters: the 4-layer ConvNet's widths.
        data_dir: Fashion-MNIST's files (None: the known places).
        csv: the run log; each finished run is appended at once, and runs already in it are
            skipped (several processes may share it, each with other methods or seeds).
        output: the summary table; the plots go beside it (``.png``, ``_labels.png``).

    Reference: Liu, Davison & Johns (2019), §4 (baselines); docs/maxl.md#baselines.
    """

    methods: tuple = tuple(BENCHMARK_METHODS)
    seeds: tuple = (0, 1, 2, 3, 4)
    max_epochs: int = 40
    patience: int = 8
    train_size: int = 6000
    filters: tuple = (16, 32, 64, 128)
    data_dir: str | None = None
    csv: str = "benchmarks/results/maxl_fashion.csv"
    output: str = "benchmarks/results/maxl_fashion.md"

    @property
    def protocol(self):
        """What makes two runs comparable, as a string stored with every run in the CSV."""
        filters = "-".join(str(f) for f in self.filters)
        return f"n{self.train_size}_conv4-{filters}_max{self.max_epochs}_patience{self.patience}"


def _train_config(config, method, seed):
    """The `TrainConfig` of one benchmark run."""
    if method not in BENCHMARK_METHODS:
        raise ValueError(
            f"Unknown benchmark method {method!r}; expected one of {list(BENCHMARK_METHODS)}."
        )
    name, order = BENCHMARK_METHODS[method]
    return TrainConfig(
        method=name,
        filters=tuple(config.filters),
        order=order,
        epochs=config.max_epochs,
        patience=config.patience,
        seed=seed,
    )


class EpochLog(keras.callbacks.Callback):
    """Logs one line per epoch of a run: validation accuracy, best so far, seconds.

    For MAXL's paper schedule one line per paper epoch (after its stage-2 pass).

    Reference: the benchmark protocol of docs/maxl.md#baselines (Liu, Davison & Johns 2019, §4).
    """

    def __init__(self, log, name, monitor, per_epoch, max_epochs):
        super().__init__()
        self.log, self.name, self.monitor = log, name, monitor
        self.per_epoch, self.max_epochs = per_epoch, max_epochs

    def on_train_begin(self, logs=None):
        self.start, self.best, self.best_epoch = time.perf_counter(), -1.0, 0

    def on_epoch_end(self, epoch, logs=None):
        value = (logs or {}).get(self.monitor)
        if value is None:
            return
        if value > self.best:
            self.best, self.best_epoch = float(value), epoch // self.per_epoch + 1
        if (epoch + 1) % self.per_epoch == 0:
            self.log(
                f"  {self.name}: epoch {(epoch + 1) // self.per_epoch}/{self.max_epochs}, "
                f"val accuracy {value:.4f}, best {self.best:.4f} (epoch {self.best_epoch}), "
                f"{time.perf_counter() - self.start:.0f} s"
            )


def _check_log(rows, config):
    """Refuses a run log written with other columns or by another protocol."""
    if not rows:
        return
    if list(rows[0]) != BENCHMARK_FIELDS:
        raise ValueError(
            f"{config.csv} has the columns {list(rows[0])}, not {BENCHMARK_FIELDS}: it was "
            "written by another version of the protocol. Move it away or pass another --csv."
        )
    others = sorted({r["protocol"] for r in rows} - {config.protocol})
    if others:
        raise ValueError(
            f"{config.csv} holds runs of other protocols ({others}; this one is "
            f"{config.protocol!r}): their results are not comparable. Pass another --csv, or "
            "the flags those runs used."
        )


def run_benchmark(config, log=print, summarize=True):
    """Runs every (method, seed) of ``config`` not yet in ``config.csv``, appending each to it
    as soon as it ends, then writes the summary (`summarize_benchmark`).

    The protocol is `train`'s with early stopping: the same backbone, focal loss, SGD 0.1 with
    momentum 0.9, weight decay 5e-4 and cosine annealing over ``max_epochs`` for θ1, SGD 1e-3
    with weight decay 5e-4 for MAXL's generator; each run stops after ``patience`` epochs
    without a new best validation accuracy (5,000 held-out training images), and the test
    accuracy is that of the best validation epoch's weights. Logs a line per epoch and per
    run, with the time left. MAXL's (order 2) learned labels of seed 0 are drawn to
    ``<output>_labels.png``.

    Args:
        config: a `BenchmarkConfig`.
        log: where the progress lines go.
        summarize: write the summary table and plot at the end.

    Returns:
        The summary table (`summarize_benchmark`), or None without ``summarize``.

    Reference: Liu, Davison & Johns (2019), §4 (baselines); docs/maxl.md#baselines.
    """
    for method in config.methods:
        _train_config(config, method, 0)  # unknown names fail before any training
    rows = reporting.read_rows(config.csv)
    _check_log(rows, config)
    done = {(r["method"], int(r["seed"])) for r in rows}
    runs = [(m, s) for s in config.seeds for m in config.methods if (m, s) not in done]
    log(
        f"{len(runs)} runs to do, {len(done)} already in {config.csv} (protocol "
        f"{config.protocol}): methods {list(config.methods)}, seeds {list(config.seeds)}"
    )
    task, task_seed, seconds = None, None, {}
    start = time.perf_counter()
    for index, (method, seed) in enumerate(runs):
        if seed != task_seed:
            task = load_task("fashion_mnist", config.data_dir, config.train_size, seed=seed)
            task_seed = seed
        train_config = _train_config(config, method, seed)
        per_epoch = 2 if train_config.method == "maxl" else 1
        name = f"[{index + 1}/{len(runs)}] {method} seed {seed}"
        log(f"{name}: at most {config.max_epochs} epochs, patience {config.patience}")
        progress = EpochLog(
            log, name, _val_accuracy_key(train_config.method), per_epoch, config.max_epochs
        )
        result, served = train(train_config, task, callbacks=[progress])
        if method == "maxl_order2" and seed == 0:
            plot_learned_labels(
                served, task, config.output.replace(".md", "_labels.png"), max_examples=2000
            )
        reporting.append_row(
            config.csv,
            {**result, "method": method, "seed": seed, "protocol": config.protocol},
            BENCHMARK_FIELDS,
        )
        seconds.setdefault(method, []).append(result["seconds"])
        elapsed = time.perf_counter() - start
        # Time left: each remaining run at its method's mean so far (else the overall mean).
        overall = elapsed / (index + 1)
        left = sum(np.mean(seconds.get(m, [overall])) for m, _ in runs[index + 1 :])
        log(
            f"{name}: test accuracy {result['test_accuracy']:.4f} (best epoch "
            f"{result['best_epoch']} of {result['epochs_trained']}), {result['seconds']:.0f} s; "
            f"{elapsed / 60:.0f} min so far, about {left / 60:.0f} min left"
        )
    if not summarize:
        return None
    return summarize_benchmark(reporting.read_rows(config.csv), config)


def paired_difference(values, reference, confidence=0.95):
    """Mean and confidence interval (t-distribution) of the per-seed differences
    ``values[s] − reference[s]`` over the seeds both dicts hold.

    Returns:
        ``(mean, low, high, n)``; ``low`` and ``high`` are NaN for fewer than two seeds.

    Reference: the benchmark protocol of docs/maxl.md#baselines (Liu, Davison & Johns 2019, §4).
    """
    mean, half, n = reporting.paired_difference(
        *reporting.pair_by_seed(values, reference), confidence
    )
    return mean, mean - half, mean + half, n


def summarize_benchmark(rows, config):
    """Writes (and prints) ``config.output`` from the run log's ``rows`` of ``config``'s
    protocol: per method, the mean ± std test accuracy, the paired per-seed difference to Single
    (mean, 95% t-interval and Holm-adjusted p-value), the epochs trained, and for MAXL the
    collapse diagnostics; and its plot (``.png``). Returns the table.

    Reference: Liu, Davison & Johns (2019), §4 (baselines); docs/maxl.md#baselines.
    """
    rows = [r for r in rows if r.get("protocol") == config.protocol]
    by_method = {}
    for r in rows:
        by_method.setdefault(r["method"], []).append(r)
    order = [m for m in BENCHMARK_METHODS if m in by_method]
    accuracy = {m: {int(r["seed"]): float(r["test_accuracy"]) for r in by_method[m]} for m in order}
    filters = ",".join(str(f) for f in config.filters)
    lines = [
        "# MAXL and its baselines on Fashion-MNIST (4 coarse classes)",
        "",
        f"`python -m benchmarks.maxl_fashion` — 4-layer ConvNet ({filters}), "
        f"{config.train_size} training images, 5,000 held out for validation, batch 100, "
        "ψ = [4, 2, 3, 1]. Each run trains until its validation accuracy plateaus: at most "
        f"{config.max_epochs} epochs (θ1: SGD 0.1, momentum 0.9, weight decay 5e-4, cosine "
        f"annealing over {config.max_epochs} epochs; MAXL: an epoch is a stage-1 and a stage-2 "
        f"pass), stopped after {config.patience} epochs without a new best validation accuracy; "
        "the test accuracy (10,000 test images, primary task) is that of the best validation "
        "epoch's weights. Each seed has its own training subset, split and initial weights.",
        "",
        "vs Single: the mean over seeds of the paired difference (method − Single on the same "
        "seed) in points, with its 95% confidence interval (t-distribution, n − 1 degrees of "
        "freedom). p (Holm): the paired t-test's two-sided p-value for no difference, "
        "Holm-adjusted for the number of methods compared with Single. Usage and entropy: MAXL's "
        "collapse diagnostics on the validation images at the best epoch (inference mode; "
        "docs/maxl.md#diagnostics).",
        "",
        "| method | seeds | test accuracy (mean ± std) | vs Single (95% CI) | p (Holm) | "
        "epochs (best) | best val accuracy | usage / entropy | s / run |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    compared = [m for m in order if m != "single" and "single" in accuracy]
    pvalues = [
        reporting.paired_t_pvalue(*reporting.pair_by_seed(accuracy[m], accuracy["single"]))
        for m in compared
    ]
    holm = dict(zip(compared, reporting.holm_adjusted(pvalues), strict=True))
    for method in order:
        group = by_method[method]
        acc = np.array(list(accuracy[method].values()))
        std = acc.std(ddof=1) if len(acc) > 1 else 0.0
        if method == "single" or "single" not in accuracy:
            versus = "–"
        else:
            mean, low, high, n = paired_difference(accuracy[method], accuracy["single"])
            interval = "" if np.isnan(low) else f" [{low * 100:+.2f}, {high * 100:+.2f}]"
            versus = f"{mean * 100:+.2f} pt{interval}" + (f" ({n} paired)" if n < len(acc) else "")
        column = lambda key, group=group: np.array([float(r[key]) for r in group])  # noqa: E731
        diagnostics = "–"
        if method.startswith("maxl"):
            diagnostics = (
                f"{column('val_auxiliary_usage').mean():.2f} / "
                f"{column('val_auxiliary_entropy').mean():.2f}"
            )
        lines.append(
            f"| {method} | {len(acc)} | {acc.mean():.4f} ± {std:.4f} | {versus} | "
            f"{reporting.format_pvalue(holm.get(method, np.nan))} | "
            f"{column('epochs_trained').mean():.1f} ({column('best_epoch').mean():.1f}) | "
            f"{column('best_val_accuracy').mean():.4f} | {diagnostics} | "
            f"{column('seconds').mean():.0f} |"
        )
    table = reporting.write_markdown(lines, config.output)
    if order:
        plot_benchmark(accuracy, order, config.output.replace(".md", ".png"))
    return table


def plot_benchmark(accuracy, order, path):
    """Two panels as a PNG: the test accuracy per method (mean ± std, each seed a dot) and the
    paired difference to Single per seed (mean and 95% t-interval).

    Args:
        accuracy: ``{method: {seed: test accuracy}}``.
        order: the methods, in plotting order.
        path: the PNG's path.

    Reference: Liu, Davison & Johns (2019), §4 (baselines); docs/maxl.md#baselines.
    """
    plt = reporting.pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 3.8))
    for i, method in enumerate(order):
        acc = list(accuracy[method].values())
        left.bar(i, np.mean(acc), yerr=np.std(acc, ddof=1) if len(acc) > 1 else 0, capsize=4)
        left.scatter([i] * len(acc), acc, color="k", s=10, zorder=3)
    left.set_xticks(range(len(order)), order, rotation=20)
    values = [a for m in order for a in accuracy[m].values()]
    left.set_ylim(min(values) - 0.01, max(values) + 0.005)
    left.set_ylabel("test accuracy (primary, 4 classes)")
    left.set_title("test accuracy (mean ± std over seeds)")
    others = [m for m in order if m != "single"]
    if "single" in accuracy and others:
        for i, method in enumerate(others):
            ours, single = reporting.pair_by_seed(accuracy[method], accuracy["single"])
            points = [(a - b) * 100 for a, b in zip(ours, single, strict=True)]
            mean, low, high, _ = paired_difference(accuracy[method], accuracy["single"])
            if not np.isnan(low):
                right.errorbar(
                    i,
                    mean * 100,
                    yerr=[[(mean - low) * 100], [(high - mean) * 100]],
                    fmt="o",
                    capsize=5,
                    color="C0",
                )
            right.scatter([i + 0.15] * len(points), points, color="k", s=8, zorder=3)
        right.axhline(0, color="0.5", lw=0.8)
        right.set_xticks(range(len(others)), others, rotation=20)
        right.set_ylabel("points vs Single (same seed)")
        right.set_title("paired difference to Single (mean, 95% CI)")
    else:
        right.axis("off")
    fig.suptitle("Fashion-MNIST: MAXL and baselines")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
