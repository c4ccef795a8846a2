"""The synthetic auxiliary-task data of Lemaire (2018), after Chen et al. (2018).

docs/censoring.md#synthetic-experiment: numpy seed 0; inputs ``x ∈ U(0, 1)^250``; train1, train2 and
validation sets of 1,000 rows and a test set of 10,000; ``B, B' =
10 · N(0, 1)^{250×100}``; ``B_noisy = B + 3.5 · N(0, 1)``; targets
``f(B, x) = tanh(x · B)``. The primary task learns ``f(B, ·)`` on train1; the
auxiliary task learns ``f(B, ·)`` ("same"), ``f(B_noisy, ·)`` ("similar") or
``f(B', ·)`` ("unrelated") on train2.

Draw order: the reference notebook's, so that seed 0 gives the published data realisation.
With ``np.random.RandomState(seed)`` (``np.random.seed(seed)`` then the global functions is
the same stream): the inputs with ``rand`` for train1, train2, validation and test, in that
order, then ``10 · randn(250, 100)`` for ``B``, then for ``B'``, then ``3.5 · randn(250, 100)``
for the noise of ``B_noisy``. The realisation alone moves the results a long way
(docs/censoring.md#synthetic-experiment), so other seeds are other experiments.

References: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the
auxiliary gradient"; Chen, Badrinarayanan, Lee & Rabinovich (2018),
"GradNorm", ICML (the synthetic task).
"""

import dataclasses

import numpy as np

SITUATIONS = ("same", "similar", "unrelated")
INPUT_DIM = 250
OUTPUT_DIM = 100


@dataclasses.dataclass
class SyntheticTasks:
    """Inputs and targets of the synthetic experiment (float32 arrays)."""

    x_train1: np.ndarray
    x_train2: np.ndarray
    x_val: np.ndarray
    x_test: np.ndarray
    b: np.ndarray
    b_prime: np.ndarray
    b_noisy: np.ndarray

    def matrix(self, situation):
        """The auxiliary task's matrix for ``"same"``, ``"similar"`` or ``"unrelated"``."""
        if situation not in SITUATIONS:
            raise ValueError(
                f"Unknown situation {situation!r}; expected one of {list(SITUATIONS)}."
            )
        return {"same": self.b, "similar": self.b_noisy, "unrelated": self.b_prime}[situation]

    def primary(self, split):
        """``(x, tanh(x · B))`` for ``"train"`` (train1), ``"val"`` or ``"test"``."""
        x = {"train": self.x_train1, "val": self.x_val, "test": self.x_test}[split]
        return x, target(x, self.b)

    def auxiliary(self, situation):
        """``(x_train2, tanh(x_train2 · B_aux))`` for a situation."""
        return self.x_train2, target(self.x_train2, self.matrix(situation))


def target(x, matrix):
    """``f(matrix, x) = tanh(x · matrix)`` in float32."""
    return np.tanh(x.astype(np.float64) @ matrix.astype(np.float64)).astype(np.float32)


def make_synthetic_tasks(seed=0, train_size=1000, val_size=1000, test_size=10000, noise=3.5):
    """Generates the data in the reference notebook's draw order (module docstring).

    Args:
        seed: numpy seed (0 in the article: the published realisation; others give other
            realisations of the same experiment).
        train_size, val_size, test_size: rows of train1 / train2, validation
            and test (1,000, 1,000 and 10,000).
        noise: standard deviation of the noise added to ``B`` (3.5).

    Returns:
        `SyntheticTasks`.

    Reference: Lemaire 2018 (synthetic experiment); Chen et al. 2018.
    """
    for name, value in (
        ("train_size", train_size),
        ("val_size", val_size),
        ("test_size", test_size),
    ):
        if int(value) <= 0:
            raise ValueError(f"`{name}` must be positive; got {value}.")
    rng = np.random.RandomState(seed)
    xs = [rng.rand(n, INPUT_DIM) for n in (train_size, train_size, val_size, test_size)]
    b = 10.0 * rng.randn(INPUT_DIM, OUTPUT_DIM)
    b_prime = 10.0 * rng.randn(INPUT_DIM, OUTPUT_DIM)
    b_noisy = b + noise * rng.randn(INPUT_DIM, OUTPUT_DIM)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    return SyntheticTasks(*[f32(x) for x in xs], f32(b), f32(b_prime), f32(b_noisy))
