"""Layers of keras-aux."""

from keras_aux.layers.log_mel import LogMelSpectrogram, slaney_mel_matrix

__all__ = ["LogMelSpectrogram", "slaney_mel_matrix"]
