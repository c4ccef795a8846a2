"""The learned weights of a training run, from its ``History``, drawn to a PNG.

Every learned weighting logs what it learns with each step, and `fit` keeps the
epoch's last value in the ``History``: a loss weighting's ``<task>_weight`` (Auto-λ
of Liu, James, Davison & Johns 2022, and the loss weightings of docs/weighting.md),
OL-AUX's ``<task>_ol_aux_weight`` (Lin et al. 2019), MetaBalance's
``<task>_metabalance_factor`` (He et al. 2022), AuxiNash's ``<task>_auxinash_power``
and ``<task>_auxinash_weight`` (Shamsian et al. 2023). `learned_weight_logs` finds
them; `plot_learned_weights` draws one panel per kind, one line per task, against the
epoch. ForkMerge's merge weights, logged once per round, have their own plot
(`keras_aux.learned.plot_merge_weights`).
"""

import numpy as np

from keras_aux.utils.optional import require

#: Log suffix → the panel's title, most specific suffix first (``_weight`` ends the others).
LEARNED_LOGS = {
    "_auxinash_power": "AuxiNash bargaining power c",
    "_auxinash_weight": "AuxiNash weight α",
    "_ol_aux_weight": "OL-AUX weight",
    "_metabalance_factor": "MetaBalance factor (mean over tensors)",
    "_weight": "loss weight (loss weighting, Auto-λ)",
}


def learned_weight_logs(history):
    """The learned weights in a training ``History``.

    Args:
        history: a ``keras.callbacks.History`` (what `fit` returns) or its ``.history``
            dict.

    Returns:
        ``{suffix: {task: [value per epoch]}}`` for the suffixes of `LEARNED_LOGS` (in its
        order) that some task logged; a task is a name with a ``<task>_loss`` log
        (validation logs are left out).
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict):
        raise ValueError(
            f"`history` must be a keras.callbacks.History or its `.history` dict; got "
            f"{type(history).__name__}."
        )
    tasks = [k[: -len("_loss")] for k in logs if k.endswith("_loss") and not k.startswith("val_")]
    found, taken = {}, set()
    for suffix in LEARNED_LOGS:
        for task in tasks:
            key = task + suffix
            if key in logs and key not in taken:
                found.setdefault(suffix, {})[task] = [float(v) for v in logs[key]]
                taken.add(key)
    return found


def plot_learned_weights(history, path, title=None):
    """Draws the learned weights of a run (`learned_weight_logs`) to a PNG, one panel per
    kind of weight, one line per task, against the epoch; returns ``path``.

    Args:
        history: a ``keras.callbacks.History`` (what `fit` returns) or its ``.history``
            dict.
        path: the PNG file to write.
        title: the figure's title (default: "Learned weights per epoch").

    Raises:
        ValueError: the history holds no learned weight (the model was compiled without a
            learned weighting or loss weighting).

    References: Liu et al. (2022) Auto-λ; Lin et al. (2019) OL-AUX; He et al. (2022)
    MetaBalance; Shamsian et al. (2023) AuxiNash. See docs/learned_weighting.md.
    """
    found = learned_weight_logs(history)
    if not found:
        raise ValueError(
            "The history holds no learned weight (no <task>_weight, _ol_aux_weight, "
            "_metabalance_factor, _auxinash_power or _auxinash_weight log): compile the model "
            "with a learned weighting (keras_aux.learned) or a loss weighting."
        )
    matplotlib = require("matplotlib", extra="trainers", purpose="to plot the learned weights")
    matplotlib.use("Agg")
    pyplot = require("matplotlib.pyplot", extra="trainers", purpose="to plot the learned weights")
    figure, axes = pyplot.subplots(1, len(found), figsize=(4.2 * len(found), 3.2), squeeze=False)
    # One colour per task across the panels.
    tasks = list(dict.fromkeys(task for series in found.values() for task in series))
    for ax, (suffix, series) in zip(axes[0], found.items()):
        for task, values in series.items():
            epochs = np.arange(1, len(values) + 1)
            color = f"C{tasks.index(task) % 10}"
            ax.plot(epochs, values, marker="o", ms=3, color=color, label=task)
        ax.set_title(LEARNED_LOGS[suffix], fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    figure.suptitle(title or "Learned weights per epoch", fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
