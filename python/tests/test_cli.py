"""The `build` CLI contract: outputs, report, verification, errors, atomicity, determinism."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import EXAMPLE_MODEL, TEST_MODELS, build_args, example_declaration, run_cli

OUTPUTS = ("tcn.espdl", "tcn.offline.espdl", "tcn.hpp", "tcn.cpp", "tcn.report.json")


@pytest.mark.parametrize("target", ["esp32p4", "esp32s3", "esp32c3"])
def test_example_verifies_bit_exact(example_builds: dict[str, Path], target: str) -> None:
    out = example_builds[target]
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    report = json.loads((out / "tcn.report.json").read_text())
    assert report["name"] == "tcn" and report["target"] == target and report["chunk_frames"] == 3
    assert report["streaming"]["verified"] is True
    assert report["streaming"]["max_abs_diff"] == 0
    assert report["streaming"]["chunks_checked"] >= 8
    assert report["input"]["shape"] == [1, 3, 16] and report["input"]["dtype"] == "int8"
    assert [o["shape"] for o in report["outputs"]] == [[1, 8]]
    assert report["espdl_bytes"] == (out / "tcn.espdl").stat().st_size
    assert report["cache_bytes"] > 0 and report["macs_per_chunk"] > 0
    for phase in ("calibrate", "export", "verify", "total"):
        assert report["seconds"][phase] >= 0
    assert (out / "tcn.espdl").read_bytes()[:4] == b"EDL2"
    # the residual Adds read uncached tensors: one cache per consuming conv/pool/slice
    caches = report["streaming"]["caches"]
    assert {c["op_type"] for c in caches} == {"Conv", "AveragePool", "Slice"}
    assert all(not c["op"].endswith("Add") for c in caches)
    # no calibration given: said loudly, in the report too
    assert report["calibration"]["random"] is True
    # per-node cache RAM adds up; latency and work per frame are reported
    assert sum(c["bytes"] for c in caches) == report["cache_bytes"]
    assert all(c["bytes"] > 0 for c in caches)
    assert report["latency_frames"] == 2 and report["receptive_field_frames"] == 11
    assert report["streaming_macs_per_frame"] == pytest.approx(report["macs_per_chunk"] / 3, abs=1e-3)


def test_rounding_differs_per_chip_family(example_builds: dict[str, Path]) -> None:
    rounding = {
        t: json.loads((p / "tcn.report.json").read_text())["streaming"]["rounding"] for t, p in example_builds.items()
    }
    assert rounding == {"esp32p4": "half_even", "esp32s3": "half_up", "esp32c3": "half_up"}


def test_depfile_names_the_model(example_builds: dict[str, Path]) -> None:
    out = example_builds["esp32p4"]
    text = (out / "tcn.d").read_text()
    target, deps = text.split(":", 1)
    assert Path(target.strip()) == out.resolve() / "tcn.espdl"
    assert str(EXAMPLE_MODEL) in deps


def test_same_inputs_same_bytes_and_no_rewrite(tmp_path: Path) -> None:
    args = build_args("tcn", f"{EXAMPLE_MODEL}:build", "1,16,24", 3, "esp32s3", tmp_path)
    assert run_cli(*args).returncode == 0
    first = {n: (tmp_path / n).read_bytes() for n in OUTPUTS}
    for name in OUTPUTS:
        (tmp_path / name).unlink()
    assert run_cli(*args).returncode == 0
    for name in ("tcn.espdl", "tcn.offline.espdl", "tcn.hpp", "tcn.cpp"):
        assert (tmp_path / name).read_bytes() == first[name], f"{name} differs between two identical builds"
    before = {n: (tmp_path / n).stat().st_mtime_ns for n in OUTPUTS}
    r = run_cli(*args)
    assert r.returncode == 0, r.stderr
    assert "outputs unchanged" not in r.stdout  # the report records fresh timings
    after = {n: (tmp_path / n).stat().st_mtime_ns for n in OUTPUTS}
    for name in ("tcn.espdl", "tcn.offline.espdl", "tcn.hpp", "tcn.cpp"):
        assert before[name] == after[name], f"{name} was rewritten with unchanged content"


def test_calibration_file_is_used(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.save(tmp_path / "calib.npy", (rng.standard_normal((6, 16, 24)) * 0.5).astype(np.float32))
    out = tmp_path / "out"
    r = run_cli(
        *build_args(
            "tcn",
            f"{EXAMPLE_MODEL}:build",
            "1,16,24",
            3,
            "esp32s3",
            out,
            "--calibration",
            str(tmp_path / "calib.npy"),
            "--calib-steps",
            "4",
        )
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "tcn.report.json").read_text())
    assert report["calibration"]["random"] is False and report["calibration"]["samples"] == 6
    assert "no calibration data given" not in r.stderr
    assert report["streaming"]["verified"] is True


@pytest.mark.parametrize("target", ["esp32p4", "esp32s3", "esp32c3"])
def test_sixteen_bit_verifies(tmp_path: Path, target: str) -> None:
    r = run_cli(*build_args("tcn", f"{EXAMPLE_MODEL}:build", "1,16,24", 3, target, tmp_path, "--bits", "16"))
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "tcn.report.json").read_text())
    assert report["bits"] == 16 and report["input"]["dtype"] == "int16"
    assert report["streaming"]["verified"] is True and report["streaming"]["max_abs_diff"] == 0


@pytest.mark.parametrize(
    "model,shape,chunk,name",
    [
        ("per_frame.py:build", "1,8,20", 4, "per_frame"),
        ("branchy.py:build", "1,8,16", 2, "branchy"),
    ],
)
def test_unseen_causal_models_verify(tmp_path: Path, model: str, shape: str, chunk: int, name: str) -> None:
    r = run_cli(
        *build_args(
            name, TEST_MODELS / model, shape, chunk, "esp32p4", tmp_path, "--depfile", str(tmp_path / f"{name}.d")
        )
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / f"{name}.report.json").read_text())
    assert report["streaming"]["verified"] is True and report["streaming"]["max_abs_diff"] == 0
    if name == "branchy":
        assert str(TEST_MODELS / "helpers_pkg.py") in (tmp_path / "branchy.d").read_text()


def test_onnx_input_is_not_modified(tmp_path: Path) -> None:
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("per_frame_model", TEST_MODELS / "per_frame.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    onnx_path = tmp_path / "per_frame.onnx"
    torch.onnx.export(module.build(), (torch.zeros(1, 8, 20),), str(onnx_path), opset_version=18, dynamo=False)
    before = onnx_path.read_bytes()
    out = tmp_path / "out"
    r = run_cli(*build_args("pf", onnx_path, "1,8,20", 4, "esp32c3", out))
    assert r.returncode == 0, r.stderr
    assert onnx_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "per_frame.onnx"]  # no side files
    assert json.loads((out / "pf.report.json").read_text())["streaming"]["verified"] is True


# ---------------------------------------------------------------------------------------------
# Errors: exit 2, one `error:` line naming what and where, nothing written, old outputs intact.


@pytest.fixture
def good_out(example_builds: dict[str, Path], tmp_path: Path) -> Path:
    out = tmp_path / "good"
    shutil.copytree(example_builds["esp32p4"], out)
    return out


def _snapshot(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


def _args(out: Path, **over: str) -> list[str]:
    base = {"name": "tcn", "model": f"{EXAMPLE_MODEL}:build", "shape": "1,16,24", "chunk": "3", "target": "esp32p4"}
    base.update(over)
    args = build_args(base["name"], base["model"], base["shape"], int(base["chunk"]), base["target"], out)
    for key in ("calibration", "bits"):
        if key in over:
            args += [f"--{key}", over[key]]
    return args


@pytest.mark.parametrize(
    "over,expect",
    [
        ({"model": "missing/model.py:build"}, "file not found"),
        ({"model": f"{EXAMPLE_MODEL}:nope"}, "no function 'nope'"),
        ({"model": f"{TEST_MODELS / 'broken.py'}:raises"}, "checkpoint weights.pt not found"),
        ({"model": f"{TEST_MODELS / 'broken.py'}:not_a_module"}, "not a torch.nn.Module"),
        ({"shape": "1,16"}, "--input-shape"),
        ({"shape": "2,16,24"}, "batch"),
        ({"shape": "1,12,24"}, "does not run on --input-shape"),
        ({"chunk": "0"}, "--chunk-frames 0"),
        ({"chunk": "25"}, "longer than the offline input"),
        ({"target": "esp8266"}, "--target 'esp8266'"),
        ({"bits": "12"}, "--bits 12"),
        ({"name": "9lives"}, "identifier"),
        ({"name": "class"}, "identifier"),
        ({"model": f"{TEST_MODELS / 'lookahead.py'}:build", "shape": "1,8,16"}, "future frame"),
    ],
)
def test_user_errors_exit_2_and_leave_outputs(good_out: Path, over: dict[str, str], expect: str) -> None:
    before = _snapshot(good_out)
    r = run_cli(*_args(good_out, **over))
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().splitlines()[-1].startswith("error: ")
    assert expect in r.stderr
    assert "Traceback" not in r.stderr
    assert _snapshot(good_out) == before


def test_lookahead_error_names_node(tmp_path: Path) -> None:
    r = run_cli(*build_args("la", f"{TEST_MODELS / 'lookahead.py'}:build", "1,8,16", 4, "esp32p4", tmp_path))
    assert r.returncode == 2
    assert "node '/0/Conv'" in r.stderr and "1 future frame" in r.stderr and "causal" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_reduction_over_time_is_refused_naming_the_node(tmp_path: Path) -> None:
    r = run_cli(*build_args("tm", f"{TEST_MODELS / 'time_mean.py'}:build", "1,8,16", 4, "esp32s3", tmp_path))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: tm: node '")
    assert "time axis" in r.stderr and "ReduceMean" in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_esp_ppq_logged_errors_become_failures(tmp_path: Path) -> None:
    import espdl_streaming.quantize as q
    from espdl_streaming.errors import QuantizeError

    decl = example_declaration(tmp_path)
    from esp_ppq.log import NaiveLogger

    with q._capture_esp_ppq_log() as capture:
        NaiveLogger.get_logger("ESPDL").info("fine")
        NaiveLogger.get_logger("ESPDL").error("Operation /Foo of type Bar is not supported")
    assert capture.errors == ["[ERROR][ESPDL] Operation /Foo of type Bar is not supported"]
    with pytest.raises(QuantizeError, match="(?s)esp-ppq reported 1 error.*/Foo"):
        q._check_errors(decl, capture, "converting to streaming", 0)


def test_wrong_calibration_shape(good_out: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "bad.npy", np.zeros((4, 16, 20), np.float32))
    before = _snapshot(good_out)
    r = run_cli(*_args(good_out, calibration=str(tmp_path / "bad.npy")))
    assert r.returncode == 2
    assert "bad.npy" in r.stderr and "[N, 16, 24]" in r.stderr
    assert _snapshot(good_out) == before


def test_out_dir_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("x")
    r = run_cli(*build_args("tcn", f"{EXAMPLE_MODEL}:build", "1,16,24", 3, "esp32p4", f / "sub"))
    assert r.returncode == 2 and "not a directory" in r.stderr


def test_help_does_not_import_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; from espdl_streaming import cli, declaration, espdl, verify, build;"
        "assert 'torch' not in sys.modules and 'esp_ppq' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
