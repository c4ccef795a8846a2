"""The toy of gradient censoring: trajectories of a 2-D point.

Reproduces the toy problem of Lemaire (2018), "Auxiliary tasks in deep
learning: projecting the auxiliary gradient" (blog post): a point ``(x, y)``
is the only trainable variable. The primary task wants it anywhere on the unit
circle, ``L_pri = (sqrt(x² + y²) − 1)²``; the auxiliary task wants it at
``(2, 0)``, ``L_aux = (x − 2)² + y²``. The only point of the circle where the
auxiliary task helps is ``(1, 0)``, the target. Starting from ``(0, 2)`` with
``λ = 0.1`` and a learning rate of 0.01, each step applies
``p + λ · G(a, p)`` (``keras_aux.censoring.combine``) with
``p = ∇L_pri`` and ``a = ∇L_aux``, for the modes ``multitask``,
``unweighted_cosine``, ``weighted_cosine`` and ``projection``, once with Adam
and once with plain SGD.

What the runs show (the article's qualitative results, see the table `write`
writes): plain multitask converges off the circle, to the fixed point
``x = 2.4 / 2.2 ≈ 1.09`` on the horizontal axis where ``p + λa = 0``; the
projection slides along the circle to ``(1, 0)`` with either optimizer; with
SGD the cosine modes stop on the circle where they first meet it, far from
``(1, 0)``: there ``p`` is tiny and flips direction at every crossing, and
``a`` only gets through on the side where it agrees with ``p``, pulling the
point back onto the circle, so the tangential drift dies out. With Adam the
cosine modes do get to ``(1, 0)``, but much later than the projection
(``weighted_cosine`` lingers near ``(0.5, 0.87)``, where ``a`` is tangent to
the circle, for about 2000 steps). Adam's endpoints jitter about 0.01 around
their limit.

`run` optimises every (optimizer, mode) pair of a `ToyConfig`; `write` writes
``toy_trajectories.png`` (one panel per optimizer) and ``toy_trajectories.md`` (the final
points) in its ``output_dir``. ``trainers/toy_trajectories.py`` is the command line.

Reference: Lemaire (2018), toy problem; the cosine modes are those of Du et al. (2018),
"Adapting auxiliary losses using gradient similarity"; docs/censoring.md.
"""

import contextlib
import dataclasses
import logging
import os

import keras
import numpy as np
import tensorflow as tf

from keras_aux import censoring
from keras_aux.experiments import reporting

TOY_MODES = (
    censoring.MULTITASK,
    censoring.UNWEIGHTED_COSINE,
    censoring.WEIGHTED_COSINE,
    censoring.PROJECTION,
)
OPTIMIZERS = ("adam", "sgd")
TARGET = (1.0, 0.0)
_TITLES = {"adam": "Adam (β1 = 0.9, β2 = 0.999)", "sgd": "SGD (no momentum)"}
# Overlapping trajectories (SGD: the cosine modes follow the others until they
# stop) stay visible with distinct dashes.
_LINESTYLES = {
    censoring.MULTITASK: "-",
    censoring.UNWEIGHTED_COSINE: "--",
    censoring.WEIGHTED_COSINE: "-.",
    censoring.PROJECTION: ":",
}
DEFAULT_STEPS = 5000


def primary_loss(point):
    """Primary loss ``(‖point‖ − 1)²``: minimal on the whole unit circle.

    Reference: Lemaire (2018), toy problem; docs/censoring.md.
    """
    return tf.square(tf.norm(point) - 1.0)


def auxiliary_loss(point):
    """Auxiliary loss ``‖point − (2, 0)‖²``: minimal at ``(2, 0)`` only.

    Reference: Lemaire (2018), toy problem; docs/censoring.md.
    """
    return tf.reduce_sum(tf.square(point - tf.constant([2.0, 0.0], dtype=point.dtype)))


def make_optimizer(name, learning_rate):
    """Returns a fresh ``keras.optimizers.Adam`` or ``SGD`` for ``name``.

    Adam uses ``beta_1=0.9, beta_2=0.999`` as in the article; SGD has no
    momentum.

    Reference: Lemaire (2018), toy problem; docs/censoring.md.
    """
    if name == "adam":
        return keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.999)
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate)
    raise ValueError(f"Unknown optimizer {name!r}. Expected one of {list(OPTIMIZERS)}.")


@contextlib.contextmanager
def _quiet_retracing():
    """Silences TensorFlow's "frequent retracing" warning inside the block.

    Each run builds fresh variables and a fresh optimizer, so tracing its loop
    once per run is intended; TensorFlow would warn from the fifth run on.
    """
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def run_trajectory(
    mode,
    optimizer="adam",
    steps=DEFAULT_STEPS,
    learning_rate=0.01,
    lam=0.1,
    start=(0.0, 2.0),
):
    """Optimises the toy point and returns the points it visits.

    Each step computes ``p = ∇L_pri`` and ``a = ∇L_aux`` at the current point,
    combines them with ``keras_aux.censoring.combine([p], [a], lam, mode)`` and
    applies the result with the optimizer. The whole loop runs in one
    ``tf.function``.

    Args:
        mode: a censoring mode of ``keras_aux.censoring.MODES``.
        optimizer: ``"adam"`` or ``"sgd"``.
        steps: number of optimisation steps (>= 0).
        learning_rate: learning rate of the optimizer.
        lam: weight λ of the auxiliary gradient.
        start: the initial point ``(x, y)``.

    Returns:
        A float32 numpy array of shape ``(steps + 1, 2)``: the start point,
        then the point after every step.

    Reference: Lemaire (2018), toy problem; Du et al. (2018) (the cosine modes);
    docs/censoring.md.
    """
    censoring.validate_mode(mode)
    steps = int(steps)
    if steps < 0:
        raise ValueError(f"`steps` must be >= 0; got {steps}.")
    opt = make_optimizer(optimizer, learning_rate)
    point = keras.Variable(np.asarray(start, dtype="float32"), name="point")
    opt.build([point])
    weight = tf.constant(lam, dtype="float32")

    @tf.function
    def optimise(num_steps):
        path = tf.TensorArray(tf.float32, size=num_steps + 1)
        path = path.write(0, point.value)
        for i in tf.range(num_steps):
            with tf.GradientTape(persistent=True) as tape:
                l_pri = primary_loss(point.value)
                l_aux = auxiliary_loss(point.value)
            p = tape.gradient(l_pri, point.value)
            a = tape.gradient(l_aux, point.value)
            del tape
            grads = censoring.combine([p], [a], weight, mode)
            opt.apply(grads, [point])
            path = path.write(i + 1, point.value)
        return path.stack()

    with _quiet_retracing():
        return optimise(tf.constant(steps)).numpy()


def summarize(path):
    """Final point of ``path`` with its distances to ``(1, 0)`` and to the circle.

    Returns:
        A dict with ``x``, ``y``, ``dist_target`` (Euclidean distance to
        ``(1, 0)``) and ``dist_circle`` (``|r − 1|``).

    Reference: Lemaire (2018), toy problem; docs/censoring.md.
    """
    x, y = (float(v) for v in path[-1])
    return {
        "x": x,
        "y": y,
        "dist_target": float(np.hypot(x - TARGET[0], y - TARGET[1])),
        "dist_circle": float(abs(np.hypot(x, y) - 1.0)),
    }


def markdown_table(results, steps):
    """Markdown table of the final points.

    Args:
        results: list of ``(optimizer, mode, path)``.
        steps: number of steps of every run (a column of the table).

    Returns:
        The table as one string, ending with a newline.

    Reference: Lemaire (2018), toy problem; docs/censoring.md.
    """
    lines = [
        "| optimizer | mode | final x | final y | distance to (1, 0) | \\|r − 1\\| | steps |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for optimizer, mode, path in results:
        s = summarize(path)
        lines.append(
            f"| {optimizer} | {mode} | {s['x']:.4f} | {s['y']:.4f} | "
            f"{s['dist_target']:.4f} | {s['dist_circle']:.4f} | {steps} |"
        )
    return "\n".join(lines) + "\n"


def plot_trajectories(results, optimizers, path, start=(0.0, 2.0)):
    """Draws one panel per optimizer with every mode's trajectory; saves a PNG.

    Args:
        results: list of ``(optimizer, mode, path)``.
        optimizers: the optimizer names, one panel each, in this order.
        path: file name of the PNG.
        start: the start point, marked on every panel.

    Reference: Lemaire (2018), toy problem (its figure); docs/censoring.md.
    """
    plt = reporting.pyplot()
    fig, axes = plt.subplots(1, len(optimizers), figsize=(6 * len(optimizers), 6), squeeze=False)
    theta = np.linspace(0.0, 2.0 * np.pi, 400)
    for ax, optimizer in zip(axes[0], optimizers):
        ax.plot(np.cos(theta), np.sin(theta), color="0.6", lw=1, ls="--", label="unit circle")
        for opt_name, mode, points in results:
            if opt_name != optimizer:
                continue
            (line,) = ax.plot(
                points[:, 0], points[:, 1], lw=1.5, ls=_LINESTYLES.get(mode, "-"), label=mode
            )
            ax.plot(points[-1, 0], points[-1, 1], "o", color=line.get_color(), ms=6)
        ax.plot(*start, "ks", ms=7, label="start")
        ax.plot(*TARGET, "r*", ms=14, label="target (1, 0)")
        ax.plot(2.0, 0.0, "x", color="0.3", ms=8, label="aux optimum (2, 0)")
        ax.set_title(_TITLES[optimizer])
        ax.set_aspect("equal")
        ax.set_xlim(-0.4, 2.3)
        ax.set_ylim(-0.4, 2.3)
        ax.grid(alpha=0.3)
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.legend(loc="upper right", fontsize=8)
    fig.suptitle("L_pri = (r − 1)², L_aux = ‖(x, y) − (2, 0)‖², λ = 0.1 (Lemaire 2018)")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(fig)


@dataclasses.dataclass
class ToyConfig:
    """The runs of the toy (the flags of ``trainers/toy_trajectories.py``).

    Attributes:
        steps: optimisation steps per trajectory.
        modes: censoring modes to run (`keras_aux.censoring`; default `TOY_MODES`).
        optimizers: optimizers to run, ``"adam"`` and/or ``"sgd"`` (`OPTIMIZERS`).
        learning_rate: learning rate of both optimizers.
        lam: weight λ of the (censored) auxiliary gradient.
        output_dir: where `write` puts the PNG and the table.

    Reference: Lemaire (2018), toy problem; Du et al. (2018) (the cosine modes);
    docs/censoring.md.
    """

    steps: int = DEFAULT_STEPS
    modes: tuple = TOY_MODES
    optimizers: tuple = OPTIMIZERS
    learning_rate: float = 0.01
    lam: float = 0.1
    output_dir: str = "benchmarks/results"


def run(config, progress=True):
    """Runs every (optimizer, mode) pair of ``config``, optimizer-major.

    Args:
        config: a `ToyConfig`.
        progress: show a Keras progress bar.

    Returns:
        A list of ``(optimizer, mode, path)``, ``path`` as `run_trajectory` returns it.

    Raises:
        ValueError: an unknown mode or optimizer.

    Reference: Lemaire (2018), toy problem; docs/censoring.md.
    """
    modes = [censoring.validate_mode(m) for m in config.modes]
    optimizers = list(config.optimizers)
    for name in optimizers:
        if name not in OPTIMIZERS:
            raise ValueError(f"Unknown optimizer {name!r}. Expected one of {list(OPTIMIZERS)}.")
    runs = [(o, m) for o in optimizers for m in modes]
    progbar = keras.utils.Progbar(len(runs), unit_name="run") if progress else None
    results = []
    for i, (optimizer, mode) in enumerate(runs):
        points = run_trajectory(
            mode,
            optimizer=optimizer,
            steps=config.steps,
            learning_rate=config.learning_rate,
            lam=config.lam,
        )
        results.append((optimizer, mode, points))
        if progbar is not None:
            progbar.update(i + 1)
    return results


def write(config, results):
    """Writes ``toy_trajectories.md`` (a title, the setting and `markdown_table`) and
    ``toy_trajectories.png`` (`plot_trajectories`) to ``config.output_dir``.

    Returns:
        ``(table, markdown path, PNG path)``.

    Reference: Lemaire (2018), toy problem; docs/censoring.md.
    """
    os.makedirs(config.output_dir, exist_ok=True)
    table = markdown_table(results, config.steps)
    md_path = os.path.join(config.output_dir, "toy_trajectories.md")
    png_path = os.path.join(config.output_dir, "toy_trajectories.png")
    with open(md_path, "w", encoding="utf-8") as f:
        f.write(
            "# Toy trajectories (Lemaire 2018)\n\n"
            "L_pri = (sqrt(x² + y²) − 1)², L_aux = (x − 2)² + y², start (0, 2), "
            f"λ = {config.lam}, learning rate {config.learning_rate}.\n\n"
        )
        f.write(table)
    plot_trajectories(results, list(config.optimizers), png_path)
    return table, md_path, png_path
