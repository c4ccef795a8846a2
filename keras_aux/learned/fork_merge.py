"""ForkMerge (Jiang, Chen, Wang & Long 2023) as a `fit` callback.

The model's weights are forked into B branches: branch 0 trains the primary
task alone, branch k the primary task plus a chosen set of auxiliary tasks.
Each branch trains ``epochs_per_fork`` epochs from the same start; the
branches are then merged, ``θ = Σ_b λ_b θ_b / Σ_b λ_b``, with the λ's found
greedily on the primary task's validation loss, and every branch restarts
from the merged weights.

- `BranchWeights`: the loss weighting the model is compiled with; its state
  holds the per-task weights ω of the branch being trained, which the
  callback assigns, so branches change their loss weights without a
  recompile.
- `ForkMerge`: the callback; fit epochs run the branches round-robin, B ×
  ``epochs_per_fork`` epochs per round, a merge at the end of each round.
- `greedy_merge_weights`, `merge_variables`: the merge, as pure functions.
- `plot_merge_weights`: the λ's of each round, drawn to a PNG.

Reference: Jiang, Chen, Wang & Long (2023), "ForkMerge: Mitigating Negative
Transfer in Auxiliary-Task Learning", NeurIPS (code: thuml/ForkMerge). See
docs/learned_weighting.md.
"""

import json
import math
import os
import warnings

import keras
import numpy as np
from keras import ops

from keras_aux.utils.optional import require
from keras_aux.weighting.base import PACKAGE, LossWeighting

#: The reference's α grid.
DEFAULT_ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
BACKUP_FILE = "fork_merge_state.npz"


@keras.saving.register_keras_serializable(package=PACKAGE)
class BranchWeights(LossWeighting):
    """The loss weighting of a model trained with `ForkMerge` (Jiang et al.
    2023, "ForkMerge: Mitigating Negative Transfer in Auxiliary-Task
    Learning"): ω, one weight per task, held in its state and set by the
    callback for the branch being trained (1 for every task until then).

    The primary's weight stays 1; an auxiliary task trains with
    ``λ_k · ω_k`` (``λ_k`` its compiled ``loss_weights`` entry).
    """

    def __init__(self):
        super().__init__(fix_primary=True)

    def init(self, num_tasks):
        """``{"weights": ω}``, ones."""
        return {"weights": ops.ones((num_tasks,), "float32")}

    def method_weights(self, losses, state, parameters):
        return state["weights"]

    def get_config(self):
        return {}


def _better(mode):
    return (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)


def _rank_key(mode):
    def key(score):
        if not math.isfinite(score):
            return math.inf
        return score if mode == "min" else -score

    return key


def greedy_merge_weights(scores, evaluate, alphas=DEFAULT_ALPHAS, mode="min"):
    """The merge weights λ of ForkMerge's greedy search.

    The branches are ranked by ``scores`` (best first, ties in branch
    order); the best gets λ = 1. Each further branch, in rank order, tries
    ``α · mean(λ of the branches ranked before it)`` for each α in
    ``alphas``, in order, and keeps the value whose merge ``evaluate(λ)``
    scores strictly better than every merge tried before (in this round,
    across branches), else 0.

    Args:
        scores: one validation criterion per branch.
        evaluate: ``λ (a list, one per branch) -> criterion`` of the merge.
        alphas: the α grid.
        mode: ``"min"`` (a loss) or ``"max"``.

    Returns:
        ``(λ, tried)``: the weights and ``[(λ tried, criterion), ...]``.
    """
    better = _better(mode)
    ranked = sorted(range(len(scores)), key=lambda b: _rank_key(mode)(scores[b]))
    weights = [0.0] * len(scores)
    weights[ranked[0]] = 1.0
    best = math.inf if mode == "min" else -math.inf
    tried = []
    cache = {}
    for i, branch in enumerate(ranked[1:]):
        chosen = 0.0
        upper = sum(weights) / (i + 1)
        for alpha in alphas:
            weights[branch] = alpha * upper
            key = tuple(weights)
            if key not in cache:
                cache[key] = float(evaluate(list(weights)))
            criterion = cache[key]
            tried.append((list(weights), criterion))
            if better(criterion, best):
                best, chosen = criterion, weights[branch]
        weights[branch] = chosen
    return weights, tried


def merge_variables(branch_values, weights):
    """``Σ_b λ_b θ_b / Σ_b λ_b`` for each variable (float64 sums, cast back to
    each variable's dtype); a non-float variable takes the value of the
    branch with the largest λ.

    Args:
        branch_values: one list of arrays per branch, in the same order.
        weights: λ, one per branch (not all zero).
    """
    weights = np.asarray(weights, np.float64)
    total = weights.sum()
    lead = int(np.argmax(weights))
    merged = []
    for values in zip(*branch_values):
        first = np.asarray(values[lead])
        if not np.issubdtype(first.dtype, np.floating):
            merged.append(first.copy())
            continue
        acc = sum(w * np.asarray(v, np.float64) for w, v in zip(weights, values))
        merged.append((acc / total).astype(first.dtype))
    return merged


def _check_alphas(alphas):
    try:
        values = [float(a) for a in alphas]
    except (TypeError, ValueError):
        values = []
    if not values or any(not (math.isfinite(a) and a >= 0.0) for a in values):
        raise ValueError(
            f"`alphas` must be a non-empty sequence of finite numbers >= 0; got {alphas!r}."
        )
    return tuple(values)


def _check_branches(branches):
    """The branches as given (checked against the task names in `fit`)."""
    if branches is None:
        return None
    if not isinstance(branches, (list, tuple)) or not branches:
        raise ValueError(
            "`branches` must be None (one branch with every auxiliary task) or a non-empty "
            f"list of dicts {{auxiliary task: weight}} or lists of auxiliary task names; got "
            f"{branches!r}."
        )
    checked = []
    for branch in branches:
        if isinstance(branch, dict):
            entry = {}
            for name, weight in branch.items():
                try:
                    value = float(weight)
                except (TypeError, ValueError):
                    value = float("nan")
                if not (math.isfinite(value) and value >= 0.0):
                    raise ValueError(
                        f"A branch weight must be a finite number >= 0; got {name!r}: {weight!r}."
                    )
                entry[str(name)] = value
        elif isinstance(branch, (list, tuple)) and all(isinstance(n, str) for n in branch):
            entry = {name: 1.0 for name in branch}
        else:
            raise ValueError(
                "Each branch must be a dict {auxiliary task: weight} or a list of auxiliary "
                f"task names; got {branch!r}."
            )
        checked.append(entry)
    return checked


class ForkMerge(keras.callbacks.Callback):
    """ForkMerge (Jiang, Chen, Wang & Long 2023, "ForkMerge: Mitigating
    Negative Transfer in Auxiliary-Task Learning", NeurIPS), run by `fit`.

    Compile the model with ``loss_weighting=BranchWeights()`` and pass this
    callback to `fit`. Fit epochs run the branches round-robin: a round is
    ``B × epochs_per_fork`` epochs, branch 0 first; each branch starts from
    the round's weights, with its own optimizer state (and censoring state),
    and trains ``epochs_per_fork`` epochs with its loss weights. At the end of
    the round's last epoch the branches are merged (`greedy_merge_weights`,
    `merge_variables`, over every weight of the model, BatchNorm statistics
    included) and the merge is the next round's start. Give `fit` a multiple
    of a round's epochs: a run that stops mid-round leaves the model with
    the weights of the branch it was training.

    Logged: ``fork_merge_branch`` every epoch (the branch that trained), and
    at each merge ``fork_merge_weight_<b>`` (λ_b) and ``fork_merge_<monitor>``
    (the merge's validation criterion). Put the callback before
    ``keras.callbacks.TensorBoard`` in the list so that it sees them.

    With ``backup_dir``, its state (the round's start, the finished branches,
    each branch's optimizer state, the counters) is written there after each
    epoch (atomically); pass ``keras.callbacks.BackupAndRestore`` as well
    (it restores the model, the optimizer and the epoch), and a run stopped
    after any epoch resumes as if it had not stopped.

    Args:
        validation_data: ``(x, y)``, ``(x, y, sample_weight)`` or a dataset,
            as `Model.evaluate` takes it; the targets of the primary task at
            least. Required.
        epochs_per_fork: Δt, the epochs each branch trains per round (5).
        branches: the auxiliary branches, after branch 0 (the primary
            alone): a list of dicts ``{auxiliary task: ω}`` (ω multiplies the
            compiled λ; a task left out gets 0) or of lists of task names
            (ω = 1). Default: one branch with every auxiliary task, ω = 1.
        alphas: the α grid (the reference's 0, 0.2, ..., 1).
        monitor: the `evaluate` log to select on (``"<primary>_loss"``).
        mode: ``"min"``, ``"max"`` or ``"auto"`` (min for a loss, max for an
            accuracy or AUC).
        restore_best: each branch ends on its best epoch of the fork on
            validation, as the reference does (True), else on its last.
        backup_dir: where to keep the state for a resumed run (None: nowhere).
        delete_backup: remove the state file when `fit` ends normally.
        batch_size: for `evaluate` on arrays (Keras's default, 32).
    """

    def __init__(
        self,
        validation_data,
        epochs_per_fork=5,
        branches=None,
        alphas=DEFAULT_ALPHAS,
        monitor=None,
        mode="auto",
        restore_best=True,
        backup_dir=None,
        delete_backup=True,
        batch_size=None,
    ):
        super().__init__()
        if validation_data is None:
            raise ValueError(
                "ForkMerge needs `validation_data` (the primary task's validation targets at "
                "least): its branches are chosen and merged on them."
            )
        if isinstance(epochs_per_fork, bool) or not isinstance(epochs_per_fork, int):
            raise ValueError(f"`epochs_per_fork` must be an integer >= 1; got {epochs_per_fork!r}.")
        if epochs_per_fork < 1:
            raise ValueError(f"`epochs_per_fork` must be an integer >= 1; got {epochs_per_fork!r}.")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"`mode` must be 'auto', 'min' or 'max'; got {mode!r}.")
        if monitor is not None and not isinstance(monitor, str):
            raise ValueError(f"`monitor` must be None or an `evaluate` log name; got {monitor!r}.")
        for name, flag in (("restore_best", restore_best), ("delete_backup", delete_backup)):
            if not isinstance(flag, bool):
                raise ValueError(f"`{name}` must be True or False; got {flag!r}.")
        if batch_size is not None and (
            isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1
        ):
            raise ValueError(f"`batch_size` must be None or an integer >= 1; got {batch_size!r}.")
        self.validation_data = validation_data
        self.epochs_per_fork = epochs_per_fork
        self.branches = _check_branches(branches)
        self.alphas = _check_alphas(alphas)
        self.monitor = monitor
        self.mode = mode
        self.restore_best = restore_best
        self.backup_dir = None if backup_dir is None else os.fspath(backup_dir)
        self.delete_backup = delete_backup
        self.batch_size = batch_size
        self.merge_weights = []  # λ of each round
        self._state = None

    # ------------------------------------------------------------ settings
    def get_config(self):
        """The settings (without ``validation_data``, which `from_config` takes back)."""
        return {
            "epochs_per_fork": self.epochs_per_fork,
            "branches": self.branches,
            "alphas": list(self.alphas),
            "monitor": self.monitor,
            "mode": self.mode,
            "restore_best": self.restore_best,
            "backup_dir": self.backup_dir,
            "delete_backup": self.delete_backup,
            "batch_size": self.batch_size,
        }

    @classmethod
    def from_config(cls, config, validation_data=None):
        """Rebuilds the callback from `get_config`'s output and the validation data."""
        return cls(validation_data=validation_data, **config)

    @property
    def num_branches(self):
        """B, branch 0 (the primary alone) included."""
        return 1 + (1 if self.branches is None else len(self.branches))

    # ------------------------------------------------------------ the model
    def _check_model(self):
        model = self.model
        weighting = getattr(model, "loss_weighting", None)
        if not hasattr(model, "auxiliary_names") or not isinstance(weighting, BranchWeights):
            raise ValueError(
                "ForkMerge needs a keras_aux.AuxiliaryModel (or AuxiliaryTrainer) compiled with "
                "`loss_weighting=keras_aux.learned.BranchWeights()`, whose state holds each "
                f"branch's loss weights; got a {type(model).__name__} compiled with "
                f"loss_weighting={weighting!r}."
            )
        auxiliary = list(model.auxiliary_names)
        if not auxiliary:
            raise ValueError("ForkMerge needs at least one auxiliary task; the model has none.")
        table = self.branches or [{name: 1.0 for name in auxiliary}]
        for branch in table:
            unknown = sorted(set(branch) - set(auxiliary))
            if unknown:
                raise ValueError(
                    f"Branch {branch!r} names {unknown}, which are not auxiliary tasks of the "
                    f"model; its auxiliary tasks are {auxiliary}."
                )
        self._branch_table = table
        self._omega = [
            np.asarray([1.0] + [branch.get(n, 0.0) for n in auxiliary], np.float32)
            for branch in [{}] + table
        ]
        self._omega[0][1:] = 0.0
        monitor = self.monitor or f"{model.primary}_loss"
        mode = self.mode
        if mode == "auto":
            if monitor == "loss" or monitor.endswith("_loss"):
                mode = "min"
            elif monitor.endswith("accuracy") or monitor.endswith("auc"):
                mode = "max"
            else:
                raise ValueError(
                    f"mode='auto' cannot tell whether {monitor!r} is better high or low: pass "
                    "mode='min' or mode='max'."
                )
        self._monitor, self._mode = monitor, mode

    def branch_names(self):
        """A readable name per branch: ``"primary"``, then ``"+recon+extra"``..."""
        names = ["primary"]
        for branch in self._branch_table:
            tasks = [n for n, w in branch.items() if w > 0]
            names.append("+" + "+".join(tasks) if tasks else "primary")
        return names

    def _weights(self):
        return [np.array(v.numpy()) for v in self.model.weights]

    def _set_weights(self, values):
        for variable, value in zip(self.model.weights, values, strict=True):
            variable.assign(value)

    def _training_variables(self):
        """The state each branch keeps to itself: the optimizer's and the censoring method's."""
        model = self.model
        return list(model.optimizer.variables) + list(model.censor_state_holder.state_variables)

    def _training_state(self):
        return [np.array(v.numpy()) for v in self._training_variables()]

    def _set_training_state(self, values):
        for variable, value in zip(self._training_variables(), values, strict=True):
            variable.assign(value)

    def _set_omega(self, branch):
        (variable,) = self.model.loss_weighting_holder.state_variables
        variable.assign(self._omega[branch])

    def _evaluate(self):
        data = self.validation_data
        kwargs = dict(verbose=0, return_dict=True)
        if isinstance(data, tuple):
            if len(data) not in (2, 3):
                raise ValueError(
                    "`validation_data` must be (x, y), (x, y, sample_weight) or a dataset; got a "
                    f"tuple of {len(data)}."
                )
            logs = self.model.evaluate(*data, batch_size=self.batch_size, **kwargs)
        else:
            logs = self.model.evaluate(data, **kwargs)
        if self._monitor not in logs:
            raise ValueError(
                f"ForkMerge monitors {self._monitor!r}, which `evaluate` on its validation data "
                f"does not log; it logs {sorted(logs)}."
            )
        return float(logs[self._monitor])

    # ------------------------------------------------------------ the state
    def _fresh_state(self, epoch):
        return {
            "first_epoch": epoch,
            "epochs_done": epoch,
            "round_start": self._weights(),
            "initial_training": self._training_state(),
            "branch_training": {},
            "branch_weights": {},
            "branch_scores": {},
            "best": None,
            "best_score": None,
            "merge_weights": [],
        }

    def _position(self, epoch):
        """``(round, branch, epoch within the fork)`` of a fit epoch."""
        offset = epoch - self._state["first_epoch"]
        per_round = self.num_branches * self.epochs_per_fork
        within = offset % per_round
        return offset // per_round, within // self.epochs_per_fork, within % self.epochs_per_fork

    def _backup_path(self):
        return os.path.join(self.backup_dir, BACKUP_FILE)

    def _save_backup(self):
        if self.backup_dir is None:
            return
        state = self._state
        arrays = {}

        def put(prefix, values):
            for i, value in enumerate(values):
                arrays[f"{prefix}/{i}"] = value

        put("round_start", state["round_start"])
        put("initial_training", state["initial_training"])
        for b, values in state["branch_training"].items():
            put(f"branch_training/{b}", values)
        for b, values in state["branch_weights"].items():
            put(f"branch_weights/{b}", values)
        if state["best"] is not None:
            put("best", state["best"])
        meta = {
            "num_branches": self.num_branches,
            "epochs_per_fork": self.epochs_per_fork,
            "num_weights": len(state["round_start"]),
            "num_training": len(state["initial_training"]),
            "first_epoch": state["first_epoch"],
            "epochs_done": state["epochs_done"],
            "branch_training": sorted(state["branch_training"]),
            "branch_weights": sorted(state["branch_weights"]),
            "branch_scores": {str(b): s for b, s in state["branch_scores"].items()},
            "best_score": state["best_score"],
            "has_best": state["best"] is not None,
            "merge_weights": state["merge_weights"],
        }
        arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
        os.makedirs(self.backup_dir, exist_ok=True)
        temporary = self._backup_path() + ".tmp"
        with open(temporary, "wb") as f:
            np.savez(f, **arrays)
        os.replace(temporary, self._backup_path())

    def _load_backup(self):
        with np.load(self._backup_path()) as file:
            meta = json.loads(bytes(file["meta"]).decode())
            expected = {
                "num_branches": self.num_branches,
                "epochs_per_fork": self.epochs_per_fork,
                "num_weights": len(self.model.weights),
                "num_training": len(self._training_variables()),
            }
            for key, value in expected.items():
                if meta[key] != value:
                    raise ValueError(
                        f"The ForkMerge state in {self._backup_path()} has {key}={meta[key]} but "
                        f"this run has {value}: resume with the settings and model it was "
                        "written with, or remove the file."
                    )

            def get(prefix, count):
                return [np.array(file[f"{prefix}/{i}"]) for i in range(count)]

            n_w, n_t = meta["num_weights"], meta["num_training"]
            return {
                "first_epoch": meta["first_epoch"],
                "epochs_done": meta["epochs_done"],
                "round_start": get("round_start", n_w),
                "initial_training": get("initial_training", n_t),
                "branch_training": {
                    b: get(f"branch_training/{b}", n_t) for b in meta["branch_training"]
                },
                "branch_weights": {
                    b: get(f"branch_weights/{b}", n_w) for b in meta["branch_weights"]
                },
                "branch_scores": {int(b): s for b, s in meta["branch_scores"].items()},
                "best": get("best", n_w) if meta["has_best"] else None,
                "best_score": meta["best_score"],
                "merge_weights": meta["merge_weights"],
            }

    # ------------------------------------------------------------ the hooks
    def on_train_begin(self, logs=None):
        self._check_model()
        optimizer = self.model.optimizer
        if not optimizer.built:
            # Its state must exist to be kept per branch (as BackupAndRestore builds it).
            optimizer.build(self.model.trainable_variables)
        self._restored = False
        if self.backup_dir is not None and os.path.exists(self._backup_path()):
            self._state = self._load_backup()
            self.merge_weights = [list(w) for w in self._state["merge_weights"]]
            self._restored = True
        epochs = (self.params or {}).get("epochs")
        per_round = self.num_branches * self.epochs_per_fork
        if epochs is not None and epochs % per_round:
            warnings.warn(
                f"ForkMerge: fit runs {epochs} epochs, not a multiple of a round's {per_round} "
                f"({self.num_branches} branches × {self.epochs_per_fork}): the last round "
                "ends unmerged, with the weights of the branch it was training.",
                stacklevel=2,
            )

    def on_epoch_begin(self, epoch, logs=None):
        if self._state is None:
            self._state = self._fresh_state(epoch)
        state = self._state
        if epoch != state["epochs_done"]:
            raise ValueError(
                f"ForkMerge's state is at epoch {state['epochs_done']} but fit is at epoch "
                f"{epoch}: resume with keras.callbacks.BackupAndRestore (which restores the "
                f"epoch) or fit(initial_epoch={state['epochs_done']})."
            )
        _, branch, step = self._position(epoch)
        if step == 0:
            self._set_weights(state["round_start"])
            training = state["branch_training"].get(branch, state["initial_training"])
            self._set_training_state(training)
            state["best"], state["best_score"] = None, None
        self._set_omega(branch)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs if logs is not None else {}
        state = self._state
        _, branch, step = self._position(epoch)
        logs["fork_merge_branch"] = float(branch)
        if self.restore_best:
            score = self._evaluate()
            best = state["best_score"]
            if best is None or _better(self._mode)(score, best) or not math.isfinite(best):
                state["best"], state["best_score"] = self._weights(), score
        if step == self.epochs_per_fork - 1:
            if self.restore_best:
                final, score = state["best"], state["best_score"]
            else:
                final, score = self._weights(), self._evaluate()
            state["branch_weights"][branch] = final
            state["branch_scores"][branch] = score
            state["branch_training"][branch] = self._training_state()
            state["best"], state["best_score"] = None, None
            if branch == self.num_branches - 1:
                self._merge(logs)
        state["epochs_done"] = epoch + 1
        self._save_backup()

    def _merge(self, logs):
        state = self._state
        order = range(self.num_branches)
        thetas = [state["branch_weights"][b] for b in order]

        def evaluate(weights):
            self._set_weights(merge_variables(thetas, weights))
            return self._evaluate()

        weights, tried = greedy_merge_weights(
            [state["branch_scores"][b] for b in order], evaluate, self.alphas, self._mode
        )
        merged = merge_variables(thetas, weights)
        self._set_weights(merged)
        scores = {tuple(w): c for w, c in tried}
        chosen = scores.get(tuple(weights))
        if chosen is None:
            chosen = self._evaluate()  # only the best branch (no further branch tried)
        state["round_start"] = merged
        state["branch_weights"], state["branch_scores"] = {}, {}
        state["merge_weights"].append(list(weights))
        self.merge_weights = [list(w) for w in state["merge_weights"]]
        for b, w in enumerate(weights):
            logs[f"fork_merge_weight_{b}"] = float(w)
        logs[f"fork_merge_{self._monitor}"] = float(chosen)

    def on_train_end(self, logs=None):
        if self.backup_dir is not None and self.delete_backup:
            path = self._backup_path()
            if os.path.exists(path):
                os.remove(path)


def plot_merge_weights(source, path, branch_names=None):
    """Draws the merge weights λ_b of each round (`ForkMerge`, Jiang et al.
    2023) to a PNG and returns ``path``.

    Args:
        source: a `ForkMerge` callback, a ``History`` (or its ``.history``
            dict, read for ``fork_merge_weight_<b>``), or a list of rounds
            of λ's.
        path: the PNG file to write.
        branch_names: a label per branch (default: the callback's, else
            ``branch <b>``).
    """
    if isinstance(source, ForkMerge):
        rounds = source.merge_weights
        if branch_names is None and getattr(source, "_branch_table", None) is not None:
            branch_names = source.branch_names()
    else:
        history = getattr(source, "history", source)
        if isinstance(history, dict):
            keys = sorted(
                (k for k in history if k.startswith("fork_merge_weight_")),
                key=lambda k: int(k.rsplit("_", 1)[1]),
            )
            rounds = [list(r) for r in zip(*(history[k] for k in keys))]
        else:
            rounds = [list(r) for r in history]
    if not rounds:
        raise ValueError("No merge weights to plot: no round of ForkMerge has ended yet.")
    values = np.asarray(rounds, np.float64)
    names = branch_names or [f"branch {b}" for b in range(values.shape[1])]
    matplotlib = require("matplotlib", extra="trainers", purpose="to plot the merge weights")
    matplotlib.use("Agg")
    pyplot = require("matplotlib.pyplot", extra="trainers", purpose="to plot the merge weights")
    figure, axes = pyplot.subplots(figsize=(6, 3.5))
    x = np.arange(1, values.shape[0] + 1)
    for b in range(values.shape[1]):
        axes.plot(x, values[:, b], marker="o", label=names[b])
    axes.set_xlabel("round (merge)")
    axes.set_ylabel("merge weight λ")
    axes.set_title("ForkMerge merge weights")
    axes.set_xticks(x)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)
    return path
