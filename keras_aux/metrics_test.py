"""The MAXL diagnostics metrics against hand-counted values."""

import numpy as np

from keras_aux.metrics import AuxiliaryClassUsage, HeldMean
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
