"""λ sweep of the genre trainer: test accuracy against the reconstruction weight.

Runs `trainers.train_genre`'s training once per λ (the seed's list by
default: 0, 0.01, 0.1, 1, 2, 5, 10, 100) on the same data, splits and seed,
and writes ``sweep_lambda.md`` (table) and ``sweep_lambda.png`` (test
accuracy against λ, symmetric-log axis) to ``--output_dir``. Every
`train_genre` flag applies (``--dataset``, ``--data_dir``, ``--epochs``,
``--censoring``...).

Usage::

    python -m trainers.sweep_lambda --dataset=fma_small --data_dir=/data/fma \\
        --lambdas=0,1,10 --output_dir=benchmarks/results

Reference: seed 001 (λ swept over {0, 0.01, 0.1, 1, 2, 5, 10, 100}).
"""

import os

from absl import app, flags

from trainers import train_genre

FLAGS = flags.FLAGS
flags.DEFINE_list(
    "lambdas", ["0", "0.01", "0.1", "1", "2", "5", "10", "100"], "Reconstruction weights to sweep."
)
flags.DEFINE_string("output_dir", "logs/sweep_lambda", "Where the table and the PNG are written.")


def plot(rows, path, title):
    """Test accuracy against λ (symmetric-log x axis) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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


def main(argv):
    del argv
    try:
        lambdas = [float(v) for v in FLAGS.lambdas]
    except ValueError:
        raise app.UsageError(f"--lambdas must be numbers; got {FLAGS.lambdas}") from None
    if any(v < 0 for v in lambdas):
        raise app.UsageError("--lambdas must be >= 0.")
    args = train_genre.args_from_flags()
    splits = train_genre.load_splits(FLAGS.dataset, FLAGS.data_dir, FLAGS.seed)
    rows = []
    for lam in lambdas:
        _, _, accuracy, report, seconds = train_genre.train_one(f"lambda{lam:g}", lam, splits, args)
        print(f"\n== λ={lam:g}: {report.splitlines()[0]} ({seconds:.0f} s)")
        rows.append((lam, accuracy, seconds))
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    lines = [
        f"# λ sweep: {FLAGS.dataset}, censoring {FLAGS.censoring}, seed {FLAGS.seed}, {args['epochs']} epochs",
        "",
        "| λ | test accuracy | seconds |",
        "|---:|---:|---:|",
    ] + [f"| {lam:g} | {acc:.4f} | {sec:.0f} |" for lam, acc, sec in rows]
    table = "\n".join(lines) + "\n"
    with open(os.path.join(FLAGS.output_dir, "sweep_lambda.md"), "w", encoding="utf-8") as f:
        f.write(table)
    plot(
        rows,
        os.path.join(FLAGS.output_dir, "sweep_lambda.png"),
        f"{FLAGS.dataset}: test accuracy vs λ",
    )
    print(table)


if __name__ == "__main__":
    app.run(main)
