"""`make demo`'s path end to end: synthetic WAV files → decode → mel → fit with
λ = 0 and λ > 0 → TensorBoard → the run validation prefers as a raw-waveform SavedModel →
reload → classify five test clips. Run as a subprocess, as `make demo` runs it."""

import json
import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_dataset_end_to_end(tmp_path):
    logdir, export_dir, data_dir = tmp_path / "logs", tmp_path / "export", tmp_path / "music"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers.train_genre",
            "--dataset=demo",
            "--epochs=1",
            "--lstm_units=16",
            "--reconstruction_weight=2",
            f"--data_dir={data_dir}",
            f"--logdir={logdir}",
            f"--export_dir={export_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, out[-3000:] + result.stderr[-3000:]
    assert "| lambda0 | 0 | multitask |" in out and "| lambda2 | 2 | multitask |" in out
    assert "test accuracy" in out and "Reloaded SavedModel on test clips:" in out
    # No Keras warning that looks like a bug, no per-epoch INFO line (issue 12 §3).
    for noise in ("ran out of data", "shuffle=True", "files kept; after decoding"):
        assert noise not in result.stderr, noise
    data_lines = [line for line in out.splitlines() if "files kept; after decoding" in line]
    assert len(data_lines) == 2  # one data line per run, none per epoch
    assert (data_dir / "README.txt").exists()
    for run in ("lambda0", "lambda2"):
        assert (logdir / run / "best.weights.h5").exists()
        events = [f for _, _, fs in os.walk(logdir / run) for f in fs if f.startswith("events.out")]
        assert events, f"no TensorBoard events for {run}"
    # The exported run is the one validation prefers, marked in the table; five test clips are
    # shown with their true labels.
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| lambda")]
    exported = [row[0].lstrip("| ") for row in rows if "(exported)" in row[3]]
    labels = json.loads((export_dir / "labels.json").read_text())
    assert exported == [labels["run"]]
    assert f"Exported {labels['run']}, the run with the best validation accuracy" in out
    predictions = [line for line in out.splitlines() if ".wav → " in line]
    assert len(predictions) == 5 and all("right" in p or "true " in p for p in predictions)
    assert labels["sample_rate"] == 16000 and len(labels["class_names"]) == 4
    loaded = tf.saved_model.load(str(export_dir))
    for rate in (16000, 8000):
        probs = loaded.serve(tf.constant(np.zeros((1, 12345), "float32")), rate).numpy()
        assert probs.shape == (1, 4)
        np.testing.assert_allclose(probs.sum(), 1.0, atol=1e-5)


def test_sweep_lambda_writes_table_and_plot(tmp_path):
    out = tmp_path / "sweep"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers.sweep_lambda",
            "--dataset=demo",
            "--epochs=1",
            "--lstm_units=8",
            "--lambdas=0,10",
            f"--data_dir={tmp_path / 'music'}",
            f"--logdir={tmp_path / 'logs'}",
            f"--output_dir={out}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = (out / "sweep_lambda.md").read_text()
    assert "| 0 |" in table and "| 10 |" in table
    assert (out / "sweep_lambda.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
