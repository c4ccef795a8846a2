"""Deprecated: keras-aux 0.1's `keras_aux.data`, now `keras_aux.audio` and `keras_aux.datasets`.

Importing it (or any of its submodules) warns once with a `DeprecationWarning` and keeps 0.1's
code working. The names 0.1 exported here are re-exported from their new places, and each 0.1
submodule is the new module itself (`sys.modules` aliases, so a `monkeypatch` of
`keras_aux.data.images.SYSTEM_DIRS` still reaches the loaders):

| 0.1 | now |
|---|---|
| `keras_aux.data.audio` | `keras_aux.audio.decode` |
| `keras_aux.data.pipeline` | `keras_aux.audio.pipeline` |
| `keras_aux.data.datasets` | `keras_aux.audio.datasets` |
| `keras_aux.data.synthetic_music` | `keras_aux.audio.synthetic_music` |
| `keras_aux.data.tfds_builders` | `keras_aux.audio.tfds_builders` (not imported here) |
| `keras_aux.data.images` | `keras_aux.datasets.images` (the hierarchies: `keras_aux.hierarchy`) |
| `keras_aux.data.synthetic_tasks` | `keras_aux.datasets.synthetic_tasks` |
| `keras_aux.data.TaskData`, `zip_tasks` | `keras_aux.models.TaskData`, `zip_tasks` |
"""

import warnings

warnings.warn(
    "keras_aux.data is now keras_aux.audio and keras_aux.datasets: keras_aux.data.audio is "
    "keras_aux.audio.decode; .pipeline, .datasets, .synthetic_music and .tfds_builders are in "
    "keras_aux.audio; .images and .synthetic_tasks in keras_aux.datasets; coarse_and_fine, "
    "cifar100_grouping and FASHION_MNIST_COARSE in keras_aux.hierarchy. keras_aux.data will be "
    "removed in a future release.",
    DeprecationWarning,
    stacklevel=2,  # the importing line (the import machinery's frames are skipped)
)

# The names 0.1 exported, from where they are defined now.
from keras_aux.audio.datasets import (  # noqa: E402, F401
    AUDIO_EXTENSIONS,
    GTZAN_GENRES,
    KNOWN_BROKEN_FMA_IDS,
    AudioFileList,
    class_folders,
    fma_small,
    fma_track_path,
    fsdd,
    gtzan,
    stratified_split,
)
from keras_aux.data import datasets, images  # noqa: E402, F401  (0.1 imported both here)
from keras_aux.datasets.images import (  # noqa: E402, F401
    FASHION_MNIST_CLASSES,
    DatasetFormatError,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from keras_aux.hierarchy import (  # noqa: E402, F401
    FASHION_MNIST_COARSE,
    FASHION_MNIST_COARSE_NAMES,
    cifar100_grouping,
    coarse_and_fine,
)
from keras_aux.models.task_data import TaskData, zip_tasks  # noqa: E402, F401
