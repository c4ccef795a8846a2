"""`trainers/tune.py` end to end for both tasks (two tiny trials)."""

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_tune(tmp_path, *flags):
    result = subprocess.run(
        [sys.executable, "-m", "trainers.tune", f"--directory={tmp_path / 'tune'}", *flags],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # Keras's warnings about the input pipeline mean the trials fit it wrongly.
    for warning in ("ran out of data", "`shuffle=True` was passed"):
        assert warning not in result.stdout + result.stderr, warning
    return result.stdout


def test_tune_synthetic(tmp_path):
    run_tune(tmp_path, "--task=synthetic", "--tuner=random", "--max_trials=2", "--epochs=2")
    best = json.loads((tmp_path / "tune" / "synthetic" / "best.json").read_text())
    assert best["objective"] == "val_primary_loss" and best["direction"] == "min"
    assert set(best["hyperparameters"]) == {
        "lambda_auxiliary",
        "censoring",
        "granularity",
        "ema_alpha",
    }
    table = (tmp_path / "tune" / "synthetic" / "trials.md").read_text()
    assert table.count("| 0 |") + table.count("| 1 |") == 2
    assert os.listdir(tmp_path / "tune" / "synthetic" / "tensorboard")


def test_tune_genre_demo(tmp_path):
    run_tune(
        tmp_path,
        "--task=genre",
        "--dataset=demo",
        f"--data_dir={tmp_path / 'music'}",
        "--max_trials=1",
        "--epochs=1",
        "--lstm_units=8",
    )
    best = json.loads((tmp_path / "tune" / "genre" / "best.json").read_text())
    assert best["objective"] == "val_genre_accuracy" and best["direction"] == "max"
