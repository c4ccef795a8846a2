"""`make demo`'s trainer runs end to end: trains, logs to TensorBoard, exports
a SavedModel that serves the primary output. Run as a subprocess, exactly as
`make demo` runs it (trainers each define their own absl flags)."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_demo_trains_logs_exports_and_reloads(tmp_path):
    logdir, export_dir = tmp_path / "logs", tmp_path / "export"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers.demo",
            "--epochs=2",
            f"--logdir={logdir}",
            f"--export_dir={export_dir}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "| primary_only | 0 | multitask |" in result.stdout
    assert "| projection_lambda1 | 1 | projection |" in result.stdout
    # One TensorBoard run directory per configuration, with event files.
    for run in ("primary_only", "projection_lambda1"):
        events = [f for _, _, fs in os.walk(logdir / run) for f in fs if f.startswith("events.out")]
        assert events, f"no TensorBoard events for {run}"
    loaded = tf.saved_model.load(str(export_dir))
    probs = loaded.serve(tf.zeros((3, 64))).numpy()
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
