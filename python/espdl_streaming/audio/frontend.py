"""ESP-DL's speech front end (``dl::audio::Fbank`` / ``MFCC`` / ``Spectrogram``) in numpy.

Follows ESP-DL 3.3.x's C++ (``esp-dl/audio/``) step by step and in float32 where the C++ computes in
float: the window, mel filter and DCT tables are built the way ``win_func_init``,
``mel_filter_init``, ``gen_dct_matrix`` and ``gen_lifter_coeffs`` build them (including where the
C++ rounds a double to float), and every sum that the C++ (portable build) accumulates in a float
loop is accumulated sequentially in float32 here.  Two things are not bit-exact with a chip: the FFT
(a double-precision FFT rounded to float32 instead of ESP-DL's float32 radix-2/4 FFT) and the libm
functions (modelled as correctly rounded; newlib's may differ in the last bit); ESP32-S3/P4 builds
also use SIMD dot products that sum in another order.  The C++ port in src/host/frontend/ makes the
same choices and agrees with this module bit for bit on the tests' signals.

Per frame, ESP-DL computes (``Fbank::process_frame``): copy, remove DC offset, (raw) log energy,
pre-emphasis with the frame's own first sample as the previous one (Kaldi's replicate padding: the
``input_prev`` argument of ``process_frame`` is ignored by ESP-DL 3.3), window, (windowed) log
energy, zero padding, real FFT, power or magnitude spectrum, mel dot products, log.  Frames do not
depend on one another, so the streaming extractor only keeps the overlap between frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:  # config.py imports mel_filterbank from here to validate a configuration
    from .config import FrontendConfig

F32 = np.float32
FloatArray = npt.NDArray[np.float32]
MelBank = tuple[int, int, FloatArray]  # (first FFT bin, last FFT bin, coefficients)


def _seq_sum(values: FloatArray, axis: int = -1) -> FloatArray:
    """A float32 sum accumulated left to right, as ``for (...) sum += x[i];`` does in C."""
    if values.shape[axis] == 0:
        return np.zeros(np.delete(values.shape, axis), dtype=F32)
    acc: FloatArray = np.add.accumulate(values, axis=axis, dtype=F32)
    return cast("np.ndarray", np.take(acc, -1, axis=axis))


# ---- tables (built once per configuration, as ESP-DL's constructors do) ----


def window_function(window_type: str, win_len: int, blackman_coeff: float = 0.42) -> FloatArray | None:
    """``win_func_init()``: ``None`` for ``"none"`` (ESP-DL then skips the multiplication)."""
    if window_type == "none":
        return None
    i = np.arange(win_len, dtype=np.float64)
    # double a = 2.0f * M_PI / (win_len - 1); the periodic "hann" divides by win_len.
    a = 2.0 * math.pi / (win_len if window_type == "hann" else win_len - 1)
    cos_ai = _libm_f32(np.cos, (a * i).astype(F32))  # cosf(a * i_fl): the double argument rounded to float
    half, one = F32(0.5), F32(1.0)
    if window_type in ("hanning", "hann"):
        w = half - half * cos_ai
    elif window_type == "povey":
        base = (half - half * cos_ai).astype(np.float64)
        w = np.asarray(np.power(base, float(F32(0.85))), dtype=F32)  # powf(..., 0.85f)
    elif window_type == "hamming":
        w = F32(0.54) - F32(0.46) * cos_ai
    elif window_type == "sine":
        w = _libm_f32(np.sin, (0.5 * a * i).astype(F32))  # sinf(0.5f * a * i_fl)
    elif window_type == "rectangular":
        w = np.full(win_len, one, dtype=F32)
    elif window_type == "blackman":
        c = F32(blackman_coeff)
        first = c - half * cos_ai  # float
        cos_2ai = _libm_f32(np.cos, (2.0 * a * i).astype(F32)).astype(np.float64)
        w = (first.astype(np.float64) + (0.5 - float(c)) * cos_2ai).astype(F32)  # double sum, stored as float
    else:
        raise ValueError(f"unknown window type {window_type!r}")
    return np.asarray(w, dtype=F32)


def _libm_f32(fn: Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]], x: npt.ArrayLike) -> FloatArray:
    """A float libm function (``logf``, ``cosf``, ...) of float32 arguments: evaluated in double and rounded
    once, i.e. correctly rounded. ESP-DL calls newlib's, which are within about half an ulp (a last-bit
    difference in a few values in a hundred); the C++ port (src/host/frontend/) models them the same way."""
    return np.asarray(fn(np.asarray(x, dtype=F32).astype(np.float64)), dtype=F32)


def _hz2mel(hz: npt.ArrayLike) -> FloatArray:
    """``hz2mel()``: ``1127.0 * logf(1.0 + x / 700.0)`` with its float/double conversions."""
    inner = (1.0 + np.asarray(hz, dtype=F32).astype(np.float64) / 700.0).astype(F32)
    return (1127.0 * _libm_f32(np.log, inner).astype(np.float64)).astype(F32)


def mel_filterbank(config: FrontendConfig) -> list[MelBank]:
    """``mel_filter_init()``: per filter the FFT bin range ``[start, stop]`` and its positive weights.

    ``start``/``stop`` follow the C++ (``start`` = first bin with a positive lower slope, ``stop`` = the
    bin before the first with a non-positive upper slope, -1 when none); :meth:`FrontendConfig.validate`
    rejects configurations where they do not bracket exactly the positive weights.
    """
    nfft, nfilter, sr = config.fft_size, config.num_mel_bins, config.sample_rate
    feat_width = nfft // 2 + 1
    low = int(config.low_freq)
    high = config.effective_high_freq
    lowmel = _hz2mel(F32(low))
    highmel = _hz2mel(F32(high))
    nyquist = F32(sr / 2.0)
    step = (highmel - lowmel) / F32(nfilter + 1)
    edges = step * np.arange(nfilter + 2, dtype=F32) + lowmel  # bin[i], float32
    bin_hz = np.arange(feat_width, dtype=F32) * nyquist / F32(feat_width - 1)
    bin_mel = _hz2mel(bin_hz)
    banks: list[MelBank] = []
    mel = bin_mel[1:]  # bands_to_zero = 1: the DC bin is never used
    for k in range(nfilter):
        lower = (mel - edges[k]) / (edges[k + 1] - edges[k])
        upper = (edges[k + 2] - mel) / (edges[k + 2] - edges[k + 1])
        weight = np.minimum(lower, upper)
        pos_lower = np.flatnonzero(lower > 0)
        nonpos_upper = np.flatnonzero(upper <= 0)
        start = int(pos_lower[0]) + 1 if pos_lower.size else -1
        stop = int(nonpos_upper[0]) if nonpos_upper.size else -1  # (j - 1) with j = index + 1
        banks.append((start, stop, np.asarray(weight[weight > 0], dtype=F32)))
    return banks


def dct_matrix(num_ceps: int, num_mel_bins: int) -> FloatArray:
    """``MFCC::gen_dct_matrix()``: Kaldi's orthonormal DCT-II rows, each computed in double, stored as float."""
    m = np.empty((num_ceps, num_mel_bins), dtype=F32)
    m[0, :] = np.sqrt(F32(1.0 / num_mel_bins))  # sqrtf(1.0 / num_cols): the double quotient rounded to float
    norm = float(np.sqrt(F32(2.0 / num_mel_bins)))
    n = np.arange(num_mel_bins, dtype=np.float64)
    for k in range(1, num_ceps):
        m[k, :] = (norm * np.cos(math.pi / num_mel_bins * (n + 0.5) * k)).astype(F32)
    return m


def lifter_coefficients(q: float, num_ceps: int) -> FloatArray:
    """``MFCC::gen_lifter_coeffs()``: ``1 + Q/2 sin(pi i / Q)`` in double, stored as float."""
    qd = float(F32(q))
    i = np.arange(num_ceps, dtype=np.float64)
    return np.asarray(1.0 + 0.5 * qd * np.sin(math.pi * i / qd), dtype=F32)


# ---- one frame ----


class FrameProcessor:
    """ESP-DL's per-frame computation for one validated configuration (``process_frame``)."""

    def __init__(self, config: FrontendConfig) -> None:
        self.config = config.validate()
        c = self.config
        self.window = window_function(c.window_type, c.win_len)
        self.feat_width = c.fft_size // 2 + 1
        self.eps = F32(c.log_epsilon)
        self.preemph = F32(c.preemphasis)
        if c.kind != "spectrogram":
            banks = mel_filterbank(c)
            width = max(coeffs.size for _, _, coeffs in banks)
            # Weights left-aligned and zero-padded: a sequential sum over a row adds the same terms in the
            # same order as mel_dotprod()'s loop, then only exact zeros.
            self.mel_weights = np.zeros((c.num_mel_bins, width), dtype=F32)
            self.mel_index = np.zeros((c.num_mel_bins, width), dtype=np.intp)
            for k, (start, _stop, coeffs) in enumerate(banks):
                self.mel_weights[k, : coeffs.size] = coeffs
                self.mel_index[k, : coeffs.size] = np.arange(start, start + coeffs.size)
        if c.kind == "mfcc":
            self.dct = dct_matrix(c.num_ceps, c.num_mel_bins)
            self.lifter = lifter_coefficients(c.cepstral_lifter, c.num_ceps) if c.cepstral_lifter != 0 else None

    def _log_energy(self, x: FloatArray) -> np.float32:
        return cast("np.float32", F32(_libm_f32(np.log, np.maximum(_seq_sum(x * x), self.eps))))

    def _log(self, x: FloatArray, mode: int) -> FloatArray:
        if mode == 1:
            return _libm_f32(np.log, np.maximum(x, self.eps))
        if mode == 2:
            return _libm_f32(np.log, x + self.eps)
        return x

    def __call__(self, frame: npt.ArrayLike) -> FloatArray:
        """One output frame from ``win_len`` samples (float in [-1, 1), or int16 PCM scaled by 1/32768)."""
        c = self.config
        x = _as_float_samples(frame).copy()
        if x.shape != (c.win_len,):
            raise ValueError(f"a frame has {c.win_len} samples, got shape {x.shape}")
        energy: np.float32 | None = None
        if c.remove_dc_offset:
            x -= _seq_sum(x) / F32(c.win_len)
        wants_energy = c.use_energy or c.kind == "spectrogram"
        if wants_energy and c.raw_energy:
            energy = self._log_energy(x)
        if self.preemph > 1e-7:
            first = x[0]
            x[1:] = x[1:] - x[:-1] * self.preemph
            x[0] = first - first * self.preemph
        if self.window is not None:
            x *= self.window
        if wants_energy and not c.raw_energy:
            energy = self._log_energy(x)
        spec = np.fft.rfft(x.astype(np.float64), n=c.fft_size)
        re = spec.real.astype(F32)
        im = spec.imag.astype(F32)
        if c.use_power:
            s = re * re + im * im
        else:
            s = np.sqrt(re * re + im * im)  # sqrtf: IEEE, correctly rounded
        if c.kind == "spectrogram":
            out = np.empty(self.feat_width, dtype=F32)
            out[1:] = self._log(s[1:], c.use_log_fbank)
            out[0] = energy
            return out
        mel = _seq_sum(self.mel_weights * s[self.mel_index])
        mel = self._log(mel, c.use_log_fbank)
        if c.kind == "mfcc":
            feat = _seq_sum(self.dct * mel)
            if self.lifter is not None:
                feat = feat * self.lifter
        else:
            feat = mel
        if c.use_energy:
            assert energy is not None
            return np.concatenate(([energy], feat)).astype(F32)
        return np.asarray(feat, dtype=F32)


def _as_float_samples(samples: npt.ArrayLike) -> FloatArray:
    a = np.asarray(samples)
    if a.dtype == np.int16:
        # process_frame(const int16_t *): input[i] / 32768.0f
        return cast("np.ndarray", (a.astype(F32) / F32(32768.0)).astype(F32))
    if not np.issubdtype(a.dtype, np.floating):
        raise TypeError(f"PCM must be float (in [-1, 1)) or int16, got {a.dtype}")
    return a.astype(F32)


# ---- streams ----


class StreamingFrontend:
    """Turns PCM pieces of any size into feature frames, one per ``frame_shift``, as ESP-DL would.

    ``push`` returns the frames completed by the new samples (shape ``[n, feature_dim]``, maybe ``n = 0``);
    the concatenation of everything it returns equals :func:`compute_features` of the concatenated
    input, bit for bit.  Only the last ``win_len`` samples are kept between calls.
    """

    def __init__(self, config: FrontendConfig) -> None:
        self._frame = FrameProcessor(config)
        self.config = self._frame.config
        self._buf = np.zeros(self.config.win_len, dtype=F32)
        self._filled = 0  # samples of the next frame already in _buf (validate() ensures shift <= length)

    @property
    def feature_dim(self) -> int:
        return self.config.feature_dim

    def reset(self) -> None:
        self._filled = 0

    def push(self, samples: npt.ArrayLike) -> FloatArray:
        x = _as_float_samples(samples).reshape(-1)
        win, step = self.config.win_len, self.config.win_step
        out: list[FloatArray] = []
        pos = 0
        while pos < x.size:
            take = min(win - self._filled, x.size - pos)
            self._buf[self._filled : self._filled + take] = x[pos : pos + take]
            self._filled += take
            pos += take
            if self._filled == win:
                out.append(self._frame(self._buf))
                self._buf[: win - step] = self._buf[step:]
                self._filled = win - step
        if not out:
            return np.zeros((0, self.feature_dim), dtype=F32)
        return np.stack(out)

    def push_all(self, pieces: Iterable[npt.ArrayLike]) -> FloatArray:
        frames = [self.push(p) for p in pieces]
        if not frames:
            return np.zeros((0, self.feature_dim), dtype=F32)
        return np.concatenate(frames, axis=0)


def compute_features(config: FrontendConfig, samples: npt.ArrayLike) -> FloatArray:
    """ESP-DL's ``process()`` over a whole signal: ``[num_frames(len), feature_dim]`` float32.

    ESP-DL returns ESP_ERR_INVALID_ARG for a signal shorter than one frame; this returns 0 frames.
    """
    frame = FrameProcessor(config)
    x = _as_float_samples(samples).reshape(-1)
    c = frame.config
    n = c.num_frames(x.size)
    out = np.zeros((n, c.feature_dim), dtype=F32)
    for t in range(n):
        out[t] = frame(x[t * c.win_step : t * c.win_step + c.win_len])
    return out
