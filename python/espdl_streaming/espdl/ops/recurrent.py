"""ESP-DL's quantized GRU and LSTM, step by step, as the chip computes them (the port: ops_recurrent.cpp).

Unlike the other kernels, ESP-DL's recurrent modules do not requantize a float64 result:
every time step mixes integer dot products, float32 look-up tables and float32 gate
arithmetic, and the hidden state is stored as an integer between steps.  This module
follows ESP-DL's integer path (``dl_module_gru.hpp`` / ``dl_module_lstm.hpp``) operation
by operation:

* ``W x_t`` and ``R h`` are integer dot products rounded to int16 at the node's
  ``gate_exponent``.  ESP32-P4's PIE kernels (lengths that are a multiple of 16 for int8,
  8 for int16, non-negative shift) round the exact sum half to even; every other case
  converts the sum to float32, scales it and rounds it with the chip's float rounding.
* Gate activations come from ESP-DL's sigmoid/tanh tables (float32, one entry per
  gate-exponent step over [-6.3, 6.3] and [-3.5, 3.5], mirrored for negative indices),
  computed with the host C library's ``expf``.
* The gate arithmetic is float32, one rounding per operation in source order (no fused
  multiply-add), and int16 additions wrap as they do in C.
* The hidden state (and the LSTM cell) is an integer at the Y_h (Y_c) exponent: the first
  step reads ``initial_h`` (``initial_c``) as raw integers, as ESP-DL's ``memcpy`` does.

Because the state between steps is exactly the integer Y_h / Y_c, running a sequence in
chunks and feeding each chunk's Y_h / Y_c back as the next chunk's initial state computes
the same integers as one run over the whole sequence.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import lru_cache
from typing import Any, Literal, cast

import numpy as np

from ...facts import Rounding
from .kernels import Kernel, NodeRun, Value, fail

SIGMOID_RANGE = 6.3  # ESP-DL's SigmoidLUT bounds
TANH_RANGE = 3.5  # ESP-DL's TanhLUT bounds

_f32 = np.float32


@lru_cache(maxsize=1)
def _expf() -> ctypes._CFuncPtr:  # type: ignore[name-defined]
    name = ctypes.util.find_library("m")
    lib = ctypes.CDLL(name) if name else ctypes.CDLL(None)
    fn = lib.expf
    fn.restype = ctypes.c_float
    fn.argtypes = [ctypes.c_float]
    return fn


def _scale(exponent: int) -> np.float32:
    """ESP-DL's DL_SCALE(exponent) as float32 (2**exponent)."""
    return cast("np.float32", _f32(1 << exponent) if exponent > 0 else _f32(1.0) / _f32(1 << -exponent))


def _rescale(exponent: int) -> np.float32:
    """ESP-DL's DL_RESCALE(exponent) as float32 (2**-exponent)."""
    return cast("np.float32", _f32(1.0) / _f32(1 << exponent) if exponent > 0 else _f32(1 << -exponent))


def _sigmoid_f32(x: np.float32) -> np.float32:
    # dl::math::sigmoid: 1.0 / (1.0 + expf(-x)) in double, returned as float.
    return cast("np.float32", _f32(1.0 / (1.0 + float(_expf()(float(-x))))))


class GateTable:
    """ESP-DL's SigmoidLUT / TanhLUT: entries 0..quant_max; negative indices mirror."""

    def __init__(self, kind: Literal["sigmoid", "tanh"], exponent: int) -> None:
        self.kind = kind
        bound = _f32(SIGMOID_RANGE if kind == "sigmoid" else TANH_RANGE)
        scale = _scale(exponent)
        low = int(_f32(-bound) / scale) - 1  # static_cast<int> truncates towards zero
        high = int(bound / scale) + 1
        if -low > high:
            high = -low
        self.quant_max = high
        self.quant_min = -high
        table = np.empty(high + 1, dtype=np.float32)
        for i in range(high + 1):
            x = _f32(i) * scale
            if kind == "sigmoid":
                table[i] = _sigmoid_f32(x)
            else:  # dl::math::tanh(x) = 2 * sigmoid(2 * x) - 1, in float32
                table[i] = _f32(2) * _sigmoid_f32(_f32(2) * x) - _f32(1)
        self.table = table

    def get(self, index: np.ndarray) -> np.ndarray:
        """Look up int indices (any shape); float32 results."""
        index = np.asarray(index, dtype=np.int64)
        clipped = np.minimum(np.abs(index), self.quant_max)
        # get(): index >= quant_max (or <= quant_min) reads the last entry.
        values = self.table[clipped]
        negative = index < 0
        if self.kind == "sigmoid":
            return cast("np.ndarray", np.where(negative, _f32(1) - values, values).astype(np.float32))
        return cast("np.ndarray", np.where(negative, -values, values).astype(np.float32))


@lru_cache(maxsize=64)
def gate_tables(exponent: int) -> tuple[GateTable, GateTable]:
    return GateTable("sigmoid", exponent), GateTable("tanh", exponent)


def round_f32(x: np.ndarray, rounding: Rounding) -> np.ndarray:
    """dl::tool::round on float32 values, as int64.

    half_even (ESP32-P4): the FPU's round-to-nearest-even conversion.  half_up:
    ``floorf(value + 0.5)`` -- the sum is a double that is converted back to float before
    floorf, which can round it up to the next integer."""
    x = np.asarray(x, dtype=np.float32)
    if rounding == "half_even":
        return cast("np.ndarray", np.rint(x).astype(np.int64))
    return np.floor((x.astype(np.float64) + 0.5).astype(np.float32)).astype(np.int64)


def _saturate(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    info = np.iinfo(dtype)
    return cast("np.ndarray", np.clip(values, info.min, info.max).astype(dtype))


def _wrap16(values: np.ndarray) -> np.ndarray:
    """Assigning an int to an int16_t in C: modulo 2**16."""
    return np.asarray(values, dtype=np.int64).astype(np.int16)


def mat_vec_dotprod(matrix: np.ndarray, vector: np.ndarray, shift: int, rounding: Rounding) -> np.ndarray:
    """ESP-DL's base::mat_vec_dotprod into int16: round(sum(row * vector) * 2**-shift)."""
    acc = matrix.astype(np.int64) @ vector.astype(np.int64)
    length = matrix.shape[-1]
    lanes = 16 if matrix.dtype == np.int8 and vector.dtype == np.int8 else 8
    if rounding == "half_even" and shift >= 0 and length % lanes == 0:
        # ESP32-P4 PIE kernel: exact integer sum, rounded half to even by the shift.
        if shift == 0:
            q = acc
        else:
            floor = acc >> shift
            rem = acc - (floor << shift)
            half = 1 << (shift - 1)
            q = floor + ((rem > half) | ((rem == half) & (floor & 1 == 1)))
        return _saturate(q, np.dtype(np.int16))
    # The C kernel: the sum becomes a float, times DL_RESCALE(shift) (a float32), rounded.
    scaled = acc.astype(np.float32) * _rescale(shift)
    return _saturate(round_f32(scaled, rounding), np.dtype(np.int16))


def gru(
    x: np.ndarray,
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray | None,
    h0: np.ndarray | None,
    *,
    hidden: int,
    x_exp: int,
    w_exp: int,
    r_exp: int,
    y_exp: int,
    h_exp: int,
    gate_exp: int,
    rounding: Rounding,
) -> tuple[np.ndarray, np.ndarray]:
    """One forward-direction GRU (linear_before_reset=1, batch 1, layout 0).

    x: [T, 1, input] ints; w: [1, 3H, input]; r: [1, 3H, H]; b: [1, 6H] int16 at gate_exp;
    h0: [1, 1, H] ints or None.  Returns Y [T, 1, 1, H] and Y_h [1, 1, H] in x's dtype."""
    dtype = x.dtype
    sig, tanh = gate_tables(gate_exp)
    w2, r2 = w.reshape(3 * hidden, -1), r.reshape(3 * hidden, hidden)
    wb = rb = None
    if b is not None:
        flat = b.reshape(-1).astype(np.int64)
        wb, rb = flat[: 3 * hidden], flat[3 * hidden : 6 * hidden]
    h = np.zeros(hidden, dtype=dtype) if h0 is None else h0.reshape(-1)[:hidden].astype(dtype)
    w_shift = gate_exp - (x_exp + w_exp)
    r_shift = gate_exp - (h_exp + r_exp)
    rescale = _rescale(y_exp)
    steps = x.shape[0]
    y = np.zeros((steps, 1, 1, hidden), dtype=dtype)
    for t in range(steps):
        xc = mat_vec_dotprod(w2, x[t].reshape(-1), w_shift, rounding)
        hc = mat_vec_dotprod(r2, h, r_shift, rounding)
        if wb is not None and rb is not None:
            xc = _wrap16(xc.astype(np.int64) + wb)
            hc = _wrap16(hc.astype(np.int64) + rb)
        gates = sig.get(xc[: 2 * hidden].astype(np.int64) + hc[: 2 * hidden].astype(np.int64))
        z, rg = gates[:hidden], gates[hidden:]
        n_in = xc[2 * hidden :].astype(np.float32) + rg * hc[2 * hidden :].astype(np.float32)
        n = tanh.get(round_f32(n_in, rounding))
        temp = (_f32(1) - z) * n * rescale
        temp = temp + z * h.astype(np.float32)
        h = _saturate(round_f32(temp, rounding), dtype)
        y[t, 0, 0] = h
    return y, h.reshape(1, 1, hidden)


def lstm(
    x: np.ndarray,
    w: np.ndarray,
    r: np.ndarray,
    b: np.ndarray | None,
    h0: np.ndarray | None,
    c0: np.ndarray | None,
    *,
    hidden: int,
    x_exp: int,
    w_exp: int,
    r_exp: int,
    y_exp: int,
    h_exp: int,
    c_exp: int,
    gate_exp: int,
    rounding: Rounding,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One forward-direction LSTM (gates i, o, f, c; batch 1, layout 0, no peepholes).

    The cell state is int16 at c_exp (ESP-DL requires c_exp == gate_exp).  Returns Y
    [T, 1, 1, H], Y_h [1, 1, H] (x's dtype) and Y_c [1, 1, H] (int16)."""
    dtype = x.dtype
    sig, tanh = gate_tables(gate_exp)
    w2, r2 = w.reshape(4 * hidden, -1), r.reshape(4 * hidden, hidden)
    bias = None
    if b is not None:
        flat = b.reshape(-1).astype(np.int64)
        bias = flat[: 4 * hidden] + flat[4 * hidden : 8 * hidden]
    h = np.zeros(hidden, dtype=dtype) if h0 is None else h0.reshape(-1)[:hidden].astype(dtype)
    c = np.zeros(hidden, dtype=np.int16) if c0 is None else c0.reshape(-1)[:hidden].astype(np.int16)
    w_shift = gate_exp - (x_exp + w_exp)
    r_shift = gate_exp - (h_exp + r_exp)
    rescale_y, rescale_c = _rescale(y_exp), _rescale(c_exp)
    steps = x.shape[0]
    y = np.zeros((steps, 1, 1, hidden), dtype=dtype)
    for t in range(steps):
        xc = mat_vec_dotprod(w2, x[t].reshape(-1), w_shift, rounding).astype(np.int64)
        hc = mat_vec_dotprod(r2, h, r_shift, rounding).astype(np.int64)
        # input_cache[i] += wb[i] + hidden_cache[i] + rb[i]: int arithmetic, stored as int16.
        pre = _wrap16(xc + (hc if bias is None else bias + hc)).astype(np.int64)
        i_g = sig.get(pre[:hidden])
        o_g = sig.get(pre[hidden : 2 * hidden])
        f_g = sig.get(pre[2 * hidden : 3 * hidden])
        g_g = tanh.get(pre[3 * hidden :])
        temp = f_g * c.astype(np.float32) + i_g * g_g * rescale_c
        c = _wrap16(round_f32(temp, rounding))
        temp = o_g * tanh.get(c.astype(np.int64)) * rescale_y
        h = _saturate(round_f32(temp, rounding), dtype)
        y[t, 0, 0] = h
    return y, h.reshape(1, 1, hidden), c.reshape(1, 1, hidden)


# --------------------------------------------------------------------------- the GRU and LSTM nodes


def _recurrent_args(run: NodeRun) -> dict[str, Any]:
    x = run.input(0)
    weight = run.sim.constant(run.node.inputs[1])
    rec = run.sim.constant(run.node.inputs[2])
    if x.exponent is None or not isinstance(x.exponent, int):
        raise fail(run.node, "needs a quantized input with one exponent")
    y_spec, h_spec = run.out(0), run.out(1)
    if y_spec.exponent is None or h_spec.exponent is None:
        raise fail(run.node, "its outputs Y and Y_h must be quantized")
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


def _optional_data(run: NodeRun, index: int) -> np.ndarray | None:
    return run.input(index).data if run.has_input(index) else None


def _gru(run: NodeRun) -> list[Value]:
    """ESP-DL's quantized GRU (gru above): Y and Y_h in the input's dtype."""
    args = _recurrent_args(run)
    weight = run.sim.constant(run.node.inputs[1]).data
    rec = run.sim.constant(run.node.inputs[2]).data
    bias = _optional_data(run, 3)
    x = run.input(0).data
    y, y_h = gru(x, weight, rec, bias, _optional_data(run, 5), **args)
    return [Value(y, args["y_exp"]), Value(y_h, args["h_exp"])]


def _lstm(run: NodeRun) -> list[Value]:
    """ESP-DL's quantized LSTM (lstm above): Y, Y_h in the input's dtype, Y_c int16."""
    args = _recurrent_args(run)
    c_spec = run.out(2)
    if c_spec.exponent is None:
        raise fail(run.node, "its output Y_c must be quantized")
    weight = run.sim.constant(run.node.inputs[1]).data
    rec = run.sim.constant(run.node.inputs[2]).data
    bias = _optional_data(run, 3)
    x = run.input(0).data
    y, y_h, y_c = lstm(
        x, weight, rec, bias, _optional_data(run, 5), _optional_data(run, 6), c_exp=int(c_spec.exponent), **args
    )
    return [Value(y, args["y_exp"]), Value(y_h, args["h_exp"]), Value(y_c, int(c_spec.exponent))]


#: The ONNX op types this module implements (ops_recurrent.cpp's prepare functions).
OPS: dict[str, Kernel] = {
    "GRU": _gru,
    "LSTM": _lstm,
}
