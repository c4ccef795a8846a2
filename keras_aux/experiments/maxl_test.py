"""The MAXL benchmark's protocol code without training: paired differences against a
hand-computed t-interval, the summary table from a run log, resuming and splitting a run log
(`train` replaced by a stub), and the learned-labels picture for small and long ψ."""

import os

import numpy as np

from keras_aux.experiments import maxl, reporting
from keras_aux.testing import TestCase

T_975_4 = 2.7764451051977987  # the 97.5 % quantile of Student's t with 4 degrees of freedom


class PairedDifferenceTest(TestCase):
    def test_mean_and_t_interval_of_the_per_seed_differences(self):
        single = {0: 0.95, 1: 0.96, 2: 0.94, 3: 0.955, 4: 0.965, 7: 0.9}
        method = {0: 0.955, 1: 0.962, 2: 0.951, 3: 0.954, 4: 0.97}  # no seed 7: unpaired
        mean, low, high, n = maxl.paired_difference(method, single)
        d = np.array([0.005, 0.002, 0.011, -0.001, 0.005])
        half = T_975_4 * np.sqrt(np.sum((d - d.mean()) ** 2) / 4) / np.sqrt(5)
        self.assertEqual(n, 5)
        self.assertAllClose([mean, low, high], [d.mean(), d.mean() - half, d.mean() + half])
        one = maxl.paired_difference({0: 0.9}, single)
        self.assertAllClose(one[0], -0.05)
        self.assertTrue(np.isnan(one[1]) and np.isnan(one[2]) and one[3] == 1)


def fake_result(method, seed):
    accuracy = {"single": 0.95, "maxl_order2": 0.96}.get(method, 0.955) + 0.001 * seed
    return {
        "test_accuracy": accuracy,
        "best_val_accuracy": accuracy + 0.002,
        "epochs_trained": 10 + seed,
        "best_epoch": 5 + seed,
        "seconds": 12.0,
        "val_auxiliary_usage": 0.9,
        "val_auxiliary_entropy": 0.8,
    }


class BenchmarkTest(TestCase):
    def setUp(self):
        super().setUp()
        self.folder = self.get_temp_dir()

    def config(self, **kwargs):
        folder = self.folder
        defaults = dict(
            methods=("single", "maxl_order2"),
            seeds=(0, 1, 2),
            max_epochs=3,
            patience=2,
            csv=os.path.join(folder, "runs.csv"),
            output=os.path.join(folder, "table.md"),
        )
        return maxl.BenchmarkConfig(**{**defaults, **kwargs})

    def stub(self, fail_after=None):
        """Replaces `load_task`, `train` and the plot; returns the runs `train` saw."""
        seen = []
        originals = (maxl.load_task, maxl.train, maxl.plot_learned_labels)

        def train(config, task, callbacks=()):
            if fail_after is not None and len(seen) == fail_after:
                raise RuntimeError("interrupted")
            method = {"single": "single", "maxl": f"maxl_order{config.order}"}[config.method]
            seen.append((method, config.seed, config.epochs, config.patience))
            return fake_result(method, config.seed), None

        maxl.load_task = lambda *args, **kwargs: None
        maxl.train = train
        maxl.plot_learned_labels = lambda *args, **kwargs: None

        def restore():
            maxl.load_task, maxl.train, maxl.plot_learned_labels = originals

        self.addCleanup(restore)
        return seen

    def test_runs_are_logged_at_once_and_a_rerun_does_only_what_is_left(self):
        config = self.config()
        seen = self.stub(fail_after=3)
        with self.assertRaisesRegex(RuntimeError, "interrupted"):
            maxl.run_benchmark(config, log=lambda *_: None)
        rows = reporting.read_rows(config.csv)
        self.assertEqual(
            [(r["method"], int(r["seed"])) for r in rows],
            [("single", 0), ("maxl_order2", 0), ("single", 1)],
        )
        self.assertEqual({r["protocol"] for r in rows}, {config.protocol})
        self.assertEqual(seen[0][2:], (3, 2))  # max_epochs and patience reach `train`
        # A second process with other seeds, then the rest: nothing twice.
        seen.clear()
        maxl.run_benchmark(self.config(seeds=(2,)), log=lambda *_: None, summarize=False)
        maxl.run_benchmark(config, log=lambda *_: None)
        self.assertEqual(
            [s[:2] for s in seen], [("single", 2), ("maxl_order2", 2), ("maxl_order2", 1)]
        )
        rows = reporting.read_rows(config.csv)
        self.assertEqual(len(rows), 6)
        self.assertEqual(len({(r["method"], r["seed"]) for r in rows}), 6)

    def test_a_log_of_another_protocol_is_refused(self):
        config = self.config(seeds=(0,))
        self.stub()
        maxl.run_benchmark(config, log=lambda *_: None, summarize=False)
        with self.assertRaisesRegex(ValueError, "other protocols"):
            maxl.run_benchmark(self.config(patience=5), log=lambda *_: None)
        with open(config.csv, "w", encoding="utf-8") as f:
            f.write("method,seed,test_accuracy\nsingle,0,0.9\n")
        with self.assertRaisesRegex(ValueError, "another version"):
            maxl.run_benchmark(config, log=lambda *_: None)
        with self.assertRaisesRegex(ValueError, "Unknown benchmark method"):
            maxl.run_benchmark(self.config(methods=("maxl",)), log=lambda *_: None)

    def test_summary_table_gives_paired_differences(self):
        config = self.config()
        self.stub()
        table = maxl.run_benchmark(config, log=lambda *_: None)
        self.assertIn("at most 3 epochs", table)
        line = next(x for x in table.splitlines() if x.startswith("| maxl_order2 "))
        # Every seed 1.0 pt above Single: the interval has no width and p is 0.
        self.assertIn("+1.00 pt [+1.00, +1.00] | < 0.001 |", line)
        self.assertIn("0.9610 ± 0.0010", line)
        self.assertIn("0.90 / 0.80", line)
        self.assertIn("11.0 (6.0)", line)  # epochs trained (best epoch), mean over seeds
        self.assertTrue(os.path.exists(config.output.replace(".md", ".png")))


class FakeMAXL:
    """What `plot_learned_labels` uses of a MAXL model: ψ and `generate_labels`."""

    def __init__(self, psi, labels):
        self.psi, self.labels = psi, labels

    def generate_labels(self, x, y):
        return self.labels[: len(x)]


class PlotLearnedLabelsTest(TestCase):
    def test_draws_small_and_long_hierarchies_with_unused_classes(self):
        rng = np.random.default_rng(0)
        for psi in ([4, 2, 3, 1], [3] * 10):
            n = 300
            y = rng.integers(0, len(psi), size=n)
            starts = np.cumsum([0, *psi[:-1]])
            labels = np.zeros((n, sum(psi)), "float32")
            for row, i in enumerate(y):
                # Never the last class of a block: unused when ψ_i > 1.
                labels[row, starts[i] + rng.integers(0, max(psi[i] - 1, 1))] = 1.0
            task = maxl.ImageTask(
                rng.random((n, 8, 8, 1)).astype("float32"),
                y,
                None,
                None,
                None,
                None,
                [f"class_{i}" for i in range(len(psi))],
            )
            path = os.path.join(self.get_temp_dir(), f"labels_{len(psi)}.png")
            self.assertEqual(maxl.plot_learned_labels(FakeMAXL(psi, labels), task, path), path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
