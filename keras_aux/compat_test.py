"""Tests of `keras_aux.compat`: the Keras internals it relies on still behave,
and no other library module reaches into Keras internals."""

import pathlib
import re

import keras
import numpy as np

from keras_aux import compat
from keras_aux.testing import TestCase
from keras_aux.utils.optional import tensorflow_available

PACKAGE = pathlib.Path(__file__).parent

# Private Keras attributes the library once used; none may come back.
PRIVATE_KERAS = re.compile(
    r"keras\.src|\._loss_tracker|\._compile_metrics|\._compile_config|\._inputs_struct"
    r"|_get_variable_index|\._outputs_struct"
)


class CompatTest(TestCase):
    def test_input_signature_of_a_functional_and_a_subclassed_model(self):
        x = keras.Input((3,), name="features")
        functional = keras.Model(x, keras.layers.Dense(2)(x))
        try:
            signature = compat.input_signature(functional)
        except ImportError as error:  # pragma: no cover - only on an unsupported Keras
            self.fail(
                "keras.src.export.export_utils.get_input_signature moved in Keras "
                f"{keras.__version__}; update keras_aux/compat.py ({error})."
            )
        spec = keras.tree.flatten(signature)[0]
        # What `ExportArchive.add_endpoint` accepts.
        accepted = (keras.InputSpec,)
        if tensorflow_available():
            import tensorflow as tf

            accepted += (tf.TensorSpec,)
        self.assertIsInstance(spec, accepted)
        self.assertEqual(tuple(spec.shape), (None, 3))

        class Subclassed(keras.Model):
            def __init__(self):
                super().__init__()
                self.dense = keras.layers.Dense(2)

            def call(self, x):
                return self.dense(x)

        model = Subclassed()
        with self.assertRaisesRegex(ValueError, "is not built"):
            compat.input_signature(model)
        model(np.zeros((4, 5), "float32"))
        spec = keras.tree.flatten(compat.input_signature(model))[0]
        self.assertEqual(tuple(spec.shape)[1:], (5,))

    def test_no_library_module_uses_keras_internals(self):
        offenders = []
        for path in sorted(PACKAGE.rglob("*.py")):
            if path.name == "compat.py" or path.name.endswith("_test.py"):
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if PRIVATE_KERAS.search(line):
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
        self.assertEqual(offenders, [], "Keras internals outside keras_aux/compat.py")
