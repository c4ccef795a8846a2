"""Optional dependencies: import them where they are used, and say which extra installs them.

`import keras_aux` needs only Keras, NumPy and Keras's backend, TensorFlow or JAX
(`require_keras` names the extra of a missing one). Everything else (soundfile,
tensorflow-datasets, keras-tuner, scikit-learn...) belongs to a pip extra of keras-aux and is
imported through `require` inside the function or module that uses it, so a missing package
fails there, with an `ImportError` that names the extra to install (see BUILD.md, "Installing").
TensorFlow itself is imported that way by the TensorFlow-only parts (`require_tensorflow`), so
they fail when used under ``KERAS_BACKEND=jax`` without TensorFlow, not at ``import keras_aux``.

This module imports nothing but the standard library: `keras_aux/__init__.py` calls
`require_keras` before anything imports Keras.
"""

import importlib
import importlib.util
import re

# The oldest TensorFlow the `tensorflow`, `tensorflow-cpu` and `gpu` extras allow (setup.py) and
# the oldest-versions CI tier runs (requirements/oldest.txt). tests/test_install.py checks that
# the installed metadata says the same.
TENSORFLOW_MIN = (2, 16)

TENSORFLOW_EXTRAS = (
    '`pip install "keras-aux[tensorflow]"` (the standard `tensorflow` wheel), '
    '`pip install "keras-aux[tensorflow-cpu]"` (CPU only, smaller) or '
    '`pip install "keras-aux[gpu]"` (`tensorflow[and-cuda]`, brings CUDA and cuDNN)'
)
# The extra `MissingExtraError.extra` names for TensorFlow (the message names all three).
TENSORFLOW_EXTRA = "tensorflow"

JAX_EXTRAS = (
    '`pip install "keras-aux[jax]"` (CPU; on an NVIDIA GPU add `pip install "jax[cuda12]"`) and '
    '`KERAS_BACKEND=jax` (BUILD.md, "Backends")'
)


class MissingExtraError(ImportError):
    """An optional dependency is missing (or broken); ``extra`` names the pip extra to install.

    Attributes:
        package: the distribution name on PyPI (``scikit-learn``).
        extra: the keras-aux extra that installs it (``sklearn``).
    """

    def __init__(self, message, *, name, package, extra):
        super().__init__(message, name=name)
        self.package = package
        self.extra = extra


def _is_missing(error, module):
    """True when ``error`` says that ``module`` itself (or a parent package) is absent, rather
    than that it is installed but one of its own imports failed."""
    if not isinstance(error, ModuleNotFoundError) or error.name is None:
        return False
    return module == error.name or module.startswith(error.name + ".")


def require(module, *, extra, purpose, package=None):
    """Imports and returns ``module``, or raises `MissingExtraError` naming the extra.

    Args:
        module: the import name (``"sklearn.cluster"``).
        extra: the keras-aux extra that installs it (``"sklearn"``).
        purpose: what it is needed for, completing "<package> is needed <purpose>"
            (``"for the K-Means baseline"``).
        package: the distribution name when it differs from the import name
            (``"scikit-learn"``).

    Returns:
        The imported module.

    Raises:
        MissingExtraError: the package is not installed, or importing it failed.
    """
    package = package or module.split(".")[0]
    try:
        return importlib.import_module(module)
    except ImportError as error:
        install = f'pip install "keras-aux[{extra}]"'
        if _is_missing(error, module):
            message = f"{package} is needed {purpose}, and it is not installed: {install}"
        else:
            message = (
                f"{package} is needed {purpose}, but importing it failed ({error}); "
                f"reinstall it: {install}"
            )
        raise MissingExtraError(message, name=module, package=package, extra=extra) from error


def _version_tuple(version):
    """``"2.16.2"`` / ``"2.21.0rc1"`` → ``(2, 16)``; ``(0, 0)`` for an unreadable version."""
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match[1]), int(match[2])) if match else (0, 0)


def _tensorflow_message(problem, purpose):
    """The message of a missing or too old TensorFlow. ``problem``: ``None`` (not installed) or
    the version found; ``purpose``: what needs it, or None for Keras's backend."""
    minimum = ".".join(map(str, TENSORFLOW_MIN))
    what = "Keras's backend is TensorFlow" if purpose is None else f"TensorFlow is needed {purpose}"
    if problem is None:
        what += ", and it is not installed"
    else:
        what += f", and keras-aux needs TensorFlow >= {minimum} (with Keras 3); found {problem}"
    how = (
        f"Install TensorFlow >= {minimum} yourself, or with one of the extras: {TENSORFLOW_EXTRAS}."
    )
    if purpose is None:
        return f"{what}. {how} Or run keras-aux on JAX: {JAX_EXTRAS}."
    return f"{what}. {how} (Only this part needs it: the rest of keras-aux also runs on JAX.)"


def require_tensorflow(purpose=None):
    """Imports TensorFlow (>= `TENSORFLOW_MIN`), or raises an error that names its extras.

    TensorFlow is keras-aux's default backend and the one backend of its TensorFlow-only parts
    (the ``tf.data`` audio pipelines, the tensorflow-datasets builders, the waveform SavedModel
    export). keras-aux does not list it among its own requirements, so that installing keras-aux
    never replaces the TensorFlow build a project already has (CPU, CUDA, or a vendor's); the
    extras `tensorflow`, `tensorflow-cpu` and `gpu` install one. A TensorFlow-only part calls this
    where it is used, so ``import keras_aux`` works without TensorFlow (``KERAS_BACKEND=jax``).

    Args:
        purpose: what needs it, completing "TensorFlow is needed <purpose>" (``"for the tf.data
            audio pipeline (keras_aux.audio.pipeline)"``); None when it is Keras's backend.

    Returns:
        The ``tensorflow`` module.

    Raises:
        MissingExtraError: TensorFlow is not installed, or is older than `TENSORFLOW_MIN`
            (``extra`` is ``"tensorflow"``; the message names all three TensorFlow extras).
    """
    try:
        tf = importlib.import_module("tensorflow")
    except ImportError as error:
        if not _is_missing(error, "tensorflow"):
            raise
        raise MissingExtraError(
            _tensorflow_message(None, purpose),
            name="tensorflow",
            package="tensorflow",
            extra=TENSORFLOW_EXTRA,
        ) from error
    found = getattr(tf, "__version__", "0.0")
    if _version_tuple(found) < TENSORFLOW_MIN:
        raise MissingExtraError(
            _tensorflow_message(found, purpose),
            name="tensorflow",
            package="tensorflow",
            extra=TENSORFLOW_EXTRA,
        )
    return tf


class LazyTensorFlow:
    """Stands for the ``tensorflow`` module in a TensorFlow-only module of keras-aux, importing it
    on first use: ``tf = LazyTensorFlow("for ...")`` at module level, then ``tf.data...`` as usual.

    So the module imports without TensorFlow (``import keras_aux.audio`` under
    ``KERAS_BACKEND=jax``), and using it there raises `MissingExtraError` naming the TensorFlow
    extras (`require_tensorflow`), instead of ``import keras_aux`` failing.

    Args:
        purpose: completes "TensorFlow is needed <purpose>" (``"for the tf.data audio pipeline
            (keras_aux.audio.pipeline)"``).
    """

    def __init__(self, purpose):
        self._purpose = purpose
        self._module = None

    def __getattr__(self, name):
        if name.startswith("__"):  # copy, pickle, inspect... probing: not a use of TensorFlow
            raise AttributeError(name)
        if self._module is None:
            self._module = require_tensorflow(self._purpose)
        return getattr(self._module, name)

    def __repr__(self):
        state = "not imported yet" if self._module is None else "imported"
        return f"<LazyTensorFlow {self._purpose!r} ({state})>"


def tensorflow_available():
    """Whether TensorFlow is installed, without importing it."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # `sys.modules["tensorflow"] = None`, or a broken entry
        return False


def require_keras():
    """Imports Keras, checking its backend: the clear error for a backend that is not installed.

    Keras picks its backend at import (``KERAS_BACKEND``, else ``~/.keras/keras.json``, else
    TensorFlow) and fails there with a bare ``ModuleNotFoundError`` when that backend is absent.
    keras-aux runs on TensorFlow and on JAX; this says which extra installs the chosen one.

    Returns:
        The ``keras`` module.

    Raises:
        MissingExtraError: Keras's backend is TensorFlow or JAX and it is not installed, or it is
            a TensorFlow older than `TENSORFLOW_MIN`.
    """
    try:
        keras = importlib.import_module("keras")
    except ImportError as error:
        top = (error.name or "").split(".")[0] if isinstance(error, ModuleNotFoundError) else ""
        if top == "tensorflow":
            require_tensorflow()  # raises, naming the extras, unless TensorFlow itself is broken
        if top in ("jax", "jaxlib"):
            raise MissingExtraError(
                f"Keras's backend is JAX (KERAS_BACKEND=jax), which is not installed: "
                f"{JAX_EXTRAS}.",
                name="jax",
                package="jax",
                extra="jax",
            ) from error
        raise
    if keras.backend.backend() == "tensorflow":
        require_tensorflow()
    return keras


__all__ = [
    "TENSORFLOW_MIN",
    "LazyTensorFlow",
    "MissingExtraError",
    "require",
    "require_keras",
    "require_tensorflow",
    "tensorflow_available",
]
