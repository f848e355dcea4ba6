"""The simulator is checked against esp-ppq before it judges a streaming model.

At 16 bits esp-ppq's reference computes in float32: at some layers it is one step off ESP-DL's
integers, and a deep chain (Softmax, LayerNorm) amplifies those steps at the outputs. Such a model
is accepted only when every layer, run on esp-ppq's own inputs, reproduces esp-ppq's value of it; a
layer the simulator gets wrong is named."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TEST_MODELS

import espdl_streaming  # noqa: F401  (import before esp_ppq)
from espdl_streaming.build import verify_quantized
from espdl_streaming.declaration import make_declaration
from espdl_streaming.errors import VerificationError
from espdl_streaming.espdl import simulator
from espdl_streaming.espdl.ops.kernels import Value

LN = "/ln8/LayerNormalization_output_0"


@pytest.fixture(scope="module")
def deep16(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    from espdl_streaming.quantize import quantize

    decl = make_declaration(
        name="deep16",
        model=f"{TEST_MODELS / 'deep16.py'}:build",
        input_shape="1,8,23",
        chunk_frames=3,
        target="esp32s3",
        bits=16,
        calib_steps=4,
        out_dir=tmp_path_factory.mktemp("deep16"),
    )
    return decl, quantize(decl)


def _verify(decl: Any, q: Any, layer_values: Any) -> Any:
    return verify_quantized(decl, q, layer_values)


def test_output_drift_is_accepted_when_every_layer_agrees(deep16: tuple[Any, Any]) -> None:
    decl, q = deep16
    assert LN in q.layer_values  # esp-ppq's per-layer values travel with the quantize result
    v = _verify(decl, q, q.layer_values)
    assert v.verified and v.max_abs_diff == 0
    check = v.simulator_check.as_json()
    assert check["method"] == "layers", check
    assert check["layers"] >= 10
    assert "max |diff| 2" in check["output_drift"]


def test_without_layer_values_the_drift_is_refused(deep16: tuple[Any, Any]) -> None:
    decl, q = deep16
    with pytest.raises(VerificationError, match=r"deep16: .*esp-ppq's own test output 'output'"):
        _verify(decl, q, {})


def test_a_wrong_reference_layer_is_named(deep16: tuple[Any, Any]) -> None:
    decl, q = deep16
    values = dict(q.layer_values)
    bad = np.array(values[LN], copy=True)
    bad.flat[5] += 3
    values[LN] = bad
    with pytest.raises(VerificationError) as err:
        _verify(decl, q, values)
    message = str(err.value)
    assert message.startswith("deep16: node '"), message
    assert "(LayerNormalization)" in message and LN in message and "max |diff| 3" in message


def test_a_simulator_kernel_that_is_off_is_named(deep16: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel two steps too high on every element: the first layer it runs is named, not the output.
    (At 16 bits esp-ppq exports Tanh and Sigmoid as lookup tables.)"""
    decl, q = deep16
    real = simulator.KERNELS["LUT"]

    def off_by_two(run: Any) -> Any:
        return [Value(np.clip(r.data.astype(np.int64) + 2, -32768, 32767).astype(r.data.dtype), r.exponent)
                for r in real(run)]  # fmt: skip

    monkeypatch.setitem(simulator.KERNELS, "LUT", off_by_two)
    with pytest.raises(VerificationError, match=r"deep16: node '/Tanh' \(LUT\): the host simulator does not"):
        _verify(decl, q, q.layer_values)


def test_the_report_records_how_the_simulator_was_checked(tmp_path: Path) -> None:
    from conftest import build_args, run_cli

    out = tmp_path / "out"
    run = run_cli(*build_args("deep16", f"{TEST_MODELS / 'deep16.py'}:build", "1,8,23", 3, "esp32c3", out,
                              "--bits", "16", "--calib-steps", "4"))  # fmt: skip
    assert run.returncode == 0, run.stderr
    import json

    report = json.loads((out / "deep16.report.json").read_text())
    check = report["streaming"]["simulator_check"]
    assert check["method"] == "layers" and check["outputs"] == 1 and check["layers"] >= 10
