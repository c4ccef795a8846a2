"""Deprecated alias of `keras_aux.audio.datasets` (the 0.1 path; see `keras_aux.data`)."""

import sys

from keras_aux.audio import datasets

# The import returns what sys.modules holds once this file has run: the new module.
sys.modules[__name__] = datasets
