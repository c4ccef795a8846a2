"""Models of keras-aux."""

from keras_aux.models.auxiliary import AuxiliaryModel, AuxiliaryTrainer
from keras_aux.models.maxl import MAXL, AlternatingStages
from keras_aux.models.task_data import TaskData, zip_tasks

__all__ = [
    "MAXL",
    "AlternatingStages",
    "AuxiliaryModel",
    "AuxiliaryTrainer",
    "TaskData",
    "zip_tasks",
]
