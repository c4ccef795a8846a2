"""Test-session setup shared by `keras_aux/` and `tests/`.

Two logical CPU devices are configured before TensorFlow initialises, so the
distribution tests can compare a 2-replica MirroredStrategy against a single
device in the same process. Everything else runs on the first device. That
split is session-wide by design; any other global TensorFlow/Keras setting a
test changes must be restored by it, which an autouse fixture enforces.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)

# Imported after the device split: nothing may initialise TensorFlow before it.
import keras  # noqa: E402
import pytest  # noqa: E402

from keras_aux import compat  # noqa: E402


def _set_op_determinism(enabled):
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        compat.disable_op_determinism()


def _dtype_policy():
    """The global dtype policy new layers get, by name, read without side effects
    (`keras.config.dtype_policy()` would fix an unset policy to the current
    floatx), and the raw setting to restore."""
    policy = compat.raw_global_dtype_policy()
    return (keras.config.floatx() if policy is None else policy.name), policy


# Process-global TF/Keras settings a test may change but must restore:
# name → (read: () → (value compared, value restored), restore).
_GLOBAL_STATE = {
    "op determinism (tf.config.experimental.enable_op_determinism)": (
        lambda: (compat.is_op_determinism_enabled(),) * 2,
        _set_op_determinism,
    ),
    "Keras floatx (keras.config.set_floatx)": (
        lambda: (keras.config.floatx(),) * 2,
        keras.config.set_floatx,
    ),
    "Keras global dtype policy (keras.config.set_dtype_policy; floatx while unset)": (
        _dtype_policy,
        compat.set_raw_global_dtype_policy,
    ),
    "tf.config.run_functions_eagerly": (
        lambda: (tf.config.functions_run_eagerly(),) * 2,
        tf.config.run_functions_eagerly,
    ),
}


@pytest.fixture(autouse=True)
def _no_leaked_global_state():
    """Fails (at teardown) a test that leaves global TF/Keras state changed,
    naming it, after restoring it so later tests run in the usual setting.

    A leak is silent otherwise: e.g. op determinism left on makes Keras turn
    every later ``jit_compile=True`` into graph mode. Change such state inside
    ``try/finally``, ``addCleanup`` or `keras_aux.testing.op_determinism`.
    """
    before = {name: read() for name, (read, _) in _GLOBAL_STATE.items()}
    yield
    leaked = []
    for name, (read, restore) in _GLOBAL_STATE.items():
        now = read()[0]
        if now != before[name][0]:
            restore(before[name][1])
            leaked.append(f"{name}: {before[name][0]!r} -> {now!r}")
    if leaked:
        pytest.fail(
            "the test left global state changed (now restored): " + "; ".join(leaked),
            pytrace=False,
        )
