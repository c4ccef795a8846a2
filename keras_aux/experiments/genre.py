"""The genre experiment: an LSTM genre classifier with a reconstruction auxiliary loss (seed 001).

files → tf.data (decode, mono at ``sample_rate``, fixed duration, log-mel, ``crop_frames``-frame
training crops) → `keras_aux.architectures.genre_lstm` (an `AuxiliaryModel`: λ is the
reconstruction loss weight, the censoring modes apply) → Adam ``learning_rate`` × ``lr_decay``
per epoch → best validation accuracy checkpoint → test report → SavedModel of the run validation
prefers, which takes raw mono waveforms at any sample rate (``serve(waveform, sample_rate)``,
resampled in the graph) and returns genre probabilities.

Datasets (`GenreConfig.dataset`): ``fma_small`` (``data_dir`` holding ``fma_small/`` and
``fma_metadata/``), ``gtzan``, ``fsdd`` (digits, official test split), ``folder`` (one sub-folder
per class), and ``demo``: a small synthetic music set written to ``data_dir`` (default
``data/synthetic_music``), trained with λ = 0 and with ``reconstruction_weight``, so that the
whole path runs offline in about a minute.

``features="waveform"`` (``--features=waveform``) moves the log-mel from the pipeline into the
model: the pipeline yields waveforms (training crops of the samples that make ``crop_frames``
frames) and `keras_aux.architectures.genre_lstm.waveform_genre_lstm` computes the features as
its first layer, on the accelerator (docs/reconstruction.md, "Training on waveforms").

Used by ``trainers/train_genre.py`` (`run`, `export`), ``trainers/sweep_lambda.py`` (`sweep`) and
``trainers/tune.py`` (`load_splits`, `make_pipelines`).

Reference: seed 001 ("reconstruction auxiliary loss": λ swept over
{0, 0.01, 0.1, 1, 2, 5, 10, 100}); docs/reconstruction.md.
"""

import dataclasses
import json
import math
import os
import time

import keras
import numpy as np
import tensorflow as tf

from keras_aux.architectures import compile_genre_lstm, export_waveform_classifier, genre_lstm
from keras_aux.architectures.genre_lstm import FRONTEND, waveform_genre_lstm
from keras_aux.audio import datasets, synthetic_music
from keras_aux.audio.decode import load_waveform
from keras_aux.audio.pipeline import audio_pipeline, crop_samples_for
from keras_aux.censoring import MODES as CENSORING_MODES
from keras_aux.experiments import reporting
from keras_aux.experiments.options import option
from keras_aux.layers import LogMelSpectrogram

DATASETS = ("fma_small", "gtzan", "fsdd", "folder", "demo")
# Where the log-mel features are computed: in the tf.data pipeline (NumPy, on the CPU), or by the
# model's first layer from the waveforms the pipeline yields (on the accelerator).
FEATURES = ("log_mel", "waveform")
DEMO_DIR = os.path.join("data", "synthetic_music")
DEFAULTS = {  # dataset: (epochs, duration s, crop frames, learning rate)
    # The demo's 8 epochs are 16 Adam steps: the reference's 1e-4 would barely move the model.
    "demo": (8, 4.0, 64, 1e-3),
    "fsdd": (60, 1.0, 16, 1e-4),
}
OTHER_DEFAULTS = (256, 30.0, 512, 1e-4)  # every other dataset: the reference's settings
SWEEP_LAMBDAS = (0.0, 0.01, 0.1, 1.0, 2.0, 5.0, 10.0, 100.0)  # seed 001's λ list


@dataclasses.dataclass
class GenreConfig:
    """Data, model and training settings of the genre experiment (the flags of
    ``trainers/train_genre.py``, shared by ``trainers/sweep_lambda.py`` and
    ``trainers/tune.py``).

    Each field's help line (`keras_aux.experiments.options.option`) documents it. ``epochs``,
    ``duration``, ``crop_frames`` and ``learning_rate`` default to None: the dataset's own values
    (`with_dataset_defaults`: 8 epochs, 4 s, 64 frames, 1e-3 for ``demo``; 60, 1 s, 16, 1e-4 for
    ``fsdd``; the reference's 256, 30 s, 512, 1e-4 otherwise).

    Reference: seed 001's genre classifier and its training; docs/reconstruction.md.
    """

    dataset: str = option("demo", "Dataset.", choices=DATASETS)
    data_dir: str | None = option(
        None, "Dataset location (fma_small: the folder holding fma_small/ and fma_metadata/)."
    )
    reconstruction_weight: float = option(10.0, "λ: weight of the reconstruction loss.")
    censoring: str = option(
        "multitask", "How the reconstruction gradient is censored.", choices=CENSORING_MODES
    )
    ema_alpha: float = option(1.0, "Moving-average constant of the primary gradient (1: none).")
    epochs: int | None = option(None, "Epochs (default: 256, or 8 for demo, 60 for fsdd).")
    batch_size: int = option(32, "Batch size.")
    learning_rate: float | None = option(
        None, "Adam learning rate, × lr_decay after every epoch (default: 1e-4, or 1e-3 for demo)."
    )
    lr_decay: float = option(0.97, "Learning-rate factor per epoch.")
    duration: float | None = option(
        None, "Seconds per clip (default: 30, or 4 for demo, 1 for fsdd)."
    )
    crop_frames: int | None = option(
        None, "Training crop in frames (default: 512, or 64 for demo, 16 for fsdd)."
    )
    sample_rate: int = option(16000, "Sample rate the audio is resampled to.")
    features: str = option(
        "log_mel",
        "Where the log-mel is computed: log_mel: in the tf.data pipeline (NumPy, CPU); waveform: "
        "the pipeline yields waveforms and the model's first layer computes it (accelerator).",
        choices=FEATURES,
    )
    lstm_units: int = option(128, "Units per direction of each BiLSTM.")
    logdir: str = option("logs/genre", "TensorBoard logs and checkpoints (one sub-folder per run).")
    export_dir: str | None = option(
        None, "SavedModel destination (default: saved_models/genre_<dataset>)."
    )
    cache_dir: str | None = option(
        None, "Disk cache of the mel features (one sub-folder per split)."
    )
    strict: bool = option(False, "Raise on the first bad audio file instead of skipping it.")
    seed: int = option(1337, "Random seed (splits, shuffling, weights).")

    def with_dataset_defaults(self):
        """A copy whose unset ``epochs``, ``duration``, ``crop_frames`` and ``learning_rate``
        hold the dataset's defaults (`DEFAULTS`, else `OTHER_DEFAULTS`)."""
        epochs, duration, crop, learning_rate = DEFAULTS.get(self.dataset, OTHER_DEFAULTS)
        return dataclasses.replace(
            self,
            epochs=self.epochs or epochs,
            duration=self.duration or duration,
            crop_frames=self.crop_frames or crop,
            learning_rate=self.learning_rate or learning_rate,
        )

    @property
    def needs_data_dir(self):
        """True when the dataset must be read from ``data_dir`` (all but ``demo``)."""
        return self.dataset != "demo"


def load_splits(dataset, data_dir, seed):
    """``{"train", "validation", "test"}`` → `AudioFileList` for one dataset.

    ``demo`` writes the synthetic music set first (to ``data_dir``, default `DEMO_DIR`); the
    other datasets are read from ``data_dir``, split as docs/reconstruction.md describes.

    Raises:
        ValueError: ``data_dir`` is None for a dataset other than ``demo``.

    Reference: seed 001's datasets; docs/reconstruction.md.
    """
    if dataset == "demo":
        data_dir = data_dir or DEMO_DIR
        synthetic_music.write_synthetic_music(data_dir, seed=0)
        files = datasets.class_folders(data_dir)
        return datasets.stratified_split(files, {"validation": 0.15, "test": 0.25}, seed)
    if data_dir is None:
        raise ValueError(f"The {dataset} dataset needs its data_dir.")
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
    """Accuracy and per-class recall of ``model``'s genre head on a pipeline.

    Returns:
        ``(accuracy, text)``: the text's first line is the accuracy against chance, then one
        line of recall per class present.

    Reference: seed 001's evaluation (test accuracy); docs/reconstruction.md.
    """
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


def make_pipelines(splits, config, frontend):
    """``{split: AudioPipeline}``: shuffled random crops for "train", whole clips otherwise.

    Args:
        splits: ``{split: AudioFileList}`` (`load_splits`).
        config: a `GenreConfig` (the dataset's defaults are filled in here). With
            ``features="waveform"`` the pipelines yield waveforms, and the training crops are
            the ``crop_samples_for(frontend, crop_frames)`` samples ``frontend`` turns into
            ``crop_frames`` frames.
        frontend: the log-mel layer the features are computed with (in the pipelines, or by the
            model with ``features="waveform"``).

    Raises:
        ValueError: ``config.features`` is not one of `FEATURES`.

    Reference: seed 001's pre-processing and training crops; docs/reconstruction.md.
    """
    config = config.with_dataset_defaults()
    if config.features not in FEATURES:
        raise ValueError(f"`features` must be one of {FEATURES}; got {config.features!r}.")
    on_model = config.features == "waveform"
    pipelines = {}
    for split, files in splits.items():
        cache = os.path.join(config.cache_dir, split) if config.cache_dir else None
        pipelines[split] = audio_pipeline(
            files.paths,
            files.labels,
            training=split == "train",
            sample_rate=config.sample_rate,
            duration=config.duration,
            frontend=None if on_model else frontend,
            crop_frames=config.crop_frames,
            crop_samples=crop_samples_for(frontend, config.crop_frames) if on_model else None,
            batch_size=config.batch_size,
            cache_dir=cache,
            strict=config.strict,
            seed=config.seed,
        )
    return pipelines


class _SkippedClipsReport(keras.callbacks.Callback):
    """Prints the training pipeline's bad-file summary after the first epoch, and only when a
    file was skipped (at the header scan or after decoding) or kept cut short; the run's last
    line repeats it."""

    def __init__(self, pipeline, print_fn):
        super().__init__()
        self.pipeline = pipeline
        self.print_fn = print_fn

    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0 and (self.pipeline.num_skipped or self.pipeline.num_cut_short):
            self.print_fn(f"[train] {self.pipeline.summary()}")


def build_model(config, num_classes, frontend):
    """The genre network of ``config``: a `genre_lstm` on the pipelines' log-mel features, or
    with ``features="waveform"`` a `waveform_genre_lstm` whose first layer is ``frontend``.

    Args:
        config: a `GenreConfig`.
        num_classes: number of genres.
        frontend: the log-mel layer of `make_pipelines`.

    Returns:
        ``(model, frontend of the data)``: the uncompiled model, and the front end that turns
        waveforms into its inputs (None when it is the model's own first layer), as
        `keras_aux.architectures.export_waveform_classifier` takes it.

    Reference: seed 001's genre classifier; docs/reconstruction.md#network.
    """
    if config.features == "waveform":
        return waveform_genre_lstm(num_classes, frontend, lstm_units=config.lstm_units), None
    return genre_lstm(num_classes, lstm_units=config.lstm_units), frontend


def fit_datasets(train, validation, batch_size):
    """The datasets `train_one` gives ``fit``, with the number of batches Keras needs to know.

    The pipelines drop undecodable and silent clips with ``filter``, so tf.data cannot know how
    many batches they hold, and Keras would warn "Your input ran out of data" at the end of the
    first epoch. Here the training batches repeat and an epoch is ``ceil(files / batch_size)``
    steps (one pass over the files that passed the header scan); the validation batches are
    counted once (a pass that also fills a ``cache_dir`` cache) and asserted.

    Args:
        train: the training `AudioPipeline` (already shuffled every pass).
        validation: the validation `AudioPipeline`.
        batch_size: the pipelines' batch size.

    Returns:
        ``(train dataset, steps per epoch, validation dataset)``.

    Reference: seed 001's training (one pass over the training set per epoch, validation every
    epoch); docs/reconstruction.md.
    """
    steps = max(1, math.ceil(train.num_files / batch_size))
    batches = int(validation.dataset.reduce(tf.constant(0, tf.int64), lambda n, _: n + 1))
    if batches == 0:
        raise ValueError(f"No usable validation clip: {validation.summary()}.")
    validation_ds = validation.dataset.apply(tf.data.experimental.assert_cardinality(batches))
    return train.dataset.repeat(), steps, validation_ds


@dataclasses.dataclass
class TrainedRun:
    """What `train_one` returns.

    Attributes:
        model: the trained `genre_lstm` (or `waveform_genre_lstm`), holding the weights of the
            best validation accuracy.
        frontend: its log-mel layer, None when the model holds it (``features="waveform"``).
        validation_accuracy: the best validation accuracy (that of the weights held).
        validation_loss: the validation genre loss of the same epoch (breaks ties in `run`).
        test_accuracy: the accuracy of those weights on the test split.
        report: the test report (`test_report`).
        seconds: the training time.

    Reference: seed 001's training and model selection; docs/reconstruction.md.
    """

    model: keras.Model
    frontend: keras.layers.Layer | None
    validation_accuracy: float
    validation_loss: float
    test_accuracy: float
    report: str
    seconds: float


def train_one(name, lam, splits, config, log=print, pipeline_log=print):
    """One training run with reconstruction weight ``lam``, logged under ``config.logdir/name``.

    Args:
        name: the run's name (its log sub-folder).
        lam: λ, the reconstruction loss weight (``config.reconstruction_weight`` is not used).
        splits: ``{split: AudioFileList}`` (`load_splits`).
        config: a `GenreConfig`.
        log: prints the data summary line.
        pipeline_log: prints the training pipeline's bad-file report after the first epoch when
            a file was skipped.

    Returns:
        A `TrainedRun`: the model holds the weights of the best validation accuracy.

    Reference: seed 001's training (Adam, learning-rate decay per epoch, best validation
    checkpoint); docs/reconstruction.md.
    """
    config = config.with_dataset_defaults()
    keras.utils.set_random_seed(config.seed)
    frontend = LogMelSpectrogram(sampling_rate=config.sample_rate, name=FRONTEND)
    class_names = splits["train"].class_names

    pipelines = make_pipelines(splits, config, frontend)
    train, validation, test = pipelines["train"], pipelines["validation"], pipelines["test"]
    train_ds, steps, validation_ds = fit_datasets(train, validation, config.batch_size)
    model, frontend = build_model(config, len(class_names), frontend)
    compile_genre_lstm(
        model,
        reconstruction_weight=lam,
        learning_rate=config.learning_rate,
        censoring=config.censoring,
        ema_alpha=config.ema_alpha,
    )
    run_dir = os.path.join(config.logdir, name)
    checkpoint = os.path.join(run_dir, "best.weights.h5")
    lr0, decay = config.learning_rate, config.lr_decay
    start = time.perf_counter()
    history = model.fit(
        train_ds,
        steps_per_epoch=steps,
        validation_data=validation_ds,
        epochs=config.epochs,
        shuffle=False,  # the pipeline shuffles its files every pass
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
            _SkippedClipsReport(train, pipeline_log),
        ],
    ).history
    seconds = time.perf_counter() - start
    model.load_weights(checkpoint)
    # The checkpointed epoch: the first with the best validation accuracy.
    best = int(np.argmax(history["val_genre_accuracy"]))
    accuracy, report = test_report(model, test, class_names)
    log(f"[{name}] data: train {train.summary()} | test {test.summary()}")
    return TrainedRun(
        model,
        frontend,
        float(history["val_genre_accuracy"][best]),
        float(history["val_genre_loss"][best]),
        accuracy,
        report,
        seconds,
    )


@dataclasses.dataclass
class GenreResult:
    """What `run` returns.

    Attributes:
        splits: ``{split: AudioFileList}``.
        class_names: the genres, in label order.
        results: one dict per run: ``run``, ``lambda``, ``censoring``, ``validation_accuracy``,
            ``validation_loss``, ``test_accuracy``.
        selected: the name of the run validation prefers (`select_run`).
        model: that run's trained `genre_lstm` (or `waveform_genre_lstm`).
        frontend: its log-mel layer, None when the model holds it (``features="waveform"``).

    Reference: seed 001 (reconstruction auxiliary loss, model selection on validation);
    docs/reconstruction.md.
    """

    splits: dict
    class_names: list
    results: list
    selected: str
    model: keras.Model
    frontend: keras.layers.Layer | None


def select_run(results):
    """The run validation prefers: the highest ``validation_accuracy``, ties broken by the lower
    ``validation_loss``, then by order (the first run). Test accuracy plays no part.

    Args:
        results: `GenreResult.results`.

    Returns:
        The index of the selected run in ``results``.

    Reference: seed 001 (model selection on the validation split); docs/reconstruction.md.
    """
    return min(
        range(len(results)),
        key=lambda i: (-results[i]["validation_accuracy"], results[i]["validation_loss"], i),
    )


def runs(config):
    """``[(name, λ)]`` of `run`: λ = 0 and ``reconstruction_weight`` for ``demo``, else the
    latter only.

    Reference: seed 001 (λ = 0 against λ > 0); docs/reconstruction.md.
    """
    lam = config.reconstruction_weight
    if config.dataset == "demo":
        return [("lambda0", 0.0), (f"lambda{lam:g}", lam)]
    return [(f"lambda{lam:g}", lam)]


def run(config, log=print, pipeline_log=print):
    """The genre experiment: loads the splits, trains every run of `runs` and selects the one
    validation prefers (`select_run`).

    Args:
        config: a `GenreConfig`.
        log: prints the dataset summary and each run's test report.
        pipeline_log: prints the training pipeline's bad-file report (`train_one`).

    Returns:
        A `GenreResult`.

    Reference: seed 001 (reconstruction auxiliary loss); docs/reconstruction.md.
    """
    splits = load_splits(config.dataset, config.data_dir, config.seed)
    class_names = splits["train"].class_names
    log(
        f"{config.dataset}: "
        + ", ".join(f"{k} {len(v)}" for k, v in splits.items())
        + f" clips; classes {class_names}"
    )
    results, trained = [], []
    for name, weight in runs(config):
        trained_run = train_one(name, weight, splits, config, log=log, pipeline_log=pipeline_log)
        log(
            f"\n== {name} (λ={weight:g}, censoring={config.censoring}) trained in "
            f"{trained_run.seconds:.0f} s; best validation accuracy "
            f"{trained_run.validation_accuracy:.4f}\n{trained_run.report}"
        )
        trained.append(trained_run)
        results.append(
            {
                "run": name,
                "lambda": weight,
                "censoring": config.censoring,
                "validation_accuracy": trained_run.validation_accuracy,
                "validation_loss": trained_run.validation_loss,
                "test_accuracy": trained_run.test_accuracy,
            }
        )
    best = select_run(results)
    return GenreResult(
        splits,
        class_names,
        results,
        results[best]["run"],
        trained[best].model,
        trained[best].frontend,
    )


def showcase_clips(split, count=5):
    """Indices of ``count`` clips of a split for a demonstration, taken in turn from each class
    (the first clip of every class, then the second...), so that every class shows.

    Args:
        split: an `AudioFileList`.
        count: how many clips (fewer if the split is smaller).

    Reference: the demonstration of seed 001's classifier; docs/reconstruction.md.
    """
    by_class = {}
    for i, label in enumerate(split.labels):
        by_class.setdefault(int(label), []).append(i)
    queues = [by_class[k] for k in sorted(by_class)]
    order = [q[j] for j in range(max(map(len, queues), default=0)) for q in queues if j < len(q)]
    return order[:count]


def export(result, config, num_examples=5):
    """Exports the raw-waveform classifier of the run validation prefers (``result.model``) as a
    SavedModel with ``labels.json`` beside it, reloads it and classifies a few test clips.

    The SavedModel's ``serve(waveform, sample_rate)`` is that of
    `keras_aux.architectures.export_waveform_classifier`: float32 ``(batch, samples)`` mono audio
    and its int32 rate in Hz (resampled to ``config.sample_rate`` in the graph) → genre
    probabilities; an empty waveform raises ``InvalidArgumentError``. ``labels.json`` holds
    ``class_names`` (in output order), ``sample_rate`` (the model's rate) and ``run`` (the
    exported run).

    Args:
        result: a `GenreResult` (`run`).
        config: its `GenreConfig`; ``export_dir`` defaults to ``saved_models/genre_<dataset>``.
        num_examples: test clips to classify (`showcase_clips`).

    Returns:
        ``(export_dir, examples)``: ``examples`` is a list of ``(clip path, true label, class
        probabilities)`` from the reloaded SavedModel.

    Raises:
        RuntimeError: the reloaded SavedModel disagrees with the Keras model (> 1e-4).

    Reference: seed 001's classifier, served on raw waveforms; docs/reconstruction.md#serving.
    """
    export_dir = config.export_dir or os.path.join("saved_models", f"genre_{config.dataset}")
    serving = export_waveform_classifier(result.model, result.frontend, export_dir)
    with open(os.path.join(export_dir, "labels.json"), "w", encoding="utf-8") as f:
        json.dump(
            {
                "class_names": result.class_names,
                "sample_rate": config.sample_rate,
                "run": result.selected,
            },
            f,
        )

    # Reload and classify a few test clips from their raw waveforms, as a user would.
    loaded = tf.saved_model.load(export_dir)
    test = result.splits["test"]
    examples = []
    for i in showcase_clips(test, num_examples):
        wave = load_waveform(test.paths[i], config.sample_rate)[None]
        probabilities = loaded.serve(tf.constant(wave), tf.constant(config.sample_rate, tf.int32))
        probabilities = probabilities.numpy()[0]
        expected = serving.predict_on_batch(wave)[0]
        if np.max(np.abs(probabilities - expected)) > 1e-4:
            raise RuntimeError("The exported SavedModel disagrees with the Keras model.")
        examples.append((test.paths[i], int(test.labels[i]), probabilities))
    return export_dir, examples


def results_table(results, selected=None):
    """The markdown table of `GenreResult.results` (run, λ, censoring, validation and test
    accuracy); the ``selected`` run (the exported one) is marked.

    Reference: seed 001 (test accuracy per λ); docs/reconstruction.md.
    """
    lines = [
        "| run | λ | censoring | validation accuracy | test accuracy |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        mark = " (exported)" if r["run"] == selected else ""
        lines.append(
            f"| {r['run']} | {r['lambda']:g} | {r['censoring']} | "
            f"{r['validation_accuracy']:.4f}{mark} | {r['test_accuracy']:.4f} |"
        )
    return "\n".join(lines)


@dataclasses.dataclass
class SweepConfig:
    """The λ sweep of the genre experiment (``trainers/sweep_lambda.py``).

    Attributes:
        lambdas: the reconstruction weights, each >= 0 (default: seed 001's list).
        output_dir: where ``sweep_lambda.md`` and ``sweep_lambda.png`` are written.
        genre: data, model and training of every run (its ``reconstruction_weight`` and
            ``export_dir`` are not used).

    Reference: seed 001 (λ swept over {0, 0.01, 0.1, 1, 2, 5, 10, 100}); docs/reconstruction.md.
    """

    lambdas: tuple = SWEEP_LAMBDAS
    output_dir: str = "logs/sweep_lambda"
    genre: GenreConfig = dataclasses.field(default_factory=GenreConfig)


def sweep(config, log=print, pipeline_log=print):
    """Trains the genre model once per λ on the same data, splits and seed.

    Returns:
        ``[(λ, test accuracy, seconds)]`` in the order of ``config.lambdas``.

    Raises:
        ValueError: a λ is negative.

    Reference: seed 001's λ sweep; docs/reconstruction.md.
    """
    if any(lam < 0 for lam in config.lambdas):
        raise ValueError(f"Every λ must be >= 0; got {list(config.lambdas)}.")
    genre = config.genre
    splits = load_splits(genre.dataset, genre.data_dir, genre.seed)
    rows = []
    for lam in config.lambdas:
        trained = train_one(
            f"lambda{lam:g}", lam, splits, genre, log=log, pipeline_log=pipeline_log
        )
        log(f"\n== λ={lam:g}: {trained.report.splitlines()[0]} ({trained.seconds:.0f} s)")
        rows.append((lam, trained.test_accuracy, trained.seconds))
    return rows


def write_sweep(config, rows):
    """Writes ``sweep_lambda.md`` (the table) and ``sweep_lambda.png`` (test accuracy against λ)
    to ``config.output_dir``; returns the table.

    Reference: seed 001's λ sweep; docs/reconstruction.md.
    """
    genre = config.genre.with_dataset_defaults()
    os.makedirs(config.output_dir, exist_ok=True)
    lines = [
        f"# λ sweep: {genre.dataset}, censoring {genre.censoring}, seed {genre.seed}, {genre.epochs} epochs",
        "",
        "| λ | test accuracy | seconds |",
        "|---:|---:|---:|",
    ] + [f"| {lam:g} | {acc:.4f} | {sec:.0f} |" for lam, acc, sec in rows]
    table = "\n".join(lines) + "\n"
    with open(os.path.join(config.output_dir, "sweep_lambda.md"), "w", encoding="utf-8") as f:
        f.write(table)
    plot_sweep(
        rows,
        os.path.join(config.output_dir, "sweep_lambda.png"),
        f"{genre.dataset}: test accuracy vs λ",
    )
    return table


def plot_sweep(rows, path, title):
    """Test accuracy against λ (symmetric-log x axis) as a PNG.

    Reference: seed 001's λ sweep; docs/reconstruction.md.
    """
    plt = reporting.pyplot()
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([r[0] for r in rows], [r[1] for r in rows], "o-")
    ax.set_xscale("symlog", linthresh=0.01)
    ax.set_xlabel("λ (reconstruction weight)")
    ax.set_ylabel("test accuracy")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
