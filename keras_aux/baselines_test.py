"""MAXL baselines: Random and K-Means auxiliary labels checked against numpy,
the label table's run-time lookup, and a short fit with re-clustering."""

import sys
from unittest import mock

import keras
import numpy as np

from keras_aux.architectures import mlp_backbone, multitask_network
from keras_aux.baselines import (
    AuxiliaryLabelTable,
    KMeansRelabel,
    autoencoder,
    kmeans_auxiliary_labels,
    random_auxiliary_labels,
)
from keras_aux.losses import FocalLoss
from keras_aux.testing import TestCase


def block_of(aux, psi):
    """Independent numpy: the primary class owning each auxiliary class."""
    edges = np.cumsum(psi)
    return np.searchsorted(edges, aux, side="right")


def blobs(centres, per_blob, seed=0, scale=0.1):
    rng = np.random.default_rng(seed)
    points = [c + scale * rng.normal(size=(per_blob, len(c))) for c in np.asarray(centres, float)]
    return np.concatenate(points), np.repeat(np.arange(len(centres)), per_blob)


class RandomLabelsTest(TestCase):
    def test_inside_block_balanced_and_deterministic(self):
        psi = [1, 3, 2, 4]
        rng = np.random.default_rng(0)
        primary = rng.integers(0, 4, size=203)
        labels = random_auxiliary_labels(primary, psi, seed=7)
        self.assertEqual(labels.dtype, np.int64)
        np.testing.assert_array_equal(block_of(labels, psi), primary)
        starts = np.concatenate([[0], np.cumsum(psi)])
        for i, size in enumerate(psi):
            counts = np.bincount(labels[primary == i] - starts[i], minlength=size)
            self.assertEqual(len(counts), size)
            self.assertLessEqual(counts.max() - counts.min(), 1)
        np.testing.assert_array_equal(labels, random_auxiliary_labels(primary, psi, seed=7))
        self.assertFalse(np.array_equal(labels, random_auxiliary_labels(primary, psi, seed=8)))
        # Column labels (N, 1) are accepted.
        np.testing.assert_array_equal(labels, random_auxiliary_labels(primary[:, None], psi, 7))

    def test_matches_the_documented_procedure(self):
        psi, primary = [2, 3], np.array([1, 0, 1, 1, 0, 1, 0, 1])
        expected = np.empty(len(primary), dtype=np.int64)
        for i, start in enumerate([0, 2]):
            order = np.random.default_rng([5, i]).permutation(np.flatnonzero(primary == i))
            expected[order] = start + np.arange(len(order)) % psi[i]
        np.testing.assert_array_equal(random_auxiliary_labels(primary, psi, seed=5), expected)

    def test_bad_inputs_raise(self):
        with self.assertRaisesRegex(ValueError, r"in \[0, 2\)"):
            random_auxiliary_labels([0, 2], [1, 1])
        with self.assertRaisesRegex(ValueError, "ints"):
            random_auxiliary_labels([0.0, 1.0], [1, 1])
        with self.assertRaisesRegex(ValueError, "seed"):
            random_auxiliary_labels([0, 1], [1, 1], seed=-1)
        with self.assertRaisesRegex(ValueError, "psi"):
            random_auxiliary_labels([0, 1], [1, 0])


class KMeansLabelsTest(TestCase):
    def test_recovers_well_separated_clusters_inside_blocks(self):
        psi = [2, 3]
        x0, true0 = blobs([[0, 0], [10, 0]], 15, seed=1)
        x1, true1 = blobs([[0, 10], [10, 10], [-10, 10]], 10, seed=2)
        features = np.concatenate([x0, x1])
        primary = np.repeat([0, 1], [len(x0), len(x1)])
        truth = np.concatenate([true0, 2 + true1])
        perm = np.random.default_rng(3).permutation(len(primary))
        features, primary, truth = features[perm], primary[perm], truth[perm]
        labels = kmeans_auxiliary_labels(features, primary, psi, seed=0)
        np.testing.assert_array_equal(block_of(labels, psi), primary)
        # The same partition as the true blobs: one label per blob, distinct labels.
        pairs = set(zip(truth.tolist(), labels.tolist()))
        self.assertEqual(len(pairs), 5)
        self.assertEqual(len({t for t, _ in pairs}), 5)
        self.assertEqual(len({a for _, a in pairs}), 5)
        # Labels are numbered by first appearance within each primary class.
        for i, start in enumerate([0, 2]):
            seen = labels[primary == i]
            _, first = np.unique(seen, return_index=True)
            np.testing.assert_array_equal(seen[np.sort(first)], start + np.arange(psi[i]))

    def test_small_classes_and_degenerate_features(self):
        psi = [3, 2]
        primary = np.array([0, 1, 1, 0, 1, 1])
        features = np.zeros((6, 4, 2))  # identical rows, e.g. an untrained encoder
        labels = kmeans_auxiliary_labels(features, primary, psi, n_init=1)
        np.testing.assert_array_equal(block_of(labels, psi), primary)
        # Class 0 has 2 examples for 3 clusters: the block's first classes, in order.
        np.testing.assert_array_equal(labels[primary == 0], [0, 1])

    def test_bad_inputs_raise(self):
        with self.assertRaisesRegex(ValueError, "rows"):
            kmeans_auxiliary_labels(np.zeros((3, 2)), [0, 1], [2, 2])
        with self.assertRaisesRegex(ValueError, "NaN"):
            kmeans_auxiliary_labels(np.full((2, 2), np.nan), [0, 1], [2, 2])
        with self.assertRaisesRegex(ValueError, "n_init"):
            kmeans_auxiliary_labels(np.zeros((2, 2)), [0, 1], [2, 2], n_init=0)
        with mock.patch.dict(sys.modules, {"sklearn.cluster": None}):
            with self.assertRaisesRegex(ImportError, r'pip install "keras-aux\[sklearn\]"'):
                kmeans_auxiliary_labels(np.zeros((2, 2)), [0, 1], [2, 2])


class AutoencoderTest(TestCase):
    def test_shapes_shared_encoder_and_training(self):
        model, encoder = autoencoder((6, 6), latent_dim=3, hidden_units=(16,), seed=0)
        x = np.random.default_rng(0).uniform(size=(32, 6, 6)).astype("float32")
        self.assertEqual(model.predict(x, verbose=0).shape, (32, 6, 6))
        self.assertEqual(encoder.predict(x, verbose=0).shape, (32, 3))
        self.assertIs(encoder.get_layer("latent"), model.get_layer("latent"))
        history = model.fit(x, x, epochs=5, batch_size=8, verbose=0).history
        self.assertLess(history["loss"][-1], history["loss"][0])
        again, _ = autoencoder((6, 6), latent_dim=3, hidden_units=(16,), seed=0)
        fresh, _ = autoencoder((6, 6), latent_dim=3, hidden_units=(16,), seed=0)
        for a, b in zip(again.get_weights(), fresh.get_weights()):
            np.testing.assert_array_equal(a, b)
        with self.assertRaisesRegex(ValueError, "latent_dim"):
            autoencoder((6, 6), latent_dim=0)


class LabelTableTest(TestCase):
    def test_dataset_reads_the_current_labels(self):
        psi = [2, 3]
        primary = np.array([0, 1, 1, 0, 1, 0, 1])
        first = random_auxiliary_labels(primary, psi, seed=0)
        table = AuxiliaryLabelTable(first, primary, psi)
        # The image of example k is the value k, so each batch row names its example.
        images = np.arange(7, dtype="float32")[:, None]
        dataset = table.dataset(images, batch_size=3, shuffle=True, seed=1)

        def read():
            seen = {}
            for x, y in dataset:
                self.assertEqual(set(y), {"primary", "auxiliary"})
                rows, primaries, auxiliaries = (
                    np.asarray(v) for v in (x, y["primary"], y["auxiliary"])
                )
                for k, p, aux in zip(rows[:, 0], primaries, auxiliaries):
                    self.assertEqual(aux.shape, (5,))
                    self.assertEqual(aux.sum(), 1.0)
                    seen[int(k)] = (int(p), int(aux.argmax()))
            self.assertEqual(sorted(seen), list(range(7)))
            return seen

        seen = read()
        for k in range(7):
            self.assertEqual(seen[k], (primary[k], first[k]))
        second = np.where(primary == 0, 1, 4)
        self.assertEqual(table.assign(second), int(np.sum(second != first)))
        np.testing.assert_array_equal(table.numpy(), second)
        seen = read()
        for k in range(7):
            self.assertEqual(seen[k], (primary[k], second[k]))

    def test_bad_labels_raise(self):
        table = AuxiliaryLabelTable([0, 2], [0, 1], [2, 2])
        with self.assertRaisesRegex(ValueError, "outside their primary class's block"):
            table.assign([2, 2])
        with self.assertRaisesRegex(ValueError, "outside"):
            table.assign([0, 4])
        with self.assertRaisesRegex(ValueError, "shape"):
            table.assign([0, 2, 3])
        with self.assertRaisesRegex(ValueError, "images"):
            table.dataset(np.zeros((3, 2)))
        np.testing.assert_array_equal(table.numpy(), [0, 2])


class KMeansRelabelTest(TestCase):
    def test_two_epoch_fit_reclusters_the_table(self):
        psi = [2, 2]
        rng = np.random.default_rng(0)
        n = 96
        primary = rng.integers(0, 2, size=n)
        images = rng.integers(0, 256, size=(n, 6, 6), dtype=np.uint8)
        # Every example starts at its block's first class, so clustering must change some.
        initial = np.where(primary == 0, 0, 2)
        table = AuxiliaryLabelTable(initial, primary, psi)
        relabel = KMeansRelabel(
            table, images, every=1, autoencoder_epochs=1, batch_size=32, latent_dim=4, n_init=2
        )
        model = multitask_network(mlp_backbone((6, 6), units=(16,), seed=0), psi)
        model.compile(optimizer="sgd", loss={"primary": FocalLoss(), "auxiliary": FocalLoss()})
        dataset = table.dataset(images.astype("float32") / 255.0, batch_size=32, seed=0)
        history = model.fit(dataset, epochs=2, callbacks=[relabel], verbose=0).history
        self.assertEqual([epoch for epoch, _ in relabel.changes], [0, 1])
        self.assertGreater(relabel.changes[0][1], 0)
        self.assertEqual(history["auxiliary_labels_changed"][0], relabel.changes[0][1])
        labels = table.numpy()
        np.testing.assert_array_equal(block_of(labels, psi), primary)
        self.assertFalse(np.array_equal(labels, initial))
        # The table holds exactly K-Means on the encoder's current codes.
        codes = relabel.encoder.predict(images.astype("float32") / 255.0, verbose=0)
        np.testing.assert_array_equal(
            labels, kmeans_auxiliary_labels(codes, primary, psi, seed=0, n_init=2)
        )

    def test_every_and_bad_arguments(self):
        table = AuxiliaryLabelTable([0, 2, 1, 3], [0, 1, 0, 1], [2, 2])
        images = np.random.default_rng(0).uniform(size=(4, 3, 3)).astype("float32")
        relabel = KMeansRelabel(table, images, every=2, autoencoder_epochs=0, n_init=1)
        for epoch in range(5):
            relabel.on_epoch_begin(epoch)
        self.assertEqual([epoch for epoch, _ in relabel.changes], [0, 2, 4])
        with self.assertRaisesRegex(ValueError, "every"):
            KMeansRelabel(table, images, every=0)
        with self.assertRaisesRegex(ValueError, "images"):
            KMeansRelabel(table, images[:3])
        with self.assertRaisesRegex(TypeError, "AuxiliaryLabelTable"):
            KMeansRelabel(np.zeros(4), images)
        with self.assertRaisesRegex(ValueError, "both"):
            KMeansRelabel(table, images, autoencoder_model=keras.Sequential())


class AssignBeforeEpochTest(TestCase):
    def test_assignment_in_on_epoch_begin_reaches_that_epoch(self):
        # An auxiliary head frozen to predict class 0 with near certainty: the epoch loss is
        # ~0 when the batches carry label 0 and large when they carry label 1.
        psi, n = [2, 1], 12
        table = AuxiliaryLabelTable(np.ones(n, dtype=int), np.zeros(n, dtype=int), psi)
        model = multitask_network(mlp_backbone((3,), units=(4,), seed=0), psi)
        head = model.get_layer("auxiliary")
        head.set_weights([np.zeros((4, 3), "float32"), np.array([10.0, -10.0, -10.0], "float32")])
        model.compile(
            optimizer=keras.optimizers.SGD(0.0),
            loss={"primary": FocalLoss(), "auxiliary": "categorical_crossentropy"},
        )

        class Flip(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                table.assign(np.full(n, epoch % 2))

        dataset = table.dataset(np.zeros((n, 3), "float32"), batch_size=4, seed=0)
        history = model.fit(dataset, epochs=3, callbacks=[Flip()], verbose=0).history
        losses = history["auxiliary_loss"]
        self.assertLess(losses[0], 1e-3)
        self.assertGreater(losses[1], 10.0)
        self.assertLess(losses[2], 1e-3)
