"""esp-ppq's calibration choices (CALIB_ALGORITHM, CALIB_OPTIONS), and what QUANT auto does with them and
with flash: it tries the other activation observers before moving layers to 16 bits, and never keeps a
result that costs more flash than the whole model at w16a16."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, build_args, run_cli

from espdl_streaming.declaration import DeclarationError, make_declaration
from espdl_streaming.report_html import render_html, render_text

ZOO = REPO / "python" / "tests" / "zoo"
DW = (f"{ZOO / 'zoo_models.py'}:dw_separable_bn", "1,10,20", 4)  # int8 poor with kl, better with others
LSTM = (f"{ZOO / 'zoo_models.py'}:recurrent_lstm", "1,8,16", 4)
RESIDUAL = (f"{ZOO / 'faithful_axes.py'}:residual_shared_pad", "1,8,16", 4)  # its w8a8 file is larger than w16a16


def _build(out: Path, model: tuple[str, str, int], *extra: str) -> Any:
    return run_cli(*build_args("m", model[0], model[1], model[2], "esp32p4", out, *extra))


def _report(out: Path) -> dict[str, Any]:
    return json.loads((out / "m.report.json").read_text())


def _snr(report: dict[str, Any]) -> float:
    return min(o["snr_db"] for o in report["quality"]["outputs"])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"calib_algorithm": "entropy"},
            "--calib-algorithm 'entropy' is not an esp-ppq activation observer: use one of kl, minmax, percentile, mse",
        ),  # fmt: skip
        (
            {"calib_options": "equalisation"},
            "--calib-options: 'equalisation' is not an option: use any of equalization, bias_correction",
        ),  # fmt: skip
        ({"calib_options": "equalization,equalization"}, "--calib-options: 'equalization' is given twice"),
    ],
)
def test_bad_calibration_choices_are_named(tmp_path: Path, kwargs: dict[str, str], message: str) -> None:
    with pytest.raises(DeclarationError, match="^m: " + message.replace("(", r"\(").replace(")", r"\)")):
        make_declaration(name="m", model=DW[0], input_shape=DW[1], chunk_frames=DW[2], target="esp32p4",
                         out_dir=tmp_path, **kwargs)  # fmt: skip


def test_options_are_normalised(tmp_path: Path) -> None:
    decl = make_declaration(
        name="m", model=DW[0], input_shape=DW[1], chunk_frames=DW[2], target="esp32p4", out_dir=tmp_path,
        calib_algorithm="MinMax", calib_options="Equalization, bias_correction",
    )  # fmt: skip
    assert decl.calib_algorithm == "minmax" and decl.calib_options == ("bias_correction", "equalization")


def test_each_choice_changes_the_quantization_and_stays_verified(tmp_path: Path) -> None:
    """On a depthwise-separable model with BatchNorm, esp-ppq's default kl observer gives 32 dB at w8a8; bias
    correction and the percentile observer each measurably improve it, and every result is still verified."""
    runs = {
        "default": (),
        "bias_correction": ("--calib-options", "bias_correction"),
        "percentile": ("--calib-algorithm", "percentile"),
    }
    reports = {}
    for key, extra in runs.items():
        run = _build(tmp_path / key, DW, *extra)
        assert run.returncode == 0, run.stderr
        reports[key] = _report(tmp_path / key)
        assert reports[key]["streaming"]["verified"] and reports[key]["streaming"]["max_abs_diff"] == 0
    assert reports["default"]["calib_algorithm"] is None and reports["default"]["calib_options"] == []
    assert reports["bias_correction"]["calib_options"] == ["bias_correction"]
    assert reports["percentile"]["calib_algorithm"] == "percentile"
    # The page and its text version say what was used.
    assert "activation observer    esp-ppq's default for the scheme" in render_text(reports["default"])
    assert "calibration passes     bias_correction" in render_text(reports["bias_correction"])
    assert "<dt>activation observer</dt><dd>percentile</dd>" in render_html(reports["percentile"])
    assert _snr(reports["bias_correction"]) >= _snr(reports["default"]) + 1.0
    assert _snr(reports["percentile"]) >= _snr(reports["default"]) + 5.0


def test_bias_correction_on_an_lstm_is_refused_before_calibrating(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = _build(out, LSTM, "--calib-options", "bias_correction")
    assert run.returncode == 2
    assert run.stderr.startswith("error: m: CALIB_OPTIONS bias_correction: node '/lstm/LSTM' (LSTM): esp-ppq"), (
        run.stderr
    )
    assert "build this model without bias_correction" in run.stderr
    assert not out.exists() or not any(out.iterdir())


def test_auto_tries_the_other_observers_before_16_bits(tmp_path: Path) -> None:
    out = tmp_path / "auto"
    run = _build(out, DW, "--quant", "auto", "--min-snr-db", "40")
    assert run.returncode == 0, run.stderr
    report = _report(out)
    auto = report["quality"]["auto"]
    assert auto["reached"] and auto["promoted"] == [] and _snr(report) >= 40
    assert auto["steps"][0]["snr_db"] < 40  # esp-ppq's default observer misses the target
    tried = [s.get("calib_algorithm") for s in auto["steps"][1:3]]
    assert tried == ["percentile", "minmax"]
    assert auto["calib_algorithm"] == report["calib_algorithm"] and report["calib_algorithm"] in tried
    assert report["quality"]["scheme"] == f"auto: w8a8 ({report['calib_algorithm']} observer)"
    # Still 8 bits, and the flash comparison kept it: smaller than the whole model at w16a16.
    assert report["bits"] == 8 and report["espdl_bytes"] < auto["flash_check"]["w16a16_espdl_bytes"]


def test_auto_never_keeps_more_flash_than_w16a16(tmp_path: Path) -> None:
    """On a small model ESP-DL's 16-lane int8 weights and the file's fixed part make w8a8 larger than w16a16:
    auto measures the whole-model schemes and keeps the smallest that reaches the target."""
    auto_out, wide_out = tmp_path / "auto", tmp_path / "w16"
    run = _build(auto_out, RESIDUAL, "--quant", "auto", "--min-snr-db", "30")
    assert run.returncode == 0, run.stderr
    run = _build(wide_out, RESIDUAL, "--quant", "w16a16")
    assert run.returncode == 0, run.stderr
    auto, wide = _report(auto_out), _report(wide_out)
    steps = auto["quality"]["auto"]["steps"]
    assert steps[0]["snr_db"] >= 30 and steps[0]["espdl_bytes"] > wide["espdl_bytes"]  # w8a8: enough, but larger
    assert auto["espdl_bytes"] < wide["espdl_bytes"] and _snr(auto) >= 30
    assert auto["quality"]["auto"]["flash_check"]["w16a16_espdl_bytes"] == wide["espdl_bytes"]
    assert auto["streaming"]["verified"] and auto["streaming"]["max_abs_diff"] == 0


def test_an_esp_dl_without_w8a16_gets_none(tmp_path: Path) -> None:
    """ESP-DL loads W8A16 layers from 3.3.11 on: w8a16 is refused for an older ESP-DL, and auto keeps to w8a8
    and w16a16 (the ESP-IDF wrapper passes the project's ESP-DL version as --espdl-version)."""
    with pytest.raises(DeclarationError, match=r"--quant w8a16: ESP-DL 3\.3\.9, which this project builds with, "
                                               r"cannot load W8A16 layers"):  # fmt: skip
        make_declaration(name="m", model=DW[0], input_shape=DW[1], chunk_frames=DW[2], target="esp32p4",
                         out_dir=tmp_path, quant="w8a16", espdl_version="3.3.9")  # fmt: skip
    with pytest.raises(DeclarationError, match="--espdl-version 'v3' must be a version"):
        make_declaration(name="m", model=DW[0], input_shape=DW[1], chunk_frames=DW[2], target="esp32p4",
                         out_dir=tmp_path, espdl_version="v3")  # fmt: skip
    out = tmp_path / "auto"
    run = _build(out, RESIDUAL, "--quant", "auto", "--min-snr-db", "30", "--espdl-version", "3.3.9")
    assert run.returncode == 0, run.stderr
    report = _report(out)
    auto = report["quality"]["auto"]
    assert auto["w8a16_used"] is False and auto["espdl_version"] == "3.3.9"
    assert [s.get("scheme") for s in auto["steps"]] == [None, "w16a16"]
    assert report["espdl_versions"] == ">=3.3.8,<4.0.0"  # no W8A16 layer in the result
