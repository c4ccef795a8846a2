"""The statistics of the result tables: paired t-test p-values against SciPy's own paired test
and a hand computation, Holm's adjustment against a worked example."""

import numpy as np

from keras_aux.experiments import reporting
from keras_aux.testing import TestCase


class PairedTPvalueTest(TestCase):
    def test_matches_scipy_paired_test_and_hand_computation(self):
        from scipy import stats

        ours = np.array([94.0, 95.3, 93.7, 96.0, 94.3, 95.0])
        base = np.array([93.3, 94.0, 94.0, 94.7, 93.0, 93.7])
        p = reporting.paired_t_pvalue(ours, base)
        self.assertAllClose(p, stats.ttest_rel(ours, base).pvalue, atol=1e-12)
        # By hand: t = mean(d) / (s / √n), two-sided tail of Student's t with 5 degrees of
        # freedom; 2.5706 is its 97.5 % quantile, so a t above it gives a p below 0.05.
        d = ours - base
        t = d.mean() / (d.std(ddof=1) / np.sqrt(len(d)))
        self.assertGreater(t, 2.5706)
        self.assertLess(p, 0.05)

    def test_edge_cases(self):
        self.assertTrue(np.isnan(reporting.paired_t_pvalue([1.0], [0.0])))
        self.assertEqual(reporting.paired_t_pvalue([1.0, 2.0], [0.0, 1.0]), 0.0)  # no spread
        self.assertEqual(reporting.paired_t_pvalue([1.0, 2.0], [1.0, 2.0]), 1.0)  # no difference


class HolmTest(TestCase):
    def test_worked_example(self):
        # Sorted: 0.005 × 4 = 0.02, 0.01 × 3 = 0.03, 0.03 × 2 = 0.06, 0.04 × 1 = 0.04 → 0.06
        # (the running maximum keeps the order of the raw p-values).
        adjusted = reporting.holm_adjusted([0.01, 0.04, 0.03, 0.005])
        self.assertAllClose(adjusted, [0.03, 0.06, 0.06, 0.02])

    def test_nan_is_left_out_and_values_are_capped_at_one(self):
        adjusted = reporting.holm_adjusted([np.nan, 0.6, 0.02])
        self.assertTrue(np.isnan(adjusted[0]))
        self.assertAllClose(adjusted[1:], [0.6, 0.04])
        self.assertAllClose(reporting.holm_adjusted([0.7, 0.8]), [1.0, 1.0])  # 2 × 0.7 capped

    def test_format(self):
        self.assertEqual(reporting.format_pvalue(0.04321), "0.043")
        self.assertEqual(reporting.format_pvalue(0.0002), "< 0.001")
        self.assertEqual(reporting.format_pvalue(float("nan")), "–")


class PairBySeedTest(TestCase):
    def test_keeps_shared_seeds_in_seed_order(self):
        ours, theirs = reporting.pair_by_seed({3: "c", 1: "a", 7: "x"}, {1: "A", 3: "C", 5: "y"})
        self.assertEqual((ours, theirs), (["a", "c"], ["A", "C"]))
        self.assertEqual(reporting.pair_by_seed({0: 1.0}, {1: 2.0}), ([], []))


class BackendDescriptionTest(TestCase):
    def test_names_the_running_backend_and_its_version(self):
        import importlib

        import keras

        name = keras.backend.backend()
        module = importlib.import_module({"tensorflow": "tensorflow", "jax": "jax"}[name])
        expected = {"tensorflow": "TensorFlow", "jax": "JAX"}[name]
        self.assertEqual(reporting.backend_description(), f"{expected} {module.__version__}")
