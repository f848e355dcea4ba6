"""QuantizeLinear and DequantizeLinear (the port: src/host/ops_quant.cpp)."""

from __future__ import annotations

import numpy as np

from .elementwise import requantize
from .kernels import F32, FLOAT_DTYPES, Kernel, NodeRun, Value, fail, round_f32, truncate


def _quantize_linear(run: NodeRun) -> list[Value]:
    """ESP-DL's QuantizeLinear and DequantizeLinear: both are dl::module::RequantizeLinear, whose forward
    is TensorBase::assign, so the tensors' dtypes decide (the scale and zero point inputs are not read).
    float32 -> int8/int16 (dl::quantize): float32(x * DL_RESCALE(exponent)), then tool::round (the chip's
    float rounding, round_f32), saturated, NaN -> the largest value.  int8/int16 -> float32
    (dl::dequantize): float32(q) * DL_SCALE(exponent).  int -> int: as RequantizeLinear."""
    value = run.input(0)
    spec = run.out()
    if value.exponent is None:
        x = np.asarray(value.data, dtype=F32)
        if spec.exponent is None or spec.dtype not in ("int8", "int16"):
            return [Value(np.ascontiguousarray(x), None)]  # same dtype: assign copies
        with np.errstate(over="ignore", invalid="ignore"):
            inv_scale = F32(np.ldexp(np.float64(1.0), -int(spec.exponent)))
            scaled = (x * inv_scale).astype(F32)
        return [Value(truncate(round_f32(scaled, run.rounding), spec.dtype), spec.exponent)]
    if spec.exponent is None or spec.dtype in FLOAT_DTYPES:
        if not isinstance(value.exponent, int) or value.data.dtype not in (np.int8, np.int16):
            raise fail(run.node, "ESP-DL dequantizes only an int8 or int16 input with one exponent")
        with np.errstate(over="ignore", invalid="ignore"):
            scale = F32(np.ldexp(np.float64(1.0), int(value.exponent)))
            out = (value.data.astype(F32) * scale).astype(F32)
        return [Value(np.ascontiguousarray(out), None)]
    return requantize(run)


#: The ONNX op types this module implements (ops_quant.cpp's prepare functions).
OPS: dict[str, Kernel] = {
    "QuantizeLinear": _quantize_linear,
    "DequantizeLinear": _quantize_linear,
}
