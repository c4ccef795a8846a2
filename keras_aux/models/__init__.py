"""Models of keras-aux."""

from keras_aux.models.auxiliary import AuxiliaryModel

__all__ = ["AuxiliaryModel"]
