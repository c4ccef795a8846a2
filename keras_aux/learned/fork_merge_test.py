"""Tests of `ForkMerge` (Jiang et al. 2023): one round recomputed in NumPy
from the reference's formulas (each branch's best epoch, the greedy λ, the
merged weights), the branch loss weights inside a real `fit`, a resumed run
equal bit for bit to an uninterrupted one, bad inputs, serialization, the plot.

Backend-neutral (no TensorFlow import): the JAX tier runs it under JAX."""

import functools
import glob
import os

import keras
import numpy as np

from keras_aux import AuxiliaryModel
from keras_aux.learned import BranchWeights, ForkMerge, plot_merge_weights
from keras_aux.learned.fork_merge import greedy_merge_weights, merge_variables
from keras_aux.learned.metabalance_test import data
from keras_aux.models.backends_test import linear_model
from keras_aux.testing import TestCase, requires_tensorflow

ALPHAS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)


def numpy_primary_loss(weights, x, y):
    """The primary task's validation MSE of the linear model, by hand."""
    h = x @ weights["trunk/kernel"] + weights["trunk/bias"]
    out = h @ weights["label/kernel"] + weights["label/bias"]
    return float(np.mean((out - y) ** 2))


def numpy_greedy(thetas, scores, loss, alphas=ALPHAS):
    """The reference's merge (thuml/ForkMerge `forkmerge.py`): rank by score,
    the best gets 1, each further branch α·sum(λ)/(i+1) for the α whose merge
    is strictly better than the best so far (starting at +inf), else 0."""
    ranked = sorted(range(len(scores)), key=lambda b: scores[b])
    lam = {b: 0.0 for b in ranked}
    lam[ranked[0]] = 1.0
    best = np.inf

    def merged():
        total = sum(lam.values())
        return {k: sum(lam[b] / total * thetas[b][k] for b in lam) for k in thetas[0]}

    for i, b in enumerate(ranked[1:]):
        chosen, upper = 0.0, sum(lam.values()) / (i + 1)
        for alpha in alphas:
            lam[b] = alpha * upper
            value = loss(merged())
            if value < best:
                best, chosen = value, lam[b]
        lam[b] = chosen
    return [lam[b] for b in range(len(scores))], merged()


class Recorder(keras.callbacks.Callback):
    """Each epoch's final weights by path (placed before ForkMerge, which
    replaces them at a merge)."""

    def __init__(self):
        super().__init__()
        self.epochs = []

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append({v.path: np.array(v.numpy(), np.float64) for v in self.model.weights})


class Interrupt(keras.callbacks.Callback):
    def __init__(self, after):
        super().__init__()
        self.after = after

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.after:
            raise RuntimeError("interrupted")


def compiled(seed=0, optimizer=None):
    model = linear_model(seed=seed, aux_tasks=("recon", "extra"))
    model.compile(
        optimizer or keras.optimizers.Adam(0.05),
        loss="mse",
        loss_weights={"recon": 0.5, "extra": 2.0},
        loss_weighting=BranchWeights(),
    )
    return model


def validation():
    x, y = data(n=16, seed=7)
    return x, {"label": y["label"]}


class ForkMergeRoundTest(TestCase):
    def test_one_round_matches_numpy_and_each_branch_trains_with_its_weights(self):
        x, y = data(n=32, seed=3)
        vx, vy = validation()
        model = compiled()
        recorder = Recorder()
        fork_merge = ForkMerge(
            (vx, vy),
            epochs_per_fork=2,
            branches=[["recon"], {"recon": 1.0, "extra": 0.5}],
        )
        history = model.fit(
            x,
            y,
            batch_size=8,
            epochs=6,
            shuffle=False,
            verbose=0,
            callbacks=[recorder, fork_merge],
        )
        # The loss weights ω of each branch, as the step used them.
        self.assertEqual(history.history["fork_merge_branch"], [0, 0, 1, 1, 2, 2])
        self.assertEqual(history.history["recon_weight"], [0, 0, 1, 1, 1, 1])
        self.assertEqual(history.history["extra_weight"], [0, 0, 0, 0, 0.5, 0.5])
        self.assertEqual(history.history["label_weight"], [1.0] * 6)
        # Each branch ends on its best epoch (restore_best, the default).
        loss = lambda w: numpy_primary_loss(w, vx, vy["label"])  # noqa: E731
        thetas, scores = [], []
        for b in range(3):
            candidates = recorder.epochs[2 * b : 2 * b + 2]
            values = [loss(w) for w in candidates]
            pick = 0 if values[0] <= values[1] else 1
            thetas.append(candidates[pick])
            scores.append(values[pick])
        lam, merged = numpy_greedy(thetas, scores, loss)
        got = [history.history[f"fork_merge_weight_{b}"] for b in range(3)]
        self.assertAllClose(got, [[w] for w in lam], atol=1e-6)
        self.assertEqual(len(fork_merge.merge_weights), 1)
        self.assertAllClose(fork_merge.merge_weights[0], lam, atol=1e-6)
        for v in model.weights:
            self.assertAllClose(v, merged[v.path], atol=1e-5, rtol=1e-5, msg=v.path)
        self.assertAllClose(
            history.history["fork_merge_label_loss"][0], loss(merged), atol=1e-5, rtol=1e-5
        )
        # The branches differ (their loss weights did), and the merge weighs more than one.
        self.assertGreater(
            np.abs(thetas[0]["trunk/kernel"] - thetas[2]["trunk/kernel"]).max(), 1e-3
        )

    def test_every_branch_restarts_from_the_merge_with_its_own_optimizer_state(self):
        x, y = data(n=32, seed=3)
        model = compiled(optimizer=keras.optimizers.Adam(0.05))
        starts = []

        class Starts(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                starts.append(
                    (
                        [np.array(v.numpy()) for v in self.model.weights],
                        int(self.model.optimizer.iterations.numpy()),
                    )
                )

        fork_merge = ForkMerge(validation(), epochs_per_fork=1, restore_best=False)
        model.fit(
            x,
            y,
            batch_size=8,
            epochs=4,
            shuffle=False,
            verbose=0,
            callbacks=[fork_merge, Starts()],
        )
        # Round 1: both branches start from θ0 at step 0; round 2 from the merge, each
        # branch at its own step count (4 steps an epoch).
        for a, b in zip(starts[0][0], starts[1][0]):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(starts[2][0], starts[3][0]):
            np.testing.assert_array_equal(a, b)
        self.assertEqual([s[1] for s in starts], [0, 0, 4, 4])


def squared_distance(theta, target):
    return float(np.sum((theta["w"] - target) ** 2))


def merged_criterion(values, loss, sign, weights):
    """``sign ·`` the loss of `merge_variables`'s merge (sign -1: a criterion to maximise)."""
    return sign * loss(dict(zip(("w", "b"), merge_variables(values, weights))))


class GreedyMergeTest(TestCase):
    def test_greedy_weights_and_merge_match_numpy_for_both_directions(self):
        rng = np.random.default_rng(4)
        alphas = (0.0, 0.25, 0.5, 1.0)
        for trial in range(6):
            thetas = [{"w": rng.normal(size=(3, 2)), "b": rng.normal(size=(2,))} for _ in range(4)]
            target = rng.normal(size=(3, 2))
            scores = list(rng.normal(size=4))

            loss = functools.partial(squared_distance, target=target)
            lam, merged = numpy_greedy(thetas, scores, loss, alphas)
            values = [[t["w"], t["b"]] for t in thetas]
            for mode, sign in (("min", 1.0), ("max", -1.0)):
                evaluate = functools.partial(merged_criterion, values, loss, sign)
                got, tried = greedy_merge_weights(
                    [sign * x for x in scores], evaluate, alphas, mode
                )
                self.assertAllClose(got, lam, atol=1e-12, msg=f"{trial} {mode}")
                self.assertEqual(len(tried), 3 * len(alphas))
                w, b = merge_variables(values, got)
                self.assertAllClose(w, merged["w"], atol=1e-12)
                self.assertAllClose(b, merged["b"], atol=1e-12)

    def test_batch_norm_statistics_are_merged(self):
        x_in = keras.Input((5,), name="x")
        h = keras.layers.BatchNormalization(name="norm")(keras.layers.Dense(4, name="trunk")(x_in))
        model = AuxiliaryModel(
            x_in,
            {
                "label": keras.layers.Dense(2, name="label")(h),
                "recon": keras.layers.Dense(3, name="recon")(h),
            },
            primary="label",
        )
        model.compile(keras.optimizers.SGD(0.05), loss="mse", loss_weighting=BranchWeights())
        x, y = data(n=32, seed=3)
        y = {"label": y["label"], "recon": y["recon"]}
        recorder = Recorder()
        history = model.fit(
            x,
            y,
            batch_size=8,
            epochs=2,
            shuffle=False,
            verbose=0,
            callbacks=[
                recorder,
                ForkMerge(
                    # One α: the first further branch always takes it (the best so far
                    # starts at +inf), so the merge is a real average.
                    validation(),
                    epochs_per_fork=1,
                    restore_best=False,
                    alphas=[0.5],
                ),
            ],
        )
        lam = np.array([history.history[f"fork_merge_weight_{b}"][0] for b in range(2)])
        for v in model.weights:
            expected = sum(w * e[v.path] for w, e in zip(lam, recorder.epochs)) / lam.sum()
            self.assertAllClose(v, expected, atol=1e-6, rtol=1e-6, msg=v.path)
        self.assertAllClose(sorted(lam), [0.5, 1.0])  # a real average of the two branches
        moving = "norm/moving_mean"
        self.assertIn(moving, recorder.epochs[0])
        self.assertGreater(np.abs(recorder.epochs[0][moving] - recorder.epochs[1][moving]).max(), 0)


class ForkMergeResumeTest(TestCase):
    def run_fit(self, model, callbacks, epochs=6):
        x, y = data(n=32, seed=3)
        return model.fit(
            x, y, batch_size=8, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks
        )

    def test_a_run_stopped_after_any_epoch_resumes_bit_identically(self):
        def fork_merge(directory=None):
            return ForkMerge(
                validation(), epochs_per_fork=2, backup_dir=directory, restore_best=True
            )

        reference = compiled(seed=1)
        callback = fork_merge()
        self.run_fit(reference, [callback], epochs=8)
        expected = [np.array(v.numpy()) for v in reference.weights]
        self.assertEqual(len(callback.merge_weights), 2)
        for stop in (1, 4):  # after a finished fork; mid-fork after a merge
            root = os.path.join(self.get_temp_dir(), f"stop{stop}")
            fm_dir, keras_dir = os.path.join(root, "fm"), os.path.join(root, "keras")
            first = compiled(seed=1)
            with self.assertRaisesRegex(RuntimeError, "interrupted"):
                self.run_fit(
                    first,
                    [
                        fork_merge(fm_dir),
                        keras.callbacks.BackupAndRestore(keras_dir),
                        Interrupt(stop),
                    ],
                    epochs=8,
                )
            self.assertTrue(os.path.exists(os.path.join(fm_dir, "fork_merge_state.npz")))
            resumed = compiled(seed=5)  # other initial weights: all comes from the backups
            callback = fork_merge(fm_dir)
            self.run_fit(resumed, [callback, keras.callbacks.BackupAndRestore(keras_dir)], epochs=8)
            for v, e in zip(resumed.weights, expected, strict=True):
                np.testing.assert_array_equal(np.array(v.numpy()), e, err_msg=f"stop {stop}")
            self.assertEqual(len(callback.merge_weights), 2)
            self.assertFalse(os.path.exists(os.path.join(fm_dir, "fork_merge_state.npz")))

    def test_resuming_at_the_wrong_epoch_raises(self):
        model = compiled()
        callback = ForkMerge(validation(), epochs_per_fork=1)
        self.run_fit(model, [callback], epochs=2)
        with self.assertRaisesRegex(ValueError, r"state is at epoch 2 but fit is at epoch 0"):
            self.run_fit(model, [callback], epochs=2)


class ForkMergeInputTest(TestCase):
    def test_bad_arguments_raise(self):
        v = validation()
        with self.assertRaisesRegex(ValueError, "needs `validation_data`"):
            ForkMerge(None)
        with self.assertRaisesRegex(ValueError, "`epochs_per_fork` must be an integer >= 1; got 0"):
            ForkMerge(v, epochs_per_fork=0)
        with self.assertRaisesRegex(ValueError, "`epochs_per_fork` must be an integer"):
            ForkMerge(v, epochs_per_fork=1.5)
        with self.assertRaisesRegex(ValueError, "`alphas` must be a non-empty sequence"):
            ForkMerge(v, alphas=[])
        with self.assertRaisesRegex(ValueError, "`alphas` must be .* got \\[0.5, -1\\]"):
            ForkMerge(v, alphas=[0.5, -1])
        with self.assertRaisesRegex(ValueError, "branch weight must be a finite number >= 0"):
            ForkMerge(v, branches=[{"recon": -1.0}])
        with self.assertRaisesRegex(ValueError, "Each branch must be a dict"):
            ForkMerge(v, branches=[3])
        with self.assertRaisesRegex(ValueError, "`mode` must be 'auto', 'min' or 'max'"):
            ForkMerge(v, mode="up")

    def fit(self, model, callback):
        x, y = data(n=16, seed=3)
        model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[callback])

    def test_bad_models_and_settings_raise_at_fit(self):
        plain = linear_model(aux_tasks=("recon",))
        plain.compile("sgd", loss="mse", loss_weighting="dwa")
        with self.assertRaisesRegex(ValueError, "compiled with .*BranchWeights.*DWA"):
            self.fit(plain, ForkMerge(validation(), epochs_per_fork=1))
        with self.assertRaisesRegex(ValueError, r"names \['rotation'\], which are not auxiliary"):
            self.fit(
                compiled(), ForkMerge(validation(), epochs_per_fork=1, branches=[["rotation"]])
            )
        with self.assertRaisesRegex(ValueError, "cannot tell whether 'label_mse'"):
            self.fit(compiled(), ForkMerge(validation(), epochs_per_fork=1, monitor="label_mse"))
        with self.assertRaisesRegex(ValueError, "monitors 'label_accuracy', which `evaluate`"):
            self.fit(
                compiled(), ForkMerge(validation(), epochs_per_fork=1, monitor="label_accuracy")
            )


class ForkMergeSerializationTest(TestCase):
    def test_branch_weights_serialize_and_a_compiled_model_round_trips(self):
        self.run_serialization_test(BranchWeights())
        self.assertIs(keras.saving.get_registered_object("keras_aux>BranchWeights"), BranchWeights)
        model = compiled()
        model.loss_weighting_holder.state_variables[0].assign([1.0, 0.0, 0.5])
        restored = self.run_model_saving_test(model, validation()[0])
        self.assertIsInstance(restored.loss_weighting, BranchWeights)
        self.assertAllClose(restored.loss_weighting_state["weights"], [1.0, 0.0, 0.5])

    def test_callback_config_round_trips(self):
        callback = ForkMerge(
            validation(),
            epochs_per_fork=3,
            branches=[["recon"]],
            alphas=[0, 0.5],
            monitor="label_loss",
            mode="min",
            restore_best=False,
            batch_size=4,
        )
        config = callback.get_config()
        again = ForkMerge.from_config(config, validation_data=validation())
        self.assertEqual(again.get_config(), config)
        self.assertEqual(config["branches"], [{"recon": 1.0}])


class TensorBoardTest(TestCase):
    @requires_tensorflow
    def test_the_merge_weights_reach_tensorboard(self):
        import tensorflow as tf

        x, y = data(n=16, seed=3)
        logdir = os.path.join(self.get_temp_dir(), "logs")
        compiled().fit(
            x,
            y,
            batch_size=8,
            epochs=2,
            verbose=0,
            callbacks=[
                ForkMerge(validation(), epochs_per_fork=1),
                keras.callbacks.TensorBoard(logdir),
            ],
        )
        tags = {}
        for path in glob.glob(os.path.join(logdir, "train", "*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    tags.setdefault(value.tag, []).append(event.step)
        self.assertEqual(tags["epoch_fork_merge_weight_0"], [1])  # the merge epoch
        self.assertEqual(tags["epoch_fork_merge_weight_1"], [1])
        self.assertEqual(tags["epoch_fork_merge_branch"], [0, 1])


class PlotTest(TestCase):
    def test_the_plot_is_a_png_of_each_round(self):
        x, y = data(n=16, seed=3)
        model = compiled()
        callback = ForkMerge(validation(), epochs_per_fork=1, branches=[["recon"], ["extra"]])
        history = model.fit(x, y, batch_size=8, epochs=6, verbose=0, callbacks=[callback])
        self.assertEqual(len(history.history["fork_merge_weight_2"]), 2)
        for source in (callback, history):
            path = os.path.join(self.get_temp_dir(), "merge.png")
            self.assertEqual(plot_merge_weights(source, path), path)
            with open(path, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with self.assertRaisesRegex(ValueError, "No merge weights to plot"):
            plot_merge_weights([], path)
