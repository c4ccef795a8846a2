"""TensorFlow-only tests of `MAXL`: XLA against graph mode, a 2-replica
`MirroredStrategy` against one device, and the SavedModel export."""

import os

import keras
import tensorflow as tf

from keras_aux.maxl import MAXL
from keras_aux.maxl.model_test import PSI, build_networks, make_data
from keras_aux.testing import (
    TestCase,
    count_xla_executions,
    mirrored_strategy,
    requires_tensorflow_backend,
)


@requires_tensorflow_backend
class TensorFlowMAXLTest(TestCase):
    def compiled(self, seed=0):
        multitask, generator = build_networks(seed, generator_hidden=4)
        model = MAXL(multitask, generator, PSI)
        model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.05))
        return model

    def test_xla_matches_graph_mode(self):
        x, y = make_data(32)
        weights = []
        for jit in (False, True):
            multitask, generator = build_networks(3, generator_hidden=4)
            model = MAXL(multitask, generator, PSI, schedule="interleaved")
            model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.05), jit_compile=jit)
            if jit:
                with self.assertXlaRan(model) as xla:
                    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
                # One XLA program run per step (2 steps x 2 epochs; stage 2 runs inside).
                if xla.executions is not None:  # None: this TF leaves no profiler evidence
                    self.assertGreaterEqual(xla.executions, 4)
            else:
                with count_xla_executions() as xla:
                    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
                self.assertIn(xla.executions, (0, None))  # the reference really is graph mode
            weights.append(multitask.get_weights() + generator.get_weights())
        for a, b in zip(*weights):
            self.assertAllClose(a, b, atol=1e-5)

    def test_mirrored_strategy_equals_one_device(self):
        x, y = make_data(32)
        mirrored = mirrored_strategy()
        for order, schedule in ((2, "interleaved"), (1, "interleaved"), (2, "epoch")):
            case = f"order {order}, {schedule}"
            results = []
            for distributed in (False, True):
                strategy = mirrored if distributed else tf.distribute.get_strategy()
                with strategy.scope():
                    multitask, generator = build_networks(4, generator_hidden=4)
                    model = MAXL(multitask, generator, PSI, order=order, schedule=schedule)
                    model.compile(keras.optimizers.SGD(0.2), keras.optimizers.SGD(0.1))
                history = model.fit(
                    x,
                    y,
                    batch_size=16,
                    epochs=2,
                    shuffle=False,
                    verbose=0,
                    validation_data=(x[:24], y[:24]),
                )
                results.append((multitask.get_weights() + generator.get_weights(), history.history))
            (w1, h1), (w2, h2) = results
            for a, b in zip(w1, w2):
                self.assertAllClose(a, b, atol=1e-5, msg=case)
            for key in (
                "primary_loss",
                "entropy",
                "primary_loss_after_step",
                "gradient_cosine",
                "val_primary_accuracy",
                "val_auxiliary_usage",
                "val_auxiliary_entropy",
            ):
                self.assertAllClose(h1[key], h2[key], atol=1e-5, msg=f"{key}, {case}")

    def test_export_serves_the_primary_task(self):
        x, y = make_data(16)
        model = self.compiled(seed=7)
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "exported")
        model.export(path, verbose=False)
        loaded = tf.saved_model.load(path)  # kept: its variables die with it
        served = loaded.serve(tf.constant(x))
        self.assertEqual(served.shape, (16, len(PSI)))
        self.assertAllClose(served.numpy(), model.predict(x, verbose=0), atol=1e-6)
        self.assertAllClose(
            model.predict(x, verbose=0), model.multitask_network(x)["primary"], atol=1e-6
        )
