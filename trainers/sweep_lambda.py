"""λ sweep of the genre trainer: test accuracy against the reconstruction weight.

Runs the genre experiment's training (`keras_aux.experiments.genre`) once per λ (the seed's
list by default: 0, 0.01, 0.1, 1, 2, 5, 10, 100) on the same data, splits and seed,
and writes ``sweep_lambda.md`` (table) and ``sweep_lambda.png`` (test
accuracy against λ, symmetric-log axis) to ``--output_dir``. Every
`train_genre` flag applies (``--dataset``, ``--data_dir``, ``--epochs``,
``--censoring``...).

Usage::

    python -m trainers.sweep_lambda --dataset=fma_small --data_dir=/data/fma \\
        --lambdas=0,1,10 --output_dir=benchmarks/results

Reference: seed 001 (λ swept over {0, 0.01, 0.1, 1, 2, 5, 10, 100}).
"""

from absl import app, flags, logging

from keras_aux.experiments import genre
from keras_aux.experiments.options import flag_specs, from_values

FLAGS = flags.FLAGS
for spec in flag_specs(genre.GenreConfig):
    getattr(flags, f"DEFINE_{spec.kind}")(spec.name, spec.default, **spec.define_kwargs())
flags.DEFINE_list(
    "lambdas", ["0", "0.01", "0.1", "1", "2", "5", "10", "100"], "Reconstruction weights to sweep."
)
flags.DEFINE_string("output_dir", "logs/sweep_lambda", "Where the table and the PNG are written.")


def main(argv):
    del argv
    try:
        lambdas = tuple(float(v) for v in FLAGS.lambdas)
    except ValueError:
        raise app.UsageError(f"--lambdas must be numbers; got {FLAGS.lambdas}") from None
    if any(v < 0 for v in lambdas):
        raise app.UsageError("--lambdas must be >= 0.")
    config = genre.SweepConfig(
        lambdas, FLAGS.output_dir, from_values(genre.GenreConfig, FLAGS.flag_values_dict())
    )
    if config.genre.needs_data_dir and config.genre.data_dir is None:
        raise app.UsageError(f"--data_dir is required for --dataset={config.genre.dataset}.")
    rows = genre.sweep(config, pipeline_log=logging.info)
    print(genre.write_sweep(config, rows))


if __name__ == "__main__":
    app.run(main)
