"""Aggregators as censoring methods (`keras_aux.censoring.Censor`).

`Aggregated` treats the primary task as one more task: the rows are
``[p, λ_1 a_1, ..., λ_K a_K]``, each the concatenation of its gradients
flattened over the variables (None as zeros); the aggregator maps them to one
vector, which is split back into one gradient per variable (None where every
row was None). With ``primary_weight`` the aggregators that take a preference
vector (UPGrad, DualProj, Aligned-MTL, ConFIG) weight the primary row apart.

`AuxiliaryAggregated` is primary-aware: it aggregates the auxiliary rows
``[λ_1 a_1, ..., λ_K a_K]`` alone, then censors the result against the primary
gradient with a censoring mode and adds the primary gradient, as
`keras_aux.censoring.PCGrad(Projection())` composes.

Stateful aggregators (GradVac's cosine targets, the random methods' counters)
keep their state in the `Censor` state, which `keras_aux.AuxiliaryModel`
keeps as training state.

See docs/aggregation.md.
"""

import math

import keras
import numpy as np
from keras import ops

from keras_aux.censoring.aggregation.base import PACKAGE, GramianWeightedAggregator
from keras_aux.censoring.base import Censor, check_gradients


def task_layout(tasks):
    """Where the tasks' gradients go, and the dtype they are combined in.

    Args:
        tasks: list of gradient lists (one tensor or None per variable).

    Returns:
        ``(layout, dtype)``: ``layout`` is ``(num_variables, used, shapes,
        dtypes)``, the indices of the variables some task reaches with the
        shape and dtype of their first gradient; ``dtype`` is float64 when
        every such gradient is float64, float32 otherwise.
    """
    num_variables = len(tasks[0]) if tasks else 0
    used, shapes, dtypes = [], [], []
    for v in range(num_variables):
        present = [task[v] for task in tasks if task[v] is not None]
        if present:
            used.append(v)
            shapes.append(tuple(present[0].shape))
            dtypes.append(present[0].dtype)
    dtype = (
        "float64"
        if used and all(keras.backend.standardize_dtype(d) == "float64" for d in dtypes)
        else "float32"
    )
    return (num_variables, used, shapes, dtypes), dtype


def flatten_tasks(tasks, scales):
    """The matrix whose rows are the tasks' gradients flattened over the variables.

    Args:
        tasks: list of gradient lists (one tensor or None per variable).
        scales: one factor per task (None: unscaled).

    Returns:
        ``(matrix, layout)``: the ``len(tasks) × n`` matrix over the variables
        some task reaches (None as zeros), in `task_layout`'s dtype, or None
        when no task reaches a variable; ``layout`` is what `split_vector`
        needs.
    """
    layout, dtype = task_layout(tasks)
    _, used, shapes, _ = layout
    if not used:
        return None, layout
    rows = []
    for task, scale in zip(tasks, scales):
        parts = []
        for v, shape in zip(used, shapes):
            size = math.prod(shape)
            g = task[v]
            if g is None:
                parts.append(ops.zeros((size,), dtype=dtype))
                continue
            g = ops.reshape(ops.cast(g, dtype), (size,))
            if scale is not None:
                g = ops.cast(scale, dtype) * g
            parts.append(g)
        rows.append(ops.concatenate(parts, axis=0))
    return ops.stack(rows, axis=0), layout


def split_vector(vector, layout):
    """One gradient per variable from a vector laid out by `flatten_tasks`
    (None where no task reached the variable), each in its gradients' dtype."""
    num_variables, used, shapes, dtypes = layout
    out = [None] * num_variables
    offset = 0
    for v, shape, dtype in zip(used, shapes, dtypes):
        size = math.prod(shape)
        out[v] = ops.cast(ops.reshape(vector[offset : offset + size], shape), dtype)
        offset += size
    return out


def aggregate_flat(aggregator, tasks, scales, state):
    """The aggregation of the tasks' scaled gradients through the flat matrix.

    `flatten_tasks`, ``aggregator.update`` on the ``len(tasks) × n`` matrix,
    `split_vector`: what every aggregator supports.

    Returns:
        ``(gradients, state)``: one gradient per variable (None where no task
        reaches it) and the aggregator's new state.
    """
    matrix, layout = flatten_tasks(tasks, scales)
    if matrix is None:
        return [None] * layout[0], state
    vector, state = aggregator.update(matrix, state)
    return split_vector(vector, layout), state


def task_gramian(tasks, scales, layout, dtype):
    """``G = Σ_v J_v J_vᵀ`` of the scaled tasks, one variable at a time.

    ``J_v`` stacks the gradients of variable ``v`` of the tasks that reach it
    (a task that does not adds nothing to ``G``), so only one variable's block
    exists at a time; the scales enter as ``G_ij = s_i s_j (J Jᵀ)_ij``.
    """
    _, used, _, _ = layout
    num_tasks = len(tasks)
    total = ops.zeros((num_tasks, num_tasks), dtype=dtype)
    for v in used:
        rows = [i for i, task in enumerate(tasks) if task[v] is not None]
        block = ops.stack([ops.reshape(ops.cast(tasks[i][v], dtype), (-1,)) for i in rows])
        part = ops.matmul(block, ops.transpose(block))
        if len(rows) < num_tasks:
            # Placed at rows × rows of the K × K Gramian: Sᵀ part S, S the row selector.
            select = ops.convert_to_tensor(np.eye(num_tasks)[rows], dtype=dtype)
            part = ops.matmul(ops.transpose(select), ops.matmul(part, select))
        total = total + part
    scale = scale_vector(scales, dtype)
    return total * scale[:, None] * scale[None, :]


def scale_vector(scales, dtype):
    """The tasks' scales as one vector (1 where a scale is None)."""
    return ops.stack([ops.cast(1.0 if s is None else s, dtype) for s in scales])


def aggregate_by_gramian(aggregator, tasks, scales, state):
    """The aggregation of a `GramianWeightedAggregator` without the flat matrix.

    ``G`` from `task_gramian` (in the dtype `flatten_tasks` would use), the
    weights from ``aggregator.gramian_weights(G, state)``, and each variable's
    result ``Σ_k w_k s_k g_{k,v}`` over the tasks that reach it, cast to its
    gradients' dtype: `aggregate_flat`'s numbers (up to the order of the
    sums) without its ``len(tasks) × n`` matrix, its copies, or the split.

    Returns:
        ``(gradients, state)`` as `aggregate_flat`.
    """
    layout, dtype = task_layout(tasks)
    num_variables, used, shapes, dtypes = layout
    if not used:
        return [None] * num_variables, state
    w, state = aggregator.gramian_weights(task_gramian(tasks, scales, layout, dtype), state)
    coefficients = ops.cast(w, dtype) * scale_vector(scales, dtype)
    return weighted_task_sum(tasks, coefficients, layout, dtype), state


def weighted_task_sum(tasks, coefficients, layout, dtype):
    """Each variable's ``Σ_k c_k g_{k,v}`` over the tasks that reach it, computed in
    ``dtype`` and cast to its gradients' dtype (None where no task reaches it)."""
    num_variables, used, shapes, dtypes = layout
    out = [None] * num_variables
    for v, shape, variable_dtype in zip(used, shapes, dtypes):
        total = None
        for i, task in enumerate(tasks):
            if task[v] is None:
                continue
            term = coefficients[i] * ops.reshape(ops.cast(task[v], dtype), shape)
            total = term if total is None else total + term
        out[v] = ops.cast(total, variable_dtype)
    return out


def aggregate_tasks(aggregator, tasks, scales, state):
    """`aggregate_by_gramian` for a `GramianWeightedAggregator`, else `aggregate_flat`."""
    if isinstance(aggregator, GramianWeightedAggregator):
        return aggregate_by_gramian(aggregator, tasks, scales, state)
    return aggregate_flat(aggregator, tasks, scales, state)


def _check_task_count(owner, num_auxiliary, auxiliary):
    if num_auxiliary is not None and len(auxiliary) != num_auxiliary:
        raise ValueError(
            f"{owner} was built for {num_auxiliary} auxiliary tasks; got {len(auxiliary)}."
        )


def _resolve_aggregator(method, options):
    from keras_aux.censoring.aggregation import get

    if isinstance(method, dict):
        method = keras.saving.deserialize_keras_object(method)
    return get(method, **options)


@keras.saving.register_keras_serializable(package="keras_aux")
class Aggregated(Censor):
    """A censoring method that aggregates the primary and weighted auxiliary gradients.

    Args:
        method: an aggregator name (see
            `keras_aux.censoring.aggregation.NAMES`), an `Aggregator`, or a
            serialized aggregator.
        num_auxiliary: the number K of auxiliary tasks. Needed by aggregators
            whose state has one entry per row (GradVac; GradDrop with
            leaks), since ``init`` sees only the variables.
        primary_weight: None (default: the aggregator's own preference, the
            symmetric form) or a positive float ``w``: the preference vector
            of an aggregator that takes one (UPGrad, DualProj, Aligned-MTL,
            ConFIG) becomes ``[w, 1, ..., 1]`` on the rows
            ``[p, λ_1 a_1, ...]``. With ``w = 1`` and no conflict, UPGrad and
            DualProj give ``p + Σ_k λ_k a_k``, the update of every censoring
            mode when nothing conflicts.
        **options: constructor options when ``method`` is a name.

    Example: ``AuxiliaryModel.compile(censoring=Aggregated("upgrad"))``.

    References: the aggregators' papers (docs/aggregation.md); the framing of
    multi-task gradients as a matrix to aggregate, and the preference vector,
    follow Quinton & Rey (2024), "Jacobian Descent for Multi-Objective
    Optimization".
    """

    needs_auxiliary_gradients = True
    is_linear = False
    uses_reference = False

    def __init__(self, method="upgrad", num_auxiliary=None, primary_weight=None, **options):
        self.aggregator = _resolve_aggregator(method, options)
        self.num_auxiliary = None if num_auxiliary is None else int(num_auxiliary)
        if self.aggregator.needs_num_rows and self.num_auxiliary is None:
            raise ValueError(
                f"{self.aggregator!r} keeps a state with one entry per task: pass "
                "`num_auxiliary` (the number of auxiliary tasks) to Aggregated."
            )
        if primary_weight is not None:
            primary_weight = float(primary_weight)
            if not primary_weight > 0.0:
                raise ValueError(f"`primary_weight` must be positive; got {primary_weight}.")
            if not hasattr(self.aggregator, "pref_vector"):
                raise ValueError(
                    f"`primary_weight` sets a preference vector, which {self.aggregator!r} does "
                    "not take; the aggregators that do: UPGrad, DualProj, AlignedMTL, ConFIG."
                )
            if self.aggregator.pref_vector is not None:
                raise ValueError(
                    f"Both `primary_weight={primary_weight}` and a `pref_vector` "
                    f"{self.aggregator.pref_vector} were given: pass one."
                )
        self.primary_weight = primary_weight

    @property
    def method(self):
        return self.aggregator

    def aggregator_for(self, num_auxiliary):
        """The aggregator applied to ``1 + num_auxiliary`` rows: with
        ``primary_weight``, a copy whose preference vector is ``[w, 1, ..., 1]``."""
        if self.primary_weight is None:
            return self.aggregator
        config = dict(self.aggregator.get_config())
        config["pref_vector"] = [self.primary_weight] + [1.0] * num_auxiliary
        return type(self.aggregator).from_config(config)

    def init(self, variables):
        """The aggregator's state for ``1 + num_auxiliary`` rows."""
        del variables
        rows = None if self.num_auxiliary is None else 1 + self.num_auxiliary
        return self.aggregator.init(rows)

    def update(self, primary, auxiliary, weights, state, reference=None):
        """Aggregates ``[p, λ_1 a_1, ..., λ_K a_K]``; ``reference`` is not used."""
        weights = check_gradients(primary, auxiliary, weights, reference)
        _check_task_count("Aggregated", self.num_auxiliary, auxiliary)
        tasks = [list(primary)] + [list(task) for task in auxiliary]
        aggregator = self.aggregator_for(len(auxiliary))
        return aggregate_tasks(aggregator, tasks, [None] + list(weights), state)

    def get_config(self):
        return {
            "method": keras.saving.serialize_keras_object(self.aggregator),
            "num_auxiliary": self.num_auxiliary,
            "primary_weight": self.primary_weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["method"] = keras.saving.deserialize_keras_object(config["method"])
        return cls(**config)

    def __repr__(self):
        return (
            f"Aggregated({self.aggregator!r}, num_auxiliary={self.num_auxiliary!r}, "
            f"primary_weight={self.primary_weight!r})"
        )


@keras.saving.register_keras_serializable(package=PACKAGE)
class AuxiliaryAggregated(Censor):
    """Aggregates the auxiliary gradients, then censors the result against the primary.

    The rows ``[λ_1 a_1, ..., λ_K a_K]`` (flattened as in `Aggregated`) are
    aggregated into one auxiliary gradient ``d``; the update is
    ``p + G(d, m)``, ``G`` the censoring mode ``censor`` and ``m`` the
    primary gradient (or the ``reference``, e.g. its moving average). With
    ``censor="projection"`` the update never opposes the primary gradient:
    ``⟨update − p, m⟩ = max(⟨d, m⟩, 0) ≥ 0`` over the variables ``m`` has
    (docs/aggregation.md, "Primary-aware forms"). For one auxiliary task and
    an aggregator that returns a single row unchanged (UPGrad, DualProj,
    MGDA, PCGrad, ...), it is the censoring mode itself.

    Args:
        method: an aggregator name, an `Aggregator` or a serialized one.
        censor: the method applied to ``d`` against the primary gradient (a
            `Censor` or a name; default ``"projection"``); it sees one
            auxiliary task of weight 1.
        num_auxiliary: the number K of auxiliary tasks; needed by the
            aggregators whose state has one entry per row (GradVac; GradDrop
            with leaks).
        **options: constructor options when ``method`` is a name.

    Example: ``compile(censoring=AuxiliaryAggregated("upgrad", "projection"))``.

    References: the aggregators' papers (docs/aggregation.md); the
    composition follows Yu et al. (2020), "Gradient Surgery for Multi-Task
    Learning" (as `keras_aux.censoring.PCGrad`) and the projection of
    Lemaire (2018), "Auxiliary tasks in deep learning: projecting the
    auxiliary gradient".
    """

    needs_auxiliary_gradients = True
    is_linear = False

    def __init__(self, method="upgrad", censor="projection", num_auxiliary=None, **options):
        from keras_aux.censoring import get

        self.aggregator = _resolve_aggregator(method, options)
        self.censor = get(censor)
        self.num_auxiliary = None if num_auxiliary is None else int(num_auxiliary)
        if self.aggregator.needs_num_rows and self.num_auxiliary is None:
            raise ValueError(
                f"{self.aggregator!r} keeps a state with one entry per task: pass "
                "`num_auxiliary` (the number of auxiliary tasks) to AuxiliaryAggregated."
            )
        if not self.censor.needs_auxiliary_gradients:
            raise ValueError(
                "AuxiliaryAggregated needs a method that uses the auxiliary gradients; got "
                f"{self.censor!r}."
            )

    @property
    def method(self):
        return self.aggregator

    @property
    def uses_reference(self):
        return self.censor.uses_reference

    def init(self, variables):
        """The aggregator's state (for ``num_auxiliary`` rows) and the censor's."""
        return {
            "aggregator": self.aggregator.init(self.num_auxiliary),
            "censor": self.censor.init(variables),
        }

    def update(self, primary, auxiliary, weights, state, reference=None):
        """Aggregates ``[λ_1 a_1, ...]`` into ``d``, then returns the censor's ``p + G(d, m)``."""
        weights = check_gradients(primary, auxiliary, weights, reference)
        _check_task_count("AuxiliaryAggregated", self.num_auxiliary, auxiliary)
        combined, aggregator_state = aggregate_tasks(
            self.aggregator, [list(task) for task in auxiliary], list(weights), state["aggregator"]
        )
        grads, censor_state = self.censor.update(
            primary, [combined], [1.0], state["censor"], reference=reference
        )
        return grads, {"aggregator": aggregator_state, "censor": censor_state}

    def get_config(self):
        return {
            "method": keras.saving.serialize_keras_object(self.aggregator),
            "censor": keras.saving.serialize_keras_object(self.censor),
            "num_auxiliary": self.num_auxiliary,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["method"] = keras.saving.deserialize_keras_object(config["method"])
        config["censor"] = keras.saving.deserialize_keras_object(config["censor"])
        return cls(**config)

    def __repr__(self):
        return (
            f"AuxiliaryAggregated({self.aggregator!r}, censor={self.censor!r}, "
            f"num_auxiliary={self.num_auxiliary!r})"
        )
