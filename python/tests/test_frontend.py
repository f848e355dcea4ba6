"""ESP-DL's speech front end in Python (espdl_streaming.audio) against an independent Kaldi implementation
(kaldi-native-fbank), against ESP-DL's own reference data when an ESP-DL checkout is available, streaming
in random pieces against the whole signal (bit for bit), and the configuration checks.

``python tests/test_frontend.py`` prints the agreement with kaldi-native-fbank per configuration and signal.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import wave
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from espdl_streaming.audio import FrontendConfig, FrontendConfigError, StreamingFrontend, compute_features
from espdl_streaming.audio.frontend import FrameProcessor, mel_filterbank, window_function
from espdl_streaming.errors import DeclarationError

SR = 16000

# --------------------------------------------------------------------------- signals


def _speech_like(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    """Voiced segments (a gliding pitch pulse train through three decaying formant resonances), unvoiced
    noise bursts and near-silent gaps, at a speech-like level."""
    n = int(seconds * sr)
    out = np.zeros(n)
    t = 0
    while t < n:
        seg = int(rng.uniform(0.08, 0.3) * sr)
        kind = rng.integers(0, 3)
        if kind == 0:  # voiced
            f0 = rng.uniform(90, 250)
            pulses = np.zeros(seg)
            phase = np.cumsum(np.full(seg, f0 / sr) * np.linspace(1.0, rng.uniform(0.8, 1.2), seg))
            pulses[np.flatnonzero(np.diff(np.floor(phase), prepend=0) > 0)] = 1.0
            tt = np.arange(256) / sr
            formants = ((rng.uniform(300, 900), 80), (rng.uniform(900, 2500), 120), (rng.uniform(2500, 3500), 200))
            kernel = np.sum([np.exp(-np.pi * bw * tt) * np.sin(2 * np.pi * f * tt) for f, bw in formants], axis=0)
            sig = np.convolve(pulses, kernel)[:seg]
        elif kind == 1:  # unvoiced: high-passed noise burst
            sig = np.diff(rng.standard_normal(seg + 1)) * 0.3
        else:  # pause with a little background noise
            sig = rng.standard_normal(seg) * 1e-3
        env = np.hanning(seg) if kind != 2 else np.ones(seg)
        sig = sig * env
        end = min(n, t + seg)
        out[t:end] = sig[: end - t]
        t = end
    return out / (np.abs(out).max() + 1e-9) * 0.5


def signals(sr: int = SR, seconds: float = 1.0) -> dict[str, np.ndarray]:
    """Float32 test signals in [-1, 1): random, int16-quantized, chirps, speech-like."""
    rng = np.random.default_rng(1234)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    f0, f1 = 100.0, 0.45 * sr
    chirp = np.sin(2 * np.pi * (f0 * t + (f1 - f0) / (2 * seconds) * t * t))
    return {
        "white": (rng.standard_normal(n) * 0.1).astype(np.float32),
        "int16": (np.round(rng.standard_normal(n) * 3000) / 32768).astype(np.float32),
        "chirp": (0.5 * chirp + 1e-3 * rng.standard_normal(n)).astype(np.float32),
        "speech": _speech_like(rng, seconds, sr).astype(np.float32),
    }


# --------------------------------------------------------------------------- kaldi-native-fbank


def knf_features(cfg: FrontendConfig, x: np.ndarray, use_energy: bool | None = None) -> np.ndarray:
    """kaldi-native-fbank's fbank / MFCC of ``x`` for the same settings (dither 0, snip_edges)."""
    import kaldi_native_fbank as knf

    mfcc = cfg.kind == "mfcc"
    opts: Any = knf.MfccOptions() if mfcc else knf.FbankOptions()
    fo = opts.frame_opts
    fo.dither = 0.0
    fo.samp_freq = float(cfg.sample_rate)
    fo.frame_length_ms = float(cfg.frame_length)
    fo.frame_shift_ms = float(cfg.frame_shift)
    fo.preemph_coeff = cfg.preemphasis
    fo.remove_dc_offset = cfg.remove_dc_offset
    fo.window_type = cfg.window_type
    fo.snip_edges = True
    opts.mel_opts.num_bins = cfg.num_mel_bins
    opts.mel_opts.low_freq = float(cfg.low_freq)
    opts.mel_opts.high_freq = float(cfg.high_freq)
    opts.use_energy = cfg.use_energy if use_energy is None else use_energy
    opts.raw_energy = cfg.raw_energy
    opts.energy_floor = 0.0
    if mfcc:
        opts.num_ceps = cfg.num_ceps
        opts.cepstral_lifter = cfg.cepstral_lifter
    else:
        opts.use_power = cfg.use_power
        opts.use_log_fbank = cfg.use_log_fbank != 0
    comp = knf.OnlineMfcc(opts) if mfcc else knf.OnlineFbank(opts)
    comp.accept_waveform(float(cfg.sample_rate), x.tolist())
    comp.input_finished()
    return np.array([comp.get_frame(i) for i in range(comp.num_frames_ready)], dtype=np.float64)


def knf_reference(cfg: FrontendConfig, x: np.ndarray) -> np.ndarray:
    """kaldi-native-fbank arranged as ESP-DL lays out its output.

    ESP-DL's MFCC with use_energy *prepends* the log energy to all num_ceps cepstra, where Kaldi
    replaces C0 by it: column 0 comes from Kaldi with energy, the rest from Kaldi without.
    """
    if cfg.kind == "mfcc" and cfg.use_energy:
        with_energy = knf_features(cfg, x, use_energy=True)
        without = knf_features(cfg, x, use_energy=False)
        return np.concatenate([with_energy[:, :1], without], axis=1)
    return knf_features(cfg, x)


# The configurations ESP-DL documents: its README and defaults (16 kHz, 25/10 ms, 26 mel, hanning, low 80 Hz),
# the six cases of its test app (test_apps/dl_audio/gen_test_cases.py), and the usual Kaldi/KWS set-ups
# (40 or 80 mel, 13 cepstra, povey/hamming, 8 kHz).
KALDI_CONFIGS: dict[str, FrontendConfig] = {
    "fbank-default": FrontendConfig(),
    "fbank-40-povey": FrontendConfig(num_mel_bins=40, window_type="povey", low_freq=20),
    "fbank-80-povey-energy": FrontendConfig(num_mel_bins=80, window_type="povey", low_freq=20, use_energy=True),
    "fbank-80-hamming-32/24": FrontendConfig(
        num_mel_bins=80, frame_length=32, frame_shift=24, window_type="hamming", low_freq=20
    ),
    "fbank-26-hamming-linear": FrontendConfig(
        num_mel_bins=26, window_type="hamming", low_freq=0, high_freq=8000, preemphasis=0.0, use_log_fbank=0
    ),
    "fbank-48-rect-magnitude": FrontendConfig(
        num_mel_bins=48,
        frame_length=32,
        frame_shift=16,
        window_type="rectangular",
        low_freq=0,
        preemphasis=0.0,
        remove_dc_offset=False,
        use_power=False,
    ),
    "fbank-32-blackman-50ms": FrontendConfig(
        num_mel_bins=32, frame_length=50, frame_shift=32, window_type="blackman", low_freq=100, high_freq=6000
    ),
    "fbank-40-8k-windowed-energy": FrontendConfig(
        sample_rate=8000, num_mel_bins=40, window_type="povey", low_freq=20, use_energy=True, raw_energy=False
    ),
    "mfcc-default": FrontendConfig(kind="mfcc"),
    "mfcc-40-povey-13": FrontendConfig(kind="mfcc", num_mel_bins=40, window_type="povey", low_freq=20),
    "mfcc-80-povey-30": FrontendConfig(
        kind="mfcc",
        num_mel_bins=80,
        num_ceps=30,
        frame_length=32,
        frame_shift=32,
        window_type="povey",
        low_freq=50,
        high_freq=7000,
        remove_dc_offset=False,
    ),
    "mfcc-23-hamming-energy": FrontendConfig(
        kind="mfcc", num_mel_bins=23, window_type="hamming", low_freq=20, use_energy=True
    ),
    "mfcc-26-sine-nolifter": FrontendConfig(kind="mfcc", window_type="sine", cepstral_lifter=0.0),
}

# The stated tolerance against kaldi-native-fbank, on float PCM in [-1, 1) at the configurations above.
# Log features (fbank with use_log_fbank 1 or 2, MFCC, log energy), absolute difference:
#   broadband signals (white noise, int16 noise, speech-like):  max <= 5e-3, mean <= 2e-4;
#   a chirp (one tone per frame, ~60 dB in-frame dynamic range): max <= 5e-2, mean <= 5e-3,
#     because the low-energy mel bins far from the tone are conditioned badly for float32: both this
#     implementation and kaldi-native-fbank differ from a float64 computation there by up to ~8e-3.
# Linear features (use_log_fbank 0): difference <= 5e-5 of the largest value of the frame, every signal.
LOG_TOL = {"broadband": (5e-3, 2e-4), "chirp": (5e-2, 5e-3)}
LINEAR_REL_TOL = 5e-5


def agreement(cfg: FrontendConfig, x: np.ndarray) -> tuple[float, float, float]:
    """(max |ours - kaldi|, mean |ours - kaldi|, max of |ours - kaldi| / the frame's largest |kaldi|)."""
    ours = compute_features(cfg, x).astype(np.float64)
    ref = knf_reference(cfg, x)
    assert ours.shape == ref.shape, (ours.shape, ref.shape)
    diff = np.abs(ours - ref)
    scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-30)
    return float(diff.max()), float(diff.mean()), float((diff / scale).max())


@pytest.mark.usefixtures("kaldi_native_fbank")
@pytest.mark.parametrize("name", list(KALDI_CONFIGS))
def test_matches_kaldi_native_fbank(name: str) -> None:
    cfg = KALDI_CONFIGS[name]
    for sig_name, x in signals(cfg.sample_rate).items():
        max_abs, mean_abs, max_rel = agreement(cfg, x)
        where = f"{name} / {sig_name}"
        if cfg.kind == "fbank" and cfg.use_log_fbank == 0:
            assert max_rel <= LINEAR_REL_TOL, f"{where}: relative difference {max_rel:.3g}"
        else:
            max_tol, mean_tol = LOG_TOL["chirp" if sig_name == "chirp" else "broadband"]
            assert max_abs <= max_tol and mean_abs <= mean_tol, f"{where}: max {max_abs:.3g}, mean {mean_abs:.3g}"


def kaldi_spectrogram_f64(cfg: FrontendConfig, x: np.ndarray) -> np.ndarray:
    """Kaldi's spectrogram (feature-spectrogram.cc: log power spectrum, column 0 replaced by the log energy,
    energy_floor 0) written out in float64 from Kaldi's definitions, for the windows Kaldi has."""
    n, step, nfft = cfg.win_len, cfg.win_step, cfg.fft_size
    i = np.arange(n)
    a = 2 * np.pi / (n - 1)
    hanning = 0.5 - 0.5 * np.cos(a * i)
    window = {"hanning": hanning, "povey": hanning**0.85, "hamming": 0.54 - 0.46 * np.cos(a * i)}[cfg.window_type]
    eps = np.finfo(np.float32).eps
    rows = []
    for t in range(cfg.num_frames(x.size)):
        frame = x[t * step : t * step + n].astype(np.float64)
        if cfg.remove_dc_offset:
            frame = frame - frame.mean()
        raw_energy = np.log(np.maximum(float(frame @ frame), eps))
        frame = np.concatenate(([frame[0] * (1 - cfg.preemphasis)], frame[1:] - cfg.preemphasis * frame[:-1]))
        frame = frame * window
        power = np.abs(np.fft.rfft(frame, nfft)) ** 2
        row = np.log(np.maximum(power, eps))
        row[0] = raw_energy if cfg.raw_energy else np.log(np.maximum(float(frame @ frame), eps))
        rows.append(row)
    return np.array(rows)


@pytest.mark.parametrize(
    "cfg",
    [
        FrontendConfig(kind="spectrogram"),
        FrontendConfig(kind="spectrogram", window_type="povey", frame_length=32, frame_shift=16),
        FrontendConfig(kind="spectrogram", window_type="hamming", raw_energy=False, remove_dc_offset=False),
    ],
    ids=lambda c: f"{c.window_type}-{c.frame_length}ms-raw{int(c.raw_energy)}",
)
def test_spectrogram_matches_kaldi_definition(cfg: FrontendConfig) -> None:
    """kaldi-native-fbank has no spectrogram: check it against Kaldi's definition evaluated in float64, with the
    tolerances stated above."""
    for sig_name, x in signals(cfg.sample_rate, 0.5).items():
        diff = np.abs(compute_features(cfg, x) - kaldi_spectrogram_f64(cfg, x))
        max_tol, mean_tol = LOG_TOL["chirp" if sig_name == "chirp" else "broadband"]
        assert diff.max() <= max_tol and diff.mean() <= mean_tol, (sig_name, diff.max(), diff.mean())


def test_int16_pcm_is_scaled_as_esp_dl_does() -> None:
    """process_frame(const int16_t *) divides by 32768 before anything else (Kaldi would not)."""
    rng = np.random.default_rng(5)
    pcm = rng.integers(-20000, 20000, size=4000).astype(np.int16)
    for kind in ("fbank", "mfcc", "spectrogram"):
        cfg = FrontendConfig(kind=kind)  # type: ignore[arg-type]
        np.testing.assert_array_equal(
            compute_features(cfg, pcm), compute_features(cfg, pcm.astype(np.float32) / np.float32(32768))
        )


def test_tables_match_kaldi_definitions() -> None:
    """Windows and mel filters against Kaldi's formulas in double precision."""
    n = 400
    i = np.arange(n)
    a = 2 * np.pi / (n - 1)
    hanning = 0.5 - 0.5 * np.cos(a * i)
    expected = {
        "hanning": hanning,
        "povey": hanning**0.85,
        "hamming": 0.54 - 0.46 * np.cos(a * i),
        "sine": np.sin(0.5 * a * i),
        "blackman": 0.42 - 0.5 * np.cos(a * i) + 0.08 * np.cos(2 * a * i),
        "rectangular": np.ones(n),
        "hann": 0.5 - 0.5 * np.cos(2 * np.pi * i / n),  # torch.hann_window (periodic), not Kaldi
    }
    for name, want in expected.items():
        got = window_function(name, n)
        assert got is not None and got.dtype == np.float32
        np.testing.assert_allclose(got, want, atol=2e-6, err_msg=name)
    assert window_function("none", n) is None

    def mel(f: np.ndarray | float) -> np.ndarray:
        return 1127.0 * np.log(1.0 + np.asarray(f) / 700.0)

    cfg = FrontendConfig(num_mel_bins=40, low_freq=20)
    edges = np.linspace(mel(20.0), mel(8000.0), 42)
    bins = mel(np.arange(cfg.fft_size // 2 + 1) * SR / cfg.fft_size)
    for k, (start, stop, coeffs) in enumerate(mel_filterbank(cfg)):
        w = np.clip(
            np.minimum(
                (bins - edges[k]) / (edges[k + 1] - edges[k]), (edges[k + 2] - bins) / (edges[k + 2] - edges[k + 1])
            ),
            0,
            None,
        )
        nz = np.flatnonzero(w > 0)
        assert (start, stop) == (nz[0], nz[-1])
        np.testing.assert_allclose(coeffs, w[nz], atol=1e-5)


# --------------------------------------------------------------------------- ESP-DL's reference data

# ESP-DL's test app (test_apps/dl_audio) compares its C++ to torchaudio.compliance.kaldi on a 16 kHz recording
# with six configurations, its .bin files holding each configuration and torchaudio's output. Those files are
# not copied into this repository: point ESPDL_STREAMING_ESPDL_REPO at an ESP-DL git checkout to run this test.
ESPDL_REPO = os.environ.get("ESPDL_STREAMING_ESPDL_REPO")
# ESP-DL's own pass criterion for its C++ (check_is_same in test_dl_audio.cpp): max |diff| <= 1e-2, mean <= 1e-4.
ESPDL_MAX_TOL = 1e-2
ESPDL_MEAN_TOL = 1e-4


def _read_espdl_cases(path: Path) -> list[tuple[dict[str, Any], np.ndarray]]:
    """The layout written by gen_test_cases.py and read by load_test_case() in test_dl_audio.cpp."""
    data = path.read_bytes()
    magic, count = struct.unpack_from("<II", data, 0)
    assert magic == 0xFBA5FBA5
    off = 8
    cases = []
    for _ in range(count):
        shift, length, low, high, pre = struct.unpack_from("<5f", data, off)
        mels, ceps, use_power, use_log, dc = struct.unpack_from("<5I", data, off + 20)
        window = data[off + 40 : off + 56].split(b"\0")[0].decode()
        rows, cols = struct.unpack_from("<II", data, off + 56)
        off += 64
        mat = np.frombuffer(data, dtype="<f4", count=rows * cols, offset=off).reshape(rows, cols)
        off += rows * cols * 4
        # load_test_case() stores the float milliseconds in SpeechFeatureConfig's int fields.
        cfg = dict(
            frame_shift=int(shift),
            frame_length=int(length),
            low_freq=low,
            high_freq=high,
            preemphasis=pre,
            num_mel_bins=mels,
            num_ceps=ceps,
            use_power=bool(use_power),
            use_log_fbank=int(bool(use_log)),
            remove_dc_offset=bool(dc),
            window_type=window,
        )
        cases.append((cfg, mat))
    return cases


@pytest.mark.skipif(not ESPDL_REPO, reason="set ESPDL_STREAMING_ESPDL_REPO to an ESP-DL checkout")
@pytest.mark.parametrize("kind", ["fbank", "mfcc", "spectrogram"])
def test_matches_espdl_reference_data(kind: str) -> None:
    root = Path(str(ESPDL_REPO)) / "test_apps" / "dl_audio" / "test_cases"
    with wave.open(str(root / "test.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SR, 1, 2)
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    cases = _read_espdl_cases(root / f"test_{kind}.bin")
    assert len(cases) == 6
    for cfg_fields, want in cases:
        cfg = FrontendConfig(kind=kind, **cfg_fields)  # type: ignore[arg-type]
        got = compute_features(cfg, pcm)
        assert got.shape == want.shape
        err = np.abs(got.astype(np.float64) - want)
        assert err.max() <= ESPDL_MAX_TOL and err.mean() <= ESPDL_MEAN_TOL, (cfg_fields, err.max(), err.mean())


# --------------------------------------------------------------------------- streaming


STREAM_CONFIGS = [
    FrontendConfig(),
    FrontendConfig(kind="mfcc", num_mel_bins=40, window_type="povey", use_energy=True),
    FrontendConfig(kind="spectrogram", frame_length=32, frame_shift=16, window_type="hamming"),
    FrontendConfig(frame_length=32, frame_shift=32, window_type="povey", num_mel_bins=80),  # no overlap
    FrontendConfig(sample_rate=8000, frame_length=25, frame_shift=25, num_mel_bins=26),
]


@pytest.mark.parametrize("cfg", STREAM_CONFIGS, ids=lambda c: f"{c.kind}-{c.frame_length}/{c.frame_shift}")
def test_streaming_in_random_pieces_equals_whole_signal(cfg: FrontendConfig) -> None:
    rng = np.random.default_rng(cfg.win_len + cfg.win_step)
    x = signals(cfg.sample_rate, 0.6)["speech"]
    whole = compute_features(cfg, x)
    assert whole.shape == (cfg.num_frames(x.size), cfg.feature_dim)
    for trial in range(3):
        stream = StreamingFrontend(cfg)
        cuts = np.sort(rng.integers(0, x.size, size=rng.integers(1, 60)))
        pieces = np.split(x, cuts)  # empty pieces, single samples and pieces longer than a frame included
        if trial == 2:
            pieces = [x[i : i + 1] for i in range(x.size)]
        got = stream.push_all(pieces)
        np.testing.assert_array_equal(got, whole)
        stream.reset()
        np.testing.assert_array_equal(stream.push(x), whole)
    pcm = np.round(x * 32767).astype(np.int16)
    stream = StreamingFrontend(cfg)
    np.testing.assert_array_equal(
        stream.push_all(np.array_split(pcm, 7)), compute_features(cfg, pcm.astype(np.float32) / np.float32(32768))
    )


def test_frames_are_independent_of_each_other() -> None:
    """ESP-DL 3.3 ignores process_frame's input_prev (pre-emphasis uses the frame's own first sample), so a
    frame's features depend on its own samples only."""
    cfg = FrontendConfig()
    x = signals(SR, 0.2)["white"]
    frame = FrameProcessor(cfg)
    feats = compute_features(cfg, x)
    k = 3
    np.testing.assert_array_equal(frame(x[k * cfg.win_step : k * cfg.win_step + cfg.win_len]), feats[k])
    assert compute_features(cfg, x[: cfg.win_len - 1]).shape == (0, cfg.feature_dim)


# --------------------------------------------------------------------------- checks


BAD_CONFIGS: list[tuple[dict[str, Any], str]] = [
    (dict(num_mel_bins=200), r"num_mel_bins=200: mel filter \d+ covers no FFT bin"),
    (dict(num_mel_bins=300, kind="mfcc"), r"num_mel_bins=300: .*at most 255 mel bins fit"),
    # ESP-DL's own bug: the last filter's end is never set (mel_filter_init), about 1 in 15 settings.
    (
        dict(sample_rate=8000, num_mel_bins=23),
        r"num_mel_bins=23: .*leaves the end of mel filter 22 unset.*high_freq=3999",
    ),
    (dict(num_mel_bins=38), r"num_mel_bins=38: .*leaves the end of mel filter 37 unset.*high_freq=7999"),
    (dict(frame_shift=30), r"frame_shift=30: is longer than frame_length=25 ms"),
    (dict(frame_shift=0), r"frame_shift=0: must be a positive"),
    (dict(sample_rate=22050), r"sample_rate=22050: frame_length=25 ms is 551.25 samples .* would truncate it"),
    (dict(sample_rate=44100), r"sample_rate=44100: frame_length=25 ms is 1102.5 samples"),
    (dict(sample_rate=11025), r"sample_rate=11025: must be a positive even number"),
    (dict(sample_rate=16000.0), r"sample_rate=16000.0: must be an integer"),
    (dict(low_freq=9000), r"low_freq=9000: must be in \[0, 8000\)"),
    (dict(low_freq=20.5), r"low_freq=20.5: .*whole Hz and would use 20"),
    (dict(high_freq=9000), r"high_freq=9000: is above the Nyquist frequency 8000"),
    (dict(high_freq=-400), r"high_freq=-400: negative: Kaldi reads it as an offset .* \(7600\)"),
    (dict(low_freq=300, high_freq=200), r"high_freq=200: must be above low_freq=300"),
    (dict(kind="mfcc", num_ceps=30), r"num_ceps=30: must be in \[1, num_mel_bins=26\]"),
    (dict(kind="mfcc", use_power=False), r"use_power=False: ESP-DL's mfcc class forces use_power=True"),
    (dict(kind="spectrogram", use_energy=True), r"use_energy=True: ESP-DL's spectrogram class forces"),
    (dict(window_type="kaiser"), r"window_type='kaiser': must be one of hanning, hann, sine"),
    (dict(preemphasis=1.0), r"preemphasis=1.0: must be in \[0, 1\)"),
    (dict(use_log_fbank=3), r"use_log_fbank=3: must be 0"),
    (dict(use_int16_fft=True), r"use_int16_fft=True: ESP-DL 3.3's Fbank, MFCC and Spectrogram ignore it"),
    (dict(kind="pitch"), r"kind='pitch': must be one of fbank, mfcc, spectrogram"),
    (dict(log_epsilon=0.0), r"log_epsilon=0.0: must be > 0"),
]


@pytest.mark.parametrize(("fields", "message"), BAD_CONFIGS, ids=lambda v: str(v)[:40])
def test_invalid_configurations_are_rejected_clearly(fields: dict[str, Any], message: str) -> None:
    cfg = FrontendConfig(**fields)
    with pytest.raises(FrontendConfigError, match=message) as info:
        cfg.validate()
    assert isinstance(info.value, ValueError) and isinstance(info.value, DeclarationError)
    with pytest.raises(FrontendConfigError):
        StreamingFrontend(cfg)


@pytest.mark.parametrize(
    "fields",
    [
        {},
        dict(sample_rate=8000, num_mel_bins=40),
        dict(sample_rate=48000, num_mel_bins=128, frame_length=20),
        dict(kind="mfcc", num_mel_bins=80, num_ceps=80),
        dict(frame_shift=25),
        dict(kind="spectrogram", window_type="none"),
    ],
)
def test_valid_configurations_pass(fields: dict[str, Any]) -> None:
    cfg = FrontendConfig(**fields)
    assert cfg.validate() is cfg
    assert dataclasses.replace(cfg).feature_dim > 0


def _print_agreement() -> None:
    print(f"{'configuration':30} {'signal':8} {'max|diff|':>10} {'mean|diff|':>10} {'max rel':>10}")
    for name, cfg in KALDI_CONFIGS.items():
        for sig_name, x in signals(cfg.sample_rate).items():
            max_abs, mean_abs, max_rel = agreement(cfg, x)
            print(f"{name:30} {sig_name:8} {max_abs:10.3g} {mean_abs:10.3g} {max_rel:10.3g}")


if __name__ == "__main__":
    _print_agreement()


# --------------------------------------------------------------------------- C++ port (src/host/frontend/)

# The C++ port runs through the runtime's framer (audio_frontend, src/audio_frontend.cpp) and the host front end
# (open_frontend(), src/host/frontend_host.cpp), as host builds of the generated code do: host/espdl_features.cpp,
# built with the host engine (the `host_engine` fixture: AddressSanitizer and UBSan) and called through
# espdl_streaming.host_engine.compute_features_host. The tool fails (exit 1) if any push() allocated.


def run_cpp(engine: Path, cfg: FrontendConfig, pcm: np.ndarray, pieces: list[int]) -> np.ndarray:
    from espdl_streaming.host_engine import compute_features_host

    assert sum(pieces) == pcm.size
    return compute_features_host(cfg, pcm, pieces, engine=engine)


def random_pieces(rng: np.random.Generator, n: int, cuts: int = 20) -> list[int]:
    """Sizes of `cuts` + 1 consecutive pieces of n samples (empty pieces and pieces longer than a frame included)."""
    at = np.sort(rng.integers(0, n, size=cuts))
    return [int(p) for p in np.diff(np.concatenate(([0], at, [n])))]


CPP_CONFIGS = {
    **KALDI_CONFIGS,
    "spectrogram-default": FrontendConfig(kind="spectrogram"),
    "spectrogram-hamming-windowed": FrontendConfig(kind="spectrogram", window_type="hamming", raw_energy=False),
    "fbank-hann-log2": FrontendConfig(window_type="hann", use_log_fbank=2, num_mel_bins=40),
    "fbank-none-48k": FrontendConfig(sample_rate=48000, window_type="none", num_mel_bins=64, frame_length=20),
}
# Python against the C++ port: the same float operations in the same order, libm modelled the same way; only
# the FFTs differ (numpy's pocketfft and the port's radix-2, both in double), and rounding their bins to float
# has hidden that difference in every case measured (all features bit-exact). Stated tolerance: max |diff|
# <= 1e-5 and at least 99.9% of the values bit-exact.
CPP_ABS_TOL = 1e-5
CPP_MIN_EXACT = 0.999


@pytest.mark.parametrize("name", list(CPP_CONFIGS))
def test_cpp_port_matches_python(name: str, host_engine: Path) -> None:
    cfg = CPP_CONFIGS[name]
    rng = np.random.default_rng(len(name))
    for sig_name, x in signals(cfg.sample_rate, 0.5).items():
        pcm: np.ndarray = np.round(x * 32767).astype(np.int16) if sig_name == "int16" else x
        pieces = random_pieces(rng, pcm.size)
        got = run_cpp(host_engine, cfg, pcm, pieces)
        want = compute_features(cfg, pcm)
        assert got.shape == want.shape, (name, sig_name)
        diff = np.abs(got.astype(np.float64) - want)
        assert diff.max() <= CPP_ABS_TOL, f"{name} / {sig_name}: max |C++ - Python| {diff.max():.3g}"
        assert (diff == 0).mean() >= CPP_MIN_EXACT, f"{name} / {sig_name}: {(diff == 0).mean():.2%} bit-exact"


def test_cpp_port_rejects_what_esp_dl_gets_wrong(host_engine: Path) -> None:
    """The Nyquist-edge case of mel_filter_init() and an empty mel filter fail init() in C++ too."""
    from espdl_streaming.host_engine import HostEngineError

    for fields in (dict(sample_rate=8000, num_mel_bins=23), dict(num_mel_bins=38), dict(num_mel_bins=200)):
        cfg = FrontendConfig(**fields)  # type: ignore[arg-type]
        with pytest.raises(HostEngineError) as info:
            run_cpp(host_engine, cfg, np.zeros(400, dtype=np.float32), [400])
        message = str(info.value)
        assert "audio_frontend::init returned 258 (ESP_ERR_INVALID_ARG" in message, (fields, message)
        assert "mel filter" in message, (fields, message)  # the port's log says which filter


# --------------------------------------------------------------------------- real audio: ESP-DL's recording

# The configurations ESP-DL documents (its defaults for each class, and the fbank ones above) on ESP-DL's own
# 16 kHz recording (test_apps/dl_audio/test_cases/test.wav, int16 speech): the Python front end, the C++ port
# pushed in random pieces through audio_frontend, and kaldi-native-fbank (Kaldi's definition in float64 for the
# spectrogram, which kaldi-native-fbank lacks), with the tolerances stated above: Python == C++ within
# CPP_ABS_TOL (CPP_MIN_EXACT bit-exact), both against Kaldi within LOG_TOL["broadband"] (LINEAR_REL_TOL for
# linear features). The 8 kHz configuration gets the recording resampled (espdl_streaming.audio.resample_pcm).
REAL_AUDIO_CONFIGS: dict[str, FrontendConfig] = {
    "fbank-default": FrontendConfig(),
    "mfcc-default": FrontendConfig(kind="mfcc"),
    "spectrogram-default": FrontendConfig(kind="spectrogram"),
    **{name: cfg for name, cfg in KALDI_CONFIGS.items() if cfg.kind == "fbank"},
}


def _espdl_recording() -> np.ndarray:
    """ESP-DL's test recording as int16 PCM at 16 kHz."""
    path = Path(str(ESPDL_REPO)) / "test_apps" / "dl_audio" / "test_cases" / "test.wav"
    if not path.is_file():
        pytest.fail(f"ESPDL_STREAMING_ESPDL_REPO={ESPDL_REPO} holds no {path.relative_to(str(ESPDL_REPO))}")
    with wave.open(str(path)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (SR, 1, 2)
        pcm: np.ndarray = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").copy()
    return pcm


@pytest.mark.skipif(not ESPDL_REPO, reason="set ESPDL_STREAMING_ESPDL_REPO to an ESP-DL checkout")
@pytest.mark.parametrize("name", list(REAL_AUDIO_CONFIGS))
def test_real_recording_python_cpp_and_kaldi_agree(
    name: str, host_engine: Path, request: pytest.FixtureRequest
) -> None:
    cfg = REAL_AUDIO_CONFIGS[name]
    pcm = _espdl_recording()
    engine = host_engine
    if cfg.kind != "spectrogram":  # kaldi-native-fbank has no spectrogram: Kaldi's definition in float64
        request.getfixturevalue("kaldi_native_fbank")
    from espdl_streaming.audio import resample_pcm

    if cfg.sample_rate == SR:
        signal: np.ndarray = pcm  # int16: the C++ and Python front ends scale it by 1/32768 themselves
        x = pcm.astype(np.float32) / np.float32(32768)
    else:
        x = resample_pcm(pcm.astype(np.float32) / np.float32(32768), SR, cfg.sample_rate)
        signal = x
    ours = compute_features(cfg, signal)
    assert ours.shape == (cfg.num_frames(x.size), cfg.feature_dim) and ours.shape[0] > 50
    rng = np.random.default_rng(len(name) + 17)
    cpp = run_cpp(engine, cfg, signal, random_pieces(rng, signal.size, cuts=60))
    assert cpp.shape == ours.shape
    diff = np.abs(cpp.astype(np.float64) - ours)
    assert diff.max() <= CPP_ABS_TOL, f"{name}: max |C++ - Python| {diff.max():.3g}"
    assert (diff == 0).mean() >= CPP_MIN_EXACT, f"{name}: {(diff == 0).mean():.2%} bit-exact"
    ref = kaldi_spectrogram_f64(cfg, x) if cfg.kind == "spectrogram" else knf_reference(cfg, x)
    assert ref.shape == ours.shape
    for who, got in (("Python", ours), ("C++", cpp)):
        err = np.abs(got.astype(np.float64) - ref)
        if cfg.kind == "fbank" and cfg.use_log_fbank == 0:
            scale = np.maximum(np.abs(ref).max(axis=1, keepdims=True), 1e-30)
            rel = float((err / scale).max())
            assert rel <= LINEAR_REL_TOL, f"{name} / {who}: relative difference {rel:.3g} against Kaldi"
        else:
            max_tol, mean_tol = LOG_TOL["broadband"]
            assert err.max() <= max_tol and err.mean() <= mean_tol, (
                f"{name} / {who}: max {err.max():.3g}, mean {err.mean():.3g} against Kaldi"
            )
