"""Audio for keras-aux (the `audio` extra: soundfile, imported only when a file is read).

- `keras_aux.audio.decode`: decoding (16-bit PCM WAV in the graph, every other format through
  soundfile), mono mix-down, resampling, crop / zero-pad, the header scan of bad files.
- `keras_aux.audio.pipeline`: the `tf.data` pipeline from audio files and labels to batches of
  log-mel features (`audio_pipeline`).
- `keras_aux.audio.datasets`: file-list loaders for FMA small, GTZAN, FSDD and class folders,
  and their stratified splits.
- `keras_aux.audio.synthetic_music`: a small synthetic music-genre set for offline demos.
- `keras_aux.audio.tfds_builders`: the loaders as tensorflow-datasets builders (the `tfds`
  extra). Not imported here, because it loads tensorflow-datasets; import it explicitly.

Reference: seed 001's pre-processing (docs/reconstruction.md#pre-processing).
"""

from keras_aux.audio.datasets import (
    AUDIO_EXTENSIONS,
    GTZAN_GENRES,
    KNOWN_BROKEN_FMA_IDS,
    AudioFileList,
    class_folders,
    fma_small,
    fma_track_path,
    fsdd,
    gtzan,
    stratified_split,
)
from keras_aux.audio.decode import AudioFileError, load_waveform, scan_audio_files
from keras_aux.audio.pipeline import AudioPipeline, AudioPipelineReport, audio_pipeline
from keras_aux.audio.synthetic_music import synthesize_clip, write_synthetic_music

__all__ = [
    "AUDIO_EXTENSIONS",
    "GTZAN_GENRES",
    "KNOWN_BROKEN_FMA_IDS",
    "AudioFileError",
    "AudioFileList",
    "AudioPipeline",
    "AudioPipelineReport",
    "audio_pipeline",
    "class_folders",
    "fma_small",
    "fma_track_path",
    "fsdd",
    "gtzan",
    "load_waveform",
    "scan_audio_files",
    "stratified_split",
    "synthesize_clip",
    "write_synthetic_music",
]
