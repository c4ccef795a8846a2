"""The networks of the papers keras-aux reproduces."""

from keras_aux.architectures.genre_lstm import compile_genre_lstm, genre_lstm, waveform_classifier

__all__ = ["compile_genre_lstm", "genre_lstm", "waveform_classifier"]
