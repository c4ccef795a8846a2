"""Clips per second of the tf.data audio pipeline against the reference's
librosa loop, on the same files, in one run.

Files: synthetic music clips (``keras_aux.audio.synthetic_music``) of
``--seconds`` seconds at 44.1 kHz, written once as MP3 (like FMA) and as
16-bit WAV. Both sides do what the reference does: load at 16 kHz mono,
crop / zero-pad to the clip duration, 128-band Slaney mel power spectrogram
(FFT 2048, hop 512), ``power_to_db(ref=max)``, ``(dB + 40) / 40``.

- tf.data: ``keras_aux.audio.pipeline.audio_pipeline`` (parallel decode with
  AUTOTUNE, FFT resampling and ``LogMelSpectrogram`` as TF ops), batches of 16.
- librosa: a Python loop of ``librosa.load(path, sr=16000)`` (soxr
  resampling) + ``librosa.feature.melspectrogram`` + ``power_to_db``.

Each side runs ``--repeats`` times, alternating; the table reports the best
pass of each (the least disturbed by other load on this shared machine).

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
flags.DEFINE_string("output", "benchmarks/results/audio_pipeline.md", "Markdown table path.")

SAMPLE_RATE = 16000


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


def run_tf_data(paths, seconds):
    """One full pass of the pipeline; returns clips/s."""
    pipeline = audio_pipeline(
        paths,
        np.zeros(len(paths), "int32"),
        training=False,
        duration=seconds,
        frontend=LogMelSpectrogram(),
        batch_size=16,
    )
    start = time.perf_counter()
    count = sum(int(x.shape[0]) for x, _ in pipeline.dataset)
    return count / (time.perf_counter() - start)


def run_librosa(paths, seconds):
    """The reference's loop; returns clips/s."""
    import librosa

    n = int(seconds * SAMPLE_RATE)
    start = time.perf_counter()
    for path in paths:
        y, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True)
        y = y[:n] if len(y) >= n else np.pad(y, (0, n - len(y)))
        power = librosa.feature.melspectrogram(
            y=y, sr=SAMPLE_RATE, n_fft=2048, hop_length=512, n_mels=128
        )
        features = ((librosa.power_to_db(power, ref=np.max) + 40.0) / 40.0).T
        assert features.shape[1] == 128
    return len(paths) / (time.perf_counter() - start)


def main(argv):
    del argv
    tf.get_logger().setLevel("ERROR")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in FLAGS.formats:
            directory = os.path.join(tmp, fmt)
            os.makedirs(directory)
            paths = write_clips(directory, fmt, FLAGS.num_clips, FLAGS.seconds, FLAGS.file_rate)
            run_tf_data(paths[:4], FLAGS.seconds)  # trace once
            run_librosa(paths[:2], FLAGS.seconds)  # numba compiles on first use
            tf_rates, librosa_rates = [], []
            for r in range(FLAGS.repeats):
                tf_rates.append(run_tf_data(paths, FLAGS.seconds))
                librosa_rates.append(run_librosa(paths, FLAGS.seconds))
                print(
                    f"{fmt} pass {r + 1}: tf.data {tf_rates[-1]:.2f} clips/s, librosa {librosa_rates[-1]:.2f} clips/s"
                )
            rows.append((fmt, max(tf_rates), max(librosa_rates)))
    lines = [
        "# Audio pipeline throughput: tf.data vs the reference's librosa loop",
        "",
        f"`python -m benchmarks.audio_pipeline --num_clips={FLAGS.num_clips} --seconds={FLAGS.seconds:g}` on "
        f"{platform.node() or 'this machine'} ({os.cpu_count()} CPUs, TensorFlow {tf.__version__}); "
        f"{FLAGS.num_clips} synthetic {FLAGS.seconds:g} s clips at {FLAGS.file_rate} Hz per format, "
        f"decoded to 16 kHz mono log-mel (128 Slaney bands, FFT 2048, hop 512). Best of "
        f"{FLAGS.repeats} alternating passes per side. Goal: ≥ 3×.",
        "",
        "| format | tf.data clips/s | librosa clips/s | ratio |",
        "|---|---:|---:|---:|",
    ]
    for fmt, tf_rate, librosa_rate in rows:
        lines.append(
            f"| {fmt} | {tf_rate:.2f} | {librosa_rate:.2f} | {tf_rate / librosa_rate:.2f}× |"
        )
    write_markdown(lines, FLAGS.output)


if __name__ == "__main__":
    app.run(main)
