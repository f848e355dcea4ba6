"""Read an ESP-DL ``.espdl`` model file into plain Python objects.

The file is a 12-byte (``EDL1``) or 16-byte (``EDL2``) header followed by a FlatBuffer
whose schema mirrors ONNX (``Model`` -> ``Graph`` -> nodes, initializers, value infos,
embedded test values).  This module parses the FlatBuffer directly with :mod:`struct`:
it imports neither esp-ppq (which imports torch) nor the generated bindings, and it
checks every offset, so a truncated or corrupt file raises :class:`EspdlFormatError`
naming the file and the problem instead of an ``IndexError``.

Weight tensors are stored in the SIMD-friendly layouts esp-ppq writes (``(N/16)WC16``
and friends, see :func:`unpack_filter`); :class:`Tensor.data` holds them decoded into
the plain row-major layout of their ``dims``.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

import numpy as np

from ..errors import EspdlFormatError
from ..facts import OUTPUT_TIME_AXIS_PREFIX

__all__ = [
    "DTYPE_CODES",
    "EspdlModel",
    "Node",
    "Tensor",
    "ValueInfo",
    "load_espdl",
    "read_espdl",
    "unpack_filter",
]

# TensorDataType enum of the schema -> numpy dtype name.
DTYPE_CODES: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}

_LAYOUT_PREFIX = "layout ==> "
_MAX_RANK = 16
_MAX_ELEMENTS = 1 << 31


# --------------------------------------------------------------------------- model


@dataclass(frozen=True)
class ValueInfo:
    """A graph variable (input, output or intermediate) and its quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    exponent: int | None


@dataclass
class Tensor:
    """A constant tensor: an initializer, a LUT table or an embedded test value.

    ``data`` has shape ``dims`` in plain row-major order (the lane packing of weight
    layouts such as ``(N/16)WC16`` undone).  ``layout`` is the layout esp-ppq
    recorded (``"UNK"`` for plain tensors) and ``exponents`` the power-of-two
    exponents, one per tensor or one per output channel.
    """

    name: str
    dims: tuple[int, ...]
    dtype: str
    exponents: tuple[int, ...]
    layout: str
    data: np.ndarray


@dataclass
class Node:
    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    attributes: dict[str, Any]


@dataclass
class EspdlModel:
    producer: str
    inputs: list[ValueInfo]
    outputs: list[ValueInfo]
    nodes: list[Node]
    initializers: dict[str, Tensor]
    value_info: dict[str, ValueInfo]
    test_inputs: dict[str, np.ndarray]
    test_outputs: dict[str, np.ndarray]
    metadata: dict[str, str]
    ir_version: int = 0
    model_version: int = 0
    graph_name: str = ""
    test_exponents: dict[str, int] = field(default_factory=dict)

    def output_time_axis(self, name: str) -> int | None:
        """The exported time axis of a per-frame output as the build recorded it, or None."""
        text = self.metadata.get(OUTPUT_TIME_AXIS_PREFIX + name)
        return int(text) if text is not None and text.isdigit() else None

    def exponent_of(self, name: str) -> int | None:
        """Exponent of a graph variable (input, output or intermediate), if recorded."""
        for info in (*self.inputs, *self.outputs):
            if info.name == name:
                return info.exponent
        vi = self.value_info.get(name)
        return vi.exponent if vi is not None else None


# --------------------------------------------------------------------------- flatbuffer access


class _Corrupt(Exception):
    """Internal: raised by the accessors, turned into EspdlFormatError with the file name."""


_T = TypeVar("_T")


class _Buffer:
    """Bounds-checked little-endian reads from the FlatBuffer bytes."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)

    def _check(self, pos: int, length: int, what: str) -> None:
        if pos < 0 or length < 0 or pos + length > self.size:
            raise _Corrupt(f"{what} at offset {pos} (+{length} bytes) is outside the {self.size}-byte buffer")

    def unpack(self, fmt: str, pos: int, what: str) -> Any:
        size = struct.calcsize(fmt)
        self._check(pos, size, what)
        return struct.unpack_from(fmt, self.data, pos)[0]

    def slice(self, pos: int, length: int, what: str) -> bytes:
        self._check(pos, length, what)
        return self.data[pos : pos + length]


class _Table:
    """One FlatBuffer table: fields addressed by their vtable slot (4, 6, 8, ...)."""

    def __init__(self, buf: _Buffer, pos: int, kind: str) -> None:
        self.buf = buf
        self.pos = pos
        self.kind = kind
        vtable = pos - buf.unpack("<i", pos, f"{kind} table")
        self.vtable = vtable
        self.vtable_size = buf.unpack("<H", vtable, f"{kind} vtable")
        if self.vtable_size < 4 or self.vtable_size % 2:
            raise _Corrupt(f"{kind} vtable has invalid size {self.vtable_size}")
        buf._check(vtable, self.vtable_size, f"{kind} vtable")

    def _field(self, slot: int) -> int:
        if slot >= self.vtable_size:
            return 0
        offset: int = self.buf.unpack("<H", self.vtable + slot, f"{self.kind} vtable entry")
        return self.pos + offset if offset else 0

    def scalar(self, slot: int, fmt: str, default: Any = 0) -> Any:
        pos = self._field(slot)
        return self.buf.unpack("<" + fmt, pos, f"{self.kind} field {slot}") if pos else default

    def _indirect(self, pos: int, what: str) -> int:
        return cast("int", pos + self.buf.unpack("<I", pos, what))

    def table(self, slot: int, kind: str) -> _Table | None:
        pos = self._field(slot)
        return _Table(self.buf, self._indirect(pos, kind), kind) if pos else None

    def string(self, slot: int, default: str = "") -> str:
        pos = self._field(slot)
        if not pos:
            return default
        return _read_string(self.buf, self._indirect(pos, f"{self.kind} string"), self.kind)

    def _vector(self, slot: int, elem_size: int, what: str) -> tuple[int, int]:
        """(start of elements, count), (0, 0) when absent; checks the whole extent."""
        pos = self._field(slot)
        if not pos:
            return 0, 0
        start = self._indirect(pos, f"{self.kind}.{what} vector")
        count: int = self.buf.unpack("<I", start, f"{self.kind}.{what} length")
        self.buf._check(start + 4, count * elem_size, f"{self.kind}.{what} elements")
        return start + 4, count

    def numbers(self, slot: int, dtype: str, what: str) -> np.ndarray:
        np_dtype = np.dtype(dtype).newbyteorder("<")
        start, count = self._vector(slot, np_dtype.itemsize, what)
        if not count:
            return np.zeros(0, dtype=np_dtype.newbyteorder("="))
        raw = self.buf.slice(start, count * np_dtype.itemsize, what)
        return np.frombuffer(raw, dtype=np_dtype).astype(np_dtype.newbyteorder("="))

    def raw_bytes(self, slot: int, elem_size: int, what: str) -> bytes:
        start, count = self._vector(slot, elem_size, what)
        return self.buf.slice(start, count * elem_size, what) if count else b""

    def tables(self, slot: int, kind: str) -> list[_Table]:
        start, count = self._vector(slot, 4, kind)
        return [_Table(self.buf, self._indirect(start + 4 * i, kind), kind) for i in range(count)]

    def strings(self, slot: int, what: str) -> list[str]:
        start, count = self._vector(slot, 4, what)
        return [_read_string(self.buf, self._indirect(start + 4 * i, what), what) for i in range(count)]

    def struct_at(self, slot: int, fmt: str) -> Any:
        """A struct stored inline in the table (AttributeI, AttributeF)."""
        return self.scalar(slot, fmt, None)


def _read_string(buf: _Buffer, pos: int, what: str) -> str:
    length = buf.unpack("<I", pos, f"{what} string length")
    raw = buf.slice(pos + 4, length, f"{what} string")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Corrupt(f"{what} string at offset {pos} is not UTF-8") from exc


# Vtable slots of the schema (see esp_ppq/parser/espdl/FlatBuffers/Dl/*.py).
class _Slot:
    MODEL_IR_VERSION, MODEL_PRODUCER, MODEL_VERSION, MODEL_GRAPH, MODEL_METADATA = 4, 8, 14, 18, 20
    GRAPH_NODES, GRAPH_NAME, GRAPH_INITIALIZERS = 4, 6, 8
    GRAPH_INPUTS, GRAPH_OUTPUTS, GRAPH_VALUE_INFO = 12, 14, 16
    GRAPH_TEST_INPUTS, GRAPH_TEST_OUTPUTS = 20, 22
    NODE_INPUTS, NODE_OUTPUTS, NODE_NAME, NODE_OP_TYPE, NODE_ATTRIBUTES = 4, 6, 8, 10, 14
    TENSOR_DIMS, TENSOR_DTYPE, TENSOR_FLOATS, TENSOR_INT32S, TENSOR_INT64S = 4, 6, 8, 10, 14
    TENSOR_NAME, TENSOR_DOC, TENSOR_RAW, TENSOR_LOCATION, TENSOR_DOUBLES = 16, 18, 20, 24, 26
    TENSOR_UINT64S, TENSOR_EXPONENTS = 28, 30
    VALUE_NAME, VALUE_TYPE, VALUE_EXPONENTS = 4, 6, 10
    TYPE_VALUE_TYPE, TYPE_VALUE = 4, 6
    TT_ELEM_TYPE, TT_SHAPE = 4, 6
    SHAPE_DIMS = 4
    DIM_VALUE = 4
    DIMVAL_TYPE, DIMVAL_VALUE = 4, 6
    ENTRY_KEY, ENTRY_VALUE = 4, 6
    ATTR_NAME, ATTR_TYPE, ATTR_F, ATTR_I, ATTR_S, ATTR_T = 4, 10, 12, 14, 16, 18
    ATTR_FLOATS, ATTR_INTS, ATTR_STRINGS = 24, 26, 28


_ATTR_FLOAT, _ATTR_INT, _ATTR_STRING, _ATTR_TENSOR = 1, 2, 3, 4
_ATTR_GRAPH, _ATTR_FLOATS, _ATTR_INTS, _ATTR_STRINGS = 5, 6, 7, 8
_TENSOR_TYPE_UNION = 1
_DIM_VALUE = 1


# --------------------------------------------------------------------------- decoding


def _dtype_name(code: int, where: str) -> str:
    if code not in DTYPE_CODES:
        raise _Corrupt(f"{where} has unknown data type {code}")
    return DTYPE_CODES[code]


def _checked_dims(values: np.ndarray, where: str) -> tuple[int, ...]:
    dims = tuple(int(v) for v in values)
    if len(dims) > _MAX_RANK or any(d < 0 for d in dims):
        raise _Corrupt(f"{where} has invalid dims {dims}")
    total = 1
    for d in dims:
        total *= d
        if total > _MAX_ELEMENTS:
            raise _Corrupt(f"{where} has implausibly large dims {dims}")
    return dims


def _decode_value_info(table: _Table) -> ValueInfo:
    name = table.string(_Slot.VALUE_NAME)
    where = f"value info {name!r}"
    type_info = table.table(_Slot.VALUE_TYPE, "TypeInfo")
    if type_info is None:
        raise _Corrupt(f"{where} has no type")
    if type_info.scalar(_Slot.TYPE_VALUE_TYPE, "B") != _TENSOR_TYPE_UNION:
        raise _Corrupt(f"{where} is not a tensor type")
    tensor_type = type_info.table(_Slot.TYPE_VALUE, "TensorTypeAndShape")
    if tensor_type is None:
        raise _Corrupt(f"{where} has no tensor type")
    dtype = _dtype_name(tensor_type.scalar(_Slot.TT_ELEM_TYPE, "i"), where)
    shape: list[int] = []
    shape_table = tensor_type.table(_Slot.TT_SHAPE, "TensorShape")
    for dim in shape_table.tables(_Slot.SHAPE_DIMS, "Dimension") if shape_table else []:
        value = dim.table(_Slot.DIM_VALUE, "DimensionValue")
        if value is None or value.scalar(_Slot.DIMVAL_TYPE, "b") != _DIM_VALUE:
            raise _Corrupt(f"{where} has a symbolic or missing dimension")
        shape.append(value.scalar(_Slot.DIMVAL_VALUE, "q"))
    exponents = table.numbers(_Slot.VALUE_EXPONENTS, "int64", "exponents")
    exponent = int(exponents[0]) if exponents.size else None
    return ValueInfo(name, _checked_dims(np.array(shape, dtype=np.int64), where), dtype, exponent)


def _tensor_payload(table: _Table, dtype: str, count: int, where: str) -> np.ndarray:
    """The flat element array of a tensor, from raw_data or a typed field."""
    if table.scalar(_Slot.TENSOR_LOCATION, "i") != 0:
        raise _Corrupt(f"{where} uses external data, which .espdl files cannot hold")
    np_dtype = np.dtype(dtype).newbyteorder("<")
    raw = table.raw_bytes(_Slot.TENSOR_RAW, 16, "raw_data")
    if raw:
        need = count * np_dtype.itemsize
        if len(raw) < need:
            raise _Corrupt(f"{where} raw data holds {len(raw)} bytes, dims need {need}")
        flat = np.frombuffer(raw[:need], dtype=np_dtype)
    else:
        flat = _typed_payload(table, dtype)
        if flat.size != count:
            raise _Corrupt(f"{where} holds {flat.size} values, dims need {count}")
    return flat.astype(np.dtype(dtype))


def _typed_payload(table: _Table, dtype: str) -> np.ndarray:
    if dtype in ("float32", "float16"):
        return table.numbers(_Slot.TENSOR_FLOATS, "float32", "float_data")
    if dtype == "float64":
        return table.numbers(_Slot.TENSOR_DOUBLES, "float64", "double_data")
    if dtype == "int64":
        return table.numbers(_Slot.TENSOR_INT64S, "int64", "int64_data")
    if dtype in ("uint32", "uint64"):
        return table.numbers(_Slot.TENSOR_UINT64S, "uint64", "uint64_data")
    return table.numbers(_Slot.TENSOR_INT32S, "int32", "int32_data")


def _decode_tensor(table: _Table, consumers: dict[str, Node] | None = None) -> Tensor:
    name = table.string(_Slot.TENSOR_NAME)
    where = f"tensor {name!r}"
    dims = _checked_dims(table.numbers(_Slot.TENSOR_DIMS, "int64", "dims"), where)
    dtype = _dtype_name(table.scalar(_Slot.TENSOR_DTYPE, "i"), where)
    exponents = tuple(int(e) for e in table.numbers(_Slot.TENSOR_EXPONENTS, "int64", "exponents"))
    doc = table.string(_Slot.TENSOR_DOC)
    layout = doc[len(_LAYOUT_PREFIX) :] if doc.startswith(_LAYOUT_PREFIX) else (doc or "UNK")
    count = int(np.prod(dims, dtype=np.int64)) if dims else 1
    flat = _tensor_payload(table, dtype, count, where)
    consumer = consumers.get(name) if consumers else None
    op_type = consumer.op_type if consumer is not None else ""
    depthwise = op_type == "Conv" and consumer is not None and consumer.attributes.get("group", 1) != 1
    try:
        data = unpack_filter(flat, layout, dims, depthwise=depthwise, batched=op_type == "MatMul")
    except ValueError as exc:
        raise _Corrupt(f"{where}: {exc}") from exc
    return Tensor(name, dims, dtype, exponents, layout, data)


def _decode_attribute(table: _Table) -> tuple[str, Any]:
    name = table.string(_Slot.ATTR_NAME)
    kind = table.scalar(_Slot.ATTR_TYPE, "i")
    value: Any
    if kind == _ATTR_INT:
        value = int(table.struct_at(_Slot.ATTR_I, "q") or 0)
    elif kind == _ATTR_FLOAT:
        value = float(table.struct_at(_Slot.ATTR_F, "f") or 0.0)
    elif kind == _ATTR_STRING:
        raw = table.raw_bytes(_Slot.ATTR_S, 1, "s")
        try:
            value = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise _Corrupt(f"attribute {name!r} is not UTF-8") from exc
    elif kind == _ATTR_INTS:
        value = [int(v) for v in table.numbers(_Slot.ATTR_INTS, "int64", "ints")]
    elif kind == _ATTR_FLOATS:
        value = [float(v) for v in table.numbers(_Slot.ATTR_FLOATS, "float32", "floats")]
    elif kind == _ATTR_STRINGS:
        value = table.strings(_Slot.ATTR_STRINGS, "strings")
    elif kind == _ATTR_TENSOR:
        tensor = table.table(_Slot.ATTR_T, "Tensor")
        value = _decode_tensor(tensor) if tensor is not None else None
    else:
        raise _Corrupt(f"attribute {name!r} has unsupported type {kind}")
    return name, value


def _decode_node(table: _Table) -> Node:
    attributes = dict(_decode_attribute(a) for a in table.tables(_Slot.NODE_ATTRIBUTES, "Attribute"))
    return Node(
        name=table.string(_Slot.NODE_NAME),
        op_type=table.string(_Slot.NODE_OP_TYPE),
        inputs=table.strings(_Slot.NODE_INPUTS, "node inputs"),
        outputs=table.strings(_Slot.NODE_OUTPUTS, "node outputs"),
        attributes=attributes,
    )


def _by_name(items: list[_T], key: Callable[[_T], str]) -> dict[str, _T]:
    return {key(item): item for item in items}


def _parse_flatbuffer(fb: bytes) -> EspdlModel:
    buf = _Buffer(fb)
    root = _Table(buf, buf.unpack("<I", 0, "root offset"), "Model")
    graph = root.table(_Slot.MODEL_GRAPH, "Graph")
    if graph is None:
        raise _Corrupt("the model has no graph")
    nodes = [_decode_node(t) for t in graph.tables(_Slot.GRAPH_NODES, "Node")]
    consumers = {name: node for node in nodes for name in node.inputs[1:2]}
    initializers = [_decode_tensor(t, consumers) for t in graph.tables(_Slot.GRAPH_INITIALIZERS, "Tensor")]
    test_inputs = [_decode_tensor(t) for t in graph.tables(_Slot.GRAPH_TEST_INPUTS, "Tensor")]
    test_outputs = [_decode_tensor(t) for t in graph.tables(_Slot.GRAPH_TEST_OUTPUTS, "Tensor")]
    metadata = {
        e.string(_Slot.ENTRY_KEY): e.string(_Slot.ENTRY_VALUE)
        for e in root.tables(_Slot.MODEL_METADATA, "StringStringEntry")
    }
    test_exponents = {t.name: t.exponents[0] for t in test_inputs + test_outputs if t.exponents}
    return EspdlModel(
        producer=root.string(_Slot.MODEL_PRODUCER),
        inputs=[_decode_value_info(t) for t in graph.tables(_Slot.GRAPH_INPUTS, "ValueInfo")],
        outputs=[_decode_value_info(t) for t in graph.tables(_Slot.GRAPH_OUTPUTS, "ValueInfo")],
        nodes=nodes,
        initializers=_by_name(initializers, lambda t: t.name),
        value_info=_by_name(
            [_decode_value_info(t) for t in graph.tables(_Slot.GRAPH_VALUE_INFO, "ValueInfo")],
            lambda v: v.name,
        ),
        test_inputs={t.name: t.data for t in test_inputs},
        test_outputs={t.name: t.data for t in test_outputs},
        metadata=metadata,
        ir_version=int(root.scalar(_Slot.MODEL_IR_VERSION, "i")),
        model_version=int(root.scalar(_Slot.MODEL_VERSION, "q")),
        graph_name=graph.string(_Slot.GRAPH_NAME),
        test_exponents=test_exponents,
    )


# --------------------------------------------------------------------------- weight layouts


def _packing(layout: str) -> tuple[int, bool] | None:
    """(lane count, is_unaligned) of a packed layout like "(N/16)HWC16_UNALIGNED"."""
    for align in (16, 8):
        for spatial in ("WC", "HWC"):
            base = f"(N/{align}){spatial}{align}"
            if layout == base:
                return align, False
            if layout == base + "_UNALIGNED":
                return align, True
    return None


def unpack_filter(
    flat: np.ndarray,
    layout: str,
    dims: tuple[int, ...],
    *,
    depthwise: bool = False,
    batched: bool = False,
) -> np.ndarray:
    """Undo esp-ppq's weight packing: return the tensor in plain row-major order of ``dims``.

    Conv filters have ``dims`` = (*spatial, C, N) (HWCN) or, for a depthwise conv,
    (*spatial, N, 1); Gemm filters are (1, 1, C, N); a constant MatMul operand keeps its
    ONNX shape (..., C, N) and is packed per matrix (``batched``).

    Packed layouts ``(N/a)WCa`` / ``(N/a)HWCa`` (a = 16 lanes for int8, 8 for int16)
    store output channels in blocks of ``a``: memory is (N/a, *spatial, C, a).  The
    ``_UNALIGNED`` variants append the last N % a channels as (rem, *spatial, C), or for
    a depthwise filter as (C, *spatial, rem).  The C targets store ``NWC`` / ``NHWC``
    (memory (N, *spatial, C)) and ``WCN`` / ``HWCN`` for depthwise (already plain).
    """
    if layout in ("UNK", "", "NCHW", "NCW", "WCN", "HWCN") or len(dims) < 2:
        return flat.reshape(dims)
    batches = int(np.prod(dims[:-2], dtype=np.int64)) if batched else 1
    spatial = () if batched else dims[:-2]
    n, c = (dims[-2], dims[-1]) if depthwise else (dims[-1], dims[-2])
    matrices = flat.reshape(batches, -1) if batches else flat.reshape(0, 0)
    plain = [_unpack_one(m, layout, spatial, c, n, depthwise=depthwise) for m in matrices]
    if depthwise:
        plain = [np.swapaxes(p, -1, -2) for p in plain]  # (*spatial, N, C)
    return np.ascontiguousarray(np.stack(plain).reshape(dims) if plain else flat.reshape(dims))


def _unpack_one(
    flat: np.ndarray, layout: str, spatial: tuple[int, ...], c: int, n: int, *, depthwise: bool
) -> np.ndarray:
    """(*spatial, C, N) from the memory of one filter."""
    if flat.size != int(np.prod(spatial, dtype=np.int64)) * c * n:
        raise ValueError(f"{flat.size} values do not fill a filter of {(*spatial, c, n)}")
    if layout in ("NWC", "NHWC"):
        return np.moveaxis(flat.reshape((n, *spatial, c)), 0, -1)
    packing = _packing(layout)
    if packing is None:
        raise ValueError(f"unknown weight layout {layout!r}")
    align, unaligned = packing
    aligned = n // align * align
    rem = n - aligned
    if unaligned != (rem != 0):
        raise ValueError(f"layout {layout!r} does not match N={n}")
    split = aligned * (flat.size // n if n else 0)
    head = flat[:split].reshape((aligned // align, *spatial, c, align))
    head = np.moveaxis(head, 0, -2).reshape((*spatial, c, aligned))
    if depthwise:
        tail = np.moveaxis(flat[split:].reshape((c, *spatial, rem)), 0, len(spatial))
    else:
        tail = np.moveaxis(flat[split:].reshape((rem, *spatial, c)), 0, -1)
    return np.concatenate([head, tail], axis=-1)


# --------------------------------------------------------------------------- container


def _split_container(data: bytes) -> bytes:
    """Validate the EDL header and return the FlatBuffer payload."""
    if len(data) < 12:
        raise _Corrupt(f"file is {len(data)} bytes, too short for an .espdl header")
    magic = data[:4]
    if magic in (b"PDL1", b"PDL2", b"PDL3"):
        raise _Corrupt(f"this is a packed multi-model file ({magic.decode()}); unpack it first")
    if magic not in (b"EDL1", b"EDL2"):
        raise _Corrupt(f"bad magic {magic!r} (expected b'EDL1' or b'EDL2')")
    mode, size = struct.unpack_from("<II", data, 4)
    if mode == 1:
        raise _Corrupt("the model is AES-encrypted; only plain models can be read")
    if mode != 0:
        raise _Corrupt(f"unknown encryption mode {mode}")
    start = 16 if magic == b"EDL2" else 12
    if size < 8 or start + size > len(data):
        raise _Corrupt(f"header announces {size} bytes of model but the file holds {len(data) - start}")
    return data[start : start + size]


def read_espdl(data: bytes, *, source: str = "<memory>") -> EspdlModel:
    """Parse the bytes of an ``.espdl`` file; ``source`` names it in error messages."""
    try:
        return _parse_flatbuffer(_split_container(bytes(data)))
    except _Corrupt as exc:
        raise EspdlFormatError(f"{source}: corrupt or unsupported .espdl file: {exc}") from None


def load_espdl(path: str | os.PathLike[str]) -> EspdlModel:
    """Read an ``.espdl`` file from disk."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise EspdlFormatError(f"{os.fspath(path)}: cannot read: {exc.strerror}") from exc
    return read_espdl(data, source=os.fspath(path))
