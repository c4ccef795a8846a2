"""Models of keras-aux."""

from keras_aux.models.auxiliary import AuxiliaryModel
from keras_aux.models.maxl import MAXL, AlternatingStages

__all__ = ["MAXL", "AlternatingStages", "AuxiliaryModel"]
