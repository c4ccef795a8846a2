"""Gradient aggregators: a matrix of task gradients (one per row) → one update.

One method per module, behind the small bases of `base` (`Aggregator`,
`WeightedAggregator`, `GramianWeightedAggregator`), in ``keras.ops`` with
fixed-iteration solvers (`solvers`), so they run under XLA and on every
backend. Names (``aggregate(name, matrix)``, ``get(name)``):

=================  ===================  ==========================================
name               class                paper
=================  ===================  ==========================================
``"upgrad"``       `UPGrad`             Quinton & Rey 2024
``"dual_proj"``    `DualProj`           Lopez-Paz & Ranzato 2017
``"mgda"``         `MGDA`               Désidéri 2012; Sener & Koltun 2018
``"imtl_g"``       `IMTLG`              Liu et al. 2021 (ICLR)
``"aligned_mtl"``  `AlignedMTL`         Senushkin et al. 2023
``"cagrad"``       `CAGrad`             Liu et al. 2021 (NeurIPS)
``"nash_mtl"``     `NashMTL`            Navon et al. 2022
``"fairgrad"``     `FairGrad`           Ban & Ji 2024
``"config"``       `ConFIG`             Liu, Chu & Thuerey 2024
``"pcgrad"``       `PCGrad`             Yu et al. 2020
``"gradvac"``      `GradVac`            Wang et al. 2021
``"graddrop"``     `GradDrop`           Chen et al. 2020
``"random"``       `RandomWeighting`    Lin et al. 2022 (RLW)
=================  ===================  ==========================================

`Aggregated` wraps any of them as a `keras_aux.censoring.Censor` that treats
the primary task as one more row (``primary_weight`` sets a primary-aware
preference vector). The primary-aware forms: `AuxiliaryAggregated` aggregates
the auxiliary rows, then censors the result against the primary gradient;
`AsymmetricGradVac` raises each auxiliary gradient's cosine with the primary
to a target (the asymmetric PCGrad is the ``"projection"`` mode). The values
match TorchJD's (``torchjd.aggregation``); departures are listed in
docs/aggregation.md.
"""

from keras_aux.censoring.aggregation.aligned_mtl import AlignedMTL
from keras_aux.censoring.aggregation.asymmetric_gradvac import AsymmetricGradVac
from keras_aux.censoring.aggregation.base import (
    Aggregator,
    GramianWeightedAggregator,
    WeightedAggregator,
    check_matrix,
    gramian,
)
from keras_aux.censoring.aggregation.cagrad import CAGrad
from keras_aux.censoring.aggregation.censor import Aggregated, AuxiliaryAggregated
from keras_aux.censoring.aggregation.config import ConFIG
from keras_aux.censoring.aggregation.dual_proj import DualProj
from keras_aux.censoring.aggregation.fairgrad import FairGrad
from keras_aux.censoring.aggregation.graddrop import GradDrop
from keras_aux.censoring.aggregation.gradvac import GradVac
from keras_aux.censoring.aggregation.imtl_g import IMTLG
from keras_aux.censoring.aggregation.mgda import MGDA
from keras_aux.censoring.aggregation.nash_mtl import NashMTL
from keras_aux.censoring.aggregation.pcgrad import PCGrad
from keras_aux.censoring.aggregation.rlw import RandomWeighting
from keras_aux.censoring.aggregation.upgrad import UPGrad

AGGREGATORS = {
    "upgrad": UPGrad,
    "dual_proj": DualProj,
    "mgda": MGDA,
    "imtl_g": IMTLG,
    "aligned_mtl": AlignedMTL,
    "cagrad": CAGrad,
    "nash_mtl": NashMTL,
    "fairgrad": FairGrad,
    "config": ConFIG,
    "pcgrad": PCGrad,
    "gradvac": GradVac,
    "graddrop": GradDrop,
    "random": RandomWeighting,
}
NAMES = tuple(AGGREGATORS)


def get(identifier, **options):
    """The `Aggregator` for ``identifier``: a name in ``NAMES`` (built with
    ``options``), an `Aggregator` instance (returned as is; no options), or a
    dict from ``keras.saving.serialize_keras_object``."""
    import keras

    if isinstance(identifier, dict):
        identifier = keras.saving.deserialize_keras_object(identifier)
    if isinstance(identifier, Aggregator):
        if options:
            raise ValueError(f"Options {sorted(options)} given with an instance {identifier!r}.")
        return identifier
    if isinstance(identifier, str) and identifier in AGGREGATORS:
        return AGGREGATORS[identifier](**options)
    raise ValueError(
        f"Unknown aggregator {identifier!r}. Expected one of {list(NAMES)} or an "
        "instance of keras_aux.censoring.aggregation.Aggregator."
    )


def aggregate(method, matrix, **options):
    """The aggregation of ``matrix``'s rows (the task gradients) by ``method``.

    Exactly what TorchJD's ``Aggregator()(matrix)`` returns (up to the
    solvers' accuracy and the departures in docs/aggregation.md): a
    stateful method starts from its initial state.

    Args:
        method: a name in ``NAMES`` or an `Aggregator`.
        matrix: ``K × n`` tensor, one task gradient per row.
        **options: constructor options when ``method`` is a name, e.g.
            ``aggregate("cagrad", J, c=0.5)``.

    Returns:
        The vector of length ``n``.
    """
    return get(method, **options)(matrix)


__all__ = [
    "AGGREGATORS",
    "NAMES",
    "Aggregated",
    "Aggregator",
    "AlignedMTL",
    "AsymmetricGradVac",
    "AuxiliaryAggregated",
    "CAGrad",
    "ConFIG",
    "DualProj",
    "FairGrad",
    "GradDrop",
    "GradVac",
    "GramianWeightedAggregator",
    "IMTLG",
    "MGDA",
    "NashMTL",
    "PCGrad",
    "RandomWeighting",
    "UPGrad",
    "WeightedAggregator",
    "aggregate",
    "check_matrix",
    "get",
    "gramian",
]
