"""The networks of the papers keras-aux reproduces."""

from keras_aux.architectures.genre_lstm import compile_genre_lstm, genre_lstm, waveform_classifier
from keras_aux.architectures.mlp import auxiliary_mlp

__all__ = ["auxiliary_mlp", "compile_genre_lstm", "genre_lstm", "waveform_classifier"]
