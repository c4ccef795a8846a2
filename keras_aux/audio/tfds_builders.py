"""TFDS builders for the keras-aux audio datasets, read from a local (manual) directory.

Each builder is a `tfds.core.GeneratorBasedBuilder` on top of a loader of
`keras_aux.audio.datasets` (same layout checks, same splits, same skipped files). Nothing is
downloaded: the data must already be in the manual directory, given as
`tfds.download.DownloadConfig(manual_dir=...)` (default `<data_dir>/downloads/manual/`).

Features of every example (the choice that works offline, with no ffmpeg / pydub /
tensorflow-io, for every format soundfile reads):

- `audio`: the audio file's bytes exactly as on disk (a scalar `tf.string`), so the prepared
  dataset is self-contained and as compact as the source (FMA small's MP3s stay MP3s). Decode
  WAV in the graph with `tf.audio.decode_wav`, anything with `decode_audio_bytes` (soundfile),
  e.g. inside `tf.numpy_function`.
- `path`: the file's path relative to the manual directory (POSIX separators); its extension
  gives the format. It is also the example's key.
- `label`: a `tfds.features.ClassLabel` whose names are the loader's `class_names`.
- FSDD only: the other label (`speaker` or `digit`) as a second `ClassLabel`.

The class names are read from the data when the dataset is prepared (so a partial copy gives
a consistent label set) and saved with the dataset info.

Example::

    import tensorflow_datasets as tfds
    from keras_aux.audio import tfds_builders

    builder = tfds_builders.Fsdd(data_dir="~/tfds")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir="/data/fsdd")
    )
    train = builder.as_dataset(split="train")
"""

from __future__ import annotations

import dataclasses
import io
import logging
import os

import numpy as np

from keras_aux.audio import datasets
from keras_aux.utils.optional import require, require_tensorflow

# TensorFlow-only (tfds features are TF ops), and not imported by `keras_aux.audio`: importing
# this module without TensorFlow raises MissingExtraError naming the TensorFlow extras.
tf = require_tensorflow("for keras_aux.audio.tfds_builders (tensorflow-datasets builders)")
# The builders below subclass tfds classes, so tensorflow-datasets is imported with the module.
tfds = require(
    "tensorflow_datasets",
    extra="tfds",
    purpose="for keras_aux.audio.tfds_builders",
    package="tensorflow-datasets",
)

_FMA_CITATION = """@inproceedings{defferrard2017fma,
  title = {{FMA}: A Dataset for Music Analysis},
  author = {Defferrard, Micha\\"el and Benzi, Kirell and Vandergheynst, Pierre and
            Bresson, Xavier},
  booktitle = {18th International Society for Music Information Retrieval Conference (ISMIR)},
  year = {2017},
}"""

_GTZAN_CITATION = """@article{tzanetakis2002musical,
  title = {Musical genre classification of audio signals},
  author = {Tzanetakis, George and Cook, Perry},
  journal = {IEEE Transactions on Speech and Audio Processing},
  volume = {10},
  number = {5},
  pages = {293--302},
  year = {2002},
}"""

_FSDD_CITATION = """@misc{jackson_fsdd,
  title = {Free Spoken Digit Dataset (FSDD)},
  author = {Jackson, Zohar and others},
  howpublished = {\\url{https://github.com/Jakobovski/free-spoken-digit-dataset}},
}"""


def decode_audio_bytes(data) -> tuple[np.ndarray, int]:
    """Decodes an example's `audio` bytes with soundfile: `(float32 samples, sample_rate)`.

    The samples have shape `(frames,)` for mono files and `(frames, channels)` otherwise.
    Accepts `bytes`, a scalar string tensor or a numpy bytes scalar.
    """
    if isinstance(data, tf.Tensor):
        data = data.numpy()
    if isinstance(data, np.ndarray):
        data = data.item()
    if not isinstance(data, (bytes, bytearray)):
        raise ValueError(f"decode_audio_bytes: expected bytes; got {type(data).__name__}.")
    soundfile = require("soundfile", extra="audio", purpose="to decode audio bytes")
    samples, sample_rate = soundfile.read(io.BytesIO(data), dtype="float32")
    return samples, int(sample_rate)


class _AudioFileListBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared machinery: examples from the `AudioFileList`s returned by `_load`."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release."}
    _DESCRIPTION = ""
    _CITATION = ""
    _HOMEPAGE = ""

    def _extra_label_names(self) -> tuple[str, ...]:
        """Names of the extra `ClassLabel` features (besides `label`)."""
        return ()

    def _load(self, manual_dir: str) -> dict[str, datasets.AudioFileList]:
        raise NotImplementedError

    def _info(self) -> tfds.core.DatasetInfo:
        features = {
            "audio": tfds.features.Tensor(shape=(), dtype=tf.string),
            "path": tfds.features.Text(),
            # Names are set from the data in `_split_generators` (and restored from the
            # prepared dataset's metadata afterwards).
            "label": tfds.features.ClassLabel(),
        }
        for name in self._extra_label_names():
            features[name] = tfds.features.ClassLabel()
        return self.dataset_info_from_configs(
            description=self._DESCRIPTION,
            features=tfds.features.FeaturesDict(features),
            supervised_keys=("audio", "label"),
            homepage=self._HOMEPAGE,
            citation=self._CITATION,
        )

    def _split_generators(self, dl_manager):
        try:
            manual_dir = os.path.abspath(os.fspath(dl_manager.manual_dir))
        except AssertionError as error:  # tfds: "Manual directory ... does not exist or is empty"
            raise ValueError(f"{self.name}: {error}") from None
        splits = self._load(manual_dir)
        first = next(iter(splits.values()))
        self.info.features["label"].names = list(first.class_names)
        for name in self._extra_label_names():
            self.info.features[name].names = list(first.extra_names[name])
        if first.skipped:
            logging.getLogger(__name__).warning(
                "%s: %d input(s) left out, e.g. %s",
                self.name,
                len(first.skipped),
                first.skipped[:5],
            )
        return {name: self._generate_examples(files, manual_dir) for name, files in splits.items()}

    def _generate_examples(self, files: datasets.AudioFileList, manual_dir: str):
        for i, path in enumerate(files.paths):
            rel = os.path.relpath(path, manual_dir).replace(os.sep, "/")
            with open(path, "rb") as f:
                audio = f.read()
            example = {"audio": audio, "path": rel, "label": int(files.labels[i])}
            for name in self._extra_label_names():
                example[name] = int(files.extra[name][i])
            yield rel, example


class FmaSmall(_AudioFileListBuilder):
    """FMA small (Defferrard et al. 2017) from `fma_metadata/` + `fma_small/`; see `fma_small`.

    Splits train / validation / test (20 % test, then 10 % of the rest validation, stratified,
    seed 1337); the known-broken ids are left out.
    """

    name = "keras_aux_fma_small"
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Download fma_metadata.zip and fma_small.zip from https://github.com/mdeff/fma and extract
    both into the manual directory, giving:
      <manual_dir>/fma_metadata/tracks.csv
      <manual_dir>/fma_small/NNN/NNNNNN.mp3
    """
    _DESCRIPTION = (
        "FMA small: 8,000 30-s MP3 clips, 8 balanced top-level genres (Defferrard et al. "
        "2017). Label: (track, genre_top). Audio: the MP3 file's bytes."
    )
    _CITATION = _FMA_CITATION
    _HOMEPAGE = "https://github.com/mdeff/fma"

    def _load(self, manual_dir):
        metadata = os.path.join(manual_dir, "fma_metadata")
        audio = os.path.join(manual_dir, "fma_small")
        return datasets.fma_small(
            metadata if os.path.isdir(metadata) else manual_dir,
            audio if os.path.isdir(audio) else manual_dir,
        )


@dataclasses.dataclass(eq=False)
class SplitConfig(tfds.core.BuilderConfig):
    """A builder config with stratified validation / test fractions of the whole set and a seed.

    A split whose fraction is 0 is not produced.
    """

    validation_fraction: float = 0.0
    test_fraction: float = 0.0
    seed: int = 1337


class Gtzan(_AudioFileListBuilder):
    """GTZAN (Tzanetakis & Cook 2002) from `genres/<genre>/<genre>.NNNNN.wav`; see `gtzan`.

    Default config: stratified 70 / 10 / 20 train / validation / test, seed 1337.
    """

    name = "keras_aux_gtzan"
    BUILDER_CONFIGS = [
        SplitConfig(
            name="default",
            description="Stratified 70/10/20 train/validation/test, seed 1337.",
            validation_fraction=0.1,
            test_fraction=0.2,
        )
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Place the GTZAN genre collection in the manual directory:
      <manual_dir>/genres/<genre>/<genre>.NNNNN.wav   (or .au)
    for the ten genres blues, classical, country, disco, hiphop, jazz, metal, pop, reggae, rock.
    """
    _DESCRIPTION = (
        "GTZAN genre collection: 1,000 30-s clips, 10 genres (Tzanetakis & Cook 2002). "
        "Audio: the file's bytes."
    )
    _CITATION = _GTZAN_CITATION
    _HOMEPAGE = "http://marsyas.info/downloads/datasets.html"

    def _load(self, manual_dir):
        config = self.builder_config
        return datasets.gtzan(
            manual_dir,
            validation_fraction=config.validation_fraction,
            test_fraction=config.test_fraction,
            seed=config.seed,
        )


@dataclasses.dataclass(eq=False)
class FsddConfig(tfds.core.BuilderConfig):
    """FSDD options: the `label` ("digit" or "speaker"), a validation fraction carved out of
    train, its seed, and `train_takes` (see `keras_aux.audio.datasets.fsdd`)."""

    label: str = "digit"
    validation_fraction: float = 0.0
    seed: int = 1337
    train_takes: int | None = None


class Fsdd(_AudioFileListBuilder):
    """Free Spoken Digit Dataset (Jackson et al.) from `recordings/*.wav`; see `fsdd`.

    Official split: takes 0–4 test, the rest train. Configs `digit` (default; `label` = digit,
    extra feature `speaker`) and `speaker` (`label` = speaker, extra feature `digit`); pass
    `config=FsddConfig(...)` for a validation split or `train_takes`.
    """

    name = "keras_aux_fsdd"
    BUILDER_CONFIGS = [
        FsddConfig(name="digit", description="label = spoken digit", label="digit"),
        FsddConfig(name="speaker", description="label = speaker", label="speaker"),
    ]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Clone or download https://github.com/Jakobovski/free-spoken-digit-dataset and point the
    manual directory at it (or at its recordings folder):
      <manual_dir>/recordings/{digit}_{speaker}_{index}.wav
    """
    _DESCRIPTION = (
        "Free Spoken Digit Dataset: 8 kHz WAV recordings of the digits 0-9 by several "
        "speakers; official split takes 0-4 = test. Audio: the WAV file's bytes."
    )
    _CITATION = _FSDD_CITATION
    _HOMEPAGE = "https://github.com/Jakobovski/free-spoken-digit-dataset"

    def _extra_label_names(self):
        return ("speaker",) if self.builder_config.label == "digit" else ("digit",)

    def _load(self, manual_dir):
        config = self.builder_config
        return datasets.fsdd(
            manual_dir,
            label=config.label,
            validation_fraction=config.validation_fraction,
            seed=config.seed,
            train_takes=config.train_takes,
        )


@dataclasses.dataclass(eq=False)
class ClassFoldersConfig(SplitConfig):
    """Class-folder options: stratified split fractions, seed and the kept extensions."""

    extensions: tuple[str, ...] = datasets.AUDIO_EXTENSIONS


class ClassFolders(_AudioFileListBuilder):
    """Audio in one folder per class, `<manual_dir>/<class>/<file>`; see `class_folders`.

    Default config: everything in `train`; use `config=ClassFoldersConfig(name=...,
    validation_fraction=..., test_fraction=...)` for stratified splits.
    """

    name = "keras_aux_class_folders"
    BUILDER_CONFIGS = [ClassFoldersConfig(name="default", description="All files in train.")]
    MANUAL_DOWNLOAD_INSTRUCTIONS = """\
    Put the audio files in one subfolder per class:
      <manual_dir>/<class name>/<file>.wav|.flac|.mp3|.ogg
    """
    _DESCRIPTION = "Audio files in one folder per class (the folder name is the label)."

    def _load(self, manual_dir):
        config = self.builder_config
        files = datasets.class_folders(manual_dir, extensions=config.extensions)
        fractions = {"validation": config.validation_fraction, "test": config.test_fraction}
        for key, value in fractions.items():
            datasets._check_fraction(f"ClassFolders: {key}_fraction", value)
        return datasets.stratified_split(
            files, {k: v for k, v in fractions.items() if v > 0}, config.seed
        )
