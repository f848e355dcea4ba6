"""Data movement (the port: src/host/ops_layout.cpp): Concat, Slice, Transpose, Reshape, Flatten,
Squeeze, Unsqueeze, Pad, InsertZeros and StreamingCache.

Integers are copied as they are when the output has the input's dtype and exponent
(:meth:`NodeRun.passthrough`), otherwise the value is requantized at the output's exponent.
``StreamingCache`` nodes keep ``window_size - 1`` frames of state on ``frame_axis`` across
:meth:`Simulator.run` calls, zero-filled initially and after :meth:`Simulator.reset`.
"""

from __future__ import annotations

import numpy as np

from .kernels import Kernel, NodeRun, SimulatorView, Value, fail, positive_axis, same_exponent


def _concat(run: NodeRun) -> list[Value]:
    axis = int(run.attr("axis", 0))
    parts = [run.input(i) for i in range(len(run.node.inputs))]
    spec = run.out()
    if all(same_exponent(p, spec) and str(p.data.dtype) == spec.dtype for p in parts):
        return [Value(np.concatenate([p.data for p in parts], axis=axis), spec.exponent)]
    return [run.emit(np.concatenate([p.real() for p in parts], axis=axis))]


def _slice(run: NodeRun) -> list[Value]:
    value = run.input(0)
    data = value.data
    starts, ends = run.ints(1), run.ints(2)
    axes = run.ints(3) if run.has_input(3) else list(range(len(starts)))
    steps = run.ints(4) if run.has_input(4) else [1] * len(starts)
    index = [slice(None)] * data.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps):
        at = positive_axis(axis, data.ndim)
        index[at] = slice(*_clamp_slice(start, end, step, data.shape[at]))
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


def _transpose(run: NodeRun) -> list[Value]:
    value = run.input(0)
    perm = run.attr("perm")
    return [run.passthrough(value, np.transpose(value.data, perm))]


def _reshape(run: NodeRun) -> list[Value]:
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
            raise fail(run.node, f"cannot reshape {value.data.shape} to {shape}") from exc
        data = other
    return [run.passthrough(value, data)]


def _reshape_other_length(sim: SimulatorView, data: np.ndarray, shape: list[int]) -> np.ndarray | None:
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


def _flatten(run: NodeRun) -> list[Value]:
    value = run.input(0)
    axis = positive_axis(int(run.attr("axis", 1)), value.data.ndim)
    outer = int(np.prod(value.data.shape[:axis], dtype=np.int64))
    return [run.passthrough(value, value.data.reshape(outer, -1))]


def _axes_of(run: NodeRun) -> list[int]:
    """The axes input, else the axes attribute (default [])."""
    if run.has_input(1):
        return run.ints(1)
    return list(run.attr("axes", []))


def _squeeze(run: NodeRun) -> list[Value]:
    value = run.input(0)
    axes = [positive_axis(a, value.data.ndim) for a in _axes_of(run)]
    data = np.squeeze(value.data, axis=tuple(axes)) if axes else np.squeeze(value.data)
    return [run.passthrough(value, data)]


def _unsqueeze(run: NodeRun) -> list[Value]:
    value = run.input(0)
    rank = value.data.ndim + len(_axes_of(run))
    data = value.data
    for axis in sorted(positive_axis(a, rank) for a in _axes_of(run)):
        data = np.expand_dims(data, axis)
    return [run.passthrough(value, data)]


def _streaming_cache(run: NodeRun) -> list[Value]:
    value = run.input(0)
    axis = positive_axis(int(run.attr("frame_axis", 1)), value.data.ndim)
    keep = int(run.attr("window_size")) - 1
    state = run.sim.cache_state(run.node, value.data, axis, keep)
    data = np.concatenate([state, value.data], axis=axis)
    run.sim.keep_cache_state(run.node, np.take(data, range(data.shape[axis] - keep, data.shape[axis]), axis=axis))
    return [run.passthrough(value, data)]


def _pad(run: NodeRun) -> list[Value]:
    """ONNX/ESP-DL Pad: pads = [begin_0 .. begin_n-1, end_0 .. end_n-1]; constant, edge or reflect."""
    value = run.input(0)
    pads = run.ints(1)
    rank = value.data.ndim
    if len(pads) != 2 * rank or any(p < 0 for p in pads):
        raise fail(run.node, f"pads {pads} do not fit a rank-{rank} tensor")
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


def _insert_zeros(run: NodeRun) -> list[Value]:
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
        raise fail(run.node, f"stride {strides} / output_padding {padding} do not fit a rank-{data.ndim} tensor")
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


#: The ONNX op types this module implements (ops_layout.cpp's prepare functions).
OPS: dict[str, Kernel] = {
    "Concat": _concat,
    "Slice": _slice,
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Flatten": _flatten,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "StreamingCache": _streaming_cache,
    "Pad": _pad,
    "InsertZeros": _insert_zeros,
}
