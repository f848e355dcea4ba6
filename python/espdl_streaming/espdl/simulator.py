"""Bit-exact host interpreter of quantized ESP-DL graphs (numpy only; the port: the C++ host engine in
src/host/, its op table host_ops.cpp).

Semantics follow ESP-DL / esp-ppq: every activation tensor is a power-of-two quantized integer
tensor (real = q * 2**exponent).  Each node dequantizes its inputs, computes in float64 (exact for
the integer-valued sums the kernels accumulate), requantizes at the output's exponent with the
chip's rounding and clamps to the output dtype (espdl/ops/kernels.py).  The kernels are in
espdl/ops/, one module per kind of operator as the port's src/host/ops_*.cpp; what the simulator
refuses before it runs a graph is in espdl/validate.py.

Tensors are in the exported layout (NWC / NHWC: time on axis 1).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import cast

import numpy as np

from ..errors import EspdlFormatError
from ..facts import Rounding
from .ops import dense, elementwise, layout, norm, quant, recurrent
from .ops.kernels import INT_RANGES, Kernel, NodeRun, OutSpec, Value, fail, positive_axis
from .reader import EspdlModel, Node, Tensor
from .state import StateLoop, is_state_input
from .validate import validate_node, validate_per_channel

__all__ = ["KERNELS", "LoopedSimulator", "Simulator"]

#: Every op type the simulator runs, with its kernel: the ops modules' tables (host_ops.cpp's k_ops).
KERNELS: dict[str, Kernel] = {
    **dense.OPS,
    **elementwise.OPS,
    **layout.OPS,
    **norm.OPS,
    **quant.OPS,
    **recurrent.OPS,
}


def _node_macs(node: Node, args: list[Value | None], results: list[Value]) -> int:
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
            validate_node(node, self.model, KERNELS)
            validate_per_channel(node, self.model, self.rounding)
            for name in node.inputs:
                if name and name not in known:
                    raise fail(node, f"input {name!r} is neither a graph input, a constant nor computed earlier")
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
        axis = positive_axis(int(node.attributes.get("frame_axis", 1)), len(info.shape))
        others = int(np.prod([d for i, d in enumerate(info.shape) if i != axis], dtype=np.int64))
        return (int(node.attributes["window_size"]) - 1) * others * np.dtype(info.dtype).itemsize

    def out_spec(self, name: str) -> OutSpec:
        """The graph's dtype and exponent for a tensor name (float64 without one when it records none)."""
        info = self._infos.get(name)
        if info is None:
            return OutSpec(name, "float64", None)
        return OutSpec(name, info.dtype, info.exponent)

    def constant(self, name: str) -> Tensor:
        """The initializer of that name, or an EspdlFormatError."""
        tensor = self.model.initializers.get(name)
        if tensor is None:
            raise EspdlFormatError(f"constant {name!r} is not in the model")
        return tensor

    def _constant_value(self, tensor: Tensor) -> Value:
        """Quantized constants carry their exponent(s) (per channel: along the last axis);
        int64 constants (shapes, axes, slice bounds) and floats are plain values."""
        if tensor.dtype not in INT_RANGES or not tensor.exponents:
            return Value(tensor.data, None)
        exps = tensor.exponents
        return Value(tensor.data, int(exps[0]) if len(exps) == 1 else np.asarray(exps, dtype=np.int64))

    def cache_state(self, node: Node, data: np.ndarray, axis: int, keep: int) -> np.ndarray:
        """A StreamingCache node's kept frames (zeros before the first run and after a reset)."""
        shape = list(data.shape)
        shape[axis] = keep
        state = self._states.get(node.name)
        if state is None or list(state.shape) != shape or state.dtype != data.dtype:
            state = np.zeros(shape, dtype=data.dtype)
        return state

    def keep_cache_state(self, node: Node, state: np.ndarray) -> None:
        """Keep a StreamingCache node's last frames for the next run."""
        self._states[node.name] = state

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
            results = KERNELS[node.op_type](NodeRun(self, node, args))
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
        value: Value,
        forced: Mapping[str, np.ndarray],
        on_forced: Callable[[Node, str, np.ndarray, np.ndarray], None] | None,
    ) -> Value:
        want = forced.get(name)
        if want is None or tuple(np.shape(want)) != tuple(value.data.shape):
            return value
        if on_forced is not None:
            on_forced(node, name, value.data, np.asarray(want))
        if np.asarray(want).dtype.kind != value.data.dtype.kind:
            return value
        return Value(np.asarray(want).astype(value.data.dtype), value.exponent)

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

    def _bind_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, Value]:
        env: dict[str, Value] = {}
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
            if info.dtype in INT_RANGES:
                low, high = INT_RANGES[info.dtype]
                if data.size and (data.min() < low or data.max() > high or not np.issubdtype(data.dtype, np.integer)):
                    raise EspdlFormatError(f"input {info.name!r} must hold {info.dtype} integers")
                data = data.astype(info.dtype)
            env[info.name] = Value(data, info.exponent)
        return env

    def _argument(self, env: dict[str, Value], name: str) -> Value | None:
        if not name:
            return None  # an omitted optional input
        if name in env:
            return env[name]
        tensor = self.model.initializers.get(name)
        return self._constant_value(tensor) if tensor is not None else None


class LoopedSimulator:
    """A Simulator that carries the recurrent state from run to run (espdl/state.py's StateLoop); reset()
    zeroes the caches and restores the initial state."""

    def __init__(self, model: EspdlModel, rounding: Rounding, source: str = "<model>") -> None:
        self.sim = Simulator(model, rounding)
        self.loop = StateLoop.of(model, source)
        self.state = self.loop.initial()

    def reset(self) -> None:
        self.sim.reset()
        self.state = self.loop.initial()

    def run(self, inputs: Mapping[str, np.ndarray], *, trace: bool = False) -> dict[str, np.ndarray]:
        out = self.sim.run({**inputs, **self.state}, trace=trace)
        self.state = self.loop.next(out)
        return out
