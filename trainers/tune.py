"""Search λ, the censoring mode, granularity and α with keras-tuner.

``--task=synthetic``: the synthetic experiment of seed 004 (primary task on
train1, auxiliary on train2, ``--situation``), objective = validation primary
MSE. ``--task=genre``: the genre trainer's data and model (every
`trainers.train_genre` flag applies: ``--dataset``, ``--data_dir``...),
objective = validation genre accuracy.

Writes ``best.json`` (the best hyperparameters and score) and ``trials.md``
(every trial) to ``--output_dir``, and one TensorBoard run per trial under
``--directory/<project>/tensorboard``. Distributed search: see BUILD.md.

Usage::

    python -m trainers.tune --task=synthetic --tuner=bayesian --max_trials=30

Reference: Lemaire (2018) (the searched quantities); O'Malley et al. (2019),
KerasTuner.
"""

import json
import os

import keras
import keras_tuner
import tensorflow as tf
from absl import app, flags

from keras_aux.architectures import auxiliary_mlp, genre_lstm
from keras_aux.data.synthetic_tasks import SITUATIONS, make_synthetic_tasks
from keras_aux.layers import LogMelSpectrogram
from keras_aux.models import zip_tasks
from keras_aux.tuning import AuxiliaryHyperModel, primary_objective, trial_table
from trainers import train_genre

FLAGS = flags.FLAGS
flags.DEFINE_enum("task", "synthetic", ["synthetic", "genre"], "What to tune.")
flags.DEFINE_enum(
    "tuner", "random", ["random", "hyperband", "bayesian"], "keras-tuner search algorithm."
)
flags.DEFINE_integer(
    "max_trials", 10, "Trials (random, bayesian); hyperband uses --epochs as max_epochs."
)
flags.DEFINE_enum("situation", "similar", list(SITUATIONS), "Synthetic task: auxiliary situation.")
flags.DEFINE_string(
    "directory", "logs/tune", "keras-tuner working directory (trials, checkpoints)."
)
flags.DEFINE_string("project_name", None, "keras-tuner project (default: the task).")
flags.DEFINE_string("output_dir", None, "best.json and trials.md (default: --directory/<project>).")
flags.DEFINE_bool("overwrite", False, "Start the search afresh instead of resuming it.")

TUNERS = {
    "random": keras_tuner.RandomSearch,
    "hyperband": keras_tuner.Hyperband,
    "bayesian": keras_tuner.BayesianOptimization,
}


def synthetic_search(seed, epochs):
    """(hypermodel, objective, fit kwargs) for the synthetic task."""
    data = make_synthetic_tasks(seed=0)
    x1, y1 = data.primary("train")
    x2, y2 = data.auxiliary(FLAGS.situation)
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
    }
    return hypermodel, primary_objective("primary", "loss"), fit_kwargs


def genre_search(seed, epochs):
    """(hypermodel, objective, fit kwargs) for the genre trainer's data."""
    args = train_genre.args_from_flags()
    splits = train_genre.load_splits(FLAGS.dataset, FLAGS.data_dir, seed)
    frontend = LogMelSpectrogram(sampling_rate=args["sample_rate"])
    pipelines = train_genre.make_pipelines(splits, args, frontend)

    num_classes = len(splits["train"].class_names)
    hypermodel = AuxiliaryHyperModel(
        lambda hp: genre_lstm(num_classes, lstm_units=args["lstm_units"]),
        loss={"genre": "sparse_categorical_crossentropy", "reconstruction": "mae"},
        optimizer=lambda: keras.optimizers.Adam(args["learning_rate"]),
        metrics={"genre": ["accuracy"]},
    )
    fit_kwargs = {
        "x": pipelines["train"].dataset,
        "validation_data": pipelines["validation"].dataset,
        "epochs": epochs,
    }
    return hypermodel, primary_objective("genre", "accuracy"), fit_kwargs


def main(argv):
    del argv
    seed = FLAGS.seed
    keras.utils.set_random_seed(seed)
    epochs = FLAGS.epochs or (
        100 if FLAGS.task == "synthetic" else train_genre.DEFAULTS.get(FLAGS.dataset, (256,))[0]
    )
    hypermodel, objective, fit_kwargs = (
        synthetic_search if FLAGS.task == "synthetic" else genre_search
    )(seed, epochs)
    project = FLAGS.project_name or FLAGS.task
    common = {
        "objective": objective,
        "directory": FLAGS.directory,
        "project_name": project,
        "overwrite": FLAGS.overwrite,
        "seed": seed,
    }
    if FLAGS.tuner == "hyperband":
        tuner = keras_tuner.Hyperband(hypermodel, max_epochs=epochs, **common)
    else:
        tuner = TUNERS[FLAGS.tuner](hypermodel, max_trials=FLAGS.max_trials, **common)
    tensorboard = keras.callbacks.TensorBoard(os.path.join(FLAGS.directory, project, "tensorboard"))
    fit_kwargs["callbacks"] = fit_kwargs.get("callbacks", []) + [tensorboard]
    tuner.search(verbose=2, **fit_kwargs)

    output_dir = FLAGS.output_dir or os.path.join(FLAGS.directory, project)
    os.makedirs(output_dir, exist_ok=True)
    best = tuner.oracle.get_best_trials(1)[0]
    summary = {
        "objective": objective.name,
        "direction": objective.direction,
        "score": best.score,
        "hyperparameters": best.hyperparameters.values,
    }
    with open(os.path.join(output_dir, "best.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2)
    table = trial_table(tuner)
    with open(os.path.join(output_dir, "trials.md"), "w", encoding="utf-8") as f:
        f.write(
            f"# {FLAGS.tuner} search, task {FLAGS.task}, objective {objective.name} ({objective.direction})\n\n{table}"
        )
    print(table)
    print(f"best: {json.dumps(summary)}")


if __name__ == "__main__":
    app.run(main)
