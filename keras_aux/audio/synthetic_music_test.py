"""Tests for the synthetic music-genre dataset (numpy and soundfile only)."""

import math
import os

import numpy as np
import pytest
import soundfile as sf

from keras_aux.audio import synthetic_music as sm

SR = 16000


def _features(x, sr=SR):
    """Four coarse numpy features of a clip: brightness, timbre spread, onsets, beat.

    - log of the mean spectral centroid (Hz);
    - spread over time of the log centroid;
    - mean positive spectral flux of the log magnitude (onset strength);
    - highest autocorrelation of that onset envelope at lags of 40-200 bpm
      (how regular the rhythm is: a tempo proxy).
    """
    frame, hop = 1024, 512
    n = 1 + (len(x) - frame) // hop
    idx = np.arange(frame)[None, :] + hop * np.arange(n)[:, None]
    mag = np.abs(np.fft.rfft(x[idx] * np.hanning(frame), axis=1))
    freqs = np.fft.rfftfreq(frame, 1.0 / sr)
    power = mag**2
    centroid = (power @ freqs) / (power.sum(axis=1) + 1e-12) + 1.0
    flux = np.maximum(np.diff(np.log(mag + 1e-6), axis=0), 0.0).mean(axis=1)
    env = flux - flux.mean()
    ac = np.correlate(env, env, "full")[len(env) - 1 :]
    ac = ac / (ac[0] + 1e-12)
    fps = sr / hop
    lo, hi = int(fps * 60 / 200), int(fps * 60 / 40)
    return np.array(
        [
            np.log(centroid.mean()),
            np.std(np.log(centroid)),
            flux.mean(),
            ac[lo:hi].max(),
        ]
    )


def _mtimes(paths):
    return {p: os.stat(p).st_mtime_ns for p in paths}


# --------------------------------------------------------------------------- #
# synthesize_clip
# --------------------------------------------------------------------------- #


def test_genres_and_descriptions():
    assert len(sm.GENRES) == 4
    assert set(sm.GENRES) == set(sm.GENRE_DESCRIPTIONS)
    assert len(set(sm.GENRES)) == len(sm.GENRES)


@pytest.mark.parametrize("genre", sm.GENRES)
def test_clip_is_finite_bounded_and_not_silent(genre):
    for seed in range(3):
        x = sm.synthesize_clip(genre, seconds=4.0, sample_rate=SR, seed=seed)
        assert x.dtype == np.float32
        assert x.shape == (4 * SR,)
        assert np.all(np.isfinite(x))
        peak = np.max(np.abs(x))
        assert 0.25 <= peak <= 0.95  # loudness varies, but never clips
        assert np.sqrt(np.mean(x.astype(np.float64) ** 2)) > 0.02
        assert abs(float(np.mean(x))) < 0.01


@pytest.mark.parametrize("genre", sm.GENRES)
def test_clip_is_deterministic_per_seed(genre):
    a = sm.synthesize_clip(genre, seconds=1.5, seed=7)
    b = sm.synthesize_clip(genre, seconds=1.5, seed=7)
    c = sm.synthesize_clip(genre, seconds=1.5, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_clips_differ_across_genres_with_the_same_seed():
    clips = [sm.synthesize_clip(g, seconds=1.0, seed=0) for g in sm.GENRES]
    for i in range(len(clips)):
        for j in range(i + 1, len(clips)):
            assert not np.array_equal(clips[i], clips[j])


@pytest.mark.parametrize(
    "seconds, sample_rate, length", [(0.05, 16000, 800), (1.0, 22050, 22050), (2.5, 8000, 20000)]
)
def test_clip_length_follows_seconds_and_rate(seconds, sample_rate, length):
    for genre in sm.GENRES:
        x = sm.synthesize_clip(genre, seconds=seconds, sample_rate=sample_rate, seed=1)
        assert x.shape == (length,)
        assert np.all(np.isfinite(x)) and np.max(np.abs(x)) <= 1.0


def test_genres_are_separable_by_simple_features():
    """A nearest-centroid classifier on 4 numpy features, held-out clips."""
    per_genre, n_train = 16, 8
    feats, labels = [], []
    for label, genre in enumerate(sm.GENRES):
        for i in range(per_genre):
            feats.append(_features(sm.synthesize_clip(genre, seed=1000 + i)))
            labels.append(label)
    x, y = np.array(feats), np.array(labels)
    train = np.tile(np.arange(per_genre) < n_train, len(sm.GENRES))
    mu, sd = x[train].mean(axis=0), x[train].std(axis=0) + 1e-12
    z = (x - mu) / sd
    centroids = np.stack([z[train & (y == k)].mean(axis=0) for k in range(len(sm.GENRES))])
    dist = ((z[~train][:, None, :] - centroids[None]) ** 2).sum(axis=-1)
    accuracy = float(np.mean(dist.argmin(axis=1) == y[~train]))
    assert accuracy >= 0.7, f"held-out nearest-centroid accuracy {accuracy:.2f}"


# --------------------------------------------------------------------------- #
# write_synthetic_music
# --------------------------------------------------------------------------- #


def test_writes_class_folders_readme_and_wavs(tmp_path):
    out = tmp_path / "music"
    paths = sm.write_synthetic_music(out, clips_per_genre=3, seconds=1.25, seed=3)
    assert len(paths) == 3 * len(sm.GENRES)
    expected = [os.path.join(str(out), g, f"{g}_{i:03d}.wav") for g in sm.GENRES for i in range(3)]
    assert paths == expected
    assert sorted(os.listdir(out)) == sorted([*sm.GENRES, "README.txt"])
    for genre in sm.GENRES:
        assert sorted(os.listdir(out / genre)) == [f"{genre}_{i:03d}.wav" for i in range(3)]
    for path in paths:
        info = sf.info(path)
        assert info.samplerate == SR
        assert info.channels == 1
        assert info.subtype == "PCM_16"
        assert info.format == "WAV"
        assert info.frames == int(1.25 * SR)
        assert math.isclose(info.duration, 1.25)
        data, _ = sf.read(path, dtype="float32")
        assert np.sqrt(np.mean(data**2)) > 0.02
        assert np.max(np.abs(data)) < 1.0
    readme = (out / "README.txt").read_text()
    assert "SYNTHETIC" in readme
    assert "keras_aux.audio.synthetic_music" in readme
    assert "seed: 3" in readme
    assert f"sample_rate: {SR}" in readme
    for genre in sm.GENRES:
        assert genre in readme


def test_file_holds_the_documented_clip(tmp_path):
    paths = sm.write_synthetic_music(tmp_path, clips_per_genre=2, seconds=0.5, seed=11)
    genre = sm.GENRES[2]
    data, _ = sf.read(os.path.join(str(tmp_path), genre, f"{genre}_001.wav"), dtype="float32")
    clip = sm.synthesize_clip(genre, 0.5, SR, sm._clip_seed(11, 1))
    np.testing.assert_allclose(data, clip, atol=2.0 / 32768)
    assert len(paths) == 2 * len(sm.GENRES)


def test_files_are_byte_identical_for_a_seed(tmp_path):
    a = sm.write_synthetic_music(tmp_path / "a", clips_per_genre=2, seconds=0.5, seed=5)
    b = sm.write_synthetic_music(tmp_path / "b", clips_per_genre=2, seconds=0.5, seed=5)
    c = sm.write_synthetic_music(tmp_path / "c", clips_per_genre=2, seconds=0.5, seed=6)
    for pa, pb, pc in zip(a, b, c):
        with open(pa, "rb") as fa, open(pb, "rb") as fb, open(pc, "rb") as fc:
            bytes_a, bytes_b, bytes_c = fa.read(), fb.read(), fc.read()
        assert bytes_a == bytes_b
        assert bytes_a != bytes_c
    assert (tmp_path / "a" / "README.txt").read_bytes() == (
        tmp_path / "b" / "README.txt"
    ).read_bytes()


def test_second_call_does_not_rewrite(tmp_path):
    kwargs = dict(clips_per_genre=2, seconds=0.5, seed=1)
    paths = sm.write_synthetic_music(tmp_path, **kwargs)
    readme = os.path.join(str(tmp_path), "README.txt")
    # Backdate everything so that a rewrite would show even on coarse clocks.
    for p in [*paths, readme]:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    before = _mtimes([*paths, readme])
    assert sm.write_synthetic_music(tmp_path, **kwargs) == paths
    assert _mtimes([*paths, readme]) == before


def test_set_written_by_keras_aux_0_1_is_not_rewritten(tmp_path):
    # 0.1's README named the module keras_aux.data.synthetic_music; the files are the same.
    kwargs = dict(clips_per_genre=1, seconds=0.5, seed=1)
    paths = sm.write_synthetic_music(tmp_path, **kwargs)
    readme = tmp_path / "README.txt"
    text = readme.read_text(encoding="utf-8")
    old = text.replace("keras_aux.audio.synthetic_music", "keras_aux.data.synthetic_music")
    assert old != text
    readme.write_text(old, encoding="utf-8")
    for p in [*paths, readme]:
        os.utime(p, ns=(1_000_000_000, 1_000_000_000))
    before = _mtimes([*paths, readme])
    assert sm.write_synthetic_music(tmp_path, **kwargs) == paths
    assert _mtimes([*paths, readme]) == before
    # Any other difference in the README still regenerates the set.
    readme.write_text(old.replace("keras_aux.data.", "keras_aux.elsewhere."), encoding="utf-8")
    sm.write_synthetic_music(tmp_path, **kwargs)
    assert readme.read_text(encoding="utf-8") == text


def test_incomplete_or_changed_set_is_regenerated(tmp_path):
    paths = sm.write_synthetic_music(tmp_path, clips_per_genre=3, seconds=0.5, seed=1)
    reference = open(paths[4], "rb").read()
    os.remove(paths[4])
    again = sm.write_synthetic_music(tmp_path, clips_per_genre=3, seconds=0.5, seed=1)
    assert again == paths
    assert open(paths[4], "rb").read() == reference

    # Fewer clips and another seed: stale clips go, the README follows.
    fewer = sm.write_synthetic_music(tmp_path, clips_per_genre=2, seconds=0.5, seed=2)
    for genre in sm.GENRES:
        assert sorted(os.listdir(tmp_path / genre)) == [f"{genre}_000.wav", f"{genre}_001.wav"]
    assert "seed: 2" in (tmp_path / "README.txt").read_text()
    assert len(fewer) == 2 * len(sm.GENRES)


def test_subset_of_genres(tmp_path):
    genres = ("techno_beat", "ambient_pad")
    paths = sm.write_synthetic_music(tmp_path, clips_per_genre=1, seconds=0.5, genres=genres)
    assert [os.path.basename(os.path.dirname(p)) for p in paths] == list(genres)
    assert sorted(os.listdir(tmp_path)) == sorted([*genres, "README.txt"])


def test_warns_about_foreign_subfolders(tmp_path):
    (tmp_path / "not_a_genre").mkdir()
    with pytest.warns(UserWarning, match="not_a_genre"):
        sm.write_synthetic_music(tmp_path, clips_per_genre=1, seconds=0.25)
    assert (tmp_path / "not_a_genre").is_dir()


def test_many_clips_widen_the_index():
    names = sm._expected_names("ambient_pad", 1001)
    assert names[0] == "ambient_pad_0000.wav" and names[-1] == "ambient_pad_1000.wav"
    assert sm._expected_names("ambient_pad", 24)[-1] == "ambient_pad_023.wav"


# --------------------------------------------------------------------------- #
# Bad inputs
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(genre="polka"), "Unknown genre 'polka'"),
        (dict(genre="techno_beat", seconds=0), "`seconds` must be a positive"),
        (dict(genre="techno_beat", seconds=-1.0), "`seconds` must be a positive"),
        (dict(genre="techno_beat", seconds=float("nan")), "`seconds` must be a positive"),
        (dict(genre="techno_beat", sample_rate=0), "`sample_rate` must be a positive"),
        (dict(genre="techno_beat", sample_rate=-16000), "`sample_rate` must be a positive"),
        (dict(genre="techno_beat", sample_rate=16000.0), "`sample_rate` must be a positive"),
        (dict(genre="techno_beat", sample_rate=4000), "at least 8000"),
        (dict(genre="techno_beat", seed=-1), "`seed` must be a non-negative"),
    ],
)
def test_synthesize_clip_rejects_bad_inputs(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sm.synthesize_clip(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(clips_per_genre=0), "`clips_per_genre` must be a positive integer"),
        (dict(clips_per_genre=-3), "`clips_per_genre` must be a positive integer"),
        (dict(clips_per_genre=2.5), "`clips_per_genre` must be a positive integer"),
        (dict(seconds=0.0), "`seconds` must be a positive"),
        (dict(sample_rate=0), "`sample_rate` must be a positive"),
        (dict(genres=("techno_beat", "polka")), "Unknown genre 'polka'"),
        (dict(genres="techno_beat"), "`genres` must be a sequence"),
        (dict(genres=()), "at least one genre"),
        (dict(genres=("techno_beat", "techno_beat")), "duplicates"),
        (dict(seed=-2), "`seed` must be a non-negative"),
    ],
)
def test_write_rejects_bad_inputs(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        sm.write_synthetic_music(tmp_path / "out", **kwargs)
    assert not (tmp_path / "out").exists()
