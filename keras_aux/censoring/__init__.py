"""Censoring the auxiliary gradient.

Each method is a `Censor` (``init(variables) -> state``, ``update(primary,
auxiliary, weights, state) -> (gradients, state)``, pure, in ``keras.ops``):

- the six modes of `keras_aux.censoring.modes` (``"single_task"``,
  ``"multitask"``, ``"unweighted_cosine"``, ``"weighted_cosine"``,
  ``"projection"``, ``"parameter_wise"``), global or per variable;
- `MovingAverage`: any method judged against a moving average of the
  primary gradient;
- `PCGrad`: symmetric projection between auxiliary tasks, then any method
  against the primary;
- the gradient aggregators of `keras_aux.censoring.aggregation` (UPGrad,
  MGDA, CAGrad, Nash-MTL, ...), which treat the primary task as one more
  task: ``aggregate(name, matrix)`` on a matrix of task gradients, and
  `Aggregated` as a method for a model (``compile(censoring="upgrad")``);
  and their primary-aware forms, `AuxiliaryAggregated` (aggregate the
  auxiliary gradients, then censor the result against the primary) and
  `AsymmetricGradVac`.

``get(name_or_instance, granularity=..., ema_alpha=...)`` resolves what
``AuxiliaryModel.compile(censoring=...)`` accepts. ``combine`` / ``censor``
are the same math as plain functions on gradient lists.

References: Du et al. 2018 (arXiv:1812.02224); Lemaire 2018; Yu et al. 2020
(PCGrad). See docs/censoring.md.
"""

from keras_aux.censoring import aggregation
from keras_aux.censoring.aggregation import (
    Aggregated,
    AsymmetricGradVac,
    AuxiliaryAggregated,
    aggregate,
)
from keras_aux.censoring.base import (
    GLOBAL,
    GRANULARITIES,
    PER_VARIABLE,
    Censor,
    check_gradients,
    validate_alpha,
    validate_granularity,
)
from keras_aux.censoring.functions import (
    MODES,
    MULTITASK,
    PARAMETER_WISE,
    PROJECTION,
    SINGLE_TASK,
    UNWEIGHTED_COSINE,
    WEIGHTED_COSINE,
    censor,
    combine,
    cosine_similarity,
    validate_mode,
)
from keras_aux.censoring.modes import (
    MODE_CLASSES,
    GradientCensor,
    Multitask,
    ParameterWise,
    Projection,
    SingleTask,
    UnweightedCosine,
    WeightedCosine,
)
from keras_aux.censoring.moving_average import MovingAverage, ema_update
from keras_aux.censoring.pcgrad import PCGrad, project_conflicts

# "pcgrad" is the auxiliary-only PCGrad above; the symmetric aggregator is
# `Aggregated("pcgrad")`. An aggregator with one state entry per task
# (GradVac) needs the task count: `get` takes it as ``num_auxiliary`` (a model's
# `compile` passes it), so it is left out of NAMES, which take none.
_PER_TASK_STATE = tuple(n for n in aggregation.NAMES if aggregation.get(n).needs_num_rows)
AGGREGATOR_NAMES = tuple(n for n in aggregation.NAMES if n != "pcgrad" and n not in _PER_TASK_STATE)
NAMES = (*MODES, "pcgrad", *AGGREGATOR_NAMES)


def get(identifier, granularity=None, ema_alpha=1.0, num_auxiliary=None):
    """The `Censor` for ``identifier``: a name, an instance, or a serialized config.

    Args:
        identifier: one of ``NAMES`` (the six modes, ``"pcgrad"`` and the
            aggregators of ``AGGREGATOR_NAMES``, as `Aggregated`), a `Censor`
            instance (returned as is, a user's own subclass included), or a
            dict from ``keras.saving.serialize_keras_object``.
        granularity: for a mode given by name: ``"global"`` (default) or
            ``"per_variable"``. Not accepted with an instance (set it there)
            nor with an aggregator (it aggregates whole gradients).
        ema_alpha: α in (0, 1]; below 1 the method is wrapped in
            `MovingAverage` (the reference becomes the moving average of the
            primary gradient).
        num_auxiliary: the number of auxiliary tasks K, needed by the
            aggregators that keep one state entry per task (``"gradvac"``:
            `Aggregated("gradvac", num_auxiliary=K)`); `AuxiliaryModel.compile`
            passes it. Ignored otherwise.

    Returns:
        A `Censor`.
    """
    import keras

    ema_alpha = validate_alpha(ema_alpha)
    if isinstance(identifier, dict):
        identifier = keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, Censor):
        if granularity is not None:
            raise ValueError(
                f"`granularity` is set on the censoring instance itself; got "
                f"granularity={granularity!r} with {identifier!r}."
            )
        censor_ = identifier
    elif isinstance(identifier, str) and identifier in _PER_TASK_STATE:
        if granularity is not None:
            raise ValueError(
                f"`granularity` does not apply to the aggregator {identifier!r}, which "
                f"aggregates whole gradients; got granularity={granularity!r}."
            )
        if num_auxiliary is None:
            raise ValueError(
                f"The aggregator {identifier!r} keeps one state entry per task: pass "
                f"num_auxiliary=K, or censoring=keras_aux.censoring.Aggregated({identifier!r}, "
                "num_auxiliary=K) with K the number of auxiliary tasks."
            )
        censor_ = Aggregated(identifier, num_auxiliary=num_auxiliary)
    elif isinstance(identifier, str) and identifier in AGGREGATOR_NAMES:
        if granularity is not None:
            raise ValueError(
                f"`granularity` does not apply to the aggregator {identifier!r}, which "
                f"aggregates whole gradients; got granularity={granularity!r}."
            )
        censor_ = Aggregated(identifier)
    elif isinstance(identifier, str):
        granularity = validate_granularity(GLOBAL if granularity is None else granularity)
        if identifier in MODE_CLASSES:
            censor_ = MODE_CLASSES[identifier](granularity)
        elif identifier == "pcgrad":
            censor_ = PCGrad(Multitask(granularity))
        else:
            raise ValueError(
                f"Unknown censoring {identifier!r}. Expected one of {list(NAMES)}, or an "
                "instance of keras_aux.censoring.Censor."
            )
    else:
        raise ValueError(
            f"`censoring` must be a name in {list(NAMES)} or a keras_aux.censoring.Censor "
            f"instance; got {identifier!r}."
        )
    if ema_alpha < 1.0:
        censor_ = MovingAverage(censor_, ema_alpha)
    return censor_


__all__ = [
    "AGGREGATOR_NAMES",
    "GLOBAL",
    "GRANULARITIES",
    "MODES",
    "MODE_CLASSES",
    "MULTITASK",
    "NAMES",
    "PARAMETER_WISE",
    "PER_VARIABLE",
    "PROJECTION",
    "SINGLE_TASK",
    "UNWEIGHTED_COSINE",
    "WEIGHTED_COSINE",
    "Aggregated",
    "AsymmetricGradVac",
    "AuxiliaryAggregated",
    "Censor",
    "GradientCensor",
    "MovingAverage",
    "Multitask",
    "PCGrad",
    "aggregate",
    "aggregation",
    "ParameterWise",
    "Projection",
    "SingleTask",
    "UnweightedCosine",
    "WeightedCosine",
    "censor",
    "check_gradients",
    "combine",
    "cosine_similarity",
    "ema_update",
    "get",
    "project_conflicts",
    "validate_alpha",
    "validate_granularity",
    "validate_mode",
]
