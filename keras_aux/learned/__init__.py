"""Learned auxiliary weightings: censoring methods whose weighting of the
auxiliary gradients is learned during training, from the per-task gradients
the censored step already computes.

- `MetaBalance` (He et al., WWW 2022): each auxiliary gradient rescaled, per
  variable tensor, towards the primary gradient's moving magnitude;
- `OLAux` (Lin et al., NeurIPS 2019): one weight per auxiliary task, moved
  every few steps by the inner product of its gradient with the primary one.

Each is a `keras_aux.censoring.Censor`: pass an instance as
``AuxiliaryModel.compile(censoring=...)``. Their state is model state (saved,
restored, left untouched by a skipped step) and what they learn is logged
with every step (`Censor.logs`). See docs/learned_weighting.md.

`AuxiNash` (Shamsian et al., ICML 2023) is one too, with a meta batch: Nash
bargaining weights whose asymmetric powers are learned every few steps by
implicit differentiation of the primary loss on a meta batch
(`keras_aux.models.with_meta_batches`, a held-out split by default).

`AutoLambda` (Liu et al., TMLR 2022) is a loss weighting instead
(``compile(loss_weighting=AutoLambda())``): per-task weights learned from a
one-step look-ahead on a meta batch (`keras_aux.models.with_meta_batches`).

`plot_learned_weights` draws what a run learned, from the ``History`` that `fit`
returns, to a PNG (`plot_merge_weights`: ForkMerge's merge weights).
"""

from keras_aux.learned.auto_lambda import AutoLambda
from keras_aux.learned.auxinash import AuxiNash
from keras_aux.learned.fork_merge import BranchWeights, ForkMerge, plot_merge_weights
from keras_aux.learned.metabalance import MetaBalance
from keras_aux.learned.ol_aux import OLAux
from keras_aux.learned.plots import learned_weight_logs, plot_learned_weights

__all__ = [
    "AutoLambda",
    "AuxiNash",
    "BranchWeights",
    "ForkMerge",
    "MetaBalance",
    "OLAux",
    "learned_weight_logs",
    "plot_learned_weights",
    "plot_merge_weights",
]
