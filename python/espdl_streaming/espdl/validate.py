"""The validation rules: what the simulator refuses in a graph before it runs it.

A rule raises UnsupportedOpError for an operator variant ESP-DL would not run as the simulator
computes it (an attribute, a dtype or a constant it does not handle).  RULES holds the rule of each
op type; every node is also checked for an implementation and for its look-up table.  The port does
the same checks in each op's prepare function (src/host/ops_*.cpp, the file that implements the op:
tests/test_layout.py checks that every op with a rule here is checked there) and where it plans the
graph (the implementation and the table).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import Any

import numpy as np

from ..errors import UnsupportedOpError
from ..facts import Rounding
from .ops.elementwise import UNARY_MATH
from .ops.kernels import fail
from .ops.norm import REDUCE_OPS
from .reader import EspdlModel, Node


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
    """The declared type of a tensor, as Simulator.out_spec finds it (a graph output first, then an input)."""
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


def validate_per_channel(node: Node, model: EspdlModel, rounding: Rounding) -> None:
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
        if original not in UNARY_MATH:
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


def _validate_pool(node: Node, model: EspdlModel) -> None:
    _validate_spatial(node)
    if node.op_type == "MaxPool" and len(node.outputs) > 1:
        raise _unsupported(node, "MaxPool indices output is not supported")


def _validate_streaming_cache(node: Node, model: EspdlModel) -> None:
    window = node.attributes.get("window_size")
    if not isinstance(window, int) or window < 1:
        raise _unsupported(node, f"window_size={window!r} must be a positive integer")
    if not isinstance(node.attributes.get("frame_axis", 1), int):
        raise _unsupported(node, "frame_axis must be an integer")


def _validate_pad(node: Node, model: EspdlModel) -> None:
    if node.attributes.get("mode", "constant") not in ("constant", "edge", "reflect"):
        raise _unsupported(node, f"padding mode {node.attributes.get('mode')!r}")


def _validate_transpose(node: Node, model: EspdlModel) -> None:
    if not isinstance(node.attributes.get("perm"), list):
        raise _unsupported(node, "Transpose needs a perm attribute")


Rule = Callable[[Node, EspdlModel], None]

#: The rule of each op type that has one (an op type without a rule is accepted as it is).
RULES: dict[str, Rule] = {
    "Conv": _validate_dense,
    "Gemm": _validate_dense,
    "MatMul": _validate_dense,
    "AveragePool": _validate_pool,
    "MaxPool": _validate_pool,
    "LUT": _validate_lut_node,
    "Pad": _validate_pad,
    "Transpose": _validate_transpose,
    "StreamingCache": _validate_streaming_cache,
    "Gather": _validate_gather,
    "Softmax": _validate_softmax,
    "LayerNormalization": _validate_layer_norm,
    **dict.fromkeys(REDUCE_OPS, _validate_reduce),
    "QuantizeLinear": _validate_quantize_linear,
    "DequantizeLinear": _validate_quantize_linear,
    "GRU": _validate_recurrent,
    "LSTM": _validate_recurrent,
}


def validate_node(node: Node, model: EspdlModel, implemented: Collection[str]) -> None:
    """Refuse a node whose op type is not `implemented` (the simulator's kernels), then apply its rule and
    check that its look-up table (a `lut` attribute) is in the model."""
    if node.op_type not in implemented:
        raise _unsupported(
            node,
            "espdl_streaming's simulator has no implementation of this operator, so the model cannot be verified "
            "(this is a gap of the tool, not of the model): replace the operator with one the README lists, or open "
            "an issue with the model",
        )
    rule = RULES.get(node.op_type)
    if rule is not None:
        rule(node, model)
    lut = node.attributes.get("lut")
    if lut is not None and lut not in model.initializers:
        raise fail(node, f"look-up table {lut!r} is not in the model")
