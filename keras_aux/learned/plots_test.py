"""Tests of `learned_weight_logs` and `plot_learned_weights`: which logs are learned
weights, and a PNG drawn from a real `fit`'s History.

Backend-neutral (no TensorFlow import): the JAX tier runs it under JAX."""

import os

import keras
import numpy as np

from keras_aux.learned import OLAux, learned_weight_logs, plot_learned_weights
from keras_aux.learned.metabalance_test import data
from keras_aux.models.backends_test import linear_model
from keras_aux.testing import TestCase


class LearnedWeightLogsTest(TestCase):
    def test_groups_each_kind_of_weight_by_task(self):
        logs = {
            "loss": [3.0, 2.0],
            "label_loss": [1.0, 0.5],
            "recon_loss": [2.0, 1.5],
            "val_label_loss": [1.1, 0.6],
            "label_weight": [1.0, 1.2],
            "recon_weight": [1.0, 0.8],
            "recon_ol_aux_weight": [1.0, 0.9],
            "recon_auxinash_power": [1.0, 1.1],
            "val_recon_weight": [9.0, 9.0],  # a validation log: not a learned weight
            "learning_rate_weight": [5.0, 5.0],  # no task "learning_rate"
            "recon_cosine": [0.1, 0.2],
        }
        found = learned_weight_logs(logs)
        self.assertEqual(
            found,
            {
                "_auxinash_power": {"recon": [1.0, 1.1]},
                "_ol_aux_weight": {"recon": [1.0, 0.9]},
                "_weight": {"label": [1.0, 1.2], "recon": [1.0, 0.8]},
            },
        )
        self.assertEqual(learned_weight_logs({"loss": [1.0], "label_loss": [1.0]}), {})

    def test_draws_the_weights_of_a_real_fit(self):
        x, y = data(32)
        model = linear_model(aux_tasks=("recon", "extra"))
        model.compile(
            keras.optimizers.SGD(0.05),
            loss="mse",
            censoring=OLAux(num_auxiliary=2, learning_rate=0.1, interval=2),
        )
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
        found = learned_weight_logs(history)
        self.assertEqual(list(found), ["_ol_aux_weight"])
        self.assertEqual(sorted(found["_ol_aux_weight"]), ["extra", "recon"])
        for task, values in found["_ol_aux_weight"].items():
            self.assertAllClose(values, history.history[f"{task}_ol_aux_weight"])
        # Four steps of two per interval: the weights moved.
        self.assertGreater(abs(found["_ol_aux_weight"]["recon"][-1] - 1.0), 1e-4)
        path = os.path.join(self.get_temp_dir(), "weights.png")
        self.assertEqual(plot_learned_weights(history, path), path)
        import matplotlib.image

        image = matplotlib.image.imread(path)
        self.assertEqual(image.shape[:2], (320, 420))  # one panel: 4.2 × 3.2 in at 100 dpi

    def test_bad_inputs_are_named(self):
        path = os.path.join(self.get_temp_dir(), "none.png")
        with self.assertRaisesRegex(ValueError, "no learned weight"):
            plot_learned_weights({"loss": [1.0], "label_loss": [1.0]}, path)
        self.assertFalse(os.path.exists(path))
        with self.assertRaisesRegex(ValueError, "History or its"):
            learned_weight_logs(np.zeros(3))
