"""The streaming planner's time-axis bookkeeping on graphs shaped like esp-ppq's layout pass leaves them.

Graphs are built from small duck-typed stand-ins for esp-ppq's Variable/Operation (the planner only
reads names, shapes, values, attributes and links).  Shapes and perms are what esp-ppq 1.3.12 records:
``var.shape`` in the variable's own logical coordinates, ``perm`` mapping exported axis -> logical axis,
and a Transpose the layout pass inserts recorded with an identity perm and a *wrong* shape (its input's
logical shape permuted), exactly as printed from the real pass while debugging.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest

from espdl_streaming.errors import StreamingConversionError
from espdl_streaming.streaming_table import StreamingPlan, plan_streaming

NWC = [0, 2, 1]
NHWC = [0, 2, 3, 1]


@dataclass(eq=False)
class Var:
    name: str
    shape: list[int] | None
    value: Any = None
    source_op: Any = None
    dest_ops: list[Any] = field(default_factory=list)


@dataclass(eq=False)
class Op:
    name: str
    type: str
    inputs: list[Var]
    outputs: list[Var]
    attributes: dict[str, Any] = field(default_factory=dict)


class Graph:
    """Ops are added in topological order; `perms` plays esp-ppq's ExporterPatternInfo."""

    def __init__(self, input_shape: list[int], perm: list[int]) -> None:
        self.vars: dict[str, Var] = {}
        self.ops: list[Op] = []
        self.perms: dict[str, list[int]] = {}
        x = self.var("input", input_shape, perm)
        self.inputs = {"input": x}
        self.outputs: dict[str, Var] = {}

    def var(self, name: str, shape: list[int] | None, perm: list[int] | None = None) -> Var:
        v = Var(name, shape)
        self.vars[name] = v
        if perm is not None:
            self.perms[name] = perm
        return v

    def const(self, name: str, value: Any) -> Var:
        v = Var(name, list(np.shape(value)), np.asarray(value))
        self.vars[name] = v
        return v

    def op(self, type_: str, ins: list[Var], out: tuple[str, list[int], list[int]], **attrs: Any) -> Var:
        name, shape, perm = out
        y = self.var(name, shape, perm)
        op = Op(f"/{name}", type_, ins, [y], attrs)
        y.source_op = op
        for v in ins:
            v.dest_ops.append(op)
        self.ops.append(op)
        return y

    def topological_sort(self) -> list[Op]:
        return list(self.ops)

    def output(self, v: Var) -> None:
        self.outputs[v.name] = v

    def plan(self, chunk: int = 4, time_axis: int = 2) -> StreamingPlan:
        return plan_streaming(
            self, model="m", chunk_frames=chunk, input_time_axis=time_axis, get_perm=lambda n: self.perms.get(n)
        )


def _w(*shape: int) -> np.ndarray:
    return np.zeros(shape, dtype=np.float32)


def _conv(g: Graph, x: Var, name: str, k: int, shape: list[int], perm: list[int], **attrs: Any) -> Var:
    w = g.const(f"{name}.w", _w(shape[1], 1, k) if len(shape) == 3 else _w(shape[1], 1, k, 3))
    attrs.setdefault("kernel_shape", [k] if len(shape) == 3 else [k, 3])
    attrs.setdefault("pads", [0, 0] if len(shape) == 3 else [0, 1, 0, 1])
    return g.op("Conv", [x, w], (name, shape, perm), **attrs)


def test_pool_behind_inserted_transposes_then_conv() -> None:
    """Conv -> [Transpose] -> Pad -> [Transpose] -> MaxPool -> Conv, as esp-ppq lays out a causal pool."""
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv1", 2, [1, 8, 16], NWC, pads=[1, 0])
    t0 = g.op("Transpose", [a], ("t0", [1, 16, 8], [0, 1, 2]), perm=[0, 2, 1])  # esp-ppq's shape: wrong
    pads = g.const("pads", np.array([0, 0, 2, 0, 0, 0]))
    p = g.op("Pad", [t0, pads], ("pad", [1, 8, 18], [0, 1, 2]), mode="constant")
    t1 = g.op("Transpose", [p], ("t1", [1, 18, 8], [0, 1, 2]), perm=[0, 2, 1])
    m = g.op("MaxPool", [t1], ("pool", [1, 8, 16], NWC), kernel_shape=[3], pads=[0, 0], strides=[1])
    y = _conv(g, m, "conv2", 2, [1, 6, 16], NWC, pads=[1, 0])
    g.output(y)
    plan = g.plan()
    assert [(e.var, e.op_type, e.window, e.frame_axis) for e in plan.entries] == [
        ("input", "Conv", 2, 1),
        ("t1", "MaxPool", 3, 1),
        ("pool", "Conv", 2, 1),
    ]
    assert plan.outputs["conv2"].axis == 1
    assert plan.receptive_field == 5
    assert list(pads.value) == [0, 0, 0, 0, 0, 0]  # the zero-filled cache replaces the explicit pad


def test_strided_pool_in_the_middle_halves_the_frames() -> None:
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv1", 3, [1, 8, 16], NWC, pads=[2, 0])
    m = g.op("AveragePool", [a], ("pool", [1, 8, 8], NWC), kernel_shape=[2], pads=[1, 0], strides=[2],
             count_include_pad=1)  # fmt: skip
    y = _conv(g, m, "conv2", 2, [1, 6, 8], NWC, pads=[1, 0])
    g.output(y)
    plan = g.plan()
    assert [(e.op_type, e.window, e.frames_in) for e in plan.entries] == [
        ("Conv", 3, 4),
        ("AveragePool", 2, 4),
        ("Conv", 2, 2),
    ]
    assert plan.outputs["conv2"].frames == 2 and plan.outputs["conv2"].axis == 1


def test_average_pool_without_counting_its_padding_is_refused() -> None:
    g = Graph([1, 8, 4], NWC)
    g.op("AveragePool", [g.inputs["input"]], ("pool", [1, 8, 16], NWC), kernel_shape=[3], pads=[2, 0], strides=[1])
    with pytest.raises(StreamingConversionError, match="count_include_pad=0"):
        g.plan()


def test_shared_pad_feeds_two_convs_through_their_own_transposes() -> None:
    g = Graph([1, 8, 4], NWC)
    x = _conv(g, g.inputs["input"], "inp", 1, [1, 8, 16], NWC)
    t0 = g.op("Transpose", [x], ("t0", [1, 16, 8], [0, 1, 2]), perm=[0, 2, 1])
    p = g.op("Pad", [t0, g.const("pads", np.array([0, 0, 2, 0, 0, 0]))], ("pad", [1, 8, 18], [0, 1, 2]))
    t1 = g.op("Transpose", [p], ("t1", [1, 18, 8], [0, 1, 2]), perm=[0, 2, 1])
    t2 = g.op("Transpose", [p], ("t2", [1, 18, 8], [0, 1, 2]), perm=[0, 2, 1])
    f = _conv(g, t1, "filt", 2, [1, 8, 16], NWC, dilations=[2])
    gate = _conv(g, t2, "gate", 2, [1, 8, 16], NWC, dilations=[2])
    y = g.op("Mul", [f, gate], ("mul", [1, 8, 16], NWC))
    r = g.op("Add", [x, y], ("add", [1, 8, 16], NWC))
    g.output(r)
    plan = g.plan()
    assert [(e.var, e.op, e.window) for e in plan.entries] == [("t1", "/filt", 3), ("t2", "/gate", 3)]
    assert plan.outputs["add"].axis == 1 and plan.outputs["add"].lead == 0


def test_pad_read_by_an_activation_is_refused() -> None:
    g = Graph([1, 8, 4], NWC)
    x = _conv(g, g.inputs["input"], "inp", 1, [1, 8, 16], NWC)
    t0 = g.op("Transpose", [x], ("t0", [1, 16, 8], [0, 1, 2]), perm=[0, 2, 1])
    p = g.op("Pad", [t0, g.const("pads", np.array([0, 0, 2, 0, 0, 0]))], ("pad", [1, 8, 18], [0, 1, 2]))
    g.op("Sigmoid", [p], ("sig", [1, 8, 18], [0, 1, 2]))
    with pytest.raises(StreamingConversionError, match="'/sig' .*output of a Pad over time, but is not a Conv"):
        g.plan()


def _front_2d(g: Graph) -> Var:
    return _conv(g, g.inputs["input"], "conv1", 3, [1, 4, 16, 12], NHWC, pads=[2, 1, 0, 1])


def test_reduce_over_frequency_without_keepdims_moves_time_down() -> None:
    """ReduceMean over W (exported axis 2 of NHWC, as esp-ppq rewrites the axes) with keepdims=0."""
    g = Graph([1, 1, 4, 12], NHWC)
    a = _front_2d(g)
    m = g.op("ReduceMean", [a, g.const("axes", np.array([2]))], ("mean", [1, 4, 16], NWC), keepdims=0)
    y = _conv(g, m, "conv2", 2, [1, 6, 16], NWC, pads=[1, 0])
    g.output(y)
    plan = g.plan()
    assert [(e.var, e.window, e.frame_axis) for e in plan.entries] == [("input", 3, 1), ("mean", 2, 1)]
    assert plan.outputs["conv2"].axis == 1


@pytest.mark.parametrize(
    ("axes", "keepdims"), [([1], 0), ([1], 1), ([1, 2], 0), ([], 0)], ids=["time", "time_keep", "time_freq", "all"]
)
def test_reduce_over_time_is_refused(axes: list[int], keepdims: int) -> None:
    g = Graph([1, 1, 4, 12], NHWC)
    a = _front_2d(g)
    g.op("ReduceMean", [a, g.const("axes", np.array(axes, dtype=np.int64))], ("mean", [1, 4], [0, 1]),
         keepdims=keepdims)  # fmt: skip
    with pytest.raises(StreamingConversionError, match="'/mean' .*works along the time axis"):
        g.plan()


def test_squeeze_after_inserted_transpose_uses_the_real_exported_shape() -> None:
    """AvgPool over frequency, [Transpose to NCHW], Squeeze(3), [Transpose to NWC], Conv1d."""
    g = Graph([1, 1, 4, 12], NHWC)
    a = _front_2d(g)
    m = g.op("AveragePool", [a], ("pool", [1, 4, 16, 1], NHWC), kernel_shape=[1, 12], pads=[0, 0, 0, 0],
             strides=[1, 12])  # fmt: skip
    # esp-ppq records [1, 1, 4, 16] (the logical shape permuted); the data is [1, 4, 16, 1].
    t0 = g.op("Transpose", [m], ("t0", [1, 1, 4, 16], [0, 1, 2, 3]), perm=[0, 3, 1, 2])
    s = g.op("Squeeze", [t0, g.const("axes", np.array([3]))], ("sq", [1, 4, 16], [0, 1, 2]))
    t1 = g.op("Transpose", [s], ("t1", [1, 16, 4], [0, 1, 2]), perm=[0, 2, 1])
    y = _conv(g, t1, "head", 2, [1, 5, 16], NWC, pads=[1, 0])
    g.output(y)
    plan = g.plan()
    assert [(e.var, e.op, e.window) for e in plan.entries] == [("input", "/conv1", 3), ("t1", "/head", 2)]


def test_squeeze_of_the_time_axis_is_refused() -> None:
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv", 1, [1, 8, 16], NWC)
    g.op("Squeeze", [a, g.const("axes", np.array([1]))], ("sq", [1, 8], [0, 1]))
    with pytest.raises(StreamingConversionError, match="squeezes the time axis"):
        g.plan()


@pytest.mark.parametrize(("axes", "rank_out", "expected"), [([1], 4, 2), ([0, 1], 5, 3), ([-1], 4, 1), ([3], 4, 1)])
def test_unsqueeze_counts_the_inserted_axes_in_front_of_time(axes: list[int], rank_out: int, expected: int) -> None:
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv", 1, [1, 8, 16], NWC)
    shape = [1, 16, 8]  # exported: esp-ppq fuses away the Transposes around an Unsqueeze of a conv output
    for axis in sorted((x + rank_out) % rank_out for x in axes):
        shape.insert(axis, 1)
    u = g.op("Unsqueeze", [a, g.const("axes", np.array(axes))], ("u", shape, list(range(rank_out))))
    g.output(u)
    assert g.plan().outputs["u"].axis == expected


def test_broadcast_against_a_higher_rank_constant_aligns_from_the_right() -> None:
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv", 1, [1, 8, 16], NWC)
    t0 = g.op("Transpose", [a], ("t0", [1, 16, 8], [0, 1, 2]), perm=[0, 2, 1])  # esp-ppq restores NCW
    y = g.op("Add", [t0, g.const("c", _w(3, 1, 1, 1))], ("add", [3, 1, 8, 16], [0, 1, 2, 3]))
    g.output(y)
    assert g.plan().outputs["add"].axis == 3


@pytest.mark.parametrize("shape", [[8, 1], [1, 8, 1]])
def test_per_channel_constant_left_in_torch_layout_is_refused(shape: list[int]) -> None:
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv", 1, [1, 8, 16], NWC)
    g.op("Mul", [a, g.const("scale", _w(*shape))], ("mul", [1, 8, 16], NWC))
    with pytest.raises(StreamingConversionError, match="'scale' .*keeps in the torch layout"):
        g.plan()


@pytest.mark.parametrize("shape", [[], [1], [1, 1, 1]])
def test_scalar_constant_is_layout_free(shape: list[int]) -> None:
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv", 1, [1, 8, 16], NWC)
    y = g.op("Mul", [a, g.const("k", np.zeros(shape, dtype=np.float32))], ("mul", [1, 8, 16], NWC))
    g.output(y)
    assert g.plan().outputs["mul"].axis == 1


def test_split_sizes_are_not_read_as_axes() -> None:
    """Split over channels (exported axis 2) with a `split` sizes input [4, 4]."""
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv", 1, [1, 8, 16], NWC)
    y = g.op("Split", [a, g.const("split", np.array([4, 4]))], ("s0", [1, 4, 16], NWC), axis=2)
    g.output(y)
    assert g.plan().outputs["s0"].axis == 1
    g2 = Graph([1, 8, 4], NWC)
    a2 = _conv(g2, g2.inputs["input"], "conv", 1, [1, 8, 16], NWC)
    g2.op("Split", [a2, g2.const("split", np.array([8, 8]))], ("s0", [1, 8, 8], NWC), axis=1)
    with pytest.raises(StreamingConversionError, match="works along the time axis"):
        g2.plan()


@pytest.mark.parametrize(("w_shape", "out_shape", "expected"), [([8], [1, 16], 1), ([8, 5], [1, 16, 5], 1),
                                                                ([2, 8, 5], [2, 16, 5], 1)])  # fmt: skip
def test_matmul_per_frame(w_shape: list[int], out_shape: list[int], expected: int) -> None:
    """[1, T, C] @ w: a vector w removes the channel axis, a matrix replaces it, a batch of matrices broadcasts."""
    g = Graph([1, 8, 4], NWC)
    a = _conv(g, g.inputs["input"], "conv", 1, [1, 8, 16], NWC)
    t0 = g.op("Transpose", [a], ("t0", [1, 16, 8], [0, 1, 2]), perm=[0, 2, 1])
    t1 = g.op("Transpose", [t0], ("t1", [1, 16, 8], [0, 1, 2]), perm=[0, 2, 1])  # the user's x.transpose(1, 2)
    y = g.op("MatMul", [t1, g.const("w", _w(*w_shape))], ("mm", out_shape, list(range(len(out_shape)))))
    g.output(y)
    assert g.plan().outputs["mm"].axis == expected
