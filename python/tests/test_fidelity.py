"""Faithfulness to the user's float model (fidelity.py): the GRU/LSTM state rewrite is checked to keep
the float model's meaning in every build, and the report measures the integer streaming outputs
against the float model."""

from __future__ import annotations

import dataclasses
import io
import math
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from conftest import EXAMPLE_MODEL, example_declaration

from espdl_streaming import fidelity as F
from espdl_streaming.build import make_report
from espdl_streaming.cli import _summary
from espdl_streaming.declaration import make_declaration
from espdl_streaming.errors import StreamingConversionError
from espdl_streaming.recurrent_state import expose_recurrent_state

ZOO = Path(__file__).resolve().parent / "zoo" / "zoo_models.py"

LEARNED_H0 = textwrap.dedent(
    """
    import torch
    from torch import nn

    class LearnedH0(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Conv1d(8, 8, 1)
            self.gru = nn.GRU(8, 6, batch_first=True)
            self.h0 = nn.Parameter(torch.linspace(-0.9, 0.9, 6).reshape(1, 1, 6))
            self.fc = nn.Linear(6, 3)

        def forward(self, x):
            y, _ = self.gru(torch.relu(self.proj(x)).transpose(1, 2), self.h0)
            return self.fc(y)

    def build():
        torch.manual_seed(3)
        return LearnedH0().eval()
    """
)


def _export(model: torch.nn.Module, shape: tuple[int, ...], path: Path, out: str = "y", **kwargs: Any) -> bytes:
    torch.onnx.export(
        model,
        (torch.zeros(shape),),
        str(path),
        opset_version=18,
        input_names=["input"],
        output_names=[out],
        dynamo=False,
        **kwargs,
    )
    return path.read_bytes()


def _learned_h0_onnx(tmp_path: Path) -> tuple[bytes, Path]:
    (tmp_path / "learned_h0.py").write_text(LEARNED_H0)
    scope: dict[str, Any] = {}
    exec(compile(LEARNED_H0, "learned_h0.py", "exec"), scope)
    path = tmp_path / "model.onnx"
    return _export(scope["build"](), (1, 8, 16), path), path


def _verify(decl: Any, q: Any) -> Any:
    """verify() as run_build calls it."""
    from espdl_streaming.verify import verify

    return verify(decl, q.offline_bytes, q.streaming_bytes, receptive_field=q.plan.receptive_field,
                  leads=q.plan.output_leads(), axes=q.plan.output_axes())  # fmt: skip


def _zeroed(states: list[Any]) -> list[Any]:
    """The same states, but a fresh stream starting from zeros (the wrong rewrite under test)."""
    return [dataclasses.replace(s, initial=None) for s in states]


# -- A. the GRU/LSTM state rewrite keeps the float model's meaning ----------------------------------


def test_rewrite_check_passes_and_is_recorded(tmp_path: Path) -> None:
    original, path = _learned_h0_onnx(tmp_path)
    states = expose_recurrent_state("h0", path, 1)
    assert states and states[0].initial is not None  # the learned h0 is what the rewritten graph starts from
    record = F.check_rewrite("h0", original, path.read_bytes(), states, (1, 8, 16))
    assert record["checked"] and record["changed"]
    assert [o["name"] for o in record["outputs"]] == ["y"]
    assert record["outputs"][0]["max_abs_error"] <= 1e-5 * record["outputs"][0]["max_abs"]


def test_rewrite_that_forgets_the_initial_state_is_refused(tmp_path: Path) -> None:
    # The original GRU starts from a constant h0; the rewritten one is fed zeros.
    original, path = _learned_h0_onnx(tmp_path)
    states = expose_recurrent_state("h0", path, 1)
    with pytest.raises(StreamingConversionError) as info:
        F.check_rewrite("h0", original, path.read_bytes(), _zeroed(states), (1, 8, 16))
    msg = str(info.value)
    assert msg.startswith("h0: the GRU/LSTM state rewrite changed what the model computes")
    assert "output 'y' differs from the user's float model by up to" in msg
    assert "defect of espdl_streaming, not of your model" in msg


def test_rewrite_that_drops_a_user_output_is_refused(tmp_path: Path) -> None:
    original, path = _learned_h0_onnx(tmp_path)
    states = expose_recurrent_state("h0", path, 1)
    proto = onnx.load(str(path))
    for out in proto.graph.output:
        if out.name == "y":
            out.name = "renamed"
    for node in proto.graph.node:
        node.output[:] = ["renamed" if o == "y" else o for o in node.output]
    with pytest.raises(StreamingConversionError, match="the user's output 'y' is missing from the rewritten graph"):
        F.check_rewrite("h0", original, proto.SerializeToString(), states, (1, 8, 16))


def test_no_rewrite_is_recorded_without_running() -> None:
    record = F.check_rewrite("m", b"not an onnx model", b"not an onnx model", [], (1, 8, 16))
    assert record == {
        "rewrite": "the GRU/LSTM state rewrite",
        "changed": False,
        "checked": False,
        "note": "the model has no GRU/LSTM: the graph was not rewritten (nothing to compare)",
    }


def test_quantize_stops_on_a_wrong_rewrite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from espdl_streaming import quantize as Q

    (tmp_path / "learned_h0.py").write_text(LEARNED_H0)
    real = Q.expose_recurrent_state
    monkeypatch.setattr(Q, "expose_recurrent_state", lambda *a, **k: _zeroed(real(*a, **k)))
    decl = make_declaration(
        name="h0",
        model=f"{tmp_path / 'learned_h0.py'}:build",
        input_shape="1,8,16",
        chunk_frames=4,
        target="esp32p4",
        out_dir=tmp_path / "out",
    )
    with pytest.raises(
        StreamingConversionError, match="h0: the GRU/LSTM state rewrite changed .* output 'output' differs"
    ):
        Q.quantize(decl)


# -- B. the integer streaming model against the float model -----------------------------------------


@pytest.fixture(scope="module")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[int, tuple[Any, Any, Any, dict[str, Any]]]:
    """The bundled example quantized and verified at 8 and 16 bits: (decl, q, v, report)."""
    from espdl_streaming.quantize import quantize

    built = {}
    for bits in (8, 16):
        decl = dataclasses.replace(
            example_declaration(tmp_path_factory.mktemp(f"fid{bits}")), quant="w8a8" if bits == 8 else "w16a16"
        )
        q = quantize(decl)
        v = _verify(decl, q)
        report = make_report(decl, q, v, {"total": 0.0}, F.fidelity_report(decl, q, v))
        built[bits] = (decl, q, v, report)
    return built


def _snr(fid: dict[str, Any]) -> float:
    return min(o["snr_db"] for o in fid["outputs"])


def test_report_has_fidelity_and_16_bit_is_more_faithful(example: dict[int, Any]) -> None:
    fid8, fid16 = example[8][3].fidelity, example[16][3].fidelity
    for fid in (fid8, fid16):
        assert {"reference", "input", "chunks", "outputs", "verification_stream", "rewrites"} <= set(fid)
        assert "dynamic time axis" in fid["reference"] and "calibration data" in fid["input"]
        assert fid["chunks"] >= 8 and fid["verification_stream"]["chunks"] == 8
        for o in fid["outputs"] + fid["verification_stream"]["outputs"]:
            assert set(o) >= {"name", "snr_db", "cosine", "max_abs_error"} and o["name"] == "output"
        assert "before quantization" in fid["verification_stream"]["input"]
        assert fid["rewrites"][0]["changed"] is False
    assert 20.0 <= _snr(fid8) <= 45.0
    assert _snr(fid16) > _snr(fid8) + 20.0
    assert fid16["outputs"][0]["max_abs_error"] < fid8["outputs"][0]["max_abs_error"]
    assert 0.99 < fid8["outputs"][0]["cosine"] <= 1.0
    line = _summary(example[8][3], [], Path("/x")).splitlines()[1]
    assert f"float_snr_db: {_snr(fid8):.1f} (worst output 'output' against the float model" in line


def test_a_different_float_model_gets_a_low_snr(example: dict[int, Any], tmp_path: Path) -> None:
    decl, q, v, _ = example[8]
    scope: dict[str, Any] = {}
    exec(compile(EXAMPLE_MODEL.read_text(), str(EXAMPLE_MODEL), "exec"), scope)
    torch.manual_seed(99)  # the same architecture with other weights
    other = _export(scope["TinyTCN"]().eval(), (1, 16, 24), tmp_path / "other.onnx", "output",
                    dynamic_axes={"input": {2: "frames"}})  # fmt: skip
    wrong = F.fidelity_report(decl, dataclasses.replace(q, float_onnx=other), v)
    assert _snr(wrong) < 3.0 and _snr(wrong["verification_stream"]) < 3.0
    assert _snr(wrong) < _snr(example[8][3].fidelity) - 15.0


def test_fixed_length_float_model_is_compared_on_declared_windows(example: dict[int, Any], tmp_path: Path) -> None:
    decl, q, v, report = example[8]
    scope: dict[str, Any] = {}
    exec(compile(EXAMPLE_MODEL.read_text(), str(EXAMPLE_MODEL), "exec"), scope)
    fixed = _export(scope["build"](), (1, 16, 24), tmp_path / "fixed.onnx", "output")
    ref = F.FloatReference(fixed, False, "the user's ONNX model at its declared length")
    got = F.measure_fidelity(v, ref, perms=q.layout_perms, leads=q.plan.output_leads(), offline_frames=24,
                             chunk_frames=3, receptive_field=q.plan.receptive_field, recurrent=False)  # fmt: skip
    # Chunks ending at frame 24 and 27 (the stream's chunks 7 and 8) have a declared-length window.
    assert got["chunks"] == 2 and got["skipped_chunks"] == 6 and "window of the declared 24 frames" in got["reference"]
    assert abs(_snr(got) - _snr(report.fidelity["verification_stream"])) < 6.0


def test_recurrent_model_with_time_axis_output(tmp_path: Path) -> None:
    from espdl_streaming.quantize import quantize

    decl = make_declaration(name="gru", model=f"{ZOO}:recurrent_gru", input_shape="1,8,16", chunk_frames=4,
                            target="esp32s3", out_dir=tmp_path)  # fmt: skip
    q = quantize(decl)
    v = _verify(decl, q)
    fid = F.fidelity_report(decl, q, v)
    assert fid["chunks"] == 12 and "skipped_chunks" not in fid
    assert _snr(fid) > 30.0 and _snr(fid["verification_stream"]) > 30.0
    assert fid["rewrites"][0]["checked"] is True and fid["rewrites"][0]["outputs"][0]["name"] == "output"


def test_snr_is_capped_when_exact_and_null_without_signal() -> None:
    exact = F._Sums()
    exact.add(np.array([1.0, -2.0]), np.array([1.0, -2.0]))
    assert exact.snr_db() == F.SNR_CAP_DB and exact.cosine() == 1.0
    silent = F._Sums()
    silent.add(np.zeros(3), np.ones(3))
    assert silent.snr_db() is None and silent.cosine() is None
    half = F._Sums()
    half.add(np.array([2.0]), np.array([1.0]))
    assert half.snr_db() == round(10 * math.log10(4.0), 2)


def test_json_safe(example: dict[int, Any]) -> None:
    import json

    text = json.dumps(example[16][3].fidelity, allow_nan=False)
    assert "NaN" not in text and "Infinity" not in text
    assert isinstance(io.StringIO(text).read(), str)
