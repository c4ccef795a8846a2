"""The synthetic experiment's data: shapes, seeds, draw order, relations."""

import numpy as np
import pytest

from keras_aux.datasets.synthetic_tasks import SITUATIONS, make_synthetic_tasks, target


def test_shapes_and_ranges():
    data = make_synthetic_tasks()
    assert data.x_train1.shape == data.x_train2.shape == data.x_val.shape == (1000, 250)
    assert data.x_test.shape == (10000, 250)
    assert data.b.shape == data.b_prime.shape == data.b_noisy.shape == (250, 100)
    assert 0.0 <= data.x_test.min() and data.x_test.max() < 1.0
    x, y = data.primary("test")
    assert y.shape == (10000, 100) and np.abs(y).max() <= 1.0


def test_draw_order_is_the_reference_notebooks():
    # The notebook: np.random.seed(0); inputs with np.random.rand (train1, train2, validation,
    # test); then 10 * randn for B, for B', and 3.5 * randn for the noise of B_noisy. Replayed
    # on the global generator, as the notebook does, and the global state put back after.
    saved = np.random.get_state()
    try:
        np.random.seed(0)
        x_train1 = np.random.rand(1000, 250)
        x_train2 = np.random.rand(1000, 250)
        x_val = np.random.rand(1000, 250)
        x_test = np.random.rand(10000, 250)
        b = 10 * np.random.randn(250, 100)
        b_prime = 10 * np.random.randn(250, 100)
        b_noisy = b + 3.5 * np.random.randn(250, 100)
    finally:
        np.random.set_state(saved)
    data = make_synthetic_tasks(seed=0)
    for name, expected in [
        ("x_train1", x_train1),
        ("x_train2", x_train2),
        ("x_val", x_val),
        ("x_test", x_test),
        ("b", b),
        ("b_prime", b_prime),
        ("b_noisy", b_noisy),
    ]:
        np.testing.assert_allclose(getattr(data, name), expected, rtol=1e-6, err_msg=name)


def test_seeds_and_relations():
    a, b = make_synthetic_tasks(0), make_synthetic_tasks(0)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    c = make_synthetic_tasks(1)
    assert not np.array_equal(a.b, c.b)
    assert abs(float(np.std(a.b)) - 10.0) < 0.2
    assert abs(float(np.std(a.b_noisy - a.b)) - 3.5) < 0.1
    assert abs(np.corrcoef(a.b.ravel(), a.b_prime.ravel())[0, 1]) < 0.02
    x2, y_same = a.auxiliary("same")
    np.testing.assert_array_equal(x2, a.x_train2)
    np.testing.assert_allclose(
        y_same, np.tanh(a.x_train2.astype(np.float64) @ a.b.astype(np.float64)), atol=1e-6
    )
    assert not np.allclose(a.auxiliary("similar")[1], y_same)
    assert set(SITUATIONS) == {"same", "similar", "unrelated"}
    np.testing.assert_allclose(target(np.zeros((2, 250), np.float32), a.b), 0.0)


def test_bad_arguments():
    data = make_synthetic_tasks(train_size=10, val_size=10, test_size=10)
    with pytest.raises(ValueError, match="situation"):
        data.matrix("opposite")
    with pytest.raises(ValueError, match="positive"):
        make_synthetic_tasks(train_size=0)
