"""`AuxiliaryModel` under `tf.distribute.MultiWorkerMirroredStrategy`, beyond one
process: two workers on 127.0.0.1 (`tests/multi_worker_worker.py`, RING
collectives over gRPC), each training on its half of every global batch, end
every step with the weights (and logs) of one device trained on the global
batches, for projection, unweighted-cosine and multitask censoring.

Censoring is non-linear in the gradients, so each task's gradient must be
summed over the workers before it is censored (`AuxiliaryModel.all_reduce_gradients`);
censoring each worker's half and averaging gives another update, which
`test_per_worker_censoring_would_differ` checks is detectable on this data.

The cluster addresses are 127.0.0.1 and free ports picked here; TensorFlow's
gRPC server listens on the wildcard address of those ports (hard-coded
``0.0.0.0:<port>`` in TF), only while the workers run. The whole test uses
about 35-40 s of CPU (measured: 47-87 s wall on 2 cores under a load of 5-7).
"""

import importlib.util
import json
import os
import socket
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKER = os.path.join(ROOT, "tests", "multi_worker_worker.py")
NUM_WORKERS = 2
WORKERS_TIMEOUT = 150  # seconds for both workers, start to exit (about 40 on 2 idle cores)
ATOL = RTOL = 1e-5


def _load_worker_module():
    spec = importlib.util.spec_from_file_location("multi_worker_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


mw = _load_worker_module()


def free_ports(n):
    """``n`` distinct free TCP ports on 127.0.0.1 (held together while picked)."""
    sockets = []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _tail(path, n=3000):
    with open(path, errors="replace") as f:
        return f.read()[-n:]


def start_workers(data_path, out_dir):
    """Starts the workers of a 127.0.0.1 cluster; returns ``[(process, log path)]``."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(NUM_WORKERS)]}
    workers = []
    for index in range(NUM_WORKERS):
        env = dict(
            os.environ,
            TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
            TF_CPP_MIN_LOG_LEVEL="2",
            KERAS_BACKEND="tensorflow",
            CUDA_VISIBLE_DEVICES="-1",
            OMP_NUM_THREADS="1",
            WORKER_TIMEOUT=str(WORKERS_TIMEOUT),
            PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
        )
        log_path = os.path.join(out_dir, f"worker{index}.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [sys.executable, WORKER, data_path, out_dir],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        workers.append((process, log_path))
    return workers


def wait_for(workers, deadline):
    """Waits until every worker exits (failing on the first error or at
    ``deadline``); kills any still running on the way out."""
    try:
        while any(p.poll() is None for p, _ in workers):
            failed = [(p, log) for p, log in workers if p.poll() not in (None, 0)]
            if failed:
                p, log = failed[0]
                pytest.fail(f"worker exited with {p.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                logs = "\n".join(_tail(log) for _, log in workers)
                pytest.fail(f"workers still running after {WORKERS_TIMEOUT}s:\n{logs}")
            time.sleep(0.2)
        for p, log in workers:
            if p.returncode != 0:
                pytest.fail(f"worker exited with {p.returncode}:\n{_tail(log)}")
    finally:
        for p, _ in workers:
            if p.poll() is None:
                p.kill()
            p.wait(timeout=10)


def read_worker(out_dir, index):
    """``(info, {case: [weights after each step]})`` written by worker ``index``."""
    with np.load(os.path.join(out_dir, f"worker{index}.npz")) as data:
        info = json.loads(str(data["info"]))
        steps = {}
        for name, case in info["cases"].items():
            count = len([k for k in data.files if k.startswith(f"{name}/step0/")])
            steps[name] = [
                [data[f"{name}/step{s}/{i}"] for i in range(count)] for s in range(case["steps"])
            ]
    return info, steps


def nonlinear(name):
    """Whether case ``name`` censors (is non-linear in the gradients)."""
    return mw.CASES[name][2]["censoring"] != "multitask"


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Trains every case on two workers and on one device from the same
    initial weights. Returns ``{"workers": [(info, steps)], "reference":
    {case: (steps, logs)}, "halves": {case: [weights after one step on each
    half of the first global batch]}, "initial": {case: weights}}``; the
    single-device runs are done while the workers run."""
    out_dir = str(tmp_path_factory.mktemp("multi_worker"))
    x, y = mw.make_data()
    arrays, initial = {"x": x, "y": y}, {}
    for name, (seed, regularize, _) in mw.CASES.items():
        keras.backend.clear_session()
        initial[name] = mw.trainable_weights(mw.build_model(seed, regularize))
        arrays[f"{name}/count"] = np.array(len(initial[name]))
        for i, w in enumerate(initial[name]):
            arrays[f"{name}/initial/{i}"] = w
    data_path = os.path.join(out_dir, "data.npz")
    np.savez(data_path, **arrays)

    deadline = time.monotonic() + WORKERS_TIMEOUT
    workers = start_workers(data_path, out_dir)
    try:
        reference, halves = {}, {}
        for name in mw.CASES:
            keras.backend.clear_session()
            steps, logs, _ = mw.fit_case(name, initial[name], x, y)
            reference[name] = (steps, logs)
        half = mw.GLOBAL_BATCH // NUM_WORKERS
        for name in filter(nonlinear, mw.CASES):
            halves[name] = []
            for rows in (slice(0, half), slice(half, 2 * half)):
                keras.backend.clear_session()
                steps, _, _ = mw.fit_case(name, initial[name], x[rows], y[rows])
                halves[name].append(steps[0])
    finally:
        wait_for(workers, deadline)
    return {
        "workers": [read_worker(out_dir, i) for i in range(NUM_WORKERS)],
        "reference": reference,
        "halves": halves,
        "initial": initial,
    }


def test_each_worker_reads_its_half_of_every_global_batch(runs):
    """Worker ``i`` reads rows ``[B s + i B/2, B s + (i + 1) B/2)`` at step ``s``."""
    n = mw.GLOBAL_BATCH * mw.STEPS
    for index, (info, _) in enumerate(runs["workers"]):
        assert info["replicas"] == NUM_WORKERS
        for name, case in info["cases"].items():
            half = mw.GLOBAL_BATCH // NUM_WORKERS
            expected = [
                mw.GLOBAL_BATCH * step + half * index + r
                for step in range(mw.STEPS)
                for r in range(half)
            ]
            assert case["rows"] == expected, (index, name)
            assert case["steps"] == mw.STEPS, (index, name)
    rows = sorted(r for info, _ in runs["workers"] for r in info["cases"]["projection"]["rows"])
    assert rows == list(range(n))


@pytest.mark.parametrize("name", list(mw.CASES))
def test_weights_equal_single_device_after_every_step(runs, name):
    """Both workers' weights after each step, and their logs, are the single
    device's on the same global batches."""
    want_steps, want_logs = runs["reference"][name]
    assert len(want_steps) == mw.STEPS
    for index, (info, got) in enumerate(runs["workers"]):
        for step, (got_w, want_w) in enumerate(zip(got[name], want_steps)):
            for i, (a, b) in enumerate(zip(got_w, want_w)):
                np.testing.assert_allclose(
                    a, b, atol=ATOL, rtol=RTOL, err_msg=f"worker {index}, step {step}, weight {i}"
                )
        logs = info["cases"][name]["logs"]
        assert set(logs) == set(want_logs)
        for key, value in want_logs.items():
            np.testing.assert_allclose(
                logs[key], value, atol=ATOL, rtol=RTOL, err_msg=f"worker {index}, {key}"
            )
        # Training moved the weights (the check is not trivially met).
        moved = max(np.abs(a - b).max() for a, b in zip(got[name][-1], runs["initial"][name]))
        assert moved > 1e-3


@pytest.mark.parametrize("name", [name for name in mw.CASES if nonlinear(name)])
def test_per_worker_censoring_would_differ(runs, name):
    """Censoring each worker's half and averaging (one step) differs from the
    global step by 10 times the tolerance or more: an implementation that
    censored before summing over the workers would fail the test above."""
    averaged = [(a + b) / 2 for a, b in zip(*runs["halves"][name])]
    global_step = runs["reference"][name][0][0]
    gap = max(np.abs(a - b).max() for a, b in zip(averaged, global_step))
    assert gap > 10 * ATOL


@pytest.mark.xfail(
    strict=True,
    reason="Keras 3 `fit` fails under MultiWorkerMirroredStrategy before any AuxiliaryModel "
    "code runs (keras-team/keras#20585): it reduces a nested input batch, then scalar logs "
    "with axis=0, through `strategy.reduce`. Remove this mark when Keras fixes it (the test "
    "then passes: strict xfail reports it) and update BUILD.md.",
)
def test_fit_runs_under_multi_worker_strategy(runs):
    """`model.fit` itself on the distributed dataset (one step)."""
    for info, _ in runs["workers"]:
        assert info["fit_error"] is None, info["fit_error"]
