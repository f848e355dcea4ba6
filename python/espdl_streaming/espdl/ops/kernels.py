"""What an operator kernel sees (the port: src/host/host_kernels.hpp).

Every activation tensor is a power-of-two quantized integer tensor (real = q * 2**exponent).  A
kernel gets a :class:`NodeRun` (the node, its input :class:`Value` s, the rounding and the
simulator running it), dequantizes its inputs, computes in float64 (exact for the integer-valued
sums the kernels accumulate) and :meth:`NodeRun.emit` s the result: requantized at the output's
exponent with the chip's rounding and clamped to the output dtype.  The rounding helpers here are
host_kernels.hpp's round_scaled / quantize_value; the float32 ones (ESP-DL's tool::round of a
float) are shared by the norm and quant kernels.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, cast

import numpy as np

from ...errors import EspdlFormatError
from ...facts import Rounding
from ..reader import EspdlModel, Node, Tensor

#: The integer types the simulator quantizes to (host_graph.hpp).
INT_RANGES: dict[str, tuple[int, int]] = {
    "int8": (-128, 127),
    "int16": (-32768, 32767),
    "int32": (-(2**31), 2**31 - 1),
    "uint8": (0, 255),
    "uint16": (0, 65535),
}
FLOAT_DTYPES = frozenset({"float32", "float64", "float16"})

F32 = np.float32


def round_scaled(scaled: np.ndarray, rounding: Rounding) -> np.ndarray:
    """The chip's rounding of scaled values: rint (half to even) or floor(x) + (x - floor(x) >= 0.5)."""
    if rounding == "half_even":
        return cast("np.ndarray", np.rint(scaled))
    # floor(x + 0.5) without the float64 error of the addition itself.
    low = np.floor(scaled)
    return cast("np.ndarray", low + (scaled - low >= 0.5))


def quantize_values(x: np.ndarray, exponent: int, dtype: str, rounding: Rounding) -> np.ndarray:
    """q = clamp(round(x * 2**-exponent)) in ``dtype``; NaN -> 0, +-inf saturate."""
    if dtype not in INT_RANGES:
        raise ValueError(f"cannot quantize to {dtype}")
    low, high = INT_RANGES[dtype]
    scaled = np.ldexp(np.asarray(x, dtype=np.float64), -int(exponent))
    with np.errstate(invalid="ignore"):
        q = round_scaled(np.nan_to_num(scaled, nan=0.0, posinf=np.inf, neginf=-np.inf), rounding)
    return cast("np.ndarray", np.clip(q, low, high).astype(dtype))


def dequantize_values(q: np.ndarray, exponent: int | np.ndarray) -> np.ndarray:
    """x = q * 2**exponent in float64 (``exponent`` may broadcast per channel)."""
    return np.ldexp(np.asarray(q, dtype=np.float64), np.asarray(exponent, dtype=np.int64))


def round_f32(value: np.ndarray, rounding: Rounding) -> np.ndarray:
    """ESP-DL's tool::round of a float: fcvt.w.s with round-to-nearest-even on the P4 (half_even),
    else (int)floorf(value + 0.5) where value + 0.5 is a double narrowed to float by floorf."""
    v = np.asarray(value, dtype=F32)
    if rounding == "half_even":
        return np.rint(v).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.floor((v.astype(np.float64) + 0.5).astype(F32)).astype(np.float64)


def truncate(values: np.ndarray, dtype: str) -> np.ndarray:
    """Saturate rounded values to ``dtype``; NaN becomes the largest value."""
    low, high = INT_RANGES[dtype]
    return cast("np.ndarray", np.clip(np.nan_to_num(values, nan=float(high)), low, high).astype(dtype))


def positive_axis(axis: int, rank: int) -> int:
    """A possibly negative axis counted from the front (host_kernels.hpp normalize_axis, unchecked)."""
    return axis + rank if axis < 0 else axis


# --------------------------------------------------------------------------- values


@dataclass
class Value:
    """A tensor flowing through the graph: integer data with its exponent, or a float (host_kernels.hpp slot)."""

    data: np.ndarray
    exponent: int | np.ndarray | None  # None: plain float or int64 index tensor

    def real(self) -> np.ndarray:
        if self.exponent is None:
            return np.asarray(self.data, dtype=np.float64)
        return dequantize_values(self.data, self.exponent)


@dataclass(frozen=True)
class OutSpec:
    """The dtype and exponent the graph records for an output name."""

    name: str
    dtype: str
    exponent: int | None


class SimulatorView(Protocol):
    """What a kernel sees of the simulator running it (espdl/simulator.py's Simulator)."""

    model: EspdlModel
    rounding: Rounding
    any_frames: bool
    reshape_frames: dict[str, tuple[int, int]]
    declared_frames: int | None
    run_frames: int | None

    def out_spec(self, name: str) -> OutSpec:
        """The graph's dtype and exponent for a tensor name (float64 without one when it records none)."""

    def constant(self, name: str) -> Tensor:
        """The initializer of that name, or an EspdlFormatError."""

    def cache_state(self, node: Node, data: np.ndarray, axis: int, keep: int) -> np.ndarray:
        """A StreamingCache node's kept frames (zeros before the first run and after a reset)."""

    def keep_cache_state(self, node: Node, state: np.ndarray) -> None:
        """Keep a StreamingCache node's last frames for the next run."""


class NodeRun:
    """What a kernel sees of one node execution: inputs, output specs, rounding (host_kernels.hpp prep)."""

    def __init__(self, sim: SimulatorView, node: Node, inputs: list[Value | None]) -> None:
        self.sim = sim
        self.node = node
        self.inputs = inputs
        self.rounding = sim.rounding

    def attr(self, name: str, default: Any = None) -> Any:
        return self.node.attributes.get(name, default)

    def real(self, index: int) -> np.ndarray:
        return self.input(index).real()

    def input(self, index: int) -> Value:
        value = self.inputs[index] if index < len(self.inputs) else None
        if value is None:
            raise fail(self.node, f"input {index} is missing")
        return value

    def has_input(self, index: int) -> bool:
        return index < len(self.inputs) and self.inputs[index] is not None

    def ints(self, index: int) -> list[int]:
        """A constant integer input (shape, axes, starts...) as a Python list."""
        return [int(v) for v in np.asarray(self.input(index).data).reshape(-1)]

    def out(self, index: int = 0) -> OutSpec:
        return self.sim.out_spec(self.node.outputs[index])

    def emit(self, real: np.ndarray, index: int = 0) -> Value:
        """Requantize a float64 result at output ``index``'s exponent and dtype."""
        spec = self.out(index)
        if spec.exponent is None or spec.dtype in FLOAT_DTYPES:
            return Value(np.asarray(real, dtype=spec.dtype if spec.dtype in FLOAT_DTYPES else np.float64), None)
        return Value(quantize_values(real, spec.exponent, spec.dtype, self.rounding), spec.exponent)

    def passthrough(self, value: Value, data: np.ndarray) -> Value:
        """Data movement (reshape, slice...): keep integers when the exponent is unchanged."""
        spec = self.out()
        if same_exponent(value, spec) and spec.dtype == str(data.dtype):
            return Value(np.ascontiguousarray(data), value.exponent)
        return self.emit(Value(data, value.exponent).real())


#: A kernel: one node execution to its output values.
Kernel = Callable[[NodeRun], list[Value]]


def same_exponent(value: Value, spec: OutSpec) -> bool:
    return isinstance(value.exponent, int) and value.exponent == spec.exponent


def fail(node: Node, message: str) -> EspdlFormatError:
    """A graph the simulator cannot run (the engine's prep::fail)."""
    return EspdlFormatError(f"node {node.name!r} ({node.op_type}): {message}")
