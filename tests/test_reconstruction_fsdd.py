"""The FSDD reconstruction benchmark's protocol: paired differences against a hand computation,
and a real (one-epoch) resumable run on FSDD."""

from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from keras_aux.experiments import reconstruction
from keras_aux.experiments.reporting import read_rows

FSDD_ROOT = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "fsdd"


def _row(config, lam, seed, accuracy, epochs=30):
    return {
        "config": config,
        "lambda": lam,
        "censoring": "multitask",
        "seed": seed,
        "test_accuracy": f"{accuracy:.4f}",
        "best_val_accuracy": "0.9",
        "best_epoch": epochs - 5,
        "epochs": epochs,
        "seconds": "10",
    }


def test_summary_pairs_each_seed_with_lambda_zero(tmp_path):
    config = reconstruction.ReconstructionConfig(
        lambdas=(0.0, 2.0), censoring_mode="", seeds=4, max_epochs=30, output_dir=str(tmp_path)
    )
    base = np.array([0.90, 0.92, 0.88, 0.95])
    other = np.array([0.93, 0.92, 0.91, 0.94])
    rows = [_row("λ=0", 0.0, s, a) for s, a in enumerate(base)]
    rows += [_row("λ=2", 2.0, s, a, epochs=20) for s, a in enumerate(other)]
    table = reconstruction.summarize(rows, config)
    diff = 100 * (other - base)
    half = 3.182446305284263 * diff.std(ddof=1) / 2  # t(0.975, 3) · s / √4
    assert f"| λ=2 | 2 | multitask | 4 | {other.mean():.4f} ± {other.std(ddof=1):.4f} | " in table
    # One comparison with λ = 0: Holm leaves the paired t-test's p-value as it is.
    p = stats.ttest_rel(100 * other, 100 * base).pvalue
    assert f"{diff.mean():+.2f} ± {half:.2f} | {p:.3f} |" in table
    # λ=0's runs all reached max_epochs (30): counted as not plateaued.
    assert "| 25.0 | 30.0 | 4 |" in table and "| 15.0 | 20.0 | 0 |" in table
    assert (tmp_path / "reconstruction_fsdd.png").read_bytes()[:4] == b"\x89PNG"


def test_bad_config_is_named(tmp_path):
    with pytest.raises(ValueError, match="FSDD not found"):
        reconstruction.run(reconstruction.ReconstructionConfig(data_dir=str(tmp_path / "nope")))


@pytest.mark.skipif(
    not (FSDD_ROOT / "recordings").is_dir(),
    reason=f"FSDD recordings not found at {FSDD_ROOT} (the shared data folder is absent)",
)
def test_one_epoch_runs_resume(tmp_path):
    config = reconstruction.ReconstructionConfig(
        data_dir=str(FSDD_ROOT),
        train_takes=1,
        lambdas=(0.0, 1.0),
        censoring_mode="",
        seeds=1,
        max_epochs=1,
        patience=1,
        output_dir=str(tmp_path),
    )
    logs = []
    reconstruction.run(config, log=logs.append)
    rows = read_rows(config.csv())
    assert [(r["config"], r["seed"], r["epochs"]) for r in rows] == [
        ("λ=0", "0", "1"),
        ("λ=1", "0", "1"),
    ]
    assert all(0.0 <= float(r["test_accuracy"]) <= 1.0 for r in rows)
    assert "train / validation / test: [(60, 32, 128), (300, 32, 128), (300, 32, 128)]" in logs
    reconstruction.run(config, log=logs.append)  # resumes: nothing left to run
    assert "2 runs, 2 done, 0 for chunk 0" in logs and len(read_rows(config.csv())) == 2
