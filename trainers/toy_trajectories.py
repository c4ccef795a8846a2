"""Toy trajectories of gradient censoring on a 2-D point.

The toy problem of Lemaire (2018), "Auxiliary tasks in deep learning:
projecting the auxiliary gradient" (blog post): a point ``(x, y)`` is the only
trainable variable, the primary task wants it anywhere on the unit circle, the
auxiliary task at ``(2, 0)``; starting from ``(0, 2)``, each step applies the
primary gradient plus the censored auxiliary one (``multitask``,
``unweighted_cosine``, ``weighted_cosine``, ``projection``), once with Adam and
once with plain SGD. The protocol and what the runs show:
`keras_aux.experiments.toy`.

Usage::

    python -m trainers.toy_trajectories --steps=5000 \\
        --modes=multitask,projection --output_dir=benchmarks/results

Writes ``toy_trajectories.png`` (one panel per optimizer) and
``toy_trajectories.md`` (the final points) in ``--output_dir``.

Reference: Lemaire (2018); Du et al. (2018) (the cosine modes); docs/censoring.md.
"""

from absl import app, flags

from keras_aux.experiments import toy

FLAGS = flags.FLAGS
flags.DEFINE_integer("steps", toy.DEFAULT_STEPS, "Optimisation steps per trajectory.")
flags.DEFINE_list("modes", list(toy.TOY_MODES), "Censoring modes to run (keras_aux.censoring).")
flags.DEFINE_list("optimizers", list(toy.OPTIMIZERS), "Optimizers to run: adam and/or sgd.")
flags.DEFINE_float("learning_rate", 0.01, "Learning rate of both optimizers.")
flags.DEFINE_float("lam", 0.1, "Weight λ of the (censored) auxiliary gradient.")
flags.DEFINE_string("output_dir", "benchmarks/results", "Where to write the PNG and the table.")


def main(argv):
    """Runs every (optimizer, mode) pair and writes the PNG and the table."""
    del argv
    config = toy.ToyConfig(
        steps=FLAGS.steps,
        modes=tuple(FLAGS.modes),
        optimizers=tuple(FLAGS.optimizers),
        learning_rate=FLAGS.learning_rate,
        lam=FLAGS.lam,
        output_dir=FLAGS.output_dir,
    )
    table, md_path, png_path = toy.write(config, toy.run(config))
    print(table)
    print(f"Wrote {md_path} and {png_path}")


if __name__ == "__main__":
    app.run(main)
