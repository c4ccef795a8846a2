"""Train the LSTM genre classifier with a reconstruction auxiliary loss (seed 001).

files → tf.data (decode, 16 kHz mono, fixed duration, log-mel, 512-frame
training crops) → `genre_lstm` (an AuxiliaryModel: λ is the reconstruction
loss weight, censoring modes apply) → Adam 1e-4 × 0.97 per epoch → best
validation accuracy checkpoint → test report → SavedModel of the run with the
best validation accuracy: ``serve(waveform, sample_rate)`` takes raw mono
waveforms at any rate (resampled in the graph) and returns genre
probabilities; a few test clips are classified with it.

Datasets (``--dataset``): ``fma_small`` (``--data_dir`` holding ``fma_small/``
and ``fma_metadata/``), ``gtzan``, ``fsdd`` (digits, official test split),
``folder`` (one sub-folder per class), and ``demo``: a small synthetic music
set written to ``--data_dir`` (default ``data/synthetic_music``), trained with
λ = 0 and with ``--reconstruction_weight`` so ``make demo`` shows the whole
path offline in about a minute. The protocol is `keras_aux.experiments.genre`.

Usage::

    python -m trainers.train_genre --dataset=fma_small --data_dir=/data/fma \\
        --reconstruction_weight=10 --epochs=256 --logdir=logs/genre

Reference: seed 001 ("reconstruction auxiliary loss"); docs/reconstruction.md.
"""

import os

import numpy as np
from absl import app, flags, logging

from keras_aux.experiments import genre
from keras_aux.experiments.options import flag_specs, from_values

FLAGS = flags.FLAGS
for spec in flag_specs(genre.GenreConfig):
    getattr(flags, f"DEFINE_{spec.kind}")(spec.name, spec.default, **spec.define_kwargs())


def main(argv):
    del argv
    if not FLAGS["verbosity"].present:
        # absl.app raises an unset --verbosity to INFO, which prints TensorFlow's own INFO lines
        # (SavedModel writing) among the results. Warnings (skipped audio files) still show;
        # --verbosity=0 brings INFO back.
        logging.set_verbosity(logging.WARNING)
    config = from_values(genre.GenreConfig, FLAGS.flag_values_dict())
    if config.needs_data_dir and config.data_dir is None:
        raise app.UsageError(f"--data_dir is required for --dataset={config.dataset}.")
    result = genre.run(config, pipeline_log=logging.warning)
    export_dir, examples = genre.export(result, config)
    names = result.class_names
    print(
        f"\nExported {result.selected}, the run with the best validation accuracy, to {export_dir}"
    )
    print(
        "  serve(waveform: float32 [batch, samples], sample_rate: int32 Hz) → genre probabilities"
        f" (other rates are resampled to {config.sample_rate} Hz)"
    )
    print("Reloaded SavedModel on test clips:")
    for path, label, probabilities in examples:
        guess = int(np.argmax(probabilities))
        verdict = "right" if guess == label else f"wrong, true {names[label]}"
        print(
            f"  {os.path.basename(path):>24s} → {names[guess]} (p={probabilities[guess]:.2f}; {verdict})"
        )
    print("\n" + genre.results_table(result.results, result.selected))
    print(f"\nTensorBoard: tensorboard --logdir {config.logdir}")


if __name__ == "__main__":
    app.run(main)
