"""The suite's XLA check (`keras_aux.testing.assert_xla_ran`) has teeth: it
passes for a real XLA fit and fails when Keras silently fell back to graph
mode (op determinism on) or XLA was never asked for; `op_determinism`
restores the process-global setting."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_aux import compat
from keras_aux.testing import (
    assert_xla_ran,
    count_xla_executions,
    is_op_determinism_enabled,
    op_determinism,
)


def fit_small_model(jit_compile, epochs=2):
    """Compiles a tiny regression MLP and fits it: 4 steps per epoch."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3), keras.layers.Dense(1)])
    model.compile("sgd", "mse", jit_compile=jit_compile)
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(64, 4)).astype("float32"), rng.normal(size=(64, 1)).astype("float32")
    model.fit(x, y, batch_size=16, epochs=epochs, verbose=0)
    return model


def test_passes_and_counts_one_xla_run_per_step():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse", jit_compile=True)
    x = np.ones((64, 4), "float32")
    with assert_xla_ran(model) as xla:
        model.fit(x, x[:, :1], batch_size=16, epochs=2, verbose=0)
    if xla.executions is not None:  # None: this TF leaves no profiler evidence
        assert xla.executions == 8 if xla.per_program else xla.executions >= 8
    with assert_xla_ran() as xla:  # cached programs count too
        model.fit(x, x[:, :1], batch_size=16, epochs=1, verbose=0)
    if xla.executions is not None:  # None: this TF leaves no profiler evidence
        assert xla.executions == 4 if xla.per_program else xla.executions >= 4


def test_fails_when_op_determinism_turned_xla_off():
    was_enabled = is_op_determinism_enabled()
    tf.config.experimental.enable_op_determinism()
    try:
        with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
            with pytest.raises(AssertionError, match="XLA did not run") as error:
                with assert_xla_ran():
                    model = fit_small_model(jit_compile=True)
        assert model.jit_compile is False  # what Keras did silently
        assert "op determinism enabled: True" in str(error.value)
        assert "no XLA program run" in str(error.value)
        with pytest.raises(AssertionError, match=r"`model.jit_compile` is False"):
            with assert_xla_ran(model):
                model.fit(np.ones((16, 4)), np.ones((16, 1)), verbose=0)
    finally:
        if not was_enabled:
            compat.disable_op_determinism()
    assert not is_op_determinism_enabled()


def test_fails_in_graph_mode_from_the_profiler_alone():
    """Without a model to read `jit_compile` from, the runtime evidence decides."""
    with pytest.raises(AssertionError, match="no XLA program run"):
        with assert_xla_ran():
            fit_small_model(jit_compile=False, epochs=1)


def test_raw_jit_function_runs_xla_even_under_op_determinism():
    """Only Keras' `compile` drops XLA for determinism; `tf.function(jit_compile=True)`
    (as in the censoring and masked-softmax XLA tests) always compiles."""
    step = tf.function(lambda a: tf.reduce_sum(a * 2.0), jit_compile=True)
    with op_determinism():
        with count_xla_executions() as xla:
            step(tf.ones(3))
    if xla.executions is not None:  # None: this TF leaves no profiler evidence
        assert xla.executions == 1 if xla.per_program else xla.executions >= 1


def test_op_determinism_restores_the_previous_setting():
    assert not is_op_determinism_enabled()
    with op_determinism():
        assert is_op_determinism_enabled()
        with op_determinism(False):
            assert not is_op_determinism_enabled()
        assert is_op_determinism_enabled()
    assert not is_op_determinism_enabled()
    with pytest.raises(RuntimeError):
        with op_determinism():
            raise RuntimeError
    assert not is_op_determinism_enabled()
