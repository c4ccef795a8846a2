"""The MAXL diagnostics metrics against hand-counted values."""

import numpy as np

from keras_aux.metrics import (
    AuxiliaryClassUsage,
    AuxiliaryLabelEntropy,
    HeldMean,
    auxiliary_label_diagnostics,
)
from keras_aux.testing import TestCase


class AuxiliaryClassUsageTest(TestCase):
    def test_counts_arg_max_classes_until_reset(self):
        usage = AuxiliaryClassUsage(4)
        usage.update_state(np.array([[0.9, 0.1, 0, 0], [0.2, 0.8, 0, 0]], "float32"))
        self.assertAllClose(usage.result(), 0.5)
        usage.update_state(np.array([[0, 0, 0.4, 0.6]], "float32"))
        self.assertAllClose(usage.result(), 0.75)
        usage.reset_state()
        self.assertAllClose(usage.result(), 0.0)

    def test_bad_input_and_serialization(self):
        with self.assertRaisesRegex(ValueError, "num_classes"):
            AuxiliaryClassUsage(0)
        revived = self.run_serialization_test(AuxiliaryClassUsage(7, name="usage"))
        self.assertEqual(revived.num_classes, 7)


def conditional_entropy(labels, y, psi):
    """H(auxiliary | primary) of the mean label over max H, by primary class in numpy."""
    starts = np.cumsum([0, *psi[:-1]])
    h = largest = 0.0
    for i, (start, size) in enumerate(zip(starts, psi)):
        rows = labels[y == i][:, start : start + size]
        if len(rows):
            mean = rows.mean(0)
            mean = mean[mean > 0] / mean.sum()
            h += len(rows) / len(labels) * -np.sum(mean * np.log(mean))
            largest += len(rows) / len(labels) * np.log(size)
    return h / largest


def random_labels(rng, y, psi, sharpness):
    """Soft labels zero outside each example's block (masked softmax of random logits)."""
    starts = np.cumsum([0, *psi[:-1]])
    labels = np.zeros((len(y), sum(psi)), "float32")
    for n, i in enumerate(y):
        z = np.exp(sharpness * rng.normal(size=psi[i]))
        labels[n, starts[i] : starts[i] + psi[i]] = z / z.sum()
    return labels


class AuxiliaryLabelEntropyTest(TestCase):
    def test_matches_numpy_over_several_updates(self):
        psi = [4, 2, 3, 1]
        rng = np.random.default_rng(0)
        y = rng.integers(0, 4, size=90)
        labels = random_labels(rng, y, psi, sharpness=2.0)
        metric = AuxiliaryLabelEntropy(psi)
        for rows in (slice(0, 40), slice(40, 41), slice(41, 90)):
            metric.update_state(labels[rows])
        expected = conditional_entropy(labels, y, psi)
        self.assertTrue(0.2 < expected < 0.99)
        self.assertAllClose(metric.result(), expected, atol=1e-5)
        both = auxiliary_label_diagnostics(labels, psi)
        self.assertAllClose(both["auxiliary_entropy"], expected, atol=1e-5)
        self.assertAllClose(both["auxiliary_usage"], len(np.unique(labels.argmax(-1))) / 10)
        metric.reset_state()
        self.assertAllClose(metric.result(), 0.0)

    def test_collapse_is_zero_and_an_even_spread_is_one(self):
        psi = [2, 3]
        collapsed = np.array([[1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 1, 0]], "float32")
        metric = AuxiliaryLabelEntropy(psi)
        metric.update_state(collapsed)
        self.assertAllClose(metric.result(), 0.0)
        even = np.array(
            [[1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]],
            "float32",
        )
        metric.reset_state()
        metric.update_state(even)
        self.assertAllClose(metric.result(), 1.0)
        # Only primary classes with a choice count: ψ = 1 adds nothing either way.
        single = AuxiliaryLabelEntropy([1, 1])
        single.update_state(np.eye(2, dtype="float32"))
        self.assertAllClose(single.result(), 0.0)

    def test_bad_input_and_serialization(self):
        with self.assertRaisesRegex(ValueError, "positive"):
            AuxiliaryLabelEntropy([2, 0])
        revived = self.run_serialization_test(AuxiliaryLabelEntropy([3, 2], name="h"))
        self.assertEqual(revived.psi, (3, 2))


class HeldMeanTest(TestCase):
    def test_holds_the_last_value_through_an_epoch_without_updates(self):
        metric = HeldMean(name="cosine")
        self.assertAllClose(metric.result(), 0.0)
        metric.update_state([0.2, 0.4])
        self.assertAllClose(metric.result(), 0.3)
        metric.reset_state()  # an epoch of the other stage: nothing measured
        self.assertAllClose(metric.result(), 0.3)
        metric.update_state(1.0)
        self.assertAllClose(metric.result(), 1.0)
        metric.reset_state()
        metric.reset_state()
        self.assertAllClose(metric.result(), 1.0)

    def test_serialization(self):
        self.run_serialization_test(HeldMean(name="held"))
