"""What ESP-DL's speech front end costs on the chip: arithmetic per second of audio and RAM.

:func:`frontend_cost` counts, for one :class:`~.config.FrontendConfig`, what ``dl::audio``'s
``process_frame`` (ESP-DL 3.3.x, ``esp-dl/audio/``) and its real FFT (``dl_rfft_f32_run``, the
``dl_fft`` component 0.6.0 that ESP-DL 3.3 depends on) compute per feature frame, and what their
constructors allocate.  The generated class computes one frame per frame shift, so the cost per second of
audio is the cost per frame times ``frames_per_second = sample_rate / win_step``.  Standard library only
(no numpy): it runs wherever a report is written.

Counting convention: a *MAC* is one real multiplication, together with the addition that accumulates its
product when the C does one (``sum += w[i] * x[i]`` is one MAC; ``c * a + s * b`` two); a division counts as
one MAC.  *adds* are the other real additions and subtractions.  *logs* are ``logf`` calls, *sqrts*
``sqrtf`` calls (the magnitude spectrum).  Copies, zero padding, comparisons (``max(x, eps)``) and the
FFT's bit-reversal swaps are not arithmetic and are not counted.  Per frame, with ``L = win_len``,
``N = fft_size``, ``F = N/2 + 1`` spectrum bins:

- DC offset removal (``remove_dc_offset``): ``2L`` adds and one division (1 MAC);
- log energy (``use_energy``; always for the spectrogram): ``L`` MACs and one log;
- pre-emphasis (``preemphasis > 1e-7``): ``L`` MACs;
- window (unless ``none``): ``L`` MACs;
- real FFT of ``N`` points, as ``dl_rfft_f32_run`` does it: a complex FFT of ``M = N/2`` points, radix-4
  when ``log2(N)`` is odd (``M`` is then a power of 4: ``M/4 * log4(M)`` butterflies of 12 MACs (3 complex
  twiddle products) and 20 adds (the C's 24, with ``in0 ± in2`` shared)), radix-2 otherwise (``M/2 *
  log2(M)`` butterflies of 4 MACs and 4 adds); then the real post-processing, ``M/2`` steps of 8 MACs and
  8 adds, plus 2 adds.  So 512 points: 256 radix-4 butterflies + 128 steps = 4096 MACs; 256 points: 448
  radix-2 butterflies + 64 steps = 2304 MACs;
- power spectrum: ``N`` MACs (``re*re + im*im`` per bin, ``F - 2`` bins, plus DC and Nyquist); magnitude
  spectrum (fbank with ``use_power`` off): ``N - 2`` MACs and ``F - 2`` sqrts;
- mel filters (fbank, MFCC): one MAC per nonzero filter weight (:func:`mel_weight_counts`: computed as
  ``mel_filter_init`` does, in float32, and equal to :func:`~.frontend.mel_filterbank`'s);
- logarithms: one per mel bin (fbank with ``use_log_fbank`` 1 or 2, plus one add each for 2; MFCC always),
  ``F - 1`` for the spectrogram;
- DCT (MFCC): ``num_ceps * num_mel_bins`` MACs; lifter (``cepstral_lifter != 0``): ``num_ceps`` MACs.

Not counted: the generated class's int16 to float conversion of the pushed PCM (one division per sample)
and the shift of its window between frames (a memmove).

RAM: what the constructors allocate on the heap when the class is initialised, byte for byte as requested
from ``heap_caps_malloc`` (the allocator's per-block overhead comes on top), on a 32-bit chip:

- ``dl_rfft_f32_init(N)``: the ``dl_fft_f32_t`` handle (24 B); the real-FFT twiddles
  (``dl_gen_rfft_table_f32``: ``N`` floats); the complex FFT twiddles: radix-4 ``dl_gen_fft4r_table_f32(N)``
  (``2N`` floats), radix-2 ``dl_gen_fft2r_table_f32(N/2)`` (``N/2`` floats); the bit-reversal table:
  radix-2 ``dl_gen_bitrev2r_table(N/2)`` (two ``uint16_t`` per swapped pair), radix-4 none
  (``dl_gen_bitrev4r_table`` is passed ``N``, whose odd ``log2`` makes it return no table, and the swaps are
  computed on the fly);
- the FFT work buffer ``m_cache``: ``N`` floats, in internal RAM;
- ``win_func_init``: ``L`` floats (none for ``window_type`` ``none``);
- ``mel_filter_init`` (fbank, MFCC): the ``mel_filter_t`` struct (12 B), ``2F`` float coefficients
  (allocated for the worst case, whatever the filters use) and ``2 * num_mel_bins`` int positions; its two
  temporary arrays (``num_mel_bins + 2 + F`` floats) are freed before it returns;
- MFCC: the DCT matrix (``num_ceps * num_mel_bins`` floats) and the lifter (``num_ceps`` floats, unless
  ``cepstral_lifter`` is 0).

Plus the generated class's own members: the frame being filled (``L`` floats) and the feature frame
(``feature_dim`` floats).
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from fractions import Fraction

from ..report import FrontendCostReport, FrontendRamReport, FrontendReport, FrontendStageReport
from .config import FrontendConfig

__all__ = [
    "FFT_HANDLE_BYTES",
    "MEL_FILTER_STRUCT_BYTES",
    "FftCost",
    "FrontendCost",
    "RamItem",
    "StageCost",
    "bitrev2r_pairs",
    "cost_report",
    "frontend_cost",
    "mel_weight_counts",
    "model_macs_per_second",
    "rfft_cost",
]

#: sizeof(dl_fft_f32_t) on a 32-bit chip: fft_point, log2n, fft_table, rfft_table, bitrev_table, bitrev_size.
FFT_HANDLE_BYTES = 24
#: sizeof(mel_filter_t) on a 32-bit chip: coeff, bank_pos, nfilter.
MEL_FILTER_STRUCT_BYTES = 12
FLOAT = 4
INT = 4
UINT16 = 2

HEAP = "heap"  # allocated by dl::audio's constructors when the class is initialised
CLASS = "class"  # the generated class's own members


@dataclass(frozen=True)
class StageCost:
    """One stage of ``process_frame``: its arithmetic per feature frame."""

    stage: str  # a stable id: dc_removal, energy, preemphasis, window, fft, spectrum, mel, log, dct, lifter
    detail: str  # what it computes, in words, with this configuration's sizes
    macs: int
    adds: int = 0
    logs: int = 0
    sqrts: int = 0


@dataclass(frozen=True)
class RamItem:
    """One allocation: ``where`` is :data:`HEAP` (dl::audio's constructors) or :data:`CLASS` (class members)."""

    item: str
    detail: str
    where: str
    bytes: int


@dataclass(frozen=True)
class FftCost:
    """``dl_rfft_f32_run`` of ``points`` real samples: a complex FFT of ``points/2`` then the post-processing."""

    points: int
    radix: int  # 4 when log2(points) is odd, else 2
    stages: int
    butterflies: int
    macs: int
    adds: int


def rfft_cost(points: int) -> FftCost:
    """The arithmetic of ``dl_rfft_f32_run`` for a power of two ``points`` >= 4 (see the module docstring)."""
    if points < 4 or points & (points - 1):
        raise ValueError(f"the real FFT needs a power of two >= 4 points, got {points}")
    m = points // 2  # complex points
    log2m = m.bit_length() - 1
    if (log2m + 1) % 2 == 1:  # log2(points) odd: dl_fft4r_fc32 on M = 4^k points
        radix, stages = 4, log2m // 2
        butterflies = m // 4 * stages
        macs, adds = 12 * butterflies, 20 * butterflies
    else:  # dl_fft2r_fc32 on M = 2^(odd) points
        radix, stages = 2, log2m
        butterflies = m // 2 * stages
        macs, adds = 4 * butterflies, 4 * butterflies
    post = m // 2  # dl_rfft_post_proc_fc32_ansi: k = 1 .. M/2
    return FftCost(points, radix, stages, butterflies, macs + 8 * post, adds + 8 * post + 2)


def bitrev2r_pairs(n: int) -> int:
    """The pairs ``dl_gen_bitrev2r_table(n)`` stores (its loop, as written)."""
    count = j = 0
    for i in range(1, n - 1):
        k = n >> 1
        while k <= j:
            j -= k
            k >>= 1
        j += k
        if i < j:
            count += 1
    return count


# ---- the mel filters in float32, without numpy ----

_F32 = struct.Struct("<f")


def _f32(x: float) -> float:
    """``x`` rounded to float32 (a float32 operation on float32 operands, done in double and rounded, is
    correctly rounded: what C's float arithmetic and numpy's float32 give)."""
    if math.isnan(x) or math.isinf(x):
        return x
    try:
        value: float = _F32.unpack(_F32.pack(x))[0]
    except OverflowError:
        return math.copysign(math.inf, x)
    return value


def _div32(a: float, b: float) -> float:
    """``a / b`` in float32, IEEE division by zero included (numpy's result, without its warning)."""
    if b == 0.0:
        if a == 0.0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return _f32(a / b)


def _hz2mel(hz: float) -> float:
    """``hz2mel()`` as frontend._hz2mel computes it: ``1127.0 * logf(1.0 + x / 700.0)``."""
    inner = _f32(1.0 + _f32(hz) / 700.0)
    return _f32(1127.0 * _f32(math.log(inner)))


def mel_weight_counts(config: FrontendConfig) -> list[int]:
    """Per mel filter, its positive weights: ``mel_filter_init()``'s float32 arithmetic step by step, as
    :func:`~.frontend.mel_filterbank` does it (the same counts as its coefficient arrays' sizes)."""
    nfft, nfilter, sr = config.fft_size, config.num_mel_bins, config.sample_rate
    feat_width = nfft // 2 + 1
    lowmel = _hz2mel(float(int(config.low_freq)))
    highmel = _hz2mel(float(config.effective_high_freq))
    nyquist = _f32(sr / 2.0)
    step = _div32(_f32(highmel - lowmel), float(nfilter + 1))
    edges = [_f32(_f32(step * i) + lowmel) for i in range(nfilter + 2)]
    denom = float(feat_width - 1)
    mel = [_hz2mel(_div32(_f32(i * nyquist), denom)) for i in range(1, feat_width)]  # bin 0 is never used
    counts: list[int] = []
    for k in range(nfilter):
        lo, mid, hi = edges[k], edges[k + 1], edges[k + 2]
        rise, fall = _f32(mid - lo), _f32(hi - mid)
        n = 0
        for m in mel:
            lower = _div32(_f32(m - lo), rise)
            upper = _div32(_f32(hi - m), fall)
            if lower > 0.0 and upper > 0.0:  # min(lower, upper) > 0 (NaN: neither)
                n += 1
        counts.append(n)
    return counts


# ---- the whole front end ----


@dataclass(frozen=True)
class FrontendCost:
    """The front end's arithmetic per frame (by stage) and per second of audio, and its RAM."""

    kind: str
    frames_per_second: Fraction  # sample_rate / win_step
    fft: FftCost
    stages: tuple[StageCost, ...]  # per frame, in process_frame's order; stages that do not run are absent
    ram: tuple[RamItem, ...]

    @property
    def macs_per_frame(self) -> int:
        return sum(s.macs for s in self.stages)

    @property
    def adds_per_frame(self) -> int:
        return sum(s.adds for s in self.stages)

    @property
    def logs_per_frame(self) -> int:
        return sum(s.logs for s in self.stages)

    @property
    def sqrts_per_frame(self) -> int:
        return sum(s.sqrts for s in self.stages)

    @property
    def macs_per_second(self) -> Fraction:
        return self.macs_per_frame * self.frames_per_second

    @property
    def logs_per_second(self) -> Fraction:
        return self.logs_per_frame * self.frames_per_second

    @property
    def heap_bytes(self) -> int:
        return sum(r.bytes for r in self.ram if r.where == HEAP)

    @property
    def class_bytes(self) -> int:
        return sum(r.bytes for r in self.ram if r.where == CLASS)

    @property
    def ram_bytes(self) -> int:
        return sum(r.bytes for r in self.ram)

    def model_ratio(self, macs_per_chunk: int, chunk_frames: int) -> Fraction | None:
        """Front-end MACs per second over the model's (None when the model has no MACs)."""
        model = model_macs_per_second(macs_per_chunk, chunk_frames, self.frames_per_second)
        return None if model == 0 else self.macs_per_second / model


def model_macs_per_second(macs_per_chunk: int, chunk_frames: int, frames_per_second: Fraction) -> Fraction:
    """The model's MACs per second of audio: one chunk of ``chunk_frames`` frames per ``chunk_frames`` shifts."""
    if chunk_frames <= 0:
        raise ValueError(f"chunk_frames must be positive, got {chunk_frames}")
    return Fraction(macs_per_chunk) * frames_per_second / chunk_frames


def frontend_cost(config: FrontendConfig) -> FrontendCost:
    """The cost of ``config`` (validated without the mel-filter checks, which need numpy)."""
    c = config.validate(filters=False)
    win, n, kind = c.win_len, c.fft_size, c.kind
    feat_width = n // 2 + 1
    mels = c.num_mel_bins
    stages: list[StageCost] = []
    if c.remove_dc_offset:
        stages.append(StageCost("dc_removal", f"mean of the {win} samples subtracted from each", 1, 2 * win))
    energy = c.use_energy or kind == "spectrogram"
    energy_stage = StageCost(
        "energy",
        f"log energy: sum of the {win} squared samples ({'before' if c.raw_energy else 'after'} pre-emphasis and "
        "window), one log",
        win,
        logs=1,
    )
    if energy and c.raw_energy:
        stages.append(energy_stage)
    if c.preemphasis > 1e-7:
        stages.append(StageCost("preemphasis", f"x[i] - {c.preemphasis:g} * x[i-1] over {win} samples", win))
    if c.window_type != "none":
        stages.append(StageCost("window", f"{c.window_type} window: {win} products", win))
    if energy and not c.raw_energy:
        stages.append(energy_stage)
    fft = rfft_cost(n)
    stages.append(
        StageCost(
            "fft",
            f"{n}-point real FFT (dl_rfft_f32_run): radix-{fft.radix} complex FFT of {n // 2} points, "
            f"{fft.stages} stages, {fft.butterflies} butterflies, then {n // 4} real post-processing steps",
            fft.macs,
            fft.adds,
        )
    )
    power = c.use_power or kind != "fbank"  # MFCC and the spectrogram force the power spectrum
    if power:
        stages.append(StageCost("spectrum", f"power spectrum of {feat_width} bins", n))
    else:
        stages.append(StageCost("spectrum", f"magnitude spectrum of {feat_width} bins", n - 2, sqrts=feat_width - 2))
    log_mode = c.use_log_fbank if kind == "fbank" else 1  # MFCC and the spectrogram force 1
    if kind == "spectrogram":
        stages.append(StageCost("log", f"log of {feat_width - 1} spectrum bins", 0, logs=feat_width - 1))
    else:
        weights = sum(mel_weight_counts(c))
        stages.append(StageCost("mel", f"{mels} mel filters: {weights} nonzero weights", weights))
        if log_mode:
            how = "log(max(x, eps))" if log_mode == 1 else "log(x + eps)"
            stages.append(
                StageCost("log", f"{how} of {mels} mel energies", 0, adds=mels if log_mode == 2 else 0, logs=mels)
            )
    if kind == "mfcc":
        stages.append(StageCost("dct", f"DCT: {c.num_ceps} x {mels} matrix", c.num_ceps * mels))
        if c.cepstral_lifter != 0:
            stages.append(StageCost("lifter", f"lifter of {c.num_ceps} coefficients", c.num_ceps))

    ram: list[RamItem] = [
        RamItem("fft_handle", "dl_rfft_f32_init: the dl_fft_f32_t handle", HEAP, FFT_HANDLE_BYTES),
        RamItem("rfft_table", f"dl_gen_rfft_table_f32({n}): {n // 2} real-FFT twiddles", HEAP, FLOAT * n),
    ]
    if fft.radix == 4:
        ram.append(RamItem("fft_table", f"dl_gen_fft4r_table_f32({n}): {n} complex twiddles", HEAP, FLOAT * 2 * n))
    else:
        pairs = bitrev2r_pairs(n // 2)
        ram.append(
            RamItem("fft_table", f"dl_gen_fft2r_table_f32({n // 2}): {n // 4} complex twiddles", HEAP, FLOAT * n // 2)
        )
        ram.append(RamItem("bitrev_table", f"dl_gen_bitrev2r_table({n // 2}): {pairs} swaps", HEAP, UINT16 * 2 * pairs))
    ram.append(RamItem("fft_buffer", f"the FFT work buffer m_cache: {n} floats, internal RAM", HEAP, FLOAT * n))
    if c.window_type != "none":
        ram.append(RamItem("window", f"win_func_init: {win} window coefficients", HEAP, FLOAT * win))
    if kind != "spectrogram":
        ram.append(RamItem("mel_filter", "mel_filter_init: the mel_filter_t struct", HEAP, MEL_FILTER_STRUCT_BYTES))
        ram.append(
            RamItem(
                "mel_coefficients",
                f"mel_filter_init: {2 * feat_width} float coefficients (room for 2 x {feat_width} bins)",
                HEAP,
                FLOAT * 2 * feat_width,
            )
        )
        ram.append(
            RamItem("mel_positions", f"mel_filter_init: first and last bin of {mels} filters", HEAP, INT * 2 * mels)
        )
    if kind == "mfcc":
        ram.append(
            RamItem("dct_matrix", f"gen_dct_matrix: {c.num_ceps} x {mels} floats", HEAP, FLOAT * c.num_ceps * mels)
        )
        if c.cepstral_lifter != 0:
            ram.append(RamItem("lifter", f"gen_lifter_coeffs: {c.num_ceps} floats", HEAP, FLOAT * c.num_ceps))
    ram.append(RamItem("frame_buffer", f"the frame being filled: {win} floats", CLASS, FLOAT * win))
    ram.append(RamItem("feature_buffer", f"the feature frame: {c.feature_dim} floats", CLASS, FLOAT * c.feature_dim))
    return FrontendCost(kind, Fraction(c.sample_rate, c.win_step), fft, tuple(stages), tuple(ram))


def cost_report(cost: FrontendCost, macs_per_chunk: int, chunk_frames: int) -> FrontendCostReport:
    """The report's ``frontend.cost``: per-second figures rounded to 3 decimals, the ratio to 4."""
    model = model_macs_per_second(macs_per_chunk, chunk_frames, cost.frames_per_second)
    ratio = cost.model_ratio(macs_per_chunk, chunk_frames)
    return FrontendCostReport(
        frames_per_second=round(float(cost.frames_per_second), 3),
        stages=[FrontendStageReport(s.stage, s.detail, s.macs, s.adds, s.logs, s.sqrts) for s in cost.stages],
        macs_per_frame=cost.macs_per_frame,
        logs_per_frame=cost.logs_per_frame,
        macs_per_second=round(float(cost.macs_per_second), 3),
        logs_per_second=round(float(cost.logs_per_second), 3),
        model_macs_per_second=round(float(model), 3),
        frontend_to_model_macs_ratio=None if ratio is None else round(float(ratio), 4),
        ram=[FrontendRamReport(r.item, r.detail, r.where, r.bytes) for r in cost.ram],
        heap_bytes=cost.heap_bytes,
        class_bytes=cost.class_bytes,
        ram_bytes=cost.ram_bytes,
    )


def frontend_report(config: FrontendConfig, resample: bool, macs_per_chunk: int, chunk_frames: int) -> FrontendReport:
    """The report's ``frontend`` section of a model with this front end (build.py writes it)."""
    return FrontendReport(
        kind=config.kind,
        sample_rate=config.sample_rate,
        feature_dim=config.feature_dim,
        frame_length_samples=config.win_len,
        frame_shift_samples=config.win_step,
        fft_size=config.fft_size,
        resample=resample,
        config={name: getattr(config, name) for name in FrontendConfig.__dataclass_fields__},
        cost=cost_report(frontend_cost(config), macs_per_chunk, chunk_frames),
    )
