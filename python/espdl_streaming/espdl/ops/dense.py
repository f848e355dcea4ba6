"""Conv, Gemm, MatMul and the pools (the port: src/host/ops_dense.cpp)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..reader import Tensor
from .kernels import Kernel, NodeRun, Value, dequantize_values, fail

# --------------------------------------------------------------------------- Conv, Gemm, MatMul


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


def _spatial_attrs(run: NodeRun, rank: int) -> tuple[list[int], list[int], list[int], list[int]]:
    kernel = list(run.attr("kernel_shape"))
    strides = list(run.attr("strides", [1] * rank))
    dilations = list(run.attr("dilations", [1] * rank))
    pads = list(run.attr("pads", [0] * (2 * rank)))
    return kernel, strides, dilations, pads


def _activation(run: NodeRun, y: np.ndarray) -> np.ndarray:
    act = run.attr("activation", "Linear")
    return np.maximum(y, 0.0) if act == "Relu" else y


def _filter_real(tensor: Tensor, channel_axis: int) -> np.ndarray:
    exps = np.asarray(tensor.exponents, dtype=np.int64)
    if exps.size > 1:
        shape = [1] * tensor.data.ndim
        shape[channel_axis] = exps.size
        exps = exps.reshape(shape)
    return dequantize_values(tensor.data, exps)


def _bias_real(run: NodeRun, index: int, weight: Tensor) -> np.ndarray | float:
    """The bias as ESP-DL adds it.  Its Conv/Gemm kernels (S8, S16 and W8A16 alike) load the bias integers
    into the accumulator of sum(x_q * w_q) as they are, then shift the sum by mac_shift = output exponent -
    input exponent - weight exponent: the bias counts at the accumulator's exponent (input + the channel's
    weight exponent) whatever exponent the file gives it.  esp-ppq writes exactly that exponent, so this
    differs from dequantizing the bias only for a file that ESP-DL would misread."""
    if not run.has_input(index):
        return 0.0
    tensor = run.sim.constant(run.node.inputs[index])
    x_exp = run.input(0).exponent
    if not isinstance(x_exp, int | np.integer):  # a float input has no accumulator (ESP-DL does not run it)
        return dequantize_values(tensor.data, np.asarray(tensor.exponents, dtype=np.int64).reshape(-1))
    w_exps = np.asarray(weight.exponents, dtype=np.int64).reshape(-1)
    if w_exps.size > 1 and (tensor.data.ndim == 0 or tensor.data.shape[-1] != w_exps.size):
        raise fail(run.node, f"the bias has {tensor.data.shape} values for {w_exps.size} weight exponents")
    return dequantize_values(tensor.data, int(x_exp) + w_exps)


def _conv(run: NodeRun) -> list[Value]:
    """ESP-DL's conv2d (Conv1d runs as a 1-row Conv2d): the exact integer sum of x_q * w_q plus the bias,
    shifted by mac_shift with the chip's rounding, the fused ReLU, then saturated.  float64 holds these
    dyadic sums exactly, so one requantization of the real result gives the same integers.  W8A16 (int16
    activations, int8 weights: ESP-DL sign-extends the weights into its S16 kernels) is the same arithmetic."""
    x = run.real(0)
    weight = run.sim.constant(run.node.inputs[1])
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


def _gemm(run: NodeRun) -> list[Value]:
    x = run.real(0)
    weight = run.sim.constant(run.node.inputs[1])
    w = _filter_real(weight, -1)
    w = w.reshape(w.shape[-2], w.shape[-1])  # (C, N)
    y = x.reshape(-1, w.shape[0]) @ w
    y = y.reshape(*x.shape[:-1], w.shape[1]) + _bias_real(run, 2, weight)
    return [run.emit(_activation(run, y))]


def _matmul(run: NodeRun) -> list[Value]:
    a = run.real(0)
    name = run.node.inputs[1]
    if name in run.sim.model.initializers:
        b = _filter_real(run.sim.constant(name), -1)
    else:
        b = run.real(1)
    return [run.emit(_activation(run, np.matmul(a, b)))]


# --------------------------------------------------------------------------- pooling


def _pool(run: NodeRun, reduce: Callable[[np.ndarray, tuple[int, ...]], np.ndarray], fill: float) -> np.ndarray:
    x = run.real(0)
    rank = x.ndim - 2
    kernel, strides, dilations, pads = _spatial_attrs(run, rank)
    windows = _conv_windows(_pad_spatial(x, pads, fill), kernel, strides, dilations)
    return reduce(windows, tuple(range(rank + 1, 2 * rank + 1)))


def _average_pool(run: NodeRun) -> list[Value]:
    if int(run.attr("count_include_pad", 0)):
        return [run.emit(_pool(run, lambda w, axes: w.mean(axis=axes), 0.0))]
    x = run.input(0).real()
    ones = np.ones((1, *x.shape[1:-1], 1))
    sums = _pool(run, lambda w, axes: w.sum(axis=axes), 0.0)
    run_ones = NodeRun(run.sim, run.node, [Value(ones, None)])
    counts = _pool(run_ones, lambda w, axes: w.sum(axis=axes), 0.0)
    return [run.emit(sums / counts)]


def _max_pool(run: NodeRun) -> list[Value]:
    return [run.emit(_pool(run, lambda w, axes: w.max(axis=axes), -np.inf))]


def _global_average_pool(run: NodeRun) -> list[Value]:
    x = run.real(0)
    return [run.emit(x.mean(axis=tuple(range(1, x.ndim - 1)), keepdims=True))]


#: The ONNX op types this module implements (ops_dense.cpp's prepare functions).
OPS: dict[str, Kernel] = {
    "Conv": _conv,
    "Gemm": _gemm,
    "MatMul": _matmul,
    "AveragePool": _average_pool,
    "MaxPool": _max_pool,
    "GlobalAveragePool": _global_average_pool,
}
