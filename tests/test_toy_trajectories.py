"""Qualitative results of the toy of Lemaire (2018), "Auxiliary tasks in deep
learning: projecting the auxiliary gradient", run through
``keras_aux.censoring.combine`` (`keras_aux.experiments.toy`, the protocol of
``trainers/toy_trajectories.py``)."""

import os

import numpy as np
import pytest

from keras_aux.experiments import toy

# p + λa = 0 on the horizontal axis: 2(x − 1) + 0.1 · 2(x − 2) = 0.
MULTITASK_FIXED_POINT = (2.4 / 2.2, 0.0)


def _dist(point, target=(1.0, 0.0)):
    return float(np.hypot(point[0] - target[0], point[1] - target[1]))


def _dist_circle(point):
    return float(abs(np.hypot(point[0], point[1]) - 1.0))


def test_trajectory_shape_and_start():
    path = toy.run_trajectory("projection", "sgd", steps=3)
    assert path.shape == (4, 2)
    np.testing.assert_allclose(path[0], [0.0, 2.0])
    # First SGD step by hand: p = 2(r − 1)·(x, y)/r = (0, 2), a = 2(x − 2, y) = (−4, 4);
    # a·p > 0 so the projection keeps a: g = (−0.4, 2.4), point − 0.01 g.
    np.testing.assert_allclose(path[1], [0.004, 1.976], atol=1e-6)


def test_projection_with_adam_reaches_target():
    path = toy.run_trajectory("projection", "adam", steps=2000)
    end = path[-1]
    assert _dist(end) < 0.05, end
    assert _dist_circle(end) < 0.05, end


def test_multitask_with_adam_misses_target():
    end = toy.run_trajectory("multitask", "adam", steps=2000)[-1]
    assert _dist(end) > 0.07, end
    assert _dist(end, MULTITASK_FIXED_POINT) < 0.01, end


@pytest.mark.parametrize("mode", ["unweighted_cosine", "weighted_cosine"])
def test_cosine_with_sgd_stops_on_circle_away_from_target(mode):
    path = toy.run_trajectory(mode, "sgd", steps=1500)
    end = path[-1]
    assert _dist_circle(end) < 0.05, end
    assert _dist(end) > 0.5, end
    # Stuck: it no longer moves along the circle.
    assert _dist(end, path[700]) < 1e-3, (path[700], end)
    # Without censoring (multitask) or with the projection, the same SGD run
    # ends near (1, 0) instead.
    for other in ("multitask", "projection"):
        other_end = toy.run_trajectory(other, "sgd", steps=1500)[-1]
        assert _dist(other_end) < 0.1, (other, other_end)
        assert _dist(end, other_end) > 0.5, (other, end, other_end)


@pytest.mark.parametrize("mode", ["unweighted_cosine", "weighted_cosine"])
def test_cosine_with_adam_reaches_target_slower_than_projection(mode):
    path = toy.run_trajectory(mode, "adam", steps=5000)
    assert _dist(path[-1]) < 0.05, path[-1]
    # At 1000 steps the projection is already there, the cosine modes are not.
    projection = toy.run_trajectory("projection", "adam", steps=1000)
    assert _dist(projection[-1]) < 0.05, projection[-1]
    assert _dist(path[1000]) > 0.3, path[1000]


def test_run_and_write_png_and_table(tmp_path):
    out = str(tmp_path / "results")
    config = toy.ToyConfig(steps=50, output_dir=out)
    table, md, png = toy.write(config, toy.run(config, progress=False))
    assert (md, png) == (
        os.path.join(out, "toy_trajectories.md"),
        os.path.join(out, "toy_trajectories.png"),
    )
    assert os.path.getsize(png) > 0
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with open(md, encoding="utf-8") as f:
        written = f.read()
    assert written.endswith(table) and written.startswith("# Toy trajectories (Lemaire 2018)")
    for optimizer in ("adam", "sgd"):
        for mode in toy.TOY_MODES:
            assert f"| {optimizer} | {mode} |" in table
    assert table.count("| 50 |") == 2 * len(toy.TOY_MODES)


def test_run_rejects_an_unknown_optimizer():
    with pytest.raises(ValueError, match="Unknown optimizer"):
        toy.run(toy.ToyConfig(steps=1, optimizers=("rmsprop",)))
