"""Tests of `keras_aux.audio.datasets` on real audio (the shared FSDD copy).

FSDD is read in place; FMA small, GTZAN and class-folder trees are built in temporary folders
with their exact layouts from re-encoded FSDD clips.
"""

import csv
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from keras_aux.audio import datasets
from keras_aux.audio.datasets import AudioFileList

FSDD_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd"
FSDD_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


def _require_fsdd() -> Path:
    if not (FSDD_ROOT / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {FSDD_ROOT}: the shared data folder is absent")
    return FSDD_ROOT


def _clip(i: int) -> Path:
    """The i-th of a fixed list of real FSDD clips (cycling over digits and speakers)."""
    speakers = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    root = _require_fsdd() / "recordings"
    return root / f"{i % 10}_{speakers[(i // 10) % 6]}_{10 + i // 60}.wav"


def _take(path) -> int:
    return int(FSDD_NAME.match(os.path.basename(path)).group(3))


# ---------------------------------------------------------------------------------------------
# AudioFileList and stratified_split
# ---------------------------------------------------------------------------------------------


def _toy_list(counts=(10, 20, 5), extra=True):
    labels = np.concatenate([np.full(n, c) for c, n in enumerate(counts)]).astype(np.int32)
    paths = [f"/x/{i}.wav" for i in range(len(labels))]
    kwargs = {}
    if extra:
        kwargs = dict(
            extra={"other": np.arange(len(labels)) % 2}, extra_names={"other": ["a", "b"]}
        )
    return AudioFileList(paths, labels, ["c0", "c1", "c2"], skipped=[("/x/bad", "r")], **kwargs)


def test_audio_file_list_basics_and_subset():
    files = _toy_list()
    assert len(files) == 35 and files.num_classes == 3
    assert files.labels.dtype == np.int32 and files.extra["other"].dtype == np.int32
    sub = files.subset([3, 12, 30])
    assert sub.paths == ["/x/3.wav", "/x/12.wav", "/x/30.wav"]
    np.testing.assert_array_equal(sub.labels, [0, 1, 2])
    np.testing.assert_array_equal(sub.extra["other"], [1, 0, 0])
    assert sub.class_names == files.class_names and sub.skipped == files.skipped
    masked = files.subset(files.labels == 2)
    assert len(masked) == 5 and set(masked.labels.tolist()) == {2}
    assert len(files.subset([])) == 0
    assert "n=35" in repr(files)


def test_audio_file_list_rejects_bad_labels():
    with pytest.raises(ValueError, match="shape"):
        AudioFileList(["/a", "/b"], [0], ["x"])
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        AudioFileList(["/a", "/b"], [0, 2], ["x", "y"])
    with pytest.raises(ValueError, match="integers"):
        AudioFileList(["/a"], [0.5], ["x"])
    with pytest.raises(ValueError, match="same keys"):
        AudioFileList(["/a"], [0], ["x"], extra={"s": [0]})
    with pytest.raises(ValueError, match="out of range"):
        _toy_list().subset([35])
    with pytest.raises(ValueError, match="boolean mask"):
        _toy_list().subset(np.ones(3, bool))


def test_stratified_split_sizes_disjoint_deterministic():
    files = _toy_list(counts=(10, 20, 5))
    parts = datasets.stratified_split(files, {"validation": 0.1, "test": 0.2}, seed=7)
    assert list(parts) == ["train", "validation", "test"]
    # Per class n: validation floor(0.1 n + .5), test floor(0.3 n + .5) - validation.
    expected = {"validation": [1, 2, 1], "test": [2, 4, 1], "train": [7, 14, 3]}
    for name, counts in expected.items():
        np.testing.assert_array_equal(np.bincount(parts[name].labels, minlength=3), counts)
    all_paths = sum((p.paths for p in parts.values()), [])
    assert sorted(all_paths) == sorted(files.paths)
    for p in parts.values():  # original order kept, metadata kept
        assert p.paths == sorted(p.paths, key=files.paths.index)
        assert p.class_names == files.class_names and p.skipped == files.skipped
        np.testing.assert_array_equal(p.extra["other"], [int(s[3:-4]) % 2 for s in p.paths])
    again = datasets.stratified_split(files, {"validation": 0.1, "test": 0.2}, seed=7)
    other = datasets.stratified_split(files, {"validation": 0.1, "test": 0.2}, seed=8)
    assert all(again[k].paths == parts[k].paths for k in parts)
    assert any(other[k].paths != parts[k].paths for k in parts)
    assert datasets.stratified_split(files, {}, seed=0)["train"].paths == files.paths
    empty = datasets.stratified_split(files, {"validation": 0.0}, seed=0)
    assert len(empty["validation"]) == 0 and len(empty["train"]) == 35


@pytest.mark.parametrize(
    "fractions, match",
    [
        ({"test": 1.0}, r"\[0, 1\)"),
        ({"test": -0.1}, r"\[0, 1\)"),
        ({"test": "a lot"}, "number"),
        ({"validation": 0.5, "test": 0.5}, "less than 1"),
        ({"train": 0.5}, "train"),
        ([("test", 0.2)], "dict"),
    ],
)
def test_stratified_split_bad_fractions(fractions, match):
    with pytest.raises(ValueError, match=match):
        datasets.stratified_split(_toy_list(), fractions, seed=0)


def test_stratified_split_bad_seed():
    for seed in (-1, 1.5, None):
        with pytest.raises(ValueError, match="seed"):
            datasets.stratified_split(_toy_list(), {"test": 0.2}, seed=seed)


# ---------------------------------------------------------------------------------------------
# FSDD (the real files)
# ---------------------------------------------------------------------------------------------


def test_fsdd_official_split_counts_and_labels():
    root = _require_fsdd()
    splits = datasets.fsdd(root)
    assert list(splits) == ["train", "test"]
    train, test = splits["train"], splits["test"]
    assert (len(train), len(test)) == (2700, 300)
    assert train.class_names == [str(d) for d in range(10)]
    assert train.extra_names["speaker"] == [
        "george",
        "jackson",
        "lucas",
        "nicolas",
        "theo",
        "yweweler",
    ]
    assert sorted({_take(p) for p in test.paths}) == [0, 1, 2, 3, 4]
    assert min(_take(p) for p in train.paths) == 5
    np.testing.assert_array_equal(np.bincount(test.labels), [30] * 10)
    np.testing.assert_array_equal(np.bincount(train.extra["speaker"]), [450] * 6)
    for files in (train, test):
        for path, digit, speaker in zip(files.paths, files.labels, files.extra["speaker"]):
            m = FSDD_NAME.match(os.path.basename(path))
            assert os.path.isabs(path) and os.path.isfile(path)
            assert m.group(1) == files.class_names[digit]
            assert m.group(2) == files.extra_names["speaker"][speaker]
    assert train.skipped == [] and set(train.paths).isdisjoint(test.paths)


def test_fsdd_speaker_label_train_takes_and_validation():
    root = _require_fsdd()
    splits = datasets.fsdd(
        root / "recordings", label="speaker", train_takes=5, validation_fraction=0.2, seed=3
    )
    assert list(splits) == ["train", "validation", "test"]
    train, val, test = splits["train"], splits["validation"], splits["test"]
    assert train.class_names == val.class_names == test.class_names
    assert len(train.class_names) == 6 and train.extra_names["digit"] == [str(d) for d in range(10)]
    # 5 takes x 10 digits x 6 speakers, then 20 % of each speaker's 50 files for validation.
    assert (len(train), len(val), len(test)) == (240, 60, 300)
    np.testing.assert_array_equal(np.bincount(val.labels), [10] * 6)
    np.testing.assert_array_equal(np.bincount(train.labels), [40] * 6)
    assert sorted({_take(p) for p in train.paths + val.paths}) == [5, 6, 7, 8, 9]
    for path, speaker, digit in zip(train.paths, train.labels, train.extra["digit"]):
        m = FSDD_NAME.match(os.path.basename(path))
        assert (m.group(2), m.group(1)) == (train.class_names[speaker], str(digit))
    again = datasets.fsdd(root, label="speaker", train_takes=5, validation_fraction=0.2, seed=3)
    assert again["validation"].paths == val.paths


def test_fsdd_digit_validation_is_stratified():
    splits = datasets.fsdd(_require_fsdd(), validation_fraction=0.1)
    np.testing.assert_array_equal(np.bincount(splits["validation"].labels), [27] * 10)
    assert len(splits["train"]) == 2430
    one_take = datasets.fsdd(_require_fsdd(), train_takes=1)["train"]
    assert len(one_take) == 60 and {_take(p) for p in one_take.paths} == {5}


def test_fsdd_skips_unknown_names_and_rejects_bad_input(tmp_path):
    root = _require_fsdd()
    rec = tmp_path / "recordings"
    rec.mkdir()
    for name in ["3_theo_0.wav", "3_theo_7.wav"]:
        shutil.copy(root / "recordings" / name, rec / name)
    (rec / "notes.txt").write_text("x")
    (rec / "3-theo-8.wav").write_bytes(b"")
    splits = datasets.fsdd(tmp_path)
    assert (len(splits["train"]), len(splits["test"])) == (1, 1)
    assert sorted(os.path.basename(p) for p, _ in splits["train"].skipped) == [
        "3-theo-8.wav",
        "notes.txt",
    ]
    with pytest.raises(ValueError, match='"digit" or "speaker"'):
        datasets.fsdd(root, label="gender")
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        datasets.fsdd(root, validation_fraction=1.0)
    with pytest.raises(ValueError, match="train_takes"):
        datasets.fsdd(root, train_takes=0)
    with pytest.raises(ValueError, match="directory not found.*recordings"):
        datasets.fsdd(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="no recording found"):
        datasets.fsdd(empty)


# ---------------------------------------------------------------------------------------------
# FMA small (fixture with FMA's exact layout, MP3s re-encoded from FSDD clips)
# ---------------------------------------------------------------------------------------------

FMA_GENRES = ["Rock", "Hip-Hop", "Pop"]  # deliberately not sorted
FMA_SMALL_PER_GENRE = 10
FMA_BROKEN = 98565  # known broken, file present
FMA_MISSING = 2  # small, no file
FMA_MEDIUM = (5, 140)  # other subsets, files present
FMA_LARGE = (1482,)


def _fma_rows():
    """(track_id, subset, genre_top) rows, small ones spread over several NNN folders."""
    rows = []
    for g, genre in enumerate(FMA_GENRES):
        for k in range(FMA_SMALL_PER_GENRE):
            rows.append((10 + 1000 * k + 137 * g, "small", genre))
    rows += [(FMA_BROKEN, "small", "Pop"), (FMA_MISSING, "small", "Rock")]
    rows += [(t, "medium", "Rock") for t in FMA_MEDIUM]
    rows += [(t, "large", "Jazz") for t in FMA_LARGE]
    return rows


def _write_tracks_csv(path, rows, layout="real", bio_chars=0):
    """tracks.csv as FMA ships it (`real`: three header rows, repeated top-level names) or with
    a two-row header whose top-level cells are blank when repeated (`blank`); `bio_chars` pads
    the free-text cells (real bios can exceed the csv module's default field limit)."""
    top = ["", "album", "album", "artist", "set", "set", "track", "track", "track"]
    sub = ["", "comments", "title", "bio", "split", "subset", "genre_top", "genres", "title"]
    if layout == "blank":
        top = ["track_id", "album", "", "artist", "set", "", "track", "", ""]
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(top)
        writer.writerow(sub)
        if layout == "real":
            writer.writerow(["track_id"] + [""] * (len(top) - 1))
        for tid, subset, genre in rows:
            bio = '<p>Multi-line, "quoted"\nbio, with commas</p>' + "x" * bio_chars
            writer.writerow([tid, 0, "An album", bio, "training", subset, genre, "[21]", "T"])


@pytest.fixture(scope="module")
def fma_tree(tmp_path_factory):
    _require_fsdd()
    root = tmp_path_factory.mktemp("fma")
    (root / "fma_metadata").mkdir()
    _write_tracks_csv(root / "fma_metadata" / "tracks.csv", _fma_rows())
    audio = root / "fma_small"
    for i, (tid, _, _) in enumerate(_fma_rows()):
        if tid == FMA_MISSING:
            continue
        path = Path(datasets.fma_track_path(audio, tid))
        path.parent.mkdir(parents=True, exist_ok=True)
        data, sr = sf.read(_clip(i))
        sf.write(path, data, sr, format="MP3")
    return root


def test_fma_small_labels_skips_and_splits(fma_tree):
    splits = datasets.fma_small(fma_tree / "fma_metadata", fma_tree / "fma_small")
    assert list(splits) == ["train", "validation", "test"]
    train, val, test = splits["train"], splits["validation"], splits["test"]
    assert train.class_names == ["Hip-Hop", "Pop", "Rock"]
    # Per genre 10 files: 2 test (20 %), then 1 of the remaining 8 validation (10 %).
    for files, n in ((train, 7), (val, 1), (test, 2)):
        np.testing.assert_array_equal(np.bincount(files.labels, minlength=3), [n] * 3)
    paths = train.paths + val.paths + test.paths
    assert len(set(paths)) == 30
    by_id = {tid: genre for tid, _, genre in _fma_rows()}
    for files in (train, val, test):
        for path, label in zip(files.paths, files.labels):
            tid = int(os.path.basename(path)[:-4])
            assert path == str(fma_tree / "fma_small" / f"{tid:06d}"[:3] / f"{tid:06d}.mp3")
            assert files.class_names[label] == by_id[tid]
    ids = {int(os.path.basename(p)[:-4]) for p in paths}
    assert ids.isdisjoint({FMA_BROKEN, FMA_MISSING, *FMA_MEDIUM, *FMA_LARGE})
    assert train.skipped == [
        (datasets.fma_track_path(fma_tree / "fma_small", FMA_MISSING), "missing file"),
        (datasets.fma_track_path(fma_tree / "fma_small", FMA_BROKEN), "known broken"),
    ]
    assert test.skipped == train.skipped
    for path in test.paths[:2]:  # the MP3s decode
        data, sr = sf.read(path)
        assert sr == 8000 and data.ndim == 1 and len(data) > 1000


def test_fma_small_is_deterministic_and_seeded(fma_tree):
    args = (fma_tree / "fma_metadata", fma_tree / "fma_small")
    a = datasets.fma_small(*args)
    b = datasets.fma_small(*args, seed=1337)
    c = datasets.fma_small(*args, seed=1)
    assert all(a[k].paths == b[k].paths for k in a)
    assert any(a[k].paths != c[k].paths for k in a)
    no_skip = datasets.fma_small(*args, skip_ids=())
    assert sum(len(s) for s in no_skip.values()) == 31
    assert no_skip["train"].skipped == [
        (datasets.fma_track_path(fma_tree / "fma_small", FMA_MISSING), "missing file")
    ]


def test_fma_small_two_row_header_with_blank_cells(fma_tree, tmp_path):
    _write_tracks_csv(tmp_path / "tracks.csv", _fma_rows(), layout="blank", bio_chars=200_000)
    a = datasets.fma_small(tmp_path, fma_tree / "fma_small")
    b = datasets.fma_small(fma_tree / "fma_metadata" / "tracks.csv", fma_tree / "fma_small")
    assert all(a[k].paths == b[k].paths for k in a)
    np.testing.assert_array_equal(a["train"].labels, b["train"].labels)


def test_fma_small_bad_input(fma_tree, tmp_path):
    audio = fma_tree / "fma_small"
    with pytest.raises(ValueError, match="directory not found.*tracks.csv"):
        datasets.fma_small(tmp_path / "nope", audio)
    with pytest.raises(ValueError, match="tracks.csv not found"):
        datasets.fma_small(tmp_path, audio)
    with pytest.raises(ValueError, match="audio_dir: directory not found"):
        datasets.fma_small(fma_tree / "fma_metadata", tmp_path / "nope")
    (tmp_path / "tracks.csv").write_text(",album,track\n,title,genre_top\n1,a,Rock\n")
    with pytest.raises(ValueError, match=r"\('set', 'subset'\)"):
        datasets.fma_small(tmp_path, audio)
    _write_tracks_csv(tmp_path / "tracks.csv", [(1, "medium", "Rock")])
    with pytest.raises(ValueError, match="'small'"):
        datasets.fma_small(tmp_path, audio)
    with pytest.raises(ValueError, match="none of the 32 'small' tracks"):
        datasets.fma_small(fma_tree / "fma_metadata", tmp_path)
    _write_tracks_csv(tmp_path / "tracks.csv", [("abc", "small", "Rock")])
    with pytest.raises(ValueError, match="integer track_id"):
        datasets.fma_small(tmp_path, audio)


# ---------------------------------------------------------------------------------------------
# GTZAN (fixture tree of copied FSDD WAVs)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gtzan_tree(tmp_path_factory):
    _require_fsdd()
    root = tmp_path_factory.mktemp("gtzan")
    genres = root / "genres"
    for g, genre in enumerate(datasets.GTZAN_GENRES):
        (genres / genre).mkdir(parents=True)
        for k in range(10):
            shutil.copy(_clip(10 * g + k), genres / genre / f"{genre}.{k:05d}.wav")
    (genres / "bextract_single.mf").write_text("x")
    (genres / "rock" / "rock.notes.txt").write_text("x")
    return root


def test_gtzan_layout_labels_and_split(gtzan_tree):
    splits = datasets.gtzan(gtzan_tree)
    assert list(splits) == ["train", "validation", "test"]
    for name, n in (("train", 7), ("validation", 1), ("test", 2)):
        assert splits[name].class_names == list(datasets.GTZAN_GENRES)
        np.testing.assert_array_equal(np.bincount(splits[name].labels, minlength=10), [n] * 10)
        for path, label in zip(splits[name].paths, splits[name].labels):
            assert os.path.basename(path).split(".")[0] == datasets.GTZAN_GENRES[label]
    assert sorted(os.path.basename(p) for p, _ in splits["train"].skipped) == [
        "bextract_single.mf",
        "rock.notes.txt",
    ]
    same = datasets.gtzan(gtzan_tree / "genres")
    assert all(same[k].paths == splits[k].paths for k in splits)
    no_val = datasets.gtzan(gtzan_tree, validation_fraction=0.0, test_fraction=0.5, seed=2)
    assert list(no_val) == ["train", "test"] and len(no_val["test"]) == 50
    data, sr = sf.read(splits["test"].paths[0])
    assert sr == 8000 and len(data) > 1000


def test_gtzan_bad_input(gtzan_tree, tmp_path):
    with pytest.raises(ValueError, match="directory not found.*genres"):
        datasets.gtzan(tmp_path / "nope")
    (tmp_path / "genres" / "rock").mkdir(parents=True)
    with pytest.raises(ValueError, match="genre folder.*blues"):
        datasets.gtzan(tmp_path)
    with pytest.raises(ValueError, match="less than 1"):
        datasets.gtzan(gtzan_tree, validation_fraction=0.5, test_fraction=0.5)
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        datasets.gtzan(gtzan_tree, test_fraction=1.5)


# ---------------------------------------------------------------------------------------------
# Class folders
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def class_tree(tmp_path):
    _require_fsdd()
    root = tmp_path / "classes"
    (root / "dog" / "more").mkdir(parents=True)
    (root / "cat").mkdir()
    (root / "bird").mkdir()  # an empty class
    (root / ".hidden").mkdir()
    data, sr = sf.read(_clip(0))
    shutil.copy(_clip(1), root / "dog" / "a.wav")
    shutil.copy(_clip(2), root / "dog" / "more" / "b.WAV")
    sf.write(root / "dog" / "c.flac", data, sr)
    sf.write(root / "cat" / "d.ogg", data, sr, format="OGG")
    sf.write(root / "cat" / "e.mp3", data, sr, format="MP3")
    (root / "cat" / "notes.txt").write_text("x")
    (root / "readme.md").write_text("x")
    return root


def test_class_folders(class_tree):
    files = datasets.class_folders(class_tree)
    assert files.class_names == ["bird", "cat", "dog"]
    rel = [os.path.relpath(p, class_tree) for p in files.paths]
    assert rel == ["cat/d.ogg", "cat/e.mp3", "dog/a.wav", "dog/c.flac", "dog/more/b.WAV"]
    np.testing.assert_array_equal(files.labels, [1, 1, 2, 2, 2])
    assert sorted((os.path.relpath(p, class_tree), r) for p, r in files.skipped) == [
        ("cat/notes.txt", "unknown extension"),
        ("readme.md", "not in a class folder"),
    ]
    for path in files.paths:
        data, sr = sf.read(path)
        assert sr == 8000 and len(data) > 1000
    only_wav = datasets.class_folders(class_tree, extensions=("wav",))
    assert len(only_wav) == 2 and len(only_wav.skipped) == 5


def test_class_folders_bad_input(class_tree, tmp_path):
    with pytest.raises(ValueError, match="directory not found"):
        datasets.class_folders(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="is empty"):
        datasets.class_folders(empty)
    (empty / "x.wav").write_bytes(b"")
    with pytest.raises(ValueError, match="no class folder"):
        datasets.class_folders(empty)
    (empty / "a").mkdir()
    with pytest.raises(ValueError, match="no audio file"):
        datasets.class_folders(empty)
    with pytest.raises(ValueError, match="extensions"):
        datasets.class_folders(class_tree, extensions=("",))
