"""keras-aux: auxiliary learning for Keras 3, on TensorFlow or JAX (``KERAS_BACKEND``).

- `keras_aux.censoring`: censoring the auxiliary gradient (Du et al. 2018;
  Lemaire 2018; PCGrad, Yu et al. 2020) as `Censor` objects with explicit
  state, and as plain functions on gradient lists.
- `keras_aux.AuxiliaryModel` (functional) and `keras_aux.AuxiliaryTrainer`
  (a mixin for any subclassed `keras.Model`): a primary output and auxiliary
  outputs, trained with `fit` through a censoring method.
- `keras_aux.models.MAXL`: meta auxiliary learning (Liu et al. 2019), a label
  generator trained through a meta-gradient, with `fit`.
- `keras_aux.weighting`: loss weightings (uncertainty weighting, DWA, GradNorm,
  GLS, random loss weighting, FAMO) applied before the gradients, with any
  censoring method (``compile(loss_weighting=...)``).
- `keras_aux.learned`: auxiliary weights learned from the primary task's own
  gradient (MetaBalance, OL-AUX), as censoring methods.
- `keras_aux.layers`, `keras_aux.losses`, `keras_aux.metrics`: backend-neutral Keras
  objects (`keras.ops`), registered for saving.
"""

from keras_aux.utils.optional import require_keras

# Keras with its backend, or a clear error naming the extra of a missing backend. TensorFlow is
# imported only on the TensorFlow backend: under KERAS_BACKEND=jax nothing here loads it, and the
# TensorFlow-only parts (tf.data audio pipelines, tfds builders, the waveform SavedModel export)
# import it when used, naming its extras when it is absent (BUILD.md, "Backends").
require_keras()

# Every serializable class is registered by `import keras_aux`, so a saved
# model loads after that import alone (layers, losses and metrics included).
from keras_aux import censoring, layers, learned, losses, metrics, models, weighting  # noqa: E402
from keras_aux.models import MAXL, AuxiliaryModel, AuxiliaryTrainer  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "MAXL",
    "AuxiliaryModel",
    "AuxiliaryTrainer",
    "censoring",
    "layers",
    "learned",
    "losses",
    "metrics",
    "models",
    "weighting",
    "__version__",
]
