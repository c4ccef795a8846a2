"""File-list loaders for the audio datasets of keras-aux.

Every loader reads a local directory (nothing is downloaded), checks its layout and returns
`AudioFileList` objects: absolute file paths, integer labels and the class names, plus optional
extra per-file labels and a record of the files that were left out and why. Decoding the audio is
the job of `keras_aux.audio.decode` / `keras_aux.audio.pipeline`; these loaders only find files.

Layouts (each loader's docstring gives the details):

- FMA small (`fma_small`): Defferrard, Benzi, Vandergheynst, Bresson (2017), "FMA: A Dataset For
  Music Analysis", ISMIR; github.com/mdeff/fma. `fma_metadata/tracks.csv` +
  `fma_small/NNN/NNNNNN.mp3`.
- GTZAN (`gtzan`): Tzanetakis & Cook (2002), "Musical genre classification of audio signals",
  IEEE Trans. Speech and Audio Processing 10(5). `genres/<genre>/<genre>.NNNNN.wav`.
- FSDD (`fsdd`): Jackson et al., Free Spoken Digit Dataset,
  github.com/Jakobovski/free-spoken-digit-dataset. `recordings/{digit}_{speaker}_{index}.wav`.
- Any tree of class folders (`class_folders`): `root/<class>/<file>.wav`.

Splits are made by `stratified_split`, which is deterministic for a given file list and seed.
"""

from __future__ import annotations

import csv
import dataclasses
import os
import re
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg")

# FMA small track ids commonly reported as broken or far shorter than 30 s
# (see the issues of github.com/mdeff/fma); `fma_small` skips and reports them.
KNOWN_BROKEN_FMA_IDS = (98565, 98567, 98569, 99134, 108925, 133297)

# The ten genres of GTZAN (Tzanetakis & Cook 2002), in alphabetical order.
GTZAN_GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)

FSDD_DIGITS = tuple(str(d) for d in range(10))
FSDD_TEST_TAKES = (0, 1, 2, 3, 4)

# Reasons recorded in `AudioFileList.skipped`.
REASON_KNOWN_BROKEN = "known broken"
REASON_MISSING_FILE = "missing file"
REASON_UNKNOWN_EXTENSION = "unknown extension"

_FMA_LAYOUT = (
    "metadata_dir/tracks.csv (FMA's multi-row header: (set, subset), (track, genre_top), ...) "
    "and audio_dir/NNN/NNNNNN.mp3 (NNNNNN = six-digit track id, NNN = its first three digits)"
)
_GTZAN_LAYOUT = "root/genres/<genre>/<genre>.NNNNN.wav (or root pointing at the genres folder)"
_FSDD_LAYOUT = (
    "root/recordings/{digit}_{speaker}_{index}.wav (or root pointing at the recordings folder)"
)
_CLASS_FOLDERS_LAYOUT = "root/<class name>/<audio file>"


@dataclasses.dataclass(eq=False, repr=False)
class AudioFileList:
    """A list of audio files with integer class labels.

    Attributes:
        paths: absolute file paths.
        labels: int32 array of shape `(n,)`, indices into `class_names`.
        class_names: the names of the classes; `labels[i]` names `class_names[labels[i]]`.
        extra: optional extra per-file labels, each an int32 array of shape `(n,)`, e.g.
            `{"speaker": ...}` for FSDD with `label="digit"`.
        extra_names: the class names of each extra label (same keys as `extra`).
        skipped: `(path or id, reason)` for each input the loader left out. It describes the
            loading of the whole source, so every split made from one load (and every `subset`)
            carries the same list.

    The constructor converts `labels` and `extra` to int32 arrays and checks that lengths match
    and that every label is a valid index (`ValueError` otherwise).
    """

    paths: list[str]
    labels: np.ndarray
    class_names: list[str]
    extra: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    extra_names: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        self.paths = [os.fspath(p) for p in self.paths]
        self.class_names = [str(c) for c in self.class_names]
        self.labels = _check_labels(self.labels, len(self.paths), self.class_names, "labels")
        self.extra = dict(self.extra)
        self.extra_names = {k: [str(c) for c in v] for k, v in self.extra_names.items()}
        if set(self.extra) != set(self.extra_names):
            raise ValueError(
                "AudioFileList: `extra` and `extra_names` must have the same keys; got "
                f"{sorted(self.extra)} and {sorted(self.extra_names)}."
            )
        for key in self.extra:
            self.extra[key] = _check_labels(
                self.extra[key], len(self.paths), self.extra_names[key], f"extra[{key!r}]"
            )
        self.skipped = [(str(item), str(reason)) for item, reason in self.skipped]

    def __len__(self) -> int:
        return len(self.paths)

    def __repr__(self) -> str:
        return (
            f"AudioFileList(n={len(self)}, class_names={self.class_names}, "
            f"extra={sorted(self.extra)}, skipped={len(self.skipped)})"
        )

    @property
    def num_classes(self) -> int:
        """The number of classes (`len(class_names)`)."""
        return len(self.class_names)

    def subset(self, indices) -> AudioFileList:
        """The files at `indices` (ints, or a boolean mask of length `len(self)`), in that order.

        The class names, extra names and `skipped` are kept unchanged.
        """
        idx = np.asarray(indices)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise ValueError(
                    f"AudioFileList.subset: a boolean mask must have shape ({len(self)},); "
                    f"got {idx.shape}."
                )
            idx = np.flatnonzero(idx)
        elif idx.size == 0:
            idx = idx.astype(np.int64).reshape(0)
        elif idx.ndim != 1 or not np.issubdtype(idx.dtype, np.integer):
            raise ValueError(
                "AudioFileList.subset: indices must be a 1-D array of ints or a boolean mask; "
                f"got dtype {idx.dtype} and shape {idx.shape}."
            )
        if idx.size and (idx.min() < -len(self) or idx.max() >= len(self)):
            raise ValueError(
                f"AudioFileList.subset: indices out of range for {len(self)} files "
                f"(min {idx.min()}, max {idx.max()})."
            )
        return AudioFileList(
            paths=[self.paths[i] for i in idx],
            labels=self.labels[idx],
            class_names=list(self.class_names),
            extra={k: v[idx] for k, v in self.extra.items()},
            extra_names={k: list(v) for k, v in self.extra_names.items()},
            skipped=list(self.skipped),
        )


def _check_labels(labels, n, names, what) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.size == 0:
        arr = arr.reshape(0)
    if arr.shape != (n,):
        raise ValueError(f"AudioFileList: {what} must have shape ({n},); got {arr.shape}.")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"AudioFileList: {what} must be integers; got dtype {arr.dtype}.")
    arr = arr.astype(np.int32)
    if arr.size and (arr.min() < 0 or arr.max() >= len(names)):
        raise ValueError(
            f"AudioFileList: {what} must lie in [0, {len(names)}) (one per class name); "
            f"got min {arr.min()}, max {arr.max()}."
        )
    return arr


# ---------------------------------------------------------------------------------------------
# Splitting
# ---------------------------------------------------------------------------------------------


def _check_fraction(name: str, value) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number in [0, 1); got {value!r}.") from None
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1); got {value}.")
    return value


def stratified_split(
    files: AudioFileList, fractions: Mapping[str, float], seed: int
) -> dict[str, AudioFileList]:
    """Splits `files` class by class into named parts; what remains is `"train"`.

    `fractions` maps split names (not `"train"`) to fractions of the whole list, each in
    `[0, 1)` and summing to less than 1. The procedure, exactly:

    1. For each class `c` (in label order), take the indices of its files in list order and
       shuffle them with `np.random.default_rng([seed, c]).permutation` (one generator per
       class, so one class's split does not depend on the others).
    2. With `n_c` files in the class and the fractions `f_1, f_2, ...` in the order of
       `fractions`, split `k` receives the shuffled positions `[b_{k-1}, b_k)` where
       `b_k = floor(n_c * (f_1 + ... + f_k) + 0.5)` (`b_0 = 0`); "train" receives the rest.
    3. Each split lists its files in their original order.

    The result is deterministic for a given file list, `fractions` (and their order) and `seed`.
    Every name in `fractions` is a key of the result even when its split is empty; so is
    `"train"`. Each split keeps `class_names`, `extra` and `skipped`.

    Raises:
        ValueError: a fraction outside `[0, 1)`, fractions summing to 1 or more, a split
            named `"train"` in `fractions`, or a seed that is not an int ≥ 0.
    """
    if not isinstance(fractions, Mapping):
        raise ValueError(
            f"stratified_split: fractions must be a dict of split name → fraction; got "
            f"{type(fractions).__name__}."
        )
    if "train" in fractions:
        raise ValueError(
            'stratified_split: "train" receives what the other splits leave; do not give it '
            "a fraction."
        )
    names = list(fractions)
    values = [
        _check_fraction(f"stratified_split: fractions[{k!r}]", v) for k, v in fractions.items()
    ]
    if sum(values) >= 1.0:
        raise ValueError(
            f"stratified_split: fractions must sum to less than 1 (the rest is train); got "
            f"{dict(zip(names, values))} (sum {sum(values)})."
        )
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"stratified_split: seed must be an int ≥ 0; got {seed!r}.")
    seed = int(seed)
    cumulative = np.cumsum([0.0] + values)
    members: dict[str, list[int]] = {name: [] for name in ["train", *names]}
    for c in range(files.num_classes):
        idx = np.flatnonzero(files.labels == c)
        if idx.size == 0:
            continue
        shuffled = np.random.default_rng([seed, c]).permutation(idx)
        bounds = np.floor(idx.size * cumulative + 0.5).astype(int)
        for k, name in enumerate(names):
            members[name].extend(shuffled[bounds[k] : bounds[k + 1]].tolist())
        members["train"].extend(shuffled[bounds[-1] :].tolist())
    return {
        name: files.subset(np.sort(np.asarray(m, dtype=np.int64))) for name, m in members.items()
    }


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


def _require_dir(path, what: str, layout: str) -> str:
    path = os.path.abspath(os.fspath(path))
    if not os.path.isdir(path):
        raise ValueError(f"{what}: directory not found: {path}. Expected layout: {layout}.")
    return path


def _visible_entries(directory: str) -> list[str]:
    return sorted(e for e in os.listdir(directory) if not e.startswith("."))


def _normalize_extensions(extensions) -> tuple[str, ...]:
    if isinstance(extensions, str):
        extensions = (extensions,)
    out = []
    for ext in extensions:
        if not isinstance(ext, str) or not ext.strip("."):
            raise ValueError(f"extensions must be strings such as '.wav'; got {ext!r}.")
        ext = ext.lower()
        out.append(ext if ext.startswith(".") else "." + ext)
    if not out:
        raise ValueError("extensions must not be empty.")
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# FMA small
# ---------------------------------------------------------------------------------------------


def _read_fma_tracks(csv_path: str) -> tuple[list[int], list[str], list[str]]:
    """(track ids, (set, subset) values, (track, genre_top) values) from FMA's tracks.csv."""
    # Free-text cells (artist bios) can exceed the csv module's default 128 KiB field limit.
    old_limit = csv.field_size_limit()
    csv.field_size_limit(max(old_limit, 2**30))
    try:
        return _parse_fma_tracks(csv_path)
    finally:
        csv.field_size_limit(old_limit)


def _parse_fma_tracks(csv_path: str) -> tuple[list[int], list[str], list[str]]:
    with open(csv_path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        try:
            top = next(reader)
            sub = next(reader)
        except StopIteration:
            raise ValueError(
                f"fma_small: {csv_path} has fewer than two header rows; expected FMA's "
                "tracks.csv with a (top-level name, sub-name) header."
            ) from None
        # Blank top-level cells repeat the name to their left (pandas' multi-index CSV style).
        filled, last = [], ""
        for i, cell in enumerate(top):
            cell = cell.strip()
            if i > 0 and cell == "":
                cell = last
            filled.append(cell)
            last = cell
        columns = {}
        for i, (t, s) in enumerate(zip(filled, sub)):
            columns.setdefault((t, s.strip()), i)
        needed = [("set", "subset"), ("track", "genre_top")]
        missing = [c for c in needed if c not in columns]
        if missing:
            found = sorted({t for t in filled[1:] if t})
            raise ValueError(
                f"fma_small: {csv_path} lacks the column(s) {missing} (as (top-level, sub-name) "
                f"header pairs); top-level names found: {found}. Expected FMA's tracks.csv "
                "(Defferrard et al. 2017)."
            )
        i_subset, i_genre = columns[("set", "subset")], columns[("track", "genre_top")]
        ids, subsets, genres = [], [], []
        for row in reader:
            if not row or all(cell.strip() == "" for cell in row):
                continue
            first = row[0].strip()
            if first.lower() == "track_id" and all(cell.strip() == "" for cell in row[1:]):
                continue  # the index-name row of FMA's real three-row header
            try:
                track_id = int(first)
            except ValueError:
                raise ValueError(
                    f"fma_small: {csv_path} line {reader.line_num}: the first column must be "
                    f"the integer track_id; got {first!r}."
                ) from None
            ids.append(track_id)
            subsets.append(row[i_subset].strip() if i_subset < len(row) else "")
            genres.append(row[i_genre].strip() if i_genre < len(row) else "")
    return ids, subsets, genres


def fma_track_path(audio_dir, track_id: int) -> str:
    """The path of a track's MP3 in FMA's layout: `audio_dir/NNN/NNNNNN.mp3`.

    `NNNNNN` is the six-digit zero-padded track id and `NNN` its first three digits
    (Defferrard et al. 2017, github.com/mdeff/fma).
    """
    tid = f"{int(track_id):06d}"
    return os.path.join(os.path.abspath(os.fspath(audio_dir)), tid[:3], tid + ".mp3")


def fma_small(
    metadata_dir, audio_dir, seed: int = 1337, skip_ids: Iterable = KNOWN_BROKEN_FMA_IDS
) -> dict[str, AudioFileList]:
    """FMA small (8,000 30-s clips, 8 top-level genres) split into train/validation/test.

    Source and layout: Defferrard, Benzi, Vandergheynst, Bresson (2017), "FMA: A Dataset For
    Music Analysis", ISMIR (github.com/mdeff/fma):

    - `metadata_dir/tracks.csv` (from `fma_metadata.zip`; `metadata_dir` may also be the CSV
      file itself): a CSV whose header has a row of top-level names (`set`, `track`, ...;
      a blank cell repeats the name to its left) and a row of sub-names (`subset`,
      `genre_top`, ...), optionally followed by FMA's row holding just `track_id`. The first
      column is the track id.
    - `audio_dir/NNN/NNNNNN.mp3` (from `fma_small.zip`), `NNNNNN` the zero-padded id.

    Rows with `(set, subset) == "small"` are kept; the label is `(track, genre_top)` and the
    class names are the genres of those rows, sorted alphabetically. Ids in `skip_ids` (by
    default `KNOWN_BROKEN_FMA_IDS`) are left out with reason `"known broken"`, files that do
    not exist with reason `"missing file"`, small rows without a genre with reason
    `"no genre_top"`; all are listed in `skipped` (by path).

    Split (the reference's protocol): `stratified_split(files, {"test": 0.2}, seed)`, then
    `stratified_split(rest, {"validation": 0.1}, seed)` on the remaining 80 %, i.e. 20 % test
    and 10 % of the rest validation, per genre; see `stratified_split` for the exact,
    deterministic procedure. Files are in track-id order.

    Returns:
        `{"train": ..., "validation": ..., "test": ...}`.

    Raises:
        ValueError: a missing directory or tracks.csv, a tracks.csv without the needed
            columns, no "small" rows, or no audio file found.
    """
    metadata_dir = os.path.abspath(os.fspath(metadata_dir))
    if os.path.isfile(metadata_dir) and metadata_dir.lower().endswith(".csv"):
        csv_path = metadata_dir
    else:
        metadata_dir = _require_dir(metadata_dir, "fma_small: metadata_dir", _FMA_LAYOUT)
        csv_path = os.path.join(metadata_dir, "tracks.csv")
        if not os.path.isfile(csv_path):
            raise ValueError(
                f"fma_small: tracks.csv not found in {metadata_dir}. Expected layout: "
                f"{_FMA_LAYOUT}."
            )
    audio_dir = _require_dir(audio_dir, "fma_small: audio_dir", _FMA_LAYOUT)
    skip = {int(i) for i in skip_ids}

    ids, subsets, genres = _read_fma_tracks(csv_path)
    small = [(tid, genre) for tid, s, genre in zip(ids, subsets, genres) if s == "small"]
    if not small:
        raise ValueError(
            f"fma_small: no row of {csv_path} has (set, subset) == 'small' ({len(ids)} rows read)."
        )
    class_names = sorted({genre for _, genre in small if genre})
    index = {name: i for i, name in enumerate(class_names)}
    paths, labels, skipped = [], [], []
    for tid, genre in sorted(small):
        path = fma_track_path(audio_dir, tid)
        if tid in skip:
            skipped.append((path, REASON_KNOWN_BROKEN))
        elif not genre:
            skipped.append((path, "no genre_top"))
        elif not os.path.isfile(path):
            skipped.append((path, REASON_MISSING_FILE))
        else:
            paths.append(path)
            labels.append(index[genre])
    if not paths:
        raise ValueError(
            f"fma_small: none of the {len(small)} 'small' tracks has its audio file under "
            f"{audio_dir}. Expected layout: {_FMA_LAYOUT}."
        )
    files = AudioFileList(paths, np.asarray(labels, np.int32), class_names, skipped=skipped)
    first = stratified_split(files, {"test": 0.2}, seed)
    second = stratified_split(first["train"], {"validation": 0.1}, seed)
    return {"train": second["train"], "validation": second["validation"], "test": first["test"]}


# ---------------------------------------------------------------------------------------------
# GTZAN
# ---------------------------------------------------------------------------------------------


def _splits_with_fractions(files, fractions: dict[str, float], seed) -> dict[str, AudioFileList]:
    """`stratified_split` keeping only the splits with a positive fraction (and train)."""
    return stratified_split(files, {k: v for k, v in fractions.items() if v > 0}, seed)


def gtzan(
    root, validation_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 1337
) -> dict[str, AudioFileList]:
    """GTZAN genre collection (1,000 30-s clips, 10 genres), stratified split.

    Source and layout: Tzanetakis & Cook (2002), "Musical genre classification of audio
    signals", IEEE Transactions on Speech and Audio Processing 10(5):
    `root/genres/<genre>/<genre>.NNNNN.wav` (`root` may also be the `genres` folder). The
    original archive's `.au` files are accepted too. The ten genre folders (`GTZAN_GENRES`)
    must all be present; the class names are `GTZAN_GENRES` (alphabetical). Other entries
    (files outside the genre folders, folders that are no genre, names not matching
    `<genre>.NNNNN.wav|au`) are listed in `skipped`.

    Split: `stratified_split(files, {"validation": validation_fraction, "test": test_fraction},
    seed)`: both fractions are of the whole set (default 70/10/20); a split whose fraction is 0
    is left out of the result.

    Returns:
        `{"train": ..., "validation": ..., "test": ...}` (validation / test only when their
        fraction is positive).

    Raises:
        ValueError: a missing root or genre folder, no audio file, or bad fractions.
    """
    validation_fraction = _check_fraction("gtzan: validation_fraction", validation_fraction)
    test_fraction = _check_fraction("gtzan: test_fraction", test_fraction)
    if validation_fraction + test_fraction >= 1.0:
        raise ValueError(
            "gtzan: validation_fraction + test_fraction must be less than 1; got "
            f"{validation_fraction} + {test_fraction}."
        )
    root = _require_dir(root, "gtzan: root", _GTZAN_LAYOUT)
    genres_dir = os.path.join(root, "genres")
    if not os.path.isdir(genres_dir):
        genres_dir = root
    entries = _visible_entries(genres_dir)
    missing = [g for g in GTZAN_GENRES if not os.path.isdir(os.path.join(genres_dir, g))]
    if missing:
        raise ValueError(
            f"gtzan: genre folder(s) {missing} not found in {genres_dir}. Expected layout: "
            f"{_GTZAN_LAYOUT}, with the ten genres {list(GTZAN_GENRES)}."
        )
    skipped = []
    for entry in entries:
        if entry not in GTZAN_GENRES:
            skipped.append((os.path.join(genres_dir, entry), "not a GTZAN genre folder"))
    paths, labels = [], []
    for label, genre in enumerate(GTZAN_GENRES):
        pattern = re.compile(rf"^{re.escape(genre)}\.\d{{5}}\.(wav|au)$", re.IGNORECASE)
        genre_dir = os.path.join(genres_dir, genre)
        for name in _visible_entries(genre_dir):
            path = os.path.join(genre_dir, name)
            if not os.path.isfile(path):
                skipped.append((path, "not a file"))
            elif not pattern.match(name):
                skipped.append((path, f"name does not match {genre}.NNNNN.wav"))
            else:
                paths.append(path)
                labels.append(label)
    if not paths:
        raise ValueError(
            f"gtzan: no audio file found under {genres_dir}. Expected layout: {_GTZAN_LAYOUT}."
        )
    files = AudioFileList(paths, np.asarray(labels, np.int32), list(GTZAN_GENRES), skipped=skipped)
    return _splits_with_fractions(
        files, {"validation": validation_fraction, "test": test_fraction}, seed
    )


# ---------------------------------------------------------------------------------------------
# FSDD
# ---------------------------------------------------------------------------------------------

_FSDD_NAME = re.compile(r"^(\d)_([^_]+)_(\d+)\.wav$", re.IGNORECASE)


def fsdd(
    root,
    label: str = "digit",
    validation_fraction: float = 0.0,
    seed: int = 1337,
    train_takes: int | None = None,
) -> dict[str, AudioFileList]:
    """Free Spoken Digit Dataset with its official split.

    Source and layout: Jackson et al., Free Spoken Digit Dataset
    (github.com/Jakobovski/free-spoken-digit-dataset; 3,000 recordings at 8 kHz, 10 digits ×
    6 speakers × 50 takes in v1.0.10): `root/recordings/{digit}_{speaker}_{index}.wav` (`root`
    may also be the `recordings` folder). Other files are listed in `skipped`.

    Args:
        root: the dataset folder.
        label: `"digit"` (classes `"0"`..`"9"`) or `"speaker"` (the speaker names found,
            sorted). The other one is always in `extra` (`extra["speaker"]` or
            `extra["digit"]`, with its names in `extra_names`).
        validation_fraction: in `[0, 1)`; when positive, a stratified (by `label`)
            validation split is carved out of train with `stratified_split(train,
            {"validation": validation_fraction}, seed)`.
        seed: the seed of that split.
        train_takes: when given (≥ 1), keep only the first `train_takes` training takes of
            each (speaker, digit) pair, in take-index order; on the full dataset these are
            indices `5 .. 4 + train_takes` (a low-data regime). The test split is unchanged.

    The official split: takes (index) 0–4 are `"test"` (300 files), the rest `"train"`
    (2,700). Files are in (digit, speaker, index) order.

    Returns:
        `{"train": ..., "test": ...}`, plus `"validation"` when `validation_fraction > 0`.

    Raises:
        ValueError: a missing folder, no recording found, an unknown `label`, a bad
            `validation_fraction` or `train_takes`.
    """
    if label not in ("digit", "speaker"):
        raise ValueError(f'fsdd: label must be "digit" or "speaker"; got {label!r}.')
    validation_fraction = _check_fraction("fsdd: validation_fraction", validation_fraction)
    if train_takes is not None:
        if isinstance(train_takes, bool) or not isinstance(train_takes, (int, np.integer)):
            raise ValueError(f"fsdd: train_takes must be None or an int ≥ 1; got {train_takes!r}.")
        if train_takes < 1:
            raise ValueError(f"fsdd: train_takes must be None or an int ≥ 1; got {train_takes}.")
    root = _require_dir(root, "fsdd: root", _FSDD_LAYOUT)
    rec_dir = os.path.join(root, "recordings")
    if not os.path.isdir(rec_dir):
        rec_dir = root

    records, skipped = [], []
    for name in _visible_entries(rec_dir):
        path = os.path.join(rec_dir, name)
        match = _FSDD_NAME.match(name)
        if not os.path.isfile(path):
            skipped.append((path, "not a file"))
        elif not match:
            skipped.append((path, "name does not match {digit}_{speaker}_{index}.wav"))
        else:
            records.append((int(match.group(1)), match.group(2), int(match.group(3)), path))
    if not records:
        raise ValueError(f"fsdd: no recording found in {rec_dir}. Expected layout: {_FSDD_LAYOUT}.")
    records.sort()
    speakers = sorted({r[1] for r in records})
    speaker_index = {s: i for i, s in enumerate(speakers)}
    digits = np.asarray([r[0] for r in records], np.int32)
    speaker_ids = np.asarray([speaker_index[r[1]] for r in records], np.int32)
    takes = np.asarray([r[2] for r in records])
    if label == "digit":
        labels, class_names = digits, list(FSDD_DIGITS)
        extra, extra_names = {"speaker": speaker_ids}, {"speaker": speakers}
    else:
        labels, class_names = speaker_ids, speakers
        extra, extra_names = {"digit": digits}, {"digit": list(FSDD_DIGITS)}
    files = AudioFileList([r[3] for r in records], labels, class_names, extra, extra_names, skipped)

    is_test = np.isin(takes, FSDD_TEST_TAKES)
    train_idx = np.flatnonzero(~is_test)
    if train_takes is not None:
        keep = []
        groups: dict[tuple[int, int], list[int]] = {}
        for i in train_idx:
            groups.setdefault((int(digits[i]), int(speaker_ids[i])), []).append(int(i))
        for members in groups.values():
            members.sort(key=lambda i: takes[i])
            keep.extend(members[:train_takes])
        train_idx = np.sort(np.asarray(keep, dtype=np.int64))
    result = {"train": files.subset(train_idx), "test": files.subset(np.flatnonzero(is_test))}
    if validation_fraction > 0:
        parts = stratified_split(result["train"], {"validation": validation_fraction}, seed)
        result = {
            "train": parts["train"],
            "validation": parts["validation"],
            "test": result["test"],
        }
    return result


# ---------------------------------------------------------------------------------------------
# Class folders
# ---------------------------------------------------------------------------------------------


def class_folders(root, extensions: Sequence[str] = AUDIO_EXTENSIONS) -> AudioFileList:
    """Audio files in one folder per class: `root/<class name>/.../<file>`.

    The layout of Keras' `audio_dataset_from_directory`: each immediate, non-hidden
    subdirectory of `root` is a class (sorted names; an empty class folder is still a class);
    files below it (searched recursively, in sorted order) whose extension is in `extensions`
    (case-insensitive; default `AUDIO_EXTENSIONS` = .wav, .flac, .mp3, .ogg) are kept. Other
    files are listed in `skipped` with reason `"unknown extension"`; files directly in `root`
    with reason `"not in a class folder"`. Hidden files and folders (names starting with
    ".") are ignored.

    Raises:
        ValueError: a missing or empty root, no class folder, or no audio file at all.
    """
    extensions = _normalize_extensions(extensions)
    root = _require_dir(root, "class_folders: root", _CLASS_FOLDERS_LAYOUT)
    entries = _visible_entries(root)
    if not entries:
        raise ValueError(
            f"class_folders: {root} is empty. Expected layout: {_CLASS_FOLDERS_LAYOUT}."
        )
    class_names = [e for e in entries if os.path.isdir(os.path.join(root, e))]
    if not class_names:
        raise ValueError(
            f"class_folders: {root} has no class folder (subdirectory). Expected layout: "
            f"{_CLASS_FOLDERS_LAYOUT}."
        )
    skipped = [
        (os.path.join(root, e), "not in a class folder") for e in entries if e not in class_names
    ]
    paths, labels = [], []
    for label, name in enumerate(class_names):
        for dirpath, dirnames, filenames in os.walk(os.path.join(root, name)):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for filename in sorted(filenames):
                if filename.startswith("."):
                    continue
                path = os.path.join(dirpath, filename)
                if os.path.splitext(filename)[1].lower() in extensions:
                    paths.append(path)
                    labels.append(label)
                else:
                    skipped.append((path, REASON_UNKNOWN_EXTENSION))
    if not paths:
        raise ValueError(
            f"class_folders: no audio file with an extension in {list(extensions)} under "
            f"{root}. Expected layout: {_CLASS_FOLDERS_LAYOUT}."
        )
    return AudioFileList(paths, np.asarray(labels, np.int32), class_names, skipped=skipped)
