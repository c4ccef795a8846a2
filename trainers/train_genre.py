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
path offline in a few minutes. The protocol is `keras_aux.experiments.genre`.

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
    config = from_values(genre.GenreConfig, FLAGS.flag_values_dict())
    if config.needs_data_dir and config.data_dir is None:
        raise app.UsageError(f"--data_dir is required for --dataset={config.dataset}.")
    result = genre.run(config, pipeline_log=logging.info)
    export_dir, clip, probabilities = genre.export(result, config)
    class_names = result.class_names
    print(
        f"\nSavedModel at {export_dir} (input: raw mono waveform at {config.sample_rate} Hz, any length)"
    )
    print(
        f"{os.path.basename(clip)} → {class_names[int(np.argmax(probabilities))]} "
        f"(p={probabilities.max():.2f}; true {class_names[result.splits['test'].labels[0]]})"
    )
    print("\n" + genre.results_table(result.results))
    print(f"\nTensorBoard: tensorboard --logdir {config.logdir}")


if __name__ == "__main__":
    app.run(main)
