"""The front end in the declaration (espdl_streaming.audio.declare): the option table, parsing from the strings
CMake keywords and CLI flags give, one clear error per key (naming the option, the value and the fix), and
the model input's feature dimension against the front end's output.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from espdl_streaming.audio import FrontendConfig
from espdl_streaming.audio.config import FLT_EPSILON
from espdl_streaming.audio.declare import (
    BY_KEY,
    CLI_FLAGS,
    CMAKE_KEYWORDS,
    OPTIONS,
    FrontendDeclaration,
    _config_fields_without_option,
    add_cli_arguments,
    check_feature_dim,
    markdown_table,
    options_from_namespace,
    parse_frontend,
)
from espdl_streaming.errors import DeclarationError, FrontendConfigError

REPO = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------- the table


def test_table_spellings_follow_one_rule() -> None:
    assert len(set(CMAKE_KEYWORDS)) == len(OPTIONS) == len(set(CLI_FLAGS))
    for o in OPTIONS:
        assert re.fullmatch(r"[A-Z][A-Z0-9_]*", o.key)
        want = "--frontend" if o.key == "FRONTEND" else "--frontend-" + o.key.lower().replace("_", "-")
        assert o.flag == want and o.dest == want[2:].replace("-", "_")
        assert o.help and o.kinds
    assert BY_KEY["SAMPLE_RATE"].flag == "--frontend-sample-rate"
    assert BY_KEY["FRAME_SHIFT_MS"].flag == "--frontend-frame-shift-ms"


def test_every_config_field_has_an_option_but_use_int16_fft() -> None:
    assert _config_fields_without_option() == ("use_int16_fft",)


def test_defaults_are_esp_dl_speech_feature_config_defaults() -> None:
    want = {
        "SAMPLE_RATE": 16000,
        "FRAME_LENGTH_MS": 25,
        "FRAME_SHIFT_MS": 10,
        "NUM_MEL_BINS": 26,
        "NUM_CEPS": 13,
        "PREEMPHASIS": 0.97,
        "CEPSTRAL_LIFTER": 22.0,
        "WINDOW": "hanning",
        "LOW_FREQ": 80.0,
        "HIGH_FREQ": 0.0,
        "LOG_EPSILON": FLT_EPSILON,
        "LOG_MODE": 1,
        "RAW_ENERGY": True,
        "USE_POWER": True,
        "USE_ENERGY": False,
        "REMOVE_DC_OFFSET": True,
    }
    assert {k: BY_KEY[k].default for k in want} == want
    assert BY_KEY["LOG_MODE"].default_display == "max" and BY_KEY["RAW_ENERGY"].default_display == "ON"
    assert BY_KEY["DITHER"].default_display == "0" and BY_KEY["RESAMPLE"].default_display == "OFF"


ESPDL_REPO = os.environ.get("ESPDL_STREAMING_ESPDL_REPO")


@pytest.mark.skipif(not ESPDL_REPO, reason="set ESPDL_STREAMING_ESPDL_REPO to an ESP-DL checkout")
def test_defaults_match_the_esp_dl_header() -> None:
    root = Path(str(ESPDL_REPO))
    # The repository holds the component in esp-dl/; accept the component directory itself too.
    candidates = [d / "audio" / "speech_features" / "dl_speech_features.hpp" for d in (root / "esp-dl", root)]
    header = next((c for c in candidates if c.is_file()), candidates[0])
    text = header.read_text()
    body = text[text.index("struct SpeechFeatureConfig") :]
    body = body[: body.index("};")]
    found = dict(re.findall(r"^\s*\w+(?:\s*\w+)?\s+(\w+)\s*=\s*([^;]+);", body, re.M))
    found.update(re.findall(r"(use_log_fbank)\s*=\s*\n?\s*(\d+)", body))
    by_field = {o.field: o for o in OPTIONS if o.field and o.field != "kind"}
    assert set(found) - {"use_int16_fft"} == set(by_field)
    for field, text_value in found.items():
        if field == "use_int16_fft":
            continue
        value: Any = text_value.strip().rstrip("f")
        default = by_field[field].default
        if field == "window_type":
            assert value == "WinType::HANNING" and default == "hanning"
        elif isinstance(default, bool):
            assert value == str(default).lower(), field
        else:
            assert float(value) == pytest.approx(float(default), rel=1e-7), field


def test_markdown_table_lists_every_option() -> None:
    table = markdown_table()
    for o in OPTIONS:
        assert f"| `{o.key}` | `{o.flag}` | `{o.default_display}` |" in table


# --------------------------------------------------------------------------- parsing


def test_no_frontend_is_none() -> None:
    assert parse_frontend({}) is None
    assert parse_frontend({o.key: None for o in OPTIONS}) is None


def test_defaults_only() -> None:
    for kind in ("fbank", "mfcc", "spectrogram"):
        decl = parse_frontend({"FRONTEND": kind})
        assert decl == FrontendDeclaration(FrontendConfig(kind=kind), False, ("FRONTEND",))


def test_full_declaration_parses() -> None:
    decl = parse_frontend(
        {
            "FRONTEND": "MFCC",
            "SAMPLE_RATE": "8000",
            "FRAME_LENGTH_MS": "32",
            "FRAME_SHIFT_MS": "16",
            "NUM_MEL_BINS": "40",
            "NUM_CEPS": "13",
            "CEPSTRAL_LIFTER": "0",
            "PREEMPHASIS": "0.97",
            "WINDOW": "Hamming",
            "LOW_FREQ": "20",
            "HIGH_FREQ": "3800",
            "LOG_EPSILON": "1e-6",
            "USE_ENERGY": "on",
            "RAW_ENERGY": "FALSE",
            "REMOVE_DC_OFFSET": "0",
            "DITHER": "0",
            "RESAMPLE": "YES",
        }
    )
    assert decl is not None
    assert decl.config == FrontendConfig(
        kind="mfcc",
        sample_rate=8000,
        frame_length=32,
        frame_shift=16,
        num_mel_bins=40,
        num_ceps=13,
        cepstral_lifter=0.0,
        preemphasis=0.97,
        window_type="hamming",
        low_freq=20.0,
        high_freq=3800.0,
        log_epsilon=1e-6,
        use_energy=True,
        raw_energy=False,
        remove_dc_offset=False,
    )
    assert decl.resample and decl.feature_dim == 14
    assert decl.given[0] == "FRONTEND" and "DITHER" in decl.given and len(decl.given) == 17


def test_keys_in_any_spelling_and_values_of_any_simple_type() -> None:
    a = parse_frontend({"FRONTEND": "fbank", "NUM_MEL_BINS": "40", "LOG_MODE": "linear", "USE_POWER": "OFF"})
    b = parse_frontend(
        {"--frontend": "fbank", "--frontend-num-mel-bins": 40, "frontend_log_mode": "0", "USE_POWER": False}
    )
    c = parse_frontend(
        {"frontend": "fbank", "frontend_num_mel_bins": ["40"], "LOG_MODE": 0, "frontend_use_power": "no"}
    )
    assert a == b and a is not None and c is not None and a.config == c.config
    assert a.config.num_mel_bins == 40 and a.config.use_log_fbank == 0 and not a.config.use_power


def test_options_round_trip() -> None:
    decl = parse_frontend({"FRONTEND": "fbank", "NUM_MEL_BINS": "40", "WINDOW": "povey", "RESAMPLE": "ON"})
    assert decl is not None
    options = decl.options()
    assert options["NUM_MEL_BINS"] == "40" and options["LOG_EPSILON"] == repr(FLT_EPSILON)
    options = {k: v for k, v in options.items() if k in ("FRONTEND", "RESAMPLE") or k in BY_KEY and _reads(k, "fbank")}
    again = parse_frontend(options)
    assert again is not None and again.config == decl.config and again.resample


def _reads(key: str, kind: str) -> bool:
    return kind in BY_KEY[key].kinds


def test_cli_arguments_from_the_table() -> None:
    parser = argparse.ArgumentParser()
    add_cli_arguments(parser.add_argument_group("front end"))
    ns = parser.parse_args(["--frontend", "mfcc", "--frontend-num-ceps", "10", "--frontend-sample-rate=8000"])
    options = options_from_namespace(ns)
    assert set(options) == set(CMAKE_KEYWORDS)
    decl = parse_frontend(options)
    assert decl is not None
    assert decl.config == FrontendConfig(kind="mfcc", num_ceps=10, sample_rate=8000)
    assert parse_frontend(options_from_namespace(parser.parse_args([]))) is None
    assert "--frontend-num-mel-bins" in parser.format_help()


# --------------------------------------------------------------------------- one error per key

ERRORS: list[tuple[dict[str, str], str]] = [
    (
        {"FRONTEND": "fbnak"},
        r"FRONTEND \(--frontend\) 'fbnak': use one of fbank, mfcc, spectrogram \(did you mean fbank",
    ),
    ({"SAMPLE_RATE": "8000"}, r"SAMPLE_RATE \(--frontend-sample-rate\) given without FRONTEND .*add FRONTEND fbank"),
    ({"FRONTEND": "fbank", "SAMPLE_RATE": "16k"}, r"SAMPLE_RATE \(--frontend-sample-rate\) '16k': must be a whole"),
    (
        {"FRONTEND": "fbank", "SAMPLE_RATE": "44100"},
        r"SAMPLE_RATE \(--frontend-sample-rate\) '44100': FRAME_LENGTH_MS 25 ms is 1102\.5 samples .* multiple of 1000",
    ),
    ({"FRONTEND": "fbank", "SAMPLE_RATE": "16001"}, r"SAMPLE_RATE .* '16001': must be a positive even number"),
    ({"FRONTEND": "fbank", "SAMPLE_RATE": "0"}, r"SAMPLE_RATE .* '0': must be a positive even number"),
    (
        {"FRONTEND": "fbank", "FRAME_LENGTH_MS": "0"},
        r"FRAME_LENGTH_MS \(--frontend-frame-length-ms\) '0': must be a positive number of milliseconds",
    ),
    ({"FRONTEND": "fbank", "FRAME_LENGTH_MS": "25.5"}, r"FRAME_LENGTH_MS .* '25\.5': must be a whole number"),
    (
        {"FRONTEND": "fbank", "FRAME_SHIFT_MS": "30"},
        r"FRAME_SHIFT_MS \(--frontend-frame-shift-ms\) '30': is longer than FRAME_LENGTH_MS 25 ms.*shift <= the frame",
    ),
    (
        {"FRONTEND": "mfcc", "NUM_MEL_BINS": "300"},
        r"NUM_MEL_BINS \(--frontend-num-mel-bins\) '300': .*at most 255 mel bins fit.*use fewer mel bins",
    ),
    (
        {"FRONTEND": "fbank", "NUM_MEL_BINS": "200"},
        r"NUM_MEL_BINS .* '200': mel filter \d+ covers no FFT bin of the 512-point FFT .*use fewer mel bins",
    ),
    ({"FRONTEND": "fbank", "NUM_MEL_BINS": "0"}, r"NUM_MEL_BINS .* '0': must be >= 1"),
    (
        {"FRONTEND": "mfcc", "NUM_CEPS": "30"},
        r"NUM_CEPS \(--frontend-num-ceps\) '30': must be in \[1, NUM_MEL_BINS 26\]",
    ),
    ({"FRONTEND": "fbank", "NUM_CEPS": "13"}, r"NUM_CEPS .* '13': ESP-DL's Fbank \(FRONTEND fbank\) does not use it"),
    ({"FRONTEND": "fbank", "use_power": "ON"}, r"'use_power' is not a front-end option: did you mean USE_POWER"),
    ({"FRONTEND": "fbank", "CEPSTRAL_LIFTER": "22"}, r"CEPSTRAL_LIFTER .*\(only FRONTEND mfcc does\): remove it"),
    ({"FRONTEND": "mfcc", "CEPSTRAL_LIFTER": "q"}, r"CEPSTRAL_LIFTER .* 'q': must be a number \(e\.g\. 22\)"),
    ({"FRONTEND": "fbank", "PREEMPHASIS": "1"}, r"PREEMPHASIS \(--frontend-preemphasis\) '1': must be in \[0, 1\)"),
    ({"FRONTEND": "fbank", "PREEMPHASIS": "nan"}, r"PREEMPHASIS .* 'nan': must be a finite number"),
    (
        {"FRONTEND": "fbank", "WINDOW": "hamm"},
        r"WINDOW \(--frontend-window\) 'hamm': use one of .*did you mean hamming",
    ),
    ({"FRONTEND": "fbank", "LOW_FREQ": "8000"}, r"LOW_FREQ \(--frontend-low-freq\) '8000': must be in \[0, 8000\) Hz"),
    ({"FRONTEND": "fbank", "LOW_FREQ": "20.5"}, r"LOW_FREQ .* '20\.5': .*takes whole Hz and would use 20"),
    ({"FRONTEND": "spectrogram", "LOW_FREQ": "20"}, r"LOW_FREQ .* ESP-DL's Spectrogram \(FRONTEND spectrogram\)"),
    ({"FRONTEND": "fbank", "HIGH_FREQ": "9000"}, r"HIGH_FREQ \(--frontend-high-freq\) '9000': is above the Nyquist"),
    (
        {"FRONTEND": "fbank", "HIGH_FREQ": "-400"},
        r"HIGH_FREQ .* '-400': negative: Kaldi .*give the edge in Hz \(7600\)",
    ),
    (
        {"FRONTEND": "fbank", "LOW_FREQ": "1000", "HIGH_FREQ": "500"},
        r"HIGH_FREQ .* '500': must be above LOW_FREQ 1000",
    ),
    ({"FRONTEND": "fbank", "LOG_MODE": "ln"}, r"LOG_MODE \(--frontend-log-mode\) 'ln': use linear, max or add"),
    ({"FRONTEND": "mfcc", "LOG_MODE": "max"}, r"LOG_MODE .* ESP-DL's MFCC \(FRONTEND mfcc\) does not use it"),
    ({"FRONTEND": "fbank", "LOG_EPSILON": "0"}, r"LOG_EPSILON \(--frontend-log-epsilon\) '0': must be > 0"),
    ({"FRONTEND": "spectrogram", "USE_ENERGY": "ON"}, r"USE_ENERGY \(--frontend-use-energy\) 'ON': .*remove it"),
    ({"FRONTEND": "fbank", "USE_ENERGY": "maybe"}, r"USE_ENERGY .* 'maybe': is not a switch: use ON or OFF"),
    ({"FRONTEND": "fbank", "RAW_ENERGY": "2"}, r"RAW_ENERGY \(--frontend-raw-energy\) '2': is not a switch"),
    ({"FRONTEND": "mfcc", "USE_POWER": "OFF"}, r"USE_POWER \(--frontend-use-power\) 'OFF': .*only FRONTEND fbank does"),
    ({"FRONTEND": "fbank", "REMOVE_DC_OFFSET": "x"}, r"REMOVE_DC_OFFSET \(--frontend-remove-dc-offset\) 'x': is not"),
    ({"FRONTEND": "fbank", "DITHER": "1.0"}, r"DITHER \(--frontend-dither\) '1\.0': ESP-DL's front end has no dither"),
    ({"FRONTEND": "fbank", "RESAMPLE": "sometimes"}, r"RESAMPLE \(--frontend-resample\) 'sometimes': is not a switch"),
    ({"FRONTEND": "fbank", "SAMPLE_RAT": "1"}, r"'SAMPLE_RAT' is not a front-end option: did you mean SAMPLE_RATE"),
    ({"FRONTEND": "fbank", "FRONTEND_SAMPLE_RATE": "1"}, r"did you mean SAMPLE_RATE \(--frontend-sample-rate\)"),
    ({"FRONTEND": "fbank", "BITS": "1"}, r"'BITS' is not a front-end option: the front-end options are FRONTEND, "),
    (
        {"FRONTEND": "fbank", "--frontend-window": "hann", "WINDOW": "hann"},
        r"WINDOW \(--frontend-window\) is given twice \(as --frontend-window and WINDOW\): give it once",
    ),
    # A default that no longer fits is named as the default.
    (
        {"FRONTEND": "mfcc", "NUM_MEL_BINS": "10"},
        r"NUM_CEPS \(--frontend-num-ceps\) 13 \(the default\): must be in \[1, NUM_MEL_BINS 10\]",
    ),
]


@pytest.mark.parametrize(("options", "message"), ERRORS, ids=[str(list(o.items())[-1]) for o, _ in ERRORS])
def test_each_bad_option_is_named_with_its_value_and_fix(options: dict[str, str], message: str) -> None:
    with pytest.raises(FrontendConfigError, match=message) as info:
        parse_frontend(options, name="kws")
    text = str(info.value)
    assert text.startswith("kws: ")
    assert isinstance(info.value, DeclarationError)
    # FrontendConfig's "front end field=value" is translated to the options' names.
    assert not re.search(r"\b[a-z]+_[a-z_]+=", text) and "front end kind" not in text
    for field in ("num_mel_bins", "frame_length", "frame_shift", "sample_rate", "low_freq", "high_freq"):
        assert field not in text


def test_every_option_has_an_error_case() -> None:
    covered = {re.match(r"'?(\w+)", m).group(1) for _, m in ERRORS if re.match(r"'?(\w+)", m)}  # type: ignore[union-attr]
    assert set(CMAKE_KEYWORDS) <= covered


# --------------------------------------------------------------------------- feature dimension


@pytest.mark.parametrize(
    ("config", "shape"),
    [
        (FrontendConfig(), (1, 26, 100)),
        (FrontendConfig(num_mel_bins=40, use_energy=True), (1, 41, 10)),
        (FrontendConfig(kind="mfcc"), (1, 13, 24)),
        (FrontendConfig(kind="spectrogram"), (1, 257, 8)),
        (FrontendConfig(), (1, 26, 100, 1)),
        (FrontendConfig(), (1, 1, 100, 26)),
    ],
)
def test_matching_feature_dims_pass(config: FrontendConfig, shape: tuple[int, ...]) -> None:
    check_feature_dim(config, shape)


def test_feature_dim_mismatch_says_what_to_change() -> None:
    with pytest.raises(DeclarationError) as info:
        check_feature_dim(FrontendConfig(num_mel_bins=40), (1, 16, 24), name="kws")
    assert str(info.value) == (
        "kws: INPUT_SHAPE 1 16 24 takes 16 features per frame (dim 1) but FRONTEND fbank outputs 40 features per "
        "frame (NUM_MEL_BINS 40): the front end's frame must fill one dim of the input; use INPUT_SHAPE 1 40 24 "
        "or NUM_MEL_BINS 16"
    )


@pytest.mark.parametrize(
    ("config", "shape", "message"),
    [
        (
            FrontendConfig(kind="mfcc", use_energy=True),
            (1, 13, 24),
            r"outputs 14 features per frame \(NUM_CEPS 13 \+ 1 \(USE_ENERGY\)\).*INPUT_SHAPE 1 14 24 or NUM_CEPS 12",
        ),
        (
            FrontendConfig(kind="spectrogram"),
            (1, 256, 24),
            r"outputs 257 .*FFT size 512 / 2 \+ 1 bins: FRAME_LENGTH_MS 25 at SAMPLE_RATE 16000 is 400 samples",
        ),
        (FrontendConfig(), (1, 2, 24, 13), r"takes 2 x 13 = 26 values per frame \(dims 1 and 3\), spread over two"),
        (FrontendConfig(), (1, 1, 24, 40), r"INPUT_SHAPE 1 26 24 1 or INPUT_SHAPE 1 1 24 26 or NUM_MEL_BINS 40"),
        (FrontendConfig(), (1, 26), r"INPUT_SHAPE 1 26: give \[1, C, T\] or \[1, C, T, F\]"),
    ],
)
def test_feature_dim_mismatches(config: FrontendConfig, shape: tuple[int, ...], message: str) -> None:
    with pytest.raises(DeclarationError, match=message):
        check_feature_dim(config, shape)


def test_declaration_is_hashable_and_frozen() -> None:
    decl = parse_frontend({"FRONTEND": "fbank"})
    assert decl is not None
    hash(decl)
    with pytest.raises(dataclasses.FrozenInstanceError):
        decl.resample = True  # type: ignore[misc]


def test_the_declaration_without_a_front_end_imports_no_numpy() -> None:
    """A cache hit parses the declaration without numpy (test_cache.py): the table and the parser need none."""
    code = (
        "import sys\n"
        "from espdl_streaming.audio.declare import parse_frontend, OPTIONS\n"
        "from espdl_streaming.audio import FrontendConfig, CMAKE_KEYWORDS\n"
        "assert parse_frontend({o.key: None for o in OPTIONS}) is None\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
        "from espdl_streaming.audio import compute_features\n"
        "assert 'numpy' in sys.modules\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).parents[1], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_cmake_knows_the_same_frontend_keywords() -> None:
    """cmake/espdl_streaming.cmake's copy of the keyword list (both CMake functions take it) is CMAKE_KEYWORDS."""
    text = (REPO / "cmake" / "espdl_streaming.cmake").read_text()
    pattern = r"function\(__espdl_streaming_frontend_keywords out\)\s*set\(\$\{out\}(.*?)PARENT_SCOPE\)"
    block = re.search(pattern, text, re.S)
    assert block is not None
    assert tuple(block.group(1).split()) == CMAKE_KEYWORDS
    for path in (REPO / "cmake" / "espdl_streaming.cmake", REPO / "project_include.cmake"):
        assert "__espdl_streaming_frontend_keywords(frontend_keywords)" in path.read_text(), path


def test_a_frontend_declaration_imports_no_numpy(tmp_path: Path) -> None:
    """A cache hit of a front-end model parses the declaration (audio folder listed) and computes the key
    without numpy: the mel-filter checks are left to the build."""
    import wave

    (tmp_path / "audio").mkdir()
    with wave.open(str(tmp_path / "audio" / "a.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(bytes(3200))
    (tmp_path / "model.py").write_text("def build():\n    pass\n")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from espdl_streaming.declaration import make_declaration\n"
        "from espdl_streaming.cache import build_key\n"
        "from espdl_streaming.inputs import Hasher\n"
        f"t = Path({str(tmp_path)!r})\n"
        "d = make_declaration(name='m', model=str(t / 'model.py') + ':build', input_shape='1,16,8', chunk_frames=2,\n"
        "    target='esp32p4', out_dir=t / 'out', calibration=str(t / 'audio'),\n"
        "    frontend={'FRONTEND': 'fbank', 'NUM_MEL_BINS': '16'})\n"
        "assert d.frontend is not None and d.calibration.wav_files == (t / 'audio' / 'a.wav',)\n"
        "build_key(d, t, 'cmd', Hasher())\n"
        "assert 'numpy' not in sys.modules, 'numpy imported'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert proc.returncode == 0, proc.stderr


def test_the_fingerprint_of_a_declaration_without_a_front_end_is_unchanged(tmp_path: Path) -> None:
    """Declaration.frontend and CalibrationRef.wav_files enter the cache key and the lock only when set."""
    from espdl_streaming.declaration import make_declaration
    from espdl_streaming.inputs import Hasher, declaration_fingerprint

    (tmp_path / "model.py").write_text("def build():\n    pass\n")
    (tmp_path / "calib.npy").write_bytes(b"x")
    common = dict(name="m", model=f"{tmp_path / 'model.py'}:build", input_shape="1,16,8", chunk_frames=2,
                  target="esp32p4", out_dir=tmp_path / "out", calibration=str(tmp_path / "calib.npy"))  # fmt: skip
    plain = declaration_fingerprint(make_declaration(**common), tmp_path, Hasher())
    assert "frontend" not in plain and set(plain["calibration"]) == {"path", "function"}
    fe = declaration_fingerprint(
        make_declaration(**common, frontend={"FRONTEND": "fbank", "NUM_MEL_BINS": "16"}), tmp_path, Hasher()
    )
    assert fe["frontend"]["config"]["num_mel_bins"] == 16
