"""`input_targets` naming a layer of a functional model: the target is that layer's output for
the batch, in inference mode and under ``stop_gradient``; what cannot be such a target is
refused with a clear error. Runs on TensorFlow and on JAX."""

import keras
import numpy as np

from keras_aux import AuxiliaryModel, AuxiliaryTrainer
from keras_aux.testing import TestCase

N_FEATURES = 6


def tanh_front_model(dropout=0.0, name="tanh_front"):
    """x → tanh (the weightless "front" layer) → [dropout] → Dense trunk → label and
    reconstruction heads; the reconstruction's target is the front layer's output."""
    init = keras.initializers.GlorotUniform(seed=0)
    x = keras.Input((N_FEATURES,), name="features")
    front = keras.layers.Activation("tanh", name="front")(x)
    h = keras.layers.Dropout(dropout, name="front_dropout")(front)
    h = keras.layers.Dense(8, activation="tanh", kernel_initializer=init, name="trunk")(h)
    outputs = {
        "label": keras.layers.Dense(3, activation="softmax", kernel_initializer=init)(h),
        "reconstruction": keras.layers.Dense(N_FEATURES, kernel_initializer=init)(h),
    }
    return AuxiliaryModel(
        x, outputs, name=name, primary="label", input_targets={"reconstruction": "front"}
    )


def compile_model(model):
    return model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss={"label": "sparse_categorical_crossentropy", "reconstruction": "mae"},
        loss_weights={"reconstruction": 0.5},
    )


def make_data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n).astype("int32")
    x = (2.0 * rng.normal(size=(n, N_FEATURES)) + y[:, None]).astype("float32")
    return x, y


def target_and_input_gradient(model, x):
    """The reconstruction target `model` computes for ``x``, and the gradient of its sum with
    respect to ``x`` (zeros where no gradient flows), on the current backend."""
    if keras.backend.backend() == "jax":
        import jax

        def summed(inputs):
            target = model._targets_by_task(inputs, None, ["reconstruction"])["reconstruction"]
            return keras.ops.sum(target)

        target = model._targets_by_task(x, None, ["reconstruction"])["reconstruction"]
        return np.asarray(target), np.asarray(jax.grad(summed)(jax.numpy.asarray(x)))
    import tensorflow as tf

    inputs = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(inputs)
        target = model._targets_by_task(inputs, None, ["reconstruction"])["reconstruction"]
        total = tf.reduce_sum(target)
    gradient = tape.gradient(total, inputs)
    gradient = np.zeros_like(x) if gradient is None else gradient.numpy()
    return target.numpy(), gradient


class LayerTargetTest(TestCase):
    def test_target_is_the_layer_output_and_its_loss_the_mae_to_it(self):
        x, y = make_data()
        model = tanh_front_model()
        compile_model(model)
        self.assertEqual(model.input_targets, {"reconstruction": "front"})
        result = model.evaluate(x, y, batch_size=32, return_dict=True, verbose=0)
        reconstruction = model.predict(x, verbose=0)["reconstruction"]
        # Against the input it would be far off; against tanh(x), computed here, it is equal.
        expected = np.mean(np.abs(reconstruction - np.tanh(x)))
        self.assertAllClose(result["reconstruction_loss"], expected, atol=1e-5)
        self.assertGreater(abs(np.mean(np.abs(reconstruction - x)) - expected), 0.1)

    def test_no_gradient_flows_into_the_target(self):
        x, _ = make_data(8)
        target, gradient = target_and_input_gradient(tanh_front_model(), x)
        self.assertAllClose(target, np.tanh(x), atol=1e-6)
        # Without stop_gradient this would be 1 − tanh²(x), nowhere zero.
        self.assertAllClose(gradient, np.zeros_like(x), atol=0.0)

    def test_target_is_taken_in_inference_mode(self):
        # A dropout between the input and the named layer would otherwise give a second,
        # different mask: the target is the clean tensor, as an input target is.
        x = keras.Input((N_FEATURES,), name="features")
        noisy = keras.layers.Dropout(0.5, name="noisy")(x)
        h = keras.layers.Dense(4)(noisy)
        model = AuxiliaryModel(
            x,
            {"label": keras.layers.Dense(2)(h), "reconstruction": keras.layers.Dense(6)(h)},
            primary="label",
            input_targets={"reconstruction": "noisy"},
        )
        features = make_data(16)[0]
        target = model._targets_by_task(features, None, ["reconstruction"])["reconstruction"]
        self.assertAllClose(target, features, atol=0.0)

    def test_fit_equals_fit_with_the_target_given_in_y(self):
        x, y = make_data(32)
        model = tanh_front_model()
        twin = tanh_front_model(name="twin")
        twin.set_weights(model.get_weights())
        compile_model(model)
        compile_model(twin)
        mine = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0).history
        given = {"label": y, "reconstruction": np.tanh(x)}
        theirs = twin.fit(x, given, batch_size=8, epochs=2, shuffle=False, verbose=0).history
        self.assertLess(mine["loss"][-1], mine["loss"][0])
        self.assertAllClose(mine["loss"], theirs["loss"], atol=1e-5)
        for a, b in zip(model.get_weights(), twin.get_weights()):
            self.assertAllClose(a, b, atol=1e-5)

    def test_dict_inputs(self):
        a = keras.Input((3,), name="a")
        b = keras.Input((2,), name="b")
        joined = keras.layers.Concatenate(name="joined")([a, b])
        h = keras.layers.Dense(4)(joined)
        model = AuxiliaryModel(
            {"a": a, "b": b},
            {"label": keras.layers.Dense(2)(h), "reconstruction": keras.layers.Dense(5)(h)},
            primary="label",
            input_targets={"reconstruction": "joined"},
        )
        compile_model(model)
        rng = np.random.default_rng(0)
        x = {"a": rng.normal(size=(8, 3)), "b": rng.normal(size=(8, 2))}
        x = {k: v.astype("float32") for k, v in x.items()}
        result = model.evaluate(x, np.zeros(8, "int32"), return_dict=True, verbose=0)
        reconstruction = model.predict(x, verbose=0)["reconstruction"]
        expected = np.mean(np.abs(reconstruction - np.concatenate([x["a"], x["b"]], axis=1)))
        self.assertAllClose(result["reconstruction_loss"], expected, atol=1e-5)

    def test_save_load_clone_keep_the_layer_target(self):
        x, y = make_data(16)
        model = tanh_front_model()
        compile_model(model)
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        revived = self.run_serialization_test(model)
        self.assertEqual(revived.input_targets, {"reconstruction": "front"})
        restored = self.run_model_saving_test(model, x)
        self.assertEqual(restored.input_targets, {"reconstruction": "front"})
        self.assertAllClose(
            restored.evaluate(x, y, return_dict=True, verbose=0)["reconstruction_loss"],
            model.evaluate(x, y, return_dict=True, verbose=0)["reconstruction_loss"],
            atol=1e-6,
        )
        restored.fit(x, y, batch_size=8, epochs=1, verbose=0)  # trains after loading
        clone = keras.models.clone_model(model)
        self.assertEqual(clone.input_targets, {"reconstruction": "front"})

    def test_bad_names_are_refused_and_a_shared_layer_gives_its_first_call(self):
        x = keras.Input((N_FEATURES,), name="features")
        hidden = keras.layers.Dense(4, name="hidden")(x)
        outputs = {
            "label": keras.layers.Dense(2)(hidden),
            "reconstruction": keras.layers.Dense(4)(hidden),
        }
        with self.assertRaisesRegex(ValueError, r"'nope'.* is not an input nor a layer"):
            AuxiliaryModel(x, outputs, primary="label", input_targets={"reconstruction": "nope"})
        # A layer behind weights is no fixed function of the inputs.
        with self.assertRaisesRegex(ValueError, r"layer 'hidden'.*hold weights.*hidden/kernel"):
            AuxiliaryModel(x, outputs, primary="label", input_targets={"reconstruction": "hidden"})

        # A layer the graph calls twice: the target is the output of its first call.
        shared = keras.layers.Activation("tanh", name="shared")
        a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
        h = keras.layers.Add()([shared(a), shared(b)])
        twice = {"label": keras.layers.Dense(2)(h), "reconstruction": keras.layers.Dense(3)(h)}
        model = AuxiliaryModel(
            [a, b], twice, primary="label", input_targets={"reconstruction": "shared"}
        )
        first, second = make_data(4)[0][:, :3], make_data(4, seed=1)[0][:, :3]
        target = model._targets_by_task([first, second], None, ["reconstruction"])
        self.assertAllClose(target["reconstruction"], np.tanh(first), atol=1e-6)

    def test_a_subclassed_model_cannot_name_a_layer(self):
        class Subclassed(AuxiliaryTrainer, keras.Model):
            def __init__(self, **kwargs):
                super().__init__(
                    primary="label", input_targets={"reconstruction": "front"}, **kwargs
                )
                self.front = keras.layers.Activation("tanh", name="front")
                self.label = keras.layers.Dense(3, activation="softmax")
                self.reconstruction = keras.layers.Dense(N_FEATURES)

            def call(self, x):
                h = self.front(x)
                return {"label": self.label(h), "reconstruction": self.reconstruction(h)}

        model = Subclassed()
        compile_model(model)
        x, y = make_data(8)
        with self.assertRaisesRegex(
            ValueError, "names 'front', a layer of the subclassed model .* functional model"
        ):
            model.fit(x, y, verbose=0)
