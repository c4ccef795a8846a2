"""`Aggregated`: any aggregator as a censoring method (`keras_aux.censoring.Censor`).

The rows are ``[p, λ_1 a_1, ..., λ_K a_K]``, each the concatenation of its
gradients flattened over the variables (None as zeros); the aggregator maps
them to one vector, which is split back into one gradient per variable
(None where every row was None). The primary task is one more task here:
the aggregators treat all rows alike. Stateful aggregators (GradVac's cosine
targets, the random methods' counters) keep their state in the `Censor`
state, which `keras_aux.AuxiliaryModel` keeps as training state.

See docs/aggregation.md.
"""

import math

import keras
from keras import ops

from keras_aux.censoring.base import Censor, check_gradients


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
        **options: constructor options when ``method`` is a name.

    Example: ``AuxiliaryModel.compile(censoring=Aggregated("upgrad"))``.

    References: the aggregators' papers (docs/aggregation.md); the framing of
    multi-task gradients as a matrix to aggregate follows Quinton & Rey
    (2024), "Jacobian Descent for Multi-Objective Optimization".
    """

    needs_auxiliary_gradients = True
    is_linear = False
    uses_reference = False

    def __init__(self, method="upgrad", num_auxiliary=None, **options):
        from keras_aux.censoring.aggregation import get

        if isinstance(method, dict):
            method = keras.saving.deserialize_keras_object(method)
        self.aggregator = get(method, **options)
        self.num_auxiliary = None if num_auxiliary is None else int(num_auxiliary)
        if self.aggregator.needs_num_rows and self.num_auxiliary is None:
            raise ValueError(
                f"{self.aggregator!r} keeps a state with one entry per task: pass "
                "`num_auxiliary` (the number of auxiliary tasks) to Aggregated."
            )

    @property
    def method(self):
        return self.aggregator

    def init(self, variables):
        """The aggregator's state for ``1 + num_auxiliary`` rows."""
        del variables
        rows = None if self.num_auxiliary is None else 1 + self.num_auxiliary
        return self.aggregator.init(rows)

    def update(self, primary, auxiliary, weights, state, reference=None):
        """Aggregates ``[p, λ_1 a_1, ..., λ_K a_K]``; ``reference`` is not used."""
        weights = check_gradients(primary, auxiliary, weights, reference)
        if self.num_auxiliary is not None and len(auxiliary) != self.num_auxiliary:
            raise ValueError(
                f"Aggregated was built for {self.num_auxiliary} auxiliary tasks; got "
                f"{len(auxiliary)}."
            )
        tasks = [list(primary)] + [list(task) for task in auxiliary]
        scales = [None] + list(weights)
        used, shapes, dtypes = [], [], []
        for v in range(len(primary)):
            present = [task[v] for task in tasks if task[v] is not None]
            if present:
                used.append(v)
                shapes.append(tuple(present[0].shape))
                dtypes.append(present[0].dtype)
        if not used:
            return [None] * len(primary), state
        dtype = (
            "float64"
            if all(keras.backend.standardize_dtype(d) == "float64" for d in dtypes)
            else "float32"
        )
        sizes = [math.prod(s) for s in shapes]
        rows = []
        for task, scale in zip(tasks, scales):
            parts = []
            for v, size in zip(used, sizes):
                g = task[v]
                if g is None:
                    parts.append(ops.zeros((size,), dtype=dtype))
                    continue
                g = ops.reshape(ops.cast(g, dtype), (size,))
                if scale is not None:
                    g = ops.cast(scale, dtype) * g
                parts.append(g)
            rows.append(ops.concatenate(parts, axis=0))
        matrix = ops.stack(rows, axis=0)
        vector, state = self.aggregator.update(matrix, state)
        out = [None] * len(primary)
        offset = 0
        for v, shape, size, d in zip(used, shapes, sizes, dtypes):
            out[v] = ops.cast(ops.reshape(vector[offset : offset + size], shape), d)
            offset += size
        return out, state

    def get_config(self):
        return {
            "method": keras.saving.serialize_keras_object(self.aggregator),
            "num_auxiliary": self.num_auxiliary,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["method"] = keras.saving.deserialize_keras_object(config["method"])
        return cls(**config)

    def __repr__(self):
        return f"Aggregated({self.aggregator!r}, num_auxiliary={self.num_auxiliary!r})"
