"""The one `TestCase` shared by the keras-aux test suite (keras-hub style),
the suite's helpers for process-global TensorFlow state: `op_determinism`
(enabled for a block, restored after) and `assert_xla_ran` (XLA really ran),
and the marks of tests that need TensorFlow (`requires_tensorflow`,
`requires_tensorflow_backend`), which skip with their reason on the JAX tier."""

import contextlib
import glob
import json
import os
import tempfile
import unittest

import keras
import numpy as np
import pytest

from keras_aux.compat import is_op_determinism_enabled  # noqa: F401 (re-exported)
from keras_aux.utils.optional import tensorflow_available

# Where a test needs TensorFlow, it says so, and skips with the reason on the JAX tier (a
# virtualenv without TensorFlow, KERAS_BACKEND=jax: `make test-jax`), never passing silently.
# A whole test module that imports TensorFlow at module level is skipped at collection instead
# (conftest.py, `pytest_pycollect_makemodule`).

#: The test uses TensorFlow itself (tf.data, tf.Variable, tf.saved_model...), whatever the
#: Keras backend.
requires_tensorflow = pytest.mark.skipif(
    not tensorflow_available(),
    reason="needs TensorFlow, which is not installed here (the JAX tier: make test-jax)",
)

#: The test needs Keras to run on TensorFlow (TF tensors through Keras layers, tf.function,
#: tf.distribute, TF graph assertions...).
requires_tensorflow_backend = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason=f"needs the TensorFlow backend; Keras runs on {keras.backend.backend()!r} here",
)

#: The test runs JAX in a subprocess whatever the current backend (`DataParallel` over two
#: host devices): the JAX tier runs it, and the TensorFlow tiers need not run it again.
jax_tier_only = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="runs on the JAX tier (KERAS_BACKEND=jax, make test-jax)",
)

_MIRRORED = []


def mirrored_strategy():
    """The test session's one 2-replica `MirroredStrategy` over the two logical
    CPUs that `conftest.py` configures.

    Shared because TensorFlow's collective runtime caches collective instances
    by key and every new strategy restarts its keys: a second strategy in the
    same process can meet a cached instance of another shape.
    """
    import tensorflow as tf

    if not _MIRRORED:
        _MIRRORED.append(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
    return _MIRRORED[0]


@contextlib.contextmanager
def op_determinism(enabled=True):
    """Op determinism on (or off) for the block; the previous setting is restored after.

    The setting is process-global and Keras reads it when a model is compiled:
    with it on, ``compile(jit_compile=True)`` silently falls back to graph mode.
    A test must never leave it changed (``conftest.py`` fails one that does).
    """
    import tensorflow as tf

    from keras_aux import compat

    before = is_op_determinism_enabled()
    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        compat.disable_op_determinism()
    try:
        yield
    finally:
        if before:
            tf.config.experimental.enable_op_determinism()
        else:
            compat.disable_op_determinism()


# TraceMe events of XLA's runtime, one per run of a compiled program:
# `CpuExecutable::ExecuteAsyncOnStream` on CPU, `GpuExecutable::...` on GPU.
_XLA_EXECUTION = "Executable::Execute"
# TensorFlow < 2.21 emits none of those on CPU, only one event per XLA fusion
# kernel run (`..._fusion`): then those are counted (at least one per program).
_XLA_FUSION = "fusion"


def _tf_version():
    import tensorflow as tf

    major, minor = tf.__version__.split(".")[:2]
    return int(major), int(minor)


class XlaRecord:
    """What `count_xla_executions` saw (set when the block exits):
    ``executions``, the number of XLA program runs in the block, and
    ``per_program``, False on TensorFlow < 2.21, where ``executions`` counts
    XLA fusion kernel runs instead (at least one per program run).
    ``executions`` is None where the TF version leaves no profiler evidence of
    XLA at all (TF 2.16 on CPU)."""

    executions = None
    per_program = None


@contextlib.contextmanager
def count_xla_executions():
    """Counts the XLA programs executed in the block, with the TF profiler.

    Yields an `XlaRecord` whose ``executions`` is set on exit. The profiler is
    process-global: nothing else may be profiling meanwhile.
    """
    import tensorflow as tf
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    record = XlaRecord()
    with tempfile.TemporaryDirectory() as logdir:
        tf.profiler.experimental.start(
            logdir,
            options=tf.profiler.experimental.ProfilerOptions(
                host_tracer_level=2, python_tracer_level=0, device_tracer_level=0
            ),
        )
        try:
            yield record
        finally:
            tf.profiler.experimental.stop()
        counts = {_XLA_EXECUTION: 0, _XLA_FUSION: 0}
        for path in glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True):
            space = xplane_pb2.XSpace()
            with open(path, "rb") as f:
                space.ParseFromString(f.read())
            for plane in space.planes:
                for marker in counts:
                    keys = {
                        key
                        for key, meta in plane.event_metadata.items()
                        if meta.name.endswith(marker)
                        or (marker == _XLA_EXECUTION and marker in meta.name)
                    }
                    counts[marker] += sum(
                        event.metadata_id in keys for line in plane.lines for event in line.events
                    )
        record.per_program = counts[_XLA_EXECUTION] > 0 or not counts[_XLA_FUSION]
        record.executions = counts[_XLA_EXECUTION] or counts[_XLA_FUSION]
        if not record.executions and _tf_version() < (2, 21):
            # Older XLA CPU runtimes (TF 2.16) emit no profiler event at all:
            # no runtime evidence either way.
            record.executions = None


@contextlib.contextmanager
def assert_xla_ran(model=None):
    """Fails unless XLA really ran in the block (and, given ``model``, Keras kept
    ``jit_compile=True`` for it).

    How it knows, two independent checks:

    1. ``model.jit_compile`` is still True after the block. Keras turns it to
       False when it decides the model can't be compiled (op determinism on, a
       layer with ``supports_jit=False``...) and only warns "Model doesn't
       support `jit_compile=True`"; its train/test steps then run in graph mode.
    2. The TF profiler recorded XLA program executions during the block
       (`count_xla_executions`): XLA's runtime emits one
       ``*Executable::ExecuteAsyncOnStream`` event per run of a compiled
       program, and graph mode emits none. This is runtime evidence, unlike
       the ``jit_compile`` flag or a ``tf.function``'s attributes; unlike TF's
       "Compiled cluster using XLA!" log line it is per block, not once per
       process, and it counts cached programs as well as fresh compilations.

    Yields the `XlaRecord` (``executions``, e.g. to compare with the steps run).
    Costs a fraction of a second (profiler start, stop and parse).
    """
    import tensorflow as tf

    with count_xla_executions() as record:
        yield record
    problems = []
    if model is not None and model.jit_compile is not True:
        problems.append(f"`model.jit_compile` is {model.jit_compile!r} after the block")
    if record.executions is None:
        if model is None:
            raise unittest.SkipTest(
                f"TensorFlow {'.'.join(map(str, _tf_version()))} leaves no profiler evidence of "
                "XLA runs, and no model was given to check `jit_compile` on"
            )
    elif not record.executions:
        problems.append("the TF profiler saw no XLA program run in the block")
    if problems:
        raise AssertionError(
            "XLA did not run: "
            + "; ".join(problems)
            + f" (op determinism enabled: {is_op_determinism_enabled()}, "
            f"functions run eagerly: {tf.config.functions_run_eagerly()}; Keras turns "
            "`jit_compile` off when op determinism is on or a layer doesn't support XLA)"
        )


class TestCase(unittest.TestCase):
    """`unittest.TestCase` with numeric and serialization helpers."""

    def setUp(self):
        super().setUp()
        keras.backend.clear_session()
        keras.utils.set_random_seed(1337)

    def get_temp_dir(self):
        """A fresh directory removed after the test."""
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        return tmp.name

    def assertAllClose(self, actual, expected, atol=1e-6, rtol=1e-6, msg=None):
        """Element-wise closeness of (nested lists of) arrays or tensors."""
        np.testing.assert_allclose(
            np.asarray(actual), np.asarray(expected), atol=atol, rtol=rtol, err_msg=msg or ""
        )

    def assertXlaRan(self, model=None):
        """Context manager: `assert_xla_ran` (XLA really ran in the block)."""
        return assert_xla_ran(model)

    def enable_op_determinism(self):
        """TF op determinism on for the rest of the test, restored by a cleanup
        (`op_determinism`). Keras compiles models without XLA while it is on."""
        self.enterContext(op_determinism())

    def run_serialization_test(self, instance):
        """Checks `get_config` → JSON → `from_config` gives an equal config."""
        config = instance.get_config()
        revived = instance.__class__.from_config(json.loads(json.dumps(config)))
        self.assertEqual(
            json.dumps(config, sort_keys=True), json.dumps(revived.get_config(), sort_keys=True)
        )
        serialized = keras.saving.serialize_keras_object(instance)
        again = keras.saving.deserialize_keras_object(json.loads(json.dumps(serialized)))
        self.assertIsInstance(again, instance.__class__)
        return revived

    def run_model_saving_test(self, model, x):
        """Saves `model` as `.keras`, reloads it, and compares predictions."""
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        keras.tree.map_structure(
            lambda a, b: self.assertAllClose(a, b, atol=1e-5),
            model.predict(x, verbose=0),
            restored.predict(x, verbose=0),
        )
        return restored
