"""Expose the state of every GRU/LSTM as model inputs and outputs, before quantization.

ESP-DL's GRU and LSTM start every ``Model::run()`` from ``initial_h`` / ``initial_c`` (zeros
when absent), so a chunked model forgets its history unless the state is fed back.  This
rewrite of the exported ONNX graph gives each recurrent node

* its initial state from a new graph input ``state_in_<k>`` (hidden state, and for an
  LSTM the cell state as the next k), replacing the zero tensor torch computes, and
* its last state as a new graph output ``state_out_<k>`` (Y_h, Y_c),

so the generated glue can copy ``state_out_<k>`` into ``state_in_<k>`` after every chunk
(and zero it on reset).  ESP-DL copies the initial state into the layer as raw integers,
which makes the loop-back exact: see espdl/recurrent.py.  Nodes that cannot stream are
refused here, before esp-ppq runs: plain RNNs (ESP-DL has none), reverse or bidirectional
layers (they read future frames), batch-first layouts, sequence lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import StreamingConversionError
from .espdl.state import STATE_INPUT_PREFIX, STATE_OUTPUT_PREFIX

_STATE_SLOTS = {"GRU": ((5, 1, "hidden"),), "LSTM": ((5, 1, "hidden"), (6, 2, "cell"))}


@dataclass(frozen=True)
class StateSpec:
    index: int
    node: str
    op_type: str
    kind: str  # "hidden" | "cell"
    shape: tuple[int, ...]  # [num_directions, batch, hidden_size]

    @property
    def input_name(self) -> str:
        return f"{STATE_INPUT_PREFIX}{self.index}"

    @property
    def output_name(self) -> str:
        return f"{STATE_OUTPUT_PREFIX}{self.index}"


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _refuse(model: str, node: Any, why: str, fix: str) -> StreamingConversionError:
    return StreamingConversionError(f"{model}: node '{node.name}' ({node.op_type}) {why}: {fix}")


def expose_recurrent_state(model: str, path: Path, batch: int) -> list[StateSpec]:
    """Rewrite the ONNX file at `path` in place; return the exposed states (empty: file untouched)."""
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load(str(path))
    graph = proto.graph
    taken = {v.name for v in (*graph.input, *graph.output)}
    states: list[StateSpec] = []
    for node in graph.node:
        if node.op_type == "RNN":
            raise _refuse(
                model, node, "is a plain RNN, which ESP-DL does not implement", "use a GRU or an LSTM instead"
            )
        if node.op_type not in _STATE_SLOTS:
            continue
        direction = _attr(node, "direction", "forward")
        if direction != "forward":
            raise _refuse(
                model,
                node,
                f"runs {direction} over time: its outputs depend on future frames (look-ahead)",
                "use a unidirectional (forward) layer: bidirectional=False",
            )
        if int(_attr(node, "layout", 0)) != 0:
            raise _refuse(model, node, "uses layout=1 (batch first)", "export with the default layout 0")
        if len(node.input) > 4 and node.input[4]:
            raise _refuse(
                model, node, "has sequence_lens, which ESP-DL does not support", "export without packed sequences"
            )
        hidden = int(_attr(node, "hidden_size", 0))
        if hidden < 1:
            raise _refuse(model, node, "has no hidden_size", "export the layer with a static hidden size")
        inputs = list(node.input) + [""] * (7 - len(node.input))
        outputs = list(node.output) + [""] * (3 - len(node.output))
        for in_slot, out_slot, kind in _STATE_SLOTS[node.op_type]:
            spec = StateSpec(len(states), node.name, node.op_type, kind, (1, batch, hidden))
            if spec.input_name in taken or spec.output_name in taken:
                raise _refuse(
                    model,
                    node,
                    f"cannot get its {kind} state exposed: the model already has a tensor named "
                    f"'{spec.input_name}' or '{spec.output_name}'",
                    "rename the model's inputs/outputs",
                )
            inputs[in_slot] = spec.input_name
            old = outputs[out_slot]
            outputs[out_slot] = spec.output_name
            if old:  # other readers of the last state (a head on h_n) now read the graph output
                for other in graph.node:
                    for i, name in enumerate(other.input):
                        if name == old:
                            other.input[i] = spec.output_name
                for out in graph.output:
                    if out.name == old:
                        out.name = spec.output_name
            graph.input.append(helper.make_tensor_value_info(spec.input_name, TensorProto.FLOAT, list(spec.shape)))
            if not any(o.name == spec.output_name for o in graph.output):
                graph.output.append(
                    helper.make_tensor_value_info(spec.output_name, TensorProto.FLOAT, list(spec.shape))
                )
            states.append(spec)
        while len(inputs) > 3 and not inputs[-1]:
            inputs.pop()
        while len(outputs) > 1 and not outputs[-1]:
            outputs.pop()
        del node.input[:]
        node.input.extend(inputs)
        del node.output[:]
        node.output.extend(outputs)
    if not states:
        return []
    # Drop what only computed the zero initial states torch exported (Shape/Expand/ConstantOfShape).
    live = {o.name for o in graph.output}
    kept = []
    for node in reversed(list(graph.node)):
        if any(o in live for o in node.output if o):
            kept.append(node)
            live.update(i for i in node.input if i)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    used = live | {o.name for o in graph.output}
    keep_init = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep_init)
    onnx.save(proto, str(path))
    return states
