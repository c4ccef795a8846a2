"""Fuzz test: damaged copies of real FSDD recordings never stop the audio pipeline.

A few hundred damaged files (cut short at random offsets, bytes flipped in the header and in
the data, wrong chunk sizes, an empty data chunk; the same kinds of damage to FLAC, OGG and MP3
versions written from the FSDD WAVs) are mixed with good files. The pipeline must finish, keep
every good file with its label, and account for every damaged one: decoded (counted as cut
short when its data ends before its header's length), or counted as silent, undecodable, too
short or skipped by the header scan. Seeded, so a failure reproduces.
"""

import struct
import threading
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile

from keras_aux.audio import decode
from keras_aux.audio.pipeline import audio_pipeline
from keras_aux.layers import LogMelSpectrogram
from keras_aux.testing import requires_tensorflow
from keras_aux.utils.optional import LazyTensorFlow

# The tf.data pipeline's tests need TensorFlow; the NumPy decoding's run everywhere.
tf = LazyTensorFlow("for the tests of the tf.data pipeline (marked requires_tensorflow)")

FSDD = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "fsdd" / "recordings"

GOOD_FILES = 24  # real recordings kept intact
WAV_DAMAGED = 200  # damaged WAV copies
OTHER_DAMAGED = 40  # damaged copies per compressed format (FLAC, OGG, MP3)
TIMEOUT_S = 240  # the pass must end well before this (it takes a few seconds)


def fsdd_files():
    paths = sorted(FSDD.glob("*.wav"))
    if not paths:
        pytest.skip(f"FSDD not found at {FSDD}: the shared data folder is absent")
    return paths


def find_chunk(data, name):
    """Offset of a RIFF chunk's header (its 4-byte id), or -1."""
    return data.find(name, 12)


def damage_wav(data, rng):
    """One damaged copy of a canonical WAV file's bytes, and the kind of damage."""
    data = bytearray(data)
    data_chunk = find_chunk(data, b"data")
    kind = rng.choice(
        [
            "truncate_data",
            "truncate_header",
            "flip_header",
            "flip_data",
            "riff_size",
            "data_size",
            "zero_data",
            "fmt_field",
        ]
    )
    if kind == "truncate_data":  # a half-downloaded file: cut inside the data chunk
        cut = int(rng.integers(data_chunk + 8, len(data)))
        return bytes(data[:cut]), kind
    if kind == "truncate_header":  # cut inside the header (60 bytes and less)
        return bytes(data[: int(rng.integers(0, data_chunk + 9))]), kind
    if kind == "flip_header":
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, data_chunk + 8))] ^= int(rng.integers(1, 256))
        return bytes(data), kind
    if kind == "flip_data":
        n = int(rng.integers(1, 64))
        positions = rng.integers(data_chunk + 8, len(data), size=n)
        for p in positions:
            data[int(p)] ^= int(rng.integers(1, 256))
        return bytes(data), kind
    if kind == "riff_size":
        size = int(rng.choice([0, 4, len(data) // 2, len(data) * 10, 0xFFFFFFFF]))
        data[4:8] = struct.pack("<I", size)
        return bytes(data), kind
    if kind == "data_size":
        true_size = len(data) - data_chunk - 8
        size = int(rng.choice([1, 3, true_size // 3, true_size * 7, 0x7FFFFFFF, 0xFFFFFFFF]))
        data[data_chunk + 4 : data_chunk + 8] = struct.pack("<I", size)
        return bytes(data), kind
    if kind == "zero_data":  # a data chunk of length 0, with or without the samples after it
        data[data_chunk + 4 : data_chunk + 8] = struct.pack("<I", 0)
        if rng.random() < 0.5:
            del data[data_chunk + 8 :]
        return bytes(data), kind
    # fmt fields: channels, sample rate, byte rate, block align, bits per sample
    fmt = find_chunk(data, b"fmt ")
    offset, width = [(10, 2), (12, 4), (16, 4), (20, 2), (22, 2)][int(rng.integers(0, 5))]
    value = int(rng.choice([0, 1, 3, 255, 2 ** (8 * width) - 1]))
    data[fmt + offset : fmt + offset + width] = value.to_bytes(width, "little")
    return bytes(data), kind


def damage_other(data, rng):
    """One damaged copy of a compressed file's bytes (FLAC, OGG, MP3), and the kind."""
    data = bytearray(data)
    kind = rng.choice(["truncate", "flip_header", "flip_data", "zero_block"])
    if kind == "truncate":
        return bytes(data[: int(rng.integers(0, len(data)))]), kind
    if kind == "flip_header":
        for _ in range(int(rng.integers(1, 4))):
            data[int(rng.integers(0, min(len(data), 64)))] ^= int(rng.integers(1, 256))
        return bytes(data), kind
    if kind == "flip_data":
        for p in rng.integers(min(len(data) - 1, 64), len(data), size=int(rng.integers(1, 64))):
            data[int(p)] ^= int(rng.integers(1, 256))
        return bytes(data), kind
    start = int(rng.integers(0, len(data)))  # a block of zeros, as from a failed disk write
    stop = min(len(data), start + int(rng.integers(1, 2048)))
    data[start:stop] = bytes(stop - start)
    return bytes(data), kind


@pytest.fixture(scope="module")
def fuzz_set(tmp_path_factory):
    """(paths, labels, good flags) of good and damaged files, shuffled."""
    rng = np.random.default_rng(12)
    sources = fsdd_files()
    chosen = [sources[int(i)] for i in rng.choice(len(sources), GOOD_FILES, replace=False)]
    root = tmp_path_factory.mktemp("fuzz")
    entries = []  # (path, digit, good, kind)
    for source in chosen:
        entries.append((str(source), int(source.name[0]), True, "good"))
    for i in range(WAV_DAMAGED):
        source = chosen[i % len(chosen)]
        data, kind = damage_wav(source.read_bytes(), rng)
        path = root / f"wav_{i:03d}_{kind}.wav"
        path.write_bytes(data)
        entries.append((str(path), int(source.name[0]), False, kind))
    for fmt, extension, subtype in (
        ("FLAC", "flac", None),
        ("OGG", "ogg", "VORBIS"),
        ("MP3", "mp3", None),
    ):
        for j, source in enumerate(chosen[:8]):
            wave, rate = soundfile.read(str(source), dtype="float32")
            path = root / f"good_{j}.{extension}"
            soundfile.write(str(path), wave, rate, format=fmt, subtype=subtype)
            entries.append((str(path), int(source.name[0]), True, f"good {extension}"))
        for i in range(OTHER_DAMAGED):
            source = root / f"good_{i % 8}.{extension}"
            data, kind = damage_other(source.read_bytes(), rng)
            path = root / f"{extension}_{i:03d}_{kind}.{extension}"
            path.write_bytes(data)
            entries.append((str(path), int(chosen[i % 8].name[0]), False, kind))
    order = rng.permutation(len(entries))
    return [entries[i] for i in order]


def run_with_timeout(fn, timeout):
    """``fn()`` in a thread; fails the test if it has not returned after ``timeout`` seconds."""
    result = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as error:  # re-raised below, in the test's thread
            result["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"the pipeline hung (> {timeout} s)"
    if "error" in result:
        raise result["error"]
    return result["value"]


@requires_tensorflow
@pytest.mark.parametrize("with_frontend", [True, False], ids=["log_mel", "waveform"])
def test_damaged_files_are_decoded_or_counted(fuzz_set, with_frontend):
    paths = [entry[0] for entry in fuzz_set]
    index = np.arange(len(paths))  # the label is the file's index: which files came out
    pipeline = audio_pipeline(
        paths,
        index,
        training=False,
        duration=1.0,
        frontend=LogMelSpectrogram() if with_frontend else None,
        batch_size=32,
    )

    def one_pass():
        out = []
        for x, y in pipeline.dataset:
            assert np.all(np.isfinite(x.numpy()))
            out.extend(y.numpy().tolist())
        return out

    kept = run_with_timeout(one_pass, TIMEOUT_S)
    assert len(kept) == len(set(kept))
    good = {i for i, entry in enumerate(fuzz_set) if entry[2]}
    assert good <= set(kept), [fuzz_set[i][0] for i in good - set(kept)]
    silent = int(pipeline.silent_skipped.numpy())
    unreadable = int(pipeline.unreadable_skipped.numpy())
    too_short = int(pipeline.too_short_skipped.numpy())
    scan_skipped = len(pipeline.scan.skipped)
    assert len(kept) + silent + unreadable + too_short + scan_skipped == len(paths), (
        pipeline.summary()
    )
    assert pipeline.num_skipped == len(paths) - len(kept)
    # The fuzzing does damage: many copies are rejected, by the scan and while decoding; copies
    # cut inside their data are too short (skipped) or cut short (kept, reported).
    assert scan_skipped > 20 and unreadable + silent > 0, pipeline.summary()
    assert too_short > 0 and 0 < pipeline.num_cut_short <= len(kept) - len(good)
    low, high = pipeline.cut_short_seconds
    assert decode.MIN_DURATION <= low <= high, pipeline.summary()
    assert f"{pipeline.num_cut_short} files cut short (kept, " in pipeline.summary()


@requires_tensorflow
def test_labels_of_good_files_survive(fuzz_set):
    paths = [entry[0] for entry in fuzz_set]
    digits = [entry[1] for entry in fuzz_set]
    pipeline = audio_pipeline(paths, digits, training=True, duration=1.0, seed=3, batch_size=64)
    labels = np.concatenate([y.numpy() for _, y in pipeline.dataset])
    # Every good file's digit is among the outputs (damaged copies that decode add more).
    missing = Counter(entry[1] for entry in fuzz_set if entry[2]) - Counter(labels.tolist())
    assert not missing, missing


def test_load_waveform_decodes_or_names_the_file(fuzz_set):
    for path, _, good, kind in fuzz_set:
        try:
            wave = decode.load_waveform(path, 16000)
        except decode.AudioFileError as error:
            assert not good, f"{path}: {error}"
            assert path in str(error)
            continue
        assert wave.ndim == 1 and wave.size > 0 and np.all(np.isfinite(wave)), (path, kind)


@requires_tensorflow
def test_truncated_wav_in_strict_mode_names_the_file(tmp_path):
    source = fsdd_files()[0]
    data = source.read_bytes()
    for cut in (44, 45):  # the header, no sample: the scan rejects it, naming it
        path = tmp_path / f"cut_{cut}.wav"
        path.write_bytes(data[:cut])
        with pytest.raises(decode.AudioFileError, match=f"{path}: empty"):
            audio_pipeline([path], [0], training=False, duration=1.0, strict=True)
    # Cut inside the data (`head -c 2001`, formerly "DecodeWav: Data too short"): the samples
    # that arrived decode, and the clip is zero-padded like any short one and reported as cut
    # short; in strict mode the error names the file, its declared and its decoded length.
    path = tmp_path / "cut_2001.wav"
    path.write_bytes(data[:2001])
    pipeline = audio_pipeline([path], [0], training=False, duration=1.0)
    waves = np.concatenate([x.numpy() for x, _ in pipeline.dataset])
    assert waves.shape == (1, 16000) and pipeline.num_cut_short == 1
    arrived = 2 * (2001 - 44) // 2  # 978 samples at 8 kHz → 1956 at 16 kHz
    assert np.any(waves[0, :arrived] != 0) and not np.any(waves[0, arrived + 8 :])
    pipeline = audio_pipeline([path], [0], training=False, duration=1.0, strict=True)
    declared = (len(data) - 44) // 2 / 8000
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=f"AudioFileError: {path}: cut short: its header declares {declared:.3f} s .* "
        r"ends after 0\.122 s \(978 frames\)",
    ):
        list(pipeline.dataset)
    # A file whose header passes the scan but whose data cannot be used: the error names it.
    silent = tmp_path / "silent.wav"
    soundfile.write(str(silent), np.zeros(800, "float32"), 8000, subtype="PCM_16")
    pipeline = audio_pipeline([silent], [0], training=False, duration=0.1, strict=True)
    with pytest.raises(tf.errors.InvalidArgumentError, match=f"AudioFileError: {silent}: silent"):
        list(pipeline.dataset)
    with pytest.raises(decode.AudioFileError, match=f"{silent}: silent"):
        decode.decode_clip(str(silent), 16000, 1600, strict=True)
    corrupt = tmp_path / "corrupt.flac"
    corrupt.write_bytes(b"fLaC" + bytes(400))
    with pytest.raises(decode.AudioFileError, match=f"{corrupt}: unreadable"):
        decode.decode_clip(str(corrupt), 16000, 1600, strict=True)
