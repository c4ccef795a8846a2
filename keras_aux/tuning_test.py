"""`AuxiliaryHyperModel` with the three keras-tuner tuners, on small real fits."""

import keras
import keras_tuner
import numpy as np
import pytest

from keras_aux import censoring
from keras_aux.architectures import auxiliary_mlp
from keras_aux.tuning import AuxiliaryHyperModel, primary_objective, trial_table


def small_problem():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = {"primary": np.tanh(x[:, :2]), "auxiliary": np.tanh(x[:, 1:3])}
    return x, y


def hypermodel(**kwargs):
    return AuxiliaryHyperModel(
        lambda hp: auxiliary_mlp(6, 2, hidden=(hp.Choice("units", [4, 8]),), seed=0),
        loss="mse",
        **kwargs,
    )


@pytest.mark.parametrize(
    "tuner_class", [keras_tuner.RandomSearch, keras_tuner.BayesianOptimization]
)
def test_search_runs_two_trials_and_reports(tmp_path, tuner_class):
    x, y = small_problem()
    tuner = tuner_class(
        hypermodel(alphas=(1.0, 0.1)),
        objective=primary_objective("primary"),
        max_trials=2,
        directory=str(tmp_path),
        project_name="t",
        seed=1,
    )
    tuner.search(x, y, validation_data=(x, y), epochs=2, verbose=0)
    assert len(tuner.oracle.trials) == 2
    best = tuner.get_best_hyperparameters(1)[0].values
    assert 0.01 <= best["lambda_auxiliary"] <= 100.0
    assert best["censoring"] in ("multitask", "projection", "unweighted_cosine", "weighted_cosine")
    assert best["units"] in (4, 8)
    # α is searched only for the modes that compare with the primary gradient.
    if best["censoring"] == "multitask":
        assert "ema_alpha" not in best
    else:
        assert best["ema_alpha"] in (1.0, 0.1)
    model = tuner.get_best_models(1)[0]
    censor = model.censor
    if isinstance(censor, censoring.MovingAverage):
        assert censor.alpha == best["ema_alpha"]
        censor = censor.censor
    assert isinstance(censor, censoring.MODE_CLASSES[best["censoring"]])
    assert model._tasks.weights["auxiliary"] == pytest.approx(best["lambda_auxiliary"])
    table = trial_table(tuner)
    assert table.count("\n") == 4 and "lambda_auxiliary" in table


def test_hyperband(tmp_path):
    x, y = small_problem()
    tuner = keras_tuner.Hyperband(
        hypermodel(),
        objective=primary_objective("primary"),
        max_epochs=2,
        directory=str(tmp_path),
        seed=1,
    )
    tuner.search(x, y, validation_data=(x, y), verbose=0)
    assert tuner.oracle.get_best_trials(1)[0].score is not None


def test_objectives_and_bad_arguments():
    assert primary_objective("genre", "accuracy").direction == "max"
    assert primary_objective("primary").name == "val_primary_loss"
    with pytest.raises(ValueError, match="direction"):
        primary_objective("primary", "f1")
    with pytest.raises(ValueError, match="lambda_range"):
        hypermodel(lambda_range=(0.0, 1.0))
    with pytest.raises(ValueError, match="Unknown censoring mode"):
        hypermodel(modes=("cosine",))
    with pytest.raises(ValueError, match="AuxiliaryModel"):
        AuxiliaryHyperModel(lambda hp: keras.Sequential([keras.layers.Dense(1)]), loss="mse").build(
            keras_tuner.HyperParameters()
        )
