"""Local image datasets: the real Fashion-MNIST copy when installed, tiny
fixture files in each Keras cache layout, corrupt and missing files and
scikit-learn's digits. (The Human-baseline hierarchies are tested in
keras_aux/hierarchy_test.py.)"""

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest

from keras_aux import hierarchy
from keras_aux.datasets import images
from keras_aux.datasets.images import (
    DatasetFormatError,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty Keras cache as the only default location (no system folders)."""
    root = tmp_path / "keras_home" / "datasets"
    root.mkdir(parents=True)
    monkeypatch.setattr(images, "keras_cache_dirs", lambda: [root])
    monkeypatch.setattr(images, "SYSTEM_DIRS", {})
    return root


def write_idx(path, array, gz=True, magic=None):
    array = np.asarray(array)
    code = {np.dtype("uint8"): 0x08, np.dtype(">i4"): 0x0C}[array.dtype]
    header = bytes(magic) if magic is not None else bytes([0, 0, code, array.ndim])
    payload = header + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    with (gzip.open if gz else open)(path, "wb") as f:
        f.write(payload)


def idx_dataset(folder, gz=True, seed=0):
    """Writes the four idx files of a tiny MNIST-family dataset; returns it."""
    rng = np.random.default_rng(seed)
    data = {
        "train": (rng.integers(0, 256, (7, 28, 28), dtype=np.uint8), rng.integers(0, 10, 7)),
        "t10k": (rng.integers(0, 256, (3, 28, 28), dtype=np.uint8), rng.integers(0, 10, 3)),
    }
    suffix = ".gz" if gz else ""
    for split, (x, y) in data.items():
        write_idx(folder / f"{split}-images-idx3-ubyte{suffix}", x, gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte{suffix}", y.astype(np.uint8), gz)
    return data


def cifar_rows(x):
    """CIFAR's row layout: the red, green, blue 32×32 planes one after another."""
    return x.transpose(0, 3, 1, 2).reshape(len(x), -1)


def write_pickle(path, batch):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump({k.encode(): v for k, v in batch.items()}, f, protocol=2)


def assert_split(actual, x, y):
    np.testing.assert_array_equal(actual[0], x)
    np.testing.assert_array_equal(actual[1], y)
    assert actual[0].dtype == np.uint8 and actual[1].dtype == np.int64


# ---------------------------------------------------------------------------------------------
# The real data
# ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(
    not (DEBIAN_FASHION / "train-images-idx3-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST is not installed at {DEBIAN_FASHION} "
    "(apt-get install -y dataset-fashion-mnist)",
)
def test_real_fashion_mnist():
    (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert x_train.dtype == np.uint8 and y_train.dtype == np.int64
    # Fashion-MNIST is exactly balanced: 6,000 and 1,000 examples per class.
    np.testing.assert_array_equal(np.bincount(y_train), np.full(10, 6000))
    np.testing.assert_array_equal(np.bincount(y_test), np.full(10, 1000))
    assert x_train.max() == 255 and x_train.min() == 0


# ---------------------------------------------------------------------------------------------
# Fixture files in the Keras cache layouts
# ---------------------------------------------------------------------------------------------


def test_fashion_mnist_from_keras_cache_and_data_dir(cache, tmp_path):
    data = idx_dataset(cache / "fashion-mnist")
    train, test = load_fashion_mnist()
    assert_split(train, *data["train"])
    assert_split(test, *data["t10k"])
    # data_dir comes first: uncompressed files directly in it.
    other = idx_dataset(tmp_path / "mine", gz=False, seed=1)
    train, _ = load_fashion_mnist(tmp_path / "mine")
    assert_split(train, *other["train"])


def test_fashion_mnist_system_folder_is_searched_before_the_cache(cache, tmp_path, monkeypatch):
    idx_dataset(cache / "fashion-mnist", seed=0)
    system = idx_dataset(tmp_path / "usr_share", seed=2)
    monkeypatch.setattr(images, "SYSTEM_DIRS", {"fashion-mnist": (str(tmp_path / "usr_share"),)})
    train, _ = load_fashion_mnist(data_dir=tmp_path / "empty")
    assert_split(train, *system["train"])


def test_mnist_npz_and_idx(cache, tmp_path):
    rng = np.random.default_rng(3)
    arrays = {
        "x_train": rng.integers(0, 256, (6, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, 6).astype(np.uint8),
        "x_test": rng.integers(0, 256, (2, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, 2).astype(np.uint8),
    }
    np.savez(cache / "mnist.npz", **arrays)
    (x_train, y_train), (x_test, y_test) = load_mnist()
    assert_split((x_train, y_train), arrays["x_train"], arrays["y_train"])
    assert_split((x_test, y_test), arrays["x_test"], arrays["y_test"])
    data = idx_dataset(tmp_path / "d" / "mnist")
    train, _ = load_mnist(tmp_path / "d")
    assert_split(train, *data["train"])


def test_cifar10_pickles(cache):
    rng = np.random.default_rng(4)
    folder = cache / "cifar-10-batches-py"
    expected_x, expected_y = [], []
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        x = rng.integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
        y = rng.integers(0, 10, 2).tolist()
        write_pickle(folder / name, {"data": cifar_rows(x), "labels": y, "batch_label": name})
        expected_x.append(x)
        expected_y.append(y)
    (x_train, y_train), (x_test, y_test) = load_cifar10()
    assert_split((x_train, y_train), np.concatenate(expected_x[:5]), np.concatenate(expected_y[:5]))
    assert_split((x_test, y_test), expected_x[5], expected_y[5])
    assert x_train.shape == (10, 32, 32, 3)


def test_cifar100_pickles_and_label_modes(cache, tmp_path):
    rng = np.random.default_rng(5)
    folder = tmp_path / "mine" / "cifar-100-python"
    fine = {"train": np.array([0, 7, 99, 3]), "test": np.array([7, 0])}
    coarse = {"train": np.array([4, 1, 19, 4]), "test": np.array([1, 4])}
    x = {}
    for split in ("train", "test"):
        x[split] = rng.integers(0, 256, (len(fine[split]), 32, 32, 3), dtype=np.uint8)
        write_pickle(
            folder / split,
            {
                "data": cifar_rows(x[split]),
                "fine_labels": fine[split].tolist(),
                "coarse_labels": coarse[split].tolist(),
            },
        )
    train, test = load_cifar100(tmp_path / "mine")
    assert_split(train, x["train"], fine["train"])
    (_, y_coarse), _ = load_cifar100(tmp_path / "mine", label_mode="coarse")
    np.testing.assert_array_equal(y_coarse, coarse["train"])
    _, (x_test, y_both) = load_cifar100(tmp_path / "mine", label_mode="both")
    np.testing.assert_array_equal(x_test, x["test"])
    assert set(y_both) == {"coarse", "fine"}
    np.testing.assert_array_equal(y_both["fine"], fine["test"])
    np.testing.assert_array_equal(y_both["coarse"], coarse["test"])
    with pytest.raises(ValueError, match="label_mode"):
        load_cifar100(tmp_path / "mine", label_mode="superclass")


# ---------------------------------------------------------------------------------------------
# Corrupt and missing data
# ---------------------------------------------------------------------------------------------


def test_corrupt_idx_files_raise(tmp_path):
    labels = np.arange(5, dtype=np.uint8)
    write_idx(tmp_path / "bad_magic.gz", labels, magic=[1, 2, 8, 1])
    with pytest.raises(DatasetFormatError, match="magic"):
        read_idx(tmp_path / "bad_magic.gz")
    write_idx(tmp_path / "labels.gz", labels)
    with pytest.raises(
        DatasetFormatError, match=r"1 dimension\(s\); expected 3 \(magic 0x00000803\)"
    ):
        read_idx(tmp_path / "labels.gz", expected_ndim=3)
    np.testing.assert_array_equal(read_idx(tmp_path / "labels.gz", expected_ndim=1), labels)
    with gzip.open(tmp_path / "labels.gz", "rb") as f:
        payload = f.read()
    with gzip.open(tmp_path / "short.gz", "wb") as f:
        f.write(payload[:-2])
    with pytest.raises(DatasetFormatError, match="truncated"):
        read_idx(tmp_path / "short.gz")
    (tmp_path / "not_gzip.gz").write_bytes(b"hello, world")
    with pytest.raises(DatasetFormatError, match="cannot read"):
        read_idx(tmp_path / "not_gzip.gz")
    # Big-endian int32 values are read back in native order.
    write_idx(tmp_path / "ints", np.array([1, -2, 70000], dtype=">i4"), gz=False)
    np.testing.assert_array_equal(read_idx(tmp_path / "ints"), [1, -2, 70000])


def test_corrupt_dataset_files_raise(cache):
    folder = cache / "fashion-mnist"
    idx_dataset(folder)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.full(7, 12, dtype=np.uint8))
    with pytest.raises(DatasetFormatError, match=r"labels must be in \[0, 10\)"):
        load_fashion_mnist()
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(6, dtype=np.uint8))
    with pytest.raises(DatasetFormatError, match="7 images but 6 labels"):
        load_fashion_mnist()
    (cache / "mnist.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetFormatError, match="npz"):
        load_mnist()
    cifar = cache / "cifar-100-python"
    write_pickle(cifar / "train", {"data": np.zeros((1, 3072), np.uint8), "fine_labels": [0]})
    write_pickle(cifar / "test", {"data": np.zeros((1, 3072), np.uint8), "fine_labels": [0]})
    with pytest.raises(DatasetFormatError, match="coarse_labels"):
        load_cifar100()


@pytest.mark.parametrize(
    "loader, dataset",
    [
        (load_fashion_mnist, "fashion-mnist"),
        (load_mnist, "mnist"),
        (load_cifar10, "cifar-10"),
        (load_cifar100, "cifar-100"),
    ],
)
def test_missing_data_names_every_place_searched(cache, tmp_path, monkeypatch, loader, dataset):
    monkeypatch.setattr(images, "SYSTEM_DIRS", {"fashion-mnist": ("/nonexistent/system",)})
    with pytest.raises(FileNotFoundError) as info:
        loader(data_dir=tmp_path / "given")
    message = str(info.value)
    assert dataset in message and "nothing is downloaded" in message
    assert str(tmp_path / "given") in message and str(cache) in message
    if dataset == "fashion-mnist":
        assert "/nonexistent/system" in message and "apt-get install -y" in message


def test_keras_cache_dirs_follow_keras_home(monkeypatch, tmp_path):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    dirs = images.keras_cache_dirs()
    assert dirs[0] == tmp_path / "kh" / "datasets"
    assert Path(os.path.expanduser("~")) / ".keras" / "datasets" in dirs


# ---------------------------------------------------------------------------------------------
# Digits, and the hierarchies re-exported from keras_aux.hierarchy
# ---------------------------------------------------------------------------------------------


def test_digits_stratified_split():
    pytest.importorskip("sklearn")
    (x_train, y_train), (x_test, y_test) = load_digits()
    assert x_train.shape == (1437, 8, 8) and x_test.shape == (360, 8, 8)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 16.0
    # Stratified: each class's share of the test split is within one example of 20 %.
    total = np.bincount(np.concatenate([y_train, y_test]))
    assert np.all(np.abs(np.bincount(y_test) - 0.2 * total) <= 1.0)
    (again, _), _ = load_digits()
    np.testing.assert_array_equal(again, x_train)
    with pytest.raises(ValueError, match="test_fraction"):
        load_digits(test_fraction=1.0)


def test_hierarchies_are_re_exported_from_keras_aux_hierarchy():
    for name in ("FASHION_MNIST_COARSE", "FASHION_MNIST_COARSE_NAMES"):
        assert getattr(images, name) is getattr(hierarchy, name)
    assert images.coarse_and_fine is hierarchy.coarse_and_fine
    assert images.cifar100_grouping is hierarchy.cifar100_grouping
