"""Bit-exact host interpreter of quantized ESP-DL graphs (numpy only).

Semantics follow ESP-DL / esp-ppq: every activation tensor is a power-of-two quantized
integer tensor (real = q * 2**exponent).  Each node dequantizes its inputs, computes in
float64 (exact for the integer-valued sums the kernels accumulate), requantizes at the
output's exponent with the chip's rounding and clamps to the output dtype.

* Activation nodes that carry an exported look-up table (``lut`` attribute) use the
  table: int8 tables are indexed directly; ``LUT`` nodes (esp-ppq's INT16 LUT fusion)
  use ESP-DL's step-sub-sampled lookup (nearest pivot with the chip's rounding when the
  step is a power of two, linear interpolation otherwise).  INT16 element-wise
  activation nodes whose table ESP-DL ignores are computed from the math.
* ``StreamingCache`` nodes keep ``window_size - 1`` frames of state on ``frame_axis``
  across :meth:`Simulator.run` calls, zero-filled initially and after
  :meth:`Simulator.reset`.

Tensors are in the exported layout (NWC / NHWC: time on axis 1).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..errors import EspdlFormatError, UnsupportedOpError
from ..facts import GATHER_FROM_END_PREFIX, Rounding, rounding_for_target
from . import recurrent
from .reader import EspdlModel, Node, Tensor
from .state import is_state_input

__all__ = ["Rounding", "Simulator", "dequantize", "quantize", "rounding_for_target"]


_INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "int16": (-32768, 32767),
    "int32": (-(2**31), 2**31 - 1),
    "uint8": (0, 255),
    "uint16": (0, 65535),
}
_FLOAT_DTYPES = frozenset({"float32", "float64", "float16"})


def _round(scaled: np.ndarray, rounding: Rounding) -> np.ndarray:
    if rounding == "half_even":
        return cast("np.ndarray", np.rint(scaled))
    # floor(x + 0.5) without the float64 error of the addition itself.
    low = np.floor(scaled)
    return cast("np.ndarray", low + (scaled - low >= 0.5))


def quantize(x: np.ndarray, exponent: int, dtype: str, rounding: Rounding) -> np.ndarray:
    """q = clamp(round(x * 2**-exponent)) in ``dtype``; NaN -> 0, +-inf saturate."""
    if dtype not in _INT_RANGES:
        raise ValueError(f"cannot quantize to {dtype}")
    low, high = _INT_RANGES[dtype]
    scaled = np.ldexp(np.asarray(x, dtype=np.float64), -int(exponent))
    with np.errstate(invalid="ignore"):
        q = _round(np.nan_to_num(scaled, nan=0.0, posinf=np.inf, neginf=-np.inf), rounding)
    return cast("np.ndarray", np.clip(q, low, high).astype(dtype))


def dequantize(q: np.ndarray, exponent: int | np.ndarray) -> np.ndarray:
    """x = q * 2**exponent in float64 (``exponent`` may broadcast per channel)."""
    return np.ldexp(np.asarray(q, dtype=np.float64), np.asarray(exponent, dtype=np.int64))


# --------------------------------------------------------------------------- values


@dataclass
class _Value:
    """A tensor flowing through the graph: integer data with its exponent, or a float."""

    data: np.ndarray
    exponent: int | np.ndarray | None  # None: plain float or int64 index tensor

    def real(self) -> np.ndarray:
        if self.exponent is None:
            return np.asarray(self.data, dtype=np.float64)
        return dequantize(self.data, self.exponent)


@dataclass(frozen=True)
class _OutSpec:
    name: str
    dtype: str
    exponent: int | None


class _NodeRun:
    """What a kernel sees of one node execution: inputs, output specs, rounding."""

    def __init__(self, sim: Simulator, node: Node, inputs: list[_Value | None]) -> None:
        self.sim = sim
        self.node = node
        self.inputs = inputs
        self.rounding = sim.rounding

    def attr(self, name: str, default: Any = None) -> Any:
        return self.node.attributes.get(name, default)

    def real(self, index: int) -> np.ndarray:
        return self.input(index).real()

    def input(self, index: int) -> _Value:
        value = self.inputs[index] if index < len(self.inputs) else None
        if value is None:
            raise _fail(self.node, f"input {index} is missing")
        return value

    def has_input(self, index: int) -> bool:
        return index < len(self.inputs) and self.inputs[index] is not None

    def ints(self, index: int) -> list[int]:
        """A constant integer input (shape, axes, starts...) as a Python list."""
        return [int(v) for v in np.asarray(self.input(index).data).reshape(-1)]

    def out(self, index: int = 0) -> _OutSpec:
        return self.sim._out_spec(self.node.outputs[index])

    def emit(self, real: np.ndarray, index: int = 0) -> _Value:
        """Requantize a float64 result at output ``index``'s exponent and dtype."""
        spec = self.out(index)
        if spec.exponent is None or spec.dtype in _FLOAT_DTYPES:
            return _Value(np.asarray(real, dtype=spec.dtype if spec.dtype in _FLOAT_DTYPES else np.float64), None)
        return _Value(quantize(real, spec.exponent, spec.dtype, self.rounding), spec.exponent)

    def passthrough(self, value: _Value, data: np.ndarray) -> _Value:
        """Data movement (reshape, slice...): keep integers when the exponent is unchanged."""
        spec = self.out()
        if _same_exponent(value, spec) and spec.dtype == str(data.dtype):
            return _Value(np.ascontiguousarray(data), value.exponent)
        return self.emit(_Value(data, value.exponent).real())


def _same_exponent(value: _Value, spec: _OutSpec) -> bool:
    return isinstance(value.exponent, int) and value.exponent == spec.exponent


def _fail(node: Node, message: str) -> EspdlFormatError:
    return EspdlFormatError(f"node {node.name!r} ({node.op_type}): {message}")


# --------------------------------------------------------------------------- kernels: dense


def _conv_windows(x: np.ndarray, kernel: list[int], strides: list[int], dilations: list[int]) -> np.ndarray:
    """(N, *out_spatial, *kernel, C) windows of a padded channels-last tensor."""
    rank = len(kernel)
    spans = [d * (k - 1) + 1 for k, d in zip(kernel, dilations)]
    windows = np.lib.stride_tricks.sliding_window_view(x, spans, axis=tuple(range(1, rank + 1)))
    # windows: (N, *out_full, C, *spans) -> select strides and dilations
    index = (slice(None),) + tuple(slice(None, None, s) for s in strides) + (slice(None),)
    index += tuple(slice(None, None, d) for d in dilations)
    windows = windows[index]
    return np.moveaxis(windows, rank + 1, -1)


def _pad_spatial(x: np.ndarray, pads: list[int], value: float = 0.0) -> np.ndarray:
    rank = len(pads) // 2
    widths = [(0, 0)] + [(pads[i], pads[i + rank]) for i in range(rank)] + [(0, 0)]
    return np.pad(x, widths, constant_values=value)


def _spatial_attrs(run: _NodeRun, rank: int) -> tuple[list[int], list[int], list[int], list[int]]:
    kernel = list(run.attr("kernel_shape"))
    strides = list(run.attr("strides", [1] * rank))
    dilations = list(run.attr("dilations", [1] * rank))
    pads = list(run.attr("pads", [0] * (2 * rank)))
    return kernel, strides, dilations, pads


def _activation(run: _NodeRun, y: np.ndarray) -> np.ndarray:
    act = run.attr("activation", "Linear")
    return np.maximum(y, 0.0) if act == "Relu" else y


def _filter_real(tensor: Tensor, channel_axis: int) -> np.ndarray:
    exps = np.asarray(tensor.exponents, dtype=np.int64)
    if exps.size > 1:
        shape = [1] * tensor.data.ndim
        shape[channel_axis] = exps.size
        exps = exps.reshape(shape)
    return dequantize(tensor.data, exps)


def _bias_real(run: _NodeRun, index: int, weight: Tensor) -> np.ndarray | float:
    """The bias as ESP-DL adds it.  Its Conv/Gemm kernels (S8, S16 and W8A16 alike) load the bias integers
    into the accumulator of sum(x_q * w_q) as they are, then shift the sum by mac_shift = output exponent -
    input exponent - weight exponent: the bias counts at the accumulator's exponent (input + the channel's
    weight exponent) whatever exponent the file gives it.  esp-ppq writes exactly that exponent, so this
    differs from dequantizing the bias only for a file that ESP-DL would misread."""
    if not run.has_input(index):
        return 0.0
    tensor = run.sim._constant(run.node.inputs[index])
    x_exp = run.input(0).exponent
    if not isinstance(x_exp, int | np.integer):  # a float input has no accumulator (ESP-DL does not run it)
        return dequantize(tensor.data, np.asarray(tensor.exponents, dtype=np.int64).reshape(-1))
    w_exps = np.asarray(weight.exponents, dtype=np.int64).reshape(-1)
    if w_exps.size > 1 and (tensor.data.ndim == 0 or tensor.data.shape[-1] != w_exps.size):
        raise _fail(run.node, f"the bias has {tensor.data.shape} values for {w_exps.size} weight exponents")
    return dequantize(tensor.data, int(x_exp) + w_exps)


def _conv(run: _NodeRun) -> list[_Value]:
    """ESP-DL's conv2d (Conv1d runs as a 1-row Conv2d): the exact integer sum of x_q * w_q plus the bias,
    shifted by mac_shift with the chip's rounding, the fused ReLU, then saturated.  float64 holds these
    dyadic sums exactly, so one requantization of the real result gives the same integers.  W8A16 (int16
    activations, int8 weights: ESP-DL sign-extends the weights into its S16 kernels) is the same arithmetic."""
    x = run.real(0)
    weight = run.sim._constant(run.node.inputs[1])
    rank = x.ndim - 2
    kernel, strides, dilations, pads = _spatial_attrs(run, rank)
    group = int(run.attr("group", 1))
    windows = _conv_windows(_pad_spatial(x, pads), kernel, strides, dilations)
    if group == 1:
        w = _filter_real(weight, -1)  # (*K, C, N)
        y = np.tensordot(windows, w, axes=(list(range(rank + 1, 2 * rank + 2)), list(range(rank + 1))))
    else:
        w = _filter_real(weight, -2)[..., 0]  # (*K, N), one input channel per output
        y = np.einsum(
            windows,
            list(range(2 * rank + 2)),
            w,
            list(range(rank + 1, 2 * rank + 2)),
            list(range(rank + 1)) + [2 * rank + 1],
        )
    return [run.emit(_activation(run, y + _bias_real(run, 2, weight)))]


def _gemm(run: _NodeRun) -> list[_Value]:
    x = run.real(0)
    weight = run.sim._constant(run.node.inputs[1])
    w = _filter_real(weight, -1)
    w = w.reshape(w.shape[-2], w.shape[-1])  # (C, N)
    y = x.reshape(-1, w.shape[0]) @ w
    y = y.reshape(*x.shape[:-1], w.shape[1]) + _bias_real(run, 2, weight)
    return [run.emit(_activation(run, y))]


def _matmul(run: _NodeRun) -> list[_Value]:
    a = run.real(0)
    name = run.node.inputs[1]
    if name in run.sim.model.initializers:
        b = _filter_real(run.sim._constant(name), -1)
    else:
        b = run.real(1)
    return [run.emit(_activation(run, np.matmul(a, b)))]


# --------------------------------------------------------------------------- kernels: pooling


def _pool(run: _NodeRun, reduce: Callable[[np.ndarray, tuple[int, ...]], np.ndarray], fill: float) -> np.ndarray:
    x = run.real(0)
    rank = x.ndim - 2
    kernel, strides, dilations, pads = _spatial_attrs(run, rank)
    windows = _conv_windows(_pad_spatial(x, pads, fill), kernel, strides, dilations)
    return reduce(windows, tuple(range(rank + 1, 2 * rank + 1)))


def _average_pool(run: _NodeRun) -> list[_Value]:
    if int(run.attr("count_include_pad", 0)):
        return [run.emit(_pool(run, lambda w, axes: w.mean(axis=axes), 0.0))]
    x = run.input(0).real()
    ones = np.ones((1, *x.shape[1:-1], 1))
    sums = _pool(run, lambda w, axes: w.sum(axis=axes), 0.0)
    run_ones = _NodeRun(run.sim, run.node, [_Value(ones, None)])
    counts = _pool(run_ones, lambda w, axes: w.sum(axis=axes), 0.0)
    return [run.emit(sums / counts)]


def _max_pool(run: _NodeRun) -> list[_Value]:
    return [run.emit(_pool(run, lambda w, axes: w.max(axis=axes), -np.inf))]


def _global_average_pool(run: _NodeRun) -> list[_Value]:
    x = run.real(0)
    return [run.emit(x.mean(axis=tuple(range(1, x.ndim - 1)), keepdims=True))]


# --------------------------------------------------------------------------- kernels: element-wise


def _binary(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> Callable[[_NodeRun], list[_Value]]:
    def kernel(run: _NodeRun) -> list[_Value]:
        a, b = run.real(0), run.real(1)
        try:
            y = fn(a, b)
        except ValueError as exc:
            raise _fail(run.node, f"input shapes {a.shape} and {b.shape} do not broadcast") from exc
        return [run.emit(y)]

    return kernel


def _tanh(x: np.ndarray) -> np.ndarray:
    """The C library's tanh, element by element: numpy's own vectorised tanh differs from it by one
    ulp on some inputs and CPUs, and the C++ host engine calls the C library."""
    x = np.asarray(x, dtype=np.float64)
    return np.fromiter(map(math.tanh, x.reshape(-1).tolist()), dtype=np.float64, count=x.size).reshape(x.shape)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + _tanh(0.5 * x))


def _hard_sigmoid(run: _NodeRun, x: np.ndarray) -> np.ndarray:
    alpha = float(run.attr("alpha", 0.2))
    beta = float(run.attr("beta", 0.5))
    return np.clip(alpha * x + beta, 0.0, 1.0)


def _prelu(run: _NodeRun, x: np.ndarray) -> np.ndarray:
    slope = run.real(1)
    if slope.size == x.shape[-1]:
        slope = slope.reshape(-1)  # esp-ppq keeps the NCW-broadcast shape (C, 1): one slope per channel
    return np.where(x >= 0, x, x * slope)


def _clip(run: _NodeRun, x: np.ndarray) -> np.ndarray:
    low = run.real(1) if run.has_input(1) else -np.inf
    high = run.real(2) if run.has_input(2) else np.inf
    if "min" in run.node.attributes:
        low = float(run.attr("min"))
    if "max" in run.node.attributes:
        high = float(run.attr("max"))
    return cast("np.ndarray", np.minimum(np.maximum(x, low), high))


_UNARY_MATH: dict[str, Callable[[_NodeRun, np.ndarray], np.ndarray]] = {
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


def _lut_table(run: _NodeRun) -> Tensor | None:
    name = run.attr("lut")
    return run.sim._constant(str(name)) if name else None


def _lookup(run: _NodeRun, table: Tensor) -> list[_Value]:
    """ESP-DL table lookup: direct for a full table, step-sub-sampled for INT16 LUT nodes."""
    value = run.input(0)
    if value.exponent is None:
        raise _fail(run.node, "a look-up table needs a quantized input")
    spec = run.out()
    entries = table.data.reshape(-1).astype(np.int64)
    low, _ = _INT_RANGES[str(value.data.dtype)]
    index = value.data.astype(np.int64) - low
    span = 1 << (8 * value.data.dtype.itemsize)
    if entries.size == span:
        out = entries[index]
    elif run.node.op_type != "LUT" or span != 65536:
        raise _fail(run.node, f"a {entries.size}-entry table does not fit a {value.data.dtype} input")
    else:
        # INT16 LUT node: 65536 / step + 1 pivots; ESP-DL takes the nearest pivot,
        # rounding idx / step with the chip's rounding (step is a power of two).
        step = span // (entries.size - 1)
        nearest = _round(index / step, run.rounding).astype(np.int64)
        out = entries[np.clip(nearest, 0, entries.size - 1)]
    table_exp = table.exponents[0] if table.exponents else spec.exponent
    if table_exp is None:
        raise _fail(run.node, "has a LUT without an exponent")
    if spec.exponent is not None and table_exp == spec.exponent and spec.dtype in _INT_RANGES:
        lo, hi = _INT_RANGES[spec.dtype]
        return [_Value(np.clip(out, lo, hi).astype(spec.dtype), spec.exponent)]
    return [run.emit(dequantize(out, table_exp))]


def _unary(op_type: str) -> Callable[[_NodeRun], list[_Value]]:
    def kernel(run: _NodeRun) -> list[_Value]:
        table = _lut_table(run)
        value = run.input(0)
        if table is not None and (op_type == "LUT" or value.data.dtype == np.int8):
            return _lookup(run, table)
        math = _UNARY_MATH[str(run.attr("original_op_type")) if op_type == "LUT" else op_type]
        return [run.emit(math(run, value.real()))]

    return kernel


# --------------------------------------------------------------------------- kernels: data movement


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _concat(run: _NodeRun) -> list[_Value]:
    axis = int(run.attr("axis", 0))
    parts = [run.input(i) for i in range(len(run.node.inputs))]
    spec = run.out()
    if all(_same_exponent(p, spec) and str(p.data.dtype) == spec.dtype for p in parts):
        return [_Value(np.concatenate([p.data for p in parts], axis=axis), spec.exponent)]
    return [run.emit(np.concatenate([p.real() for p in parts], axis=axis))]


def _slice(run: _NodeRun) -> list[_Value]:
    value = run.input(0)
    data = value.data
    starts, ends = run.ints(1), run.ints(2)
    axes = run.ints(3) if run.has_input(3) else list(range(len(starts)))
    steps = run.ints(4) if run.has_input(4) else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        index[_axis(axis, data.ndim)] = slice(*_clamp_slice(start, end, step, data.shape[_axis(axis, data.ndim)]))
    return [run.passthrough(value, data[tuple(index)])]


def _clamp_slice(start: int, end: int, step: int, size: int) -> tuple[int | None, int | None, int]:
    """ONNX Slice bounds (INT64 sentinels, negatives) as a Python slice."""

    def clamp(v: int, low: int, high: int) -> int:
        if v < 0:
            v += size
        return min(max(v, low), high)

    if step > 0:
        return clamp(start, 0, size), clamp(end, 0, size), step
    s, e = clamp(start, -1, size - 1), clamp(end, -1, size - 1)
    return s, (None if e < 0 else e), step


def _transpose(run: _NodeRun) -> list[_Value]:
    value = run.input(0)
    perm = run.attr("perm")
    return [run.passthrough(value, np.transpose(value.data, perm))]


def _reshape(run: _NodeRun) -> list[_Value]:
    value = run.input(0)
    shape = run.ints(1)
    allow_zero = int(run.attr("allowzero", 0))
    if not allow_zero:
        shape = [value.data.shape[i] if d == 0 else d for i, d in enumerate(shape)]
    sim = run.sim
    frames_at = sim.reshape_frames.get(run.node.name)
    if sim.any_frames and frames_at is not None and sim.run_frames != sim.declared_frames:
        # The streaming plan knows where the frames are: the declared count becomes the run's.
        in_axis, index = frames_at
        if in_axis < value.data.ndim and index < len(shape):
            shape = [*shape[:index], value.data.shape[in_axis], *shape[index + 1 :]]
    try:
        data = value.data.reshape(shape)
    except ValueError as exc:
        other = _reshape_other_length(run.sim, value.data, shape)
        if other is None:
            raise _fail(run.node, f"cannot reshape {value.data.shape} to {shape}") from exc
        data = other
    return [run.passthrough(value, data)]


def _reshape_other_length(sim: Simulator, data: np.ndarray, shape: list[int]) -> np.ndarray | None:
    """With ``any_frames``, a constant target shape exported for the declared frame count (esp-ppq
    writes the offline length into the Reshapes around a per-frame Linear) is applied to the
    length actually run: one dimension equal to the declared count takes the run's count."""
    declared, actual = sim.declared_frames, sim.run_frames
    if not sim.any_frames or declared is None or actual is None or declared == actual:
        return None
    for i, d in enumerate(shape):
        if d == declared:
            candidate = [*shape[:i], actual, *shape[i + 1 :]]
            if int(np.prod(candidate)) == data.size:
                return data.reshape(candidate)
    # After a stride or a slice the frame count at the Reshape is not the input's: the one dimension
    # whose change (in the direction of the run's length) makes the shape fit the data is the frames.
    # An inferred -1 (the batch) counts as 1. Ambiguous shapes are left alone (verify then compares
    # windows of the declared length).
    fixed = [1 if d == -1 else d for d in shape]
    fits = []
    for i, d in enumerate(fixed):
        rest = int(np.prod(fixed[:i] + fixed[i + 1 :]))
        if d <= 1 or rest <= 0 or data.size % rest:
            continue
        n = data.size // rest
        if n != d and (n > d) == (actual > declared):
            fits.append([*shape[:i], n, *shape[i + 1 :]])
    return data.reshape(fits[0]) if len(fits) == 1 else None


def _flatten(run: _NodeRun) -> list[_Value]:
    value = run.input(0)
    axis = _axis(int(run.attr("axis", 1)), value.data.ndim)
    outer = int(np.prod(value.data.shape[:axis], dtype=np.int64))
    return [run.passthrough(value, value.data.reshape(outer, -1))]


def _axes_of(run: _NodeRun) -> list[int]:
    if run.has_input(1):
        return run.ints(1)
    return list(run.attr("axes", []))


def _squeeze(run: _NodeRun) -> list[_Value]:
    value = run.input(0)
    axes = [_axis(a, value.data.ndim) for a in _axes_of(run)]
    data = np.squeeze(value.data, axis=tuple(axes)) if axes else np.squeeze(value.data)
    return [run.passthrough(value, data)]


def _unsqueeze(run: _NodeRun) -> list[_Value]:
    value = run.input(0)
    rank = value.data.ndim + len(_axes_of(run))
    data = value.data
    for axis in sorted(_axis(a, rank) for a in _axes_of(run)):
        data = np.expand_dims(data, axis)
    return [run.passthrough(value, data)]


def _requantize(run: _NodeRun) -> list[_Value]:
    return [run.emit(run.real(0))]


def _quantize_linear(run: _NodeRun) -> list[_Value]:
    """ESP-DL's QuantizeLinear and DequantizeLinear: both are dl::module::RequantizeLinear, whose forward
    is TensorBase::assign, so the tensors' dtypes decide (the scale and zero point inputs are not read).
    float32 -> int8/int16 (dl::quantize): float32(x * DL_RESCALE(exponent)), then tool::round (the chip's
    float rounding, _round_f32), saturated, NaN -> the largest value.  int8/int16 -> float32
    (dl::dequantize): float32(q) * DL_SCALE(exponent).  int -> int: as RequantizeLinear."""
    value = run.input(0)
    spec = run.out()
    if value.exponent is None:
        x = np.asarray(value.data, dtype=_F32)
        if spec.exponent is None or spec.dtype not in ("int8", "int16"):
            return [_Value(np.ascontiguousarray(x), None)]  # same dtype: assign copies
        with np.errstate(over="ignore", invalid="ignore"):
            inv_scale = _F32(np.ldexp(np.float64(1.0), -int(spec.exponent)))
            scaled = (x * inv_scale).astype(_F32)
        return [_Value(_truncate(_round_f32(scaled, run.rounding), spec.dtype), spec.exponent)]
    if spec.exponent is None or spec.dtype in _FLOAT_DTYPES:
        if not isinstance(value.exponent, int) or value.data.dtype not in (np.int8, np.int16):
            raise _fail(run.node, "ESP-DL dequantizes only an int8 or int16 input with one exponent")
        with np.errstate(over="ignore", invalid="ignore"):
            scale = _F32(np.ldexp(np.float64(1.0), int(value.exponent)))
            out = (value.data.astype(_F32) * scale).astype(_F32)
        return [_Value(np.ascontiguousarray(out), None)]
    return _requantize(run)


def _streaming_cache(run: _NodeRun) -> list[_Value]:
    value = run.input(0)
    axis = _axis(int(run.attr("frame_axis", 1)), value.data.ndim)
    keep = int(run.attr("window_size")) - 1
    state = run.sim._state_for(run.node, value.data, axis, keep)
    data = np.concatenate([state, value.data], axis=axis)
    run.sim._states[run.node.name] = np.take(data, range(data.shape[axis] - keep, data.shape[axis]), axis=axis)
    return [run.passthrough(value, data)]


def _recurrent_args(run: _NodeRun) -> dict[str, Any]:
    x = run.input(0)
    weight = run.sim._constant(run.node.inputs[1])
    rec = run.sim._constant(run.node.inputs[2])
    if x.exponent is None or not isinstance(x.exponent, int):
        raise _fail(run.node, "needs a quantized input with one exponent")
    y_spec, h_spec = run.out(0), run.out(1)
    if y_spec.exponent is None or h_spec.exponent is None:
        raise _fail(run.node, "its outputs Y and Y_h must be quantized")
    return {
        "hidden": int(run.attr("hidden_size")),
        "x_exp": int(x.exponent),
        "w_exp": int(weight.exponents[0]),
        "r_exp": int(rec.exponents[0]),
        "y_exp": int(y_spec.exponent),
        "h_exp": int(h_spec.exponent),
        "gate_exp": int(run.attr("gate_exponent", -8)),
        "rounding": run.rounding,
    }


def _optional_data(run: _NodeRun, index: int) -> np.ndarray | None:
    return run.input(index).data if run.has_input(index) else None


def _gru(run: _NodeRun) -> list[_Value]:
    """ESP-DL's quantized GRU (see recurrent.py): Y and Y_h in the input's dtype."""
    args = _recurrent_args(run)
    weight = run.sim._constant(run.node.inputs[1]).data
    rec = run.sim._constant(run.node.inputs[2]).data
    bias = _optional_data(run, 3)
    x = run.input(0).data
    y, y_h = recurrent.gru(x, weight, rec, bias, _optional_data(run, 5), **args)
    return [_Value(y, args["y_exp"]), _Value(y_h, args["h_exp"])]


def _lstm(run: _NodeRun) -> list[_Value]:
    """ESP-DL's quantized LSTM (see recurrent.py): Y, Y_h in the input's dtype, Y_c int16."""
    args = _recurrent_args(run)
    c_spec = run.out(2)
    if c_spec.exponent is None:
        raise _fail(run.node, "its output Y_c must be quantized")
    weight = run.sim._constant(run.node.inputs[1]).data
    rec = run.sim._constant(run.node.inputs[2]).data
    bias = _optional_data(run, 3)
    x = run.input(0).data
    y, y_h, y_c = recurrent.lstm(
        x, weight, rec, bias, _optional_data(run, 5), _optional_data(run, 6), c_exp=int(c_spec.exponent), **args
    )
    return [_Value(y, args["y_exp"]), _Value(y_h, args["h_exp"]), _Value(y_c, int(c_spec.exponent))]


_Kernel = Callable[[_NodeRun], list[_Value]]


def _pad(run: _NodeRun) -> list[_Value]:
    """ONNX/ESP-DL Pad: pads = [begin_0 .. begin_n-1, end_0 .. end_n-1]; constant, edge or reflect."""
    value = run.input(0)
    pads = run.ints(1)
    rank = value.data.ndim
    if len(pads) != 2 * rank or any(p < 0 for p in pads):
        raise _fail(run.node, f"pads {pads} do not fit a rank-{rank} tensor")
    widths = [(pads[i], pads[i + rank]) for i in range(rank)]
    mode = run.attr("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if mode == "constant":
        fill = run.input(2).real().reshape(-1)[0] if run.has_input(2) else 0.0
        if fill == 0.0:
            return [run.passthrough(value, np.pad(value.data, widths))]
        return [run.emit(np.pad(value.real(), widths, constant_values=fill))]
    return [run.passthrough(value, np.pad(value.data, widths, mode="edge" if mode == "edge" else "reflect"))]


def _insert_zeros(run: _NodeRun) -> list[_Value]:
    """ESP-DL InsertZeros (the first half of a ConvTranspose), channels-last: stride - 1 zeros
    between the frames of every spatial axis, then output_padding zeros at the end."""
    value = run.input(0)
    data = value.data
    spatial = data.ndim - 2
    strides = [int(v) for v in run.attr("stride", [1])]
    padding = [int(v) for v in run.attr("output_padding", [0])]
    strides = strides * spatial if len(strides) == 1 else strides
    padding = padding * spatial if len(padding) == 1 else padding
    if len(strides) != spatial or len(padding) != spatial or min(strides) < 1 or min(padding) < 0:
        raise _fail(run.node, f"stride {strides} / output_padding {padding} do not fit a rank-{data.ndim} tensor")
    shape = [data.shape[0]]
    for i in range(spatial):
        n = data.shape[1 + i]
        shape.append((n - 1) * strides[i] + 1 + padding[i] if n else 0)
    shape.append(data.shape[-1])
    out = np.zeros(shape, dtype=data.dtype)
    # (a tuple, not out[a, *b]: that subscript needs Python 3.11, and the package supports 3.10)
    index = (slice(None), *(slice(None, (data.shape[1 + i] - 1) * strides[i] + 1, strides[i]) for i in range(spatial)))
    out[index] = data
    return [run.passthrough(value, out)]


# --------------------------------------------------------------------------- kernels: Gather, Softmax, LayerNorm
#
# These follow ESP-DL's modules (dl_module_gather.hpp, dl_module_softmax.hpp,
# dl_module_layer_normalization.hpp), which compute in float32 (not float64): every float32
# operation of ESP-DL is one float32 operation here, in ESP-DL's order, with exp taken as the
# C library's double exp rounded to float32.

_F32 = np.float32


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
        return np.fromiter(map(one, flat), dtype=np.float64, count=len(flat)).astype(_F32).reshape(np.shape(x))


def _scale_f32(exponent: int) -> np.float32:
    """ESP-DL's DL_SCALE(exponent) as a float: 2**exponent."""
    return cast("np.float32", _F32(math.ldexp(1.0, int(exponent))))


def _round_f32(value: np.ndarray, rounding: Rounding) -> np.ndarray:
    """ESP-DL's tool::round of a float: fcvt.w.s with round-to-nearest-even on the P4 (half_even),
    else (int)floorf(value + 0.5) where value + 0.5 is a double narrowed to float by floorf."""
    v = np.asarray(value, dtype=_F32)
    if rounding == "half_even":
        return np.rint(v).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.floor((v.astype(np.float64) + 0.5).astype(_F32)).astype(np.float64)


def _truncate(values: np.ndarray, dtype: str) -> np.ndarray:
    low, high = _INT_RANGES[dtype]
    return cast("np.ndarray", np.clip(np.nan_to_num(values, nan=float(high)), low, high).astype(dtype))


def _gather(run: _NodeRun) -> list[_Value]:
    """ESP-DL Gather: copies the elements of the constant indices along ``axis``, bytes as they are
    (no requantization), and uses every index as is: a negative index is not wrapped around."""
    value = run.input(0)
    data = value.data
    axis = _axis(int(run.attr("axis", 0)), data.ndim)
    if not 0 <= axis < data.ndim:
        raise _fail(run.node, f"axis {run.attr('axis', 0)} does not fit a rank-{data.ndim} tensor")
    indices = np.asarray(run.sim._constant(run.node.inputs[1]).data).astype(np.int64)
    size = data.shape[axis]
    sim = run.sim
    declared, actual = sim.declared_frames, sim.run_frames
    from_end = sim.model.metadata.get(GATHER_FROM_END_PREFIX + run.node.name)
    if sim.any_frames and from_end is not None and declared != actual:
        # The user indexed from the end (x[..., -1]); the file holds it counted for the declared length.
        written = np.asarray([int(v) for v in from_end.split(",")], dtype=np.int64)
        if written.size != indices.size:
            raise _fail(run.node, f"its recorded indices {from_end} do not match its {indices.size} constant indices")
        indices = np.where(written < 0, written + size, written).reshape(indices.shape)
    elif sim.any_frames and declared is not None and actual is not None and declared != actual and size == actual:
        # Constant indices on an axis of the run's length were exported for the declared length (x[..., -1]
        # as declared - 1): the model only runs on its declared frames (verify then compares windows of them).
        raise _fail(
            run.node,
            f"gathers constant indices from an axis of {actual} frames, exported for the declared {declared}",
        )
    bad = indices[(indices < 0) | (indices >= size)]
    if bad.size:
        raise _fail(
            run.node,
            f"index {int(bad[0])} is outside the {size} elements of axis {axis}: ESP-DL's Gather does not wrap "
            "indices around, it would read another row or memory outside the tensor",
        )
    spec = run.out()
    exponent = value.exponent
    if spec.exponent is not None and spec.dtype in _INT_RANGES:
        if spec.dtype != str(data.dtype):
            raise _fail(run.node, f"ESP-DL copies the {data.dtype} input as is, but the output is {spec.dtype}")
        exponent = spec.exponent  # the bytes are copied; the graph's exponent says what they mean
    out = np.take(data, indices, axis=axis)
    return [_Value(np.ascontiguousarray(out), exponent)]


def _softmax_rows(e: np.ndarray) -> np.ndarray:
    """e / sum(e) along the last axis, the sum accumulated in float32 from the first element."""
    total = np.zeros(e.shape[:-1], dtype=_F32)
    for i in range(e.shape[-1]):
        total = (total + e[..., i]).astype(_F32)
    return (e / total[..., None]).astype(_F32)


def _softmax(run: _NodeRun) -> list[_Value]:
    """ESP-DL Softmax, float32 output.  int8: exp from a 256-entry float table of expf(2**e * q)
    (the maximum is not subtracted); int16: x = 2**e * q, then expf(x - max) along the axis; both
    divide by the float32 sum accumulated in order."""
    value = run.input(0)
    data = value.data
    if value.exponent is None or not isinstance(value.exponent, int) or data.dtype not in (np.int8, np.int16):
        raise _fail(run.node, "ESP-DL's Softmax needs an int8 or int16 input with one exponent")
    axis = _axis(int(run.attr("axis", -1)), data.ndim)
    if not 0 <= axis < data.ndim:
        raise _fail(run.node, f"axis {run.attr('axis', -1)} does not fit a rank-{data.ndim} tensor")
    scale = _scale_f32(value.exponent)
    moved = np.moveaxis(data, axis, -1)
    if data.dtype == np.int8:
        table = _exp_f32((scale * np.arange(-128, 128, dtype=_F32)).astype(_F32))
        e = table[moved.astype(np.int64) + 128]
    else:
        x = (scale * moved.astype(_F32)).astype(_F32)
        top = x.max(axis=-1, keepdims=True) if x.shape[-1] else x
        e = _exp_f32((x - top).astype(_F32))
    out = np.moveaxis(_softmax_rows(e), -1, axis)
    return [_Value(np.ascontiguousarray(out), None)]


def _sqrt_newton(x: float | np.floating[Any]) -> np.float32:
    """ESP-DL's dl::math::sqrt_newton in float32: Newton steps from x until two successive values
    differ by at most 1e-5."""
    x32 = _F32(x)
    if x32 == 0:
        return cast("np.float32", _F32(0.0))
    result = x32
    for _ in range(100000):
        last = result
        result = _F32(_F32(last + _F32(x32 / last)) * _F32(0.5))
        if not abs(_F32(result - last)) > _F32(1e-5):
            return cast("np.float32", result)
    raise ArithmeticError(f"ESP-DL's sqrt_newton does not converge for {float(x32)!r}")


def _layer_norm(run: _NodeRun) -> list[_Value]:
    """ESP-DL LayerNormalization on int8/int16: the integer sum gives the mean (double division
    rounded to float), then float32 variance, sqrt_newton, scale and bias (int tensors of the
    input's type, one exponent each), requantized with ESP-DL's float rounding."""
    value = run.input(0)
    data = value.data
    spec = run.out()
    if value.exponent is None or not isinstance(value.exponent, int) or data.dtype not in (np.int8, np.int16):
        raise _fail(run.node, "ESP-DL's LayerNormalization needs an int8 or int16 input with one exponent")
    if spec.exponent is None or spec.dtype != str(data.dtype):
        raise _fail(run.node, f"the output must be {data.dtype} with an exponent, like the input")
    axis = _axis(int(run.attr("axis", -1)), data.ndim)
    if not 0 <= axis < data.ndim:
        raise _fail(run.node, f"axis {run.attr('axis', -1)} does not fit a rank-{data.ndim} tensor")
    inner = int(np.prod(data.shape[axis:], dtype=np.int64))
    rows = data.reshape(-1, inner)
    params: list[np.ndarray | None] = []
    for index in (1, 2):
        if not run.has_input(index):
            params.append(None)
            continue
        tensor = run.sim._constant(run.node.inputs[index])
        if tensor.data.size != inner:
            raise _fail(run.node, f"input {index} has {tensor.data.size} values for {inner} normalized elements")
        params.append((tensor.data.reshape(-1).astype(_F32) * _scale_f32(tensor.exponents[0])).astype(_F32))
    gamma, beta = params
    in_scale = _scale_f32(value.exponent)
    out_scale = _F32(math.ldexp(1.0, -int(spec.exponent)))
    epsilon = _F32(run.attr("epsilon", 1e-5))
    out = np.empty(rows.shape, dtype=np.float64)
    for r, row in enumerate(rows):
        total = int(row.astype(np.int64).sum())
        mean = _F32(total * 1.0 / inner)
        x = row.astype(_F32)
        diff = (x - mean).astype(_F32)
        squares = (diff * diff).astype(_F32)
        variance = _F32(0.0)
        for sq in squares:
            variance = _F32(variance + sq)
        mean = _F32(mean * in_scale)
        variance = _F32(variance * _F32(in_scale * in_scale))
        variance = _F32(variance / _F32(inner))
        try:
            root = _sqrt_newton(_F32(variance + epsilon))
        except ArithmeticError as exc:
            raise _fail(run.node, str(exc)) from exc
        with np.errstate(divide="ignore"):
            inv_std = _F32(_F32(1.0) / root)
        normalized = (((x * in_scale).astype(_F32) - mean).astype(_F32) * inv_std).astype(_F32)
        if gamma is not None:
            normalized = (normalized * gamma).astype(_F32)
        result = (normalized + beta).astype(_F32) if beta is not None else normalized
        with np.errstate(over="ignore", invalid="ignore"):
            out[r] = _round_f32((result * out_scale).astype(_F32), run.rounding)
    return [_Value(_truncate(out, spec.dtype).reshape(data.shape), spec.exponent)]


# --------------------------------------------------------------------------- kernels: ReduceMean/Max/Min/Sum
#
# ESP-DL's reduce modules (dl_module_reduce_base.hpp and dl_module_reduce_{mean,max,min,sum}.hpp):
# the reduced axes come from the constant `axes` input (none: every axis); runs of neighbouring axes
# with the same flag are merged, and only the merged patterns ESP-DL's forward_template handles
# (at most 4 alternating runs, at least one reduced) write an output.

_REDUCE_OPS = ("ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum")
_REDUCE_PATTERNS = frozenset({(1,), (0, 1), (1, 0), (1, 0, 1), (0, 1, 0), (0, 1, 0, 1), (1, 0, 1, 0)})


def _reduce_flags(node: Node, axes: list[int], rank: int, noop_with_empty_axes: int) -> list[bool]:
    """ESP-DL's get_attributes: one flag per input axis; negative axes count from the end."""
    if not axes:
        return [not noop_with_empty_axes] * rank
    flags = [False] * rank
    for a in axes:
        if not -rank <= a < rank:
            raise _fail(node, f"axis {a} does not fit a rank-{rank} tensor")
        flags[a % rank] = True
    return flags


def _reduce_pattern(flags: list[bool]) -> tuple[int, ...]:
    merged: list[int] = []
    for f in flags:
        if not merged or merged[-1] != int(f):
            merged.append(int(f))
    return tuple(merged)


def _reduce(run: _NodeRun) -> list[_Value]:
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
        raise _fail(node, f"ESP-DL's {node.op_type} needs an int8 or int16 input with one exponent")
    if spec.exponent is None or spec.dtype != str(data.dtype):
        raise _fail(node, f"the output must be {data.dtype} with an exponent, like the input")
    axes = run.ints(1) if run.has_input(1) else []
    flags = _reduce_flags(node, axes, data.ndim, int(run.attr("noop_with_empty_axes", 0)))
    if _reduce_pattern(flags) not in _REDUCE_PATTERNS:
        raise _fail(
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
                scaled = _round(np.ldexp(total.astype(np.float64), value.exponent - spec.exponent), run.rounding)
        else:
            count = _F32(int(np.prod([data.shape[i] for i in reduced], dtype=np.int64)))
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                mean = (total.astype(_F32) * _scale_f32(value.exponent)).astype(_F32)
                mean = (mean / count).astype(_F32)
                mean = (mean * _scale_f32(-spec.exponent)).astype(_F32)
                scaled = _round_f32(mean, run.rounding)
        out = _truncate(scaled, spec.dtype)
    if out.ndim == 0:
        out = out.reshape(1)  # ESP-DL's output shape when every axis is reduced without keepdims
    return [_Value(np.ascontiguousarray(out), spec.exponent)]


_KERNELS: dict[str, _Kernel] = {
    "InsertZeros": _insert_zeros,
    "GRU": _gru,
    "LSTM": _lstm,
    "Pad": _pad,
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "AveragePool": _average_pool,
    "MaxPool": _max_pool,
    "GlobalAveragePool": _global_average_pool,
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(np.divide),
    "Concat": _concat,
    "Slice": _slice,
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "RequantizeLinear": _requantize,
    "QuantizeLinear": _quantize_linear,
    "DequantizeLinear": _quantize_linear,
    "StreamingCache": _streaming_cache,
    "Gather": _gather,
    "Softmax": _softmax,
    "LayerNormalization": _layer_norm,
    "ReduceMean": _reduce,
    "ReduceMax": _reduce,
    "ReduceMin": _reduce,
    "ReduceSum": _reduce,
    "LUT": _unary("LUT"),
    **{op: _unary(op) for op in _UNARY_MATH},
}


def _node_macs(node: Node, args: list[_Value | None], results: list[_Value]) -> int:
    if node.op_type in ("GRU", "LSTM") and results and len(args) > 2 and args[1] is not None and args[2] is not None:
        steps = results[0].data.shape[0]
        return cast("int", steps * (int(args[1].data.size) + int(args[2].data.size)))
    if node.op_type not in ("Conv", "Gemm", "MatMul") or not results or len(args) < 2:
        return 0
    out, weight = results[0].data, args[1]
    if weight is None:
        return 0
    if node.op_type != "Conv":
        return cast("int", out.size * weight.data.shape[-2])
    kernel = int(np.prod(weight.data.shape[:-2], dtype=np.int64))
    per_group = 1 if node.attributes.get("group", 1) != 1 else weight.data.shape[-2]
    return out.size * kernel * per_group


# --------------------------------------------------------------------------- validation


def _unsupported(node: Node, what: str) -> UnsupportedOpError:
    return UnsupportedOpError(f"node {node.name!r} (op type {node.op_type}): {what}")


def _validate_spatial(node: Node) -> None:
    attrs = node.attributes
    kernel = attrs.get("kernel_shape")
    if not isinstance(kernel, list) or not kernel:
        raise _unsupported(node, "missing kernel_shape")
    rank = len(kernel)
    for name, length in (("strides", rank), ("dilations", rank), ("pads", 2 * rank)):
        value = attrs.get(name)
        if value is not None and (not isinstance(value, list) or len(value) != length):
            raise _unsupported(node, f"{name}={value!r} does not match a {rank}-D kernel")
    if any(v < 1 for v in list(attrs.get("strides", [])) + list(attrs.get("dilations", []))):
        raise _unsupported(node, "strides and dilations must be positive")
    if any(v < 0 for v in attrs.get("pads", [])):
        raise _unsupported(node, "negative pads")
    if int(attrs.get("ceil_mode", 0)):
        raise _unsupported(node, "ceil_mode=1 is not supported")
    if attrs.get("auto_pad", "NOTSET") not in ("NOTSET", b"NOTSET"):
        raise _unsupported(node, f"auto_pad={attrs['auto_pad']!r} is not supported")


# ESP-DL's Conv/Gemm/MatMul kernel for each quant_type esp-ppq writes: the (activation, weight, bias) dtypes it
# reads.  W8A16 (esp-ppq's quant_type="w8a16", ESP-DL >= 3.3.11) is the S16 kernel with the int8 weights
# sign-extended as they are loaded: int16 activations, int64 bias, the same accumulator and requantization.
_DENSE_KERNELS: dict[str, tuple[str, str, str]] = {
    "S8": ("int8", "int8", "int32"),
    "S16": ("int16", "int16", "int64"),
    "W8A16": ("int16", "int8", "int64"),
}


def _info_of(model: EspdlModel, name: str) -> Any:
    """The declared type of a tensor, as Simulator._out_spec finds it (a graph output first, then an input)."""
    for info in (*reversed(model.outputs), *reversed(model.inputs)):
        if info.name == name:
            return info
    return model.value_info.get(name)


def _validate_dense_dtypes(node: Node, model: EspdlModel) -> None:
    """ESP-DL picks the Conv/Gemm/MatMul kernel from the node's quant_type and reads every operand as that
    kernel's type: an operand of another dtype would be misread (or the model not load), so it is refused.
    A node without quant_type (a hand-made graph) is computed from the dtypes it has."""
    quant = node.attributes.get("quant_type")
    if quant is None:
        return
    quant = quant.decode() if isinstance(quant, bytes) else str(quant)
    kernel = _DENSE_KERNELS.get(quant)
    if kernel is None:
        raise _unsupported(
            node, f"quant_type {quant!r}: ESP-DL runs {node.op_type} only as S8, S16 or W8A16 (integer kernels)"
        )
    act, weight_dtype, bias_dtype = kernel
    if quant == "W8A16" and node.op_type == "Conv" and node.attributes.get("group", 1) != 1:
        raise _unsupported(node, "a W8A16 depthwise convolution: ESP-DL has W8A16 kernels only for group=1")
    operands = [("the input", node.inputs[0] if node.inputs else "", act)]
    constant_weight = len(node.inputs) > 1 and node.inputs[1] in model.initializers
    if node.op_type != "MatMul" or constant_weight:
        operands.append(("the weight", node.inputs[1] if len(node.inputs) > 1 else "", weight_dtype))
    elif quant == "W8A16":
        raise _unsupported(node, "a W8A16 MatMul of two computed tensors: ESP-DL's W8A16 kernel needs a constant B")
    else:
        operands.append(("the second input", node.inputs[1] if len(node.inputs) > 1 else "", act))
    if node.op_type != "MatMul" and len(node.inputs) > 2 and node.inputs[2]:
        operands.append(("the bias", node.inputs[2], bias_dtype))
    operands.append(("the output", node.outputs[0] if node.outputs else "", act))
    for what, name, want in operands:
        tensor = model.initializers.get(name)
        info = tensor if tensor is not None else _info_of(model, name)
        if info is not None and info.dtype != want:
            raise _unsupported(
                node,
                f"{what} {name!r} is {info.dtype}, but ESP-DL's {quant} {node.op_type} kernel reads it as {want} "
                "and would misread it",
            )


def _validate_per_channel(node: Node, model: EspdlModel, rounding: Rounding) -> None:
    """Per-channel weight exponents: ESP-DL's ConvOpArgs builds the per-channel shifts only for ESP32-P4's
    SIMD kernels (CONFIG_PIE_V2_BOOST); on the chips that round half up (ESP32-S3, the C series) it has no
    per-channel shift at all, and esp-ppq exports per-channel weights only for ESP32-P4."""
    if node.op_type not in ("Conv", "Gemm", "MatMul") or rounding != "half_up" or len(node.inputs) < 2:
        return
    weight = model.initializers.get(node.inputs[1])
    if weight is not None and len(weight.exponents) > 1:
        raise _unsupported(
            node,
            f"the weight {weight.name!r} has one exponent per channel: ESP-DL applies per-channel exponents only "
            "on ESP32-P4 (esp-ppq writes them only for esp32p4): quantize for this chip",
        )


def _validate_dense(node: Node, model: EspdlModel) -> None:
    if node.attributes.get("activation", "Linear") not in ("Linear", "Relu"):
        raise _unsupported(node, f"fused activation {node.attributes['activation']!r} is not supported")
    _validate_dense_dtypes(node, model)
    if node.op_type == "MatMul":
        return
    if len(node.inputs) < 2 or node.inputs[1] not in model.initializers:
        raise _unsupported(node, "the weight must be a constant")
    weight = model.initializers[node.inputs[1]]
    if node.op_type == "Gemm":
        attrs = node.attributes
        if int(attrs.get("transA", 0)) or int(attrs.get("transB", 0)):
            raise _unsupported(node, "transA/transB must be 0 (esp-ppq exports transposed weights)")
        if float(attrs.get("alpha", 1.0)) != 1.0 or float(attrs.get("beta", 1.0)) != 1.0:
            raise _unsupported(node, "alpha and beta must be 1")
        if weight.data.ndim < 2 or int(np.prod(weight.dims[:-2], dtype=np.int64)) != 1:
            raise _unsupported(node, f"weight dims {weight.dims} are not a matrix")
        return
    _validate_spatial(node)
    group = node.attributes.get("group", 1)
    if weight.data.ndim != len(node.attributes["kernel_shape"]) + 2:
        raise _unsupported(node, f"weight dims {weight.dims} do not match the kernel")
    if group != 1 and (weight.dims[-1] != 1 or weight.dims[-2] != group):
        raise _unsupported(
            node,
            f"grouped convolution (group={group}): ESP-DL's Conv runs group != 1 only as a depthwise convolution "
            "(one group per channel) and would compute something else: use groups=1, a depthwise conv "
            "(groups=in_channels), or split the groups into separate convs joined by a Concat",
        )


def _validate_lut_node(node: Node, model: EspdlModel) -> None:
    table = model.initializers.get(str(node.attributes.get("lut")))
    if table is None:
        original = node.attributes.get("original_op_type")
        if original not in _UNARY_MATH:
            raise _unsupported(node, f"LUT node without a table for {original!r}")
        return
    pivots = table.data.size - 1
    if pivots < 1 or 65536 % pivots or (65536 // pivots) & (65536 // pivots - 1):
        raise _unsupported(node, f"a {table.data.size}-entry table is not a power-of-two step INT16 LUT")


def _validate_recurrent(node: Node, model: EspdlModel) -> None:
    attrs = node.attributes
    gates = 3 if node.op_type == "GRU" else 4
    hidden = attrs.get("hidden_size")
    if not isinstance(hidden, int) or hidden < 1:
        raise _unsupported(node, f"hidden_size={hidden!r} must be a positive integer")
    direction = attrs.get("direction", "forward")
    direction = direction.decode() if isinstance(direction, bytes) else direction
    if direction != "forward":
        raise _unsupported(node, f"direction={direction!r}: only forward recurrences are supported")
    if int(attrs.get("layout", 0)) != 0:
        raise _unsupported(node, "layout=1 (batch first) is not supported; ESP-DL runs layout 0")
    if node.op_type == "GRU" and int(attrs.get("linear_before_reset", 0)) != 1:
        raise _unsupported(node, "linear_before_reset must be 1 (ESP-DL implements PyTorch's GRU)")
    if node.op_type == "LSTM" and (len(node.inputs) > 7 and node.inputs[7] or int(attrs.get("input_forget", 0))):
        raise _unsupported(node, "peepholes and input_forget are not supported by ESP-DL")
    if any(k in attrs for k in ("activations", "activation_alpha", "activation_beta", "clip")):
        raise _unsupported(node, "custom activations and clipping are not supported by ESP-DL")
    if len(node.inputs) > 4 and node.inputs[4]:
        raise _unsupported(node, "sequence_lens is not supported by ESP-DL")
    for index, rows, what in ((1, None, "W"), (2, hidden, "R")):
        if len(node.inputs) <= index or node.inputs[index] not in model.initializers:
            raise _unsupported(node, f"{what} must be a constant")
        tensor = model.initializers[node.inputs[index]]
        if len(tensor.exponents) != 1:
            raise _unsupported(node, f"{what} must have one exponent (per-tensor quantization)")
        dims = tensor.data.shape
        if len(dims) != 3 or dims[0] != 1 or dims[1] != gates * hidden or (rows is not None and dims[2] != rows):
            raise _unsupported(node, f"{what} has dims {list(dims)}, expected [1, {gates * hidden}, ...]")
    if len(node.inputs) > 3 and node.inputs[3]:
        bias = model.initializers.get(node.inputs[3])
        if bias is None or bias.data.dtype != np.int16 or bias.data.size != 2 * gates * hidden:
            raise _unsupported(node, f"B must be a constant int16 tensor of {2 * gates * hidden} values")


def _output_info(node: Node, model: EspdlModel, index: int = 0) -> Any:
    name = node.outputs[index] if index < len(node.outputs) else ""
    for info in (*model.outputs, *model.value_info.values()):
        if info.name == name:
            return info
    return None


def _validate_gather(node: Node, model: EspdlModel) -> None:
    """ESP-DL's Gather reads its indices as a constant int64/int32 parameter and uses them as they
    are: a negative index is not wrapped around."""
    indices = model.initializers.get(node.inputs[1]) if len(node.inputs) > 1 else None
    if indices is None:
        raise _unsupported(node, "the indices must be a constant (ESP-DL loads them as a parameter)")
    if indices.dtype not in ("int64", "int32"):
        raise _unsupported(node, f"{indices.dtype} indices: ESP-DL's Gather reads only int64 or int32 indices")
    if not isinstance(node.attributes.get("axis", 0), int):
        raise _unsupported(node, "axis must be an integer")
    values = np.asarray(indices.data).reshape(-1)
    if values.size and int(values.min()) < 0:
        raise _unsupported(
            node,
            f"index {int(values.min())} is negative: ESP-DL's Gather uses it as is (it does not count from the end "
            "like PyTorch and ONNX), so it reads the previous row or memory before the tensor; esp-ppq 1.3.12 "
            "exports x[..., -1] this way. Take the last frames with a slice instead (x[..., -1:], then flatten)",
        )


def _validate_softmax(node: Node, model: EspdlModel) -> None:
    if not isinstance(node.attributes.get("axis", -1), int):
        raise _unsupported(node, "axis must be an integer")
    info = _output_info(node, model)
    if info is not None and info.dtype != "float32":
        raise _unsupported(
            node,
            f"esp-ppq 1.3.12 exported its output as {info.dtype} (it does so when an activation such as ReLU "
            "follows the Softmax), but ESP-DL's Softmax always writes float32 and would write past that tensor: "
            "drop the activation (a softmax is already in [0, 1]) or let a Conv/Linear read the Softmax",
        )


def _validate_layer_norm(node: Node, model: EspdlModel) -> None:
    if not isinstance(node.attributes.get("axis", -1), int):
        raise _unsupported(node, "axis must be an integer")
    if len([o for o in node.outputs if o]) > 1:
        raise _unsupported(node, "the Mean and InvStdDev outputs are not supported")
    x_info = model.value_info.get(node.inputs[0]) or next((i for i in model.inputs if i.name == node.inputs[0]), None)
    for index, what in ((1, "Scale"), (2, "B")):
        if len(node.inputs) <= index or not node.inputs[index]:
            continue
        tensor = model.initializers.get(node.inputs[index])
        if tensor is None:
            raise _unsupported(node, f"{what} must be a constant")
        if len(tensor.exponents) != 1:
            raise _unsupported(node, f"{what} must have one exponent (ESP-DL reads one per tensor)")
        if x_info is not None and tensor.dtype != x_info.dtype:
            raise _unsupported(
                node, f"{what} is {tensor.dtype} but the input is {x_info.dtype}: ESP-DL reads both as the input's type"
            )


def _validate_reduce(node: Node, model: EspdlModel) -> None:
    """ESP-DL's reduce modules read the axes as a constant parameter (input 1), never an attribute."""
    if "axes" in node.attributes:
        raise _unsupported(
            node,
            "the axes are an attribute (ONNX opset < 18): ESP-DL reads them only from the constant second input "
            "and would reduce every axis; export with opset 18 or later",
        )
    if len(node.inputs) > 1 and node.inputs[1]:
        axes = model.initializers.get(node.inputs[1])
        if axes is None:
            raise _unsupported(node, "the axes must be a constant (ESP-DL loads them as a parameter)")
        if axes.dtype not in ("int64", "int32"):
            raise _unsupported(node, f"{axes.dtype} axes: ESP-DL reads the axes as int64")


def _validate_quantize_linear(node: Node, model: EspdlModel) -> None:
    """ESP-DL runs QuantizeLinear/DequantizeLinear as TensorBase::assign between the input's and the output's
    dtypes: it converts float32 <-> int8/int16 and int8/int16 <-> int8/int16 (anything else leaves the output
    unwritten), at the tensors' exponents, ignoring the zero point: it must be 0."""
    infos = {i.name: i for i in (*model.inputs, *model.outputs, *model.value_info.values())}
    src = infos.get(node.inputs[0]) if node.inputs else None
    dst = infos.get(node.outputs[0]) if node.outputs else None
    ints = ("int8", "int16")
    if src is not None and dst is not None:
        pair = (src.dtype, dst.dtype)
        if not (pair[0] in ints and pair[1] in (*ints, "float32") or pair[0] == "float32" and pair[1] in ints):
            raise _unsupported(
                node, f"{pair[0]} -> {pair[1]}: ESP-DL converts only between float32, int8 and int16 (int to int)"
            )
    if len(node.inputs) > 2 and node.inputs[2]:
        zero = model.initializers.get(node.inputs[2])
        if zero is None:
            raise _unsupported(node, "the zero point must be a constant")
        if np.any(np.asarray(zero.data) != 0):
            raise _unsupported(node, "a non-zero zero point: ESP-DL's quantization is symmetric and ignores it")


def _validate_node(node: Node, model: EspdlModel) -> None:
    if node.op_type not in _KERNELS:
        raise _unsupported(
            node,
            "espdl_streaming's simulator has no implementation of this operator, so the model cannot be verified "
            "(this is a gap of the tool, not of the model): replace the operator with one the README lists, or open "
            "an issue with the model",
        )
    if node.op_type in ("GRU", "LSTM"):
        _validate_recurrent(node, model)
    if node.op_type in ("Conv", "Gemm", "MatMul"):
        _validate_dense(node, model)
    elif node.op_type in ("AveragePool", "MaxPool"):
        _validate_spatial(node)
        if node.op_type == "MaxPool" and len(node.outputs) > 1:
            raise _unsupported(node, "MaxPool indices output is not supported")
    elif node.op_type == "StreamingCache":
        window = node.attributes.get("window_size")
        if not isinstance(window, int) or window < 1:
            raise _unsupported(node, f"window_size={window!r} must be a positive integer")
        if not isinstance(node.attributes.get("frame_axis", 1), int):
            raise _unsupported(node, "frame_axis must be an integer")
    elif node.op_type == "LUT":
        _validate_lut_node(node, model)
    elif node.op_type == "Pad" and node.attributes.get("mode", "constant") not in ("constant", "edge", "reflect"):
        raise _unsupported(node, f"padding mode {node.attributes.get('mode')!r}")
    elif node.op_type == "Transpose" and not isinstance(node.attributes.get("perm"), list):
        raise _unsupported(node, "Transpose needs a perm attribute")
    elif node.op_type == "Gather":
        _validate_gather(node, model)
    elif node.op_type == "Softmax":
        _validate_softmax(node, model)
    elif node.op_type == "LayerNormalization":
        _validate_layer_norm(node, model)
    elif node.op_type in _REDUCE_OPS:
        _validate_reduce(node, model)
    elif node.op_type in ("QuantizeLinear", "DequantizeLinear"):
        _validate_quantize_linear(node, model)
    lut = node.attributes.get("lut")
    if lut is not None and lut not in model.initializers:
        raise _fail(node, f"look-up table {lut!r} is not in the model")


# --------------------------------------------------------------------------- simulator


class Simulator:
    """Run an :class:`EspdlModel` on integer tensors, ESP-DL style.

    ``cache_bytes`` is the RAM of all StreamingCache state: (window_size - 1) frames
    times the other dimensions of the cached tensor times the element size.
    """

    def __init__(
        self,
        model: EspdlModel,
        rounding: Rounding,
        *,
        any_frames: bool = False,
        reshape_frames: Mapping[str, tuple[int, int]] | None = None,
    ) -> None:
        """`any_frames`: accept inputs of any length on the frame axis (1), e.g. to run an
        offline model on every causal prefix of a stream. `reshape_frames`: Reshape node -> (its
        input's time axis, the index of the frames in its constant target shape), from the streaming
        plan, so a run on another length reshapes the run's frames (StreamingPlan.reshape_frames)."""
        if rounding not in ("half_even", "half_up"):
            raise ValueError(f"rounding must be 'half_even' or 'half_up', not {rounding!r}")
        self.model = model
        self.rounding: Rounding = rounding
        self.any_frames = any_frames
        self.reshape_frames = dict(reshape_frames or {})
        self._infos = {v.name: v for v in (*model.value_info.values(), *model.inputs, *model.outputs)}
        self._check_graph()
        self._states: dict[str, np.ndarray] = {}
        self._last_macs: int | None = None
        # Frames on axis 1 of the first input: as declared, and in the current run (any_frames).
        streams = [i for i in model.inputs if not is_state_input(i.name)]
        self._stream_input = streams[0] if streams else None
        first = self._stream_input.shape if self._stream_input is not None else ()
        self.declared_frames: int | None = int(first[1]) if len(first) >= 2 else None
        self.run_frames: int | None = None
        self.cache_bytes = sum(self._cache_bytes(n) for n in model.nodes if n.op_type == "StreamingCache")

    # ----- setup

    def _check_graph(self) -> None:
        known = {v.name for v in self.model.inputs} | set(self.model.initializers)
        for node in self.model.nodes:
            _validate_node(node, self.model)
            _validate_per_channel(node, self.model, self.rounding)
            for name in node.inputs:
                if name and name not in known:
                    raise _fail(node, f"input {name!r} is neither a graph input, a constant nor computed earlier")
            known.update(node.outputs)
        for out in self.model.outputs:
            if out.name not in known:
                raise EspdlFormatError(f"graph output {out.name!r} is never computed")

    def cache_bytes_by_node(self) -> dict[str, int]:
        """RAM of each StreamingCache node's state, by node name."""
        return {n.name: self._cache_bytes(n) for n in self.model.nodes if n.op_type == "StreamingCache"}

    def _cache_bytes(self, node: Node) -> int:
        info = self._infos.get(node.inputs[0]) if node.inputs else None
        if info is None:
            return 0
        axis = _axis(int(node.attributes.get("frame_axis", 1)), len(info.shape))
        others = int(np.prod([d for i, d in enumerate(info.shape) if i != axis], dtype=np.int64))
        return (int(node.attributes["window_size"]) - 1) * others * np.dtype(info.dtype).itemsize

    def _out_spec(self, name: str) -> _OutSpec:
        info = self._infos.get(name)
        if info is None:
            return _OutSpec(name, "float64", None)
        return _OutSpec(name, info.dtype, info.exponent)

    def _constant(self, name: str) -> Tensor:
        tensor = self.model.initializers.get(name)
        if tensor is None:
            raise EspdlFormatError(f"constant {name!r} is not in the model")
        return tensor

    def _constant_value(self, tensor: Tensor) -> _Value:
        """Quantized constants carry their exponent(s) (per channel: along the last axis);
        int64 constants (shapes, axes, slice bounds) and floats are plain values."""
        if tensor.dtype not in _INT_RANGES or not tensor.exponents:
            return _Value(tensor.data, None)
        exps = tensor.exponents
        return _Value(tensor.data, int(exps[0]) if len(exps) == 1 else np.asarray(exps, dtype=np.int64))

    def _state_for(self, node: Node, data: np.ndarray, axis: int, keep: int) -> np.ndarray:
        shape = list(data.shape)
        shape[axis] = keep
        state = self._states.get(node.name)
        if state is None or list(state.shape) != shape or state.dtype != data.dtype:
            state = np.zeros(shape, dtype=data.dtype)
        return state

    # ----- public API

    def reset(self) -> None:
        """Forget every StreamingCache state (the next run sees zero-filled caches)."""
        self._states.clear()

    def run(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        trace: bool = False,
        forced: Mapping[str, np.ndarray] | None = None,
        on_forced: Callable[[Node, str, np.ndarray, np.ndarray], None] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run the graph once on integer inputs in the exported layout.

        Returns the graph outputs, or with ``trace`` every variable computed in this run.
        ``forced``: reference values of intermediate tensors; each node's output that has one is
        shown to ``on_forced(node, name, computed, reference)`` and then replaced by it, so every
        node runs on the reference's inputs (a per-node comparison, no accumulated differences).
        """
        env = self._bind_inputs(inputs)
        macs = 0
        for node in self.model.nodes:
            args = [self._argument(env, name) for name in node.inputs]
            results = _KERNELS[node.op_type](_NodeRun(self, node, args))
            macs += _node_macs(node, args, results)
            if forced is not None:
                results = [self._forced(node, name, r, forced, on_forced) for name, r in zip(node.outputs, results)]
            env.update(zip(node.outputs, results))
        self._last_macs = macs
        names = list(env) if trace else [o.name for o in self.model.outputs]
        return {name: env[name].data for name in names}

    @staticmethod
    def _forced(
        node: Node,
        name: str,
        value: _Value,
        forced: Mapping[str, np.ndarray],
        on_forced: Callable[[Node, str, np.ndarray, np.ndarray], None] | None,
    ) -> _Value:
        want = forced.get(name)
        if want is None or tuple(np.shape(want)) != tuple(value.data.shape):
            return value
        if on_forced is not None:
            on_forced(node, name, value.data, np.asarray(want))
        if np.asarray(want).dtype.kind != value.data.dtype.kind:
            return value
        return _Value(np.asarray(want).astype(value.data.dtype), value.exponent)

    def macs(self) -> int:
        """Multiply-accumulates of one run: Conv (output elements x kernel volume x input
        channels per group) plus Gemm and MatMul (output elements x inner dimension).
        Element-wise ops, pooling and activations are not counted.  Shapes are the
        computed ones (esp-ppq leaves offline shapes in a streaming model's value info):
        the count of the last run, or of a dry run on zero inputs if there was none."""
        if self._last_macs is None:
            saved = dict(self._states)
            zeros = {i.name: np.zeros(i.shape, dtype=i.dtype) for i in self.model.inputs}
            self.run(zeros)
            self._states = saved
        assert self._last_macs is not None
        return self._last_macs

    # ----- internals of run

    def _bind_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, _Value]:
        env: dict[str, _Value] = {}
        for info in self.model.inputs:
            if info.name not in inputs:
                raise EspdlFormatError(f"missing input {info.name!r}")
            data = np.asarray(inputs[info.name])
            want = info.shape
            if want and self.any_frames and data.ndim == len(want) and data.ndim >= 2:
                want = (want[0], data.shape[1], *want[2:])
                if info is self._stream_input:
                    self.run_frames = int(data.shape[1])
            if want and tuple(data.shape) != want:
                raise EspdlFormatError(f"input {info.name!r} has shape {data.shape}, the model expects {info.shape}")
            if info.dtype in _INT_RANGES:
                low, high = _INT_RANGES[info.dtype]
                if data.size and (data.min() < low or data.max() > high or not np.issubdtype(data.dtype, np.integer)):
                    raise EspdlFormatError(f"input {info.name!r} must hold {info.dtype} integers")
                data = data.astype(info.dtype)
            env[info.name] = _Value(data, info.exponent)
        return env

    def _argument(self, env: dict[str, _Value], name: str) -> _Value | None:
        if not name:
            return None  # an omitted optional input
        if name in env:
            return env[name]
        tensor = self.model.initializers.get(name)
        return self._constant_value(tensor) if tensor is not None else None
