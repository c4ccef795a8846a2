"""The genre experiment's model selection, showcase, results table, dataset defaults, the
datasets it gives ``fit`` (no "ran out of data" / "shuffle" warnings), and its two places for
the log-mel (``features``: in the pipeline, or the model's first layer on waveforms)."""

import dataclasses
import os
import types
import warnings

import keras
import numpy as np
import soundfile
import tensorflow as tf

from keras_aux.audio.datasets import AudioFileList
from keras_aux.audio.decode import AudioScanReport
from keras_aux.audio.pipeline import AudioPipeline
from keras_aux.experiments import genre
from keras_aux.experiments.options import flag_specs
from keras_aux.layers import LogMelSpectrogram
from keras_aux.testing import TestCase


def fake_pipeline(num_files, kept, batch_size, bins=4):
    """An `AudioPipeline` stand-in whose dataset, like the real one, filters (unknown
    cardinality): ``num_files`` passed the header scan, ``kept`` survive decoding."""
    x = np.random.default_rng(0).normal(size=(num_files, 6, bins)).astype("float32")
    y = (np.arange(num_files) % 2).astype("int32")
    ds = tf.data.Dataset.from_tensor_slices((x, y, np.arange(num_files) < kept))
    ds = ds.filter(lambda x, y, ok: ok).map(lambda x, y, ok: (x, y)).batch(batch_size)
    return types.SimpleNamespace(
        dataset=ds, num_files=num_files, summary=lambda: f"{kept} of {num_files} kept"
    )


def result(run, val, loss, test):
    """One entry of `GenreResult.results`."""
    return {
        "run": run,
        "lambda": 0.0,
        "censoring": "multitask",
        "validation_accuracy": val,
        "validation_loss": loss,
        "test_accuracy": test,
    }


class GenreExperimentTest(TestCase):
    def test_select_run_uses_validation_never_test(self):
        results = [result("lambda0", 0.9, 0.5, 0.70), result("lambda10", 0.8, 0.4, 0.95)]
        self.assertEqual(genre.select_run(results), 0)
        # A tie on accuracy goes to the lower validation loss, then to the first run.
        results = [result("lambda0", 1.0, 0.5, 0.9), result("lambda10", 1.0, 0.4, 0.8)]
        self.assertEqual(genre.select_run(results), 1)
        results = [result("lambda0", 1.0, 0.4, 0.8), result("lambda10", 1.0, 0.4, 0.9)]
        self.assertEqual(genre.select_run(results), 0)

    def test_results_table_marks_the_exported_run(self):
        table = genre.results_table(
            [result("lambda0", 1.0, 0.4, 0.875), result("lambda10", 0.9375, 0.5, 0.9167)],
            selected="lambda0",
        )
        self.assertIn("| run | λ | censoring | validation accuracy | test accuracy |", table)
        self.assertIn("| lambda0 | 0 | multitask | 1.0000 (exported) | 0.8750 |", table)
        self.assertIn("| lambda10 | 0 | multitask | 0.9375 | 0.9167 |", table)

    def test_showcase_clips_cover_every_class(self):
        split = types.SimpleNamespace(labels=[0, 0, 0, 1, 1, 2, 2, 3])
        self.assertEqual(genre.showcase_clips(split, 5), [0, 3, 5, 7, 1])
        self.assertEqual(genre.showcase_clips(split, 20), [0, 3, 5, 7, 1, 4, 6, 2])

    def test_dataset_defaults(self):
        demo = genre.GenreConfig().with_dataset_defaults()
        self.assertEqual((demo.epochs, demo.duration, demo.crop_frames), (8, 4.0, 64))
        self.assertEqual(demo.learning_rate, 1e-3)
        fma = genre.GenreConfig(dataset="fma_small").with_dataset_defaults()
        self.assertEqual((fma.epochs, fma.duration, fma.crop_frames), (256, 30.0, 512))
        self.assertEqual(fma.learning_rate, 1e-4)
        mine = genre.GenreConfig(learning_rate=3e-4, epochs=2).with_dataset_defaults()
        self.assertEqual((mine.learning_rate, mine.epochs), (3e-4, 2))

    def test_fit_datasets_give_keras_known_sizes(self):
        train = fake_pipeline(20, kept=20, batch_size=8)
        validation = fake_pipeline(11, kept=9, batch_size=4)  # 2 clips dropped after decoding
        train_ds, steps, validation_ds = genre.fit_datasets(train, validation, batch_size=8)
        self.assertEqual(steps, 3)
        self.assertEqual(int(validation_ds.cardinality()), 3)
        self.assertEqual(sum(int(tf.shape(y)[0]) for _, y in validation_ds), 9)

        inputs = keras.Input((None, 4))
        outputs = keras.layers.Dense(2, activation="softmax")(
            keras.layers.GlobalAveragePooling1D()(inputs)
        )
        model = keras.Model(inputs, outputs)
        model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(
                train_ds,
                steps_per_epoch=steps,
                validation_data=validation_ds,
                epochs=2,
                shuffle=False,
                verbose=0,
            ).history
        messages = [str(w.message) for w in caught]
        self.assertFalse([m for m in messages if "ran out of data" in m or "shuffle" in m])
        self.assertEqual(len(history["val_accuracy"]), 2)

    def test_fit_datasets_refuse_an_empty_validation_set(self):
        with self.assertRaisesRegex(ValueError, "No usable validation clip"):
            genre.fit_datasets(
                fake_pipeline(8, 8, 4), fake_pipeline(3, kept=0, batch_size=4), batch_size=4
            )

    def test_skipped_files_are_reported_once_after_the_first_epoch(self):
        def pipeline(scan_skips, silent):
            made = AudioPipeline(
                None,
                AudioScanReport(kept=[], skipped=[("a.wav", "empty")] * scan_skips),
                tf.Variable(silent, dtype=tf.int64),
                tf.Variable(0, dtype=tf.int64),
            )
            made.summary = lambda: "summary line"
            return made

        cases = [(0, 0, []), (1, 0, ["[train] summary line"]), (0, 2, ["[train] summary line"])]
        for scan_skips, silent, expected in cases:
            printed = []
            report = genre._SkippedClipsReport(pipeline(scan_skips, silent), printed.append)
            for epoch in range(3):
                report.on_epoch_end(epoch)
            self.assertEqual(printed, expected)


class FeaturesOptionTest(TestCase):
    def splits(self, seconds=0.5):
        """Two classes of tones, three clips each, in every split."""
        rate, root = 16000, self.get_temp_dir()
        t = np.arange(int(seconds * rate)) / rate
        paths, labels = [], []
        for label, pitch in enumerate((220.0, 880.0)):
            for k in range(3):
                path = os.path.join(root, f"{label}_{k}.wav")
                soundfile.write(path, 0.3 * np.sin(2 * np.pi * pitch * (1 + k / 50) * t), rate)
                paths.append(path)
                labels.append(label)
        files = AudioFileList(paths, labels, ["low", "high"])
        return {"train": files, "validation": files, "test": files}

    def test_default_is_the_log_mel_in_the_pipeline(self):
        self.assertEqual(genre.GenreConfig().features, "log_mel")
        spec = next(s for s in flag_specs(genre.GenreConfig) if s.name == "features")
        self.assertEqual((spec.kind, spec.choices), ("enum", ("log_mel", "waveform")))

    def test_waveform_pipelines_and_model(self):
        config = genre.GenreConfig(
            features="waveform", duration=0.5, crop_frames=4, batch_size=3, seed=0
        )
        frontend = LogMelSpectrogram(name="log_mel")
        pipelines = genre.make_pipelines(self.splits(), config, frontend)
        train, _ = next(iter(pipelines["train"].dataset))
        whole, labels = next(iter(pipelines["validation"].dataset))
        self.assertEqual(train.shape, (3, 3 * 512))  # 4 frames once the model's front end runs
        self.assertEqual(whole.shape, (3, 8000))
        model, data_frontend = genre.build_model(config, 2, frontend)
        self.assertIsNone(data_frontend)
        # The model's own copy of the front end (keras-tuner builds one model per trial from it).
        self.assertEqual(model.get_layer("log_mel").get_config(), frontend.get_config())
        self.assertEqual(model.input_targets, {"reconstruction": "log_mel"})
        self.assertEqual(model.predict_on_batch(train)["reconstruction"].shape, (3, 4, 128))
        # The default: features in the pipeline, the features model.
        log_mel = dataclasses.replace(config, features="log_mel")
        features, _ = next(
            iter(genre.make_pipelines(self.splits(), log_mel, frontend)["train"].dataset)
        )
        self.assertEqual(features.shape, (3, 4, 128))
        model, data_frontend = genre.build_model(log_mel, 2, frontend)
        self.assertIs(data_frontend, frontend)
        self.assertEqual(model.input_targets, {"reconstruction": "mel"})

    def test_unknown_features_are_refused(self):
        config = genre.GenreConfig(features="spectrogram", duration=0.5)
        with self.assertRaisesRegex(ValueError, "`features` must be one of .*'spectrogram'"):
            genre.make_pipelines(self.splits(), config, LogMelSpectrogram())
