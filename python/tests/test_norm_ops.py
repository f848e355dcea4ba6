"""Gather, Softmax and LayerNormalization in the simulator: ESP-DL's semantics (float32 arithmetic,
the chip's rounding, indices used as they are), checked by hand and against esp-ppq's own test outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sim_models import export_with_test_values
from zoo import faithful_ops

from espdl_streaming.errors import UnsupportedOpError
from espdl_streaming.espdl import Simulator, load_espdl, rounding_for_target
from espdl_streaming.espdl.reader import EspdlModel, Node, Tensor, ValueInfo


def _model(node: Node, x: ValueInfo, y: ValueInfo, constants: list[Tensor]) -> EspdlModel:
    return EspdlModel("test", [x], [y], [node], {t.name: t for t in constants}, {}, {}, {}, {})


def _const(name: str, values: list[int], dtype: str, exponent: int) -> Tensor:
    return Tensor(name, (len(values),), dtype, (exponent,), "UNK", np.array(values, dtype=dtype))


# --------------------------------------------------------------------------- LayerNormalization


def _layer_norm(scale: Tensor | None = None, bias: Tensor | None = None) -> Simulator:
    inputs = ["x", scale.name if scale else "", bias.name if bias else ""]
    node = Node("ln", "LayerNormalization", inputs, ["y"], {"axis": -1, "epsilon": 1e-5})
    x = ValueInfo("x", (1, 2, 4), "int8", 0)
    y = ValueInfo("y", (1, 2, 4), "int8", -4)
    return Simulator(_model(node, x, y, [t for t in (scale, bias) if t]), "half_even")


def test_layer_norm_normalizes_each_frame_over_channels() -> None:
    # Frame 0: mean 1, variance 5 -> (x - 1) / sqrt(5 + 1e-5) * 16 = -21.47, -7.16, 7.16, 21.47.
    # Frame 1: constant -> 0 everywhere (variance 0, epsilon keeps it finite).
    x = np.array([[[-2, 0, 2, 4], [3, 3, 3, 3]]], np.int8)
    np.testing.assert_array_equal(_layer_norm().run({"x": x})["y"], [[[-21, -7, 7, 21], [0, 0, 0, 0]]])


def test_layer_norm_applies_scale_and_bias_from_their_own_exponents() -> None:
    scale = _const("g", [64, 64, 32, 64], "int8", -6)  # 1, 1, 0.5, 1
    bias = _const("b", [16, 0, 0, -8], "int8", -4)  # 1, 0, 0, -0.5
    x = np.array([[[-2, 0, 2, 4], [0, 0, 0, 0]]], np.int8)
    # (-1.342 + 1) * 16 = -5.47; -7.16; 0.447 * 0.5 * 16 = 3.58; (1.342 - 0.5) * 16 = 13.47
    y = _layer_norm(scale, bias).run({"x": x})["y"]
    np.testing.assert_array_equal(y, [[[-5, -7, 4, 13], [16, 0, 0, -8]]])


def test_layer_norm_refuses_a_scale_of_another_type() -> None:
    with pytest.raises(UnsupportedOpError, match="reads both as the input's type"):
        _layer_norm(_const("g", [1, 1, 1, 1], "int16", 0))


# --------------------------------------------------------------------------- Softmax


def _softmax(dtype: str, exponent: int, shape: tuple[int, ...] = (1, 2), axis: int = -1) -> Simulator:
    node = Node("sm", "Softmax", ["x"], ["y"], {"axis": axis})
    return Simulator(
        _model(node, ValueInfo("x", shape, dtype, exponent), ValueInfo("y", shape, "float32", 0), []), "half_up"
    )


def test_softmax_writes_float32_probabilities() -> None:
    y = _softmax("int8", 0).run({"x": np.array([[1, 0]], np.int8)})["y"]
    assert y.dtype == np.float32
    e = np.float32(np.exp(1.0))
    np.testing.assert_array_equal(y, [[e / (e + np.float32(1)), np.float32(1) / (e + np.float32(1))]])


def test_softmax_over_channels_of_each_frame() -> None:
    x = np.array([[[0, 0, 0], [16, 0, 0]]], np.int16)  # 2 frames, 3 classes, exponent -4: logits 0/0/0, 1/0/0
    y = _softmax("int16", -4, (1, 2, 3), axis=2).run({"x": x})["y"]
    np.testing.assert_allclose(y.sum(axis=2), 1.0, rtol=1e-6)
    np.testing.assert_array_equal(y[0, 0], np.full(3, np.float32(1) / np.float32(3), np.float32))
    assert y[0, 1, 0] > y[0, 1, 1] == y[0, 1, 2]


def test_int8_softmax_overflows_like_esp_dl() -> None:
    """ESP-DL's int8 Softmax looks up expf(x) without subtracting the maximum: with exponent 0, exp(127)
    overflows float32 and the chip outputs NaN for that class (the int16 path subtracts the maximum)."""
    y8 = _softmax("int8", 0).run({"x": np.array([[127, 0]], np.int8)})["y"]
    assert np.isnan(y8[0, 0]) and y8[0, 1] == 0.0
    y16 = _softmax("int16", 0).run({"x": np.array([[127, 0]], np.int16)})["y"]
    assert y16[0, 0] == 1.0


# --------------------------------------------------------------------------- Gather


def _gather(index: int, out_exponent: int = -3) -> Simulator:
    node = Node("g", "Gather", ["x", "i"], ["y"], {"axis": 1})
    indices = Tensor("i", (), "int64", (0,), "UNK", np.array(index, np.int64))
    model = _model(node, ValueInfo("x", (1, 4, 2), "int8", -3), ValueInfo("y", (1, 2), "int8", out_exponent), [indices])
    return Simulator(model, "half_even")


def test_gather_copies_the_indexed_frame() -> None:
    x = np.arange(8, dtype=np.int8).reshape(1, 4, 2)
    np.testing.assert_array_equal(_gather(3).run({"x": x})["y"], [[6, 7]])
    # The bytes are copied as they are, whatever exponent the graph gives the output (ESP-DL does no requantization).
    np.testing.assert_array_equal(_gather(3, out_exponent=-5).run({"x": x})["y"], [[6, 7]])


def test_gather_refuses_negative_indices_esp_dl_does_not_wrap() -> None:
    with pytest.raises(UnsupportedOpError, match="uses it as is"):
        _gather(-1)


# --------------------------------------------------------------------------- against esp-ppq


@pytest.mark.parametrize(
    ("name", "target", "bits"),
    [
        ("layernorm_per_frame", "esp32p4", 8),
        ("layernorm_per_frame", "esp32s3", 16),
        ("layernorm_btc", "esp32c3", 8),
        ("softmax_per_frame", "esp32p4", 8),
        ("softmax_per_frame", "esp32c3", 16),
    ],
)
def test_reproduces_esp_ppq_test_outputs(name: str, target: str, bits: int, tmp_path: Path) -> None:
    path = export_with_test_values(
        getattr(faithful_ops, name)(), [1, 8, 16], tmp_path / "model.espdl", target, bits, False
    )
    model = load_espdl(path)
    assert any(n.op_type in ("LayerNormalization", "Softmax") for n in model.nodes)
    got = Simulator(model, rounding_for_target(target)).run(model.test_inputs)
    for out, want in model.test_outputs.items():
        have = got[out]
        assert have.dtype == want.dtype
        if want.dtype == np.float32:
            # esp-ppq's torch softmax subtracts the maximum before exp, ESP-DL's int8 path does not:
            # the probabilities agree to a few float32 ulps.
            np.testing.assert_allclose(have, want, rtol=2e-6, atol=1e-7)
        else:
            tolerance = 1 if bits == 16 else 0  # esp-ppq's 16-bit reference accumulates in float32
            assert np.max(np.abs(have.astype(np.int64) - want.astype(np.int64))) <= tolerance
