"""The synthetic-experiment protocol: shared initial weights, the grid, a real
(short) run, the resumable CSV and the summary table."""

import numpy as np

from keras_aux.datasets.synthetic_tasks import make_synthetic_tasks
from keras_aux.experiments import synthetic as sc
from keras_aux.experiments.reporting import read_rows
from keras_aux.testing import assert_xla_ran


def test_same_seed_same_initial_weights_for_every_configuration():
    a, b, c = sc.build_mlp(3), sc.build_mlp(3), sc.build_mlp(4)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert not np.array_equal(a.get_weights()[0], c.get_weights()[0])
    assert [layer.units for layer in a.layers[1:5]] == [100] * 4


def test_default_grid_is_the_issue_minimum():
    runs = sc.grid(
        ["same", "similar", "unrelated"],
        ["multitask", "projection", "unweighted_cosine", "weighted_cosine"],
        ["1", "3", "10"],
        ["1", "0.1", "0.01"],
        ["0.01"],
        True,
        "global",
        20,
    )
    # Per situation: single + multitask×3λ + projection×3α×3λ + 2 cosine×3λ = 19.
    assert len(runs) == 3 * 19 * 20
    assert len({sc.run_key(r) for r in runs}) == len(runs)
    cosine = [r for r in runs if r["mode"] == "weighted_cosine"]
    assert {r["alpha"] for r in cosine} == {0.01}


def test_short_run_resume_and_summary(tmp_path):
    data = make_synthetic_tasks(train_size=200, val_size=200, test_size=300)
    models = {}
    with assert_xla_ran() as xla:  # the protocol compiles with jit_compile=True
        loss, epochs, seconds = sc.run_one(
            data, "similar", "projection", "global", 0.1, 3.0, seed=0, max_epochs=3, models=models
        )
    (model,) = models.values()
    assert model.jit_compile is True and (xla.executions is None or xla.executions >= epochs)
    assert np.isfinite(loss) and loss > 0 and 1 <= epochs <= 3 and seconds > 0
    path = str(tmp_path / "runs.csv")
    row = {
        "situation": "similar",
        "mode": "projection",
        "granularity": "global",
        "alpha": 0.1,
        "lam": 3.0,
        "seed": 0,
    }
    sc.append_run(
        path, {**row, "test_loss": f"{loss:.6f}", "epochs": epochs, "seconds": f"{seconds:.2f}"}
    )
    sc.append_run(path, {**row, "seed": 1, "test_loss": "0.5", "epochs": 3, "seconds": "1.0"})
    rows = read_rows(path)
    assert [sc.run_key(r) for r in rows] == [sc.run_key(row), sc.run_key({**row, "seed": 1})]
    table = sc.summarize(rows, str(tmp_path / "table.md"))
    assert "| similar | projection | global | 0.1 | 3 | 2 |" in table
    assert (tmp_path / "table.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_reused_compiled_model_gives_the_fresh_result():
    """A model reused across seeds and situations (reset by `copy_state`)
    trains exactly as a freshly built one: weights, Adam slots and the
    gradient average all restart from the seed's initial state."""
    data = make_synthetic_tasks(train_size=200, val_size=200, test_size=300)
    args = ("projection", "global", 0.1, 3.0)
    with assert_xla_ran():
        fresh = [
            sc.run_one(data, s, *args, seed=k, max_epochs=4)[:2]
            for s, k in [("same", 1), ("unrelated", 2)]
        ]
    models = {}
    sc.run_one(data, "similar", *args, seed=0, max_epochs=3, models=models)
    assert len(models) == 1
    with assert_xla_ran(*models.values()):
        reused = [
            sc.run_one(data, s, *args, seed=k, max_epochs=4, models=models)[:2]
            for s, k in [("same", 1), ("unrelated", 2)]
        ]
    assert len(models) == 1
    assert reused == fresh
