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


def test_default_grid_is_the_articles():
    runs = sc.SyntheticConfig().runs()
    # Per situation: single + multitask×5λ + projection×3α×5λ + 2 cosine×5λ = 31.
    assert len(runs) == 3 * 31 * 20
    assert len({sc.run_key(r) for r in runs}) == len(runs)
    assert {r["lam"] for r in runs if r["mode"] == "multitask"} == {0.1, 0.3, 1, 3, 10}
    cosine = [r for r in runs if r["mode"] == "weighted_cosine"]
    assert {r["alpha"] for r in cosine} == {0.01}
    assert {r["data_seed"] for r in runs} == {0}
    # Seed-major: the first 93 runs are seed 0 of every cell.
    assert {r["seed"] for r in runs[:93]} == {0} and runs[93]["seed"] == 1


def _row(situation, mode, alpha, lam, seed, loss, data_seed=0):
    return {
        "situation": situation,
        "mode": mode,
        "granularity": "global",
        "alpha": alpha,
        "lam": lam,
        "seed": seed,
        "data_seed": data_seed,
        "test_loss": str(loss),
        "epochs": "10",
        "seconds": "1.0",
    }


def test_effects_and_ranking_against_hand_computation(tmp_path):
    rng = np.random.RandomState(0)
    rows, losses = [], {}
    cells = [("single_task", 1.0, 0.0)] + [(m, a, lam) for _, m, a, lam in sc.KEY_CELLS]
    for data_seed in (0, 1):
        for situation in ("same", "unrelated"):
            for mode, alpha, lam in cells:
                for seed in range(4):
                    loss = 0.3 + 0.05 * rng.rand()
                    losses[(data_seed, situation, mode, alpha, lam, seed)] = loss
                    rows.append(_row(situation, mode, alpha, lam, seed, loss, data_seed))
    table = sc.summarize(rows, str(tmp_path / "t.md"))
    # Paired effect in percent, by hand, for one cell.
    single = np.array([losses[(0, "same", "single_task", 1.0, 0.0, s)] for s in range(4)])
    cell = np.array([losses[(0, "same", "projection", 0.01, 3.0, s)] for s in range(4)])
    pct = 100 * (cell - single) / single
    half = 3.182446305284263 * pct.std(ddof=1) / 2  # t(0.975, 3)
    assert "| same | projection | global | 0.01 | 3 | 4 | " in table
    assert f"{pct.mean():+.1f} % ± {half:.1f}" in table
    ranking = sc.ranking_rows(sc._cells(rows))
    assert [(r["data_seed"], r["situation"]) for r in ranking] == [
        (0, "same"),
        (0, "unrelated"),
        (1, "same"),
        (1, "unrelated"),
    ]

    def mean(r, m, a, lam):
        return np.mean([losses[(r["data_seed"], r["situation"], m, a, lam, s)] for s in range(4)])

    for r in ranking:
        wins = all(
            mean(r, "projection", 0.01, lam) < mean(r, "multitask", 1.0, lam) for lam in (1, 3)
        )
        best = {
            m: min(mean(r, m, a, lam) for lam in (1.0, 3.0))
            for m, a in [("multitask", 1.0), ("projection", 0.01), ("weighted_cosine", 0.01)]
        }
        cosine = best["weighted_cosine"] < min(best["multitask"], best["projection"])
        assert r["projection_beats_multitask"] == wins
        assert r["cosine_best"] == cosine
        assert r["as_in_article"] == (wins and cosine == (r["situation"] == "unrelated"))
    assert "## The article's ranking on each data realisation" in table


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
        "data_seed": 0,
    }
    sc.append_run(
        path, {**row, "test_loss": f"{loss:.6f}", "epochs": epochs, "seconds": f"{seconds:.2f}"}
    )
    sc.append_run(path, {**row, "seed": 1, "test_loss": "0.5", "epochs": 3, "seconds": "1.0"})
    rows = read_rows(path)
    assert [sc.run_key(r) for r in rows] == [sc.run_key(row), sc.run_key({**row, "seed": 1})]
    table = sc.summarize(rows, str(tmp_path / "table.md"))
    assert "| similar | projection | global | 0.1 | 3 | 2 | " in table
    assert "| n/a |" in table  # no single-task run to pair with
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
