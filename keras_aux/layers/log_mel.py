"""Log-mel front end of the genre classifier (seed 001), as a Keras layer.

Reference pre-processing (``docs/reconstruction.md``): 16 kHz mono audio; mel
power spectrogram with librosa's defaults (FFT 2048, hop 512, Hann window,
centred frames with zero padding, 128 Slaney-scale, Slaney-normalised mel
bands); ``power_to_db(ref=max)`` with librosa's ``top_db=80``; then
``(dB + 40) / 40``; time-major ``(frames, 128)``. Values therefore lie in
[-1, 1].

Written with public Keras API only (``keras.layers.Layer`` and ``keras.ops``),
so it does not depend on the internals of ``keras.layers.MelSpectrogram`` and
runs on every backend that implements ``keras.ops.stft``. The filter banks are
built once in NumPy (they are constants) and the per-clip work is
``pad → stft → |·|² → tensordot → dB``.

References:
    Slaney, M. (1998). Auditory Toolbox, version 2. Technical Report
    #1998-010, Interval Research Corporation (mel scale, filter bank and its
    area normalisation).
    McFee, B., Raffel, C., Liang, D., Ellis, D. P. W., McVicar, M.,
    Battenberg, E., & Nieto, O. (2015). librosa: Audio and Music Signal
    Analysis in Python. Proc. 14th Python in Science Conference (the
    reference implementation this layer reproduces).
"""

import threading

import keras
import numpy as np

# Slaney's mel scale: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
_SLANEY_F_SP = 200.0 / 3
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def _hz_to_mel_slaney(frequencies):
    frequencies = np.asanyarray(frequencies, dtype=np.float64)
    log_mels = _SLANEY_MIN_LOG_MEL + (
        np.log(np.maximum(frequencies, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    )
    return np.where(frequencies >= _SLANEY_MIN_LOG_HZ, log_mels, frequencies / _SLANEY_F_SP)


def _mel_to_hz_slaney(mels):
    mels = np.asanyarray(mels, dtype=np.float64)
    log_hz = _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (mels - _SLANEY_MIN_LOG_MEL))
    return np.where(mels >= _SLANEY_MIN_LOG_MEL, log_hz, _SLANEY_F_SP * mels)


def slaney_mel_matrix(sampling_rate, fft_length, num_mel_bins, min_freq=0.0, max_freq=None):
    """Slaney-scale, area-normalised mel filter bank, ``(fft_length // 2 + 1, num_mel_bins)``.

    The filter bank of Slaney's Auditory Toolbox (Slaney 1998), as librosa
    builds it by default (``librosa.filters.mel(htk=False, norm="slaney")``,
    McFee et al. 2015), transposed to right-multiply a power spectrogram.
    Triangles are linear in Hz between mel-spaced edges and scaled to unit
    area (``2 / bandwidth``).
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


def htk_mel_matrix(sampling_rate, fft_length, num_mel_bins, min_freq=0.0, max_freq=None):
    """HTK-scale mel filter bank with unit-peak triangles, ``(fft_length // 2 + 1, num_mel_bins)``.

    The same matrix as ``keras.layers.MelSpectrogram.linear_to_mel_weight_matrix``
    (and ``tf.signal.linear_to_mel_weight_matrix``): ``mel = 1127 ln(1 + f / 700)``,
    triangles linear in mel, peak 1, DC bin excluded. This is what
    ``mel_scale="htk"`` used before this layer stopped subclassing
    ``MelSpectrogram``; it is kept so that saved ``"htk"`` models do not change.
    """
    max_freq = sampling_rate / 2.0 if max_freq is None else float(max_freq)

    def hz_to_mel(hz):
        return 1127.0 * np.log1p(np.asarray(hz, dtype=np.float64) / 700.0)

    bin_mels = hz_to_mel(np.linspace(0.0, sampling_rate / 2.0, fft_length // 2 + 1)[1:])[:, None]
    edges = np.linspace(hz_to_mel(min_freq), hz_to_mel(max_freq), num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    weights = np.maximum(
        0.0,
        np.minimum((bin_mels - lower) / (center - lower), (upper - bin_mels) / (upper - center)),
    )
    # HTK excludes the DC bin: its row stays zero.
    return np.pad(weights, [(1, 0), (0, 0)]).astype(np.float32)


# Frames per step of `LogMelSpectrogram.numpy_call` (64 × 2048 float32 = 512 KiB buffers).
_CHUNK_FRAMES = 64
_WORKSPACES = threading.local()


def _workspace(frames, fft_length):
    """This thread's reusable ``(windowed frames, power, scratch)`` buffers for `numpy_call`."""
    key = (frames, fft_length)
    buffers = getattr(_WORKSPACES, "buffers", {})
    if key not in buffers:
        bins = fft_length // 2 + 1
        buffers[key] = (
            np.empty((frames, fft_length), np.float32),
            np.empty((frames, bins), np.float32),
            np.empty((frames, bins), np.float32),
        )
        _WORKSPACES.buffers = buffers
    return buffers[key]


def _rfft(frames, overwrite=False):
    """Real FFT over the last axis in float32: SciPy's when installed (it keeps float32 and
    releases the GIL), else NumPy's. ``overwrite``: ``frames`` may be destroyed (saves a copy)."""
    try:
        import scipy.fft
    except ImportError:
        return np.fft.rfft(frames, axis=-1).astype(np.complex64)
    return scipy.fft.rfft(frames, axis=-1, overwrite_x=overwrite)


@keras.saving.register_keras_serializable(package="keras_aux")
class LogMelSpectrogram(keras.layers.Layer):
    """Waveforms ``(batch, samples)`` → normalised log-mel ``(batch, frames, mels)``.

    Each clip's power mel spectrogram ``S`` becomes
    ``dB = 10 log10(max(S, min_power)) − 10 log10(max(S))``, floored at
    ``−top_db``, then ``(dB + offset_db) / offset_db`` (the reference's
    ``(dB + 40) / 40``). With the defaults this equals librosa's
    ``power_to_db(melspectrogram(y, sr=16000), ref=np.max)`` mapped by
    ``(dB + 40) / 40`` (McFee et al. 2015), to about 1e-6. ``frames`` is
    ``1 + samples // sequence_stride`` (centred frames); any number of
    samples ≥ 1 works. An unbatched waveform ``(samples,)`` gives
    ``(frames, mels)``.

    Only public Keras API is used (``keras.ops``), so the layer works in a
    ``tf.data`` map (TensorFlow backend), as a model's first layer, under
    ``jit_compile=True`` and in an exported SavedModel. The computation runs
    in float32 whatever the dtype policy; the output is cast to the layer's
    compute dtype.

    Args:
        sampling_rate: audio sample rate in Hz (16 kHz in the reference).
        fft_length: FFT size and window length (2048).
        sequence_stride: hop length (512).
        num_mel_bins: mel bands (128).
        min_freq, max_freq: band edges in Hz (0 and ``sampling_rate / 2``).
        mel_scale: ``"slaney"`` (librosa's default, the reference; Slaney 1998)
            or ``"htk"`` (the filter bank of ``keras.layers.MelSpectrogram``).
        top_db: dynamic range kept below each clip's maximum (80).
        offset_db: the normalisation constant (40).
        min_power: floor of the power before the logarithm (1e-10).
        **kwargs: ``keras.layers.Layer`` arguments (``name``, ``dtype``...).

    Reference: seed 001 (reconstruction auxiliary loss for genre
    classification, ``docs/reconstruction.md``); Slaney 1998 (mel filter
    bank); librosa (McFee et al. 2015).
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
        super().__init__(**kwargs)
        self.sampling_rate = sampling_rate
        self.fft_length = fft_length
        self.sequence_stride = sequence_stride
        self.num_mel_bins = num_mel_bins
        self.min_freq = min_freq
        self.max_freq = max_freq  # resolved, as the configs of saved models hold it
        self.mel_scale = mel_scale
        self.top_db = top_db
        self.offset_db = float(offset_db)
        self.min_power = min_power
        # A NumPy constant: it becomes a graph constant under tf.function/XLA/export
        # and is converted to whichever backend runs the layer.
        bank = slaney_mel_matrix if mel_scale == "slaney" else htk_mel_matrix
        self._filter_bank = bank(sampling_rate, fft_length, num_mel_bins, min_freq, max_freq)
        self.built = True  # no weights to create

    def call(self, inputs):
        """Log-mel features of ``inputs`` (``(..., samples)`` → ``(..., frames, mels)``)."""
        ops = keras.ops
        # float32 always: stft is float32/float64-only, and float16 powers underflow.
        waves = ops.convert_to_tensor(inputs, dtype="float32")
        # Centred frames with zero padding, like librosa >= 0.10 (pad_mode="constant");
        # keras.ops.stft(center=True) would pad by reflection.
        pad = self.fft_length // 2
        widths = [(0, 0)] * (len(waves.shape) - 1) + [(pad, pad)]
        real, imag = ops.stft(
            ops.pad(waves, widths),
            sequence_length=self.fft_length,
            sequence_stride=self.sequence_stride,
            fft_length=self.fft_length,
            window="hann",  # periodic Hann, as scipy.signal.get_window and librosa
            center=False,
        )
        power = ops.square(real) + ops.square(imag)
        mel = ops.tensordot(power, ops.convert_to_tensor(self._filter_bank), axes=1)
        # power_to_db(ref=max): librosa's order of operations (log, then subtract the
        # peak in dB), so the result matches it to float32 rounding.
        db = 10.0 * ops.log10(ops.maximum(mel, self.min_power))
        # Peak per clip (every axis but the batch axis); one clip if unbatched.
        axes = tuple(range(1, len(db.shape))) if len(db.shape) > 2 else None
        db = ops.maximum(db - ops.max(db, axis=axes, keepdims=True), -self.top_db)
        outputs = (db + self.offset_db) / self.offset_db
        return ops.cast(outputs, self.compute_dtype)

    def numpy_call(self, waveforms):
        """The same features computed in NumPy/SciPy, for a ``tf.numpy_function`` or eager code.

        ``keras_aux.audio.pipeline`` calls it in its decoding function when this layer is the
        front end: the clip never leaves NumPy, and SciPy's float32 FFT plus a banded product
        with the filter bank (each band only touches the FFT bins under its triangle, about an
        eighth of the dense product) take less CPU time than the TensorFlow ops
        (``benchmarks/results/audio_pipeline.md``). Equal to ``call`` and to librosa to float32
        rounding (tested at 1e-4, measured ~1e-7).

        Args:
            waveforms: ``(..., samples)`` array, any number of samples ≥ 1.

        Returns:
            float32 ``(..., frames, mels)``.
        """
        waves = np.asarray(waveforms, dtype=np.float32)
        pad = self.fft_length // 2
        waves = np.pad(waves, [(0, 0)] * (waves.ndim - 1) + [(pad, pad)])
        frames = np.lib.stride_tricks.sliding_window_view(waves, self.fft_length, axis=-1)
        frames = frames[..., :: self.sequence_stride, :]
        frames = frames.reshape((-1,) + frames.shape[-2:])  # (clips, frames, fft_length)
        mel = np.empty(frames.shape[:2] + (self.num_mel_bins,), np.float32)
        # A few frames at a time through small per-thread buffers: whole-clip temporaries
        # (tens of MB) cost more to allocate in the pipeline's worker threads, where glibc hands
        # them out as fresh pages, than to compute (benchmarks/results/audio_pipeline.md).
        windowed, power, scratch = _workspace(_CHUNK_FRAMES, self.fft_length)
        window = self._numpy_window()
        for clip, clip_frames in enumerate(frames):
            for start in range(0, clip_frames.shape[0], _CHUNK_FRAMES):
                rows = clip_frames[start : start + _CHUNK_FRAMES]
                n = rows.shape[0]
                np.multiply(rows, window, out=windowed[:n])
                spectrum = _rfft(windowed[:n], overwrite=True)  # `windowed` is scratch
                np.multiply(spectrum.real, spectrum.real, out=power[:n])
                np.multiply(spectrum.imag, spectrum.imag, out=scratch[:n])
                power[:n] += scratch[:n]
                for bands, bins, weights in self._numpy_band_blocks():
                    np.matmul(power[:n, bins], weights, out=mel[clip, start : start + n, bands])
        mel = mel.reshape(waves.shape[:-1] + (-1, self.num_mel_bins))
        db = np.log10(np.maximum(mel, np.float32(self.min_power)))
        db *= np.float32(10.0)
        db -= db.max(axis=(-2, -1), keepdims=True)
        np.maximum(db, np.float32(-self.top_db), out=db)
        db += np.float32(self.offset_db)
        db /= np.float32(self.offset_db)
        return db

    def _numpy_window(self):
        """Periodic Hann window of ``fft_length`` (as ``keras.ops.stft``'s ``"hann"``)."""
        if getattr(self, "_hann", None) is None:
            n = np.arange(self.fft_length)
            self._hann = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.fft_length)).astype(np.float32)
        return self._hann

    def _numpy_band_blocks(self, bands_per_block=16):
        """``(band slice, bin slice, weights)`` blocks covering the filter bank's non-zero
        entries; ``weights`` is that block of the filter bank, C-contiguous."""
        if getattr(self, "_blocks", None) is None:
            nonzero = self._filter_bank != 0
            blocks = []
            for start in range(0, self.num_mel_bins, bands_per_block):
                bands = slice(start, min(start + bands_per_block, self.num_mel_bins))
                rows = np.flatnonzero(nonzero[:, bands].any(axis=1))
                bins = slice(rows[0], rows[-1] + 1) if rows.size else slice(0, 0)
                weights = np.ascontiguousarray(self._filter_bank[bins, bands])
                blocks.append((bands, bins, weights))
            self._blocks = blocks
        return self._blocks

    def compute_output_shape(self, input_shape):
        """``(..., samples)`` → ``(..., 1 + samples // sequence_stride, num_mel_bins)``."""
        input_shape = list(input_shape)
        samples = input_shape[-1]
        frames = None if samples is None else 1 + samples // self.sequence_stride
        return tuple(input_shape[:-1] + [frames, self.num_mel_bins])

    def get_config(self):
        """The constructor arguments (the same keys as before the rewrite), for saving."""
        config = super().get_config()
        config.update(
            fft_length=self.fft_length,
            sequence_stride=self.sequence_stride,
            sampling_rate=self.sampling_rate,
            num_mel_bins=self.num_mel_bins,
            min_freq=self.min_freq,
            max_freq=self.max_freq,
            top_db=self.top_db,
            min_power=self.min_power,
            mel_scale=self.mel_scale,
            offset_db=self.offset_db,
        )
        return config
