"""Log-mel front end of the genre classifier (seed 001), as a Keras layer.

Reference pre-processing (methods.md §1): 16 kHz mono audio; mel power
spectrogram with librosa's defaults (FFT 2048, hop 512, Hann window, centred
frames with zero padding, 128 Slaney-scale, Slaney-normalised mel bands);
``power_to_db(ref=max)`` with librosa's ``top_db=80``; then ``(dB + 40) / 40``;
time-major ``(frames, 128)``. Values therefore lie in [-1, 1].

Built on ``keras.layers.MelSpectrogram`` (its STFT and its HTK filter bank),
with three changes the reference needs: zero ("constant") padding of the
centred frames like librosa ≥ 0.10 instead of reflection, a per-clip dB
reference (Keras clips at the batch maximum), and an optional Slaney filter
bank (Keras's is HTK-style; the two differ by tens of dB).

Reference: Slaney (1998), "Auditory Toolbox", Technical Report #1998-010,
Interval Research (mel scale and normalisation); McFee et al. (2015),
"librosa: Audio and Music Signal Analysis in Python".
"""

import keras
import numpy as np


def _hz_to_mel_slaney(frequencies):
    frequencies = np.asanyarray(frequencies, dtype=np.float64)
    f_sp = 200.0 / 3
    mels = frequencies / f_sp
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    log_region = frequencies >= min_log_hz
    mels = np.where(
        log_region,
        min_log_mel + np.log(np.maximum(frequencies, min_log_hz) / min_log_hz) / logstep,
        mels,
    )
    return mels


def _mel_to_hz_slaney(mels):
    mels = np.asanyarray(mels, dtype=np.float64)
    f_sp = 200.0 / 3
    freqs = f_sp * mels
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = np.log(6.4) / 27.0
    return np.where(mels >= min_log_mel, min_log_hz * np.exp(logstep * (mels - min_log_mel)), freqs)


def slaney_mel_matrix(sampling_rate, fft_length, num_mel_bins, min_freq=0.0, max_freq=None):
    """Slaney-scale, area-normalised mel filter bank, ``(fft_length // 2 + 1, num_mel_bins)``.

    The filter bank of Slaney's Auditory Toolbox (librosa's default,
    ``librosa.filters.mel(htk=False, norm="slaney")``), transposed to
    right-multiply a power spectrogram.
    """
    max_freq = sampling_rate / 2.0 if max_freq is None else float(max_freq)
    fft_freqs = np.linspace(0.0, sampling_rate / 2.0, fft_length // 2 + 1)
    mel_edges = np.linspace(
        _hz_to_mel_slaney(min_freq), _hz_to_mel_slaney(max_freq), num_mel_bins + 2
    )
    hz_edges = _mel_to_hz_slaney(mel_edges)
    widths = np.diff(hz_edges)
    ramps = hz_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (hz_edges[2:] - hz_edges[:-2]))[:, None]
    return weights.T.astype(np.float32)


@keras.saving.register_keras_serializable(package="keras_aux")
class LogMelSpectrogram(keras.layers.MelSpectrogram):
    """Waveforms ``(batch, samples)`` → normalised log-mel ``(batch, frames, mels)``.

    Each clip's power mel spectrogram ``S`` becomes
    ``dB = 10 log10(max(S, min_power)) − 10 log10(max(S))``, floored at
    ``−top_db``, then ``(dB + offset_db) / offset_db`` (the reference's
    ``(dB + 40) / 40``). Works in a ``tf.data`` map (CPU) or as a model's first
    layer (on the accelerator), on any number of samples ≥ 1.

    Args:
        sampling_rate: audio sample rate in Hz (16 kHz in the reference).
        fft_length: FFT size and window length (2048).
        sequence_stride: hop length (512).
        num_mel_bins: mel bands (128).
        min_freq, max_freq: band edges in Hz (0 and ``sampling_rate / 2``).
        mel_scale: ``"slaney"`` (librosa's default, the reference) or
            ``"htk"`` (Keras's own filter bank).
        top_db: dynamic range kept below each clip's maximum (80).
        offset_db: the normalisation constant (40).
        min_power: floor of the power before the logarithm (1e-10).

    Reference: seed 001 (reconstruction auxiliary loss for genre
    classification); Slaney 1998 (mel filter bank); librosa (McFee et al. 2015).
    """

    def __init__(
        self,
        sampling_rate=16000,
        fft_length=2048,
        sequence_stride=512,
        num_mel_bins=128,
        min_freq=0.0,
        max_freq=None,
        mel_scale="slaney",
        top_db=80.0,
        offset_db=40.0,
        min_power=1e-10,
        **kwargs,
    ):
        if mel_scale not in ("slaney", "htk"):
            raise ValueError(f"`mel_scale` must be 'slaney' or 'htk'; got {mel_scale!r}.")
        for name, value in (
            ("sampling_rate", sampling_rate),
            ("fft_length", fft_length),
            ("sequence_stride", sequence_stride),
            ("num_mel_bins", num_mel_bins),
            ("offset_db", offset_db),
        ):
            if not value > 0:
                raise ValueError(f"`{name}` must be positive; got {value!r}.")
        max_freq = sampling_rate / 2.0 if max_freq is None else max_freq
        if not 0.0 <= min_freq < max_freq <= sampling_rate / 2.0:
            raise ValueError(
                f"Need 0 <= min_freq < max_freq <= sampling_rate / 2; got min_freq={min_freq}, "
                f"max_freq={max_freq}, sampling_rate={sampling_rate}."
            )
        super().__init__(
            fft_length=fft_length,
            sequence_stride=sequence_stride,
            sampling_rate=sampling_rate,
            num_mel_bins=num_mel_bins,
            min_freq=min_freq,
            max_freq=max_freq,
            power_to_db=True,
            top_db=top_db,
            min_power=min_power,
            **kwargs,
        )
        self.mel_scale = mel_scale
        self.offset_db = float(offset_db)
        self._slaney = None
        if mel_scale == "slaney":
            self._slaney = slaney_mel_matrix(
                sampling_rate, fft_length, num_mel_bins, min_freq, max_freq
            )

    def call(self, inputs):
        ops = self.backend
        inputs = ops.convert_to_tensor(inputs, dtype="float32")
        outputs = self._dbscale(self._melscale(self._spectrogram(inputs)))
        outputs = (outputs + self.offset_db) / self.offset_db
        return ops.cast(outputs, self.compute_dtype)

    def _spectrogram(self, inputs):
        # librosa pads centred frames with zeros (pad_mode="constant").
        ops = self.backend
        pad = self.fft_length // 2
        widths = [(0, 0)] * (len(inputs.shape) - 1) + [(pad, pad)]
        padded = ops.numpy.pad(inputs, widths)
        real, imag = ops.math.stft(
            padded,
            sequence_length=self.fft_length,
            sequence_stride=self.sequence_stride,
            fft_length=self.fft_length,
            window=self.window,
            center=False,
        )
        return ops.numpy.square(real) + ops.numpy.square(imag)

    def _melscale(self, inputs):
        if self._slaney is None:
            return super()._melscale(inputs)
        matrix = self.backend.convert_to_tensor(self._slaney, dtype=inputs.dtype)
        return self.backend.numpy.tensordot(inputs, matrix, axes=1)

    def _dbscale(self, inputs):
        # Per-clip reference and floor: max over every axis but the batch.
        ops = self.backend
        db = 10.0 * ops.numpy.log10(ops.numpy.maximum(inputs, self.min_power))
        axes = tuple(range(1, len(inputs.shape))) if len(inputs.shape) > 2 else None
        peak = ops.numpy.max(db, axis=axes, keepdims=True)
        db = db - peak
        return ops.numpy.maximum(db, -self.top_db)

    def compute_output_shape(self, input_shape):
        input_shape = list(input_shape)
        samples = input_shape[-1]
        frames = None if samples is None else 1 + samples // self.sequence_stride
        return tuple(input_shape[:-1] + [frames, self.num_mel_bins])

    def get_config(self):
        config = super().get_config()
        for key in ("power_to_db", "mag_exp", "ref_power", "window", "sequence_length"):
            config.pop(key, None)
        config.update(mel_scale=self.mel_scale, offset_db=self.offset_db)
        return config
