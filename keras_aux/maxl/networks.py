"""The networks of MAXL: image backbones, the multi-task network f, the label
generator g and a single-task baseline.

Reference: Liu, Davison & Johns (2019), "Self-Supervised Generalisation with
Meta Auxiliary Learning" (MAXL), §3 and §4; docs/maxl.md#networks. The paper uses a
4-layer ConvNet on the MNIST family and VGG-16 on CIFAR-100; both f and g are
"any backbone + heads", and MAXL trains two separate copies of the backbone
(one inside f with parameters θ1, one inside g with parameters θ2).

Every builder returns a plain functional `keras.Model`, so all of them save to
and load from `.keras` files. A backbone is nested in the networks built on it
as a single layer (named after the backbone), which keeps the shared part of f
addressable as ``model.get_layer(backbone.name)`` — e.g. to exclude the heads
from MAXL's gradient-similarity diagnostic.
"""

import keras

from keras_aux import hierarchy
from keras_aux.layers.hierarchical_softmax import HierarchicalMaskedSoftmax

CONV4_FILTERS = (32, 64, 128, 256)
# VGG-16 "configuration D" (Simonyan & Zisserman 2015, table 1): ints are 3×3
# conv widths, "M" a 2×2 max-pool.
# fmt: off
VGG16_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M",
                512, 512, 512, "M", 512, 512, 512, "M")
# fmt: on


class _Initializers:
    """Hands out a fresh seeded initializer per layer (seed ``1000·seed + k``
    for the k-th layer), or the Keras defaults when ``seed`` is None.

    A Keras 3 initializer instance with a fixed seed returns the same values on
    every call, so one instance must never be shared between layers: two
    layers of the same shape would start identical.
    """

    def __init__(self, seed):
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
            raise ValueError(f"`seed` must be None or an int >= 0; got {seed!r}.")
        self.seed = seed
        self.count = 0

    def kernel(self):
        if self.seed is None:
            return "glorot_uniform"
        self.count += 1
        return keras.initializers.GlorotUniform(seed=self.seed * 1000 + self.count)


def _image_input(input_shape, name):
    """An `Input` of ``(H, W)`` or ``(H, W, C)`` images and the rank-4 tensor
    the convolutions read (a channel axis is added to ``(H, W)`` images).

    Sizes must be known: whether a max-pool is skipped depends on them.
    """
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(
            f"`input_shape` must be (H, W) or (H, W, C) ints; got {input_shape!r}."
        ) from None
    if len(shape) not in (2, 3) or any(d < 1 for d in shape):
        raise ValueError(
            f"`input_shape` must be (H, W) or (H, W, C) with positive sizes (no batch axis); "
            f"got {input_shape!r}."
        )
    inputs = keras.Input(shape, name=f"{name}_image")
    x = inputs
    if len(shape) == 2:
        x = keras.layers.Reshape((*shape, 1), name=f"{name}_channel")(x)
    return inputs, x


def _maybe_pool(x, name):
    """A 2×2 max-pool, skipped along an axis whose size is already 1 (so small
    images such as 28×28 run through every block of a deep network)."""
    height, width = x.shape[1], x.shape[2]
    pool = (1 if height == 1 else 2, 1 if width == 1 else 2)
    if pool == (1, 1):
        return x
    return keras.layers.MaxPooling2D(pool, name=name)(x)


# The reference networks are PyTorch's: BatchNorm keeps its moving statistics
# with momentum 0.1 (new = 0.9 · old + 0.1 · batch) and ε = 1e-5. Keras's
# defaults (0.99, 1e-3) leave the statistics far from the data after a short
# run, and inference accuracy far below training accuracy.
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def _conv_bn_relu(x, filters, init, name):
    x = keras.layers.Conv2D(
        filters, 3, padding="same", kernel_initializer=init.kernel(), name=f"{name}_conv"
    )(x)
    x = keras.layers.BatchNormalization(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn"
    )(x)
    return keras.layers.ReLU(name=f"{name}_relu")(x)


def conv4_backbone(input_shape, filters=CONV4_FILTERS, seed=None, name="conv4"):
    """The 4-layer ConvNet of MAXL's MNIST-family experiments.

    Four blocks of Conv2D 3×3 (same padding) → BatchNormalization → ReLU →
    MaxPool 2×2, then global average pooling to a flat feature vector of
    ``filters[-1]`` units. The pool is skipped along an axis already of size 1.

    Args:
        input_shape: ``(H, W)`` (a channel axis is added) or ``(H, W, C)``.
        filters: conv widths of the blocks (32, 64, 128, 256 in the paper);
            any number of blocks.
        seed: initial-weight seed: the same seed gives the same weights.
        name: model name, also the prefix of its layer names.

    Reference: Liu, Davison & Johns (2019), MAXL, §4.1.
    """
    filters = _positive_ints(filters, "filters")
    init = _Initializers(seed)
    inputs, x = _image_input(input_shape, name)
    for i, width in enumerate(filters, start=1):
        x = _conv_bn_relu(x, width, init, f"{name}_block{i}")
        x = _maybe_pool(x, f"{name}_block{i}_pool")
    features = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    return keras.Model(inputs, features, name=name)


def vgg16_backbone(input_shape, width=1.0, seed=None, name="vgg16"):
    """VGG-16 (configuration D) with BatchNormalization after every conv, as
    used by MAXL on CIFAR-100.

    Thirteen Conv2D 3×3 → BatchNormalization → ReLU layers in five stages of
    64, 128, 256, 512, 512 filters, each stage ending in a 2×2 max-pool, then
    global average pooling. Pools are skipped along an axis already of size 1,
    so 28×28 (four effective pools) and 32×32 (five) inputs both work.

    Args:
        input_shape: ``(H, W)`` or ``(H, W, C)``.
        width: multiplier of every conv width (rounded, at least 1); 1.0 is the
            paper's network, small values give a cheap network for tests.
        seed: initial-weight seed.
        name: model name and layer-name prefix.

    References: Simonyan & Zisserman (2015), "Very Deep Convolutional Networks
    for Large-Scale Image Recognition", table 1 column D; Liu, Davison & Johns
    (2019), MAXL, §4.2.
    """
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise ValueError(f"`width` must be a positive number; got {width!r}.")
    init = _Initializers(seed)
    inputs, x = _image_input(input_shape, name)
    stage, index = 1, 1
    for item in VGG16_CONFIG:
        if item == "M":
            x = _maybe_pool(x, f"{name}_stage{stage}_pool")
            stage, index = stage + 1, 1
            continue
        units = max(1, int(round(item * width)))
        x = _conv_bn_relu(x, units, init, f"{name}_stage{stage}_{index}")
        index += 1
    features = keras.layers.GlobalAveragePooling2D(name=f"{name}_gap")(x)
    return keras.Model(inputs, features, name=name)


def mlp_backbone(input_shape, units=(64, 64), seed=None, name="mlp"):
    """Flatten → Dense ReLU layers: a cheap backbone for tests and toy data.

    Args:
        input_shape: any fully known shape without the batch axis.
        units: widths of the Dense ReLU layers (at least one).
        seed: initial-weight seed.
        name: model name and layer-name prefix.

    Reference: Liu, Davison & Johns (2019), MAXL (any backbone works for f and g).
    """
    units = _positive_ints(units, "units")
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"`input_shape` must be a tuple of ints; got {input_shape!r}.") from None
    if not shape or any(d < 1 for d in shape):
        raise ValueError(f"`input_shape` must be positive sizes (no batch axis); got {shape!r}.")
    init = _Initializers(seed)
    inputs = keras.Input(shape, name=f"{name}_image")
    x = keras.layers.Flatten(name=f"{name}_flatten")(inputs)
    for i, width in enumerate(units, start=1):
        x = keras.layers.Dense(
            width, activation="relu", kernel_initializer=init.kernel(), name=f"{name}_dense{i}"
        )(x)
    return keras.Model(inputs, x, name=name)


BACKBONES = {"conv4": conv4_backbone, "vgg16": vgg16_backbone, "mlp": mlp_backbone}


def multitask_network(backbone, psi, head_units=None, seed=None, name="multitask"):
    """MAXL's multi-task network f: a shared backbone and two heads.

    Outputs a dict: ``"primary"``, a softmax over ``len(ψ)`` primary classes,
    and ``"auxiliary"``, a softmax over all ``sum(ψ)`` auxiliary classes (not
    masked: f must predict the auxiliary class without knowing the primary
    label). Each head is ``Dense(head_units, relu) → Dense(classes, softmax)``
    when ``head_units`` is given, else one ``Dense(classes, softmax)``; the two
    heads share no weights. Train it with `keras_aux.losses.FocalLoss` on both
    outputs (one-hot or sparse primary targets, soft auxiliary targets).

    Args:
        backbone: a `keras.Model` from one image input to a flat feature
            vector (e.g. from `BACKBONES`). It becomes a nested layer of the
            result; do not reuse the same instance in the label generator,
            which must have its own parameters.
        psi: the hierarchy ψ (list of positive ints).
        head_units: hidden width of each head, or None for linear heads.
        seed: initial-weight seed of the heads.
        name: model name.

    Reference: Liu, Davison & Johns (2019), MAXL, §3.1–3.2; docs/maxl.md#networks.
    """
    psi = hierarchy.validate_psi(psi)
    inputs, features = _apply_backbone(backbone)
    init = _Initializers(seed)
    outputs = {
        "primary": _head(features, len(psi), head_units, init, "primary"),
        "auxiliary": _head(features, sum(psi), head_units, init, "auxiliary"),
    }
    return keras.Model(inputs, outputs, name=name)


def label_generator(backbone, psi, head_units=None, seed=None, name="label_generator"):
    """MAXL's label generator g(x, y): soft auxiliary labels inside the block
    of the true primary class.

    Inputs are a dict ``{"image": images, "primary_label": int ids of shape
    (batch,)}``; the output is one ``(batch, sum ψ)`` tensor of probabilities
    that sums to one over the block of ``primary_label`` and is exactly zero
    outside it (`HierarchicalMaskedSoftmax`). The layers are backbone →
    [``Dense(head_units, relu)``] → ``Dense(sum ψ)`` logits → mask softmax.

    Args:
        backbone: a `keras.Model` from one image input to a flat feature
            vector, separate from the multi-task network's backbone.
        psi: the hierarchy ψ.
        head_units: hidden width before the logits, or None.
        seed: initial-weight seed of the head.
        name: model name.

    Reference: Liu, Davison & Johns (2019), MAXL, §3.3 (Mask SoftMax);
    docs/maxl.md#masked-softmax.
    """
    psi = hierarchy.validate_psi(psi)
    image, features = _apply_backbone(backbone)
    primary_label = keras.Input((), dtype="int32", name="primary_label")
    init = _Initializers(seed)
    logits = _head(features, sum(psi), head_units, init, "generator", activation=None)
    labels = HierarchicalMaskedSoftmax(psi, name="auxiliary_label")([logits, primary_label])
    return keras.Model({"image": image, "primary_label": primary_label}, labels, name=name)


def single_task_network(backbone, num_classes, head_units=None, seed=None, name="single_task"):
    """The "Single" baseline of MAXL: the backbone and a primary head only.

    Outputs a dict ``{"primary": softmax over num_classes}`` so the same
    losses, metrics and data pipelines as `multitask_network` apply.

    Args:
        backbone: a `keras.Model` from one image input to a flat feature vector.
        num_classes: number of primary classes (``len(ψ)``).
        head_units: hidden width of the head, or None.
        seed: initial-weight seed of the head.
        name: model name.

    Reference: Liu, Davison & Johns (2019), MAXL, §4 ("Single" baseline).
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1:
        raise ValueError(f"`num_classes` must be a positive int; got {num_classes!r}.")
    inputs, features = _apply_backbone(backbone)
    head = _head(features, num_classes, head_units, _Initializers(seed), "primary")
    return keras.Model(inputs, {"primary": head}, name=name)


def _apply_backbone(backbone):
    """A fresh ``"image"`` input and the backbone's features on it, after
    checking the backbone maps one image input to a flat vector."""
    if not isinstance(backbone, keras.Model):
        raise TypeError(
            f"`backbone` must be a keras.Model (e.g. conv4_backbone(...)); got "
            f"{type(backbone).__name__}."
        )
    if len(backbone.inputs) != 1 or len(backbone.outputs) != 1:
        raise ValueError(
            f"The backbone {backbone.name!r} must have one input and one output; got "
            f"{len(backbone.inputs)} and {len(backbone.outputs)}."
        )
    out_shape = backbone.outputs[0].shape
    if len(out_shape) != 2 or out_shape[-1] is None:
        raise ValueError(
            f"The backbone {backbone.name!r} must output flat features (batch, units); got "
            f"shape {tuple(out_shape)}. End it with a pooling or Flatten layer."
        )
    spec = backbone.inputs[0]
    image = keras.Input(tuple(spec.shape[1:]), dtype=spec.dtype, name="image")
    return image, backbone(image)


def _head(features, classes, head_units, init, name, activation="softmax"):
    x = features
    if head_units is not None:
        if isinstance(head_units, bool) or not isinstance(head_units, int) or head_units < 1:
            raise ValueError(f"`head_units` must be None or a positive int; got {head_units!r}.")
        x = keras.layers.Dense(
            head_units, activation="relu", kernel_initializer=init.kernel(), name=f"{name}_hidden"
        )(x)
    layer_name = name if activation else f"{name}_logits"
    return keras.layers.Dense(
        classes, activation=activation, kernel_initializer=init.kernel(), name=layer_name
    )(x)


def _positive_ints(values, what):
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise ValueError(f"`{what}` must be a list of positive ints; got {values!r}.")
    values = tuple(values)
    if not values or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in values):
        raise ValueError(f"`{what}` must be a non-empty list of positive ints; got {values!r}.")
    return values


__all__ = [
    "BACKBONES",
    "conv4_backbone",
    "label_generator",
    "mlp_backbone",
    "multitask_network",
    "single_task_network",
    "vgg16_backbone",
]
