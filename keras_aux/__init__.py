"""keras-aux: auxiliary learning for Keras 3 / TensorFlow.

- `keras_aux.censoring`: censoring the auxiliary gradient (Du et al. 2018;
  Lemaire 2018) as pure functions on gradient lists.
- `keras_aux.models.AuxiliaryModel`: a functional model with a primary output
  and auxiliary outputs, trained with `fit` through those functions.
- `keras_aux.models.MAXL`: meta auxiliary learning (Liu et al. 2019), a label
  generator trained through a meta-gradient, with `fit`.
"""

from keras_aux import censoring, models
from keras_aux.models import MAXL, AuxiliaryModel

__version__ = "0.1.0"

__all__ = ["MAXL", "AuxiliaryModel", "censoring", "models", "__version__"]
