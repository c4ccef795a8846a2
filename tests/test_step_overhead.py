"""`benchmarks/step_overhead.py` end to end on a handful of configurations (as a
subprocess, as users run it), and its count of backward passes against the
train step's own rule.

Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224); Yu et al. 2020
(PCGrad). See docs/censoring.md.
"""

import importlib.util
import os
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
    for key in ["pcgrad", "projection_per_task"]:
        assert configs[key].backward_passes(4) == 5
    assert configs["multitask"].backward_passes(4) == 5  # its cosine metric: per task
    # By default projection takes the forward path from K = 2 (two backward
    # passes, no cosine metric), the per-task path at K = 1.
    for key in ["projection", "projection_ema"]:
        assert configs[key].backward_passes(4) == 2
        assert configs[key].backward_passes(1) == 2
    assert configs["projection_forward"].backward_passes(16) == 2
    assert configs["projection_forward"].backward_passes(1) == 2
    assert configs["projection_per_task"].backward_passes(16) == 17
    # The benchmark mirrors the rule of AuxiliaryTrainer's step; check it
    # against the step itself where it exposes it.
    # Auto-λ's meta passes (look-ahead and products on the meta batch) are not counted.
    assert configs["auto_lambda"].backward_passes(2) is None
    for key, config in configs.items():
        if config.kind != "auxiliary" or config.backward_passes(2) is None:
            continue
        model, _, _ = step_overhead.build("mlp", 2, config, False)
        needed = getattr(model, "_gradients_needed", None)
        if needed is None:
            pytest.skip("AuxiliaryTrainer no longer exposes _gradients_needed")
        expected = {"total": 1, "primary": 1, "tasks": 3}.get(needed())
        if (
            expected is None
        ):  # the forward path: its kept total costs the unweighted cosine one more
            expected = 2 if model.censor.scalar_form == "shift" else 3
        assert config.backward_passes(2) == expected, key
        assert config.forward_path(2) == (model.gradient_path == "forward"), key


def run_step_overhead(output, *flags, env=None):
    """Runs ``python -m benchmarks.step_overhead`` with ``flags`` (as users run it) and
    returns the table it wrote to ``output``."""
    command = [sys.executable, "-m", "benchmarks.step_overhead", *flags, f"--output={output}"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return output.read_text(encoding="utf-8")


def test_smoke_run(tmp_path):
    table = run_step_overhead(
        tmp_path / "step_overhead.md",
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
        "--forward_k=2",
        "--forward_memory=false",
    )
    assert "## Step time per censoring method" in table
    assert "| mlp | no | plain keras | 1 |" in table
    assert "| mlp | no | pcgrad | 2 |" in table
    # The one-pass floor was not timed: plain has no ratio to it.
    assert table.count("| — |") >= 1
    assert "| no | 2 | pcgrad | 3 |" in table
    memory = next(line for line in table.splitlines() if line.startswith("| 2 | pcgrad | 3 |"))
    held, step_peak = (float(v) for v in memory.split("|")[4:6])
    assert held > 0 and step_peak > 0
    cells = check_forward_table(table)
    assert float(cells[4]) > 0 and float(cells[6]) > 0  # step (ms), compile (s)
    assert cells[7].strip() == "—"  # memory not measured


def test_learned_methods_smoke_run(tmp_path):
    # The learned weightings in the every-method table: Auto-λ and AuxiNash fed a meta
    # batch through train_on_batch(TaskData), a ForkMerge branch's step and a merge.
    table = run_step_overhead(
        tmp_path / "step_overhead_learned.md",
        "--models=",
        "--scaling_k=",
        "--memory_k=",
        "--methods_k=2",
        "--methods_configs=auto_lambda,auxinash,auxinash_every_step,fork_merge",
        "--methods_memory_k=",
        "--rounds=1",
        "--steps=1",
        "--warmup=1",
    )
    for row in [
        "| yes | 2 | plain keras | 1 |",
        "| yes | 2 | Auto-λ, exact (multitask) | — |",
        "| yes | 2 | AuxiNash, between hyper-steps | 3 |",
        "| yes | 2 | AuxiNash, hyper-step every step | 3 |",
        "| yes | 2 | ForkMerge, a branch's step (multitask) | 1 |",
    ]:
        assert row in table, row
    assert "- AuxiNash at K = 2 (XLA on), its hyper-step every 25 steps:" in table
    merge = next(
        line
        for line in table.splitlines()
        if line.startswith("| yes | 2 |") and line.count("|") == 7
    )
    evaluation, seconds, evaluations = merge.split("|")[3:6]
    assert float(evaluation) > 0 and float(seconds) > 0
    assert int(evaluations) == 7  # the best branch, then the other's six α's


def check_forward_table(table):
    """The gradient-path table's K = 2 rows; returns the forward path's cells."""
    assert "## Two gradient paths" in table
    assert "| 2 | plain keras | 1 |" in table
    assert "| 2 | projection, per-task path | 3 |" in table
    forward = next(line for line in table.splitlines() if "forward path | 2 |" in line)
    return forward.split("|")


@pytest.mark.skipif(importlib.util.find_spec("jax") is None, reason="jax is not installed")
def test_forward_smoke_run_jax(tmp_path):
    # The gradient-path table alone: tables 1-3 need the TensorFlow backend.
    table = run_step_overhead(
        tmp_path / "forward_jax.md",
        "--forward_k=2",
        "--rounds=1",
        "--steps=1",
        "--warmup=1",
        env=dict(os.environ, KERAS_BACKEND="jax"),
    )
    assert "`KERAS_BACKEND=jax python -m benchmarks.step_overhead" in table
    assert "## Step time per censoring method" not in table
    cells = check_forward_table(table)
    assert float(cells[7]) > 0  # XLA's temporary buffers (MiB)
    assert cells[8].strip().endswith("×")
