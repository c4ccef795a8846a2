"""keras-aux: auxiliary learning for Keras 3 / TensorFlow.

- `keras_aux.censoring`: censoring the auxiliary gradient (Du et al. 2018;
  Lemaire 2018; PCGrad, Yu et al. 2020) as `Censor` objects with explicit
  state, and as plain functions on gradient lists.
- `keras_aux.AuxiliaryModel` (functional) and `keras_aux.AuxiliaryTrainer`
  (a mixin for any subclassed `keras.Model`): a primary output and auxiliary
  outputs, trained with `fit` through a censoring method.
- `keras_aux.models.MAXL`: meta auxiliary learning (Liu et al. 2019), a label
  generator trained through a meta-gradient, with `fit`.
"""

from keras_aux.utils.optional import require_tensorflow

require_tensorflow()  # a clear error naming the extras, before anything imports TensorFlow

# Every serializable class is registered by `import keras_aux`, so a saved
# model loads after that import alone (layers, losses and metrics included).
from keras_aux import censoring, layers, losses, metrics, models  # noqa: E402
from keras_aux.models import MAXL, AuxiliaryModel, AuxiliaryTrainer  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "MAXL",
    "AuxiliaryModel",
    "AuxiliaryTrainer",
    "censoring",
    "layers",
    "losses",
    "metrics",
    "models",
    "__version__",
]
