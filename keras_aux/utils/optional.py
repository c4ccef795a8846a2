"""Optional dependencies: import them where they are used, and say which extra installs them.

`import keras_aux` needs only Keras, NumPy and TensorFlow. Everything else (soundfile,
tensorflow-datasets, keras-tuner, scikit-learn...) belongs to a pip extra of keras-aux and is
imported through `require` inside the function or module that uses it, so a missing package
fails there, with an `ImportError` that names the extra to install (see BUILD.md, "Installing").

This module imports nothing but the standard library: `keras_aux/__init__.py` can call
`require_tensorflow` before anything imports TensorFlow.
"""

import importlib
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


def require_tensorflow():
    """Imports TensorFlow, keras-aux's backend, or says how to install it.

    keras-aux does not list TensorFlow among its own requirements, so that installing it never
    replaces the TensorFlow build a project already has (CPU, CUDA, or a vendor's); the
    extras `tensorflow`, `tensorflow-cpu` and `gpu` install one.

    Returns:
        The ``tensorflow`` module.

    Raises:
        ImportError: TensorFlow is not installed, or is older than `TENSORFLOW_MIN`.
    """
    minimum = ".".join(map(str, TENSORFLOW_MIN))
    try:
        tf = importlib.import_module("tensorflow")
    except ImportError as error:
        if not _is_missing(error, "tensorflow"):
            raise
        raise ImportError(
            f"keras-aux runs on TensorFlow (>= {minimum}), which is not installed. Install "
            f"TensorFlow yourself, or with one of the extras: {TENSORFLOW_EXTRAS}.",
            name="tensorflow",
        ) from error
    found = getattr(tf, "__version__", "0.0")
    if _version_tuple(found) < TENSORFLOW_MIN:
        raise ImportError(
            f"keras-aux needs TensorFlow >= {minimum} (with Keras 3); found {found}. Upgrade "
            f"it, or install one of the extras: {TENSORFLOW_EXTRAS}.",
            name="tensorflow",
        )
    return tf


__all__ = ["TENSORFLOW_MIN", "MissingExtraError", "require", "require_tensorflow"]
