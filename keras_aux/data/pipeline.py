"""Deprecated alias of `keras_aux.audio.pipeline` (the 0.1 path; see `keras_aux.data`)."""

import sys

from keras_aux.audio import pipeline

# The import returns what sys.modules holds once this file has run: the new module.
sys.modules[__name__] = pipeline
