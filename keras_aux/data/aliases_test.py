"""The 0.1 paths under `keras_aux.data` still work, are the new modules themselves, and warn."""

import importlib
import os
import subprocess
import sys
import warnings

import pytest

import keras_aux

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MESSAGE = "keras_aux.data is now keras_aux.audio and keras_aux.datasets"

# 0.1 submodule → the module it now is.
MOVED = {
    "keras_aux.data.audio": "keras_aux.audio.decode",
    "keras_aux.data.pipeline": "keras_aux.audio.pipeline",
    "keras_aux.data.datasets": "keras_aux.audio.datasets",
    "keras_aux.data.synthetic_music": "keras_aux.audio.synthetic_music",
    "keras_aux.data.tfds_builders": "keras_aux.audio.tfds_builders",
    "keras_aux.data.images": "keras_aux.datasets.images",
    "keras_aux.data.synthetic_tasks": "keras_aux.datasets.synthetic_tasks",
}
# What 0.1's `keras_aux.data` exported → where it is defined now.
EXPORTS_0_1 = {
    "keras_aux.audio.datasets": [
        "AUDIO_EXTENSIONS",
        "GTZAN_GENRES",
        "KNOWN_BROKEN_FMA_IDS",
        "AudioFileList",
        "class_folders",
        "fma_small",
        "fma_track_path",
        "fsdd",
        "gtzan",
        "stratified_split",
    ],
    "keras_aux.datasets.images": [
        "FASHION_MNIST_CLASSES",
        "DatasetFormatError",
        "load_cifar10",
        "load_cifar100",
        "load_digits",
        "load_fashion_mnist",
        "load_mnist",
        "read_idx",
    ],
    "keras_aux.hierarchy": [
        "FASHION_MNIST_COARSE",
        "FASHION_MNIST_COARSE_NAMES",
        "cifar100_grouping",
        "coarse_and_fine",
    ],
    "keras_aux.models.task_data": ["TaskData", "zip_tasks"],
}
# The TFDS names of the builders (the folders of prepared data under a data_dir).
TFDS_NAMES = {
    "FmaSmall": "keras_aux_fma_small",
    "Gtzan": "keras_aux_gtzan",
    "Fsdd": "keras_aux_fsdd",
    "ClassFolders": "keras_aux_class_folders",
}


@pytest.fixture
def fresh(monkeypatch):
    """Forgets `keras_aux.data` and its submodules (put back after the test), so that the next
    import runs them again; the new modules stay loaded."""
    for name in list(sys.modules):
        if name == "keras_aux.data" or name.startswith("keras_aux.data."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.delattr(keras_aux, "data", raising=False)


def test_import_warns_once_naming_the_new_packages_at_the_importing_line(fresh):
    with pytest.warns(DeprecationWarning, match=MESSAGE) as record:
        import keras_aux.data.images  # noqa: F401
    assert len(record) == 1
    assert record[0].filename == __file__  # stacklevel: the line that imports, not keras-aux
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        import keras_aux.data.synthetic_tasks  # noqa: F401  (the package is loaded: no warning)


@pytest.mark.parametrize("old", sorted(MOVED))
def test_each_0_1_submodule_is_the_new_module(old, fresh):
    if old.endswith("tfds_builders"):
        pytest.importorskip("tensorflow_datasets")
    new = importlib.import_module(MOVED[old])
    with pytest.warns(DeprecationWarning, match=MESSAGE):
        alias = importlib.import_module(old)
    assert alias is new and sys.modules[old] is new
    # `from keras_aux.data import audio` and attribute access give the same object.
    package = sys.modules["keras_aux.data"]
    assert getattr(package, old.rsplit(".", 1)[1]) is new


def test_0_1_names_are_re_exported_from_their_new_modules(fresh):
    with pytest.warns(DeprecationWarning, match=MESSAGE):
        import keras_aux.data as data
    for module, names in EXPORTS_0_1.items():
        module = importlib.import_module(module)
        for name in names:
            assert getattr(data, name) is getattr(module, name), name
    # 0.1 imported these two submodules with the package.
    assert data.datasets is importlib.import_module("keras_aux.audio.datasets")
    assert data.images is importlib.import_module("keras_aux.datasets.images")
    # The images module keeps the hierarchies 0.1 defined there (re-exported, defined once).
    assert data.images.coarse_and_fine is keras_aux.hierarchy.coarse_and_fine


def test_patching_the_0_1_path_reaches_the_loaders(fresh, monkeypatch):
    with pytest.warns(DeprecationWarning, match=MESSAGE):
        from keras_aux.data import images as old_images
    from keras_aux.datasets import images

    monkeypatch.setattr(old_images, "SYSTEM_DIRS", {"fashion-mnist": ("/nonexistent/x",)})
    assert images.SYSTEM_DIRS == {"fashion-mnist": ("/nonexistent/x",)}


def test_tfds_builder_names_do_not_change(fresh):
    tfds = pytest.importorskip("tensorflow_datasets")
    from keras_aux.audio import tfds_builders

    with pytest.warns(DeprecationWarning, match=MESSAGE):
        from keras_aux.data import tfds_builders as old

    for cls, name in TFDS_NAMES.items():
        builder = getattr(tfds_builders, cls)
        assert builder.name == name and getattr(old, cls) is builder
        assert tfds.builder_cls(name) is builder  # registered once, under the same name


def test_a_script_sees_the_warning_with_the_default_filters():
    env = {k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [ROOT, env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    result = subprocess.run(
        [sys.executable, "-c", "import keras_aux\nimport keras_aux.data.audio\n"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert f"<string>:2: DeprecationWarning: {MESSAGE}" in result.stderr, result.stderr
