"""Models of keras-aux.

`AuxiliaryModel` / `AuxiliaryTrainer` train on the TensorFlow and JAX backends.
`MAXL`'s meta-gradient step is written for TensorFlow: on another backend it
is a stand-in that says so when constructed.
"""

import keras

from keras_aux.models.auxiliary import AuxiliaryModel, AuxiliaryTrainer
from keras_aux.models.task_data import TaskData, zip_tasks

if keras.backend.backend() == "tensorflow":
    from keras_aux.models.maxl import MAXL, AlternatingStages
else:

    def _tensorflow_only(name):
        def __init__(self, *args, **kwargs):
            raise RuntimeError(
                f"{name} trains with a TensorFlow step (tf.GradientTape through the virtual "
                f"step); KERAS_BACKEND is {keras.backend.backend()!r}. Set "
                "KERAS_BACKEND=tensorflow to use it."
            )

        return type(name, (), {"__init__": __init__, "__doc__": f"{name}: TensorFlow only."})

    MAXL = _tensorflow_only("MAXL")
    AlternatingStages = _tensorflow_only("AlternatingStages")

__all__ = [
    "MAXL",
    "AlternatingStages",
    "AuxiliaryModel",
    "AuxiliaryTrainer",
    "TaskData",
    "zip_tasks",
]
