"""The small bases of the gradient aggregators, and the Gramian helpers they share.

An aggregator maps a matrix ``J`` (``K × n``: one task gradient per row) to
one vector of length ``n``. Like `keras_aux.censoring.Censor` (and optax), it
is a pair of pure functions with explicit state:

- ``init(num_rows) -> state`` (``()`` for the stateless methods);
- ``update(matrix, state) -> (vector, new_state)``.

``aggregator(matrix)`` is ``update(matrix, init(K))[0]``: one call from a fresh
state, what TorchJD's ``Aggregator()(matrix)`` returns.

Most methods are a *weighting*: ``vector = wᵀ J`` with ``w`` computed from
``J`` (`WeightedAggregator`), usually from its Gramian ``G = J Jᵀ`` alone
(`GramianWeightedAggregator`): those implement ``gramian_weights(G, state)``,
so a caller that already has ``G`` (e.g. summed over variables) never needs
``J`` itself. This is TorchJD's ``Weighting`` / ``GramianWeightedAggregator``
split (Quinton & Rey 2024, "Jacobian Descent for Multi-Objective
Optimization", arXiv:2406.16232).

Everything is written in ``keras.ops`` with fixed iteration counts, so it
traces under XLA and runs on every backend. The small solvers run in float32
(float64 when the matrix is float64); the result is cast back to the matrix's
dtype. See docs/aggregation.md.
"""

import keras
from keras import ops

# Registered as "keras_aux.aggregation>Name": the class names (PCGrad, ...)
# would collide with keras_aux.censoring's under the plain "keras_aux" package.
PACKAGE = "keras_aux.aggregation"


def compute_dtype(dtype):
    """The dtype the solvers run in: float64 for float64 input, else float32."""
    return "float64" if keras.backend.standardize_dtype(dtype) == "float64" else "float32"


def check_matrix(matrix):
    """``matrix`` as a tensor, after checking it is 2-D with static shape."""
    matrix = ops.convert_to_tensor(matrix)
    if len(matrix.shape) != 2:
        raise ValueError(
            f"An aggregator takes a matrix (one task gradient per row); got shape "
            f"{tuple(matrix.shape)}."
        )
    if matrix.shape[0] is None:
        raise ValueError("The number of rows (tasks) of the matrix must be static.")
    return matrix


def gramian(matrix):
    """``G = J Jᵀ`` (``K × K``) in the solvers' dtype (`compute_dtype`)."""
    j = ops.cast(matrix, compute_dtype(matrix.dtype))
    return ops.matmul(j, ops.transpose(j))


def normalize(gramian_, eps):
    """``G / trace(G)``, or zeros when ``trace(G) < eps`` (TorchJD's ``normalize``)."""
    trace = ops.trace(gramian_)
    return ops.where(trace < eps, ops.zeros_like(gramian_), gramian_ / ops.maximum(trace, eps))


def regularize(gramian_, eps):
    """``G + eps · I`` (TorchJD's ``regularize``)."""
    return gramian_ + eps * ops.eye(gramian_.shape[0], dtype=gramian_.dtype)


def machine_epsilon(dtype):
    """Machine epsilon of a float dtype."""
    return 2.220446049250313e-16 if compute_dtype(dtype) == "float64" else 1.1920929e-07


def pinv_psd(gramian_, rtol=None):
    """Moore–Penrose pseudo-inverse of a symmetric PSD matrix, by ``eigh``.

    Eigenvalues at most ``rtol · λ_max`` count as zero; ``rtol`` defaults to
    ``K · eps(dtype)``, ``torch.linalg.pinv``'s default for a ``K × K`` matrix.
    Two Newton–Schulz steps (``X ← 2X − XGX``) then polish the result: XLA's
    ``eigh`` (Jacobi) leaves a residual of about 10⁻⁹ relative in float64,
    which the inverse would amplify by the condition number.
    """
    k = gramian_.shape[0]
    if rtol is None:
        rtol = k * machine_epsilon(gramian_.dtype)
    values, vectors = ops.linalg.eigh(gramian_)
    keep = values > rtol * ops.max(values)
    inverse = ops.where(keep, 1.0 / ops.where(keep, values, 1.0), 0.0)
    x = ops.matmul(vectors * inverse[None, :], ops.transpose(vectors))
    for _ in range(2):
        x = 2.0 * x - ops.matmul(x, ops.matmul(gramian_, x))
        x = 0.5 * (x + ops.transpose(x))
    return x


class Aggregator:
    """Base of the aggregators: ``init(num_rows)`` and ``update(matrix, state)``.

    Subclasses implement ``update`` (and ``init`` when stateful), and
    ``get_config`` (constructor arguments) for serialization.

    Reference: the design follows TorchJD's ``Aggregator`` (Quinton & Rey 2024,
    arXiv:2406.16232) with optax-style explicit state.
    """

    #: True when ``update`` draws random numbers (its state then holds the seed).
    randomized = False
    #: True when the state carries information from one call to the next.
    stateful = False
    #: True when ``init`` needs ``num_rows`` (a state with one entry per row).
    needs_num_rows = False

    def init(self, num_rows):
        """The initial state for matrices of ``num_rows`` rows; ``()`` by default."""
        del num_rows
        return ()

    def update(self, matrix, state):
        """``(vector, new_state)``: the aggregation of ``matrix``'s rows."""
        raise NotImplementedError(f"{type(self).__name__} must implement `update`.")

    def __call__(self, matrix):
        """The aggregation of ``matrix`` from a fresh state (TorchJD's ``A(J)``)."""
        matrix = check_matrix(matrix)
        vector, _ = self.update(matrix, self.init(matrix.shape[0]))
        return vector

    def get_config(self):
        """Constructor arguments, JSON-serialisable."""
        return {}

    @classmethod
    def from_config(cls, config):
        """Recreates the aggregator from ``get_config()``."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


class WeightedAggregator(Aggregator):
    """An aggregator ``wᵀ J`` whose weights ``w`` come from the matrix.

    Subclasses implement ``weights(matrix, state) -> (w, new_state)``.
    """

    def weights(self, matrix, state):
        """``(w, new_state)``: one weight per row of ``matrix``."""
        raise NotImplementedError(f"{type(self).__name__} must implement `weights`.")

    def update(self, matrix, state):
        """``wᵀ J`` and the new state."""
        matrix = check_matrix(matrix)
        w, state = self.weights(matrix, state)
        return ops.matmul(ops.cast(w, matrix.dtype)[None, :], matrix)[0], state


class GramianWeightedAggregator(WeightedAggregator):
    """A weighted aggregator whose weights depend on ``J`` only through ``G = J Jᵀ``.

    Subclasses implement ``gramian_weights(gramian, state) -> (w, new_state)``
    (``gramian`` in float32 or float64, see `compute_dtype`).
    """

    def gramian_weights(self, gramian_, state):
        """``(w, new_state)`` from the Gramian of the rows."""
        raise NotImplementedError(f"{type(self).__name__} must implement `gramian_weights`.")

    def weights(self, matrix, state):
        """The Gramian's weights (`gramian_weights` of ``J Jᵀ``)."""
        return self.gramian_weights(gramian(matrix), state)
