"""MAXL, meta auxiliary learning (Liu, Davison & Johns 2019, "Self-Supervised
Generalisation with Meta Auxiliary Learning", NeurIPS), in one package:

- `keras_aux.maxl.model`: the backend-neutral `MAXL` model (configuration,
  losses, the virtual step, schedules, metrics, evaluation, saving);
- `keras_aux.maxl.backend`: its stages and train step on TensorFlow
  (`tensorflow_trainer`, tapes and `tf.distribute`) and on JAX
  (`jax_trainer`, stateless, nested `jax.grad` through the virtual step);
- `keras_aux.maxl.networks`: the backbones, the multi-task network and the
  label generator.

See docs/maxl.md.
"""

from keras_aux.maxl.model import MAXL, SCHEDULES, AlternatingStages
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
    "MAXL",
    "SCHEDULES",
    "AlternatingStages",
    "conv4_backbone",
    "label_generator",
    "mlp_backbone",
    "multitask_network",
    "single_task_network",
    "vgg16_backbone",
]
