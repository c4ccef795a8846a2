"""Experiment protocols of keras-aux, as plain functions over config dataclasses.

One module per protocol; the scripts under ``trainers/`` and ``benchmarks/`` only parse their
flags into a config and call these functions (library code never reads flags, and no script
imports another):

- `keras_aux.experiments.genre`: the genre LSTM with a reconstruction auxiliary loss, its λ sweep
  (seed 001; docs/reconstruction.md).
- `keras_aux.experiments.maxl`: MAXL and its baselines on image data, and the Fashion-MNIST
  benchmark (Liu, Davison & Johns 2019; docs/maxl.md).
- `keras_aux.experiments.reconstruction`: the reconstruction loss on FSDD spoken digits, each run
  to its validation plateau, paired against λ = 0 (seed 001; docs/reconstruction.md).
- `keras_aux.experiments.synthetic`: the synthetic censoring experiment (Lemaire 2018;
  Du et al. 2018; docs/censoring.md#synthetic-experiment).
- `keras_aux.experiments.toy`: the unit-circle toy of gradient censoring (Lemaire 2018;
  docs/censoring.md).
- `keras_aux.experiments.search`: the keras-tuner search over λ, censoring mode, granularity
  and α on the synthetic or the genre task (Lemaire 2018; docs/censoring.md).
- `keras_aux.experiments.reporting`: markdown tables, resumable CSV run logs and plots.
- `keras_aux.experiments.options`: flag descriptions of a config's fields, for scripts that share
  a config.

Nothing is imported here: ``import keras_aux.experiments`` loads no protocol, and the optional
dependencies (matplotlib, absl, scikit-learn, tensorflow-datasets, soundfile, keras-tuner) are
imported only inside the functions that use them. ``import keras_aux`` does not import this
package.
"""
