"""HierarchicalMaskedSoftmax against an independent numpy masked softmax, on the backend of
the run (TensorFlow, or JAX on the JAX tier)."""

import keras
import numpy as np

from keras_aux import hierarchy
from keras_aux.layers import HierarchicalMaskedSoftmax
from keras_aux.testing.test_case import TestCase


def gradient(fn, x):
    """The gradient of the scalar ``fn(x)`` with respect to the array ``x``, on Keras's backend."""
    if keras.backend.backend() == "jax":
        import jax

        return np.asarray(jax.grad(fn)(x))
    import tensorflow as tf

    variable = tf.Variable(x)
    with tf.GradientTape() as tape:
        loss = fn(variable)
    return tape.gradient(loss, variable).numpy()


def compiled(fn):
    """``fn`` compiled with XLA: ``tf.function(jit_compile=True)`` or ``jax.jit``."""
    if keras.backend.backend() == "jax":
        import jax

        return jax.jit(fn)
    import tensorflow as tf

    return tf.function(fn, jit_compile=True)


def out_of_range_error():
    """What an out-of-range primary label raises eagerly: TF's graph assertion, else a
    ValueError of the layer's own check."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.errors.InvalidArgumentError
    return ValueError


def numpy_masked_softmax(logits, labels, psi):
    starts = np.concatenate([[0], np.cumsum(psi)])
    out = np.zeros_like(logits, dtype=np.float64)
    for row, label in enumerate(labels):
        block = logits[row, starts[label] : starts[label + 1]].astype(np.float64)
        e = np.exp(block - block.max())
        out[row, starts[label] : starts[label + 1]] = e / e.sum()
    return out


class HierarchyTest(TestCase):
    def test_blocks_of_an_unbalanced_psi(self):
        psi = [2, 1, 3]
        np.testing.assert_array_equal(hierarchy.block_starts(psi), [0, 2, 3, 6])
        np.testing.assert_array_equal(hierarchy.primary_of_auxiliary(psi), [0, 0, 1, 2, 2, 2])
        np.testing.assert_array_equal(
            hierarchy.block_matrix(psi),
            [[1, 1, 0, 0, 0, 0], [0, 0, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]],
        )
        self.assertEqual(hierarchy.parse_psi("3", num_primary=2), (3, 3))
        self.assertEqual(hierarchy.parse_psi("2, 5"), (2, 5))

    def test_bad_psi_is_named(self):
        for bad in ([], [2, 0], [1.5], "3", [True], None):
            with self.assertRaisesRegex(ValueError, "psi"):
                hierarchy.validate_psi(bad)
        with self.assertRaisesRegex(ValueError, "primary task has 4 classes"):
            hierarchy.parse_psi("2,2", num_primary=4)
        with self.assertRaisesRegex(ValueError, "Cannot read"):
            hierarchy.parse_psi("a,b")


class HierarchicalMaskedSoftmaxTest(TestCase):
    def test_matches_numpy_with_int_and_one_hot_labels(self):
        psi = [2, 1, 3]
        rng = np.random.default_rng(0)
        logits = rng.normal(size=(8, 6)).astype("float32") * 3
        labels = rng.integers(0, 3, size=8)
        layer = HierarchicalMaskedSoftmax(psi)
        expected = numpy_masked_softmax(logits, labels, psi)
        for given in (labels, labels[:, None], np.eye(3, dtype="float32")[labels]):
            out = keras.ops.convert_to_numpy(layer([logits, given]))
            self.assertAllClose(out, expected, atol=1e-6)
            outside = hierarchy.block_matrix(psi)[labels] == 0
            self.assertTrue(np.all(out[outside] == 0.0))  # exactly zero, not 1e-8
            self.assertAllClose(out.sum(-1), np.ones(8), atol=1e-6)

    def test_stable_for_huge_logits(self):
        layer = HierarchicalMaskedSoftmax([2, 2])
        logits = np.array([[1000.0, 999.0, 5000.0, -3000.0]], "float32")
        out = keras.ops.convert_to_numpy(layer([logits, np.array([0])]))
        self.assertTrue(np.all(np.isfinite(out)))
        self.assertAllClose(out, numpy_masked_softmax(logits, [0], [2, 2]), atol=1e-6)

    def test_gradients_are_zero_outside_the_block_and_finite(self):
        layer = HierarchicalMaskedSoftmax([2, 3])
        logits = np.random.default_rng(1).normal(size=(4, 5)).astype("float32")
        labels = np.array([0, 1, 1, 0])
        grad = gradient(
            lambda x: keras.ops.sum(layer([x, labels]) * np.arange(5, dtype="float32")), logits
        )
        self.assertTrue(np.all(np.isfinite(grad)))
        self.assertTrue(np.all(grad[hierarchy.block_matrix([2, 3])[labels] == 0] == 0))

    def test_works_under_xla_in_a_model(self):
        logits_in = keras.Input((4,))
        label_in = keras.Input((), dtype="int32")
        model = keras.Model(
            [logits_in, label_in], HierarchicalMaskedSoftmax([1, 3])([logits_in, label_in])
        )
        x = np.random.default_rng(2).normal(size=(6, 4)).astype("float32")
        y = np.array([0, 1, 1, 0, 1, 0])
        fn = compiled(lambda a, b: model([a, b]))
        self.assertAllClose(fn(x, y), numpy_masked_softmax(x, y, [1, 3]), atol=1e-6)

    def test_bad_inputs_are_named(self):
        layer = HierarchicalMaskedSoftmax([2, 2])
        with self.assertRaisesRegex(ValueError, "expects 4"):
            layer([np.zeros((2, 5), "float32"), np.array([0, 1])])
        with self.assertRaisesRegex(ValueError, "one-hot rows of width 2"):
            HierarchicalMaskedSoftmax([2, 2])([np.zeros((2, 4), "float32"), np.zeros((2, 3))])
        with self.assertRaisesRegex(out_of_range_error(), r"in \[0, 2\)"):
            HierarchicalMaskedSoftmax([2, 2])([np.zeros((2, 4), "float32"), np.array([0, 2])])
        with self.assertRaisesRegex(ValueError, "positive int"):
            HierarchicalMaskedSoftmax([2, -1])

    def test_serialization(self):
        revived = self.run_serialization_test(HierarchicalMaskedSoftmax([3, 1, 2], name="mask"))
        self.assertEqual(revived.psi, (3, 1, 2))
