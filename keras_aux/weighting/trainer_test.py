"""The loss weightings in `AuxiliaryModel`: a real `fit` with each one and a
censoring method, uncertainty weighting's first step against NumPy, the
state saved and resumed, a skipped loss-scale step, and bad arguments.
Backend-neutral: runs on TensorFlow and on the JAX tier."""

import os

import keras
import numpy as np
import pytest

from keras_aux import weighting
from keras_aux.models import AuxiliaryModel
from keras_aux.testing import TestCase

N_FEATURES = 6
TASKS = ["label", "reconstruction", "parity"]
LOSSES = {"label": "sparse_categorical_crossentropy", "reconstruction": "mae", "parity": "mse"}


def build_model(seed=0, tasks=TASKS):
    init = keras.initializers.GlorotUniform(seed=seed)
    x = keras.Input((N_FEATURES,), name="features")
    h = keras.layers.Dense(8, activation="tanh", kernel_initializer=init, name="trunk")(x)
    heads = {
        "label": keras.layers.Dense(3, activation="softmax", kernel_initializer=init, name="lh"),
        "reconstruction": keras.layers.Dense(N_FEATURES, kernel_initializer=init, name="rh"),
        "parity": keras.layers.Dense(1, kernel_initializer=init, name="ph"),
    }
    outputs = {t: heads[t](h) for t in tasks}
    return AuxiliaryModel(x, outputs, primary="label", input_targets={"reconstruction": "features"})


def make_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, N_FEATURES)).astype("float32")
    y = {"label": (x[:, 0] > 0).astype("int32"), "parity": x[:, 1:2] * x[:, 2:3]}
    return x, y


def compile_model(model, loss_weighting, optimizer=None, tasks=TASKS, **kwargs):
    model.compile(
        optimizer=optimizer or keras.optimizers.Adam(0.01),
        loss={t: LOSSES[t] for t in tasks},
        loss_weighting=loss_weighting,
        **kwargs,
    )
    return model


def state_arrays(model):
    return [np.array(v.numpy()) for v in model.loss_weighting_holder.state_variables]


def parameter_arrays(model):
    return [np.array(v.numpy()) for v in model.loss_weighting_parameters_holder.state_variables]


@pytest.mark.parametrize("name", weighting.NAMES)
def test_fit_with_each_weighting_and_projection(name):
    keras.utils.set_random_seed(0)
    model = compile_model(build_model(), name, censoring="projection")
    x, y = make_data()
    history = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0).history
    steps = 3 * 4
    for t in TASKS:
        weights = np.asarray(history[f"{t}_weight"])
        assert weights.shape == (3,) and np.isfinite(weights).all() and (weights > 0).all()
    assert np.isfinite(history["loss"]).all()
    state = model.loss_weighting_state
    if name == "uncertainty":
        moved = parameter_arrays(model)[0]
        assert moved.shape == (3,) and not np.allclose(moved, -0.5)
        np.testing.assert_allclose(history["label_weight"][-1], 0.5 * np.exp(-moved[0]), rtol=0.1)
    elif name == "dwa":
        assert float(state["epochs"]) == 3.0
        assert not np.allclose(history["label_weight"][-1], 1.0)  # third epoch: dynamic
    elif name == "gradnorm":
        assert float(state["adam_step"]) == steps - 4  # learns from the second epoch on
        np.testing.assert_allclose(history["label_weight"][0], 1.0)
    elif name == "rlw":
        assert int(state["step"]) == steps
    elif name == "famo":
        assert float(state["adam_step"]) == steps - 1
    # The forward gradient path serves projection with K = 2 auxiliary tasks,
    # except for GradNorm, which reads each task's gradient.
    assert model.gradient_path == ("per_task" if name == "gradnorm" else "forward")


class WeightingTrainerTest(TestCase):
    def test_uncertainty_first_step_matches_numpy(self):
        tasks = ["label", "reconstruction"]
        model = build_model(tasks=tasks)
        lam, lr = 2.0, 0.1
        compile_model(
            model,
            "uncertainty",
            optimizer=keras.optimizers.SGD(lr),
            tasks=tasks,
            loss_weights={"reconstruction": lam},
            censoring="multitask",
        )
        x, y = make_data()
        y = {"label": y["label"]}
        out = model.predict(x, verbose=0)
        probs = np.asarray(out["label"], np.float64)
        label_loss = -np.mean(np.log(probs[np.arange(len(x)), y["label"]]))
        residual = np.asarray(out["reconstruction"], np.float64) - x
        recon_loss = np.mean(np.abs(residual))
        bias_before = np.array(model.get_layer("rh").bias.numpy())
        history = model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0).history

        s = np.array([-0.5, -0.5])
        omega = 1 / (2 * np.exp(s))
        np.testing.assert_allclose(history["label_weight"][0], omega[0], rtol=1e-5)
        np.testing.assert_allclose(history["reconstruction_weight"][0], omega[1], rtol=1e-5)
        # ∂/∂s_i of c_i (L_i / (2 e^{s_i}) + s_i / 2), c = (1, λ).
        grad_s = np.array([1.0, lam]) * (0.5 - np.array([label_loss, recon_loss]) * omega)
        np.testing.assert_allclose(parameter_arrays(model)[0], s - lr * grad_s, atol=1e-5)
        # The reconstruction head's bias takes λ ω_1 ∇MAE.
        grad_bias = lam * omega[1] * np.sign(residual).sum(axis=0) / residual.size
        np.testing.assert_allclose(
            model.get_layer("rh").bias.numpy(), bias_before - lr * grad_bias, atol=1e-5
        )

    def test_save_and_load_keeps_the_weighting_state(self):
        x, y = make_data()
        for name in ("famo", "uncertainty"):
            keras.utils.set_random_seed(0)
            model = compile_model(build_model(), name, censoring="unweighted_cosine")
            model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            path = os.path.join(self.get_temp_dir(), f"{name}.keras")
            model.save(path)
            restored = keras.saving.load_model(path)
            self.assertEqual(
                restored.loss_weighting.get_config(), model.loss_weighting.get_config()
            )
            for a, b in zip(state_arrays(model), state_arrays(restored), strict=True):
                np.testing.assert_array_equal(a, b)
            for a, b in zip(parameter_arrays(model), parameter_arrays(restored), strict=True):
                np.testing.assert_array_equal(a, b)
            # Both continue alike.
            model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            restored.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
            for a, b in zip(state_arrays(model), state_arrays(restored), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
            for a, b in zip(model.get_weights(), restored.get_weights(), strict=True):
                np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)

    def test_a_skipped_loss_scale_step_leaves_the_state(self):
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.01))
        # Multitask without the cosine metric would take the one-pass total,
        # which cannot tell a skipped step: the weighting makes it per task.
        model = compile_model(
            build_model(), "rlw", optimizer=optimizer, track_gradient_cosine=False
        )
        x, y = make_data(n=8)
        bad = x.copy()
        bad[0, 0] = np.inf
        model.fit(bad, y, batch_size=8, epochs=1, verbose=0)
        self.assertEqual(int(model.loss_weighting_state["step"]), 0)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        self.assertEqual(int(model.loss_weighting_state["step"]), 1)

    def test_compile_refuses_bad_weightings_and_records_the_choice(self):
        model = build_model()
        with pytest.raises(ValueError, match="Unknown loss weighting 'kendall'"):
            compile_model(model, "kendall")
        with pytest.raises(ValueError, match="loss_weighting"):
            compile_model(model, 0.5)
        with pytest.raises(ValueError, match="gradient_path='forward'"):
            compile_model(model, "gradnorm", censoring="projection", gradient_path="forward")
        compile_model(model, weighting.DWA(temperature=3.0, fix_primary=True))
        config = model.get_compile_config()
        revived = keras.saving.deserialize_keras_object(config["loss_weighting"])
        self.assertEqual(revived.get_config(), {"fix_primary": True, "temperature": 3.0})
        compile_model(model, None)
        self.assertIsNone(model.loss_weighting)
        self.assertEqual(model.loss_weighting_parameters_holder.state_variables, [])
