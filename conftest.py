"""Test-session setup shared by `keras_aux/` and `tests/`.

Two logical CPU devices are configured before TensorFlow initialises, so the
distribution tests can compare a 2-replica MirroredStrategy against a single
device in the same process. Everything else runs on the first device.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)
