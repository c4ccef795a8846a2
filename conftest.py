"""Test-session setup shared by `keras_aux/` and `tests/`.

Two logical CPU devices are configured before TensorFlow initialises, so the
distribution tests can compare a 2-replica MirroredStrategy against a single
device in the same process. Everything else runs on the first device. That
split is session-wide by design; any other global TensorFlow/Keras setting a
test changes must be restored by it, which an autouse fixture enforces.

Without TensorFlow (the JAX tier, `make test-jax`: a virtualenv without it,
``KERAS_BACKEND=jax``) there is no device split, the fixture guards the Keras
settings only, and a test module that cannot be imported without TensorFlow is
skipped at collection with its reason (`pytest_pycollect_makemodule` below); a
single test says so with `keras_aux.testing.requires_tensorflow`.
"""

import importlib.util
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# XLA's CPU backend compiles without LLVM's optimisation passes: the tests compile hundreds
# of small functions and run each a few times, so compiling dominates (a third of
# aggregators_test.py's time). The arithmetic is the same IEEE operations either way (XLA
# enables no fast-math on CPU); subprocesses inherit it. Benchmarks never set it.
if "--xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (
        os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
    ).strip()

HAS_TENSORFLOW = importlib.util.find_spec("tensorflow") is not None
if not HAS_TENSORFLOW:
    # Keras would default to the TensorFlow backend and fail at import: JAX is the other one.
    os.environ.setdefault("KERAS_BACKEND", "jax")

if HAS_TENSORFLOW:
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )
else:
    tf = None

# Imported after the device split: nothing may initialise TensorFlow before it.
import keras  # noqa: E402
import pytest  # noqa: E402

ROOT = os.path.dirname(os.path.abspath(__file__))


def _set_op_determinism(enabled):
    from keras_aux import compat

    if enabled:
        tf.config.experimental.enable_op_determinism()
    else:
        compat.disable_op_determinism()


def _dtype_policy():
    """The global dtype policy new layers get, by name, read without side effects
    (`keras.config.dtype_policy()` would fix an unset policy to the current
    floatx), and the raw setting to restore."""
    from keras_aux import compat

    policy = compat.raw_global_dtype_policy()
    return (keras.config.floatx() if policy is None else policy.name), policy


def _set_dtype_policy(policy):
    from keras_aux import compat

    compat.set_raw_global_dtype_policy(policy)


def _is_op_determinism_enabled():
    from keras_aux import compat

    return compat.is_op_determinism_enabled()


# Process-global TF/Keras settings a test may change but must restore:
# name → (read: () → (value compared, value restored), restore).
# keras_aux is imported by the first test, not here: a test module that cannot import it
# (without TensorFlow) is then reported by collection, naming why.
_GLOBAL_STATE = {
    "Keras floatx (keras.config.set_floatx)": (
        lambda: (keras.config.floatx(),) * 2,
        keras.config.set_floatx,
    ),
    "Keras global dtype policy (keras.config.set_dtype_policy; floatx while unset)": (
        _dtype_policy,
        _set_dtype_policy,
    ),
}
if HAS_TENSORFLOW:
    _GLOBAL_STATE.update(
        {
            "op determinism (tf.config.experimental.enable_op_determinism)": (
                lambda: (_is_op_determinism_enabled(),) * 2,
                _set_op_determinism,
            ),
            "tf.config.run_functions_eagerly": (
                lambda: (tf.config.functions_run_eagerly(),) * 2,
                tf.config.run_functions_eagerly,
            ),
        }
    )


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


# ---------------------------------------------------------------------------------------------
# Without TensorFlow: test modules that need it are skipped at collection, saying why.
# ---------------------------------------------------------------------------------------------


def _relative(path):
    """``path`` relative to the repository, with ``/`` separators."""
    return os.path.relpath(path, ROOT).replace(os.sep, "/")


def _import_site(error):
    """``(file, line)`` in this repository where the failed import was written: the innermost
    frame of ``error``'s traceback in the repository's own code (not in a virtualenv, nor in
    `keras_aux.utils.optional`, whose `require_tensorflow` only carries out an import asked
    for elsewhere), or None."""
    site = None
    tb = error.__traceback__
    while tb is not None:
        filename = os.path.abspath(tb.tb_frame.f_code.co_filename)
        relative = _relative(filename)
        if (
            not relative.startswith("..")
            and not relative.startswith(".venv")
            and "site-packages" not in relative
            and relative != "keras_aux/utils/optional.py"
        ):
            site = (relative, tb.tb_lineno)
        tb = tb.tb_next
    return site


def _missing_tensorflow(error):
    """True when ``error`` says TensorFlow is absent: ``import tensorflow[.x]`` failed, or a
    TensorFlow-only part of keras-aux raised its `MissingExtraError` (extra "tensorflow")."""
    if getattr(error, "extra", None) == "tensorflow":
        return True
    name = getattr(error, "name", None) or ""
    return isinstance(error, ModuleNotFoundError) and name.split(".")[0] == "tensorflow"


def _skip_reason(test_file, error):
    """Why the test module ``test_file`` is skipped without TensorFlow, or None when its failed
    import is an error: library code imported TensorFlow at import time."""
    site = _import_site(error)
    where = f"{site[0]}:{site[1]}" if site else "an import"
    if site is None or site[0] == test_file:
        return f"TensorFlow-only test module ({where} imports TensorFlow; not installed here)"
    if getattr(error, "extra", None) == "tensorflow":
        return f"uses a TensorFlow-only part of keras-aux ({where}): {error}"
    return None


class _ModuleWithoutTensorFlow(pytest.Module):
    """A test module collected where TensorFlow is not installed: skipped, with the reason,
    when importing it fails for want of TensorFlow (`_skip_reason`); an error naming the file
    and line when the import that failed is library code that should not need TensorFlow."""

    def collect(self):
        try:
            return super().collect()
        except self.CollectError as collect_error:
            error = collect_error.__cause__
            if error is None or not _missing_tensorflow(error):
                raise
            reason = _skip_reason(_relative(self.path), error)
            if reason is None:
                site = _import_site(error)
                raise self.CollectError(
                    f"{site[0]}:{site[1]} imports TensorFlow when imported, and TensorFlow is not "
                    "installed here: library code must import it where it is used "
                    "(keras_aux.utils.optional.require_tensorflow / LazyTensorFlow).\n\n"
                    f"{collect_error}"
                ) from error
            pytest.skip(reason, allow_module_level=True)


def pytest_pycollect_makemodule(module_path, parent):
    """Without TensorFlow, test modules are collected by `_ModuleWithoutTensorFlow`."""
    if HAS_TENSORFLOW:
        return None
    return _ModuleWithoutTensorFlow.from_parent(parent, path=module_path)


def pytest_collection_modifyitems(config, items):
    """Marks the integration tier: every test of `tests/` but the install
    checks, beside the colocated tests marked ``integration`` (those that
    start one process per backend). `make test` runs ``-m "not integration"``
    (the fast tier), then ``-m integration``."""
    install = os.path.join(ROOT, "tests", "test_install.py")
    integration_dir = os.path.join(ROOT, "tests") + os.sep
    for item in items:
        path = str(item.path)
        if path.startswith(integration_dir) and path != install:
            item.add_marker(pytest.mark.integration)
