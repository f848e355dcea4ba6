"""Quantization quality (quality.py): measured in every build on evaluation data, gated by MIN_SNR_DB,
and improved by QUANT auto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import EXAMPLE_MODEL, TEST_MODELS, build_args, run_cli
from engine_parity import assert_engine_matches_simulator

from espdl_streaming.espdl import rounding_for_target

POOR = f"{TEST_MODELS / 'poor_int8.py'}:build"
POOR_SHAPE = "1,8,16"


@pytest.fixture(scope="module")
def poor_calib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("poor") / "calib.npy"
    np.save(path, np.random.default_rng(0).standard_normal((32, 8, 16)).astype(np.float32))
    return path


def _build(out: Path, *extra: str, model: str = POOR, shape: str = POOR_SHAPE, chunk: int = 2) -> Any:
    return run_cli(*build_args("poor", model, shape, chunk, "esp32p4", out, *extra))


def _report(out: Path, name: str = "poor") -> dict[str, Any]:
    return json.loads((out / f"{name}.report.json").read_text())


def test_every_build_reports_quality(example_builds: dict[str, Path]) -> None:
    report = _report(example_builds["esp32p4"], "tcn")
    q = report["quality"]
    assert q["scheme"] == "w8a8" and q["eval_source"] and q["frames"] > 0
    assert [o["name"] for o in q["outputs"]] == [o["name"] for o in report["outputs"]]
    for o in q["outputs"]:
        assert 10 < o["snr_db"] < 200 and 0.9 < o["cosine"] <= 1 and o["max_abs_error"] > 0
    names = [layer["name"] for layer in q["layers"]]
    assert len(names) >= 3 and all(layer["bits"] == 8 for layer in q["layers"])
    assert q["worst_layers"] and set(q["worst_layers"]) <= set(names)
    assert q["gate"] == {"min_snr_db": None, "passed": None, "strict": False}


def test_gate_fails_a_poor_model_naming_the_worst_layers(tmp_path: Path, poor_calib: Path) -> None:
    out = tmp_path / "out"
    run = _build(out, "--calibration", str(poor_calib), "--min-snr-db", "30")
    assert run.returncode == 2, run.stdout + run.stderr
    err = run.stderr
    assert err.startswith("error: poor: output 'output' reaches "), err
    assert "below MIN_SNR_DB 30 (w8a8)" in err and "held-out calibration: samples 25-32 of 32" in err
    assert "Worst layers: '/mix/Conv_output_0' (Conv, 8-bit" in err
    assert "QUANT auto" in err and "16-bit activations" in err
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_auto_reaches_the_target_with_less_flash_than_w16a16(
    tmp_path: Path, poor_calib: Path, host_engine: Path
) -> None:
    auto = _build(tmp_path / "auto", "--calibration", str(poor_calib), "--quant", "auto", "--min-snr-db", "30")
    assert auto.returncode == 0, auto.stderr
    wide = _build(tmp_path / "w16", "--calibration", str(poor_calib), "--quant", "w16a16", "--min-snr-db", "30")
    assert wide.returncode == 0, wide.stderr
    a, w = _report(tmp_path / "auto"), _report(tmp_path / "w16")
    qa = a["quality"]
    assert qa["auto"]["reached"] and qa["gate"]["passed"]
    assert min(o["snr_db"] for o in qa["outputs"]) >= 30
    assert qa["auto"]["promoted"] and qa["auto"]["steps"][0]["snr_db"] < 30 <= qa["auto"]["steps"][-1]["snr_db"]
    assert a["espdl_bytes"] < w["espdl_bytes"]
    assert a["streaming"]["verified"] and a["streaming"]["max_abs_diff"] == 0
    assert f"auto: {len(qa['auto']['promoted'])} layer(s) at 16 bits" in auto.stdout
    # The mixed-precision result runs on the C++ host engine exactly as the simulator runs it.
    for suffix in (".espdl", ".offline.espdl"):
        assert_engine_matches_simulator(
            host_engine, tmp_path / "auto" / f"poor{suffix}", rounding_for_target("esp32p4"), chunks=4
        )


def test_eval_data_is_used_and_checked(tmp_path: Path) -> None:
    good = tmp_path / "eval.npy"
    np.save(good, np.random.default_rng(3).standard_normal((4, 16, 24)).astype(np.float32))
    out = tmp_path / "out"
    run = run_cli(*build_args("tcn", f"{EXAMPLE_MODEL}:build", "1,16,24", 3, "esp32s3", out, "--eval", str(good)))
    assert run.returncode == 0, run.stderr
    q = _report(out, "tcn")["quality"]
    assert q["eval_source"] == f"{good}: 4 sample(s)"
    assert q["frames"] == 96  # 4 samples of 24 frames, back to back
    bad = tmp_path / "bad.npy"
    np.save(bad, np.zeros((4, 15, 24), np.float32))
    run = run_cli(*build_args("tcn", f"{EXAMPLE_MODEL}:build", "1,16,24", 3, "esp32s3", tmp_path / "o2", "--eval",
                              str(bad)))  # fmt: skip
    assert run.returncode == 2
    assert run.stderr.startswith(f"error: tcn: evaluation {bad} has shape [4, 15, 24]"), run.stderr


def test_saturation_warns_and_strict_fails(tmp_path: Path, poor_calib: Path) -> None:
    loud = tmp_path / "loud.npy"
    np.save(loud, 8 * np.random.default_rng(4).standard_normal((4, 8, 16)).astype(np.float32))
    run = _build(tmp_path / "o", "--calibration", str(poor_calib), "--eval", str(loud))
    assert run.returncode == 0, run.stderr
    assert "WARNING: poor: tensor '" in run.stderr and "saturates on" in run.stderr
    saturated = _report(tmp_path / "o")["quality"]["saturated"]
    assert saturated and all(s["fraction"] > 1e-3 for s in saturated)
    strict = _build(tmp_path / "s", "--calibration", str(poor_calib), "--eval", str(loud), "--strict")
    assert strict.returncode == 2 and "--strict makes saturation an error" in strict.stderr


def test_classifier_outputs_report_top1_agreement(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_cli(*build_args("tcn", f"{EXAMPLE_MODEL}:build", "1,16,24", 3, "esp32c3", out))
    assert run.returncode == 0, run.stderr
    (o,) = _report(out, "tcn")["quality"]["outputs"]
    assert o["top1_agreement"] is not None and 0.5 < o["top1_agreement"] <= 1.0


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--quant", "auto"], "--quant auto needs a target: give --min-snr-db"),
        (["--quant", "w4a4"], "--quant 'w4a4' is not a scheme"),
        (["--bits", "8", "--quant", "w16a16"], "--bits 8 contradicts --quant w16a16"),
        (["--min-snr-db", "-3"], "--min-snr-db -3.0: give a target in dB"),
    ],
)
def test_bad_quality_flags(tmp_path: Path, flags: list[str], message: str) -> None:
    run = _build(tmp_path / "o", *flags)
    assert run.returncode == 2 and message in run.stderr, run.stderr
