"""Censored training of a model with one primary output and auxiliary outputs.

- `AuxiliaryTrainer`: the train step, as a mixin for any `keras.Model`
  (``class MyModel(AuxiliaryTrainer, keras.Model)`` with your own ``call``
  returning a dict of outputs);
- `AuxiliaryModel`: the same step on a functional model, built like
  ``keras.Model(inputs, outputs)`` plus ``primary=``.

The backend-neutral logic is `keras_aux.models.base_trainer`; the step of the
current Keras backend comes from `keras_aux.models.backend` (TensorFlow or JAX),
as Keras picks its own trainer in ``keras/src/models/model.py``.

References:
    Lemaire (2018), "Auxiliary tasks in deep learning: projecting the auxiliary
    gradient" (projection, moving average of the primary gradient).
    Du et al. (2018), "Adapting Auxiliary Losses Using Gradient Similarity",
    arXiv:1812.02224 (unweighted / weighted cosine). See docs/censoring.md.
"""

import keras

from keras_aux.models.base_trainer import BaseAuxiliaryTrainer

_BACKEND = keras.backend.backend()
if _BACKEND == "tensorflow":
    from keras_aux.models.backend.tensorflow_trainer import (
        TensorFlowAuxiliaryTrainer as BackendAuxiliaryTrainer,
    )
elif _BACKEND == "jax":
    from keras_aux.models.backend.jax_trainer import JAXAuxiliaryTrainer as BackendAuxiliaryTrainer
else:

    class BackendAuxiliaryTrainer(BaseAuxiliaryTrainer):
        """Stands in on a backend keras-aux has no train step for."""

        def __init__(self, *args, **kwargs):
            raise RuntimeError(
                f"{type(self).__name__} trains on the TensorFlow and JAX backends; "
                f"KERAS_BACKEND is {_BACKEND!r}. Set KERAS_BACKEND=tensorflow or jax. (The "
                "censoring methods of keras_aux.censoring themselves run on any backend.)"
            )


class AuxiliaryTrainer(BackendAuxiliaryTrainer):
    """The censored train step, for any `keras.Model` with several outputs.

    Mix it in before `keras.Model`; ``call`` returns a dict of named outputs
    (or a list, with ``task_names``). Compile with one loss per output; the
    auxiliary losses' weights are the λ's; `fit`, `evaluate`, `predict`,
    `save` and `export` work as on any Keras model.

    ```python
    class TwoHeads(AuxiliaryTrainer, keras.Model):
        def __init__(self, **kwargs):
            super().__init__(primary="label", **kwargs)
            self.trunk = keras.layers.Dense(64, activation="relu")
            self.label = keras.layers.Dense(3, activation="softmax")
            self.reconstruction = keras.layers.Dense(20)

        def call(self, x):
            h = self.trunk(x)
            return {"label": self.label(h), "reconstruction": self.reconstruction(h)}

    model = TwoHeads(input_targets={"reconstruction": None})
    model.compile("adam", loss={"label": "sparse_categorical_crossentropy",
                                "reconstruction": "mae"}, censoring="projection")
    ```

    Args (keyword-only, besides the model's own):
        primary: the name of the primary output.
        input_targets: optional ``{output_name: input_name}``: those outputs
            are trained to reproduce that model input (``None`` for a model
            with one input), so ``y`` need not repeat ``x``. A target given
            explicitly in ``y`` takes precedence (denoising).
        task_names: the output names in order, for a ``call`` that returns a
            list; by default the keys of the loss dict.

    Runs on the TensorFlow and JAX backends (one trainer each, in
    `keras_aux.models.backend`), with the same updates on both.

    Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224). See docs/censoring.md.
    """


@keras.saving.register_keras_serializable(package="keras_aux")
class AuxiliaryModel(AuxiliaryTrainer, keras.Model):
    """A functional model with one primary output and N auxiliary outputs.

    Build it like a functional `keras.Model` whose outputs are a dict of named
    tensors (or a list: the output layers' names are the task names), name
    the primary one, and compile with per-output losses; the auxiliary
    losses' weights are the λ's. The train step is `AuxiliaryTrainer`'s; for
    a subclassed model with your own ``call``, mix `AuxiliaryTrainer` into
    `keras.Model` instead.

    Example:

    ```python
    x = keras.Input((20,), name="features")
    h = keras.layers.Dense(64, activation="relu")(x)
    model = AuxiliaryModel(
        x,
        {"label": keras.layers.Dense(3, activation="softmax")(h),
         "reconstruction": keras.layers.Dense(20)(h)},
        primary="label",
        input_targets={"reconstruction": "features"},
    )
    model.compile(
        optimizer="adam",
        loss={"label": "sparse_categorical_crossentropy", "reconstruction": "mae"},
        loss_weights={"reconstruction": 10.0},
        censoring="projection",
    )
    model.fit(features, labels)  # the reconstruction target is the input
    ```

    Args:
        inputs: functional inputs (tensor, list or dict).
        outputs: dict ``{task_name: tensor}``, or a list whose task names are
            the output layers' names.
        name: model name.
        primary: the name of the primary output (may be named later with
            `configure_tasks`, e.g. on a clone).
        input_targets: optional ``{output_name: input_name}`` (see
            `AuxiliaryTrainer`).

    Reference: Lemaire 2018; Du et al. 2018 (arXiv:1812.02224). See docs/censoring.md.
    """

    def __init__(
        self, inputs=None, outputs=None, name=None, *, primary=None, input_targets=None, **kwargs
    ):
        if inputs is None or outputs is None:
            raise TypeError(
                "AuxiliaryModel is the functional form: AuxiliaryModel(inputs, outputs, "
                "primary=...). For a subclassed model with its own `call`, write "
                "`class MyModel(keras_aux.AuxiliaryTrainer, keras.Model)`."
            )
        task_names = list(outputs) if isinstance(outputs, dict) else None
        kwargs.pop("task_names", None)
        super().__init__(
            inputs,
            outputs,
            name=name,
            primary=primary,
            input_targets=input_targets,
            task_names=task_names,
            **kwargs,
        )

    def _default_task_names(self):
        return list(self.output_names)

    def _input_names(self):
        return [t.name for t in self.inputs]

    def get_config(self):
        config = super().get_config()
        config.update(primary=self.primary, input_targets=dict(self.input_targets))
        return config
