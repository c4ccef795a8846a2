"""The networks of the papers keras-aux reproduces (MAXL's live in `keras_aux.maxl.networks`,
with the model; re-exported here)."""

from keras_aux.architectures.genre_lstm import (
    compile_genre_lstm,
    export_waveform_classifier,
    genre_lstm,
    waveform_classifier,
    waveform_genre_lstm,
)
from keras_aux.architectures.mlp import auxiliary_mlp
from keras_aux.maxl.networks import (
    BACKBONES,
    conv4_backbone,
    label_generator,
    mlp_backbone,
    multitask_network,
    single_task_network,
    vgg16_backbone,
)

__all__ = [
    "BACKBONES",
    "auxiliary_mlp",
    "compile_genre_lstm",
    "conv4_backbone",
    "export_waveform_classifier",
    "genre_lstm",
    "label_generator",
    "mlp_backbone",
    "multitask_network",
    "single_task_network",
    "vgg16_backbone",
    "waveform_classifier",
    "waveform_genre_lstm",
]
