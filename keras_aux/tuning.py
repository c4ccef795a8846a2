"""keras-tuner search over the auxiliary-learning knobs: λ per auxiliary
output (log scale), the censoring mode, its granularity and the EMA α.

Works with every keras-tuner tuner (RandomSearch, Hyperband,
BayesianOptimization); the objective is a validation metric of the primary
task (`primary_objective`).

Reference: Lemaire (2018), "Auxiliary tasks in deep learning: projecting the
auxiliary gradient" (λ, mode and α grids of the synthetic experiment);
O'Malley et al. (2019), KerasTuner.
"""

import keras

from keras_aux import censoring
from keras_aux.models import AuxiliaryModel
from keras_aux.utils.optional import require

# Subclassed below, so imported with the module: `import keras_aux.tuning` is what needs the
# `tuning` extra (which also installs scikit-learn and scipy for BayesianOptimization).
keras_tuner = require(
    "keras_tuner", extra="tuning", purpose="for keras_aux.tuning", package="keras-tuner"
)


def primary_objective(primary, metric="loss", direction=None):
    """``keras_tuner.Objective`` on the primary output's validation metric.

    Args:
        primary: the primary output's name.
        metric: ``"loss"`` or a compiled metric name (``"accuracy"``...).
        direction: ``"min"`` / ``"max"``; inferred for losses (min) and
            accuracies (max) when None.
    """
    if direction is None:
        if metric.endswith("loss") or metric.endswith("error"):
            direction = "min"
        elif "acc" in metric or metric.startswith("auc"):
            direction = "max"
        else:
            raise ValueError(f"Give the direction ('min' or 'max') of metric {metric!r}.")
    return keras_tuner.Objective(f"val_{primary}_{metric}", direction)


class AuxiliaryHyperModel(keras_tuner.HyperModel):
    """Builds and compiles an `AuxiliaryModel` for each trial.

    Args:
        build_model: ``build_model(hp) -> AuxiliaryModel`` (uncompiled); it may
            define hyperparameters of its own.
        loss: the per-output losses (as in `AuxiliaryModel.compile`).
        optimizer: a callable returning a fresh optimizer for each trial
            (default Adam 1e-3).
        metrics: compiled metrics (as in `AuxiliaryModel.compile`).
        lambda_range: ``(min, max)`` of each auxiliary weight, log sampling.
        modes: censoring modes to choose from.
        granularities: granularities to choose from.
        alphas: EMA constants to choose from (1 = no averaging), searched only
            for the modes that compare with the primary gradient.
        compile_kwargs: any other `compile` keyword (``jit_compile``...).

    Reference: Lemaire 2018 (the searched quantities); KerasTuner.
    """

    def __init__(
        self,
        build_model,
        loss,
        optimizer=None,
        metrics=None,
        lambda_range=(1e-2, 1e2),
        modes=("multitask", "projection", "unweighted_cosine", "weighted_cosine"),
        granularities=("global",),
        alphas=(1.0, 0.1, 0.01),
        compile_kwargs=None,
        name=None,
        tunable=True,
    ):
        super().__init__(name=name, tunable=tunable)
        if not callable(build_model):
            raise ValueError("`build_model` must be a callable `build_model(hp)`.")
        low, high = lambda_range
        if not 0 < low < high:
            raise ValueError(
                f"`lambda_range` must be (min, max) with 0 < min < max; got {lambda_range}."
            )
        for mode in modes:
            censoring.validate_mode(mode)
        for granularity in granularities:
            censoring.validate_granularity(granularity)
        for alpha in alphas:
            censoring.validate_alpha(alpha)
        if not modes or not granularities or not alphas:
            raise ValueError("`modes`, `granularities` and `alphas` must not be empty.")
        self.build_model = build_model
        self.loss = loss
        self.optimizer = optimizer or (lambda: keras.optimizers.Adam(1e-3))
        self.metrics = metrics
        self.lambda_range = (float(low), float(high))
        self.modes = list(modes)
        self.granularities = list(granularities)
        self.alphas = [float(a) for a in alphas]
        self.compile_kwargs = dict(compile_kwargs or {})

    def build(self, hp):
        """One trial's compiled model (keras-tuner calls this)."""
        model = self.build_model(hp)
        if not isinstance(model, AuxiliaryModel):
            raise ValueError(
                f"`build_model` must return an AuxiliaryModel; got {type(model).__name__}."
            )
        low, high = self.lambda_range
        weights = {
            name: hp.Float(f"lambda_{name}", low, high, sampling="log")
            for name in model.auxiliary_names
        }
        mode = hp.Choice("censoring", self.modes)
        # α only where the mode reads the primary gradient it averages
        # (not multitask or single task, which refuse an average).
        ema_alpha = 1.0
        averaged = [m for m in self.modes if censoring.get(m).uses_reference]
        if averaged:
            with hp.conditional_scope("censoring", averaged):
                if mode in averaged:
                    ema_alpha = hp.Choice("ema_alpha", self.alphas)
        model.compile(
            optimizer=self.optimizer(),
            loss=self.loss,
            loss_weights=weights,
            metrics=self.metrics,
            censoring=mode,
            granularity=hp.Choice("granularity", self.granularities),
            ema_alpha=ema_alpha,
            **self.compile_kwargs,
        )
        return model


def trial_table(tuner, num_trials=None):
    """Markdown table of the best trials: hyperparameters and objective score."""
    trials = tuner.oracle.get_best_trials(num_trials or len(tuner.oracle.trials))
    names = sorted({k for t in trials for k in t.hyperparameters.values})
    lines = [
        "| trial | " + " | ".join(names) + " | score |",
        "|---|" + "---|" * len(names) + "---:|",
    ]
    for t in trials:
        values = [t.hyperparameters.values.get(k) for k in names]
        shown = [f"{v:.4g}" if isinstance(v, float) else str(v) for v in values]
        score = "–" if t.score is None else f"{t.score:.5f}"
        lines.append(f"| {t.trial_id} | " + " | ".join(shown) + f" | {score} |")
    return "\n".join(lines) + "\n"
