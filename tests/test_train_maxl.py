"""`trainers/train_maxl.py` end to end (as a subprocess, as users run it):
local data → MAXL or a baseline → fit with TensorBoard → result.json →
SavedModel serving the primary task → reload → classify."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from keras_aux.datasets import images

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = ["--filters=4,4,8,8", "--train_size=200", "--val_size=100", "--epochs=1"]


def fashion_mnist_available():
    try:
        images.load_fashion_mnist()
        return True
    except FileNotFoundError:
        return False


def train(tmp_path, *flags):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "trainers.train_maxl",
            *TINY,
            *flags,
            f"--logdir={tmp_path / 'logs'}",
            f"--export_dir={tmp_path / 'export'}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return result, result.stdout + result.stderr


@pytest.mark.parametrize(
    "flags, run",
    [
        (["--method=maxl", "--order=1", "--dataset=digits"], "digits_maxl_order1_seed0"),
        (["--method=kmeans", "--dataset=digits", "--psi=2"], "digits_kmeans_seed0"),
    ],
)
def test_trainer_end_to_end_on_digits(tmp_path, flags, run):
    result, out = train(tmp_path, *flags)
    assert result.returncode == 0, out[-4000:]
    assert "test accuracy" in out
    summary = json.loads((tmp_path / "logs" / run / "result.json").read_text())
    assert 0.0 <= summary["test_accuracy"] <= 1.0
    assert summary["psi"] == ([3] * 10 if "maxl" in run else [2] * 10)
    if "maxl" in run:
        png = tmp_path / "logs" / run / "learned_labels.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    events = [f for _, _, fs in os.walk(tmp_path / "logs" / run) for f in fs if "tfevents" in f]
    assert events, "no TensorBoard events"
    assert json.loads((tmp_path / "export" / "labels.json").read_text()) == [
        str(i) for i in range(10)
    ]
    loaded = tf.saved_model.load(str(tmp_path / "export"))
    probs = loaded.serve(tf.constant(np.zeros((3, 8, 8, 1), "float32"))).numpy()
    assert probs.shape == (3, 10)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_human_baseline_needs_a_hierarchy(tmp_path):
    result, out = train(tmp_path, "--method=human", "--dataset=digits")
    assert result.returncode != 0
    assert "no label hierarchy" in out


@pytest.mark.skipif(
    not fashion_mnist_available(),
    reason="Fashion-MNIST not installed (apt-get install -y dataset-fashion-mnist)",
)
def test_human_baseline_on_fashion_mnist_coarse_groups(tmp_path):
    result, out = train(tmp_path, "--method=human", "--dataset=fashion_mnist")
    assert result.returncode == 0, out[-4000:]
    summary = json.loads(
        (tmp_path / "logs" / "fashion_mnist_human_seed0" / "result.json").read_text()
    )
    assert summary["psi"] == [4, 2, 3, 1]
    assert json.loads((tmp_path / "export" / "labels.json").read_text()) == [
        "tops",
        "bottoms_and_dresses",
        "footwear",
        "bags",
    ]
