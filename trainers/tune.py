"""Search λ, the censoring mode, granularity and α with keras-tuner.

``--task=synthetic``: the synthetic experiment of seed 004 (primary task on
train1, auxiliary on train2, ``--situation``), objective = validation primary
MSE. ``--task=genre``: the genre trainer's data and model (every
`trainers.train_genre` flag applies: ``--dataset``, ``--data_dir``...),
objective = validation genre accuracy. The protocol is `keras_aux.experiments.search`.

Writes ``best.json`` (the best hyperparameters and score) and ``trials.md``
(every trial) to ``--output_dir``, and one TensorBoard run per trial under
``--directory/<project>/tensorboard``. Distributed search: see BUILD.md.

Usage::

    python -m trainers.tune --task=synthetic --tuner=bayesian --max_trials=30

Reference: Lemaire (2018) (the searched quantities); O'Malley et al. (2019),
KerasTuner.
"""

import json

from absl import app, flags

from keras_aux.datasets.synthetic_tasks import SITUATIONS
from keras_aux.experiments import genre, search
from keras_aux.experiments.options import flag_specs, from_values

FLAGS = flags.FLAGS
for spec in flag_specs(genre.GenreConfig):
    getattr(flags, f"DEFINE_{spec.kind}")(spec.name, spec.default, **spec.define_kwargs())
flags.DEFINE_enum("task", "synthetic", list(search.TASKS), "What to tune.")
flags.DEFINE_enum("tuner", "random", list(search.TUNERS), "keras-tuner search algorithm.")
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


def main(argv):
    del argv
    config = search.SearchConfig(
        task=FLAGS.task,
        tuner=FLAGS.tuner,
        max_trials=FLAGS.max_trials,
        situation=FLAGS.situation,
        directory=FLAGS.directory,
        project_name=FLAGS.project_name,
        output_dir=FLAGS.output_dir,
        overwrite=FLAGS.overwrite,
        genre=from_values(genre.GenreConfig, FLAGS.flag_values_dict()),
    )
    if config.task == "genre" and config.genre.needs_data_dir and config.genre.data_dir is None:
        raise app.UsageError(f"--data_dir is required for --dataset={config.genre.dataset}.")
    summary, table = search.run(config)
    search.write(config, summary, table)
    print(table)
    print(f"best: {json.dumps(summary)}")


if __name__ == "__main__":
    app.run(main)
