"""The configuration of ESP-DL's speech front end (``dl::audio::SpeechFeatureConfig``) and its checks.

Field names, meanings and defaults are those of ``SpeechFeatureConfig`` in ESP-DL 3.3.x
(``esp-dl/audio/speech_features/dl_speech_features.hpp``); ``kind`` picks the class
(``dl::audio::Fbank``, ``MFCC`` or ``Spectrogram``).  :meth:`FrontendConfig.validate` turns every
setting that ESP-DL would silently mis-handle (an empty mel filter, a frame shift longer than the
frame, a truncated frequency, a flag the chosen class overrides) into a :class:`FrontendConfigError`
naming the field, the value and the fix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..errors import FrontendConfigError

FeatureKind = Literal["fbank", "mfcc", "spectrogram"]
FEATURE_KINDS: tuple[str, ...] = ("fbank", "mfcc", "spectrogram")

# The names ESP-DL's win_type_from_string() accepts (dl_audio_common.cpp); any other string silently
# becomes WinType::NONE there, here it is an error.
WINDOW_TYPES: tuple[str, ...] = ("hanning", "hann", "sine", "hamming", "povey", "rectangular", "blackman", "none")

# torch.finfo(torch.float32).eps, ESP-DL's default log_epsilon (= Kaldi's floor, FLT_EPSILON).
FLT_EPSILON = 1.1920928955078125e-07


@dataclass(frozen=True)
class FrontendConfig:
    """ESP-DL's ``SpeechFeatureConfig`` plus the feature ``kind``; defaults are ESP-DL's.

    ESP-DL has no dither (its front end is deterministic): compare with Kaldi tools at dither 0.
    """

    kind: FeatureKind = "fbank"
    sample_rate: int = 16000  # Hz
    frame_length: int = 25  # ms (an int in ESP-DL)
    frame_shift: int = 10  # ms (an int in ESP-DL)
    num_mel_bins: int = 26
    num_ceps: int = 13  # MFCC only
    preemphasis: float = 0.97
    cepstral_lifter: float = 22.0  # MFCC only; 0 disables the lifter
    window_type: str = "hanning"
    low_freq: float = 80.0  # Hz; ESP-DL's mel_filter_init() takes it as an int
    high_freq: float = 0.0  # Hz; <= 0 means the Nyquist frequency (unlike Kaldi, not an offset from it)
    log_epsilon: float = FLT_EPSILON
    use_log_fbank: int = 1  # 0: linear, 1: log(max(x, eps)), 2: log(x + eps)
    raw_energy: bool = True  # energy before pre-emphasis and window
    use_power: bool = True  # power (True) or magnitude spectrum
    use_energy: bool = False  # prepend the log energy to the fbank / MFCC output
    use_int16_fft: bool = False  # read by no ESP-DL 3.3 class; must stay False
    remove_dc_offset: bool = True

    # ---- derived sizes (ESP-DL's SpeechFeatureBase constructor) ----

    @property
    def win_len(self) -> int:
        """Samples per frame: ``frame_length * sample_rate / 1000`` in C int arithmetic."""
        return self.frame_length * self.sample_rate // 1000

    @property
    def win_step(self) -> int:
        """Samples per shift: ``frame_shift * sample_rate / 1000`` in C int arithmetic."""
        return self.frame_shift * self.sample_rate // 1000

    @property
    def fft_size(self) -> int:
        """``next_power_of_2(win_len)`` (a power of two is kept as it is)."""
        n = 1
        while n < self.win_len:
            n <<= 1
        return n

    @property
    def effective_high_freq(self) -> int:
        """The upper mel edge in Hz as mel_filter_init() uses it (int; Nyquist when <= 0 or <= low_freq)."""
        high = self.sample_rate / 2.0 if self.high_freq <= 0 else self.high_freq
        high_i = int(high)
        if high_i <= int(self.low_freq):
            high_i = self.sample_rate // 2
        return high_i

    @property
    def feature_dim(self) -> int:
        """Floats per output frame (``m_feature_dim``)."""
        if self.kind == "spectrogram":
            return self.fft_size // 2 + 1
        base = self.num_ceps if self.kind == "mfcc" else self.num_mel_bins
        return base + 1 if self.use_energy else base

    def num_frames(self, num_samples: int) -> int:
        """ESP-DL's get_frame_num(): ``1 + (n - win_len) / win_step`` frames, 0 if shorter than a frame."""
        if num_samples < self.win_len:
            return 0
        return 1 + (num_samples - self.win_len) // self.win_step

    # ---- checks ----

    def validate(self, *, filters: bool = True) -> FrontendConfig:
        """Raise :class:`FrontendConfigError` for any setting ESP-DL would reject or silently mis-handle.

        Returns ``self`` so that ``FrontendConfig(...).validate()`` can be used inline.  ``filters=False`` leaves
        out the mel-filter checks, the only ones that need numpy (the declaration is parsed without numpy, so
        that a build cache hit imports none; the build makes them).
        """

        def fail(field: str, value: object, why: str) -> FrontendConfigError:
            return FrontendConfigError(f"front end {field}={value!r}: {why}")

        if self.kind not in FEATURE_KINDS:
            raise fail("kind", self.kind, f"must be one of {', '.join(FEATURE_KINDS)}")
        for name in ("sample_rate", "frame_length", "frame_shift", "num_mel_bins", "num_ceps", "use_log_fbank"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise fail(name, value, "must be an integer (an int field of ESP-DL's SpeechFeatureConfig)")
        if self.sample_rate <= 0 or self.sample_rate % 2:
            raise fail(
                "sample_rate",
                self.sample_rate,
                "must be a positive even number of Hz (ESP-DL halves it in integer arithmetic for the Nyquist edge)",
            )
        for name in ("frame_length", "frame_shift"):
            ms = getattr(self, name)
            if ms <= 0:
                raise fail(name, ms, "must be a positive number of milliseconds")
            if (ms * self.sample_rate) % 1000:
                raise fail(
                    "sample_rate",
                    self.sample_rate,
                    f"{name}={ms} ms is {ms * self.sample_rate / 1000:g} samples at this rate and ESP-DL would "
                    "truncate it; use a sample rate that is a multiple of 1000 Hz (8000, 16000, 32000, 48000, ...) "
                    "or a frame length and shift that are whole samples",
                )
        if self.frame_shift > self.frame_length:
            raise fail(
                "frame_shift",
                self.frame_shift,
                f"is longer than frame_length={self.frame_length} ms, so samples between frames would be "
                "skipped; use a shift <= the frame length",
            )
        if self.win_len < 16:
            raise fail("frame_length", self.frame_length, f"is only {self.win_len} samples; use at least 16")
        if self.window_type not in WINDOW_TYPES:
            raise fail("window_type", self.window_type, f"must be one of {', '.join(WINDOW_TYPES)}")
        if not 0.0 <= self.preemphasis < 1.0:
            raise fail("preemphasis", self.preemphasis, "must be in [0, 1) (ESP-DL asserts it)")
        if self.use_log_fbank not in (0, 1, 2):
            raise fail(
                "use_log_fbank", self.use_log_fbank, "must be 0 (linear), 1 (log(max(x, eps))) or 2 (log(x+eps))"
            )
        if not self.log_epsilon > 0.0:
            raise fail("log_epsilon", self.log_epsilon, "must be > 0")
        if self.use_int16_fft:
            raise fail(
                "use_int16_fft", True, "ESP-DL 3.3's Fbank, MFCC and Spectrogram ignore it (float FFT); leave False"
            )
        nyquist = self.sample_rate // 2
        for name in ("low_freq", "high_freq"):
            value = getattr(self, name)
            if float(value) != int(value):
                raise fail(
                    name, value, f"ESP-DL's mel_filter_init() takes whole Hz and would use {int(value)}; give whole Hz"
                )
        if self.low_freq < 0 or self.low_freq >= nyquist:
            raise fail("low_freq", self.low_freq, f"must be in [0, {nyquist}) Hz (the Nyquist frequency)")
        if self.high_freq < 0:
            raise fail(
                "high_freq",
                self.high_freq,
                "negative: Kaldi reads it as an offset from Nyquist but ESP-DL as Nyquist itself; "
                f"give the edge in Hz ({nyquist + self.high_freq:g}) or 0 for Nyquist",
            )
        if self.high_freq > nyquist:
            raise fail("high_freq", self.high_freq, f"is above the Nyquist frequency {nyquist} Hz")
        if self.high_freq > 0 and self.high_freq <= self.low_freq:
            raise fail(
                "high_freq",
                self.high_freq,
                f"must be above low_freq={self.low_freq} (ESP-DL would silently use {nyquist} Hz)",
            )
        if self.kind == "spectrogram":
            self._check_forced(("use_energy", False), ("use_power", True), ("use_log_fbank", 1))
            return self
        if self.num_mel_bins < 1:
            raise fail("num_mel_bins", self.num_mel_bins, "must be >= 1")
        if self.kind == "mfcc":
            self._check_forced(("use_power", True), ("use_log_fbank", 1))
            if not 1 <= self.num_ceps <= self.num_mel_bins:
                raise fail("num_ceps", self.num_ceps, f"must be in [1, num_mel_bins={self.num_mel_bins}]")
            if self.fft_size // 2 + 1 + self.num_mel_bins > self.fft_size:
                raise fail(
                    "num_mel_bins",
                    self.num_mel_bins,
                    f"MFCC keeps the mel energies behind the {self.fft_size // 2 + 1} spectrum bins of its "
                    f"{self.fft_size}-float buffer, so at most {self.fft_size // 2 - 1} mel bins fit "
                    "(ESP-DL returns ESP_ERR_INVALID_SIZE on every frame); use fewer mel bins or a longer frame",
                )
        if not filters:
            return self
        from .frontend import mel_filterbank  # the filters are what decides whether the mel count fits

        banks = mel_filterbank(self)
        feat_width = self.fft_size // 2 + 1
        for k, (start, stop, coeffs) in enumerate(banks):
            if stop == -1 and start >= 1 and coeffs.size == feat_width - start:
                # The filter's upper edge is the Nyquist frequency and float rounding puts the last edge a hair
                # above the Nyquist bin's mel value: mel_filter_init() never sets the filter's end, and
                # mel_dotprod() then runs a negative-length dot product (0 on the portable build).
                raise fail(
                    "num_mel_bins",
                    self.num_mel_bins,
                    f"ESP-DL's mel_filter_init() leaves the end of mel filter {k} unset with this setting "
                    f"(float rounding at the Nyquist edge {self.effective_high_freq} Hz), so that mel bin would be "
                    f"wrong on the chip; set high_freq={self.effective_high_freq - 1} or change num_mel_bins or "
                    "low_freq",
                )
            if start < 1 or stop < start or coeffs.size != stop - start + 1:
                raise fail(
                    "num_mel_bins",
                    self.num_mel_bins,
                    f"mel filter {k} covers no FFT bin of the {self.fft_size}-point FFT between "
                    f"{int(self.low_freq)} and {self.effective_high_freq} Hz (ESP-DL would output garbage for it); "
                    "use fewer mel bins, a wider frequency range or a longer frame",
                )
        return self

    def _check_forced(self, *pairs: tuple[str, object]) -> None:
        for name, forced in pairs:
            if getattr(self, name) != forced:
                raise FrontendConfigError(
                    f"front end {name}={getattr(self, name)!r}: ESP-DL's {self.kind} class forces "
                    f"{name}={forced!r} and would ignore this setting; leave it at {forced!r}"
                )
