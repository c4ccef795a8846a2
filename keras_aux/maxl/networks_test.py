"""MAXL networks: backbone shapes, seeding, head separation, the label
generator's mask, `.keras` round trips and a short fit with focal loss."""

import keras
import numpy as np

from keras_aux.losses import FocalLoss
from keras_aux.maxl.networks import (
    BACKBONES,
    conv4_backbone,
    label_generator,
    mlp_backbone,
    multitask_network,
    single_task_network,
    vgg16_backbone,
)
from keras_aux.testing import TestCase

SMALL = (4, 8, 8, 8)  # conv4 widths cheap enough for the tests


def images(n, shape, seed=0):
    return np.random.default_rng(seed).uniform(size=(n, *shape)).astype("float32")


def layers_of(model, kind):
    return [layer for layer in model.layers if isinstance(layer, kind)]


def weights_equal(a, b):
    wa, wb = a.get_weights(), b.get_weights()
    return len(wa) == len(wb) and all(np.array_equal(x, y) for x, y in zip(wa, wb))


def masked_softmax(logits, primary, psi):
    """Independent numpy softmax over the block of each primary label."""
    starts = np.concatenate([[0], np.cumsum(psi)])
    out = np.zeros_like(logits, dtype=np.float64)
    for row, label in enumerate(primary):
        lo, hi = starts[label], starts[label + 1]
        z = logits[row, lo:hi] - logits[row, lo:hi].max()
        out[row, lo:hi] = np.exp(z) / np.exp(z).sum()
    return out


class BackboneTest(TestCase):
    def test_conv4_structure_and_shapes(self):
        model = conv4_backbone((28, 28, 1))
        convs = layers_of(model, keras.layers.Conv2D)
        self.assertEqual([c.filters for c in convs], [32, 64, 128, 256])
        self.assertEqual({c.kernel_size for c in convs}, {(3, 3)})
        self.assertEqual(len(layers_of(model, keras.layers.BatchNormalization)), 4)
        # 28 → 14 → 7 → 3 → 1: four pools, the last one reaching size 1.
        self.assertEqual(len(layers_of(model, keras.layers.MaxPooling2D)), 4)
        self.assertEqual(tuple(model.output.shape), (None, 256))
        for shape in [(28, 28), (28, 28, 1), (32, 32, 3)]:
            small = conv4_backbone(shape, filters=SMALL, seed=1)
            self.assertEqual(small.predict(images(2, shape), verbose=0).shape, (2, 8))

    def test_conv4_skips_pools_at_size_one(self):
        model = conv4_backbone((4, 4, 1), filters=(2, 2, 2, 2))
        # 4 → 2 → 1, then the last two pools are skipped.
        self.assertEqual(len(layers_of(model, keras.layers.MaxPooling2D)), 2)
        self.assertEqual(model.predict(images(3, (4, 4, 1)), verbose=0).shape, (3, 2))

    def test_vgg16_structure_and_shapes(self):
        full = vgg16_backbone((32, 32, 3))
        widths = [c.filters for c in layers_of(full, keras.layers.Conv2D)]
        self.assertEqual(widths, [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512])
        self.assertEqual(len(layers_of(full, keras.layers.BatchNormalization)), 13)
        self.assertEqual(len(layers_of(full, keras.layers.MaxPooling2D)), 5)
        self.assertEqual(tuple(full.output.shape), (None, 512))
        for shape, pools in [((28, 28, 1), 4), ((28, 28), 4), ((32, 32, 3), 5)]:
            narrow = vgg16_backbone(shape, width=1 / 16, seed=0)
            self.assertEqual(len(layers_of(narrow, keras.layers.MaxPooling2D)), pools)
            self.assertEqual(narrow.predict(images(2, shape), verbose=0).shape, (2, 32))

    def test_mlp_backbone(self):
        model = mlp_backbone((28, 28), units=(16, 8), seed=0)
        self.assertEqual(model.predict(images(2, (28, 28)), verbose=0).shape, (2, 8))
        self.assertIs(BACKBONES["mlp"], mlp_backbone)
        self.assertEqual(set(BACKBONES), {"conv4", "vgg16", "mlp"})

    def test_same_seed_same_weights(self):
        for build in [
            lambda s: conv4_backbone((8, 8, 1), filters=SMALL, seed=s),
            lambda s: vgg16_backbone((8, 8, 3), width=1 / 32, seed=s),
            lambda s: mlp_backbone((8, 8), units=(8, 8), seed=s),
            lambda s: multitask_network(mlp_backbone((8, 8), seed=s), [2, 3], 4, seed=s),
        ]:
            self.assertTrue(weights_equal(build(3), build(3)))
            self.assertFalse(weights_equal(build(3), build(4)))

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, "input_shape"):
            conv4_backbone((28,))
        with self.assertRaisesRegex(ValueError, "input_shape"):
            conv4_backbone((28, 28, 0))
        with self.assertRaisesRegex(ValueError, "input_shape"):
            conv4_backbone((None, 28, 1))
        with self.assertRaisesRegex(ValueError, "filters"):
            conv4_backbone((28, 28), filters=(8, 0))
        with self.assertRaisesRegex(ValueError, "width"):
            vgg16_backbone((32, 32, 3), width=0)
        with self.assertRaisesRegex(ValueError, "units"):
            mlp_backbone((4,), units=())
        with self.assertRaisesRegex(ValueError, "seed"):
            mlp_backbone((4,), seed=-1)


class HeadsTest(TestCase):
    def test_multitask_outputs_and_separate_heads(self):
        psi = [2, 3, 1]
        for shape in [(28, 28, 1), (32, 32, 3)]:
            model = multitask_network(conv4_backbone(shape, filters=SMALL, seed=0), psi, 6)
            out = model.predict(images(5, shape), verbose=0)
            self.assertEqual(set(out), {"primary", "auxiliary"})
            self.assertEqual(out["primary"].shape, (5, 3))
            self.assertEqual(out["auxiliary"].shape, (5, 6))
            for value in out.values():
                self.assertAllClose(value.sum(axis=1), np.ones(5), atol=1e-5)
            # Unmasked: the auxiliary head puts mass on every block.
            self.assertTrue((out["auxiliary"] > 0).all())
        names = {layer.name for layer in model.layers}
        self.assertTrue({"primary", "auxiliary", "primary_hidden", "auxiliary_hidden"} <= names)
        primary_vars = {id(v) for v in model.get_layer("primary_hidden").weights}
        auxiliary_vars = {id(v) for v in model.get_layer("auxiliary_hidden").weights}
        self.assertFalse(primary_vars & auxiliary_vars)
        # The backbone is one nested layer, addressable by its name.
        self.assertIsInstance(model.get_layer("conv4"), keras.Model)

    def test_linear_heads_without_head_units(self):
        model = multitask_network(mlp_backbone((6,), units=(8,)), [3, 3])
        dense = [layer.name for layer in layers_of(model, keras.layers.Dense)]
        self.assertEqual(sorted(dense), ["auxiliary", "primary"])

    def test_generator_is_mask_softmax_inside_the_block(self):
        psi = [2, 3, 1]
        backbone = conv4_backbone((28, 28), filters=SMALL, seed=2)
        model = label_generator(backbone, psi, head_units=5, seed=2)
        x = images(6, (28, 28))
        y = np.array([0, 1, 2, 1, 0, 2], dtype="int32")
        out = model.predict({"image": x, "primary_label": y}, verbose=0)
        self.assertEqual(out.shape, (6, 6))
        block = np.repeat(np.arange(3), psi)[None, :] == y[:, None]
        self.assertTrue(np.all(out[~block] == 0.0))
        self.assertAllClose(out.sum(axis=1), np.ones(6), atol=1e-6)
        logits_model = keras.Model(model.inputs, model.get_layer("generator_logits").output)
        logits = logits_model.predict({"image": x, "primary_label": y}, verbose=0)
        self.assertAllClose(out, masked_softmax(logits, y, psi), atol=1e-6)

    def test_single_task_network(self):
        model = single_task_network(mlp_backbone((8, 8), units=(8,)), 4, head_units=3)
        out = model.predict(images(3, (8, 8)), verbose=0)
        self.assertEqual(list(out), ["primary"])
        self.assertEqual(out["primary"].shape, (3, 4))

    def test_bad_heads_raise(self):
        backbone = mlp_backbone((4,))
        with self.assertRaisesRegex(ValueError, "psi"):
            multitask_network(backbone, [2, 0])
        with self.assertRaisesRegex(ValueError, "psi"):
            label_generator(backbone, [])
        with self.assertRaisesRegex(ValueError, "head_units"):
            multitask_network(backbone, [2, 2], head_units=0)
        with self.assertRaisesRegex(ValueError, "num_classes"):
            single_task_network(backbone, 0)
        with self.assertRaisesRegex(TypeError, "keras.Model"):
            multitask_network(keras.layers.Dense(3), [2, 2])
        inputs = keras.Input((4, 4, 1))
        unpooled = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
        with self.assertRaisesRegex(ValueError, "flat features"):
            multitask_network(unpooled, [2, 2])


class SavingAndFitTest(TestCase):
    def test_keras_round_trip_of_every_builder(self):
        psi = [2, 2]
        x = images(4, (8, 8, 1))
        y = np.array([0, 1, 1, 0], dtype="int32")
        self.run_model_saving_test(conv4_backbone((8, 8, 1), filters=SMALL, seed=0), x)
        self.run_model_saving_test(vgg16_backbone((8, 8, 1), width=1 / 32, seed=0), x)
        self.run_model_saving_test(
            multitask_network(conv4_backbone((8, 8, 1), filters=SMALL), psi, 4), x
        )
        generator = label_generator(conv4_backbone((8, 8, 1), filters=SMALL), psi)
        restored = self.run_model_saving_test(generator, {"image": x, "primary_label": y})
        self.assertEqual(restored.get_layer("auxiliary_label").psi, (2, 2))
        self.run_model_saving_test(single_task_network(mlp_backbone((8, 8, 1)), 2), x)

    def test_one_epoch_fit_with_focal_loss(self):
        psi = [3, 3]
        rng = np.random.default_rng(0)
        x = images(64, (12, 12, 1))
        primary = rng.integers(0, 2, size=64)
        auxiliary = rng.dirichlet(np.ones(3), size=64).astype("float32")
        soft = np.zeros((64, 6), dtype="float32")
        for row, label in enumerate(primary):
            soft[row, 3 * label : 3 * label + 3] = auxiliary[row]
        model = multitask_network(conv4_backbone((12, 12, 1), filters=SMALL, seed=0), psi, 8)
        model.compile(
            optimizer=keras.optimizers.SGD(0.01),
            loss={"primary": FocalLoss(), "auxiliary": FocalLoss()},
        )
        history = model.fit(
            x, {"primary": primary, "auxiliary": soft}, batch_size=16, epochs=1, verbose=0
        ).history
        self.assertEqual(set(history), {"loss", "primary_loss", "auxiliary_loss"})
        self.assertTrue(np.isfinite(history["loss"][0]))
        self.assertAllClose(
            history["loss"][0], history["primary_loss"][0] + history["auxiliary_loss"][0], 1e-4
        )


class BatchNormTest(TestCase):
    def test_statistics_follow_the_reference_networks(self):
        # PyTorch's BatchNorm2d defaults (momentum 0.1 → Keras 0.9, ε = 1e-5).
        for model in (conv4_backbone((8, 8), filters=(4, 4)), vgg16_backbone((8, 8), width=0.0625)):
            for layer in layers_of(model, keras.layers.BatchNormalization):
                self.assertEqual((layer.momentum, layer.epsilon), (0.9, 1e-5), layer.name)

    def test_inference_accuracy_after_a_short_run_matches_batch_statistics(self):
        # Four classes of 8×8 images that differ in brightness pattern; 32 steps of SGD.
        rng = np.random.default_rng(0)
        y = rng.integers(0, 4, 512)
        patterns = rng.normal(size=(4, 8, 8, 1)).astype("float32")
        x = (3.0 * patterns[y] + rng.normal(size=(512, 8, 8, 1)) + 2.0).astype("float32")
        model = single_task_network(conv4_backbone((8, 8, 1), filters=(8, 16), seed=0), 4, seed=0)
        model.compile(
            keras.optimizers.SGD(0.05, momentum=0.9), {"primary": "sparse_categorical_crossentropy"}
        )
        model.fit(x, {"primary": y}, batch_size=64, epochs=4, verbose=0, shuffle=False)
        inference = np.mean(np.argmax(model(x, training=False)["primary"], -1) == y)
        # Batch statistics, batch by batch, as during training.
        batch_statistics = np.mean(
            [
                np.argmax(model(x[i : i + 64], training=True)["primary"], -1) == y[i : i + 64]
                for i in range(0, 512, 64)
            ]
        )
        self.assertGreater(batch_statistics, 0.9)
        self.assertGreater(inference, batch_statistics - 0.05)
