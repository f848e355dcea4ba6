"""Derive the streaming conversion of a quantized graph: where caches go and how big.

esp-ppq 1.3.12's AutoStreamingPattern only handles Conv/Pool, splices caches onto
variables (so a residual Add reads the cached, longer tensor), ignores stride, and only
*logs* what it cannot do.  This module replaces it: it walks the graph once, tracks for
every variable whether it is a stream (``frames`` new frames per chunk along one axis),
a fixed window of frames (after a "last N frames" Slice), or a constant, and

* binds one StreamingCache to each consuming op that needs history (never to the
  variable, so other consumers keep reading the uncached tensor),
* sizes caches from kernel, dilation, stride and the op's own start padding,
* derives the cache in front of a tail Slice that keeps the last N frames,
* refuses, naming the node, anything that reads future frames or needs the whole
  sequence.

It runs as an esp-ppq ``streaming_custom_passes`` entry, after the exporter has switched the
graph to ESP-DL's layout (axes in op attributes are in exported coordinates) and before
StreamingCache insertion.  The graph objects are only duck-typed here; the esp-ppq
function that inserts a cache is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from fractions import Fraction
from math import ceil, lcm
from typing import Any

from .errors import StreamingConversionError
from .espdl.state import is_state_input

CONV_LIKE = {"Conv", "AveragePool", "MaxPool"}
ELEMENTWISE = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean",
    "Relu", "PRelu", "LeakyRelu", "Sigmoid", "Tanh", "HardSigmoid", "HardSwish", "Swish", "Silu",
    "Elu", "Selu", "Celu", "Gelu", "Mish", "Softplus", "Softsign", "Clip", "Abs", "Neg", "Exp", "Log",
    "Sqrt", "Reciprocal", "Erf", "Sin", "Cos", "Floor", "Ceil", "Round", "Sign", "Identity", "Cast",
    "QuantizeLinear", "DequantizeLinear", "RequantizeLinear", "BatchNormalization", "LUT",
    "Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Not", "And", "Or", "Xor", "Where",
}  # fmt: skip
AXIS_REDUCING = {
    "Softmax", "LogSoftmax", "LpNormalization", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum",
    "ReduceProd", "ReduceL1", "ReduceL2", "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare",
    "ArgMax", "ArgMin", "TopK", "Split", "LayerNormalization", "LayerNorm", "RMSNormalization",
    "CumSum", "Hardmax",
}  # fmt: skip
# Ops whose axis is an attribute with this default (their input 1, if any, is not a list of axes).
_AXIS_ATTRIBUTE_DEFAULT = {"Split": 0, "TopK": -1, "ArgMax": 0, "ArgMin": 0, "Hardmax": -1}
# Elementwise ops that broadcast their operands numpy-style.
BROADCASTING = {
    "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "Equal", "Greater", "Less",
    "GreaterOrEqual", "LessOrEqual", "And", "Or", "Xor", "Where", "Mod",
}  # fmt: skip
WHOLE_SEQUENCE = {"GlobalAveragePool", "GlobalMaxPool", "InstanceNormalization", "Attention"}
RECURRENT = {"GRU", "LSTM", "RNN"}


@dataclass(frozen=True)
class CacheEntry:
    """A StreamingCache in front of input 0 of `op`, fed by `var`."""

    var: str
    op: str
    op_type: str
    window: int  # ESP-DL window_size: window - 1 cached frames + the new frames
    frame_axis: int  # exported axis
    frames_in: int  # new frames per chunk at this point

    def cache_frames(self) -> int:
        return self.window - 1


@dataclass
class VarState:
    kind: str  # "stream" | "window" | "const" | "state" (a recurrent state, looped back by the glue)
    axis: int = -1  # exported time axis (stream/window)
    frames: int = 0  # new frames per chunk (stream) or frames held (window)
    stride: Fraction = Fraction(1)  # input frames per frame of this variable (< 1 after upsampling)
    receptive_field: Fraction = Fraction(1)  # input frames one frame of this variable depends on
    pending_pad: int = 0  # zero frames an explicit Pad put in front (left to the next layer's cache)
    zero_inserted: int = 1  # upsampling factor of an InsertZeros the next Conv must complete
    # Offline frame index minus streaming frame index (the stream counted from its first chunk):
    # negative after a layer without start padding (the offline model has fewer leading frames).
    lead: Fraction = Fraction(0)
    recurrent: bool = False  # depends on every earlier frame through a recurrent state


@dataclass
class StreamingPlan:
    entries: list[CacheEntry] = field(default_factory=list)
    outputs: dict[str, VarState] = field(default_factory=dict)
    pads_cleared: list[str] = field(default_factory=list)
    recurrent_nodes: list[str] = field(default_factory=list)
    # Reshape node -> (input's exported time axis, index of the frames in its target shape).
    reshape_frames: dict[str, tuple[int, int]] = field(default_factory=dict)

    def output_leads(self) -> dict[str, int | None]:
        """Per graph output: offline frame index - streaming frame index, or None without a time axis."""
        return {name: int(st.lead) if st.kind == "stream" else None for name, st in self.outputs.items()}

    def output_axes(self) -> dict[str, int | None]:
        """Per graph output: its exported time axis (1 unless the model moves time elsewhere, e.g. an
        NCW output after a per-frame Linear), or None without a time axis."""
        return {name: st.axis if st.kind == "stream" else None for name, st in self.outputs.items()}

    @property
    def receptive_field(self) -> int:
        """Input frames the convolutional part of an output frame reads (a recurrent state adds the
        whole history on top: see ``recurrent``)."""
        return ceil(max((s.receptive_field for s in self.outputs.values()), default=Fraction(1)))

    @property
    def total_stride(self) -> int:
        """Input frames per frame of the most downsampled output (the lcm over outputs): a window of
        the offline model lines up with the streaming frames only when it starts at a multiple of it."""
        stride = 1
        for s in self.outputs.values():
            stride = lcm(stride, s.stride.numerator)
        return stride

    @property
    def recurrent(self) -> bool:
        return any(s.recurrent for s in self.outputs.values())

    def as_json(self) -> list[dict[str, Any]]:
        return [
            {"variable": e.var, "op": e.op, "op_type": e.op_type, "window_size": e.window,
             "frame_axis": e.frame_axis, "cached_frames": e.cache_frames()}
            for e in self.entries
        ]  # fmt: skip


def _exported_shape(shape: Sequence[int], perm: Sequence[int] | None) -> list[int]:
    if not perm:
        return list(shape)
    return [int(shape[p]) for p in perm]


def _ints(value: Any) -> list[int]:
    if value is None:
        return []
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, (int, float)):
        return [int(value)]
    return [int(v) for v in value]


def _axes_from_attr_or_input(op: Any, rank: int, input_index: int) -> list[int] | None:
    axes = op.attributes.get("axes", op.attributes.get("axis"))
    if axes is None and len(op.inputs) > input_index and op.inputs[input_index].value is not None:
        axes = op.inputs[input_index].value
    if axes is None:
        return None
    return [(a + rank) % rank for a in _ints(axes)]


class _Planner:
    def __init__(self, model: str, chunk_frames: int, input_time_axis: int, get_perm: Callable[[str], Any]):
        self.model = model
        self.chunk = chunk_frames
        self.input_time_axis = input_time_axis
        self.get_perm = get_perm
        self.state: dict[str, VarState] = {}
        self.plan = StreamingPlan()

    # -- helpers -----------------------------------------------------------------------
    def refuse(self, op: Any, why: str, fix: str) -> StreamingConversionError:
        return StreamingConversionError(f"{self.model}: node '{op.name}' ({op.type}) {why}: {fix}")

    def perm(self, var: Any) -> list[int]:
        perm = self.get_perm(var.name)
        return list(perm) if perm else list(range(len(var.shape or [])))

    def exported_axis(self, var: Any, logical_axis: int) -> int:
        return self.perm(var).index(logical_axis)

    def logical_axis(self, var: Any, exported_axis: int) -> int:
        return self.perm(var)[exported_axis]

    def shape(self, var: Any) -> list[int]:
        """The exported shape of `var`.  esp-ppq records the output of a Transpose its layout pass inserts
        with its input's *logical* shape permuted, not the exported one: derive it from the input."""
        src_op = getattr(var, "source_op", None)
        if src_op is not None and src_op.type == "Transpose" and src_op.inputs and src_op.inputs[0].shape:
            shape = self.shape(src_op.inputs[0])
            perm = _ints(src_op.attributes.get("perm")) or list(reversed(range(len(shape))))
            return [shape[p] for p in perm]
        return _exported_shape(var.shape or [], self.get_perm(var.name))

    def var_state(self, var: Any) -> VarState:
        if var.name in self.state:
            return self.state[var.name]
        return VarState("const")

    # -- the walk ---------------------------------------------------------------------
    def run(self, graph: Any) -> StreamingPlan:
        inputs = [v for v in graph.inputs.values() if not is_state_input(v.name)]
        if len(inputs) != 1:
            raise StreamingConversionError(
                f"{self.model}: the model has {len(inputs)} inputs ({', '.join(v.name for v in inputs)}); "
                "streaming models take exactly one input stream"
            )
        var = inputs[0]
        axis = self.exported_axis(var, self.input_time_axis)
        if axis != 1:
            readers = list(getattr(var, "dest_ops", []) or [])
            where = f"node '{readers[0].name}' ({readers[0].type}) reads" if readers else "the model reads"
            raise StreamingConversionError(
                f"{self.model}: {where} the exported model input '{var.name}', which keeps time on axis {axis}, "
                "not on the frame axis 1 that a streaming input is written along (esp-ppq moves time to axis 1 "
                "only when the model starts with a Conv over time): start the model with a Conv1d/Conv2d over "
                "the frames, e.g. a kernel-1 Conv1d as a per-frame projection"
            )
        self.state[var.name] = VarState("stream", axis, self.chunk, Fraction(1), Fraction(1))
        for op in list(graph.topological_sort()):
            self.visit(op)
        for name in graph.outputs:
            self.plan.outputs[name] = self.state.get(name, VarState("const"))
        return self.plan

    def visit(self, op: Any) -> None:
        live = [(i, v, self.state[v.name]) for i, v in enumerate(op.inputs) if v.name in self.state]
        live = [(i, v, s) for i, v, s in live if s.kind != "const"]
        if not live:
            for out in op.outputs:
                self.state[out.name] = VarState("const")
            return
        streams = [(i, v, s) for i, v, s in live if s.kind == "stream"]
        if not streams:
            # Only fixed windows of frames reach this op: offline and streaming see the same data.
            src = live[0][2]
            for out in op.outputs:
                self.state[out.name] = replace(src, kind="window", axis=-1)
            return
        inserted = [v for _, v, s in streams if s.zero_inserted > 1]
        if inserted and op.type != "Conv":
            raise self.refuse(
                op,
                f"reads '{inserted[0].name}', the zero-inserted input of a ConvTranspose, but is not its Conv",
                "keep the ConvTranspose as one layer",
            )
        padded = [v for _, v, s in streams if s.pending_pad]
        if padded and op.type not in CONV_LIKE and op.type != "Transpose":
            raise self.refuse(
                op,
                f"reads '{padded[0].name}', the output of a Pad over time, but is not a Conv or pool",
                "pad directly in front of the Conv/AveragePool/MaxPool that needs the history",
            )
        handler = getattr(self, f"op_{op.type}", None)
        if handler is not None:
            handler(op, streams)
        elif op.type in CONV_LIKE:
            self.conv_like(op, streams)
        elif op.type in ELEMENTWISE:
            self.elementwise(op, live)
        elif op.type in AXIS_REDUCING:
            self.axis_reducing(op, streams)
        elif op.type in WHOLE_SEQUENCE:
            raise self.refuse(
                op,
                "combines every frame of the sequence, so no output can be computed from a chunk",
                "keep it out of the streaming model (run it on the outputs you collect), or slice the last "
                "frames first",
            )
        elif op.type in RECURRENT:
            raise self.refuse(
                op,
                "is a plain RNN, which ESP-DL does not implement",
                "use a GRU or an LSTM (their state is carried across chunks), or causal convolutions",
            )
        elif op.type in ("ConvTranspose", "Resize", "Upsample"):
            raise self.refuse(
                op,
                "upsamples over time, which is not supported for streaming yet",
                "use a causal Conv followed by a per-frame reshape, or run offline",
            )
        else:
            raise self.refuse(
                op,
                f"has no streaming rule for op type {op.type} on the time-varying input '{streams[0][1].name}'",
                "move it after the point where the frames are sliced, or open an issue with the model",
            )

    # -- op rules ------------------------------------------------------------------------
    def _set_out(self, op: Any, src_var: Any, src: VarState, **changes: Any) -> None:
        """The output keeps the input's exported time axis.

        Axes are tracked in exported coordinates only: esp-ppq's layout pass gives an op's output the
        layout of its (possibly explicitly transposed) input, and every layout change is an explicit
        Transpose op.  Variables do not share one logical coordinate system (a Transpose esp-ppq inserts
        starts a new one), so mapping through logical axes is wrong.  A rank change here is numpy
        broadcasting against a higher-rank constant, which aligns from the right."""
        rank_in = len(src_var.shape) if src_var.shape is not None else 0
        for out in op.outputs:
            rank_out = len(out.shape) if out.shape is not None else rank_in
            axis = src.axis + rank_out - rank_in
            if not 0 <= axis < rank_out:
                raise self.refuse(
                    op,
                    f"turns '{src_var.name}' (rank {rank_in}, time on exported axis {src.axis}) into "
                    f"'{out.name}' of rank {rank_out}, which drops the time axis",
                    "keep the time axis (reduce or index other axes only)",
                )
            self.state[out.name] = replace(src, axis=axis, pending_pad=0, zero_inserted=1, **changes)

    def elementwise(self, op: Any, live: list[tuple[int, Any, VarState]]) -> None:
        kinds = {s.kind for _, _, s in live}
        frames = {s.frames for _, _, s in live if s.kind == "stream"}
        if "window" in kinds or len(frames) > 1:
            detail = ", ".join(f"'{v.name}' ({s.kind}, {s.frames} frames)" for _, v, s in live)
            raise self.refuse(
                op,
                f"combines inputs that advance at different rates per chunk: {detail}",
                "make both branches keep the same number of frames (same total stride, no slicing on one branch only)",
            )
        if op.type in BROADCASTING:
            self._check_constant_layout(op, live)
        rank_out = len(op.outputs[0].shape) if op.outputs and op.outputs[0].shape is not None else None
        if rank_out is not None:
            aligned = {s.axis + rank_out - len(v.shape or []) for _, v, s in live if s.kind == "stream"}
            if len(aligned) > 1:
                detail = ", ".join(f"'{v.name}' (time on exported axis {s.axis})" for _, v, s in live)
                raise self.refuse(
                    op,
                    f"combines inputs whose time axes do not line up: {detail}",
                    "combine tensors that keep time on the same axis",
                )
        _, var, src = max(live, key=lambda t: t[2].receptive_field)
        self._set_out(op, var, src)

    def _check_constant_layout(self, op: Any, live: list[tuple[int, Any, VarState]]) -> None:
        """esp-ppq 1.3.12 keeps the constant operand of a broadcasting op in its torch layout while the
        other operand may be exported channels-last: the exported op then broadcasts against the wrong
        axes (the offline model is wrong as well)."""
        live_names = {v.name for _, v, _ in live}
        for _, var, _ in live:
            perm = self.perm(var)
            for const in op.inputs:
                if const.name in live_names or const.value is None or not hasattr(const.value, "shape"):
                    continue
                shape = [int(d) for d in const.value.shape]
                if len(shape) > len(perm):
                    continue  # esp-ppq restored the torch layout of the other operand
                full = [1] * (len(perm) - len(shape)) + shape
                if all(d == 1 or perm[i] == i for i, d in enumerate(full)):
                    continue
                raise self.refuse(
                    op,
                    f"combines '{var.name}', exported channels-last as {self.shape(var)}, with the constant "
                    f"'{const.name}' {shape}, which esp-ppq 1.3.12 keeps in the torch layout: ESP-DL would "
                    "broadcast it along the wrong axes (in the offline model too)",
                    "fold a per-channel scale/offset into the neighbouring Conv's weights and bias, or apply it "
                    "as a depthwise 1x1 Conv (groups=channels)",
                )

    def conv_like(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        index, var, src = streams[0]
        if index != 0 or len(streams) > 1:
            raise self.refuse(op, "takes its weights from a time-varying tensor", "use constant weights")
        if src.axis != 1:
            raise self.refuse(
                op,
                f"runs over a tensor whose time axis is exported axis {src.axis}, not the frame axis 1 "
                "ESP-DL convolves over",
                "keep time on dim 2 of the torch layout (NCW / NCHW with H = time)",
            )
        kernel = _ints(op.attributes.get("kernel_shape"))
        if not kernel and len(op.inputs) > 1 and op.inputs[1].shape:
            kernel = [int(d) for d in op.inputs[1].shape[2:]]
        if not kernel:
            raise self.refuse(op, "has no kernel_shape", "export the model with a static kernel size")
        spatial = len(kernel)
        dil = _ints(op.attributes.get("dilations")) or [1] * spatial
        strides = _ints(op.attributes.get("strides")) or [1] * spatial
        pads = _ints(op.attributes.get("pads")) or [0] * (2 * spatial)
        auto_pad = op.attributes.get("auto_pad", "NOTSET")
        if isinstance(auto_pad, bytes):
            auto_pad = auto_pad.decode()
        k, d, s = kernel[0], dil[0], strides[0]
        span = d * (k - 1) + 1
        if auto_pad in ("SAME_UPPER", "SAME_LOWER") and span > 1:
            future = (span - 1) // 2 if auto_pad == "SAME_LOWER" else span // 2
            raise self.refuse(
                op,
                f"uses auto_pad={auto_pad}: it reads {future} future frame(s)",
                "use causal padding: (kernel-1)*dilation frames on the left of the time axis only",
            )
        if op.type == "AveragePool" and pads[0] and not int(op.attributes.get("count_include_pad", 0)):
            raise self.refuse(
                op,
                f"averages the first frames over fewer than {k} frames (padding {pads[0]} with "
                "count_include_pad=0), while a streaming cache always holds a full window",
                "pad explicitly with zeros (F.pad(x, (k - 1, 0))) before an AvgPool1d without padding",
            )
        begin, end = pads[0] + src.pending_pad, pads[spatial]
        if src.zero_inserted > 1:
            # The Conv half of a ConvTranspose: the offline end padding only produces the output frames
            # that follow the last input frame; streaming produces them with the next chunk.
            up = src.zero_inserted
            if d != 1 or s != 1 or begin != end or begin > k - 1:
                raise self.refuse(
                    op,
                    f"is a ConvTranspose over time (kernel {k}, stride {up}) with dilation or asymmetric padding",
                    "use ConvTranspose1d(..., dilation=1, output_padding=0)",
                )
            end = 0
        if end > 0:
            raise self.refuse(
                op,
                f"pads {end} frame(s) at the end of the time axis: it reads {end} future frame(s) (look-ahead)",
                f"pad only the start, e.g. F.pad(x, ({begin + end}, 0)) before a Conv with "
                "padding=0 (causal), or delay the signal by that many frames and accept the latency",
            )
        if s > 1 and src.frames % s:
            total = (src.stride * s).numerator
            raise self.refuse(
                op,
                f"has stride {s} over time but receives {src.frames} new frame(s) per chunk (--chunk-frames "
                f"{self.chunk}), so its windows would drift between chunks",
                f"use a --chunk-frames that is a multiple of the total stride {total} up to this layer: "
                f"{', '.join(str(total * n) for n in range(1, 4))}, ...",
            )
        # Cached frames c: windows stay aligned with the offline model when c = begin (mod s) and
        # the chunk yields exactly frames/s outputs: c in [span - s, span - 1].
        # With a lead (offline index - streaming index) on the input, the offline windows start at
        # stream frames (i * s - begin - lead): the cache must be congruent to begin + lead.
        lead_in = src.lead
        if lead_in.denominator != 1:
            raise self.refuse(
                op,
                "receives frames that do not line up with the offline model's (an upsampling whose output "
                "does not divide by this layer's stride)",
                "make the strides of the layers divide each other",
            )
        aligned = begin + int(lead_in)
        low = span - s
        cached = low + ((aligned - low) % s) if s > 1 else span - 1
        cached = max(cached, 0)
        lead_out = Fraction(int(lead_in) + begin - cached, s)
        window = cached + 1
        if window > 1:
            self.plan.entries.append(CacheEntry(var.name, op.name, op.type, window, src.axis, src.frames))
        if any(pads[i] for i in (0, spatial)):
            new_pads = list(pads)
            new_pads[0] = 0
            new_pads[spatial] = 0
            op.attributes["pads"] = new_pads
            self.plan.pads_cleared.append(op.name)
        self._set_out(
            op,
            var,
            src,
            frames=src.frames // s,
            stride=src.stride * s,
            receptive_field=src.receptive_field + (span - 1) * src.stride,
            lead=lead_out,
        )

    def axis_reducing(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        _, var, src = streams[0]
        rank = len(var.shape or [])
        axes: list[int] | None
        if op.type in _AXIS_ATTRIBUTE_DEFAULT:  # input 1 (if any) holds sizes or K, not axes
            axes = [(int(op.attributes.get("axis", _AXIS_ATTRIBUTE_DEFAULT[op.type])) + rank) % rank]
        else:
            axes = _axes_from_attr_or_input(op, rank, 1)
        if op.type.startswith("Reduce") and not axes:  # no axes: all of them, unless noop_with_empty_axes
            axes = [] if int(op.attributes.get("noop_with_empty_axes", 0)) else list(range(rank))
        if op.type in ("Softmax", "LogSoftmax", "Hardmax", "LpNormalization") and axes is None:
            axes = [rank - 1]
        if op.type in ("LayerNormalization", "LayerNorm", "RMSNormalization"):
            start = _ints(op.attributes.get("axis", -1))[0]
            start = (start + rank) % rank
            axes = list(range(start, rank))
        if axes is None or src.axis in axes:
            raise self.refuse(
                op,
                f"works along the time axis (exported axis {src.axis}): each output depends on every frame "
                "of the sequence, so a chunk cannot reproduce the offline result",
                "apply it per frame (over channels), or keep it out of the streaming model",
            )
        if op.type in ("Softmax", "LayerNormalization") and len(op.outputs) == 1:
            # ESP-DL writes the result in the input's exported layout and shape: time keeps its axis.
            self.state[op.outputs[0].name] = replace(src, pending_pad=0, zero_inserted=1)
            return
        if (op.type.startswith("Reduce") or op.type in ("ArgMax", "ArgMin")) and not int(
            op.attributes.get("keepdims", 1)
        ):
            # The reduced axes (exported coordinates: esp-ppq rewrites them with the layout) disappear:
            # time moves down by the number of them in front of it.
            axis = src.axis - sum(1 for a in set(axes) if a < src.axis)
            for out in op.outputs:
                self.state[out.name] = replace(src, axis=axis, pending_pad=0, zero_inserted=1)
            return
        self._set_out(op, var, src)

    def op_Concat(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        _, var, src = streams[0]
        rank = len(var.shape or [])
        axis = (int(op.attributes.get("axis", 0)) + rank) % rank
        if axis == src.axis:
            raise self.refuse(op, "concatenates along the time axis", "concatenate along channels")
        live = [(i, v, self.state[v.name]) for i, v in enumerate(op.inputs) if v.name in self.state]
        self.elementwise(op, [t for t in live if t[2].kind != "const"])

    def op_Transpose(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        _, var, src = streams[0]
        perm = _ints(op.attributes.get("perm")) or list(reversed(range(len(var.shape or []))))
        for out in op.outputs:
            self.state[out.name] = replace(src, axis=perm.index(src.axis))

    def _recurrent(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        """GRU/LSTM over time: one output frame per input frame; the state at the end of a chunk is
        looped back as the next chunk's initial state, so no cache is needed."""
        index, var, src = streams[0]
        if index != 0 or len(streams) > 1:
            raise self.refuse(
                op, "takes its weights or initial state from the time-varying stream", "use constant weights"
            )
        direction = op.attributes.get("direction", "forward")
        direction = direction.decode() if isinstance(direction, bytes) else direction
        if direction != "forward":
            raise self.refuse(
                op,
                f"runs {direction} over time: its outputs depend on future frames (look-ahead)",
                "use a unidirectional (forward) layer: bidirectional=False",
            )
        seq_axis = 1 if int(op.attributes.get("layout", 0)) else 0
        if src.axis != seq_axis:
            raise self.refuse(
                op,
                f"runs over exported axis {seq_axis}, but time is on exported axis {src.axis} of '{var.name}'",
                "feed it the frames in time order (x.transpose(1, 2) of an NCW tensor, batch_first=True)",
            )
        y = op.outputs[0]
        try:
            axis = self.exported_axis(y, seq_axis)
        except ValueError:
            axis = seq_axis
        self.state[y.name] = replace(src, axis=axis, pending_pad=0, zero_inserted=1, recurrent=True)
        for out in op.outputs[1:]:
            self.state[out.name] = VarState("state")
        self.plan.recurrent_nodes.append(op.name)

    op_GRU = _recurrent
    op_LSTM = _recurrent

    def op_InsertZeros(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        """The first half of a ConvTranspose: add stride - 1 zero frames after every frame of the chunk."""
        _, var, src = streams[0]
        strides = _ints(op.attributes.get("stride")) or [1]
        padding = _ints(op.attributes.get("output_padding")) or [0]
        up = strides[0]
        if src.axis != 1 or padding[0] != 0:
            raise self.refuse(
                op, "upsamples with output_padding over time (or not along the frame axis)", "use output_padding=0"
            )
        # Offline, (T - 1) * up + 1 frames: the gaps between frames.  Per chunk, every frame's gap
        # (including the last one's) belongs to the chunk: frames * up frames.
        op.attributes["output_padding"] = [up - 1, *padding[1:]]
        for out in op.outputs:
            self.state[out.name] = replace(
                src, frames=src.frames * up, stride=src.stride / up, zero_inserted=up, lead=src.lead * up
            )

    def op_Pad(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        """A constant zero Pad at the start of time: the next layer's zero-filled cache replaces it."""
        index, var, src = streams[0]
        mode = op.attributes.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads_var = op.inputs[1] if len(op.inputs) > 1 else None
        fill = op.inputs[2].value if len(op.inputs) > 2 and op.inputs[2].name else None
        if index != 0 or pads_var is None or pads_var.value is None:
            raise self.refuse(op, "has non-constant pads", "pad with constant widths")
        pads = _ints(pads_var.value)
        rank = len(pads) // 2
        begin, end = pads[src.axis], pads[src.axis + rank]
        if end > 0:
            raise self.refuse(
                op,
                f"pads {end} frame(s) at the end of the time axis: the next layer reads {end} future frame(s) "
                "(look-ahead)",
                f"pad only the start, e.g. F.pad(x, ({begin + end}, 0))",
            )
        if begin and (mode != "constant" or (fill is not None and any(_ints(fill)))):
            raise self.refuse(
                op,
                f"pads the start of the time axis in '{mode}' mode or with a non-zero value",
                "pad with zeros (F.pad(x, (left, 0))): a streaming cache starts zero-filled",
            )
        if begin:
            pads[src.axis] = 0
            pads_var.value = pads_var.value.new_tensor(pads) if hasattr(pads_var.value, "new_tensor") else pads
        for out in op.outputs:
            self.state[out.name] = replace(src, pending_pad=src.pending_pad + begin)

    def op_Slice(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        index, var, src = streams[0]
        if index != 0:
            raise self.refuse(op, "takes its bounds from a time-varying tensor", "use constant bounds")
        rank = len(var.shape or [])
        consts = [op.inputs[i].value if len(op.inputs) > i else None for i in range(5)]
        if any(c is None for c in consts[1:3]):
            raise self.refuse(op, "has non-constant starts/ends", "slice with constant bounds")
        starts, ends = _ints(consts[1]), _ints(consts[2])
        axes = _ints(consts[3]) if consts[3] is not None else list(range(len(starts)))
        steps = _ints(consts[4]) if consts[4] is not None else [1] * len(starts)
        axes = [(a + rank) % rank for a in axes]
        if src.axis not in axes:
            self._set_out(op, var, src)
            return
        i = axes.index(src.axis)
        offline_frames = self.shape(var)[src.axis]
        start, end, step = starts[i], ends[i], steps[i]
        if step != 1 or start >= 0 or end < offline_frames:
            raise self.refuse(
                op,
                f"keeps frames [{start}:{end}:{step}] of the time axis, which depends on where the sequence starts",
                "keep only the last N frames (x[..., -N:]) at the end of the model, or slice channels instead",
            )
        keep = min(-start, offline_frames)
        window = max(1, keep - src.frames + 1)
        if window > 1:
            self.plan.entries.append(CacheEntry(var.name, op.name, op.type, window, src.axis, src.frames))
        for out in op.outputs:
            self.state[out.name] = replace(
                src, kind="window", frames=keep, receptive_field=src.receptive_field + (keep - 1) * src.stride
            )

    def _reshape_like(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        _, var, src = streams[0]
        in_shape = self.shape(var)
        out = op.outputs[0]
        out_shape = self.shape(out)
        before = 1
        for d in in_shape[: src.axis]:
            before *= d
        acc = 1
        for j, d in enumerate(out_shape):
            if acc == before and d == in_shape[src.axis]:
                after_in = 1
                for x in in_shape[src.axis + 1 :]:
                    after_in *= x
                after_out = 1
                for x in out_shape[j + 1 :]:
                    after_out *= x
                if after_in == after_out and op.type != "Reshape":
                    for o in op.outputs:
                        self.state[o.name] = replace(src, axis=j)
                    return
                if after_in == after_out and self._retarget_reshape(op, j, in_shape[src.axis], src.frames):
                    # The offline model's Reshape holds the declared frame count at index j: a run of it on
                    # another length (the verifier's prefixes) takes the frames of its input's axis.
                    self.plan.reshape_frames[op.name] = (src.axis, j)
                    for o in op.outputs:
                        self.state[o.name] = replace(src, axis=j)
                    return
                if after_in == after_out:
                    raise self.refuse(
                        op,
                        f"reshapes a time-varying tensor to a constant shape {out_shape} that holds the offline "
                        f"frame count {in_shape[src.axis]}",
                        "use Flatten/Squeeze/Unsqueeze (or view(x.shape[0], ...) with -1 on the time axis), or "
                        "slice the frames first",
                    )
                break
            acc *= d
        raise self.refuse(
            op,
            f"reshapes the time axis together with other axes ({in_shape} -> {out_shape}), so its result "
            "depends on the sequence length",
            "slice the frames the head needs first (x[:, :, -N:]), then flatten/reshape",
        )

    @staticmethod
    def _retarget_reshape(op: Any, axis: int, offline_frames: int, frames: int) -> bool:
        """Rewrite a Reshape's constant target shape from the offline frame count to the chunk's."""
        if len(op.inputs) < 2 or op.inputs[1].value is None:
            return False
        target = op.inputs[1].value
        values = _ints(target)
        if axis >= len(values) or values[axis] not in (offline_frames, -1):
            return False
        if values[axis] == offline_frames:
            values[axis] = frames
            # esp-ppq holds constants as torch tensors; keep the dtype.
            op.inputs[1].value = target.new_tensor(values) if hasattr(target, "new_tensor") else values
        return True

    op_Flatten = _reshape_like
    op_Reshape = _reshape_like

    def op_Squeeze(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        """Removes size-1 axes (exported coordinates: esp-ppq restores the input's layout first): time moves
        down by the number of them in front of it."""
        _, var, src = streams[0]
        shape = self.shape(var)
        axes = _axes_from_attr_or_input(op, len(shape), 1)
        if axes is None:  # no axes: every axis of size 1
            axes = [i for i, d in enumerate(shape) if d == 1]
        if src.axis in axes:
            raise self.refuse(
                op,
                f"squeezes the time axis (exported axis {src.axis}) of '{var.name}'",
                "squeeze other axes only (name them: x.squeeze(3))",
            )
        axis = src.axis - sum(1 for a in set(axes) if a < src.axis)
        for out in op.outputs:
            self.state[out.name] = replace(src, axis=axis, pending_pad=0, zero_inserted=1)

    def op_Unsqueeze(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        """Inserts size-1 axes (numbered in the output): time lands on the output axis that is the
        src.axis-th of those not inserted."""
        _, var, src = streams[0]
        rank_out = len(op.outputs[0].shape) if op.outputs[0].shape is not None else None
        axes = op.attributes.get("axes")
        if axes is None and len(op.inputs) > 1 and op.inputs[1].value is not None:
            axes = op.inputs[1].value
        if axes is None:
            raise self.refuse(op, "has non-constant axes", "unsqueeze constant axes")
        values = _ints(axes)
        rank_out = rank_out if rank_out is not None else len(self.shape(var)) + len(values)
        inserted = {(a + rank_out) % rank_out for a in values}
        kept = [i for i in range(rank_out) if i not in inserted]
        for out in op.outputs:
            self.state[out.name] = replace(src, axis=kept[src.axis], pending_pad=0, zero_inserted=1)

    def op_Gather(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        """Gather with constant indices. Off the time axis it passes the frames through (a scalar index
        removes its axis: a time axis after it moves down by one). On the time axis it keeps frames
        counted from the end, like the last-N Slice: x[..., -1] is the last frame (window 1, no cache);
        -N needs the last N frames (a tail cache when N exceeds the frames per chunk). The index is
        rewritten to count from the start of the streaming tensor, since ESP-DL's Gather does not wrap
        negative indices around."""
        index, var, src = streams[0]
        indices = op.inputs[1] if len(op.inputs) > 1 else None
        if index != 0 or indices is None or indices.value is None:
            raise self.refuse(op, "takes its indices from a computed tensor", "index with constants")
        rank = len(var.shape or [])
        axis = (int(op.attributes.get("axis", 0)) + rank) % rank
        values = _ints(indices.value)
        index_rank = len(indices.value.shape) if hasattr(indices.value, "shape") else len(values)
        if axis != src.axis:
            if any(v < 0 for v in values):  # ESP-DL does not wrap negative indices: count from the start
                size = self.shape(var)[axis]
                target = indices.value
                positive = [v + size if v < 0 else v for v in values]
                if hasattr(target, "new_tensor"):
                    indices.value = target.new_tensor(positive).reshape(target.shape)
                else:
                    indices.value = positive[0] if index_rank == 0 else positive
            new_axis = src.axis + index_rank - 1 if axis < src.axis else src.axis
            for out in op.outputs:
                self.state[out.name] = replace(src, axis=new_axis, pending_pad=0, zero_inserted=1)
            return
        # Only indices counted from the end (-1: the last frame) mean the same frames in every chunk. (A
        # non-negative index cannot be told apart from "the last of the offline frames": esp-ppq's inserted
        # variables do not record their real offline shapes.)
        if not values or any(v >= 0 for v in values):
            shown = values[0] if len(values) == 1 else values
            raise self.refuse(
                op,
                f"keeps frame(s) {shown} of the time axis counted from the start, which depends on where the "
                "sequence starts",
                "keep the last frame (x[..., -1]) or the last N frames (x[..., -N:]) at the end of the model, or "
                "index channels instead",
            )
        keep = -min(values)
        window = max(1, keep - src.frames + 1)
        if window > 1:
            self.plan.entries.append(CacheEntry(var.name, op.name, op.type, window, src.axis, src.frames))
        length = src.frames + window - 1  # frames of the streaming tensor this Gather reads
        target = indices.value
        rewritten = [length + v for v in values]
        if hasattr(target, "new_tensor"):
            indices.value = target.new_tensor(rewritten).reshape(target.shape)
        else:
            indices.value = rewritten[0] if index_rank == 0 else rewritten
        for out in op.outputs:
            self.state[out.name] = replace(
                src,
                kind="window",
                axis=-1 if index_rank == 0 else src.axis,
                frames=len(values),
                receptive_field=src.receptive_field + (keep - 1) * src.stride,
                pending_pad=0,
                zero_inserted=1,
            )

    def op_MatMul(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        index, var, src = streams[0]
        rank = len(var.shape or [])
        if len(streams) > 1 or (index == 0 and src.axis == rank - 1) or (index == 1 and src.axis == rank - 2):
            raise self.refuse(op, "contracts over the time axis", "apply it per frame (over channels)")
        other = op.inputs[1 - index] if len(op.inputs) > 1 else None
        if other is not None and other.shape is not None and len(other.shape) == 1 and src.axis < rank - 1:
            # A vector operand removes its own (contracted) axis, not a leading one: time keeps its place.
            for out in op.outputs:
                self.state[out.name] = replace(src, pending_pad=0, zero_inserted=1)
            return
        self._set_out(op, var, src)

    def op_Gemm(self, op: Any, streams: list[tuple[int, Any, VarState]]) -> None:
        index, var, src = streams[0]
        trans = int(op.attributes.get("transA" if index == 0 else "transB", 0))
        row_axis = 1 if trans else 0
        if index != 0 or src.axis != row_axis:
            raise self.refuse(op, "contracts over the time axis", "apply it per frame, or slice and flatten first")
        self._set_out(op, var, src)


def plan_streaming(
    graph: Any, *, model: str, chunk_frames: int, input_time_axis: int, get_perm: Callable[[str], Any]
) -> StreamingPlan:
    """Compute (and apply pad changes of) the streaming conversion of an esp-ppq graph."""
    return _Planner(model, chunk_frames, input_time_axis, get_perm).run(graph)


def apply_plan(
    graph: Any, plan: StreamingPlan, insert: Callable[[Any, str, dict[str, Any]], Any], get_perm: Callable[[str], Any]
) -> None:
    """Insert one StreamingCache per entry, bound to its consuming op."""
    for entry in plan.entries:
        created = insert(
            graph, entry.var, {"window_size": entry.window, "op_name": entry.op, "frame_axis": entry.frame_axis}
        )
        if created is None:
            continue
        # esp-ppq sizes the cache output from the offline shape (and the wrong axis for 2-D);
        # record the real streaming shape.
        out = created.outputs[0]
        perm = get_perm(out.name) or list(range(len(out.shape)))
        shape = list(out.shape)
        shape[perm[entry.frame_axis]] = entry.window - 1 + entry.frames_in
        out.shape = shape
