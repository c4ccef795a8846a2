"""The MLP of the synthetic experiment (Lemaire 2018, after Chen et al. 2018):
shared Dense(100, ReLU) layers and one linear head per task."""

import keras

from keras_aux.models import AuxiliaryModel


def auxiliary_mlp(
    input_dim=250, output_dim=100, hidden=(100, 100, 100, 100), seed=0, auxiliary=("auxiliary",)
):
    """An `AuxiliaryModel` MLP with seeded initial weights.

    Args:
        input_dim: input features (250 in the article).
        output_dim: units of every linear head (100).
        hidden: units of the shared ReLU layers (four of 100).
        seed: initial-weight seed: the same seed gives the same weights, so
            every configuration of a comparison starts from one point.
        auxiliary: names of the auxiliary heads (the primary head is
            ``"primary"``).

    Reference: Lemaire (2018), synthetic experiment; Chen et al. (2018),
    "GradNorm".
    """
    if not auxiliary:
        raise ValueError("`auxiliary` must name at least one auxiliary head.")
    init = lambda i: keras.initializers.GlorotUniform(seed=seed * 100 + i)  # noqa: E731
    x = keras.Input((input_dim,), name="x")
    h = x
    for i, units in enumerate(hidden):
        h = keras.layers.Dense(
            units, activation="relu", kernel_initializer=init(i), name=f"shared_{i}"
        )(h)
    names = ["primary", *auxiliary]
    outputs = {
        name: keras.layers.Dense(output_dim, kernel_initializer=init(len(hidden) + k), name=name)(h)
        for k, name in enumerate(names)
    }
    return AuxiliaryModel(x, outputs, primary="primary")
