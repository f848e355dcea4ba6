"""Gather, Softmax, LayerNormalization and ReduceMean/Max/Min/Sum (the port: src/host/ops_norm.cpp).

Gather, Softmax and LayerNormalization follow ESP-DL's modules (dl_module_gather.hpp,
dl_module_softmax.hpp, dl_module_layer_normalization.hpp), which compute in float32 (not
float64): every float32 operation of ESP-DL is one float32 operation here, in ESP-DL's order, with
exp taken as the C library's double exp rounded to float32.

ESP-DL's reduce modules (dl_module_reduce_base.hpp and dl_module_reduce_{mean,max,min,sum}.hpp):
the reduced axes come from the constant `axes` input (none: every axis); runs of neighbouring axes
with the same flag are merged, and only the merged patterns ESP-DL's forward_template handles (at
most 4 alternating runs, at least one reduced) write an output.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from ...facts import GATHER_FROM_END_PREFIX
from ..reader import Node
from .kernels import F32, INT_RANGES, Kernel, NodeRun, Value, fail, positive_axis, round_f32, round_scaled, truncate

# --------------------------------------------------------------------------- Gather, Softmax, LayerNorm


def _exp_f32(x: np.ndarray) -> np.ndarray:
    """float32(exp(double(x))) element by element with the C library's exp (as math.exp), +inf on
    overflow: the C++ host engine computes the same with std::exp."""
    flat = np.asarray(x, dtype=np.float64).reshape(-1).tolist()

    def one(v: float) -> float:
        try:
            return math.exp(v)
        except OverflowError:
            return math.inf

    with np.errstate(over="ignore"):
        return np.fromiter(map(one, flat), dtype=np.float64, count=len(flat)).astype(F32).reshape(np.shape(x))


def _scale_f32(exponent: int) -> np.float32:
    """ESP-DL's DL_SCALE(exponent) as a float: 2**exponent."""
    return cast("np.float32", F32(math.ldexp(1.0, int(exponent))))


def _gather(run: NodeRun) -> list[Value]:
    """ESP-DL Gather: copies the elements of the constant indices along ``axis``, bytes as they are
    (no requantization), and uses every index as is: a negative index is not wrapped around."""
    value = run.input(0)
    data = value.data
    axis = positive_axis(int(run.attr("axis", 0)), data.ndim)
    if not 0 <= axis < data.ndim:
        raise fail(run.node, f"axis {run.attr('axis', 0)} does not fit a rank-{data.ndim} tensor")
    indices = np.asarray(run.sim.constant(run.node.inputs[1]).data).astype(np.int64)
    size = data.shape[axis]
    sim = run.sim
    declared, actual = sim.declared_frames, sim.run_frames
    from_end = sim.model.metadata.get(GATHER_FROM_END_PREFIX + run.node.name)
    if sim.any_frames and from_end is not None and declared != actual:
        # The user indexed from the end (x[..., -1]); the file holds it counted for the declared length.
        written = np.asarray([int(v) for v in from_end.split(",")], dtype=np.int64)
        if written.size != indices.size:
            raise fail(run.node, f"its recorded indices {from_end} do not match its {indices.size} constant indices")
        indices = np.where(written < 0, written + size, written).reshape(indices.shape)
    elif sim.any_frames and declared is not None and actual is not None and declared != actual and size == actual:
        # Constant indices on an axis of the run's length were exported for the declared length (x[..., -1]
        # as declared - 1): the model only runs on its declared frames (verify then compares windows of them).
        raise fail(
            run.node,
            f"gathers constant indices from an axis of {actual} frames, exported for the declared {declared}",
        )
    bad = indices[(indices < 0) | (indices >= size)]
    if bad.size:
        raise fail(
            run.node,
            f"index {int(bad[0])} is outside the {size} elements of axis {axis}: ESP-DL's Gather does not wrap "
            "indices around, it would read another row or memory outside the tensor",
        )
    spec = run.out()
    exponent = value.exponent
    if spec.exponent is not None and spec.dtype in INT_RANGES:
        if spec.dtype != str(data.dtype):
            raise fail(run.node, f"ESP-DL copies the {data.dtype} input as is, but the output is {spec.dtype}")
        exponent = spec.exponent  # the bytes are copied; the graph's exponent says what they mean
    out = np.take(data, indices, axis=axis)
    return [Value(np.ascontiguousarray(out), exponent)]


def _softmax_rows(e: np.ndarray) -> np.ndarray:
    """e / sum(e) along the last axis, the sum accumulated in float32 from the first element."""
    total = np.zeros(e.shape[:-1], dtype=F32)
    for i in range(e.shape[-1]):
        total = (total + e[..., i]).astype(F32)
    return (e / total[..., None]).astype(F32)


def _softmax(run: NodeRun) -> list[Value]:
    """ESP-DL Softmax, float32 output.  int8: exp from a 256-entry float table of expf(2**e * q)
    (the maximum is not subtracted); int16: x = 2**e * q, then expf(x - max) along the axis; both
    divide by the float32 sum accumulated in order."""
    value = run.input(0)
    data = value.data
    if value.exponent is None or not isinstance(value.exponent, int) or data.dtype not in (np.int8, np.int16):
        raise fail(run.node, "ESP-DL's Softmax needs an int8 or int16 input with one exponent")
    axis = positive_axis(int(run.attr("axis", -1)), data.ndim)
    if not 0 <= axis < data.ndim:
        raise fail(run.node, f"axis {run.attr('axis', -1)} does not fit a rank-{data.ndim} tensor")
    scale = _scale_f32(value.exponent)
    moved = np.moveaxis(data, axis, -1)
    if data.dtype == np.int8:
        table = _exp_f32((scale * np.arange(-128, 128, dtype=F32)).astype(F32))
        e = table[moved.astype(np.int64) + 128]
    else:
        x = (scale * moved.astype(F32)).astype(F32)
        top = x.max(axis=-1, keepdims=True) if x.shape[-1] else x
        e = _exp_f32((x - top).astype(F32))
    out = np.moveaxis(_softmax_rows(e), -1, axis)
    return [Value(np.ascontiguousarray(out), None)]


def _sqrt_newton(x: float | np.floating[Any]) -> np.float32:
    """ESP-DL's dl::math::sqrt_newton in float32: Newton steps from x until two successive values
    differ by at most 1e-5."""
    x32 = F32(x)
    if x32 == 0:
        return cast("np.float32", F32(0.0))
    result = x32
    for _ in range(100000):
        last = result
        result = F32(F32(last + F32(x32 / last)) * F32(0.5))
        if not abs(F32(result - last)) > F32(1e-5):
            return cast("np.float32", result)
    raise ArithmeticError(f"ESP-DL's sqrt_newton does not converge for {float(x32)!r}")


def _layer_norm(run: NodeRun) -> list[Value]:
    """ESP-DL LayerNormalization on int8/int16: the integer sum gives the mean (double division
    rounded to float), then float32 variance, sqrt_newton, scale and bias (int tensors of the
    input's type, one exponent each), requantized with ESP-DL's float rounding."""
    value = run.input(0)
    data = value.data
    spec = run.out()
    if value.exponent is None or not isinstance(value.exponent, int) or data.dtype not in (np.int8, np.int16):
        raise fail(run.node, "ESP-DL's LayerNormalization needs an int8 or int16 input with one exponent")
    if spec.exponent is None or spec.dtype != str(data.dtype):
        raise fail(run.node, f"the output must be {data.dtype} with an exponent, like the input")
    axis = positive_axis(int(run.attr("axis", -1)), data.ndim)
    if not 0 <= axis < data.ndim:
        raise fail(run.node, f"axis {run.attr('axis', -1)} does not fit a rank-{data.ndim} tensor")
    inner = int(np.prod(data.shape[axis:], dtype=np.int64))
    rows = data.reshape(-1, inner)
    params: list[np.ndarray | None] = []
    for index in (1, 2):
        if not run.has_input(index):
            params.append(None)
            continue
        tensor = run.sim.constant(run.node.inputs[index])
        if tensor.data.size != inner:
            raise fail(run.node, f"input {index} has {tensor.data.size} values for {inner} normalized elements")
        params.append((tensor.data.reshape(-1).astype(F32) * _scale_f32(tensor.exponents[0])).astype(F32))
    gamma, beta = params
    in_scale = _scale_f32(value.exponent)
    out_scale = F32(math.ldexp(1.0, -int(spec.exponent)))
    epsilon = F32(run.attr("epsilon", 1e-5))
    out = np.empty(rows.shape, dtype=np.float64)
    for r, row in enumerate(rows):
        total = int(row.astype(np.int64).sum())
        mean = F32(total * 1.0 / inner)
        x = row.astype(F32)
        diff = (x - mean).astype(F32)
        squares = (diff * diff).astype(F32)
        variance = F32(0.0)
        for sq in squares:
            variance = F32(variance + sq)
        mean = F32(mean * in_scale)
        variance = F32(variance * F32(in_scale * in_scale))
        variance = F32(variance / F32(inner))
        try:
            root = _sqrt_newton(F32(variance + epsilon))
        except ArithmeticError as exc:
            raise fail(run.node, str(exc)) from exc
        with np.errstate(divide="ignore"):
            inv_std = F32(F32(1.0) / root)
        normalized = (((x * in_scale).astype(F32) - mean).astype(F32) * inv_std).astype(F32)
        if gamma is not None:
            normalized = (normalized * gamma).astype(F32)
        result = (normalized + beta).astype(F32) if beta is not None else normalized
        with np.errstate(over="ignore", invalid="ignore"):
            out[r] = round_f32((result * out_scale).astype(F32), run.rounding)
    return [Value(truncate(out, spec.dtype).reshape(data.shape), spec.exponent)]


# --------------------------------------------------------------------------- ReduceMean/Max/Min/Sum

REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")
_REDUCE_PATTERNS = frozenset({(1,), (0, 1), (1, 0), (1, 0, 1), (0, 1, 0), (0, 1, 0, 1), (1, 0, 1, 0)})


def _reduce_flags(node: Node, axes: list[int], rank: int, noop_with_empty_axes: int) -> list[bool]:
    """ESP-DL's get_attributes: one flag per input axis; negative axes count from the end."""
    if not axes:
        return [not noop_with_empty_axes] * rank
    flags = [False] * rank
    for a in axes:
        if not -rank <= a < rank:
            raise fail(node, f"axis {a} does not fit a rank-{rank} tensor")
        flags[a % rank] = True
    return flags


def _reduce_pattern(flags: list[bool]) -> tuple[int, ...]:
    merged: list[int] = []
    for f in flags:
        if not merged or merged[-1] != int(f):
            merged.append(int(f))
    return tuple(merged)


def _reduce(run: NodeRun) -> list[Value]:
    """ESP-DL ReduceMean/Max/Min/Sum on int8/int16.  Max and Min copy the extreme integer as is (no
    requantization; the output's exponent says what it means).  Sum: the integer sum (int32 for int8,
    int64 for int16) shifted by out_exp - in_exp with the chip's rounding (tool::shift_and_round),
    saturated.  Mean: float32(sum) * 2**in_exp / float32(count) * 2**-out_exp, three float32 steps in
    that order, then tool::round (the chip's float rounding) and saturation."""
    node = run.node
    value = run.input(0)
    data = value.data
    spec = run.out()
    if value.exponent is None or not isinstance(value.exponent, int) or data.dtype not in (np.int8, np.int16):
        raise fail(node, f"ESP-DL's {node.op_type} needs an int8 or int16 input with one exponent")
    if spec.exponent is None or spec.dtype != str(data.dtype):
        raise fail(node, f"the output must be {data.dtype} with an exponent, like the input")
    axes = run.ints(1) if run.has_input(1) else []
    flags = _reduce_flags(node, axes, data.ndim, int(run.attr("noop_with_empty_axes", 0)))
    if _reduce_pattern(flags) not in _REDUCE_PATTERNS:
        raise fail(
            node,
            f"reducing axes {[i for i, f in enumerate(flags) if f]} of a rank-{data.ndim} tensor: ESP-DL's reduce "
            "modules only handle up to two separate runs of reduced axes (and at least one), and leave the output "
            "unwritten otherwise; reduce over neighbouring axes",
        )
    reduced = tuple(i for i, f in enumerate(flags) if f)
    keepdims = bool(int(run.attr("keepdims", 1)))
    if node.op_type in ("ReduceMax", "ReduceMin"):
        extreme = np.max if node.op_type == "ReduceMax" else np.min
        out = extreme(data, axis=reduced, keepdims=keepdims)
    else:
        total = data.astype(np.int64).sum(axis=reduced, keepdims=keepdims)
        if node.op_type == "ReduceSum":
            with np.errstate(over="ignore"):
                scaled = round_scaled(np.ldexp(total.astype(np.float64), value.exponent - spec.exponent), run.rounding)
        else:
            count = F32(int(np.prod([data.shape[i] for i in reduced], dtype=np.int64)))
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                mean = (total.astype(F32) * _scale_f32(value.exponent)).astype(F32)
                mean = (mean / count).astype(F32)
                mean = (mean * _scale_f32(-spec.exponent)).astype(F32)
                scaled = round_f32(mean, run.rounding)
        out = truncate(scaled, spec.dtype)
    if out.ndim == 0:
        out = out.reshape(1)  # ESP-DL's output shape when every axis is reduced without keepdims
    return [Value(np.ascontiguousarray(out), spec.exponent)]


#: The ONNX op types this module implements (ops_norm.cpp's prepare functions).
OPS: dict[str, Kernel] = {
    "Gather": _gather,
    "Softmax": _softmax,
    "LayerNormalization": _layer_norm,
    **{op: _reduce for op in REDUCE_OPS},
}
