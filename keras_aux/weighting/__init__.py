"""Loss weightings: methods that weight the task losses rather than the gradients.

Each is a `LossWeighting` (explicit state, ``keras.ops``, one method per
file): `UncertaintyWeighting` (Kendall et al. 2018), `DWA` (Liu et al. 2019),
`GradNorm` (Chen et al. 2018), `GeometricLoss` (Chennupati et al. 2019),
`RandomLossWeighting` (Lin et al. 2022) and `FAMO` (Liu et al. 2023).
``AuxiliaryModel.compile(loss_weighting=...)`` takes a name of ``NAMES`` or
an instance; the weighted task losses are what the censoring method sees.
See docs/weighting.md.
"""

import keras

from keras_aux.weighting.base import LossWeighting, adam_step
from keras_aux.weighting.dwa import DWA
from keras_aux.weighting.famo import FAMO
from keras_aux.weighting.geometric import GeometricLoss
from keras_aux.weighting.gradnorm import GradNorm
from keras_aux.weighting.random_weighting import RandomLossWeighting
from keras_aux.weighting.uncertainty import UncertaintyWeighting

CLASSES = {
    "uncertainty": UncertaintyWeighting,
    "dwa": DWA,
    "gradnorm": GradNorm,
    "gls": GeometricLoss,
    "rlw": RandomLossWeighting,
    "famo": FAMO,
}
NAMES = tuple(CLASSES)


def get(identifier):
    """The `LossWeighting` for ``identifier``: a name in ``NAMES``, an instance
    (returned as is, a user's own subclass included) or a dict from
    ``keras.saving.serialize_keras_object``."""
    if isinstance(identifier, LossWeighting):
        return identifier
    if isinstance(identifier, str):
        if identifier not in CLASSES:
            raise ValueError(
                f"Unknown loss weighting {identifier!r}. Expected one of {list(NAMES)} or a "
                "keras_aux.weighting.LossWeighting instance."
            )
        return CLASSES[identifier]()
    if isinstance(identifier, dict):
        method = keras.saving.deserialize_keras_object(identifier)
        if isinstance(method, LossWeighting):
            return method
    raise ValueError(
        f"`loss_weighting` must be one of {list(NAMES)}, a keras_aux.weighting.LossWeighting "
        f"instance or None; got {identifier!r}."
    )


__all__ = [
    "CLASSES",
    "DWA",
    "FAMO",
    "NAMES",
    "GeometricLoss",
    "GradNorm",
    "LossWeighting",
    "RandomLossWeighting",
    "UncertaintyWeighting",
    "adam_step",
    "get",
]
