"""The keras-tuner search of λ, the censoring mode, granularity and α (`keras_aux.tuning`).

Task ``synthetic``: the synthetic experiment of seed 004 (primary task on train1, auxiliary on
train2 in one ``situation``; `keras_aux.datasets.synthetic_tasks`), objective = validation primary
MSE. Task ``genre``: the genre experiment's data and model (`keras_aux.experiments.genre`),
objective = validation genre accuracy. `run` searches and returns the best trial and the table
of every trial; one TensorBoard run per trial goes under ``directory/<project>/tensorboard``.

Used by ``trainers/tune.py``. keras-tuner (the ``tuning`` extra) is imported by the functions
that use it, through `keras_aux.tuning`.

Reference: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
gradient" (the searched quantities); Du et al. (2018) (the cosine modes); O'Malley et al.
(2019), KerasTuner; docs/censoring.md.
"""

import dataclasses
import json
import os

import keras
import tensorflow as tf

from keras_aux.architectures import auxiliary_mlp
from keras_aux.datasets.synthetic_tasks import SITUATIONS, make_synthetic_tasks
from keras_aux.experiments import genre as genre_experiment
from keras_aux.layers import LogMelSpectrogram
from keras_aux.models import zip_tasks

TASKS = ("synthetic", "genre")
TUNERS = ("random", "hyperband", "bayesian")
SYNTHETIC_EPOCHS = 100  # the synthetic task's default epochs (early stopping ends trials first)


@dataclasses.dataclass
class SearchConfig:
    """One keras-tuner search (the flags of ``trainers/tune.py``).

    Attributes:
        task: ``"synthetic"`` or ``"genre"`` (`TASKS`).
        tuner: ``"random"``, ``"hyperband"`` or ``"bayesian"`` (`TUNERS`).
        max_trials: trials of random and bayesian searches; hyperband uses the epochs as its
            ``max_epochs``.
        situation: the synthetic task's auxiliary situation (``same``, ``similar``,
            ``unrelated``).
        directory: keras-tuner's working directory (trials, checkpoints); resumed unless
            ``overwrite``.
        project_name: keras-tuner project (None: the task).
        output_dir: where `write` puts ``best.json`` and ``trials.md`` (None:
            ``directory/<project>``).
        overwrite: start the search afresh instead of resuming it.
        genre: the genre task's data and model; its ``seed`` seeds both tasks, and its
            ``epochs`` (None: `SYNTHETIC_EPOCHS` for the synthetic task, the dataset's default
            for the genre task) bounds every trial.

    Reference: Lemaire (2018) (the searched quantities); docs/censoring.md.
    """

    task: str = "synthetic"
    tuner: str = "random"
    max_trials: int = 10
    situation: str = "similar"
    directory: str = "logs/tune"
    project_name: str | None = None
    output_dir: str | None = None
    overwrite: bool = False
    genre: genre_experiment.GenreConfig = dataclasses.field(
        default_factory=genre_experiment.GenreConfig
    )

    @property
    def project(self):
        """keras-tuner's project name: ``project_name``, else the task."""
        return self.project_name or self.task

    @property
    def epochs(self):
        """Epochs of every trial (the genre config's, else the task's default)."""
        if self.genre.epochs:
            return self.genre.epochs
        if self.task == "synthetic":
            return SYNTHETIC_EPOCHS
        defaults = genre_experiment.DEFAULTS.get(
            self.genre.dataset, genre_experiment.OTHER_DEFAULTS
        )
        return defaults[0]


def synthetic_search(situation, seed, epochs):
    """``(hypermodel, objective, fit kwargs)`` for the synthetic task: the article's MLP, MSE,
    Adam, λ in [0.1, 10], early stopping on the validation primary loss (patience 10).

    Reference: Lemaire (2018), synthetic experiment; docs/censoring.md#synthetic-experiment.
    """
    from keras_aux.tuning import AuxiliaryHyperModel, primary_objective

    data = make_synthetic_tasks(seed=0)
    x1, y1 = data.primary("train")
    x2, y2 = data.auxiliary(situation)
    primary = tf.data.Dataset.from_tensor_slices((x1, y1)).shuffle(len(x1), seed=seed).batch(100)
    auxiliary = (
        tf.data.Dataset.from_tensor_slices((x2, y2)).shuffle(len(x2), seed=seed).batch(100).repeat()
    )
    hypermodel = AuxiliaryHyperModel(
        lambda hp: auxiliary_mlp(seed=seed),
        loss="mse",
        optimizer=keras.optimizers.Adam,
        lambda_range=(0.1, 10.0),
        compile_kwargs={"track_gradient_cosine": False},
    )
    stop = keras.callbacks.EarlyStopping(
        "val_primary_loss", mode="min", patience=10, restore_best_weights=True
    )
    fit_kwargs = {
        "x": zip_tasks(primary, {"auxiliary": auxiliary}),
        "validation_data": data.primary("val"),
        "epochs": epochs,
        "callbacks": [stop],
        "shuffle": False,  # the datasets shuffle themselves, seeded
    }
    return hypermodel, primary_objective("primary", "loss"), fit_kwargs


def genre_search(config, epochs):
    """``(hypermodel, objective, fit kwargs)`` for the genre experiment's data and model.

    Args:
        config: a `keras_aux.experiments.genre.GenreConfig`.
        epochs: epochs of every trial.

    Reference: seed 001's genre classifier (docs/reconstruction.md), searched as Lemaire (2018).
    """
    from keras_aux.tuning import AuxiliaryHyperModel, primary_objective

    config = config.with_dataset_defaults()
    splits = genre_experiment.load_splits(config.dataset, config.data_dir, config.seed)
    frontend = LogMelSpectrogram(sampling_rate=config.sample_rate)
    pipelines = genre_experiment.make_pipelines(splits, config, frontend)

    num_classes = len(splits["train"].class_names)
    hypermodel = AuxiliaryHyperModel(
        lambda hp: genre_experiment.build_model(config, num_classes, frontend)[0],
        loss={"genre": "sparse_categorical_crossentropy", "reconstruction": "mae"},
        optimizer=lambda: keras.optimizers.Adam(config.learning_rate),
        metrics={"genre": ["accuracy"]},
    )
    # Known steps per epoch and no `shuffle` (the pipeline shuffles): see `fit_datasets`.
    train, steps, validation = genre_experiment.fit_datasets(
        pipelines["train"], pipelines["validation"], config.batch_size
    )
    fit_kwargs = {
        "x": train,
        "steps_per_epoch": steps,
        "validation_data": validation,
        "epochs": epochs,
        "shuffle": False,
    }
    return hypermodel, primary_objective("genre", "accuracy"), fit_kwargs


def make_tuner(config, hypermodel, objective):
    """The keras-tuner tuner of ``config.tuner`` (seeded, in ``config.directory``).

    Reference: O'Malley et al. (2019), KerasTuner; Lemaire (2018); docs/censoring.md.
    """
    from keras_aux.tuning import keras_tuner

    common = {
        "objective": objective,
        "directory": config.directory,
        "project_name": config.project,
        "overwrite": config.overwrite,
        "seed": config.genre.seed,
    }
    if config.tuner == "hyperband":
        return keras_tuner.Hyperband(hypermodel, max_epochs=config.epochs, **common)
    tuners = {"random": keras_tuner.RandomSearch, "bayesian": keras_tuner.BayesianOptimization}
    if config.tuner not in tuners:
        raise ValueError(f"Unknown tuner {config.tuner!r}; expected one of {list(TUNERS)}.")
    return tuners[config.tuner](hypermodel, max_trials=config.max_trials, **common)


def run(config, verbose=2):
    """Runs (or resumes) the search.

    Returns:
        ``(summary, table)``: ``summary`` holds the objective's name and direction, the best
        score and the best hyperparameters; ``table`` is the markdown table of every trial
        (`keras_aux.tuning.trial_table`).

    Reference: Lemaire (2018) (λ, mode and α of the synthetic experiment); docs/censoring.md.
    """
    from keras_aux.tuning import trial_table

    if config.task not in TASKS:
        raise ValueError(f"Unknown task {config.task!r}; expected one of {list(TASKS)}.")
    if config.situation not in SITUATIONS:
        raise ValueError(f"Unknown situation {config.situation!r}; expected {list(SITUATIONS)}.")
    seed = config.genre.seed
    keras.utils.set_random_seed(seed)
    if config.task == "synthetic":
        hypermodel, objective, fit_kwargs = synthetic_search(config.situation, seed, config.epochs)
    else:
        hypermodel, objective, fit_kwargs = genre_search(config.genre, config.epochs)
    tuner = make_tuner(config, hypermodel, objective)
    tensorboard = keras.callbacks.TensorBoard(
        os.path.join(config.directory, config.project, "tensorboard")
    )
    fit_kwargs["callbacks"] = fit_kwargs.get("callbacks", []) + [tensorboard]
    tuner.search(verbose=verbose, **fit_kwargs)

    best = tuner.oracle.get_best_trials(1)[0]
    summary = {
        "objective": objective.name,
        "direction": objective.direction,
        "score": best.score,
        "hyperparameters": best.hyperparameters.values,
    }
    return summary, trial_table(tuner)


def write(config, summary, table):
    """Writes ``best.json`` (``summary``) and ``trials.md`` (``table`` under a title) to
    ``config.output_dir`` (default ``directory/<project>``); returns that folder.

    Reference: Lemaire (2018) (the searched quantities); docs/censoring.md.
    """
    output_dir = config.output_dir or os.path.join(config.directory, config.project)
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "best.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(output_dir, "trials.md"), "w", encoding="utf-8") as f:
        f.write(
            f"# {config.tuner} search, task {config.task}, objective {summary['objective']} "
            f"({summary['direction']})\n\n{table}"
        )
    return output_dir
