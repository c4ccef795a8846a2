"""Data for keras-aux: audio decoding, tf.data pipelines, audio dataset loaders, and the local
image datasets of the MAXL experiments (`keras_aux.data.images`).

`keras_aux.data.tfds_builders` (TFDS builders on top of the loaders) is not imported here, because
it loads tensorflow-datasets; import it explicitly.
"""

from keras_aux.data.datasets import (  # noqa: F401
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
from keras_aux.data.images import (  # noqa: F401
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_COARSE,
    FASHION_MNIST_COARSE_NAMES,
    DatasetFormatError,
    cifar100_grouping,
    coarse_and_fine,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from keras_aux.models.task_data import TaskData, zip_tasks  # noqa: F401
