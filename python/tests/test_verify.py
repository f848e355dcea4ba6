"""The verifier judges esp-ppq's output independently: it must catch esp-ppq's own streaming bug."""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

import pytest
from conftest import example_declaration

import espdl_streaming  # noqa: F401  (import before esp_ppq: it puts its own espdl_streaming.py on sys.path)
from espdl_streaming.errors import VerificationError
from espdl_streaming.verify import verify


def _auto_streaming_export(decl, tmp: Path) -> tuple[bytes, bytes]:
    """What ESP-DL's tutorial does: esp-ppq auto_streaming with only the tail entry written by hand."""
    import torch

    from espdl_streaming.loading import load_torch_model

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        import esp_ppq.lib as PFL
        from esp_ppq.api import (
            espdl_quantize_onnx,
            generate_test_value,
            get_target_platform,
            insert_streaming_cache_on_var,
        )

        model, _, _ = load_torch_model(decl)
        onnx_path = tmp / "m.onnx"
        torch.onnx.export(model, (torch.zeros(1, 16, 24),), str(onnx_path), opset_version=18, dynamo=False)
        torch.manual_seed(0)
        calib = [torch.randn(1, 16, 24) for _ in range(8)]
        graph = espdl_quantize_onnx(
            str(onnx_path),
            str(tmp / "x.espdl"),
            calib,
            8,
            [[1, 16, 24]],
            target="esp32p4",
            num_of_bits=8,
            device="cpu",
            error_report=False,
            skip_export=True,
            verbose=0,
        )
        platform = get_target_platform("esp32p4", 8)
        values = generate_test_value(graph, "cpu", [calib[0]])
        PFL.Exporter(platform=platform).export(
            str(tmp / "off.espdl"), graph, values_for_test=values, export_config=False
        )
        table = [insert_streaming_cache_on_var("/proj/Conv_output_0", 2, "/Slice")]
        PFL.Exporter(platform=platform).export(
            str(tmp / "st.espdl"),
            graph,
            export_config=False,
            auto_streaming=True,
            streaming_input_shape=[1, 16, 3],
            streaming_table=table,
        )
    return (tmp / "off.espdl").read_bytes(), (tmp / "st.espdl").read_bytes()


def test_verifier_catches_esp_ppq_residual_bug(tmp_path: Path) -> None:
    decl = example_declaration(tmp_path)
    with tempfile.TemporaryDirectory() as tmp:
        offline, streaming = _auto_streaming_export(decl, Path(tmp))
    with pytest.raises(VerificationError) as err:
        verify(decl, offline, streaming)
    message = str(err.value)
    assert message.startswith("tcn: ")
    # esp-ppq splices the cache onto the residual input, so the first wrong node is the residual Add
    assert "Add" in message, message
