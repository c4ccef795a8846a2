"""AuxiNash: auxiliary learning as an asymmetric Nash bargaining game.

Every step, with ``g_0 = p`` the primary gradient, ``g_k = λ_k a_k`` the
auxiliary ones and ``G`` their Gram matrix over the shared variables (those
the primary and at least one auxiliary task reach), the task weights are the
bargaining solution with powers ``c`` (the primary first):

    α > 0,   αᵢ (G α)ᵢ = cᵢ                       (Nash-MTL: every cᵢ = 1)
    update = Σᵢ αᵢ gᵢ,  clipped to norm ``max_norm`` on the shared variables

(on a task's own head, ``αᵢ gᵢ``). Every ``update_every`` steps the powers
take one SGD step on the primary loss of a meta batch, by implicit
differentiation (the reference's ``Hypergrad`` with its ``approx_inverse_hvp``):

    q = Σ_{j=0}^{J} (I − η H)ʲ ∇_W L_meta          (J = 3 Neumann terms, η = 10⁻⁴)
    hᵢ = ⟨gᵢ, q⟩                                      (= ∂/∂αᵢ ⟨∇_W Σ αⱼ Lⱼ, q⟩)
    ∂α/∂c = (G + diag(c / α²))⁻¹ diag(1 / α)
    d = −(∂α/∂c)ᵀ h,  clipped to norm 1
    m ← μ m + d,   c ← c − lr · m                     (lr 5·10⁻³, μ 0.9)
    c ← max(c, 10⁻⁴),   c ← (K + 1) c / Σ c

``W`` the shared variables, ``H`` the Hessian of ``Σ αᵢ Lᵢ`` in ``W`` on the
step's batch, ``K + 1`` the number of tasks.

Reference: Shamsian, Navon, Glazer, Kawaguchi, Chechik & Fetaya (2023),
"Auxiliary Learning as an Asymmetric Bargaining Game", ICML 2023; code
AvivSham/auxinash (``methods/weight_methods.py``, ``AuxiNash``;
``methods/auxinash/hyperstep.py``; ``implicit_diff/implicit_diff.py``; the
NYUv2 trainer). Departures (docs/learned_weighting.md): the bargaining
solution is solved to convergence by damped Newton steps (the reference: at
most 20 warm-started cvxpy/ECOS steps); the hyper-step's Hessian and task
gradients are those of the step's own batch before its update (the
reference draws a fresh training batch after the update); the meta batch is
a held-out split by default (the reference's is the training set).
"""

import keras
from keras import ops

from keras_aux.censoring.aggregation.censor import (
    scale_vector,
    task_gramian,
    task_layout,
    weighted_task_sum,
)
from keras_aux.censoring.aggregation.solvers import solve_power_equation
from keras_aux.censoring.base import Censor, check_gradients, sum_of_products
from keras_aux.learned.metabalance import PACKAGE, check_task_count, validate_num_auxiliary


def shared_variables(primary, auxiliary):
    """The indices of the variables the primary task and at least one auxiliary task reach."""
    return [
        v
        for v, p in enumerate(primary)
        if p is not None and any(task[v] is not None for task in auxiliary)
    ]


def power_jacobian(gramian, alpha, powers):
    """``∂α/∂c = (G + diag(c / α²))⁻¹ diag(1 / α)``: the implicit derivative of
    ``G α − c / α = 0`` (row ``i``: ``αᵢ``, column ``j``: ``cⱼ``)."""
    system = gramian + ops.diag(powers / ops.square(alpha))
    return ops.linalg.solve(system, ops.diag(1.0 / alpha))


def _positive(value, name, allow_zero=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"`{name}` must be a number; got {value!r}.")
    if not (value >= 0 if allow_zero else value > 0):
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"`{name}` must be {bound}; got {value!r}.")
    return float(value)


def _count(value, name, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"`{name}` must be an integer >= {minimum}; got {value!r}.")
    return value


@keras.saving.register_keras_serializable(package=PACKAGE)
class AuxiNash(Censor):
    """AuxiNash (Shamsian et al., ICML 2023, "Auxiliary Learning as an
    Asymmetric Bargaining Game"): Nash-MTL weights with learned asymmetric
    bargaining powers.

    Each step descends ``Σᵢ αᵢ gᵢ`` (``g_0`` the primary gradient, ``g_k =
    λ_k a_k``) with ``αᵢ (Gα)ᵢ = cᵢ`` on the shared variables' Gram matrix
    ``G``; every ``update_every`` steps the powers ``c`` take a clipped SGD
    step with momentum on the primary loss of a meta batch, differentiated
    implicitly through the model's training (see the module docstring).

    Pass it as ``AuxiliaryModel.compile(censoring=AuxiNash(num_auxiliary=K))``
    and train on data carrying a meta batch of the primary task beside every
    training batch: ``keras_aux.models.with_meta_batches(train, meta=held_out)``
    with a held-out split (the default of this library); the reference's is
    the training set itself (``with_meta_batches(train)``, reshuffled), on
    which the meta objective measures how well the primary task *fits* rather
    than how well it generalises. The Nash solution is invariant to each
    row's scale, so the λ's change ``α`` but not the update.

    Args:
        num_auxiliary: the number K of auxiliary tasks.
        update_every: steps between two hyper-steps of the powers (25).
        learning_rate: the powers' SGD learning rate (5e-3).
        momentum: its momentum (0.9, PyTorch's rule ``m ← μ m + d``).
        clip_norm: the hypergradient's norm is clipped to it (1).
        neumann_terms: ``J``, terms of the Neumann series after the first (3).
        neumann_learning_rate: ``η`` of the Neumann series (1e-4).
        min_power: the powers' floor before they are rescaled to sum K + 1 (1e-4).
        max_norm: the update's norm on the shared variables is clipped to it
            (1, as the reference's Nash-MTL; 0: no clipping).
        iterations: damped Newton steps of the bargaining solver (60).
        regularization: its relative ridge (1e-9).

    Logs ``primary_auxinash_power`` / ``primary_auxinash_weight`` and
    ``<auxiliary name>_auxinash_power`` / ``<auxiliary name>_auxinash_weight``:
    each task's power ``cᵢ`` and weight ``αᵢ`` after the step.
    See docs/learned_weighting.md.
    """

    uses_reference = False
    #: The train step brings a meta batch (`TaskData.meta`) and runs the hyper-step.
    needs_meta_batch = True

    def __init__(
        self,
        num_auxiliary=1,
        update_every=25,
        learning_rate=5e-3,
        momentum=0.9,
        clip_norm=1.0,
        neumann_terms=3,
        neumann_learning_rate=1e-4,
        min_power=1e-4,
        max_norm=1.0,
        iterations=60,
        regularization=1e-9,
    ):
        self.num_auxiliary = validate_num_auxiliary(num_auxiliary)
        self.update_every = _count(update_every, "update_every", 1)
        self.learning_rate = _positive(learning_rate, "learning_rate")
        self.momentum = _positive(momentum, "momentum", allow_zero=True)
        if self.momentum >= 1.0:
            raise ValueError(f"`momentum` must be in [0, 1); got {momentum!r}.")
        self.clip_norm = _positive(clip_norm, "clip_norm")
        self.neumann_terms = _count(neumann_terms, "neumann_terms", 0)
        self.neumann_learning_rate = _positive(neumann_learning_rate, "neumann_learning_rate")
        self.min_power = _positive(min_power, "min_power")
        self.max_norm = _positive(max_norm, "max_norm", allow_zero=True)
        self.iterations = _count(iterations, "iterations", 1)
        self.regularization = _positive(regularization, "regularization", allow_zero=True)

    #: The variables the Gram matrix, the clipping and the hyper-step cover.
    shared_variables = staticmethod(shared_variables)

    @property
    def num_tasks(self):
        return 1 + self.num_auxiliary

    def init(self, variables):
        """The powers (1, Nash-MTL's), their momentum (0), the step counter (0),
        the last weights α (1) and Gram matrix (identity)."""
        del variables
        n = self.num_tasks
        return {
            "powers": ops.ones((n,), "float32"),
            "momentum": ops.zeros((n,), "float32"),
            "step": ops.zeros((), "int32"),
            "alpha": ops.ones((n,), "float32"),
            "gram": ops.eye(n, dtype="float32"),
        }

    def _rows(self, primary, auxiliary, weights):
        shared = shared_variables(primary, auxiliary)
        if not shared:
            raise ValueError(
                "AuxiNash bargains over the variables the primary task shares with the auxiliary "
                "tasks, and no auxiliary task reaches a variable the primary task reaches."
            )
        tasks = [list(primary)] + [list(task) for task in auxiliary]
        return [[g if v in shared else None for v, g in enumerate(task)] for task in tasks]

    def update(self, primary, auxiliary, weights, state, reference=None):
        """``Σᵢ αᵢ gᵢ`` (see the class), and the state with the new α, Gram
        matrix and step count; the powers move in `meta_update`."""
        del reference
        weights = check_gradients(primary, auxiliary, weights)
        check_task_count("AuxiNash", self.num_auxiliary, auxiliary)
        # The Gramian path (docs/aggregation.md): G one variable at a time and each shared
        # variable's Σᵢ αᵢ λᵢ gᵢ, with no (K+1) × P matrix of flattened gradients.
        rows = self._rows(primary, auxiliary, weights)
        scales = [None] + list(weights)
        layout, _ = task_layout(rows)
        gram = task_gramian(rows, scales, layout, "float32")
        # A non-finite step is not applied (its state is dropped), but TensorFlow's
        # linear solves raise on it: they see the identity instead.
        gram = ops.where(ops.all(ops.isfinite(gram)), gram, ops.eye(self.num_tasks))
        alpha = solve_power_equation(
            gram, 1.0, self.regularization, self.iterations, powers=state["powers"]
        )
        out = weighted_task_sum(rows, alpha * scale_vector(scales, "float32"), layout, "float32")
        shared = set(layout[1])
        if self.max_norm > 0:
            norm = ops.sqrt(sum(ops.sum(ops.square(ops.cast(out[v], "float32"))) for v in shared))
            factor = ops.where(norm > self.max_norm, self.max_norm / ops.maximum(norm, 1e-30), 1.0)
            out = [g if g is None else ops.cast(factor, g.dtype) * g for g in out]
        tasks = [list(primary)] + [list(task) for task in auxiliary]
        scales = [1.0] + list(weights)
        for v in range(len(primary)):
            if v in shared:
                continue
            for i, (task, scale) in enumerate(zip(tasks, scales)):
                g = task[v]
                if g is None:
                    continue
                term = ops.cast(alpha[i] * ops.cast(scale, "float32"), g.dtype) * g
                out[v] = term if out[v] is None else out[v] + term
        new_state = {
            "powers": state["powers"],
            "momentum": state["momentum"],
            "step": state["step"] + 1,
            "alpha": alpha,
            "gram": gram,
        }
        return out, new_state

    def meta_due(self, state):
        """Whether the step that produced ``state`` (counted from 1) ends with a
        hyper-step: every ``update_every``-th, as the reference's
        ``(step + 1) % hypergrad_every == 0``."""
        return ops.equal(ops.mod(state["step"], self.update_every), 0)

    def training_weights(self, state, weights):
        """The weight of each task's loss in the objective the model descends,
        ``αᵢ λᵢ`` (``λ_0 = 1``): what the hyper-step's Hessian differentiates."""
        scales = ops.stack([ops.ones((), "float32")] + [ops.cast(w, "float32") for w in weights])
        return state["alpha"] * scales

    def task_products(self, primary, auxiliary, weights, vector):
        """``hᵢ = ⟨gᵢ, q⟩`` over the shared variables (``vector``: ``q``, one
        tensor per variable, None off the shared ones)."""
        tasks = [list(primary)] + [list(task) for task in auxiliary]
        scales = [1.0] + list(weights)
        products = []
        for task, scale in zip(tasks, scales):
            pairs = [(g, q) for g, q in zip(task, vector) if g is not None and q is not None]
            if not pairs:
                products.append(ops.zeros((), "float32"))
                continue
            dot = sum_of_products(
                [ops.cast(g, "float32") for g, _ in pairs],
                [ops.cast(q, "float32") for _, q in pairs],
            )
            products.append(ops.cast(scale, "float32") * dot)
        return ops.stack(products)

    def meta_update(self, state, products):
        """The powers and their momentum after one hyper-step from ``products``
        (`task_products` of the Neumann sum): ``{"powers", "momentum"}``; both
        unchanged if the step is not finite."""
        powers, velocity = state["powers"], state["momentum"]
        jacobian = power_jacobian(state["gram"], state["alpha"], powers)
        hypergradient = -ops.matmul(ops.cast(products, "float32")[None, :], jacobian)[0]
        norm = ops.sqrt(ops.sum(ops.square(hypergradient)))
        # torch.nn.utils.clip_grad_norm_'s rule.
        hypergradient = hypergradient * ops.minimum(1.0, self.clip_norm / (norm + 1e-6))
        new_velocity = self.momentum * velocity + hypergradient
        new_powers = ops.maximum(powers - self.learning_rate * new_velocity, self.min_power)
        new_powers = new_powers * (self.num_tasks / ops.sum(new_powers))
        finite = ops.all(ops.isfinite(new_powers)) & ops.all(ops.isfinite(new_velocity))
        return {
            "powers": ops.where(finite, new_powers, powers),
            "momentum": ops.where(finite, new_velocity, velocity),
        }

    def logs(self, state, auxiliary_names):
        """Each task's power ``cᵢ`` and weight ``αᵢ`` (``primary_…`` for the primary)."""
        logs = {}
        for i, name in enumerate(["primary", *auxiliary_names]):
            logs[f"{name}_auxinash_power"] = state["powers"][i]
            logs[f"{name}_auxinash_weight"] = state["alpha"][i]
        return logs

    def get_config(self):
        return {
            "num_auxiliary": self.num_auxiliary,
            "update_every": self.update_every,
            "learning_rate": self.learning_rate,
            "momentum": self.momentum,
            "clip_norm": self.clip_norm,
            "neumann_terms": self.neumann_terms,
            "neumann_learning_rate": self.neumann_learning_rate,
            "min_power": self.min_power,
            "max_norm": self.max_norm,
            "iterations": self.iterations,
            "regularization": self.regularization,
        }
