"""Focal loss and the batch entropy regulariser against numpy."""

import keras
import numpy as np

from keras_aux.losses import FocalLoss, focal_loss, negative_batch_entropy
from keras_aux.testing.test_case import TestCase


def numpy_focal(targets, probs, gamma=2.0, eps=1e-20):
    t, p = np.asarray(targets, np.float64), np.asarray(probs, np.float64)
    return -(t * (1 - p) ** gamma * np.log(p + eps)).sum(-1)


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class FocalLossTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.probs = softmax(rng.normal(size=(6, 5))).astype("float32")
        self.soft = softmax(rng.normal(size=(6, 5))).astype("float32")
        self.ids = rng.integers(0, 5, size=6)

    def test_soft_and_sparse_targets_match_numpy(self):
        self.assertAllClose(
            focal_loss(self.soft, self.probs), numpy_focal(self.soft, self.probs), atol=1e-5
        )
        one_hot = np.eye(5)[self.ids]
        expected = numpy_focal(one_hot, self.probs)
        for targets in (self.ids, self.ids[:, None], one_hot):
            self.assertAllClose(focal_loss(targets, self.probs), expected, atol=1e-5)
        self.assertAllClose(
            focal_loss(self.soft, self.probs, gamma=0.0),
            -(self.soft * np.log(self.probs)).sum(-1),
            atol=1e-5,
        )

    def test_class_reduces_to_batch_mean_and_weights(self):
        loss = FocalLoss(gamma=2.0)
        expected = numpy_focal(self.soft, self.probs)
        self.assertAllClose(loss(self.soft, self.probs), expected.mean(), atol=1e-5)
        weights = np.arange(6, dtype="float32")
        self.assertAllClose(
            loss(self.soft, self.probs, sample_weight=weights),
            (expected * weights).sum() / 6,
            atol=1e-5,
        )

    def test_zero_probability_is_finite(self):
        probs = np.array([[1.0, 0.0]], "float32")
        self.assertTrue(
            np.isfinite(keras.ops.convert_to_numpy(focal_loss([[0.5, 0.5]], probs))).all()
        )

    def test_bad_input_is_named(self):
        with self.assertRaisesRegex(ValueError, "gamma"):
            FocalLoss(gamma=-1)
        with self.assertRaisesRegex(ValueError, "3 classes but predictions have 5"):
            focal_loss(np.zeros((6, 3)), self.probs)

    def test_serialization_and_compile_by_object(self):
        revived = self.run_serialization_test(FocalLoss(gamma=1.5, name="f"))
        self.assertEqual(revived.gamma, 1.5)
        fn = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(focal_loss))
        self.assertIs(fn, focal_loss)


class NegativeBatchEntropyTest(TestCase):
    def test_matches_numpy(self):
        q = softmax(np.random.default_rng(3).normal(size=(7, 4)))
        mean = q.mean(0)
        self.assertAllClose(
            negative_batch_entropy(q.astype("float32")),
            (mean * np.log(mean + 1e-20)).sum(),
            atol=1e-6,
        )

    def test_extremes(self):
        # All labels on one class: 0 (the maximum); spread evenly: -log K (the minimum).
        self.assertAllClose(
            negative_batch_entropy(np.tile([[0.0, 1.0, 0.0]], (4, 1))), 0.0, atol=1e-6
        )
        self.assertAllClose(
            negative_batch_entropy(np.eye(4, dtype="float32")), -np.log(4), atol=1e-6
        )
