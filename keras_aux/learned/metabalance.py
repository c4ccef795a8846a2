"""MetaBalance: scale each auxiliary gradient towards the primary gradient's magnitude.

Per variable tensor ``v`` and task ``i`` (0 the primary), with ``g_i`` the
task's gradient on ``v``:

    m_i ← β m_i + (1 − β) ‖g_i‖₂                (from 0, when g_i exists)
    f_i = r · m_0 / m_i + (1 − r)               (1 where m_i = 0)
    update(v) = g_0 + Σ_k λ_k f_k a_k            (v reached by the primary)
    update(v) = Σ_k λ_k a_k                      (an auxiliary head)

``f_0 = 1``: the primary gradient passes unchanged. The state is the moving
norms, one per task and variable tensor.

Reference: He, Feng, Cheng, Li, Meng, Zhang, Yang, Chen & Hu (2022),
"MetaBalance: Improving Multi-Task Recommendations via Adapting Gradient
Magnitudes of Auxiliary Tasks", WWW 2022; code facebookresearch/MetaBalance
(``metabalance.py``). Departures (docs/learned_weighting.md): the weights λ_k
scale the balanced gradient (the reference has none; λ_k = 1 is the
reference); ``f_i = 1`` where ``m_i = 0`` (the reference divides 0 by 0); a
variable a task does not reach is skipped for that task, where the reference
stops at the first missing gradient.
"""

import keras
from keras import ops

from keras_aux.censoring.base import Censor, check_gradients

PACKAGE = "keras_aux.learned"


def check_task_count(owner, num_auxiliary, auxiliary):
    """Raises ValueError unless ``auxiliary`` has ``num_auxiliary`` task gradient lists."""
    if len(auxiliary) != num_auxiliary:
        raise ValueError(
            f"{owner} was built for num_auxiliary={num_auxiliary} auxiliary tasks but the model "
            f"has {len(auxiliary)}: pass num_auxiliary={len(auxiliary)}."
        )


def validate_num_auxiliary(num_auxiliary):
    """Returns ``num_auxiliary`` as an int if it is a positive integer."""
    if isinstance(num_auxiliary, bool) or not isinstance(num_auxiliary, int) or num_auxiliary < 1:
        raise ValueError(
            f"`num_auxiliary` (the number of auxiliary tasks) must be a positive integer; got "
            f"{num_auxiliary!r}."
        )
    return num_auxiliary


def _norm(g):
    g = ops.cast(g, "float32")
    return ops.sqrt(ops.sum(g * g))


def balancing_factors(norms, relax_factor):
    """``f_i = r · m_0 / m_i + (1 − r)`` per task row of ``norms`` (``(K+1) × V``),
    1 where ``m_i = 0``."""
    positive = norms > 0.0
    ratio = norms[0:1] / ops.where(positive, norms, 1.0)
    return ops.where(positive, relax_factor * ratio + (1.0 - relax_factor), 1.0)


@keras.saving.register_keras_serializable(package=PACKAGE)
class MetaBalance(Censor):
    """MetaBalance (He et al., WWW 2022): auxiliary gradients rescaled per tensor.

    Each auxiliary gradient on a variable the primary task also reaches is
    multiplied by ``r · m_0 / m_k + (1 − r)``, ``m_i`` the moving average of
    task ``i``'s gradient norm on that variable, so it is drawn towards the
    primary gradient's magnitude (shrunk when larger, enlarged when smaller)
    while keeping its direction; the primary gradient is unchanged. The
    update is ``p + Σ_k λ_k f_k a_k`` there and ``Σ_k λ_k a_k`` on the
    auxiliary heads.

    Args:
        num_auxiliary: the number K of auxiliary tasks (the state holds one
            moving norm per task and variable).
        relax_factor: ``r`` in [0, 1]: 0 leaves the gradients unchanged, 1
            gives every auxiliary gradient the primary's moving magnitude.
        beta: the moving averages' decay ``β`` in [0, 1).

    Example: ``AuxiliaryModel.compile(censoring=MetaBalance(num_auxiliary=2))``.

    Logs ``<auxiliary name>_metabalance_factor``: the mean ``f_k`` over the
    tensors where both moving norms are positive (1 where there are none).
    See docs/learned_weighting.md.
    """

    uses_reference = False

    def __init__(self, num_auxiliary=1, relax_factor=0.7, beta=0.9):
        self.num_auxiliary = validate_num_auxiliary(num_auxiliary)
        if not 0.0 <= relax_factor <= 1.0:
            raise ValueError(f"`relax_factor` must be in [0, 1]; got {relax_factor!r}.")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"`beta` must be in [0, 1); got {beta!r}.")
        self.relax_factor = float(relax_factor)
        self.beta = float(beta)

    def init(self, variables):
        """The moving norms ``m``: ``(K + 1) × len(variables)`` float32 zeros."""
        return {"norms": ops.zeros((1 + self.num_auxiliary, len(variables)), dtype="float32")}

    def update(self, primary, auxiliary, weights, state, reference=None):
        """``p + Σ_k λ_k f_k a_k`` (see the class); ``reference`` is not used."""
        del reference
        weights = check_gradients(primary, auxiliary, weights)
        check_task_count("MetaBalance", self.num_auxiliary, auxiliary)
        old = state["norms"]
        if old.shape[1] != len(primary):
            raise ValueError(
                f"The MetaBalance state was built for {old.shape[1]} variables; got gradients "
                f"for {len(primary)}."
            )
        tasks = [list(primary)] + [list(task) for task in auxiliary]
        rows = []
        for i, task in enumerate(tasks):
            rows.append(
                ops.stack(
                    [
                        old[i, v]
                        if g is None
                        else self.beta * old[i, v] + (1.0 - self.beta) * _norm(g)
                        for v, g in enumerate(task)
                    ]
                )
            )
        norms = ops.stack(rows)
        factors = balancing_factors(norms, self.relax_factor)
        out = list(primary)
        for k, (task, lam) in enumerate(zip(auxiliary, weights), start=1):
            for v, a in enumerate(task):
                if a is None:
                    continue
                scale = ops.cast(lam, "float32")
                if primary[v] is not None:
                    scale = scale * factors[k, v]
                contribution = ops.cast(scale, a.dtype) * a
                out[v] = contribution if out[v] is None else out[v] + contribution
        return out, {"norms": norms}

    def logs(self, state, auxiliary_names):
        """``<name>_metabalance_factor``: each auxiliary task's mean ``f_k``
        over the tensors where ``m_0 > 0`` and ``m_k > 0`` (1 if none)."""
        norms = state["norms"]
        factors = balancing_factors(norms, self.relax_factor)
        logs = {}
        for k, name in enumerate(auxiliary_names, start=1):
            counted = ops.cast(ops.logical_and(norms[0] > 0.0, norms[k] > 0.0), "float32")
            count = ops.sum(counted)
            mean = ops.sum(factors[k] * counted) / ops.maximum(count, 1.0)
            logs[f"{name}_metabalance_factor"] = ops.where(count > 0.0, mean, 1.0)
        return logs

    def get_config(self):
        return {
            "num_auxiliary": self.num_auxiliary,
            "relax_factor": self.relax_factor,
            "beta": self.beta,
        }
