"""QuantizeLinear / DequantizeLinear as ESP-DL runs them (dl::module::RequantizeLinear = TensorBase::assign).

float32 -> int: dl::quantize, float32(x * 2**-exponent) then tool::round: ESP32-P4/S31 round half to even
(fcvt.w.s rne); the other chips compute (int)floorf(v + 0.5) with v + 0.5 a double narrowed to float (so
0.49999997f rounds up to 1); saturated; NaN -> the largest value.  int -> float32: float32(q) * 2**exponent.
Hand-computed cases per chip, the refusals, and the C++ engine against the simulator on a model where
esp-ppq inserts a QuantizeLinear after a mid-model Softmax."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from engine_parity import assert_engine_matches_simulator, edge_case_chunks

from espdl_streaming.errors import UnsupportedOpError
from espdl_streaming.espdl import Simulator, load_espdl, rounding_for_target
from espdl_streaming.espdl.reader import EspdlModel, Node, Tensor, ValueInfo
from espdl_streaming.host_engine import model_info

_ALMOST_HALF = float(np.nextafter(np.float32(0.5), np.float32(0.0)))  # 0.49999997f


def _model(
    op: str, src: tuple[str, int | None], dst: tuple[str, int | None], n: int, zero: np.ndarray | None = None
) -> EspdlModel:
    inputs, initializers = ["x"], {}
    if zero is not None:
        initializers["s"] = Tensor("s", (), "float32", (), "UNK", np.asarray(1.0, dtype=np.float32))
        initializers["z"] = Tensor("z", zero.shape, str(zero.dtype), (), "UNK", zero)
        inputs += ["s", "z"]
    return EspdlModel(
        producer="test",
        inputs=[ValueInfo("x", (1, n), src[0], src[1])],
        outputs=[ValueInfo("y", (1, n), dst[0], dst[1])],
        nodes=[Node("PPQ_Operation_0", op, inputs, ["y"], {})],
        initializers=initializers,
        value_info={},
        test_inputs={},
        test_outputs={},
        metadata={},
    )


def _quantize(values: list[float], dtype: str, exponent: int, target: str) -> list[int]:
    x = np.asarray([values], dtype=np.float32)
    sim = Simulator(_model("QuantizeLinear", ("float32", None), (dtype, exponent), x.size), rounding_for_target(target))
    out = sim.run({"x": x})["y"]
    assert out.dtype == np.dtype(dtype)
    return [int(v) for v in out.reshape(-1)]


# scaled value (x * 2**7) -> (half to even: esp32p4, half up: esp32s3 and esp32c3)
_INT8_CASES = [
    (0.5, 0, 1),
    (1.5, 2, 2),
    (2.5, 2, 3),
    (-0.5, 0, 0),
    (-1.5, -2, -1),
    (-2.5, -2, -2),
    (0.4, 0, 0),
    (-0.6, -1, -1),
    (_ALMOST_HALF, 0, 1),  # half up: 0.49999997 + 0.5 narrowed to float is 1.0
    (126.5, 126, 127),
    (127.5, 127, 127),  # saturation
    (-128.5, -128, -128),
    (1000.0, 127, 127),
    (-1000.0, -128, -128),
]


@pytest.mark.parametrize("target", ["esp32p4", "esp32s3", "esp32c3"])
def test_float_to_int8_rounds_like_the_chip(target: str) -> None:
    scaled = [c[0] for c in _INT8_CASES]
    want = [c[1] if target == "esp32p4" else c[2] for c in _INT8_CASES]
    assert _quantize([v / 128 for v in scaled], "int8", -7, target) == want


@pytest.mark.parametrize("target", ["esp32p4", "esp32s3", "esp32c3"])
def test_float_to_int16_rounds_and_saturates(target: str) -> None:
    even = target == "esp32p4"
    values = [0.999, 1.0, -1.0, -1.5, 2.5 / 32768, 32766.5 / 32768, -32768.5 / 32768]
    want = [32735, 32767, -32768, -32768, 2 if even else 3, 32766 if even else 32767, -32768]
    assert _quantize(values, "int16", -15, target) == want


@pytest.mark.parametrize("target", ["esp32p4", "esp32s3", "esp32c3"])
def test_non_finite_values_saturate(target: str) -> None:
    """NaN becomes the largest value (fcvt.w.s and the soft-float conversion give INT_MAX, then the clip);
    infinities and products that overflow float32 (3e38 * 128) saturate."""
    assert _quantize([float("nan"), float("inf"), float("-inf"), 3e38, -3e38], "int8", -7, target) == [
        127,
        127,
        -128,
        127,
        -128,
    ]


def test_positive_exponent_divides() -> None:
    """DL_RESCALE(2) = 0.25: 10.0 * 0.25 = 2.5 -> 2 (P4) or 3 (S3); 6.0 * 0.25 = 1.5 -> 2 on both."""
    assert _quantize([10.0, 6.0, -10.0], "int8", 2, "esp32p4") == [2, 2, -2]
    assert _quantize([10.0, 6.0, -10.0], "int8", 2, "esp32s3") == [3, 2, -2]


@pytest.mark.parametrize(("dtype", "exponent"), [("int8", -7), ("int16", -15), ("int8", 3)])
def test_int_to_float_dequantizes(dtype: str, exponent: int) -> None:
    q = np.asarray([[np.iinfo(dtype).min, -1, 0, 5, np.iinfo(dtype).max]], dtype=dtype)
    sim = Simulator(_model("DequantizeLinear", (dtype, exponent), ("float32", None), q.size), "half_up")
    out = sim.run({"x": q})["y"]
    assert out.dtype == np.float32
    assert out.tolist() == [[float(v) * 2.0**exponent for v in q.reshape(-1)]]


def test_a_non_zero_zero_point_is_refused() -> None:
    zero = np.asarray(3, dtype=np.int8)
    with pytest.raises(UnsupportedOpError, match="PPQ_Operation_0.*non-zero zero point"):
        Simulator(_model("QuantizeLinear", ("float32", None), ("int8", -7), 4, zero), "half_even")
    zero = np.asarray(0, dtype=np.int8)
    ok = Simulator(_model("QuantizeLinear", ("float32", None), ("int8", -7), 2, zero), "half_up")
    assert ok.run({"x": np.asarray([[0.5, -0.25]], dtype=np.float32)})["y"].tolist() == [[64, -32]]


def test_unsupported_dtype_pairs_are_refused() -> None:
    with pytest.raises(UnsupportedOpError, match="float32 -> int32"):
        Simulator(_model("QuantizeLinear", ("float32", None), ("int32", -7), 4), "half_even")


@pytest.mark.parametrize(("target", "bits"), [("esp32p4", 8), ("esp32s3", 16), ("esp32c3", 8)])
def test_engine_matches_the_simulator_after_a_mid_model_softmax(
    host_engine: Path, tmp_path: Path, target: str, bits: int
) -> None:
    """esp-ppq inserts a QuantizeLinear after a Softmax that more convs follow; the C++ engine reproduces the
    simulator bit for bit, also on constant and saturated inputs."""
    from sim_models import export_with_test_values
    from zoo import faithful_float_mid

    model = faithful_float_mid.softmax_mid_stack()
    path = export_with_test_values(model, [1, 8, 16], tmp_path / "m.espdl", target, bits, False)
    espdl = load_espdl(path)
    assert "QuantizeLinear" in {n.op_type for n in espdl.nodes}
    info = model_info(host_engine, path)
    chunks = edge_case_chunks(espdl, info, 9)
    assert_engine_matches_simulator(host_engine, path, rounding_for_target(target), 0, inputs=chunks)
