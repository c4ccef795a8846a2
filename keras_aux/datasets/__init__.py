"""Datasets of the MAXL and censoring experiments (no extra needed, except scikit-learn for
the 8×8 digits).

- `keras_aux.datasets.images`: Fashion-MNIST, MNIST, CIFAR-10/100 and scikit-learn's digits,
  read from local files only. The label hierarchies of MAXL's Human baseline over them live in
  `keras_aux.hierarchy` (re-exported by `images`).
- `keras_aux.datasets.synthetic_tasks`: the synthetic regression tasks (same / similar /
  unrelated auxiliary task) of the censoring experiment.

The audio datasets are in `keras_aux.audio` (the `audio` extra).

References: Liu, Davison & Johns (2019), MAXL, §4; Lemaire (2018), "Auxiliary tasks in deep
learning: projecting the auxiliary gradient" (synthetic experiment), after Chen et al. (2018),
"GradNorm".
"""

from keras_aux.datasets.images import (
    FASHION_MNIST_CLASSES,
    DatasetFormatError,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from keras_aux.datasets.synthetic_tasks import SITUATIONS, SyntheticTasks, make_synthetic_tasks

__all__ = [
    "FASHION_MNIST_CLASSES",
    "SITUATIONS",
    "DatasetFormatError",
    "SyntheticTasks",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "make_synthetic_tasks",
    "read_idx",
]
