"""The LSTM genre classifier with a reconstruction auxiliary output (seed 001).

docs/reconstruction.md#network: dropout 0.3 on the input → BiLSTM(128) → BiLSTM(128), a
sequence ``h`` of width 256. Classifier: dropout → max over time → Dense 128
ReLU → dropout → Dense ``num_classes`` (softmax). Reconstruction: dropout on
``h`` → per-frame Dense ``num_mel_bins`` → clipped to [-1, 1]. The loss is
cross-entropy + λ · mean absolute error between the reconstruction and the
input *before* the input dropout: the model's ``input_targets`` maps the
reconstruction output to the ``mel`` input, and λ is the loss weight of
``"reconstruction"``.

`waveform_genre_lstm` is the same network behind a `keras_aux.layers.LogMelSpectrogram` first
layer: it trains on waveforms, the log-mel running on the accelerator with the rest of the step,
and its reconstruction target is that layer's output, held fixed
(docs/reconstruction.md#training-on-waveforms-log-mel-on-the-accelerator).

Reference: seed 001, "Improving generalization with a reconstruction
auxiliary loss" (AI Magazine); Le, Patterson & White (2018), "Supervised
autoencoders: Improving generalization performance with unsupervised
regularizers" (NeurIPS).
"""

import keras

from keras_aux.layers import LogMelSpectrogram
from keras_aux.models import AuxiliaryModel

PRIMARY = "genre"
RECONSTRUCTION = "reconstruction"
FRONTEND = "log_mel"  # the name of `waveform_genre_lstm`'s default front-end layer


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
    _check_arguments(num_classes, dropout)
    mel = keras.Input((frames, num_mel_bins), name="mel")
    return AuxiliaryModel(
        mel,
        _genre_heads(mel, num_classes, lstm_units, dense_units, dropout),
        name=name,
        primary=PRIMARY,
        input_targets={RECONSTRUCTION: "mel"},
    )


def waveform_genre_lstm(
    num_classes,
    frontend=None,
    lstm_units=128,
    dense_units=128,
    dropout=0.3,
    name="waveform_genre_lstm",
):
    """Builds the genre LSTM on raw waveforms: the log-mel ``frontend`` is its first layer.

    The network after the front end is `genre_lstm`'s, layer for layer (same names, same
    weights in the same order: `set_weights` moves weights between the two). The
    reconstruction target is the front end's output for the batch (``input_targets`` names
    the front-end layer), computed apart in inference mode under ``stop_gradient``: the
    features the network sees before its input dropout, as `genre_lstm`'s ``mel`` input, and
    no gradient flows into the front end (it has no weights anyway). The front end thus runs
    on the device, inside the train step, instead of in the ``tf.data`` pipeline; it runs
    twice per step (the forward pass and the target: on CPU, 8 % of a TensorFlow step at the
    reference's sizes, nothing measurable on JAX), on TensorFlow and on JAX
    (docs/reconstruction.md#training-on-waveforms-log-mel-on-the-accelerator).

    Args:
        num_classes: number of genres.
        frontend: a front-end layer without weights, waveforms ``(batch, samples)`` →
            features ``(batch, frames, bins)``; default
            ``LogMelSpectrogram(name="log_mel")`` (16 kHz, 128 bands: the features of the
            ``tf.data`` path). Give the one the features were computed with, e.g.
            ``LogMelSpectrogram(sampling_rate=8000, name="log_mel")``.
        lstm_units: units per direction of each BiLSTM (128: width 256).
        dense_units: units of the classifier's hidden Dense layer.
        dropout: rate of every dropout layer (0.3 in the reference).
        name: model name.

    Returns:
        An uncompiled `AuxiliaryModel` with input ``"waveform"`` (mono audio at the front end's
        rate, any length ≥ 1 sample) and outputs ``"genre"`` and ``"reconstruction"``
        (``(frames, bins)`` in [-1, 1]), whose reconstruction target is the front end's output.

    Reference: seed 001; Le, Patterson & White 2018; the log-mel features of
    docs/reconstruction.md#pre-processing.
    """
    _check_arguments(num_classes, dropout)
    if frontend is None:
        frontend = LogMelSpectrogram(name=FRONTEND)
    else:
        # A copy: a layer already called in another model would name that model's graph as
        # its output (keras-tuner builds a model per trial from the same front end).
        frontend = keras.layers.deserialize(keras.layers.serialize(frontend))
    waveform = keras.Input((None,), name="waveform")
    features = frontend(waveform)
    if len(features.shape) != 3:
        raise ValueError(
            f"`frontend` must map waveforms (batch, samples) to features (batch, frames, bins); "
            f"{frontend.name!r} gives shape {tuple(features.shape)}."
        )
    return AuxiliaryModel(
        waveform,
        _genre_heads(features, num_classes, lstm_units, dense_units, dropout),
        name=name,
        primary=PRIMARY,
        input_targets={RECONSTRUCTION: frontend.name},
    )


def _check_arguments(num_classes, dropout):
    if num_classes < 2:
        raise ValueError(f"`num_classes` must be >= 2; got {num_classes}.")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"`dropout` must be in [0, 1); got {dropout}.")


def _genre_heads(mel, num_classes, lstm_units, dense_units, dropout):
    """``{"genre", "reconstruction"}`` tensors of docs/reconstruction.md#network on ``mel``."""
    num_mel_bins = mel.shape[-1]
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
    return {PRIMARY: genre, RECONSTRUCTION: reconstruction}


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


def waveform_classifier(model, frontend=None, name="waveform_genre_classifier"):
    """In-process classifier of raw waveforms, with the log-mel ``frontend`` as its first layer.

    Args:
        model: a trained `genre_lstm`, or a trained `waveform_genre_lstm` (which holds its
            front end); the returned model shares its weights.
        frontend: the log-mel layer a `genre_lstm` was trained with (e.g.
            `keras_aux.layers.LogMelSpectrogram`); None for a `waveform_genre_lstm`.
        name: model name.

    Returns:
        A functional `keras.Model`: mono waveforms ``(batch, samples)`` **at the frontend's
        sampling rate**, of any length ≥ 1 sample → genre probabilities ``(batch, classes)``
        (the primary head only). It neither checks nor converts the sample rate: to serve audio
        from callers, export with `export_waveform_classifier`, whose signature takes the rate.

    Raises:
        ValueError: ``frontend`` is None but ``model`` takes features, or ``frontend`` is given
            but ``model`` takes waveforms (its front end would run twice).

    Reference: seed 001's classifier on the features of docs/reconstruction.md#pre-processing.
    """
    takes_waveforms = len(model.inputs[0].shape) == 2
    if frontend is None and not takes_waveforms:
        raise ValueError(
            f"{model.name!r} takes features of shape {tuple(model.inputs[0].shape)}: pass the "
            "front end it was trained with as `frontend`."
        )
    if frontend is not None and takes_waveforms:
        raise ValueError(
            f"{model.name!r} takes waveforms (its front end is its first layer): pass "
            "`frontend=None`, or it would compute the features of features."
        )
    wave = keras.Input((None,), name="waveform")
    features = wave if frontend is None else frontend(wave)
    return keras.Model(wave, model(features)[PRIMARY], name=name)


def _frontend_of(model, frontend):
    """The front end that turns ``model``'s waveforms into features: ``frontend`` when given,
    else the layer a `waveform_genre_lstm`'s reconstruction target names.

    Reference: seed 001's log-mel features; docs/reconstruction.md#pre-processing.
    """
    if frontend is not None:
        return frontend
    return model.get_layer(model.input_targets[RECONSTRUCTION])


def export_waveform_classifier(model, frontend, filepath, verbose=False):
    """Exports the genre classifier of raw audio at any sample rate as a TensorFlow SavedModel.

    The SavedModel has one endpoint, ``serve`` (also the ``serving_default`` signature):

    - inputs: ``waveform``, float32 ``(batch, samples)``: mono audio in [-1, 1], one clip per
      row (pad shorter clips or serve them one by one); ``sample_rate``, int32 scalar: the rate
      of ``waveform`` in Hz.
    - output: float32 ``(batch, classes)`` genre probabilities (the signature's output key is
      ``output_0``).
    - Audio at another rate than the frontend's is resampled in the graph with TF ops
      (`keras_aux.audio.decode.resample`, band-limited FFT resampling).
    - An empty waveform (0 samples) or a ``sample_rate`` ≤ 0 raises
      ``tf.errors.InvalidArgumentError`` with a message saying so; nothing is classified. A batch
      of no clips (``(0, samples)``, ``samples`` > 0) gives ``(0, classes)``.

    Usage::

        loaded = tf.saved_model.load(filepath)
        probabilities = loaded.serve(tf.constant(waves, tf.float32), tf.constant(8000))

    Args:
        model: a trained `genre_lstm`, or a trained `waveform_genre_lstm`.
        frontend: the `genre_lstm`'s log-mel layer, None for a `waveform_genre_lstm` (its own
            front end); the front end's ``sampling_rate`` attribute is the rate the model was
            trained at.
        filepath: the SavedModel directory.
        verbose: print the exported signature (`keras.export.ExportArchive.write_out`).

    Returns:
        The in-process `waveform_classifier` that was exported (input at the frontend's rate).

    Raises:
        MissingExtraError: TensorFlow is not installed (the message names its extras).
        RuntimeError: Keras's backend is not TensorFlow.

    Reference: seed 001's classifier, served on raw waveforms; docs/reconstruction.md#serving.
    """
    from keras_aux.audio.decode import resample
    from keras_aux.utils.optional import require_tensorflow

    # TensorFlow-only: the endpoint checks and resamples with TF ops around the model.
    tf = require_tensorflow(
        "to export a waveform SavedModel (keras_aux.architectures.export_waveform_classifier)"
    )
    if keras.backend.backend() != "tensorflow":
        raise RuntimeError(
            "export_waveform_classifier needs the TensorFlow backend (KERAS_BACKEND=tensorflow): "
            "its serving endpoint runs TF ops around the model. Keras's backend is "
            f"{keras.backend.backend()!r}; there, `waveform_classifier(model, frontend).export("
            "filepath)` exports the classifier of audio at the frontend's rate."
        )

    classifier = waveform_classifier(model, frontend)
    model_rate = int(_frontend_of(model, frontend).sampling_rate)

    def serve(waveform, sample_rate):
        samples = tf.shape(waveform)[1]
        checks = [
            tf.debugging.assert_positive(
                samples,
                message="serve: the waveform is empty (0 samples); there is nothing to classify",
            ),
            tf.debugging.assert_positive(
                sample_rate, message="serve: sample_rate must be a positive number of Hz"
            ),
        ]
        with tf.control_dependencies(checks):
            waveform = tf.identity(waveform)

        def resampled():
            return tf.map_fn(
                lambda clip: resample(clip, sample_rate, model_rate),
                waveform,
                fn_output_signature=tf.TensorSpec([None], tf.float32),
            )

        as_is = tf.logical_or(tf.equal(sample_rate, model_rate), tf.equal(tf.shape(waveform)[0], 0))
        waveform = tf.cond(as_is, lambda: tf.identity(waveform), resampled)
        return classifier(waveform, training=False)

    archive = keras.export.ExportArchive()
    archive.track(classifier)
    archive.add_endpoint(
        "serve",
        serve,
        input_signature=[
            tf.TensorSpec([None, None], tf.float32, name="waveform"),
            tf.TensorSpec([], tf.int32, name="sample_rate"),
        ],
    )
    archive.write_out(filepath, verbose=verbose)
    return classifier
