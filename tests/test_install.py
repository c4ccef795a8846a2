"""keras-aux installed beside a project's own stack (BUILD.md, "Installing").

- `import keras_aux` needs Keras, NumPy and Keras's backend only: it loads no optional package
  and works with all of them absent (checked in fresh interpreters).
- Under ``KERAS_BACKEND=jax`` it loads no TensorFlow, and works with TensorFlow absent; each
  TensorFlow-only part raises `MissingExtraError` naming the TensorFlow extras when used. On the
  JAX tier (`make test-jax`) TensorFlow is really not installed.
- Each optional package fails where it is used with an `ImportError` that names the pip extra.
- The ranges in the package metadata are what CI tests: their lower bounds are the versions of
  requirements/oldest.txt, and requirements/locked.txt lies inside them.

absl is not checked: TensorFlow and Keras import it themselves. sklearn, scipy and matplotlib
are not checked in `sys.modules` either: Keras imports them on its own when they are installed,
so the test blocks them instead and checks that keras-aux still imports.
"""

import importlib
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import textwrap
import types

import numpy as np
import pytest

from keras_aux.utils import optional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Only keras-aux could import these (Keras and TensorFlow never do).
NEVER_AT_IMPORT = [
    "soundfile",
    "tensorflow_datasets",
    "keras_tuner",
    "librosa",
    "importlib_resources",
    "keras_aux.audio",
    "keras_aux.data",
    "keras_aux.datasets",
    "keras_aux.tuning",
]
# What the extras install; `import keras_aux` must work without any of them.
OPTIONAL = [
    "soundfile",
    "tensorflow_datasets",
    "keras_tuner",
    "sklearn",
    "scipy",
    "matplotlib",
    "librosa",
    "importlib_resources",
]
# Modules of keras-aux that need no extra.
CORE_MODULES = [
    "keras_aux",
    "keras_aux.architectures",
    "keras_aux.audio",
    "keras_aux.audio.datasets",
    "keras_aux.audio.decode",
    "keras_aux.audio.pipeline",
    "keras_aux.audio.synthetic_music",
    "keras_aux.baselines",
    "keras_aux.data",  # the 0.1 path, kept as aliases
    "keras_aux.datasets",
    "keras_aux.datasets.images",
    "keras_aux.datasets.synthetic_tasks",
    "keras_aux.hierarchy",
    "keras_aux.layers",
    "keras_aux.losses",
    "keras_aux.metrics",
]


def run_python(code, **environ):
    """Runs ``code`` in a fresh interpreter (this one's), from the repository root, with the
    environment variables ``environ`` added."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", **environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )


def last_json_line(result):
    """The JSON the subprocess printed last, or a failure showing its output."""
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_loads_no_optional_package():
    result = run_python(
        f"""
        import json, sys
        import keras_aux
        print(json.dumps(sorted(m for m in {NEVER_AT_IMPORT!r} if m in sys.modules)))
        """
    )
    assert last_json_line(result) == []


def test_core_modules_import_without_any_optional_package():
    import keras

    # scipy is a requirement of jax itself: the JAX backend cannot run without it.
    optional_here = [m for m in OPTIONAL if not (m == "scipy" and keras.backend.backend() == "jax")]
    result = run_python(
        f"""
        import importlib, json, sys
        for name in {optional_here!r}:
            sys.modules[name] = None  # `import name` now raises ModuleNotFoundError
        for name in {CORE_MODULES!r}:
            importlib.import_module(name)
        print(json.dumps("ok"))
        """
    )
    assert last_json_line(result) == "ok"


def test_tensorflow_backend_without_tensorflow_names_the_extras():
    # Keras's default backend is TensorFlow: without it, `require_keras` names the extras.
    result = run_python(
        """
        import json, sys
        sys.modules["tensorflow"] = None
        try:
            import keras_aux
        except ImportError as error:
            print(json.dumps([str(error), getattr(error, "extra", None)]))
        else:
            print(json.dumps(["imported", None]))
        """,
        KERAS_BACKEND="tensorflow",
    )
    message, extra = last_json_line(result)
    assert extra == "tensorflow", message
    assert message.startswith("Keras's backend is TensorFlow, and it is not installed"), message
    assert "Install TensorFlow >= 2.16 yourself" in message, message
    for name in ("tensorflow", "tensorflow-cpu", "gpu", "jax"):
        assert f'keras-aux[{name}]"' in message, message


# ---------------------------------------------------------------------------------------------
# Without TensorFlow: KERAS_BACKEND=jax (issue 22 §2).
# ---------------------------------------------------------------------------------------------

needs_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None,
    reason="jax is not installed here (the `jax` extra; the oldest tier has none)",
)

# TensorFlow is blocked in the subprocess where it is installed, so any import of it fails.
_BLOCK_TENSORFLOW = """
import importlib.util, json, sys
if importlib.util.find_spec("tensorflow") is not None:
    sys.modules["tensorflow"] = None  # `import tensorflow` now raises ModuleNotFoundError
"""


@needs_jax
def test_import_under_jax_loads_no_tensorflow():
    result = run_python(
        _BLOCK_TENSORFLOW
        + f"""
import keras
import keras_aux
for name in {CORE_MODULES!r}:
    importlib.import_module(name)
loaded = sorted(m for m, v in sys.modules.items() if m.split(".")[0] == "tensorflow" and v)
print(json.dumps([keras.backend.backend(), loaded]))
""",
        KERAS_BACKEND="jax",
    )
    assert last_json_line(result) == ["jax", []]


# A TensorFlow-only part, called as a user would: each must raise MissingExtraError naming the
# TensorFlow extras when used without TensorFlow, not when `keras_aux` is imported.
TENSORFLOW_ONLY_CALLS = {
    "decode.resample": "from keras_aux.audio import decode; decode.resample(np.zeros(8), 8, 4)",
    "decode.decode_audio": "from keras_aux.audio import decode; decode.decode_audio('a.wav')",
    "pipeline.random_frame_crop": (
        "from keras_aux.audio import pipeline; pipeline.random_frame_crop(np.zeros((4, 2)), 2)"
    ),
    "pipeline.audio_pipeline": (
        "from keras_aux.audio import pipeline; pipeline.audio_pipeline(['a.wav'], [0], training=0)"
    ),
    "architectures.export_waveform_classifier": (
        "from keras_aux import architectures; "
        "architectures.export_waveform_classifier(None, None, 'saved_model')"
    ),
    "import keras_aux.audio.tfds_builders": "import keras_aux.audio.tfds_builders",
}


@needs_jax
def test_tensorflow_only_parts_name_the_extras_when_used_under_jax():
    result = run_python(
        _BLOCK_TENSORFLOW
        + f"""
import numpy as np
import keras_aux
from keras_aux.utils.optional import MissingExtraError
out = {{}}
for case, code in {TENSORFLOW_ONLY_CALLS!r}.items():
    try:
        exec(code)
    except MissingExtraError as error:
        out[case] = [error.extra, error.package, str(error)]
    else:
        out[case] = "no error"
print(json.dumps(out))
""",
        KERAS_BACKEND="jax",
    )
    raised = last_json_line(result)
    assert sorted(raised) == sorted(TENSORFLOW_ONLY_CALLS)
    for case, got in raised.items():
        assert got != "no error", case
        extra, package, message = got
        assert (extra, package) == ("tensorflow", "tensorflow"), (case, message)
        assert message.startswith("TensorFlow is needed "), (case, message)
        assert "not installed" in message, (case, message)
        for name in ("tensorflow", "tensorflow-cpu", "gpu"):
            assert f'pip install "keras-aux[{name}]"' in message, (case, message)


def test_jax_tier_has_no_tensorflow():
    """The JAX tier's virtualenv (`make test-jax` sets KERAS_AUX_TEST_TIER=jax) really has no
    TensorFlow, and Keras runs on JAX there: else it would test nothing."""
    if os.environ.get("KERAS_AUX_TEST_TIER") != "jax":
        pytest.skip("not the JAX tier (make test-jax sets KERAS_AUX_TEST_TIER=jax)")
    import keras

    assert importlib.util.find_spec("tensorflow") is None, "TensorFlow is installed"
    assert importlib.util.find_spec("tensorflow_datasets") is None
    assert keras.backend.backend() == "jax"
    assert "tensorflow" not in sys.modules


# ---------------------------------------------------------------------------------------------
# Each lazy import: block the package in this process and check the message.
# ---------------------------------------------------------------------------------------------


def block(monkeypatch, name):
    """Makes ``import name`` (and of its submodules) fail as if it were not installed; the
    monkeypatch fixture puts `sys.modules` back after the test."""
    monkeypatch.setitem(sys.modules, name, None)
    for key in list(sys.modules):
        if key.startswith(name + "."):
            monkeypatch.setitem(sys.modules, key, None)


def reimport(monkeypatch, module):
    """Imports ``module`` anew (the old one is restored after the test)."""
    monkeypatch.delitem(sys.modules, module, raising=False)
    return importlib.import_module(module)


def _inspect_wav():
    from keras_aux.audio import decode

    decode.inspect_audio_file("clip.wav")


def _decode_flac():
    tf = pytest.importorskip("tensorflow", reason="decode_audio is TensorFlow-only")
    from keras_aux.audio import decode

    decode.decode_audio(tf.constant("clip.flac"), tf.constant(False))


def _write_synthetic_music(tmp_path):
    from keras_aux.audio import synthetic_music

    synthetic_music.write_synthetic_music(tmp_path, clips_per_genre=1, seconds=0.5)


def _decode_audio_bytes(tmp_path):
    pytest.importorskip("tensorflow_datasets")
    from keras_aux.audio import tfds_builders

    tfds_builders.decode_audio_bytes(b"RIFF")


def _load_digits():
    from keras_aux.datasets import images

    images.load_digits()


def _kmeans():
    from keras_aux import baselines

    baselines.kmeans_auxiliary_labels(np.zeros((4, 2)), np.zeros(4, np.int64), [2])


LAZY = {
    "decode.inspect_audio_file": ("soundfile", "audio", "soundfile", lambda tmp: _inspect_wav()),
    "decode.decode_audio": ("soundfile", "audio", "soundfile", lambda tmp: _decode_flac()),
    "synthetic_music": ("soundfile", "audio", "soundfile", _write_synthetic_music),
    "tfds_builders.decode_audio_bytes": ("soundfile", "audio", "soundfile", _decode_audio_bytes),
    "images.load_digits": ("sklearn", "sklearn", "scikit-learn", lambda tmp: _load_digits()),
    "baselines.kmeans": ("sklearn", "sklearn", "scikit-learn", lambda tmp: _kmeans()),
}


@pytest.mark.parametrize("case", sorted(LAZY))
def test_missing_package_names_its_extra(case, monkeypatch, tmp_path):
    module, extra, package, call = LAZY[case]
    block(monkeypatch, module)
    with pytest.raises(optional.MissingExtraError) as info:
        call(tmp_path)
    message = str(info.value)
    assert info.value.extra == extra and info.value.package == package
    assert f'pip install "keras-aux[{extra}]"' in message and "not installed" in message, message
    assert message.startswith(f"{package} is needed "), message


@pytest.mark.parametrize(
    "module,blocked,extra,package",
    [
        ("keras_aux.tuning", "keras_tuner", "tuning", "keras-tuner"),
        ("keras_aux.audio.tfds_builders", "tensorflow_datasets", "tfds", "tensorflow-datasets"),
    ],
)
def test_module_that_subclasses_an_optional_package_names_its_extra(
    module, blocked, extra, package, monkeypatch
):
    if module == "keras_aux.audio.tfds_builders":
        pytest.importorskip("tensorflow", reason="tfds_builders is TensorFlow-only")
    block(monkeypatch, blocked)
    with pytest.raises(optional.MissingExtraError) as info:
        reimport(monkeypatch, module)
    assert info.value.extra == extra
    assert str(info.value) == (
        f"{package} is needed for {module}, and it is not installed: "
        f'pip install "keras-aux[{extra}]"'
    )


def test_broken_package_is_reported_as_broken_not_missing(monkeypatch, tmp_path):
    (tmp_path / "broken_pkg_for_test.py").write_text("import a_module_that_is_not_there_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(optional.MissingExtraError) as info:
        optional.require("broken_pkg_for_test", extra="audio", purpose="for a test")
    message = str(info.value)
    assert "importing it failed" in message and "a_module_that_is_not_there_xyz" in message
    assert 'pip install "keras-aux[audio]"' in message


def test_require_returns_the_module():
    assert optional.require("json", extra="audio", purpose="for a test") is json


def test_require_tensorflow_without_tensorflow(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(optional.MissingExtraError) as info:
        optional.require_tensorflow()
    assert info.value.extra == "tensorflow"
    for extra in ("tensorflow", "tensorflow-cpu", "gpu"):
        assert f'keras-aux[{extra}]"' in str(info.value)
    with pytest.raises(optional.MissingExtraError, match="^TensorFlow is needed for a test, and"):
        optional.require_tensorflow("for a test")


def test_lazy_tensorflow_imports_on_first_use(monkeypatch):
    lazy = optional.LazyTensorFlow("for a test")
    assert "not imported yet" in repr(lazy)
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    with pytest.raises(optional.MissingExtraError, match="^TensorFlow is needed for a test, and"):
        getattr(lazy, "constant")  # noqa: B009 (the attribute access is the test)
    fake = types.ModuleType("tensorflow")
    fake.__version__ = "2.21.0"
    fake.constant = "the constant"
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    assert lazy.constant == "the constant"


def test_tensorflow_available_does_not_import_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", None)
    assert optional.tensorflow_available() is False


def test_jax_lock_has_no_tensorflow():
    pins = _pins("locked-jax.txt")
    assert "jax" in pins and "keras" in pins
    assert not [name for name in pins if name.startswith("tensorflow")], pins
    # Every package both tiers install has the same version in both.
    locked = _pins("locked.txt")
    assert {n: v for n, v in pins.items() if locked.get(n, v) != v} == {}


@pytest.mark.parametrize("version,ok", [("2.15.1", False), ("2.16.1", True), ("2.21.0rc1", True)])
def test_require_tensorflow_checks_the_version(version, ok, monkeypatch):
    fake = types.ModuleType("tensorflow")
    fake.__version__ = version
    monkeypatch.setitem(sys.modules, "tensorflow", fake)
    if ok:
        assert optional.require_tensorflow() is fake
    else:
        with pytest.raises(
            optional.MissingExtraError, match=f"needs TensorFlow >= 2.16 .*found {version}"
        ):
            optional.require_tensorflow()


# ---------------------------------------------------------------------------------------------
# The ranges are what was tested.
# ---------------------------------------------------------------------------------------------

# Extras that no CI tier installs in the oldest environment: `tfio` (nothing uses it), `jax`
# (needs numpy 2, the oldest TensorFlow numpy 1; its own tier, `make test-jax`, runs the version
# of requirements/locked-jax.txt, the lower bound's release) and `jax-cuda12` (needs a GPU).
UNTESTED_EXTRAS = {"tfio", "jax", "jax-cuda12"}


def _metadata_requirements():
    """(requirement, extra or None) of the installed keras-aux's metadata."""
    from packaging.requirements import Requirement

    try:
        requires = importlib.metadata.requires("keras-aux") or []
    except importlib.metadata.PackageNotFoundError:
        pytest.skip("keras-aux is not installed (pip install -e .): no metadata to check")
    result = []
    for text in requires:
        requirement = Requirement(text)
        extra = re.search(r"extra == ['\"]([^'\"]+)['\"]", str(requirement.marker or ""))
        result.append((requirement, extra[1] if extra else None))
    if not any(r.name == "keras" and ">=" in str(r.specifier) for r, _ in result):
        pytest.fail("the installed keras-aux metadata is older than setup.py: run `make install`")
    return result


def _pins(name):
    """``{normalized name: version}`` of a requirements file (``name==version`` lines)."""
    pins = {}
    with open(os.path.join(ROOT, "requirements", name), encoding="utf-8") as f:
        for line in f:
            line = line.split("#")[0].strip()
            if "==" in line:
                package, version = line.split("==")
                pins[package.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_tensorflow_minimum_matches_the_metadata():
    minimum = ".".join(map(str, optional.TENSORFLOW_MIN))
    specs = {
        str(spec)
        for requirement, extra in _metadata_requirements()
        if requirement.name in ("tensorflow", "tensorflow-cpu")
        for spec in requirement.specifier
        if spec.operator == ">="
    }
    assert specs == {f">={minimum}"}


def test_lower_bounds_are_the_oldest_tested_versions():
    from packaging.version import Version

    oldest = _pins("oldest.txt")
    for requirement, extra in _metadata_requirements():
        if extra in UNTESTED_EXTRAS:
            continue
        name = requirement.name.lower().replace("_", "-")
        lower = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
        assert lower, f"{requirement} has no lower bound"
        assert name in oldest, f"{name} is not in requirements/oldest.txt"
        pinned = Version(oldest[name])
        assert pinned.release[: len(lower[0].release)] == lower[0].release, (
            f"{requirement}: the oldest tested {name} is {pinned}, not the lower bound"
        )


@pytest.mark.parametrize("lock", ["locked.txt", "locked-jax.txt"])
def test_locked_stack_is_inside_the_ranges(lock):
    from packaging.version import Version

    locked = _pins(lock)
    for requirement, _ in _metadata_requirements():
        name = requirement.name.lower().replace("_", "-")
        if name in locked:
            assert Version(locked[name]) in requirement.specifier, (requirement, locked[name])
