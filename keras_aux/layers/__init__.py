"""Layers of keras-aux."""

from keras_aux.layers.hierarchical_softmax import HierarchicalMaskedSoftmax
from keras_aux.layers.log_mel import LogMelSpectrogram, htk_mel_matrix, slaney_mel_matrix

__all__ = ["HierarchicalMaskedSoftmax", "LogMelSpectrogram", "htk_mel_matrix", "slaney_mel_matrix"]
