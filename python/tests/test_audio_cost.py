"""The speech front end's cost model (audio/cost.py): arithmetic per second of audio and RAM, counted as ESP-DL's
dl::audio and dl_fft compute and allocate, and the report's ``frontend.cost`` part. No model is built."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

from espdl_streaming.audio.config import FrontendConfig
from espdl_streaming.audio.cost import (
    CLASS,
    HEAP,
    bitrev2r_pairs,
    frontend_cost,
    frontend_report,
    mel_weight_counts,
    model_macs_per_second,
    rfft_cost,
)
from espdl_streaming.audio.frontend import mel_filterbank
from espdl_streaming.report import BuildReport, FrontendCostReport, FrontendReport

SAMPLE = Path(__file__).resolve().parent / "data" / "report_sample.json"

MEL_CONFIGS = {
    "fbank-default": FrontendConfig(),
    "fbank-40-povey": FrontendConfig(num_mel_bins=40, window_type="povey", low_freq=20),
    "fbank-80-povey-energy": FrontendConfig(num_mel_bins=80, window_type="povey", low_freq=20, use_energy=True),
    "fbank-8k-23": FrontendConfig(sample_rate=8000, num_mel_bins=23, low_freq=20),
    "fbank-8k-40-3400": FrontendConfig(sample_rate=8000, num_mel_bins=40, low_freq=100, high_freq=3400),
    "fbank-48k-64-32ms": FrontendConfig(sample_rate=48000, frame_length=32, frame_shift=16, num_mel_bins=64),
    "fbank-16k-80-7600": FrontendConfig(num_mel_bins=80, low_freq=20, high_freq=7600, frame_length=32),
    "mfcc-default": FrontendConfig(kind="mfcc"),
    "mfcc-40-povey": FrontendConfig(kind="mfcc", num_mel_bins=40, window_type="povey", low_freq=20),
    "mfcc-80-30": FrontendConfig(kind="mfcc", num_mel_bins=80, num_ceps=30, low_freq=20, frame_length=32),
}


@pytest.mark.parametrize("name", sorted(MEL_CONFIGS))
def test_mel_weights_equal_the_numpy_filterbank(name: str) -> None:
    config = MEL_CONFIGS[name].validate()
    counts = mel_weight_counts(config)
    banks = mel_filterbank(config)
    assert counts == [coeffs.size for _, _, coeffs in banks]
    assert counts == [stop - start + 1 for start, stop, _ in banks]  # mel_dotprod()'s lengths
    cost = frontend_cost(config)
    mel = [s for s in cost.stages if s.stage == "mel"]
    assert len(mel) == 1 and mel[0].macs == sum(counts) > 0


def test_spectrogram_has_no_mel_stage() -> None:
    cost = frontend_cost(FrontendConfig(kind="spectrogram"))
    assert [s.stage for s in cost.stages] == ["dc_removal", "energy", "preemphasis", "window", "fft", "spectrum", "log"]
    assert not any(r.item.startswith("mel") for r in cost.ram)
    log = cost.stages[-1]
    assert log.logs == 256 and cost.logs_per_frame == 257  # bins 1..256, and the energy


def _hand_rfft(points: int) -> tuple[int, int]:
    """(MACs, adds) of dl_rfft_f32_run, derived from its source step by step."""
    m = points // 2  # complex points
    if points == 512:  # log2(512) = 9 is odd: dl_fft4r_fc32 on 256 = 4^4 points
        stages, per_stage = 4, 256 // 4  # 4 stages of 64 radix-4 butterflies
        # each: 3 twiddle products (re, im: 2 MACs each) = 12 MACs; 8 outputs of 3 adds, in0±in2 shared: 20 adds
        fft_macs, fft_adds = stages * per_stage * 12, stages * per_stage * 20
    else:  # 256: log2 = 8 is even: dl_fft2r_fc32 on 128 = 2^7 points
        stages, per_stage = 7, 128 // 2  # 7 stages of 64 radix-2 butterflies
        # each: re_temp, im_temp (2 MACs each) = 4 MACs; data[m] -/+, data[ia] +/- (re, im): 4 adds
        fft_macs, fft_adds = stages * per_stage * 4, stages * per_stage * 4
    # dl_rfft_post_proc_fc32_ansi: k = 1 .. m/2: f1k, f2k 4 adds; tw 4 MACs; 4 outputs 0.5 * (a ± b): 4 MACs, 4 adds
    post = m // 2
    return fft_macs + 8 * post, fft_adds + 8 * post + 2  # + result[0]: 2 adds


@pytest.mark.parametrize("points", [512, 256])
def test_fft_count_against_a_hand_derivation(points: int) -> None:
    fft = rfft_cost(points)
    assert (fft.macs, fft.adds) == _hand_rfft(points)
    assert (fft.radix, fft.stages, fft.butterflies) == ((4, 4, 256) if points == 512 else (2, 7, 448))
    assert fft.macs == (4096 if points == 512 else 2304)


def test_fft_formula_in_general() -> None:
    for log2n in range(4, 13):
        n = 1 << log2n
        m = n // 2
        fft = rfft_cost(n)
        if log2n % 2:
            assert fft.radix == 4 and fft.butterflies == m // 4 * int(round(math.log(m, 4)))
        else:
            assert fft.radix == 2 and fft.butterflies == m // 2 * (log2n - 1)
    with pytest.raises(ValueError):
        rfft_cost(400)


def test_bitrev_table_of_the_radix2_path() -> None:
    # dl_gen_bitrev2r_table(N): the pairs i < reverse(i); reverse(i) == i for the 2^ceil(bits/2) palindromes
    for bits in range(3, 11):
        n = 1 << bits
        assert bitrev2r_pairs(n) == (n - (1 << ((bits + 1) // 2))) // 2
    radix2 = frontend_cost(FrontendConfig(frame_length=16))  # 256 samples: a 256-point FFT, radix-2
    assert radix2.fft.radix == 2
    items = {r.item: r.bytes for r in radix2.ram}
    assert items["bitrev_table"] == 4 * 56 and items["fft_table"] == 4 * 128 and items["rfft_table"] == 4 * 256
    radix4 = frontend_cost(FrontendConfig())
    assert "bitrev_table" not in {r.item for r in radix4.ram}  # dl_gen_bitrev4r_table(512) makes none


def test_default_fbank_cost_and_ram() -> None:
    cost = frontend_cost(FrontendConfig())
    assert cost.frames_per_second == 100
    per_frame = {s.stage: (s.macs, s.adds, s.logs, s.sqrts) for s in cost.stages}
    assert per_frame == {
        "dc_removal": (1, 800, 0, 0),
        "preemphasis": (400, 0, 0, 0),
        "window": (400, 0, 0, 0),
        "fft": (4096, 6146, 0, 0),
        "spectrum": (512, 0, 0, 0),
        "mel": (481, 0, 0, 0),
        "log": (0, 0, 26, 0),
    }
    assert cost.macs_per_frame == 5890 and cost.macs_per_second == 589000 and cost.logs_per_second == 2600
    ram = {r.item: (r.where, r.bytes) for r in cost.ram}
    assert ram == {
        "fft_handle": (HEAP, 24),
        "rfft_table": (HEAP, 2048),
        "fft_table": (HEAP, 4096),
        "fft_buffer": (HEAP, 2048),
        "window": (HEAP, 1600),
        "mel_filter": (HEAP, 12),
        "mel_coefficients": (HEAP, 2056),
        "mel_positions": (HEAP, 208),
        "frame_buffer": (CLASS, 1600),
        "feature_buffer": (CLASS, 104),
    }
    assert (cost.heap_bytes, cost.class_bytes, cost.ram_bytes) == (12092, 1704, 13796)


@pytest.mark.parametrize(
    "config",
    [
        FrontendConfig(),
        FrontendConfig(kind="mfcc", use_energy=True, raw_energy=False),
        FrontendConfig(kind="mfcc", cepstral_lifter=0.0, window_type="none"),
        FrontendConfig(kind="spectrogram", frame_length=32, frame_shift=16),
        FrontendConfig(use_power=False, use_log_fbank=2, remove_dc_offset=False, preemphasis=0.0),
    ],
)
def test_ram_breakdown_sums(config: FrontendConfig) -> None:
    cost = frontend_cost(config)
    assert cost.heap_bytes + cost.class_bytes == cost.ram_bytes == sum(r.bytes for r in cost.ram)
    assert {r.where for r in cost.ram} == {HEAP, CLASS}
    assert all(r.bytes > 0 for r in cost.ram)
    members = {r.item: r.bytes for r in cost.ram if r.where == CLASS}
    assert members == {"frame_buffer": 4 * config.win_len, "feature_buffer": 4 * config.feature_dim}
    items = {r.item: r.bytes for r in cost.ram}
    assert items["fft_buffer"] == 4 * config.fft_size
    assert ("window" in items) == (config.window_type != "none")
    if config.kind == "mfcc":
        assert items["dct_matrix"] == 4 * config.num_ceps * config.num_mel_bins
        assert items.get("lifter") == (4 * config.num_ceps if config.cepstral_lifter else None)
        assert [s.stage for s in cost.stages][-2:] in (["log", "dct"], ["dct", "lifter"])
    stages = {s.stage: s for s in cost.stages}
    assert ("dc_removal" in stages) == config.remove_dc_offset
    assert ("preemphasis" in stages) == (config.preemphasis > 0)
    if not config.use_power:
        spectrum = stages["spectrum"]
        assert spectrum.sqrts == config.fft_size // 2 - 1 and spectrum.macs == config.fft_size - 2
        assert stages["log"].adds == config.num_mel_bins  # log(x + eps)


def test_cost_scales_with_frames_per_second() -> None:
    base = frontend_cost(FrontendConfig(frame_shift=10))
    for shift in (5, 20, 25, 15):
        other = frontend_cost(FrontendConfig(frame_shift=shift))
        assert other.frames_per_second == Fraction(1000, shift)
        assert other.stages == base.stages and other.ram[:-1] == base.ram[:-1]  # per frame: the same work
        scale = other.frames_per_second / base.frames_per_second
        assert other.macs_per_second == base.macs_per_second * scale
        assert other.logs_per_second == base.logs_per_second * scale
        # the model's MACs per second scale the same way: the ratio does not depend on the frame rate
        assert other.model_ratio(6704, 3) == base.model_ratio(6704, 3)
    assert model_macs_per_second(6704, 3, Fraction(100)) == Fraction(670400, 3)
    assert base.model_ratio(6704, 3) == Fraction(589000 * 3, 670400)
    assert base.model_ratio(0, 3) is None


def test_cost_module_needs_no_numpy() -> None:
    code = (
        "import sys\n"
        "from espdl_streaming.audio.config import FrontendConfig\n"
        "from espdl_streaming.audio.cost import frontend_cost\n"
        "frontend_cost(FrontendConfig(kind='mfcc'))\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- the report's frontend.cost


def _frontend_report(config: FrontendConfig, macs_per_chunk: int = 6704, chunk_frames: int = 3) -> FrontendReport:
    """What build._frontend_report writes for `config`."""
    return frontend_report(config, False, macs_per_chunk, chunk_frames)


def _typed_sample() -> dict[str, Any]:
    """The sample report (an older build's) brought to this version's format."""
    data: dict[str, Any] = json.loads(SAMPLE.read_text())
    data.update(calib_algorithm=None, calib_options=[], dependencies=[])
    return {key: data[key] for key in BuildReport.__dataclass_fields__ if key in data}  # the format's key order


def test_cost_report_values() -> None:
    cost = _frontend_report(FrontendConfig()).cost
    assert cost.frames_per_second == 100.0 and cost.macs_per_frame == 5890 and cost.logs_per_frame == 26
    assert cost.macs_per_second == 589000.0 and cost.logs_per_second == 2600.0
    assert cost.model_macs_per_second == 223466.667  # 6704 MACs per chunk of 3 frames, 100 frames/s
    assert cost.frontend_to_model_macs_ratio == 2.6357
    assert (cost.heap_bytes, cost.class_bytes, cost.ram_bytes) == (12092, 1704, 13796)
    assert _frontend_report(FrontendConfig(), macs_per_chunk=0).cost.frontend_to_model_macs_ratio is None
    odd = _frontend_report(FrontendConfig(frame_shift=15)).cost
    assert odd.frames_per_second == 66.667 and odd.macs_per_second == round(5890 * 1000 / 15, 3)


@pytest.mark.parametrize("config", [FrontendConfig(), FrontendConfig(kind="mfcc"), FrontendConfig(kind="spectrogram")])
def test_report_with_cost_round_trips(config: FrontendConfig) -> None:
    data = _typed_sample()
    data["frontend"] = _frontend_report(config).to_dict()
    text = (json.dumps(data, indent=2) + "\n").encode()
    report = BuildReport.from_json(text)
    assert report.to_json() == text
    assert report.frontend is not None and report.frontend.cost.ram_bytes == frontend_cost(config).ram_bytes
    assert list(data["frontend"]) == [
        "kind", "sample_rate", "feature_dim", "frame_length_samples", "frame_shift_samples", "fft_size", "resample",
        "config", "cost",
    ]  # fmt: skip


def test_report_without_frontend_is_unchanged() -> None:
    data = _typed_sample()
    text = (json.dumps(data, indent=2) + "\n").encode()
    report = BuildReport.from_json(text)
    assert report.frontend is None and report.to_json() == text and b"frontend" not in text


@pytest.mark.parametrize(
    ("path", "change"),
    [
        ((), "extra"),
        ((), "missing"),
        (("stages", 0), "extra"),
        (("stages", 0), "missing"),
        (("ram", 0), "extra"),
        (("ram", 0), "missing"),
    ],
)
def test_cost_keys_are_strict(path: tuple[Any, ...], change: str) -> None:
    fe = _frontend_report(FrontendConfig()).to_dict()
    node: Any = fe["cost"]
    for step in path:
        node = node[step]
    if change == "extra":
        node["unknown"] = 1
    else:
        del node[next(iter(node))]
    with pytest.raises(ValueError, match="frontend.cost"):
        FrontendReport.from_dict(fe)
    del fe["cost"]
    with pytest.raises(ValueError, match=r"frontend: missing keys \['cost'\]"):
        FrontendReport.from_dict(fe)


def test_cost_types_are_checked() -> None:
    fe = _frontend_report(FrontendConfig()).to_dict()
    cost: Any = fe["cost"]
    cost["heap_bytes"] = "12092"
    with pytest.raises(ValueError, match="frontend.cost is not an integer"):
        FrontendReport.from_dict(fe)
    assert FrontendCostReport.from_dict(_frontend_report(FrontendConfig()).cost.to_dict()).ram_bytes == 13796
