"""Train the LSTM genre classifier with a reconstruction auxiliary loss (seed 001).

files → tf.data (decode, 16 kHz mono, fixed duration, log-mel, 512-frame
training crops) → `genre_lstm` (an AuxiliaryModel: λ is the reconstruction
loss weight, censoring modes apply) → Adam 1e-4 × 0.97 per epoch → best
validation accuracy checkpoint → test report → SavedModel that takes raw mono
waveforms at the training sample rate (any length) and returns genre
probabilities.

Datasets (``--dataset``): ``fma_small`` (``--data_dir`` holding ``fma_small/``
and ``fma_metadata/``), ``gtzan``, ``fsdd`` (digits, official test split),
``folder`` (one sub-folder per class), and ``demo``: a small synthetic music
set written to ``--data_dir`` (default ``data/synthetic_music``), trained with
λ = 0 and with ``--reconstruction_weight`` so ``make demo`` shows the whole
path offline in a few minutes.

Usage::

    python -m trainers.train_genre --dataset=fma_small --data_dir=/data/fma \\
        --reconstruction_weight=10 --epochs=256 --logdir=logs/genre

Reference: seed 001 ("reconstruction auxiliary loss"); docs/reconstruction.md.
"""

import json
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from keras_aux import censoring
from keras_aux.architectures import compile_genre_lstm, genre_lstm, waveform_classifier
from keras_aux.data import datasets, synthetic_music
from keras_aux.data.audio import load_waveform
from keras_aux.data.pipeline import AudioPipelineReport, audio_pipeline
from keras_aux.layers import LogMelSpectrogram

FLAGS = flags.FLAGS
flags.DEFINE_enum("dataset", "demo", ["fma_small", "gtzan", "fsdd", "folder", "demo"], "Dataset.")
flags.DEFINE_string(
    "data_dir",
    None,
    "Dataset location (fma_small: the folder holding fma_small/ and fma_metadata/).",
)
flags.DEFINE_float("reconstruction_weight", 10.0, "λ: weight of the reconstruction loss.")
flags.DEFINE_enum(
    "censoring", "multitask", list(censoring.MODES), "How the reconstruction gradient is censored."
)
flags.DEFINE_float("ema_alpha", 1.0, "Moving-average constant of the primary gradient (1: none).")
flags.DEFINE_integer("epochs", None, "Epochs (default: 256, or 12 for demo).")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_float("learning_rate", 1e-4, "Adam learning rate (× lr_decay after every epoch).")
flags.DEFINE_float("lr_decay", 0.97, "Learning-rate factor per epoch.")
flags.DEFINE_float("duration", None, "Seconds per clip (default: 30, or 4 for demo, 1 for fsdd).")
flags.DEFINE_integer(
    "crop_frames", None, "Training crop in frames (default: 512, or 64 for demo, 16 for fsdd)."
)
flags.DEFINE_integer("sample_rate", 16000, "Sample rate the audio is resampled to.")
flags.DEFINE_integer("lstm_units", 128, "Units per direction of each BiLSTM.")
flags.DEFINE_string(
    "logdir", "logs/genre", "TensorBoard logs and checkpoints (one sub-folder per run)."
)
flags.DEFINE_string(
    "export_dir", None, "SavedModel destination (default: saved_models/genre_<dataset>)."
)
flags.DEFINE_string("cache_dir", None, "Disk cache of the mel features (one sub-folder per split).")
flags.DEFINE_bool("strict", False, "Raise on the first bad audio file instead of skipping it.")
flags.DEFINE_integer("seed", 1337, "Random seed (splits, shuffling, weights).")

DEMO_DIR = os.path.join("data", "synthetic_music")
DEFAULTS = {  # dataset: (epochs, duration s, crop frames)
    "demo": (12, 4.0, 64),
    "fsdd": (60, 1.0, 16),
}


def load_splits(dataset, data_dir, seed):
    """``{"train", "validation", "test"}`` → `AudioFileList` for one dataset."""
    if dataset == "demo":
        data_dir = data_dir or DEMO_DIR
        synthetic_music.write_synthetic_music(data_dir, seed=0)
        files = datasets.class_folders(data_dir)
        return datasets.stratified_split(files, {"validation": 0.15, "test": 0.25}, seed)
    if data_dir is None:
        raise app.UsageError(f"--data_dir is required for --dataset={dataset}.")
    if dataset == "fma_small":
        return datasets.fma_small(
            os.path.join(data_dir, "fma_metadata"), os.path.join(data_dir, "fma_small"), seed=seed
        )
    if dataset == "gtzan":
        return datasets.gtzan(data_dir, seed=seed)
    if dataset == "fsdd":
        return datasets.fsdd(data_dir, validation_fraction=0.1, seed=seed)
    files = datasets.class_folders(data_dir)
    return datasets.stratified_split(files, {"validation": 0.1, "test": 0.2}, seed)


def test_report(model, pipeline, class_names):
    """Accuracy and per-class recall on a pipeline; returns (accuracy, text)."""
    labels, predictions = [], []
    for features, y in pipeline.dataset:
        predictions.append(np.argmax(model.predict_on_batch(features)["genre"], axis=-1))
        labels.append(y.numpy())
    labels, predictions = np.concatenate(labels), np.concatenate(predictions)
    accuracy = float(np.mean(labels == predictions))
    lines = [
        f"test accuracy {accuracy:.4f} on {len(labels)} clips (chance {1 / len(class_names):.4f})"
    ]
    for k, name in enumerate(class_names):
        mask = labels == k
        if mask.any():
            lines.append(
                f"  {name:>24s}: recall {np.mean(predictions[mask] == k):.3f} ({mask.sum()} clips)"
            )
    return accuracy, "\n".join(lines)


def make_pipelines(splits, args, frontend):
    """``{split: AudioPipeline}``: shuffled random crops for "train", whole clips otherwise."""
    pipelines = {}
    for split, files in splits.items():
        cache = os.path.join(args["cache_dir"], split) if args["cache_dir"] else None
        pipelines[split] = audio_pipeline(
            files.paths,
            files.labels,
            training=split == "train",
            sample_rate=args["sample_rate"],
            duration=args["duration"],
            frontend=frontend,
            crop_frames=args["crop_frames"],
            batch_size=args["batch_size"],
            cache_dir=cache,
            strict=args["strict"],
            seed=args["seed"],
        )
    return pipelines


def train_one(name, lam, splits, args):
    """One training run; returns (model, test accuracy, report text, seconds)."""
    keras.utils.set_random_seed(args["seed"])
    frontend = LogMelSpectrogram(sampling_rate=args["sample_rate"])
    class_names = splits["train"].class_names

    pipelines = make_pipelines(splits, args, frontend)
    train, validation, test = pipelines["train"], pipelines["validation"], pipelines["test"]
    model = genre_lstm(len(class_names), lstm_units=args["lstm_units"])
    compile_genre_lstm(
        model,
        reconstruction_weight=lam,
        learning_rate=args["learning_rate"],
        censoring=args["censoring"],
        ema_alpha=args["ema_alpha"],
    )
    run_dir = os.path.join(args["logdir"], name)
    checkpoint = os.path.join(run_dir, "best.weights.h5")
    lr0, decay = args["learning_rate"], args["lr_decay"]
    start = time.perf_counter()
    model.fit(
        train.dataset,
        validation_data=validation.dataset,
        epochs=args["epochs"],
        verbose=2,
        callbacks=[
            keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr0 * decay**epoch),
            keras.callbacks.ModelCheckpoint(
                checkpoint,
                monitor="val_genre_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            ),
            keras.callbacks.TensorBoard(run_dir),
            AudioPipelineReport({"train": train}, print_fn=logging.info),
        ],
    )
    seconds = time.perf_counter() - start
    model.load_weights(checkpoint)
    accuracy, report = test_report(model, test, class_names)
    print(f"[{name}] data: train {train.summary()} | test {test.summary()}")
    return model, frontend, accuracy, report, seconds


def args_from_flags():
    """The run settings from the flags, with the dataset's defaults filled in."""
    epochs, duration, crop = DEFAULTS.get(FLAGS.dataset, (256, 30.0, 512))
    return {
        "seed": FLAGS.seed,
        "sample_rate": FLAGS.sample_rate,
        "batch_size": FLAGS.batch_size,
        "learning_rate": FLAGS.learning_rate,
        "lr_decay": FLAGS.lr_decay,
        "censoring": FLAGS.censoring,
        "ema_alpha": FLAGS.ema_alpha,
        "logdir": FLAGS.logdir,
        "cache_dir": FLAGS.cache_dir,
        "strict": FLAGS.strict,
        "lstm_units": FLAGS.lstm_units,
        "epochs": FLAGS.epochs or epochs,
        "duration": FLAGS.duration or duration,
        "crop_frames": FLAGS.crop_frames or crop,
    }


def main(argv):
    del argv
    args = args_from_flags()
    splits = load_splits(FLAGS.dataset, FLAGS.data_dir, FLAGS.seed)
    class_names = splits["train"].class_names
    print(
        f"{FLAGS.dataset}: "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        + f" clips; classes {class_names}"
    )
    lam = FLAGS.reconstruction_weight
    runs = (
        [("lambda0", 0.0), (f"lambda{lam:g}", lam)]
        if FLAGS.dataset == "demo"
        else [(f"lambda{lam:g}", lam)]
    )
    results = []
    for name, weight in runs:
        model, frontend, accuracy, report, seconds = train_one(name, weight, splits, args)
        print(
            f"\n== {name} (λ={weight:g}, censoring={FLAGS.censoring}) trained in {seconds:.0f} s\n{report}"
        )
        results.append(
            {"run": name, "lambda": weight, "censoring": FLAGS.censoring, "test_accuracy": accuracy}
        )

    export_dir = FLAGS.export_dir or os.path.join("saved_models", f"genre_{FLAGS.dataset}")
    serving = waveform_classifier(model, frontend)
    serving.export(export_dir, verbose=False)
    with open(os.path.join(export_dir, "labels.json"), "w", encoding="utf-8") as f:
        json.dump({"class_names": class_names, "sample_rate": FLAGS.sample_rate}, f)

    # Reload and classify one test clip from its raw waveform.
    loaded = tf.saved_model.load(export_dir)
    clip = splits["test"].paths[0]
    wave = load_waveform(clip, FLAGS.sample_rate)[None]
    probabilities = loaded.serve(tf.constant(wave)).numpy()[0]
    expected = serving.predict(wave, verbose=0)[0]
    if np.max(np.abs(probabilities - expected)) > 1e-4:
        raise SystemExit("The exported SavedModel disagrees with the Keras model.")
    print(
        f"\nSavedModel at {export_dir} (input: raw mono waveform at {FLAGS.sample_rate} Hz, any length)"
    )
    print(
        f"{os.path.basename(clip)} → {class_names[int(np.argmax(probabilities))]} "
        f"(p={probabilities.max():.2f}; true {class_names[splits['test'].labels[0]]})"
    )
    print("\n| run | λ | censoring | test accuracy |\n|---|---|---|---|")
    for r in results:
        print(f"| {r['run']} | {r['lambda']:g} | {r['censoring']} | {r['test_accuracy']:.4f} |")
    print(f"\nTensorBoard: tensorboard --logdir {FLAGS.logdir}")


if __name__ == "__main__":
    app.run(main)
