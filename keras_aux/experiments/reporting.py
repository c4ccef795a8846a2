"""Shared output of the experiments: markdown tables (the benchmarks' go under
``benchmarks/results/``), the resumable CSV run logs they are summarised from, and the
matplotlib figure module the plots draw with.

Reference: the benchmarks of docs/censoring.md (Lemaire 2018; Du et al. 2018), docs/maxl.md
(Liu, Davison & Johns 2019) and docs/reconstruction.md (seed 001's reconstruction loss), whose
tables and run logs are written here.
"""

import csv
import fcntl
import os

import numpy as np

from keras_aux.utils.optional import require


def backend_description():
    """``"TensorFlow 2.x"`` or ``"JAX 0.x"``: the Keras backend and its version, for tables."""
    import keras

    name = keras.backend.backend()
    if name == "tensorflow":
        import tensorflow as tf

        return f"TensorFlow {tf.__version__}"
    if name == "jax":
        import jax

        return f"JAX {jax.__version__}"
    return name


def write_markdown(lines, path):
    """Joins ``lines`` into a markdown document, prints it and writes it to ``path``.

    Returns:
        The document (the lines joined by newlines, with a final newline).

    Reference: the result tables of docs/censoring.md (Lemaire 2018; Du et al. 2018),
    docs/maxl.md (Liu, Davison & Johns 2019) and docs/reconstruction.md (seed 001).
    """
    table = "\n".join(lines) + "\n"
    print(table)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(table)
    return table


def read_rows(path):
    """Rows of a CSV run log as dicts (none if the file does not exist).

    Reference: the resumable run logs of docs/censoring.md#synthetic-experiment (Lemaire 2018)
    and docs/maxl.md#baselines (Liu, Davison & Johns 2019).
    """
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as f:
        return list(csv.DictReader(f))


def append_row(path, row, fields):
    """Appends ``row``'s ``fields`` (in that order; missing ones empty) to a
    CSV run log under an exclusive lock, with the header if the file is new:
    several processes may append to one log.

    Reference: the resumable run logs of docs/censoring.md#synthetic-experiment (Lemaire 2018)
    and docs/maxl.md#baselines (Liu, Davison & Johns 2019).
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "a", newline="", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0, os.SEEK_END)
            writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
            if f.tell() == 0:
                writer.writeheader()
            writer.writerow(row)
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def paired_t_pvalue(values, baselines):
    """Two-sided p-value of the paired t-test that the mean of ``values − baselines`` is zero
    (Student's t with n − 1 degrees of freedom, as the intervals of `paired_difference`).

    Returns:
        The p-value; NaN for fewer than two pairs. Equal non-zero differences (no spread) give
        0, all-zero differences 1.

    Reference: the paired comparisons of docs/reconstruction.md#fsdd-benchmark and
    docs/maxl.md#baselines.
    """
    differences = np.asarray(values, np.float64) - np.asarray(baselines, np.float64)
    n = differences.size
    if n < 2:
        return float("nan")
    spread = differences.std(ddof=1)
    if spread == 0:
        return 0.0 if differences.mean() != 0 else 1.0
    stats = require("scipy.stats", extra="trainers", purpose="for p-values")
    t = differences.mean() / (spread / np.sqrt(n))
    return float(2.0 * stats.t.sf(abs(t), n - 1))


def holm_adjusted(pvalues):
    """Holm's step-down adjustment of p-values for a family of comparisons: the i-th smallest of
    m becomes ``max over j ≤ i of min(1, (m − j + 1) · p_(j))``. It controls the chance of any
    false "significant" among them (family-wise error), as Bonferroni does, but loses less power.
    NaN entries are left out of the family and stay NaN.

    Reference: S. Holm, "A simple sequentially rejective multiple test procedure", Scandinavian
    Journal of Statistics 6(2), 1979; used by docs/reconstruction.md#fsdd-benchmark and
    docs/maxl.md#baselines, where several configurations are each compared with one baseline.
    """
    pvalues = np.asarray(pvalues, np.float64)
    adjusted = np.full(pvalues.shape, np.nan)
    valid = np.flatnonzero(~np.isnan(pvalues))
    m = valid.size
    running = 0.0
    for rank, index in enumerate(valid[np.argsort(pvalues[valid], kind="stable")]):
        running = max(running, min(1.0, (m - rank) * pvalues[index]))
        adjusted[index] = running
    return adjusted


def format_pvalue(p):
    """A p-value for a table: three decimals, ``< 0.001`` below that, ``–`` when undefined.

    Reference: the tables of docs/reconstruction.md#fsdd-benchmark and docs/maxl.md#baselines.
    """
    if np.isnan(p):
        return "–"
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def pyplot():
    """``matplotlib.pyplot`` on the non-interactive Agg backend (files only), imported on first
    use: matplotlib belongs to the ``trainers`` extra.

    Reference: the figures of docs/censoring.md (Lemaire 2018), docs/maxl.md (Liu, Davison &
    Johns 2019) and docs/reconstruction.md (seed 001).
    """
    matplotlib = require("matplotlib", extra="trainers", purpose="to draw the experiments' plots")
    matplotlib.use("Agg")
    return require("matplotlib.pyplot", extra="trainers", purpose="to draw the experiments' plots")


def pair_by_seed(values, baselines):
    """``values`` and ``baselines`` (``{seed: anything}``) as two lists over the seeds both hold,
    in seed order: the arms of a paired comparison.

    Reference: the paired comparisons of docs/censoring.md#synthetic-experiment,
    docs/reconstruction.md#fsdd-benchmark and docs/maxl.md#baselines.
    """
    seeds = sorted(set(values) & set(baselines))
    return [values[s] for s in seeds], [baselines[s] for s in seeds]


def paired_difference(values, baselines, confidence=0.95, relative=False):
    """Mean of the per-seed differences ``values − baselines`` and the half-width of its
    Student-t confidence interval (paired: seed ``s`` of both arms shares its initialisation
    and data, so the seed's own difficulty cancels).

    Args:
        values, baselines: equal-length sequences, one entry per seed.
        confidence: level of the interval.
        relative: differences in percent of each seed's baseline,
            ``100 · (value − baseline) / baseline``.

    Returns:
        ``(mean, half_width, n)``; the half-width is NaN for fewer than two pairs.

    Reference: the paired comparisons of docs/censoring.md#synthetic-experiment,
    docs/maxl.md and docs/reconstruction.md.
    """
    values = np.asarray(values, np.float64)
    baselines = np.asarray(baselines, np.float64)
    if values.shape != baselines.shape or values.ndim != 1:
        raise ValueError(
            f"paired_difference needs two equal-length 1-D sequences; got shapes "
            f"{values.shape} and {baselines.shape}."
        )
    differences = values - baselines
    if relative:
        differences = 100.0 * differences / baselines
    n = len(differences)
    if n == 0:
        return float("nan"), float("nan"), 0
    if n < 2:
        return float(differences.mean()), float("nan"), n
    stats = require("scipy.stats", extra="trainers", purpose="for confidence intervals")
    t = stats.t.ppf(0.5 + confidence / 2.0, n - 1)
    return float(differences.mean()), float(t * differences.std(ddof=1) / np.sqrt(n)), n
