"""A small SYNTHETIC music-genre dataset, generated with numpy, for offline demos.

Nothing here is real music and nothing is downloaded: every clip is computed
from a seed by simple additive, noise and plucked-string synthesis. The data
exists so that a music-genre classifier (for instance an LSTM on log-mel
spectrograms of 16 kHz audio) can be demonstrated and tested without network
access or licensed recordings. Accuracies measured on it say nothing about
real music.

The genres differ in tempo, timbre and rhythm:

- ``ambient_pad``: slow (about 60 bpm) soft sustained chords of a few sine
  partials with slow attacks and a gentle tremolo; no percussion.
- ``techno_beat``: fast (about 128 bpm) four-on-the-floor kick (a
  pitch-swept sine burst), noise hi-hats on the off-beats and an off-beat
  square-wave bass line.
- ``string_pluck``: mid tempo (about 96 bpm) plucked-string notes of a random
  pentatonic melody (Karplus-Strong synthesis), no drums.
- ``swing_jazz``: medium swing (about 150 bpm, eighth notes swung 2:1):
  ride-cymbal pattern, walking sawtooth bass and syncopated brass-like
  sawtooth chord stabs with vibrato.

Each clip gets its own random key, tempo (within ±10 % of the genre's),
instrument details, loudness (peak level), a little white noise and a random
start offset into the rendered passage, so the classes are learnable from
spectrograms but not identical copies of one template.

``synthesize_clip`` returns one clip as a float32 array;
``write_synthetic_music`` writes a class-folder layout of 16-bit PCM WAV files
(``directory/<genre>/<genre>_<NNN>.wav``) plus a ``README.txt`` saying the data
is synthetic, and skips the work when the directory already holds exactly
those files. The same seed always gives the same samples and byte-identical
files.

References:
    Karplus, K. and Strong, A. (1983), "Digital Synthesis of Plucked-String and
    Drum Timbres", Computer Music Journal 7(2), 43-55 (the plucked string).
"""

from __future__ import annotations

import math
import numbers
import os
import warnings
import zlib
from collections.abc import Sequence

import numpy as np

from keras_aux.utils.optional import require

__all__ = ["GENRES", "GENRE_DESCRIPTIONS", "synthesize_clip", "write_synthetic_music"]

GENRE_DESCRIPTIONS: dict[str, str] = {
    "ambient_pad": (
        "slow (~60 bpm) soft sustained chords of sine partials, slow attack, "
        "gentle tremolo, no percussion"
    ),
    "techno_beat": (
        "fast (~128 bpm) four-on-the-floor kick (pitch-swept sine burst), noise "
        "hi-hats on the off-beats, off-beat square-wave bass"
    ),
    "string_pluck": (
        "mid tempo (~96 bpm) Karplus-Strong plucked-string notes of a random "
        "pentatonic melody, no drums"
    ),
    "swing_jazz": (
        "medium swing (~150 bpm, swung eighths) ride cymbal, walking sawtooth bass, "
        "syncopated brass-like sawtooth chord stabs with vibrato"
    ),
}

GENRES: tuple[str, ...] = tuple(GENRE_DESCRIPTIONS)

# Nominal tempi (beats per minute); each clip draws its own within ±10 %.
_TEMPO_BPM = {"ambient_pad": 60.0, "techno_beat": 128.0, "string_pluck": 96.0, "swing_jazz": 150.0}
_TEMPO_JITTER = 0.10
_MIN_SAMPLE_RATE = 8000
_README_NAME = "README.txt"

_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PENTATONIC = (0, 2, 4, 7, 9)


# --------------------------------------------------------------------------- #
# Validation
# --------------------------------------------------------------------------- #


def _check_genre(genre: object) -> str:
    if not isinstance(genre, str) or genre not in GENRE_DESCRIPTIONS:
        raise ValueError(f"Unknown genre {genre!r}; expected one of {list(GENRES)}.")
    return genre


def _check_seconds(seconds: object) -> float:
    if (
        isinstance(seconds, bool)
        or not isinstance(seconds, numbers.Real)
        or not math.isfinite(float(seconds))
        or float(seconds) <= 0
    ):
        raise ValueError(f"`seconds` must be a positive finite number, got {seconds!r}.")
    return float(seconds)


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
    return int(value)


def _check_sample_rate(sample_rate: object) -> int:
    sample_rate = _check_positive_int("sample_rate", sample_rate)
    if sample_rate < _MIN_SAMPLE_RATE:
        raise ValueError(
            f"`sample_rate` must be at least {_MIN_SAMPLE_RATE} Hz for this synthesis "
            f"(cymbals and hi-hats need the bandwidth), got {sample_rate}."
        )
    return sample_rate


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(f"`seed` must be a non-negative integer, got {seed!r}.")
    return int(seed)


def _check_genres(genres: object) -> tuple[str, ...]:
    if isinstance(genres, str) or not isinstance(genres, Sequence):
        raise ValueError(
            f"`genres` must be a sequence of genre names (e.g. a tuple), got {genres!r}."
        )
    genres = tuple(genres)
    if not genres:
        raise ValueError("`genres` must name at least one genre.")
    for genre in genres:
        _check_genre(genre)
    if len(set(genres)) != len(genres):
        raise ValueError(f"`genres` contains duplicates: {list(genres)}.")
    return genres


# --------------------------------------------------------------------------- #
# Building blocks
# --------------------------------------------------------------------------- #


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69.0) / 12.0)


def _add(buf: np.ndarray, start: float, signal: np.ndarray) -> None:
    """Mixes ``signal`` into ``buf`` from sample ``start`` on, cut at the end."""
    start = int(round(start))
    if start >= len(buf) or start + len(signal) <= 0:
        return
    skip = max(0, -start)
    start = max(0, start)
    stop = min(len(buf), start + len(signal) - skip)
    buf[start:stop] += signal[skip : skip + stop - start]


def _lowpass(x: np.ndarray, width: int) -> np.ndarray:
    """A cheap FIR low-pass: a normalised Hann window of ``width`` samples."""
    if width <= 1:
        return x
    window = np.hanning(width + 2)[1:-1]
    return np.convolve(x, window / window.sum(), mode="same")


def _highpass(x: np.ndarray) -> np.ndarray:
    """Second difference: a crude high-pass that brightens noise."""
    return np.diff(x, n=2, prepend=[x[0], x[0]])


def _adsr(n: int, sr: int, attack: float, release: float) -> np.ndarray:
    """Linear attack, sustain at 1, linear release at the end, over ``n`` samples."""
    env = np.ones(n)
    a = min(n, max(1, int(attack * sr)))
    r = min(n - a, max(1, int(release * sr)))
    env[:a] = np.linspace(0.0, 1.0, a, endpoint=False)
    if r > 0:
        env[n - r :] *= np.linspace(1.0, 0.0, r)
    return env


def _saw(freq_track: np.ndarray, sr: int, max_hz: float, phase0: float = 0.0) -> np.ndarray:
    """Band-limited sawtooth by additive synthesis (harmonics below ``max_hz``)."""
    phase = 2.0 * np.pi * np.cumsum(freq_track) / sr + phase0
    n_harm = max(1, int(max_hz / float(np.max(freq_track))))
    out = np.zeros_like(phase)
    for k in range(1, n_harm + 1):
        out += np.sin(k * phase) / k
    return out


def _square(freq_track: np.ndarray, sr: int, max_hz: float) -> np.ndarray:
    """Band-limited square wave by additive synthesis (odd harmonics below ``max_hz``)."""
    phase = 2.0 * np.pi * np.cumsum(freq_track) / sr
    n_harm = max(1, int(max_hz / float(np.max(freq_track))))
    out = np.zeros_like(phase)
    for k in range(1, n_harm + 1, 2):
        out += np.sin(k * phase) / k
    return out * (4.0 / np.pi)


def _karplus_strong(
    freq: float, n: int, sr: int, rng: np.random.Generator, decay: float, brightness: float
) -> np.ndarray:
    """A plucked string (Karplus & Strong 1983): y[t] = g (y[t-N] + y[t-N-1]) / 2.

    The recursion only looks one period back, so it is evaluated a period
    (``N`` samples) at a time.
    """
    period = max(2, int(round(sr / freq)))
    blocks = n // period + 2
    y = np.empty(blocks * period)
    burst = rng.uniform(-1.0, 1.0, period)
    # Lower brightness: a smoother initial burst, so fewer high harmonics.
    burst = _lowpass(burst, 1 + int(round((1.0 - brightness) * 6)))
    y[:period] = burst - burst.mean()
    y[period : 2 * period] = 0.5 * decay * (y[:period] + np.concatenate(([0.0], y[: period - 1])))
    for k in range(2, blocks):
        lo = k * period
        y[lo : lo + period] = 0.5 * decay * (y[lo - period : lo] + y[lo - period - 1 : lo - 1])
    out = y[:n]
    fade = min(n, int(0.01 * sr))
    out[n - fade :] *= np.linspace(1.0, 0.0, fade)
    return out


# --------------------------------------------------------------------------- #
# Genres. Each renders ``n`` samples at rate ``sr`` from ``rng`` with the beat
# length ``beat`` (seconds) already jittered.
# --------------------------------------------------------------------------- #


def _ambient_pad(n: int, sr: int, beat: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    root = int(rng.integers(48, 58))  # C3..A3
    chord_len = beat * int(rng.choice([2, 4]))
    degrees = [0, 3, 4, 5]  # I, IV, V, vi
    attack = rng.uniform(0.5, 1.0)
    release = rng.uniform(0.6, 1.2)
    brightness = rng.uniform(0.15, 0.45)
    detune_cents = rng.uniform(2.0, 6.0)
    t_chord = 0.0
    degree = 0
    while t_chord * sr < n:
        seg = int((chord_len + release) * sr)
        t = np.arange(seg) / sr
        env = _adsr(seg, sr, attack, release)
        chord = np.zeros(seg)
        # Triad (plus a seventh now and then) on the scale degree.
        steps = [0, 2, 4] + ([6] if rng.random() < 0.4 else [])
        for step in steps:
            idx = degree + step
            midi = root + _MAJOR[idx % 7] + 12 * (idx // 7)
            f = _hz(midi)
            for detune in (-detune_cents, detune_cents):
                fd = f * 2.0 ** (detune / 1200.0)
                phase = rng.uniform(0, 2 * np.pi)
                chord += np.sin(2 * np.pi * fd * t + phase)
                chord += brightness * np.sin(2 * np.pi * 2 * fd * t + phase)
                chord += 0.3 * brightness**2 * np.sin(2 * np.pi * 3 * fd * t + phase)
        _add(out, t_chord * sr, chord * env)
        t_chord += chord_len
        degree = int(rng.choice([d for d in degrees if d != degree]))
    t = np.arange(n) / sr
    lfo = 1.0 + rng.uniform(0.1, 0.3) * np.sin(
        2 * np.pi * rng.uniform(0.15, 0.5) * t + rng.uniform(0, 2 * np.pi)
    )
    # A faint, dark "air" noise bed.
    air = _lowpass(rng.standard_normal(n), 24) * 0.02 * np.sqrt(len(steps))
    return out * lfo + air


def _techno_beat(n: int, sr: int, beat: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    n_beats = int(n / (beat * sr)) + 2
    # Kick: a sine whose pitch falls quickly, with a click at the front.
    k_len = int(0.35 * sr)
    t = np.arange(k_len) / sr
    f_hi, f_lo = rng.uniform(120, 180), rng.uniform(42, 60)
    freq = f_lo + (f_hi - f_lo) * np.exp(-t / rng.uniform(0.02, 0.05))
    kick = np.sin(2 * np.pi * np.cumsum(freq) / sr) * np.exp(-t / rng.uniform(0.08, 0.16))
    click = np.zeros(k_len)
    c = int(0.004 * sr)
    click[:c] = rng.uniform(-1, 1, c) * np.linspace(1, 0, c)
    kick = kick + 0.3 * click
    # Hi-hats: bright noise bursts, a few variants.
    h_len = int(0.08 * sr)
    th = np.arange(h_len) / sr
    hat_decay = rng.uniform(0.012, 0.03)
    hats = []
    for _ in range(4):
        noise = _highpass(rng.uniform(-1, 1, h_len))
        hats.append(noise / np.max(np.abs(noise)) * np.exp(-th / hat_decay))
    hat_gain = rng.uniform(0.25, 0.45)
    ghost_prob = rng.uniform(0.0, 0.5)
    # Bass: a low square wave on the off-beat eighths, a one-bar riff.
    root = int(rng.integers(33, 41))  # A1..E2
    riff = [root + int(rng.choice([0, 0, 0, 7, 12, -2, 3])) for _ in range(4)]
    b_len = int(beat * 0.45 * sr)
    tb = np.arange(b_len) / sr
    bass_env = _adsr(b_len, sr, 0.005, 0.03) * np.exp(-tb / rng.uniform(0.1, 0.3))
    bass_cutoff = rng.uniform(600.0, 1500.0)
    bass_gain = rng.uniform(0.25, 0.4)
    bass = [_square(np.full(b_len, _hz(m)), sr, bass_cutoff) for m in riff]
    for i in range(n_beats):
        t0 = i * beat * sr
        _add(out, t0, kick)
        _add(out, t0 + 0.5 * beat * sr, hat_gain * hats[int(rng.integers(4))])
        for q in (0.25, 0.75):
            if rng.random() < ghost_prob:
                _add(out, t0 + q * beat * sr, 0.4 * hat_gain * hats[int(rng.integers(4))])
        _add(out, t0 + 0.5 * beat * sr, bass_gain * bass[i % 4] * bass_env)
    return out


def _string_pluck(n: int, sr: int, beat: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    root = int(rng.integers(55, 67))  # G3..F#4
    decay = rng.uniform(0.990, 0.997)
    brightness = rng.uniform(0.4, 1.0)
    step = beat / 2.0  # eighth-note grid
    n_steps = int(n / (step * sr)) + 1
    onsets = [i for i in range(n_steps) if rng.random() < (0.9 if i % 2 == 0 else 0.45)]
    degree = int(rng.integers(0, 5))
    for j, i in enumerate(onsets):
        nxt = onsets[j + 1] if j + 1 < len(onsets) else i + 4
        degree = int(np.clip(degree + rng.integers(-2, 3), -3, 9))
        midi = root + _PENTATONIC[degree % 5] + 12 * (degree // 5)
        dur = min((nxt - i) * step * 1.5 + 0.1, 2.0)
        note_n = int(dur * sr)
        note = _karplus_strong(_hz(midi), note_n, sr, rng, decay, brightness)
        _add(out, i * step * sr, rng.uniform(0.6, 1.0) * note)
        # A low root pluck on each bar's downbeat now and then.
        if i % 8 == 0 and rng.random() < 0.5:
            low = _karplus_strong(_hz(root - 12), int(1.5 * sr), sr, rng, decay, 0.5 * brightness)
            _add(out, i * step * sr, 0.6 * low)
    return out


def _swing_jazz(n: int, sr: int, beat: float, rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(n)
    n_beats = int(n / (beat * sr)) + 2
    swing = beat * rng.uniform(0.62, 0.70)  # position of the swung "and"
    key = int(rng.integers(0, 12))
    # Ride cymbal: metallic inharmonic partials plus bright noise, long decay.
    r_len = int(0.5 * sr)
    tr = np.arange(r_len) / sr
    base = rng.uniform(3000, 4200)
    metal = sum(
        np.sin(2 * np.pi * base * ratio * tr + rng.uniform(0, 2 * np.pi))
        for ratio in (1.0, 1.34, 1.58, 1.9)
        if base * ratio < 0.45 * sr
    )
    ride = (0.3 * metal + _highpass(rng.uniform(-1, 1, r_len))) * np.exp(
        -tr / rng.uniform(0.05, 0.1)
    )
    ride = ride / np.max(np.abs(ride))
    ride_gain = rng.uniform(0.06, 0.12)
    # Walking bass: one sawtooth note per beat, dark and decaying.
    b_len = int(beat * 0.9 * sr)
    tb = np.arange(b_len) / sr
    bass_env = _adsr(b_len, sr, 0.01, 0.05) * np.exp(-tb / rng.uniform(0.2, 0.4))
    bass_midi = 36 + key
    bass_gain = rng.uniform(0.35, 0.5)
    # Brass stabs: sawtooth chords with vibrato on syncopated positions.
    chord_root = 58 + (key % 7)
    chord_shapes = ([0, 4, 7, 10], [0, 3, 7, 10], [0, 4, 9, 14], [2, 5, 9, 12])
    brass_gain = rng.uniform(0.25, 0.35)
    for i in range(n_beats):
        t0 = i * beat * sr
        _add(out, t0, ride_gain * ride)
        if i % 2 == 1:  # "ding, ding-da, ding, ding-da"
            _add(out, t0 + swing * sr, 0.7 * ride_gain * ride)
        bass_midi = int(np.clip(bass_midi + rng.choice([-5, -3, -2, -1, 1, 2, 3, 5]), 31, 52))
        saw = _saw(np.full(b_len, _hz(bass_midi)), sr, 900.0)
        _add(out, t0, bass_gain * saw * bass_env)
        # Stabs on the swung "and" of beats 2 and 4, sometimes of 1 or 3 or on 4.
        for pos, prob in ((1, 0.9), (3, 0.9), (0, 0.4), (2, 0.4)):
            if i % 4 == pos and rng.random() < prob:
                shape = chord_shapes[int(rng.integers(len(chord_shapes)))]
                dur = rng.uniform(0.12, 0.45)
                s_len = int(dur * sr)
                ts = np.arange(s_len) / sr
                vib = 1.0 + 0.006 * np.sin(2 * np.pi * rng.uniform(4.5, 6.5) * ts)
                stab = np.zeros(s_len)
                for interval in shape:
                    f = _hz(chord_root + interval + int(rng.choice([0, 0, 5, -2])))
                    stab += _saw(f * vib, sr, 3500.0, rng.uniform(0, 2 * np.pi))
                env = _adsr(s_len, sr, rng.uniform(0.02, 0.05), 0.05)
                _add(out, t0 + swing * sr, brass_gain / len(shape) * stab * env)
    return out


_RENDERERS = {
    "ambient_pad": _ambient_pad,
    "techno_beat": _techno_beat,
    "string_pluck": _string_pluck,
    "swing_jazz": _swing_jazz,
}


# --------------------------------------------------------------------------- #
# Public API
# --------------------------------------------------------------------------- #


def synthesize_clip(
    genre: str, seconds: float = 4.0, sample_rate: int = 16000, seed: int = 0
) -> np.ndarray:
    """Synthesises one SYNTHETIC music clip of ``genre``.

    The clip's key, tempo (within ±10 % of the genre's nominal tempo),
    instrument details, peak level (0.3 to 0.9), noise level (about 30 to
    45 dB below the signal) and start offset into the rendered passage are
    drawn from a generator seeded by ``seed`` and the genre name, so the same
    arguments always give the same samples.

    Args:
        genre: One of ``GENRES``.
        seconds: Duration in seconds (> 0); the clip has
            ``round(seconds * sample_rate)`` samples (at least one).
        sample_rate: Samples per second, an integer of at least 8000.
        seed: A non-negative integer.

    Returns:
        A 1-D float32 array, mono, with every value finite and in [-1, 1].

    Raises:
        ValueError: For an unknown genre or an invalid ``seconds``,
            ``sample_rate`` or ``seed``.
    """
    genre = _check_genre(genre)
    seconds = _check_seconds(seconds)
    sample_rate = _check_sample_rate(sample_rate)
    seed = _check_seed(seed)

    rng = np.random.default_rng([seed, zlib.crc32(genre.encode("utf-8"))])
    n = max(1, int(round(seconds * sample_rate)))
    bpm = _TEMPO_BPM[genre] * rng.uniform(1.0 - _TEMPO_JITTER, 1.0 + _TEMPO_JITTER)
    beat = 60.0 / bpm
    # Render up to two beats more and start at a random point inside them.
    offset = int(rng.uniform(0.0, 2.0 * beat) * sample_rate)
    audio = _RENDERERS[genre](n + offset, sample_rate, beat, rng)[offset:]
    audio = audio - audio.mean()
    rms = float(np.sqrt(np.mean(audio**2)))
    if rms > 0:
        snr_db = rng.uniform(30.0, 45.0)
        audio = audio + rng.standard_normal(n) * rms * 10.0 ** (-snr_db / 20.0)
    peak = float(np.max(np.abs(audio)))
    level = rng.uniform(0.3, 0.9)
    if peak > 0:
        audio = audio * (level / peak)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def _clip_seed(seed: int, index: int) -> int:
    """The ``synthesize_clip`` seed of file ``index`` in a set made with ``seed``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1, dtype=np.uint32)[0])


def _readme_text(
    genres: tuple[str, ...], clips_per_genre: int, seconds: float, sample_rate: int, seed: int
) -> str:
    lines = [
        "SYNTHETIC MUSIC DATA - NOT REAL MUSIC",
        "",
        "Every file here was generated by keras_aux.audio.synthetic_music",
        "(write_synthetic_music), with numpy only: additive, noise and",
        "Karplus-Strong plucked-string synthesis. Nothing was recorded or",
        "downloaded. The data exists for offline demos and tests of a",
        "music-genre classifier; accuracies measured on it say nothing about",
        "real music.",
        "",
        "Parameters:",
        f"  seed: {seed}",
        f"  sample_rate: {sample_rate} Hz",
        f"  seconds per clip: {seconds!r}",
        f"  clips per genre: {clips_per_genre}",
        "  format: mono WAV, 16-bit PCM",
        "  layout: <genre>/<genre>_<NNN>.wav",
        "",
        "Genres:",
    ]
    lines += [f"  {g}: {GENRE_DESCRIPTIONS[g]}" for g in genres]
    lines += [
        "",
        "Each clip has its own random key, tempo (within +/-10 % of the genre's),",
        "instrument details, peak level, a little white noise and a random start",
        "offset. The same parameters give byte-identical files.",
        "",
    ]
    return "\n".join(lines)


def _expected_names(genre: str, clips_per_genre: int) -> list[str]:
    width = max(3, len(str(clips_per_genre - 1)))
    return [f"{genre}_{i:0{width}d}.wav" for i in range(clips_per_genre)]


def _is_complete(directory: str, readme: str, expected: dict[str, list[str]]) -> bool:
    readme_path = os.path.join(directory, _README_NAME)
    # keras-aux 0.1 named this module keras_aux.data.synthetic_music in the README; a set it
    # wrote holds the same files, so it is not regenerated.
    readme_01 = readme.replace(
        "by keras_aux.audio.synthetic_music", "by keras_aux.data.synthetic_music", 1
    )
    try:
        with open(readme_path, encoding="utf-8") as f:
            if f.read() not in (readme, readme_01):
                return False
        for genre, names in expected.items():
            present = {
                name
                for name in os.listdir(os.path.join(directory, genre))
                if name.lower().endswith(".wav")
            }
            if present != set(names):
                return False
            for name in names:
                if os.path.getsize(os.path.join(directory, genre, name)) == 0:
                    return False
    except OSError:
        return False
    return True


def write_synthetic_music(
    directory: str | os.PathLike,
    clips_per_genre: int = 24,
    seconds: float = 4.0,
    sample_rate: int = 16000,
    seed: int = 0,
    genres: Sequence[str] = GENRES,
) -> list[str]:
    """Writes a SYNTHETIC music-genre dataset as WAV files in class folders.

    The layout is ``directory/<genre>/<genre>_<NNN>.wav`` (mono, 16-bit PCM;
    ``NNN`` zero-padded to at least three digits), one folder per genre, ready
    for a class-folder loader such as ``keras.utils.audio_dataset_from_directory``.
    ``directory/README.txt`` states that the data is synthetic, how it was made
    and with which parameters. File ``i`` of a genre holds
    ``synthesize_clip(genre, seconds, sample_rate, s)``, where ``s`` is derived
    from ``(seed, i)`` by ``numpy.random.SeedSequence``, so the same arguments
    always give byte-identical files (with one numpy build on one platform:
    the last bits of ``np.sin`` and friends may differ between builds, which
    can move a rare sample by one 16-bit step).

    If ``directory`` already holds exactly these files (the same README, hence
    the same parameters, and exactly the expected WAV names in every genre
    folder), nothing is written. Otherwise the set is regenerated; stale
    ``.wav`` files in the requested genre folders are removed, anything else is
    left alone (with a warning for other sub-folders, which a class-folder
    loader would take for extra classes). The README is written last, so an
    interrupted run is regenerated next time.

    Args:
        directory: Output folder; created if missing.
        clips_per_genre: Number of clips per genre (positive integer).
        seconds: Duration of each clip in seconds (> 0).
        sample_rate: Samples per second, an integer of at least 8000.
        seed: A non-negative integer.
        genres: Names from ``GENRES`` (no duplicates); default all of them.

    Returns:
        The paths of the WAV files, genre by genre in the order of ``genres``,
        clips in index order.

    Raises:
        ValueError: For an unknown or duplicated genre, or a non-positive or
            otherwise invalid ``clips_per_genre``, ``seconds``, ``sample_rate``
            or ``seed``.
    """
    sf = require("soundfile", extra="audio", purpose="to write the synthetic WAV files")

    clips_per_genre = _check_positive_int("clips_per_genre", clips_per_genre)
    seconds = _check_seconds(seconds)
    sample_rate = _check_sample_rate(sample_rate)
    seed = _check_seed(seed)
    genres = _check_genres(genres)
    directory = os.fspath(directory)

    expected = {g: _expected_names(g, clips_per_genre) for g in genres}
    paths = [os.path.join(directory, g, name) for g in genres for name in expected[g]]
    readme = _readme_text(genres, clips_per_genre, seconds, sample_rate, seed)
    if _is_complete(directory, readme, expected):
        return paths

    os.makedirs(directory, exist_ok=True)
    readme_path = os.path.join(directory, _README_NAME)
    if os.path.exists(readme_path):
        os.remove(readme_path)  # The set is incomplete until the README is back.
    others = sorted(
        e
        for e in os.listdir(directory)
        if e not in genres and os.path.isdir(os.path.join(directory, e))
    )
    if others:
        warnings.warn(
            f"{directory!r} has sub-folders that are not requested genres: {others}; "
            "a class-folder loader would treat them as extra classes.",
            stacklevel=2,
        )
    for genre in genres:
        folder = os.path.join(directory, genre)
        os.makedirs(folder, exist_ok=True)
        keep = set(expected[genre])
        for name in os.listdir(folder):
            if name.lower().endswith(".wav") and name not in keep:
                os.remove(os.path.join(folder, name))
        for i, name in enumerate(expected[genre]):
            audio = synthesize_clip(genre, seconds, sample_rate, _clip_seed(seed, i))
            sf.write(os.path.join(folder, name), audio, sample_rate, subtype="PCM_16", format="WAV")
    with open(readme_path, "w", encoding="utf-8") as f:
        f.write(readme)
    return paths
