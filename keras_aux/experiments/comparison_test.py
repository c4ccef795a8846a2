import os

import numpy as np
import pytest
from scipy import stats

# The benchmark's runs feed `fit` through tf.data (zip_tasks): TensorFlow only.
pytest.importorskip("tensorflow")

from keras_aux.experiments import comparison  # noqa: E402
from keras_aux.testing.test_case import TestCase


def _rows(part, situation, table):
    return [
        {
            "part": part,
            "situation": situation,
            "method": method,
            "seed": seed,
            "metric": str(value),
            "epochs": "1",
            "seconds": "1.0",
        }
        for method, values in table.items()
        for seed, value in enumerate(values)
    ]


class CompareTest(TestCase):
    def test_paired_t_and_holm_against_scipy_and_numpy(self):
        single = [0.70, 0.72, 0.69, 0.71, 0.73]
        table = {
            "single_task": single,
            "multitask": [0.72, 0.75, 0.70, 0.74, 0.75],
            "projection": [0.69, 0.73, 0.70, 0.70, 0.72],
            "upgrad": [0.75, 0.77, 0.74, 0.76, 0.79],
        }
        out = {
            r["method"]: r
            for r in comparison.compare(_rows("fashion", "coarse", table), "fashion", "coarse")
        }
        self.assertEqual(list(out)[0], "single_task")
        raw = {}
        for method in ("multitask", "projection", "upgrad"):
            d = np.array(table[method]) - np.array(single)
            self.assertAllClose(out[method]["diff"], d.mean(), atol=1e-12)
            half = stats.t.ppf(0.975, 4) * d.std(ddof=1) / np.sqrt(5)
            self.assertAllClose(out[method]["half"], half, atol=1e-12)
            raw[method] = stats.ttest_rel(table[method], single).pvalue
            self.assertAllClose(out[method]["p"], raw[method], atol=1e-12)
        # Holm by hand: sort, multiply by (m - rank), running maximum, cap at 1.
        order = sorted(raw, key=raw.get)
        running, holm = 0.0, {}
        for rank, method in enumerate(order):
            running = max(running, min(1.0, (3 - rank) * raw[method]))
            holm[method] = running
        for method in raw:
            self.assertAllClose(out[method]["p_holm"], holm[method], atol=1e-12)
        self.assertTrue(np.isnan(out["single_task"]["p_holm"]))

    def test_plan_is_seed_major_within_a_part(self):
        runs = comparison.plan(("fashion",), ("single_task", "upgrad"), (0, 1))
        self.assertEqual([r[3] for r in runs], [0] * 4 + [1] * 4)
        self.assertEqual(len(set(runs)), 8)

    def test_unknown_method_is_refused(self):
        with self.assertRaisesRegex(ValueError, "nope"):
            comparison.validate_methods(["single_task", "nope"])


class EndToEndTest(TestCase):
    # Six real runs of the benchmark (about 20 s): a smoke run, in the integration tier.
    @pytest.mark.integration
    def test_tiny_fashion_runs_and_report(self):
        rng = np.random.default_rng(0)
        y = np.repeat(np.arange(10), 130)
        x = rng.integers(0, 255, (len(y), 28, 28)).astype("uint8")
        x[np.arange(len(y)), y, y] = 255  # a learnable pixel per class
        images = ((x, y), (x[:200], y[:200]))
        data = comparison.make_fashion_data(images, seed=0, per_class=10, val_size=100)
        self.assertEqual(len(data.y_primary), 100)
        self.assertEqual(np.bincount(data.y_primary).tolist(), [10] * 10)
        rows, trajectories = [], {}
        # Both auxiliary tasks for one learned method: the learned-weights section needs them.
        runs = [("coarse", m) for m in ("single_task", "upgrad", "auto_lambda", "fork_merge")]
        runs += [("coarse", "auxinash"), ("random", "auxinash")]
        for situation, method in runs:
            # ForkMerge: one round (two branches of FORK_EPOCHS epochs each, one merge).
            max_epochs = 2 * comparison.FORK_EPOCHS if method == "fork_merge" else 2
            result = comparison.run_fashion(data, situation, method, 0, max_epochs)
            self.assertTrue(0.0 <= result.metric <= 1.0)
            self.assertEqual(result.epochs, max_epochs)
            learned = comparison.METHODS[method].weight_log is not None
            self.assertEqual(result.auxiliary_weight is not None, learned, msg=method)
            if learned:
                self.assertTrue(np.isfinite(result.trajectory).all(), msg=method)
                self.assertEqual(len(result.trajectory), 1 if method == "fork_merge" else 2)
                trajectories[("fashion", situation, method, 0)] = result.trajectory
            rows.append(
                {
                    "part": "fashion",
                    "situation": situation,
                    "method": method,
                    "seed": 0,
                    "metric": str(result.metric),
                    "epochs": str(result.epochs),
                    "seconds": "1",
                    "auxiliary_weight": ("" if not learned else str(result.auxiliary_weight)),
                }
            )
        path = os.path.join(self.get_temp_dir(), "t.md")
        table = comparison.summarize(rows, path)
        self.assertIn("| upgrad | aggregator | 1 |", table)
        self.assertIn("## Learned auxiliary weights (fashion)", table)
        self.assertRegex(
            table, r"\| auxinash \| [0-9.]+ ± 0.000 \| [0-9.]+ ± 0.000 \| [01] of 1 \|"
        )
        self.assertTrue(os.path.exists(path.replace(".md", ".png")))
        png = os.path.join(self.get_temp_dir(), "w.png")
        self.assertEqual(comparison.plot_weight_trajectories(trajectories, png), png)
        self.assertTrue(os.path.exists(png))

    def test_pcgrad_treats_the_primary_as_one_more_task(self):
        # One conflicting auxiliary task: the auxiliary-only PCGrad would equal multitask.
        import keras

        p = [keras.ops.convert_to_tensor(np.array([1.0, 0.0], "float32"))]
        a = [keras.ops.convert_to_tensor(np.array([-1.0, 1.0], "float32"))]
        censor = comparison.METHODS["pcgrad"].options()["censoring"]
        update, _ = censor.update(p, [a], [1.0], censor.init(p))
        # Each gradient loses its component along the other: p → (0.5, 0.5), a → (0, 1).
        np.testing.assert_allclose(np.asarray(update[0]), [0.5, 1.5], atol=1e-6)
