"""Train MAXL or one of its baselines on a local image dataset (seed 003).

data (local files) → the chosen method on the chosen backbone → `fit` with
TensorBoard logs → test accuracy of the primary task → SavedModel serving
the primary class probabilities (``labels.json`` beside it names the classes)
→ ``result.json`` in the run's log folder; for MAXL also ``learned_labels.png``, the
auxiliary classes the generator assigns to the training images.

The logs (TensorBoard's ``validation`` run, ``val_`` in the progress bar) carry MAXL's
collapse diagnostics, ``auxiliary_usage`` and ``auxiliary_entropy``: what the generator assigns
in inference mode to the validation images at the end of each epoch. ``result.json`` holds them
for the validation images (``val_auxiliary_usage``, ``val_auxiliary_entropy``) and for the
training images after training (``auxiliary_usage``, ``auxiliary_entropy``); see
docs/maxl.md#diagnostics.

Methods (``--method``): ``maxl`` (``--order=2`` exact meta-gradient, ``1``
finite-difference estimate; ``--schedule=epoch`` is the paper's alternation
of whole stage-1 and stage-2 epochs, so one ``--epochs`` is two `fit`
epochs), ``single``, ``human``, ``random``, ``kmeans`` — see
`keras_aux.experiments.maxl`. Fashion-MNIST's primary task is its four coarse
groups (tops / bottoms and dresses / footwear / bags), the fine classes being
the Human baseline's auxiliary labels (ψ = 4,2,3,1).

Usage::

    apt-get install -y dataset-fashion-mnist     # or --data_dir=<idx files>
    python -m trainers.train_maxl --method=maxl --dataset=fashion_mnist \\
        --train_size=10000 --epochs=10 --logdir=logs/maxl

Reference: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with
Meta Auxiliary Learning"; docs/maxl.md.
"""

from absl import app, flags

from keras_aux.experiments import maxl

FLAGS = flags.FLAGS
flags.DEFINE_enum("method", "maxl", list(maxl.METHODS), "Method.")
flags.DEFINE_enum("order", "2", ["1", "2"], "MAXL meta-gradient: 2 exact, 1 finite differences.")
flags.DEFINE_enum("schedule", "epoch", ["epoch", "interleaved"], "MAXL stage schedule.")
flags.DEFINE_integer("stage2_every", 1, "Interleaved schedule: stage 2 every k steps.")
flags.DEFINE_string("psi", None, "ψ: '3' (per primary class) or '2,3,...' (default: see docs).")
flags.DEFINE_enum("dataset", "fashion_mnist", list(maxl.DATASETS), "Dataset.")
flags.DEFINE_string("data_dir", None, "Where the dataset's files are (default: known places).")
flags.DEFINE_integer("train_size", None, "Training examples used (default: all).")
flags.DEFINE_integer("val_size", 5000, "Training examples held out for validation.")
flags.DEFINE_enum("backbone", "conv4", ["conv4", "vgg16", "mlp"], "Backbone of both networks.")
flags.DEFINE_list("filters", None, "conv4 widths (default 32,64,128,256).")
flags.DEFINE_integer("epochs", 10, "Epochs (MAXL's paper schedule: stage-1 + stage-2 passes).")
flags.DEFINE_integer(
    "patience",
    None,
    "Early stopping after this many epochs without a better validation accuracy, testing the "
    "best validation epoch's weights (default: train all --epochs, test the last).",
)
flags.DEFINE_integer("batch_size", 100, "Batch size.")
flags.DEFINE_float("learning_rate", 0.1, "θ1 SGD learning rate (cosine-annealed).")
flags.DEFINE_float("momentum", 0.9, "θ1 SGD momentum.")
flags.DEFINE_float("weight_decay", 5e-4, "θ1 weight decay.")
flags.DEFINE_float("generator_learning_rate", 1e-3, "θ2 SGD learning rate.")
flags.DEFINE_float("entropy_weight", 0.2, "Weight of the entropy regulariser.")
flags.DEFINE_bool("jit_compile", False, "XLA.")
flags.DEFINE_integer("seed", 0, "Seed (subset, split, weights, random labels).")
flags.DEFINE_string("logdir", "logs/maxl", "TensorBoard logs (one sub-folder per run).")
flags.DEFINE_string("export_dir", None, "SavedModel destination (default saved_models/maxl_...).")


def main(argv):
    del argv
    config = maxl.RunConfig(
        dataset=FLAGS.dataset,
        data_dir=FLAGS.data_dir,
        train_size=FLAGS.train_size,
        val_size=FLAGS.val_size,
        logdir=FLAGS.logdir,
        export_dir=FLAGS.export_dir,
        train=maxl.TrainConfig(
            method=FLAGS.method,
            backbone=FLAGS.backbone,
            filters=tuple(int(f) for f in FLAGS.filters) if FLAGS.filters else None,
            psi=FLAGS.psi,
            order=int(FLAGS.order),
            schedule=FLAGS.schedule,
            stage2_every=FLAGS.stage2_every,
            epochs=FLAGS.epochs,
            patience=FLAGS.patience,
            batch_size=FLAGS.batch_size,
            learning_rate=FLAGS.learning_rate,
            momentum=FLAGS.momentum,
            weight_decay=FLAGS.weight_decay,
            generator_learning_rate=FLAGS.generator_learning_rate,
            entropy_weight=FLAGS.entropy_weight,
            seed=FLAGS.seed,
            jit_compile=FLAGS.jit_compile,
        ),
    )
    result, export_dir = maxl.run(config)
    print(
        f"test accuracy {result['test_accuracy']:.4f} (best val {result['best_val_accuracy']:.4f}) "
        f"in {result['seconds']:.0f} s; ψ={result['psi']}; SavedModel: {export_dir}; "
        f"TensorBoard: {config.run_dir}"
    )


if __name__ == "__main__":
    app.run(main)
