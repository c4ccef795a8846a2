"""Image datasets of the MAXL experiments, read from local files only.

Nothing is downloaded: the Keras and TFDS download helpers cannot reach the
internet here. Each loader looks in a fixed list of places, parses the files
itself (idx for the MNIST family, ``.npz`` for Keras's MNIST, pickles for
CIFAR) and returns ``(x_train, y_train), (x_test, y_test)`` with images as
``uint8`` arrays in channels-last layout and labels as ``int64``. When no
place holds the data a `FileNotFoundError` lists every place searched and how
to get the files.

Search order (first complete copy wins):

1. ``data_dir`` when given: the files directly in it, or in the Keras cache
   sub-folder inside it (``data_dir/fashion-mnist/``, ``data_dir/mnist.npz``,
   ``data_dir/cifar-10-batches-py/``, ...). A ``data_dir`` without the data
   does not stop the search; the error lists it with the others.
2. For Fashion-MNIST, the Debian/Ubuntu package ``dataset-fashion-mnist``:
   ``/usr/share/datasets/fashion-mnist`` (`SYSTEM_DIRS`).
3. The Keras cache: ``$KERAS_HOME/datasets`` (when set), ``~/.keras/datasets``
   and ``/tmp/.keras/datasets`` (Keras's fallback when home is read-only),
   with the layout ``keras.datasets.*.load_data`` leaves behind.

The label hierarchies of the Human baseline (`FASHION_MNIST_COARSE`,
`coarse_and_fine`, `cifar100_grouping`) are defined in `keras_aux.hierarchy`
and re-exported here, next to the loaders whose labels they group.

References: LeCun, Bottou, Bengio & Haffner (1998) (MNIST and the idx
format); Xiao, Rasul & Vollgraf (2017), "Fashion-MNIST"; Krizhevsky (2009),
"Learning Multiple Layers of Features from Tiny Images" (CIFAR); Liu, Davison
& Johns (2019), MAXL, §4 (the datasets and the Human baseline's hierarchies).
"""

from __future__ import annotations

import gzip
import os
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

# Re-exported: the hierarchies of the Human baseline over these datasets' labels.
from keras_aux.hierarchy import (
    FASHION_MNIST_COARSE,
    FASHION_MNIST_COARSE_NAMES,
    cifar100_grouping,
    coarse_and_fine,
)
from keras_aux.utils.optional import require

FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)

# Where Debian/Ubuntu packages install datasets (module-level so tests and
# unusual installations can change it).
SYSTEM_DIRS = {"fashion-mnist": ("/usr/share/datasets/fashion-mnist",)}

_IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
# Third byte of an idx magic number → big-endian numpy dtype.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_HOW_TO_GET = {
    "fashion-mnist": (
        "Install the Debian package (`apt-get install -y dataset-fashion-mnist`), or copy the "
        "four idx .gz files of github.com/zalandoresearch/fashion-mnist into "
        "~/.keras/datasets/fashion-mnist/ or a folder passed as data_dir."
    ),
    "mnist": (
        "Copy Keras's mnist.npz (storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz) "
        "into ~/.keras/datasets/ or data_dir, or the four MNIST idx .gz files into "
        "data_dir/mnist/."
    ),
    "cifar-10": (
        "Extract cifar-10-python.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) so that "
        "~/.keras/datasets/cifar-10-batches-py/ (or data_dir/cifar-10-batches-py/) holds "
        "data_batch_1..5 and test_batch."
    ),
    "cifar-100": (
        "Extract cifar-100-python.tar.gz (www.cs.toronto.edu/~kriz/cifar.html) so that "
        "~/.keras/datasets/cifar-100-python/ (or data_dir/cifar-100-python/) holds train and "
        "test."
    ),
}


class DatasetFormatError(ValueError):
    """A dataset file exists but is not in the expected format (bad magic
    number, truncated, wrong shape or keys)."""


def keras_cache_dirs():
    """The Keras dataset cache folders, in the order Keras itself uses them."""
    dirs = []
    if os.environ.get("KERAS_HOME"):
        dirs.append(Path(os.environ["KERAS_HOME"]) / "datasets")
    dirs.append(Path(os.path.expanduser("~")) / ".keras" / "datasets")
    dirs.append(Path("/tmp/.keras/datasets"))
    return dirs


def _candidate_dirs(data_dir, subdir, system=()):
    """Folders to look in for a dataset stored as a folder of files."""
    dirs = []
    if data_dir is not None:
        dirs += [Path(data_dir), Path(data_dir) / subdir]
    dirs += [Path(d) for d in system]
    dirs += [cache / subdir for cache in keras_cache_dirs()]
    return list(dict.fromkeys(dirs))


def _not_found(dataset, searched):
    places = "\n".join(f"  - {p}" for p in searched)
    return FileNotFoundError(
        f"{dataset} not found (nothing is downloaded). Searched, in order:\n{places}\n"
        f"{_HOW_TO_GET[dataset]}"
    )


# ---------------------------------------------------------------------------------------------
# idx (MNIST family)
# ---------------------------------------------------------------------------------------------


def read_idx(path, expected_ndim=None):
    """Reads an idx file (gzip-compressed when the name ends in ``.gz``).

    The format: a 4-byte magic number ``0x00 0x00 <dtype code> <ndim>``, then
    ``ndim`` big-endian uint32 sizes, then the values in C order. Images of the
    MNIST family have magic 0x00000803 (uint8, 3-d), labels 0x00000801.

    Raises:
        DatasetFormatError: an unreadable gzip stream, a bad magic number, an
            unexpected number of dimensions, or a size that does not match
            the header (truncated file or trailing bytes).
    """
    path = str(path)
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as err:
        raise DatasetFormatError(f"{path}: cannot read the idx file ({err}).") from err
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        magic = data[:4].hex() if len(data) >= 4 else data.hex()
        raise DatasetFormatError(
            f"{path}: bad idx magic number 0x{magic} (expected 0x0000TTNN, TT a type code in "
            f"{sorted(hex(k) for k in _IDX_DTYPES)}); the file is corrupt or not idx."
        )
    ndim = data[3]
    if expected_ndim is not None and ndim != expected_ndim:
        raise DatasetFormatError(
            f"{path}: idx magic number 0x{data[:4].hex()} announces {ndim} dimension(s); "
            f"expected {expected_ndim} (magic 0x0000{data[2]:02x}{expected_ndim:02x})."
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DatasetFormatError(f"{path}: truncated idx header.")
    dims = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    count = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != count * dtype.itemsize:
        raise DatasetFormatError(
            f"{path}: the header announces shape {dims} ({count * dtype.itemsize} bytes of data) "
            f"but the file holds {len(data) - header} bytes; it is truncated or corrupt."
        )
    values = np.frombuffer(data, dtype=dtype, count=count, offset=header).reshape(dims)
    return values.astype(dtype.newbyteorder("="))


def _idx_path(folder, stem):
    for name in (f"{stem}.gz", stem):
        if (folder / name).is_file():
            return folder / name
    return None


def _load_idx_folder(folder, num_classes=10):
    paths = {key: _idx_path(folder, stem) for key, stem in _IDX_FILES.items()}
    if any(p is None for p in paths.values()):
        return None
    out = []
    for split in ("train", "test"):
        images = read_idx(paths[f"{split}_images"], expected_ndim=3)
        labels = read_idx(paths[f"{split}_labels"], expected_ndim=1)
        if images.dtype != np.uint8 or labels.dtype != np.uint8:
            raise DatasetFormatError(
                f"{folder}: the {split} idx files must hold uint8 values (type code 0x08)."
            )
        out.append(_checked(images, labels, num_classes, f"{folder} ({split})"))
    return tuple(out)


def _checked(images, labels, num_classes, where):
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if len(images) != len(labels):
        raise DatasetFormatError(f"{where}: {len(images)} images but {len(labels)} labels.")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetFormatError(
            f"{where}: labels must be in [0, {num_classes}); found {labels.min()}..{labels.max()}."
        )
    return np.ascontiguousarray(images), labels


def _load_idx_dataset(dataset, data_dir, subdir):
    searched = []
    for folder in _candidate_dirs(data_dir, subdir, SYSTEM_DIRS.get(dataset, ())):
        searched.append(folder)
        if folder.is_dir():
            found = _load_idx_folder(folder)
            if found is not None:
                return found
    return searched


def load_fashion_mnist(data_dir=None):
    """Fashion-MNIST: 60,000 training and 10,000 test 28×28 grey images of ten
    clothing classes (`FASHION_MNIST_CLASSES`).

    Reads the four idx files (``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz``,
    ``t10k-labels-idx1-ubyte.gz``, compressed or not) from ``data_dir``,
    ``data_dir/fashion-mnist``, ``/usr/share/datasets/fashion-mnist`` (Debian
    package ``dataset-fashion-mnist``) or the Keras cache's ``fashion-mnist``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 images ``(N, 28, 28)``,
        int64 labels ``(N,)`` in 0–9.

    Raises:
        FileNotFoundError: no place holds the files (lists every place).
        DatasetFormatError: a file is corrupt.

    Reference: Xiao, Rasul & Vollgraf (2017), "Fashion-MNIST: a Novel Image
    Dataset for Benchmarking Machine Learning Algorithms".
    """
    found = _load_idx_dataset("fashion-mnist", data_dir, "fashion-mnist")
    if isinstance(found, list):
        raise _not_found("fashion-mnist", found)
    return found


def load_mnist(data_dir=None):
    """MNIST: 60,000 training and 10,000 test 28×28 grey digit images.

    Reads Keras's ``mnist.npz`` (keys ``x_train``, ``y_train``, ``x_test``,
    ``y_test``) from ``data_dir`` or the Keras cache, or the four MNIST idx
    files from ``data_dir`` or ``data_dir/mnist``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 ``(N, 28, 28)``, int64
        labels in 0–9.

    Raises:
        FileNotFoundError: no place holds the data. DatasetFormatError: a
        corrupt file.

    Reference: LeCun, Bottou, Bengio & Haffner (1998).
    """
    searched = []
    local = []
    if data_dir is not None:
        local = [Path(data_dir) / "mnist.npz", Path(data_dir), Path(data_dir) / "mnist"]
    for place in local + [cache / "mnist.npz" for cache in keras_cache_dirs()]:
        searched.append(place)
        if place.name == "mnist.npz" and place.is_file():
            return _load_mnist_npz(place)
        if place.is_dir():
            found = _load_idx_folder(place)
            if found is not None:
                return found
    raise _not_found("mnist", searched)


def _load_mnist_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ("x_train", "y_train", "x_test", "y_test")}
    except KeyError as err:
        raise DatasetFormatError(
            f"{path}: missing array {err}; expected x_train, y_train, x_test, y_test."
        ) from err
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise DatasetFormatError(f"{path}: not a readable .npz file ({err}).") from err
    out = []
    for split in ("train", "test"):
        images = arrays[f"x_{split}"]
        if images.ndim != 3 or images.dtype != np.uint8:
            raise DatasetFormatError(
                f"{path}: x_{split} must be uint8 of shape (N, H, W); got {images.dtype} "
                f"{images.shape}."
            )
        out.append(_checked(images, arrays[f"y_{split}"], 10, f"{path} ({split})"))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# CIFAR
# ---------------------------------------------------------------------------------------------


def _read_cifar_pickle(path, label_keys):
    """Images ``(N, 32, 32, 3)`` uint8 and the named label arrays of one CIFAR
    "python version" pickle (a dict with ``data`` (N, 3072) in channel-major
    order and label lists). Only open files you trust: pickle runs code."""
    try:
        with open(path, "rb") as f:
            raw = pickle.load(f, encoding="bytes")
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError) as err:
        raise DatasetFormatError(f"{path}: not a readable CIFAR pickle ({err}).") from err
    if not isinstance(raw, dict):
        raise DatasetFormatError(f"{path}: a CIFAR pickle holds a dict; got {type(raw).__name__}.")
    batch = {k.decode("utf-8") if isinstance(k, bytes) else k: v for k, v in raw.items()}
    missing = [k for k in ("data", *label_keys) if k not in batch]
    if missing:
        raise DatasetFormatError(f"{path}: missing keys {missing}; found {sorted(batch)}.")
    data = np.asarray(batch["data"])
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DatasetFormatError(
            f"{path}: 'data' must be uint8 of shape (N, 3072); got {data.dtype} {data.shape}."
        )
    # Rows are the red, green then blue 32×32 planes: to channels-last.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    labels = {}
    for key in label_keys:
        values = np.asarray(batch[key]).reshape(-1).astype(np.int64)
        if len(values) != len(images):
            raise DatasetFormatError(
                f"{path}: {len(images)} images but {len(values)} entries in {key!r}."
            )
        labels[key] = values
    return np.ascontiguousarray(images), labels


def _find_cifar_folder(dataset, data_dir, subdir, files):
    searched = []
    for folder in _candidate_dirs(data_dir, subdir):
        searched.append(folder)
        if all((folder / name).is_file() for name in files):
            return folder
    raise _not_found(dataset, searched)


def load_cifar10(data_dir=None):
    """CIFAR-10: 50,000 training and 10,000 test 32×32 colour images, ten classes.

    Reads the "python version" pickles (``data_batch_1`` … ``data_batch_5``,
    ``test_batch``) from ``data_dir``, ``data_dir/cifar-10-batches-py`` or the
    Keras cache's ``cifar-10-batches-py``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 ``(N, 32, 32, 3)``
        (channels last), int64 labels ``(N,)`` in 0–9.

    Raises:
        FileNotFoundError: no place holds the files. DatasetFormatError: a
        corrupt pickle.

    Reference: Krizhevsky (2009), "Learning Multiple Layers of Features from
    Tiny Images".
    """
    train_files = [f"data_batch_{i}" for i in range(1, 6)]
    folder = _find_cifar_folder(
        "cifar-10", data_dir, "cifar-10-batches-py", [*train_files, "test_batch"]
    )
    parts = [_read_cifar_pickle(folder / name, ["labels"]) for name in train_files]
    x_train = np.concatenate([images for images, _ in parts])
    y_train = np.concatenate([labels["labels"] for _, labels in parts])
    x_test, test_labels = _read_cifar_pickle(folder / "test_batch", ["labels"])
    return (
        _checked(x_train, y_train, 10, f"{folder} (train)"),
        _checked(x_test, test_labels["labels"], 10, f"{folder} (test)"),
    )


def load_cifar100(data_dir=None, label_mode="fine"):
    """CIFAR-100: 50,000 training and 10,000 test 32×32 colour images with 100
    fine classes grouped into 20 coarse classes of five (MAXL's 20→100 task).

    Reads the ``train`` and ``test`` pickles from ``data_dir``,
    ``data_dir/cifar-100-python`` or the Keras cache's ``cifar-100-python``.

    Args:
        label_mode: ``"fine"`` (100 classes), ``"coarse"`` (20) or ``"both"``.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: uint8 ``(N, 32, 32, 3)``.
        ``y`` is an int64 array for ``"fine"``/``"coarse"``; for ``"both"`` a
        dict ``{"coarse": ..., "fine": ...}`` of int64 arrays (a dict, not a
        tuple, so the two can never be swapped; see `cifar100_grouping` to
        turn them into ψ and auxiliary labels).

    Raises:
        ValueError: an unknown ``label_mode``. FileNotFoundError: no data.
        DatasetFormatError: a corrupt pickle.

    Reference: Krizhevsky (2009); Liu, Davison & Johns (2019), MAXL, §4.2.
    """
    if label_mode not in ("fine", "coarse", "both"):
        raise ValueError(f"`label_mode` must be 'fine', 'coarse' or 'both'; got {label_mode!r}.")
    folder = _find_cifar_folder("cifar-100", data_dir, "cifar-100-python", ["train", "test"])
    out = []
    for split in ("train", "test"):
        images, labels = _read_cifar_pickle(folder / split, ["fine_labels", "coarse_labels"])
        fine = _checked(images, labels["fine_labels"], 100, f"{folder / split} (fine)")[1]
        coarse = _checked(images, labels["coarse_labels"], 20, f"{folder / split} (coarse)")[1]
        y = {"fine": fine, "coarse": coarse, "both": {"coarse": coarse, "fine": fine}}[label_mode]
        out.append((images, y))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# scikit-learn digits
# ---------------------------------------------------------------------------------------------


def load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's bundled 8×8 digits (1,797 images, ten classes), split
    stratified into train and test (80/20 by default) with a fixed seed.

    A small real image dataset that needs no files: it ships with
    scikit-learn. Pixel values are the dataset's own 0–16 counts.

    Returns:
        ``(x_train, y_train), (x_test, y_test)``: float32 ``(N, 8, 8)`` in
        [0, 16], int64 labels in 0–9.

    Raises:
        ImportError: scikit-learn is not installed (the `sklearn` extra).
        ValueError: ``test_fraction`` outside (0, 1).

    Reference: Alpaydin & Kaynak (1998), UCI "Optical Recognition of
    Handwritten Digits" (the test set of which scikit-learn ships).
    """
    if not 0.0 < float(test_fraction) < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1); got {test_fraction!r}.")
    purpose = "for the 8x8 digits (load_digits)"
    datasets = require("sklearn.datasets", extra="sklearn", purpose=purpose, package="scikit-learn")
    model_selection = require(
        "sklearn.model_selection", extra="sklearn", purpose=purpose, package="scikit-learn"
    )
    digits = datasets.load_digits()
    images = digits.images.astype(np.float32)
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed
    )
    return (x_train, y_train), (x_test, y_test)


__all__ = [
    "FASHION_MNIST_CLASSES",
    "FASHION_MNIST_COARSE",
    "FASHION_MNIST_COARSE_NAMES",
    "SYSTEM_DIRS",
    "DatasetFormatError",
    "cifar100_grouping",
    "coarse_and_fine",
    "keras_cache_dirs",
    "load_cifar10",
    "load_cifar100",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
]
