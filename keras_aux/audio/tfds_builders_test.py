"""Tests of `keras_aux.audio.tfds_builders`: build on small real copies, read examples back."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

tfds = pytest.importorskip(
    "tensorflow_datasets", reason="the `tfds` extra (TensorFlow-only) is not installed"
)

from keras_aux.audio import tfds_builders  # noqa: E402 (after the skip)

FSDD_ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd"


@pytest.fixture
def fsdd_copy(tmp_path):
    """20 real FSDD recordings (2 digits × 2 speakers × takes 0, 1, 5, 6, 7)."""
    if not (FSDD_ROOT / "recordings").is_dir():
        pytest.skip(f"FSDD not found at {FSDD_ROOT}: the shared data folder is absent")
    manual = tmp_path / "manual" / "recordings"
    manual.mkdir(parents=True)
    for digit in (3, 7):
        for speaker in ("jackson", "theo"):
            for take in (0, 1, 5, 6, 7):
                name = f"{digit}_{speaker}_{take}.wav"
                shutil.copy(FSDD_ROOT / "recordings" / name, manual / name)
    (manual / "README.txt").write_text("not a recording")
    return tmp_path / "manual"


def _config(manual_dir):
    return tfds.download.DownloadConfig(manual_dir=str(manual_dir))


def test_fsdd_builder_round_trip(fsdd_copy, tmp_path):
    data_dir = tmp_path / "tfds"
    builder = tfds_builders.Fsdd(data_dir=str(data_dir))
    builder.download_and_prepare(download_config=_config(fsdd_copy))
    info = builder.info
    assert info.splits["train"].num_examples == 12 and info.splits["test"].num_examples == 8
    assert info.features["label"].names == [str(d) for d in range(10)]
    assert info.features["speaker"].names == ["jackson", "theo"]

    example = next(iter(tfds.as_numpy(builder.as_dataset(split="test").take(1))))
    path = example["path"].decode()
    digit, speaker, take = Path(path).stem.split("_")
    assert path.startswith("recordings/") and int(take) in range(5)
    assert example["label"] == int(digit)
    assert info.features["speaker"].names[example["speaker"]] == speaker
    audio, sr = tfds_builders.decode_audio_bytes(example["audio"])
    expected, expected_sr = sf.read(fsdd_copy / path, dtype="float32")
    assert sr == expected_sr == 8000
    np.testing.assert_array_equal(audio, expected)

    # A new builder on the prepared directory restores the label names from disk.
    again = tfds_builders.Fsdd(data_dir=str(data_dir))
    assert again.info.features["speaker"].names == ["jackson", "theo"]
    audio_b, label_b = next(iter(again.as_dataset(split="train", as_supervised=True)))
    assert audio_b.dtype.name == "string" and 0 <= int(label_b) < 10


def test_fsdd_builder_speaker_config_with_validation(fsdd_copy, tmp_path):
    config = tfds_builders.FsddConfig(
        name="speaker_val", label="speaker", validation_fraction=0.5, train_takes=2
    )
    builder = tfds_builders.Fsdd(data_dir=str(tmp_path / "tfds"), config=config)
    builder.download_and_prepare(download_config=_config(fsdd_copy / "recordings"))
    splits = builder.info.splits
    assert [splits[k].num_examples for k in ("train", "validation", "test")] == [4, 4, 8]
    assert builder.info.features["label"].names == ["jackson", "theo"]
    assert builder.info.features["digit"].num_classes == 10


def test_builder_missing_manual_dir_is_named(tmp_path):
    builder = tfds_builders.ClassFolders(data_dir=str(tmp_path / "tfds"))
    with pytest.raises(ValueError, match="nope does not exist or is empty"):
        builder.download_and_prepare(download_config=_config(tmp_path / "nope"))


def test_class_folders_builder_with_splits(fsdd_copy, tmp_path):
    manual = tmp_path / "folders"
    for wav in sorted((fsdd_copy / "recordings").glob("*.wav")):
        speaker = wav.stem.split("_")[1]
        (manual / speaker).mkdir(parents=True, exist_ok=True)
        shutil.copy(wav, manual / speaker / wav.name)
    (manual / "theo" / "notes.txt").write_text("skipped")
    config = tfds_builders.ClassFoldersConfig(name="split", test_fraction=0.2)
    builder = tfds_builders.ClassFolders(data_dir=str(tmp_path / "tfds"), config=config)
    builder.download_and_prepare(download_config=_config(manual))
    assert builder.info.features["label"].names == ["jackson", "theo"]
    assert {k: v.num_examples for k, v in builder.info.splits.items()} == {"train": 16, "test": 4}
    labels = [int(ex["label"]) for ex in tfds.as_numpy(builder.as_dataset(split="test"))]
    assert sorted(labels) == [0, 0, 1, 1]
