"""The LSTM genre classifier with a reconstruction auxiliary output (seed 001).

docs/reconstruction.md#network: dropout 0.3 on the input → BiLSTM(128) → BiLSTM(128), a
sequence ``h`` of width 256. Classifier: dropout → max over time → Dense 128
ReLU → dropout → Dense ``num_classes`` (softmax). Reconstruction: dropout on
``h`` → per-frame Dense ``num_mel_bins`` → clipped to [-1, 1]. The loss is
cross-entropy + λ · mean absolute error between the reconstruction and the
input *before* the input dropout: the model's ``input_targets`` maps the
reconstruction output to the ``mel`` input, and λ is the loss weight of
``"reconstruction"``.

Reference: seed 001, "Improving generalization with a reconstruction
auxiliary loss" (AI Magazine); Le, Patterson & White (2018), "Supervised
autoencoders: Improving generalization performance with unsupervised
regularizers" (NeurIPS).
"""

import keras

from keras_aux.models import AuxiliaryModel

PRIMARY = "genre"
RECONSTRUCTION = "reconstruction"


def genre_lstm(
    num_classes,
    num_mel_bins=128,
    lstm_units=128,
    dense_units=128,
    dropout=0.3,
    frames=None,
    name="genre_lstm",
):
    """Builds the genre LSTM as an `AuxiliaryModel` (primary ``"genre"``).

    Args:
        num_classes: number of genres.
        num_mel_bins: feature width of the ``mel`` input (and of the
            reconstruction).
        lstm_units: units per direction of each BiLSTM (128: width 256).
        dense_units: units of the classifier's hidden Dense layer.
        dropout: rate of every dropout layer (0.3 in the reference).
        frames: fixed number of frames, or None for any length.
        name: model name.

    Returns:
        An uncompiled `AuxiliaryModel` with outputs ``"genre"`` (softmax
        probabilities) and ``"reconstruction"`` (``(frames, num_mel_bins)``
        in [-1, 1]), whose reconstruction target is its input.

    Reference: seed 001; Le, Patterson & White 2018.
    """
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")
    mel = keras.Input((frames, num_mel_bins), name="mel")
    x = keras.layers.Dropout(dropout, name="input_dropout")(mel)
    h = keras.layers.Bidirectional(
        keras.layers.LSTM(lstm_units, return_sequences=True), name="bilstm_1"
    )(x)
    h = keras.layers.Bidirectional(
        keras.layers.LSTM(lstm_units, return_sequences=True), name="bilstm_2"
    )(h)

    c = keras.layers.Dropout(dropout, name="classifier_dropout_1")(h)
    c = keras.layers.GlobalMaxPooling1D(name="max_over_time")(c)
    c = keras.layers.Dense(dense_units, activation="relu", name="classifier_hidden")(c)
    c = keras.layers.Dropout(dropout, name="classifier_dropout_2")(c)
    genre = keras.layers.Dense(num_classes, activation="softmax", name=PRIMARY)(c)

    r = keras.layers.Dropout(dropout, name="reconstruction_dropout")(h)
    r = keras.layers.Dense(num_mel_bins, name="reconstruction_dense")(r)
    reconstruction = keras.layers.Activation("hard_tanh", name=RECONSTRUCTION)(r)

    return AuxiliaryModel(
        mel,
        {PRIMARY: genre, RECONSTRUCTION: reconstruction},
        name=name,
        primary=PRIMARY,
        input_targets={RECONSTRUCTION: "mel"},
    )


def compile_genre_lstm(
    model, reconstruction_weight=10.0, learning_rate=1e-4, censoring="multitask", **kwargs
):
    """Compiles as the reference: Adam, cross-entropy + λ · MAE, accuracy.

    Extra keyword arguments go to `AuxiliaryModel.compile` (granularity,
    ema_alpha, jit_compile...).
    """
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss={PRIMARY: "sparse_categorical_crossentropy", RECONSTRUCTION: "mae"},
        loss_weights={RECONSTRUCTION: reconstruction_weight},
        metrics={PRIMARY: ["accuracy"]},
        censoring=censoring,
        **kwargs,
    )
    return model


def waveform_classifier(model, frontend, name="waveform_genre_classifier"):
    """Serving model: raw mono waveforms ``(batch, samples)`` of any length →
    genre probabilities, with the log-mel ``frontend`` as its first layer.

    ``model`` is a trained `genre_lstm`; the returned functional model shares
    its weights and outputs only the primary (genre) head.
    """
    wave = keras.Input((None,), name="waveform")
    return keras.Model(wave, model(frontend(wave))[PRIMARY], name=name)
