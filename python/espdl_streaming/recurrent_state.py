"""Expose the state of every GRU/LSTM as model inputs and outputs, before quantization.

ESP-DL's GRU and LSTM start every ``Model::run()`` from ``initial_h`` / ``initial_c`` (zeros
when absent), so a chunked model forgets its history unless the state is fed back.  This
rewrite of the exported ONNX graph gives each recurrent node

* its initial state from a new graph input ``state_in_<k>`` (hidden state, and for an
  LSTM the cell state as the next k), replacing the zero tensor torch computes, and
* its last state as a new graph output ``state_out_<k>`` (Y_h, Y_c),

so the generated glue can copy ``state_out_<k>`` into ``state_in_<k>`` after every chunk.
The state a fresh stream starts from is what the user's model starts from: zeros when the
layer has no initial state, or the constant (a learned ``h0``) it was given, recorded in
``StateSpec.initial`` and restored by ``init()`` and ``reset()``; an initial state computed
from the input cannot be carried and is refused.  A last state the user's model returns (a
``(y, h_n)`` forward) stays a model output under its own name and is the very tensor the
glue loops back (its name recorded in the model's metadata).  ESP-DL copies the initial state
into the layer as raw integers, which makes the loop-back exact: see espdl/ops/recurrent.py.  Nodes that cannot
stream are refused here, before esp-ppq runs: plain RNNs (ESP-DL has none), reverse or bidirectional
layers (they read future frames), batch-first layouts, sequence lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import StreamingConversionError
from .espdl.ops.kernels import quantize_values
from .espdl.reader import EspdlModel
from .espdl.state import encode_initial_state
from .facts import (
    META_STATE_INITIAL,
    META_STATE_OUTPUT,
    RECURRENT_STATE_SLOTS,
    STATE_INPUT_PREFIX,
    STATE_OUTPUT_PREFIX,
    Rounding,
)

_STATE_SLOTS = RECURRENT_STATE_SLOTS


@dataclass(frozen=True)
class StateSpec:
    index: int
    node: str
    op_type: str
    kind: str  # "hidden" | "cell"
    shape: tuple[int, ...]  # [num_directions, batch, hidden_size]
    # The float state a fresh stream starts from (flattened, float32 values), None for zeros.
    initial: tuple[float, ...] | None = None
    # The user output that carries the last state (the model returns it), "" for state_out_<k>.
    user_output: str = ""

    @property
    def input_name(self) -> str:
        return f"{STATE_INPUT_PREFIX}{self.index}"

    @property
    def output_name(self) -> str:
        return self.user_output or f"{STATE_OUTPUT_PREFIX}{self.index}"

    def metadata(self) -> dict[str, str]:
        """What the model file records about this state (see espdl/state.py); the initial values
        are recorded by initial_state_metadata() once the exponents are known."""
        return {f"{META_STATE_OUTPUT}{self.index}": self.user_output} if self.user_output else {}


def initial_state_metadata(states: list[StateSpec], model: EspdlModel, rounding: Rounding) -> dict[str, str]:
    """The raw integers each learned initial state starts from, quantized as the layer reads them:
    ESP-DL copies initial_h / initial_c into the layer as integers at the exponent of its last-state
    output (Y_h, Y_c), so that exponent and dtype, with the chip's rounding."""
    outputs = {v.name: v for v in model.outputs}
    meta = {}
    for spec in states:
        if spec.initial is None:
            continue
        out = outputs.get(spec.output_name)
        if out is None or out.exponent is None or out.dtype not in ("int8", "int16"):
            raise StreamingConversionError(
                f"node '{spec.node}' ({spec.op_type}): its state output '{spec.output_name}' was not exported as a "
                "quantized tensor, so its learned initial state cannot be stored"
            )
        values = np.asarray(spec.initial, dtype=np.float32).reshape(spec.shape)
        raw = quantize_values(values, int(out.exponent), out.dtype, rounding)
        meta[f"{META_STATE_INITIAL}{spec.index}"] = encode_initial_state(raw)
    return meta


def _attr(node: Any, name: str, default: Any) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            value = onnx.helper.get_attribute_value(a)
            return value.decode() if isinstance(value, bytes) else value
    return default


def _refuse(model: str, node: Any, why: str, fix: str) -> StreamingConversionError:
    return StreamingConversionError(f"{model}: node '{node.name}' ({node.op_type}) {why}: {fix}")


def _initial_states(model: str, proto: Any, readers: dict[str, Any]) -> dict[str, np.ndarray | None]:
    """The value of each named initial-state tensor of the original graph: an initializer is read; a
    computed one is evaluated on two different inputs and must not depend on them (torch computes
    the default zero state from the input's shape).  All-zero values map to None."""
    import onnx
    from onnx import numpy_helper

    graph = proto.graph
    names = sorted(readers)
    inits = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    values: dict[str, np.ndarray | None] = {}
    computed = [n for n in names if n not in inits]
    if computed:
        import onnxruntime as ort

        probe = onnx.ModelProto()
        probe.CopyFrom(proto)
        del probe.graph.output[:]
        probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n) for n in computed)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        session = ort.InferenceSession(probe.SerializeToString(), options, providers=["CPUExecutionProvider"])
        feeds_a, feeds_b = {}, {}
        rng = np.random.default_rng(7)
        for arg in session.get_inputs():
            shape = [d if isinstance(d, int) and d > 0 else 1 for d in arg.shape]
            feeds_a[arg.name] = np.zeros(shape, np.float32)
            feeds_b[arg.name] = rng.standard_normal(shape).astype(np.float32)
        got_a = dict(zip(computed, session.run(computed, feeds_a)))
        got_b = dict(zip(computed, session.run(computed, feeds_b)))
        for n in computed:
            if not np.array_equal(got_a[n], got_b[n]):
                raise _refuse(
                    model,
                    readers[n],
                    f"starts from an initial state ('{n}') computed from the model input, so what a chunk starts from "
                    "is not known to the chunk before it and cannot be carried across chunks",
                    "start the layer from zeros or from a constant (a learned h0 parameter)",
                )
            inits[n] = got_a[n]
    for n in names:
        value = np.asarray(inits[n], dtype=np.float32)
        values[n] = None if not np.any(value) else value
    return values


def expose_recurrent_state(model: str, path: Path, batch: int) -> list[StateSpec]:
    """Rewrite the ONNX file at `path` in place; return the exposed states (empty: file untouched)."""
    import onnx
    from onnx import TensorProto, helper

    proto = onnx.load(str(path))
    graph = proto.graph
    initial_readers = {
        node.input[in_slot]: node
        for node in graph.node
        if node.op_type in _STATE_SLOTS
        for in_slot, _, _ in _STATE_SLOTS[node.op_type]
        if len(node.input) > in_slot and node.input[in_slot]
    }
    initial_values = _initial_states(model, proto, initial_readers) if initial_readers else {}
    user_outputs = {o.name for o in graph.output}
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
            shape = (1, batch, hidden)
            start = initial_values.get(inputs[in_slot]) if inputs[in_slot] else None
            if start is not None:
                if start.size not in (hidden, batch * hidden):
                    raise _refuse(
                        model,
                        node,
                        f"starts from a {kind} state of shape {list(start.shape)}, not [1, {batch}, {hidden}]",
                        "give the layer an initial state of shape [1, batch, hidden_size]",
                    )
                start = np.broadcast_to(start.reshape(-1), (batch, hidden)).reshape(shape)
            initial = None if start is None else tuple(float(v) for v in start.reshape(-1))
            old = outputs[out_slot]
            # A last state the user's model returns stays a user output under its own name, and is the
            # tensor the glue loops back (a copy would be folded away by esp-ppq's graph simplification).
            kept = old if old and old in user_outputs else ""
            spec = StateSpec(len(states), node.name, node.op_type, kind, shape, initial, kept)
            if spec.input_name in taken or (not kept and spec.output_name in taken):
                raise _refuse(
                    model,
                    node,
                    f"cannot get its {kind} state exposed: the model already has a tensor named "
                    f"'{spec.input_name}' or '{spec.output_name}'",
                    "rename the model's inputs/outputs",
                )
            inputs[in_slot] = spec.input_name
            outputs[out_slot] = spec.output_name
            if old and not kept:  # other readers of the last state (a head on h_n) now read the graph output
                for other in graph.node:
                    for i, name in enumerate(other.input):
                        if name == old:
                            other.input[i] = spec.output_name
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
