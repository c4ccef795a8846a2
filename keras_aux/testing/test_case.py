"""The one `TestCase` shared by the keras-aux test suite (keras-hub style)."""

import json
import os
import tempfile
import unittest

import keras
import numpy as np

_MIRRORED = []


def mirrored_strategy():
    """The test session's one 2-replica `MirroredStrategy` over the two logical
    CPUs that `conftest.py` configures.

    Shared because TensorFlow's collective runtime caches collective instances
    by key and every new strategy restarts its keys: a second strategy in the
    same process can meet a cached instance of another shape.
    """
    import tensorflow as tf

    if not _MIRRORED:
        _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _MIRRORED[0]


class TestCase(unittest.TestCase):
    """`unittest.TestCase` with numeric and serialization helpers."""

    def setUp(self):
        super().setUp()
        keras.backend.clear_session()
        keras.utils.set_random_seed(1337)

    def get_temp_dir(self):
        """A fresh directory removed after the test."""
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name

    def assertAllClose(self, actual, expected, atol=1e-6, rtol=1e-6, msg=None):
        """Element-wise closeness of (nested lists of) arrays or tensors."""
        np.testing.assert_allclose(
            np.asarray(actual), np.asarray(expected), atol=atol, rtol=rtol, err_msg=msg or ""
        )

    def run_serialization_test(self, instance):
        """Checks `get_config` → JSON → `from_config` gives an equal config."""
        config = instance.get_config()
        revived = instance.__class__.from_config(json.loads(json.dumps(config)))
        self.assertEqual(
            json.dumps(config, sort_keys=True), json.dumps(revived.get_config(), sort_keys=True)
        )
        serialized = keras.saving.serialize_keras_object(instance)
        again = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
        self.assertIsInstance(again, instance.__class__)
        return revived

    def run_model_saving_test(self, model, x):
        """Saves `model` as `.keras`, reloads it, and compares predictions."""
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        keras.tree.map_structure(
            lambda a, b: self.assertAllClose(a, b, atol=1e-5),
            model.predict(x, verbose=0),
            restored.predict(x, verbose=0),
        )
        return restored
