"""The front end's golden vectors: the PCM a generated class's ``self_test()`` pushes, and how far the
target's front end may be from the features the build computed from it.

The golden PCM is synthesized (nothing of the user's audio is embedded in the firmware): a voiced sound
whose pitch glides (harmonics shaped by two formants) over low-level noise, with a quiet start. It is
broadband, so every mel filter gets energy: the features are well conditioned in float32, and a
difference between the chip's front end and the build's is a real difference, not rounding noise in a
filter that sees nothing.

Tolerance (:func:`feature_tolerance`): the chip computes its features with ESP-DL's float32 FFT and, on
ESP32-S3/P4, SIMD dot products summed in another order; the build's front end follows ESP-DL's
portable C++ with a float64 FFT rounded to float32 (audio/frontend.py). Log features (fbank with a
log, MFCC, spectrogram) must agree within 1e-2 absolute, ESP-DL's own pass criterion for its front
end against torchaudio (test_apps/dl_audio, check_is_same); linear fbank within 1e-4 of the frame's
largest value. On ESP-IDF's linux target and host builds the host port computes the same floats as
the build (python/tests/test_frontend.py), so the check is exact there in practice.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .config import FrontendConfig

__all__ = ["LOG_ABS_TOL", "LINEAR_REL_TOL", "feature_tolerance", "golden_pcm"]

#: Log features: max |target - build| (ESP-DL's check_is_same bound).
LOG_ABS_TOL = 1e-2
#: Linear fbank: max |target - build| / the frame's largest |build| value.
LINEAR_REL_TOL = 1e-4

_SEED = 20261204


def feature_tolerance(config: FrontendConfig) -> tuple[float, float]:
    """(absolute, relative to the frame's largest |value|): a feature passes when
    ``|got - want| <= absolute + relative * max|want of its frame|``."""
    linear = config.kind == "fbank" and config.use_log_fbank == 0
    return (0.0, LINEAR_REL_TOL) if linear else (LOG_ABS_TOL, 0.0)


def golden_pcm(config: FrontendConfig, frames: int) -> npt.NDArray[np.int16]:
    """int16 PCM giving exactly `frames` feature frames, plus half a shift left pending (push_samples keeps
    it for the next call): ``win_len + (frames - 1) * win_step + win_step // 2`` samples."""
    if frames <= 0:
        raise ValueError(f"golden_pcm: {frames} frames")
    n = config.win_len + (frames - 1) * config.win_step + config.win_step // 2
    rate = float(config.sample_rate)
    t = np.arange(n, dtype=np.float64) / rate
    f0 = 120.0 + 80.0 * t / max(t[-1], 1e-9)  # pitch glide, 120 -> 200 Hz
    phase = 2 * np.pi * np.cumsum(f0) / rate
    nyquist = rate / 2
    voiced = np.zeros(n)
    for h in range(1, 64):
        freq = h * f0
        if freq[0] >= nyquist * 0.95:
            break
        # Two formants (~700 Hz, ~1800 Hz scaled to the rate) over a -6 dB/octave slope.
        gain = (
            1.0 / h
            + 0.8 * np.exp(-(((freq - 0.0875 * nyquist) / 150.0) ** 2))
            + 0.5 * np.exp(-(((freq - 0.225 * nyquist) / 250.0) ** 2))
        )
        voiced += np.where(freq < nyquist * 0.95, gain, 0.0) * np.sin(h * phase)
    voiced /= np.abs(voiced).max()
    noise = np.random.default_rng(_SEED).standard_normal(n)
    envelope = np.minimum(1.0, t / 0.02 + 0.05)  # a quiet start, then steady
    x = 0.25 * envelope * voiced + 0.01 * noise
    return np.clip(np.round(x * 32767.0), -32768, 32767).astype(np.int16)
