"""`benchmarks/step_overhead.py` end to end on a handful of configurations (as a
subprocess, as users run it), and its count of backward passes against the
train step's own rule.

Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224); Yu et al. 2020
(PCGrad). See docs/censoring.md.
"""

import subprocess
import sys

import pytest

from benchmarks import step_overhead

ROOT = step_overhead.ROOT


def test_backward_passes_match_the_train_step():
    configs = step_overhead.CONFIGS
    assert configs["plain"].backward_passes(4) == 1
    assert configs["floor_1"].backward_passes(4) == 1
    assert configs["floor"].backward_passes(4) == 5
    assert configs["single_task"].backward_passes(4) == 1
    assert configs["multitask_no_cosine"].backward_passes(4) == 1
    for key in ["multitask", "projection", "pcgrad", "projection_ema"]:
        assert configs[key].backward_passes(4) == 5
    # The benchmark mirrors the rule of AuxiliaryTrainer's step; check it
    # against the step itself where it exposes it.
    for key, config in configs.items():
        if config.kind != "auxiliary":
            continue
        model, _, _ = step_overhead.build("mlp", 2, config, False)
        needed = getattr(model, "_gradients_needed", None)
        if needed is None:
            pytest.skip("AuxiliaryTrainer no longer exposes _gradients_needed")
        expected = 1 if needed() in ("total", "primary") else 3
        assert config.backward_passes(2) == expected, key


def test_smoke_run(tmp_path):
    output = tmp_path / "step_overhead.md"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.step_overhead",
            "--models=mlp",
            "--xla=false",
            "--configs=plain,floor,pcgrad",
            "--scaling_k=2",
            "--scaling_configs=plain,pcgrad",
            "--memory_k=2",
            "--memory_configs=pcgrad",
            "--rounds=1",
            "--steps=1",
            "--warmup=1",
            "--memory_steps=1",
            f"--output={output}",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    table = output.read_text(encoding="utf-8")
    assert "## Step time per censoring method" in table
    assert "| mlp | no | plain keras | 1 |" in table
    assert "| mlp | no | pcgrad | 2 |" in table
    # The one-pass floor was not timed: plain has no ratio to it.
    assert table.count("| — |") >= 1
    assert "| no | 2 | pcgrad | 3 |" in table
    memory = next(line for line in table.splitlines() if line.startswith("| 2 | pcgrad | 3 |"))
    held, step_peak = (float(v) for v in memory.split("|")[4:6])
    assert held > 0 and step_peak > 0
