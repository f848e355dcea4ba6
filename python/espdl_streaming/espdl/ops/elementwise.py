"""Element-wise operators (the port: src/host/ops_elementwise.cpp): Add/Sub/Mul/Div with numpy
broadcasting, the activations, the look-up tables and RequantizeLinear.

Activation nodes that carry an exported look-up table (``lut`` attribute) use the table: int8
tables are indexed directly; ``LUT`` nodes (esp-ppq's INT16 LUT fusion) use ESP-DL's
step-sub-sampled lookup (nearest pivot with the chip's rounding when the step is a power of two).
INT16 element-wise activation nodes whose table ESP-DL ignores are computed from the math.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np

from ..reader import Tensor
from .kernels import INT_RANGES, Kernel, NodeRun, Value, dequantize_values, fail, round_scaled


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Kernel:
    def kernel(run: NodeRun) -> list[Value]:
        a, b = run.real(0), run.real(1)
        try:
            y = fn(a, b)
        except ValueError as exc:
            raise fail(run.node, f"input shapes {a.shape} and {b.shape} do not broadcast") from exc
        return [run.emit(y)]

    return kernel


# --------------------------------------------------------------------------- activations: the math


def _tanh(x: np.ndarray) -> np.ndarray:
    """The C library's tanh, element by element: numpy's own vectorised tanh differs from it by one
    ulp on some inputs and CPUs, and the C++ host engine calls the C library."""
    x = np.asarray(x, dtype=np.float64)
    return np.fromiter(map(math.tanh, x.reshape(-1).tolist()), dtype=np.float64, count=x.size).reshape(x.shape)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _tanh(0.5 * x))


def _hard_sigmoid(run: NodeRun, x: np.ndarray) -> np.ndarray:
    alpha = float(run.attr("alpha", 0.2))
    beta = float(run.attr("beta", 0.5))
    return np.clip(alpha * x + beta, 0.0, 1.0)


def _prelu(run: NodeRun, x: np.ndarray) -> np.ndarray:
    slope = run.real(1)
    if slope.size == x.shape[-1]:
        slope = slope.reshape(-1)  # esp-ppq keeps the NCW-broadcast shape (C, 1): one slope per channel
    return np.where(x >= 0, x, x * slope)


def _clip(run: NodeRun, x: np.ndarray) -> np.ndarray:
    low = run.real(1) if run.has_input(1) else -np.inf
    high = run.real(2) if run.has_input(2) else np.inf
    if "min" in run.node.attributes:
        low = float(run.attr("min"))
    if "max" in run.node.attributes:
        high = float(run.attr("max"))
    return cast("np.ndarray", np.minimum(np.maximum(x, low), high))


#: The math of every activation (also what a LUT node without a table computes, by original_op_type).
UNARY_MATH: dict[str, Callable[[NodeRun, np.ndarray], np.ndarray]] = {
    "Relu": lambda run, x: np.maximum(x, 0.0),
    "LeakyRelu": lambda run, x: np.where(x >= 0, x, x * float(run.attr("alpha", 0.01))),
    "PRelu": _prelu,
    "Sigmoid": lambda run, x: _sigmoid(x),
    "Tanh": lambda run, x: _tanh(x),
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": lambda run, x: x * np.clip(x / 6.0 + 0.5, 0.0, 1.0),
    "Swish": lambda run, x: x * _sigmoid(x),
    "SiLU": lambda run, x: x * _sigmoid(x),
    "Clip": _clip,
    "Identity": lambda run, x: x,
}


# --------------------------------------------------------------------------- activations: the tables


def _lut_table(run: NodeRun) -> Tensor | None:
    name = run.attr("lut")
    return run.sim.constant(str(name)) if name else None


def _lookup(run: NodeRun, table: Tensor) -> list[Value]:
    """ESP-DL table lookup: direct for a full table, step-sub-sampled for INT16 LUT nodes."""
    value = run.input(0)
    if value.exponent is None:
        raise fail(run.node, "a look-up table needs a quantized input")
    spec = run.out()
    entries = table.data.reshape(-1).astype(np.int64)
    low, _ = INT_RANGES[str(value.data.dtype)]
    index = value.data.astype(np.int64) - low
    span = 1 << (8 * value.data.dtype.itemsize)
    if entries.size == span:
        out = entries[index]
    elif run.node.op_type != "LUT" or span != 65536:
        raise fail(run.node, f"a {entries.size}-entry table does not fit a {value.data.dtype} input")
    else:
        # INT16 LUT node: 65536 / step + 1 pivots; ESP-DL takes the nearest pivot,
        # rounding idx / step with the chip's rounding (step is a power of two).
        step = span // (entries.size - 1)
        nearest = round_scaled(index / step, run.rounding).astype(np.int64)
        out = entries[np.clip(nearest, 0, entries.size - 1)]
    table_exp = table.exponents[0] if table.exponents else spec.exponent
    if table_exp is None:
        raise fail(run.node, "has a LUT without an exponent")
    if spec.exponent is not None and table_exp == spec.exponent and spec.dtype in INT_RANGES:
        lo, hi = INT_RANGES[spec.dtype]
        return [Value(np.clip(out, lo, hi).astype(spec.dtype), spec.exponent)]
    return [run.emit(dequantize_values(out, table_exp))]


def _unary(op_type: str) -> Kernel:
    """The table when there is one (always for LUT nodes, for int8 inputs otherwise), else the math of
    the op type (of original_op_type for a LUT node)."""

    def kernel(run: NodeRun) -> list[Value]:
        table = _lut_table(run)
        value = run.input(0)
        if table is not None and (op_type == "LUT" or value.data.dtype == np.int8):
            return _lookup(run, table)
        compute = UNARY_MATH[str(run.attr("original_op_type")) if op_type == "LUT" else op_type]
        return [run.emit(compute(run, value.real()))]

    return kernel


# --------------------------------------------------------------------------- RequantizeLinear


def requantize(run: NodeRun) -> list[Value]:
    """RequantizeLinear: the input's real value at the output's exponent and dtype."""
    return [run.emit(run.real(0))]


#: The ONNX op types this module implements (ops_elementwise.cpp's prepare functions).
OPS: dict[str, Kernel] = {
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(np.divide),
    "RequantizeLinear": requantize,
    "LUT": _unary("LUT"),
    **{op: _unary(op) for op in UNARY_MATH},
}
