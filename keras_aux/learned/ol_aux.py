"""OL-AUX: one weight per auxiliary task, learned online from gradient inner products.

The update of step ``t`` uses the weights ``w`` held before it:

    update = p + Σ_k w_k λ_k a_k

then every step adds ``lr · ⟨p, a_k⟩`` (over the variables both reach) to a
running sum, and every ``N`` steps

    w_k ← max(0, w_k + β · (1/N) Σ_{last N steps} lr · ⟨p, a_k⟩)

and the sum restarts. ``w`` starts at 1. The inner product is the first-order
look-ahead gradient of the primary loss with respect to ``w_k``: an auxiliary
task whose gradient keeps agreeing with the primary one gains weight, one that
opposes it loses weight until it is switched off.

Reference: Lin, Baweja, Kantor & Held (2019), "Adaptive Auxiliary Task
Weighting for Reinforcement Learning", NeurIPS 2019; the re-implementation
Xingyu-Lin/auxiliary-tasks-rl (``olaux/ddpg.py``, ``_update_aux_weights``;
defaults N = 5, β = 5 N). Departures (docs/learned_weighting.md): ``lr`` is an
argument (the reference reads its optimizer's); the inner product takes the
primary gradient alone (the reference's includes the weighted auxiliary
losses); no log(loss) transform.
"""

import keras
from keras import ops

from keras_aux.censoring.base import Censor, check_gradients, sum_of_products
from keras_aux.learned.metabalance import PACKAGE, check_task_count, validate_num_auxiliary


@keras.saving.register_keras_serializable(package=PACKAGE)
class OLAux(Censor):
    """OL-AUX (Lin et al., NeurIPS 2019): auxiliary weights learned from ``⟨p, a_k⟩``.

    The update is ``p + Σ_k w_k λ_k a_k``, on the shared variables and the
    auxiliary heads alike (as the reference, which multiplies each
    auxiliary loss by its weight). Every ``interval`` steps,
    ``w_k ← max(0, w_k + weight_learning_rate · mean(learning_rate · ⟨p, a_k⟩))``,
    the mean over those steps and the inner product over the variables that
    ``p`` and ``a_k`` both reach.

    Args:
        num_auxiliary: the number K of auxiliary tasks.
        learning_rate: ``lr``, the model optimizer's learning rate (a censoring
            method does not see the optimizer; with a schedule, pass a
            typical value). Only ``weight_learning_rate · learning_rate``
            matters.
        interval: ``N``, the steps between two weight updates.
        weight_learning_rate: ``β``; None (default) means ``5 · interval``,
            the reference's.
        initial_weight: the weights' starting value (1 in the reference).

    Example: ``compile(optimizer=keras.optimizers.Adam(1e-3),
    censoring=OLAux(num_auxiliary=2, learning_rate=1e-3))``.

    Logs ``<auxiliary name>_ol_aux_weight``: ``w_k`` after the step (the
    weight of the next step). See docs/learned_weighting.md.
    """

    uses_reference = False

    def __init__(
        self,
        num_auxiliary=1,
        learning_rate=1e-3,
        interval=5,
        weight_learning_rate=None,
        initial_weight=1.0,
    ):
        self.num_auxiliary = validate_num_auxiliary(num_auxiliary)
        if isinstance(interval, bool) or not isinstance(interval, int) or interval < 1:
            raise ValueError(f"`interval` must be a positive integer; got {interval!r}.")
        if weight_learning_rate is None:
            weight_learning_rate = 5.0 * interval
        for name, value in (
            ("learning_rate", learning_rate),
            ("weight_learning_rate", weight_learning_rate),
        ):
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"`{name}` must be a positive number; got {value!r}.")
        if not isinstance(initial_weight, (int, float)) or not initial_weight >= 0:
            raise ValueError(f"`initial_weight` must be a number >= 0; got {initial_weight!r}.")
        self.learning_rate = float(learning_rate)
        self.interval = interval
        self.weight_learning_rate = float(weight_learning_rate)
        self.initial_weight = float(initial_weight)

    def init(self, variables):
        """The weights (``initial_weight``), the running sum of ``lr · ⟨p, a_k⟩``
        (zeros) and the steps since the last weight update (0)."""
        del variables
        k = self.num_auxiliary
        return {
            "weights": ops.full((k,), self.initial_weight, dtype="float32"),
            "sums": ops.zeros((k,), dtype="float32"),
            "count": ops.zeros((), dtype="int32"),
        }

    def update(self, primary, auxiliary, weights, state, reference=None):
        """``p + Σ_k w_k λ_k a_k`` with the current ``w``, and the advanced state."""
        del reference
        lams = check_gradients(primary, auxiliary, weights)
        check_task_count("OLAux", self.num_auxiliary, auxiliary)
        w = state["weights"]
        out = list(primary)
        dots = []
        for k, (task, lam) in enumerate(zip(auxiliary, lams)):
            scale = w[k] * ops.cast(lam, "float32")
            for v, a in enumerate(task):
                if a is None:
                    continue
                contribution = ops.cast(scale, a.dtype) * a
                out[v] = contribution if out[v] is None else out[v] + contribution
            shared = [v for v, a in enumerate(task) if a is not None and primary[v] is not None]
            dots.append(
                sum_of_products(
                    [ops.cast(primary[v], "float32") for v in shared],
                    [ops.cast(task[v], "float32") for v in shared],
                )
                if shared
                else ops.zeros((), "float32")
            )
        sums = state["sums"] + self.learning_rate * ops.stack(dots)
        count = state["count"] + 1
        due = count >= self.interval
        stepped = ops.maximum(w + self.weight_learning_rate * sums / float(self.interval), 0.0)
        new_state = {
            "weights": ops.where(due, stepped, w),
            "sums": ops.where(due, ops.zeros_like(sums), sums),
            "count": ops.where(due, ops.zeros_like(count), count),
        }
        return out, new_state

    def logs(self, state, auxiliary_names):
        """``<name>_ol_aux_weight``: each auxiliary task's current weight."""
        return {
            f"{name}_ol_aux_weight": state["weights"][k] for k, name in enumerate(auxiliary_names)
        }

    def get_config(self):
        return {
            "num_auxiliary": self.num_auxiliary,
            "learning_rate": self.learning_rate,
            "interval": self.interval,
            "weight_learning_rate": self.weight_learning_rate,
            "initial_weight": self.initial_weight,
        }
