"""Audio data for keras-aux: decoding, tf.data pipelines, dataset loaders.

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
from keras_aux.data.task_data import TaskData, zip_tasks  # noqa: F401
