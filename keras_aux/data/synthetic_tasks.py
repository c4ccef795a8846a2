"""Deprecated alias of `keras_aux.datasets.synthetic_tasks` (the 0.1 path; see `keras_aux.data`)."""

import sys

from keras_aux.datasets import synthetic_tasks

# The import returns what sys.modules holds once this file has run: the new module.
sys.modules[__name__] = synthetic_tasks
