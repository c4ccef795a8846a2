"""Models of keras-aux.

`AuxiliaryModel` / `AuxiliaryTrainer` and `MAXL` (from `keras_aux.maxl`)
train on the TensorFlow and JAX backends; on another backend they say so
when constructed.
"""

from keras_aux.maxl import MAXL, AlternatingStages
from keras_aux.models.auxiliary import AuxiliaryModel, AuxiliaryTrainer
from keras_aux.models.task_data import TaskData, with_meta_batches, zip_tasks

__all__ = [
    "MAXL",
    "AlternatingStages",
    "AuxiliaryModel",
    "AuxiliaryTrainer",
    "TaskData",
    "with_meta_batches",
    "zip_tasks",
]
