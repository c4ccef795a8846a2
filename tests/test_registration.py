"""Every kind of model keras-aux saves loads in a fresh process after `import
keras_aux` alone, as a user's script would: functional and subclassed
auxiliary models with a censoring state, the genre LSTM with its log-mel
front end, and MAXL with its masked softmax and focal loss."""

import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from keras_aux import AuxiliaryModel, censoring
from keras_aux.architectures import compile_genre_lstm, genre_lstm, mlp_backbone
from keras_aux.layers import LogMelSpectrogram
from keras_aux.models import MAXL

LOAD = textwrap.dedent(
    """
    import sys
    import numpy as np
    import keras
    import keras_aux  # nothing else: it must register every class a saved model uses

    model = keras.saving.load_model(sys.argv[1])
    out = model.predict(np.load(sys.argv[2]), verbose=0)
    out = out[sys.argv[3]] if isinstance(out, dict) else out
    np.save(sys.argv[4], out)
    """
)


def load_in_fresh_process(tmp_path, model, x, output=None):
    path, x_path, out_path = (str(tmp_path / n) for n in ("m.keras", "x.npy", "out.npy"))
    model.save(path)
    np.save(x_path, x)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", LOAD, path, x_path, output or "", out_path],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return np.load(out_path)


def expected(model, x, output=None):
    out = model.predict(x, verbose=0)
    return out[output] if output else out


def test_auxiliary_model_with_moving_average(tmp_path):
    x = np.random.default_rng(0).normal(size=(8, 6)).astype("float32")
    inputs = keras.Input((6,), name="features")
    h = keras.layers.Dense(8, activation="relu")(inputs)
    model = AuxiliaryModel(
        inputs,
        {"label": keras.layers.Dense(3, activation="softmax")(h), "rec": keras.layers.Dense(6)(h)},
        primary="label",
        input_targets={"rec": "features"},
    )
    model.compile(
        "adam",
        loss={"label": "sparse_categorical_crossentropy", "rec": "mae"},
        censoring=censoring.PCGrad(censoring.Projection()),
        ema_alpha=0.5,
    )
    model.fit(x, np.zeros(8), verbose=0)
    got = load_in_fresh_process(tmp_path, model, x, "label")
    np.testing.assert_allclose(got, expected(model, x, "label"), atol=1e-6)


def test_genre_lstm_with_log_mel_front_end(tmp_path):
    frontend = LogMelSpectrogram(num_mel_bins=16, fft_length=256, sequence_stride=128)
    waves = keras.Input((2048,), name="waveform")
    trunk = genre_lstm(num_classes=3, num_mel_bins=16, lstm_units=4, dense_units=4)
    model = keras.Model(waves, trunk(frontend(waves))["genre"])
    x = np.random.default_rng(1).normal(size=(2, 2048)).astype("float32")
    got = load_in_fresh_process(tmp_path, model, x)
    np.testing.assert_allclose(got, expected(model, x), atol=1e-5)
    compile_genre_lstm(trunk, reconstruction_weight=1.0)  # the trunk alone compiles too


@pytest.mark.parametrize("order", [1, 2])
def test_maxl(tmp_path, order):
    psi = [2, 3]
    model = MAXL.from_backbone(mlp_backbone, (5,), psi, order=order, seed=0)
    model.compile()
    rng = np.random.default_rng(2)
    x = rng.normal(size=(16, 5)).astype("float32")
    model.fit(x, rng.integers(0, 2, 16), batch_size=8, epochs=2, verbose=0)
    got = load_in_fresh_process(tmp_path, model, x)
    np.testing.assert_allclose(got, expected(model, x), atol=1e-6)
