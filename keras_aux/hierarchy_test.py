"""Tests of `keras_aux.hierarchy`'s human hierarchies: the Fashion-MNIST coarse grouping,
`coarse_and_fine` and `cifar100_grouping`. (The ψ helpers are tested with the layer that uses
them, keras_aux/layers/hierarchical_softmax_test.py.)"""

import numpy as np
import pytest

from keras_aux import hierarchy
from keras_aux.hierarchy import (
    FASHION_MNIST_COARSE,
    FASHION_MNIST_COARSE_NAMES,
    cifar100_grouping,
    coarse_and_fine,
)


def test_fashion_mnist_coarse_and_fine_by_hand():
    coarse, psi, fine = coarse_and_fine(np.arange(10))
    assert psi == (4, 2, 3, 1)
    # tops {0, 2, 4, 6}, bottoms/dresses {1, 3}, footwear {5, 7, 9}, bags {8}.
    np.testing.assert_array_equal(coarse, [0, 1, 0, 1, 0, 2, 0, 2, 3, 2])
    np.testing.assert_array_equal(fine, [0, 4, 1, 5, 2, 6, 3, 7, 9, 8])
    np.testing.assert_array_equal(hierarchy.primary_of_auxiliary(psi)[fine], coarse)
    assert sorted(c for g in FASHION_MNIST_COARSE for c in g) == list(range(10))
    assert len(FASHION_MNIST_COARSE_NAMES) == len(FASHION_MNIST_COARSE)
    two_d, _, _ = coarse_and_fine(np.array([[8, 1], [9, 0]]))
    np.testing.assert_array_equal(two_d, [[3, 1], [2, 0]])


def test_coarse_and_fine_rejects_bad_groupings_and_labels():
    with pytest.raises(ValueError, match="more than one place"):
        coarse_and_fine([0], [(0, 1), (1,)])
    with pytest.raises(ValueError, match="non-empty"):
        coarse_and_fine([0], [(0,), ()])
    with pytest.raises(ValueError, match="no group"):
        coarse_and_fine([0, 2], [(0,), (1,)])
    with pytest.raises(ValueError, match="no group"):
        coarse_and_fine([0, 1], [(0,), (2,)])
    with pytest.raises(ValueError, match="ints"):
        coarse_and_fine([0.5], [(0,)])


def test_cifar100_grouping():
    grouping = cifar100_grouping([1, 0, 1, 0, 1], [4, 2, 3, 0, 4])
    assert grouping == ((0, 2), (3, 4))
    coarse, psi, aux = coarse_and_fine([4, 2, 3, 0], grouping)
    np.testing.assert_array_equal(coarse, [1, 0, 1, 0])
    assert psi == (2, 2)
    np.testing.assert_array_equal(aux, [3, 1, 2, 0])
    with pytest.raises(ValueError, match="more than one coarse"):
        cifar100_grouping([0, 1], [5, 5])
