"""Clips per second and CPU-seconds per clip of the tf.data audio pipeline against the
reference's librosa loop, on the same files, in one run.

Files: synthetic music clips (``keras_aux.audio.synthetic_music``) of ``--seconds`` seconds
at 44.1 kHz, written once as MP3 (like FMA) and as 16-bit WAV. Both sides do what the
reference does: load at 16 kHz mono, crop / zero-pad to the clip duration, 128-band Slaney mel
power spectrogram (FFT 2048, hop 512), ``power_to_db(ref=max)``, ``(dB + 40) / 40``.

- tf.data: ``keras_aux.audio.pipeline.audio_pipeline``: libsndfile decode, libsoxr ``HQ``
  resampling, crop and ``LogMelSpectrogram.numpy_call`` in one ``tf.numpy_function`` per clip
  (one call per core, in parallel); batches of 16.
- librosa: a Python loop of ``librosa.load(path, sr=16000)`` (soxr_hq resampling) +
  ``librosa.feature.melspectrogram`` + ``power_to_db``, NumPy's BLAS limited to one thread
  (the loop is single-threaded; with two BLAS threads it is no faster on two cores and uses
  more CPU time).

Each side runs ``--repeats`` times, alternating; the table reports the best pass of each (the
least disturbed by other load on this shared machine), with wall-clock clips/s and process CPU
seconds per clip (``time.process_time``: every thread of the process). A per-stage profile
(decode, resample, mel; CPU ms per clip, one clip at a time) is measured for both sides on
the same files. Finally the second epoch of a pipeline with ``cache_dir`` (features
read back from disk) is timed against a pipeline that recomputes them.

Run: ``python -m benchmarks.audio_pipeline`` → ``benchmarks/results/audio_pipeline.md``.
"""

import os
import platform
import tempfile
import time

import numpy as np
import soundfile
import tensorflow as tf
from absl import app, flags

from keras_aux.audio import decode
from keras_aux.audio.pipeline import audio_pipeline
from keras_aux.audio.synthetic_music import GENRES, synthesize_clip
from keras_aux.experiments.reporting import write_markdown
from keras_aux.layers import LogMelSpectrogram

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_clips", 48, "Clips per format.")
flags.DEFINE_float("seconds", 30.0, "Clip duration (FMA clips are 30 s).")
flags.DEFINE_integer("file_rate", 44100, "Sample rate of the files (resampled to 16 kHz).")
flags.DEFINE_list("formats", ["mp3", "wav"], "File formats to time.")
flags.DEFINE_integer("repeats", 2, "Alternating passes per side.")
flags.DEFINE_integer("profile_clips", 8, "Clips per format in the per-stage profile.")
flags.DEFINE_string("output", "benchmarks/results/audio_pipeline.md", "Markdown table path.")

SAMPLE_RATE = 16000
GOALS = {"wav": 3.0, "mp3": 2.0}


def write_clips(directory, fmt, num_clips, seconds, rate):
    """Writes ``num_clips`` synthetic clips; returns their paths."""
    paths = []
    for i in range(num_clips):
        path = os.path.join(directory, f"clip_{i:03d}.{fmt}")
        wave = synthesize_clip(GENRES[i % len(GENRES)], seconds=seconds, sample_rate=rate, seed=i)
        if fmt == "mp3":
            soundfile.write(path, wave, rate, format="MP3")
        else:
            soundfile.write(path, wave, rate, subtype="PCM_16")
        paths.append(path)
    return paths


class Timer:
    """Wall-clock and process CPU time (all threads) of a block."""

    def __enter__(self):
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def make_pipeline(paths, seconds, cache_dir=None):
    """The pipeline as the trainer builds it for evaluation (whole clips)."""
    return audio_pipeline(
        paths,
        np.zeros(len(paths), "int32"),
        training=False,
        duration=seconds,
        frontend=LogMelSpectrogram(),
        batch_size=16,
        cache_dir=cache_dir,
    )


def run_tf_data(paths, seconds, pipeline=None):
    """One full pass of the pipeline; returns (clips/s, CPU s per clip)."""
    pipeline = pipeline or make_pipeline(paths, seconds)
    with Timer() as timer:
        count = sum(int(x.shape[0]) for x, _ in pipeline.dataset)
    assert count == len(paths), (count, pipeline.summary())
    return count / timer.wall, timer.cpu / count


def librosa_features(path, seconds):
    """The reference's features of one file."""
    import librosa

    n = int(seconds * SAMPLE_RATE)
    y, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
    y = y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
    power = librosa.feature.melspectrogram(
        y=y, sr=SAMPLE_RATE, n_fft=2048, hop_length=512, n_mels=128
    )
    return ((librosa.power_to_db(power, ref=np.max) + 40.0) / 40.0).T


def run_librosa(paths, seconds):
    """The reference's loop; returns (clips/s, CPU s per clip)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1), Timer() as timer:
        for path in paths:
            assert librosa_features(path, seconds).shape[1] == 128
    return len(paths) / timer.wall, timer.cpu / len(paths)


def profile_stages(paths, seconds):
    """CPU ms per clip of decode, resample and mel, one clip at a time, for both sides."""
    import librosa
    from threadpoolctl import threadpool_limits

    n = int(seconds * SAMPLE_RATE)
    layer = LogMelSpectrogram()
    stages = {key: 0.0 for key in ("tf_decode", "tf_resample", "tf_mel")}
    stages.update({key: 0.0 for key in ("lr_decode", "lr_resample", "lr_mel")})
    layer.numpy_call(np.zeros(n, np.float32))  # builds the window and band blocks
    for path in paths:
        with Timer() as t:
            audio, rate, _ = decode.read_audio(path)
            mono = decode.to_mono_numpy(audio)
        stages["tf_decode"] += t.cpu
        with Timer() as t:
            wave = decode.fix_duration_numpy(decode.resample_numpy(mono, rate, SAMPLE_RATE), n)
        stages["tf_resample"] += t.cpu
        with Timer() as t:
            layer.numpy_call(wave)
        stages["tf_mel"] += t.cpu
    with threadpool_limits(1):
        for path in paths:
            with Timer() as t:
                y, rate = librosa.load(path, sr=None, mono=True)
            stages["lr_decode"] += t.cpu
            with Timer() as t:
                y = librosa.resample(y, orig_sr=rate, target_sr=SAMPLE_RATE, res_type="soxr_hq")
                y = y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
            stages["lr_resample"] += t.cpu
            with Timer() as t:
                power = librosa.feature.melspectrogram(
                    y=y, sr=SAMPLE_RATE, n_fft=2048, hop_length=512, n_mels=128
                )
                (librosa.power_to_db(power, ref=np.max) + 40.0) / 40.0
            stages["lr_mel"] += t.cpu
    return {key: 1000.0 * value / len(paths) for key, value in stages.items()}


def time_cache(paths, seconds, directory):
    """Second-epoch clips/s with the features cached on disk, and recomputed."""
    cached = make_pipeline(paths, seconds, cache_dir=os.path.join(directory, "cache"))
    run_tf_data(paths, seconds, cached)  # first epoch writes the cache
    return run_tf_data(paths, seconds, cached), run_tf_data(paths, seconds)


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    rows, profiles, caches = [], {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FLAGS.formats:
            directory = os.path.join(tmp, fmt)
            os.makedirs(directory)
            print(f"{fmt}: writing {FLAGS.num_clips} clips...", flush=True)
            paths = write_clips(directory, fmt, FLAGS.num_clips, FLAGS.seconds, FLAGS.file_rate)
            run_tf_data(paths[:4], FLAGS.seconds)  # trace once
            run_librosa(paths[:2], FLAGS.seconds)  # numba compiles on first use
            print(f"{fmt}: per-stage profile...", flush=True)
            profiles[fmt] = profile_stages(paths[: FLAGS.profile_clips], FLAGS.seconds)
            tf_runs, librosa_runs = [], []
            for r in range(FLAGS.repeats):
                tf_runs.append(run_tf_data(paths, FLAGS.seconds))
                librosa_runs.append(run_librosa(paths, FLAGS.seconds))
                print(
                    f"{fmt} pass {r + 1}/{FLAGS.repeats}: tf.data {tf_runs[-1][0]:.2f} clips/s "
                    f"({1000 * tf_runs[-1][1]:.1f} CPU ms/clip), librosa {librosa_runs[-1][0]:.2f} "
                    f"clips/s ({1000 * librosa_runs[-1][1]:.1f} CPU ms/clip)",
                    flush=True,
                )
            print(f"{fmt}: second epoch with and without cache_dir...", flush=True)
            caches[fmt] = time_cache(paths, FLAGS.seconds, directory)
            best_tf = max(tf_runs)
            best_librosa = max(librosa_runs)
            rows.append((fmt, best_tf, best_librosa))
    lines = [
        "# Audio pipeline throughput: tf.data vs the reference's librosa loop",
        "",
        f"`python -m benchmarks.audio_pipeline --num_clips={FLAGS.num_clips} "
        f"--seconds={FLAGS.seconds:g} --repeats={FLAGS.repeats}` on "
        f"{platform.node() or 'this machine'} ({os.cpu_count()} CPUs, TensorFlow {tf.__version__}); "
        f"{FLAGS.num_clips} synthetic {FLAGS.seconds:g} s clips at {FLAGS.file_rate} Hz per format, "
        "decoded to 16 kHz mono log-mel (128 Slaney bands, FFT 2048, hop 512). Best of "
        f"{FLAGS.repeats} alternating passes per side, ratios from this one run. tf.data uses "
        "every core; the librosa loop one (its BLAS limited to one thread). CPU ms/clip is process "
        "CPU time (all threads) per clip. Goals: ≥ 3× the loop's clips/s on WAV, ≥ 2× on MP3, "
        "and fewer CPU-seconds per clip.",
        "",
        "| format | tf.data clips/s | librosa clips/s | ratio | tf.data CPU ms/clip | "
        "librosa CPU ms/clip | CPU ratio | goal |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for fmt, (tf_rate, tf_cpu), (lr_rate, lr_cpu) in rows:
        ratio = tf_rate / lr_rate
        goal = GOALS.get(fmt, 3.0)
        met = "met" if ratio >= goal and tf_cpu < lr_cpu else f"missed (≥ {goal:g}×)"
        lines.append(
            f"| {fmt} | {tf_rate:.2f} | {lr_rate:.2f} | {ratio:.2f}× | {1000 * tf_cpu:.1f} | "
            f"{1000 * lr_cpu:.1f} | {lr_cpu / tf_cpu:.2f}× | {met} |"
        )
    lines += [
        "",
        f"Per-stage profile (CPU ms per clip, {FLAGS.profile_clips} clips one at a time on one "
        "thread; resample includes the crop; librosa's decode is `librosa.load(sr=None)`):",
        "",
        "| format | side | decode | resample | mel | total |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for fmt, p in profiles.items():
        for side, prefix in (("tf.data", "tf"), ("librosa", "lr")):
            values = [p[f"{prefix}_{stage}"] for stage in ("decode", "resample", "mel")]
            cells = " | ".join(f"{v:.1f}" for v in values)
            lines.append(f"| {fmt} | {side} | {cells} | {sum(values):.1f} |")
    lines += [
        "",
        "Second epoch of the tf.data pipeline: features read back from `cache_dir` against "
        "recomputed (clips/s, CPU ms/clip):",
        "",
        "| format | cached clips/s | recomputed clips/s | speed-up | cached CPU ms/clip |",
        "|---|---:|---:|---:|---:|",
    ]
    for fmt, ((c_rate, c_cpu), (r_rate, _)) in caches.items():
        lines.append(
            f"| {fmt} | {c_rate:.1f} | {r_rate:.1f} | {c_rate / r_rate:.1f}× | {1000 * c_cpu:.2f} |"
        )
    write_markdown(lines, FLAGS.output)


if __name__ == "__main__":
    app.run(main)
