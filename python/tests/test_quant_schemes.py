"""The quantization schemes w8a8, w8a16 and w16a16, as ESP-DL computes them.

ESP-DL (>= 3.3.11) runs esp-ppq's W8A16 Conv/Gemm/MatMul (quant_type "W8A16": int16 activations, int8 weights)
in its S16 kernels with the int8 weights sign-extended as they are loaded (ESP32-P4: esp.vldext.s8; ESP32-S3:
EE.VCMP.LT.S8 + EE.VZIP.8; the C kernels of the other chips: conv2d<int16_t, int64_t, int8_t>): the exact
integer sum of x_q * w_q, plus the int64 bias integers as they are, shifted by mac_shift = output exponent -
input exponent - weight exponent (per channel on ESP32-P4) with the chip's rounding (P4 half to even, the
others half up), the fused ReLU, saturated to int16.  Depthwise convolutions, GRU/LSTM and MatMuls of two
computed tensors stay S16.  Mixed precision (a w8a8 model with single layers at w16a16) puts RequantizeLinear
nodes (ESP-DL's TensorBase::assign: exact shift with the chip's rounding, saturated) between int8 and int16.

Here: hand-computed examples pinned for the simulator and the C++ host engine (files written with esp-ppq's
FlatBuffers bindings), the refusals of what ESP-DL would misread, and every scheme on every chip family
through esp-ppq: verified bit-exact, the engine equal to the simulator."""

from __future__ import annotations

import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_parity import assert_engine_matches_simulator

import espdl_streaming  # noqa: F401  (import before esp_ppq)
from espdl_streaming.build import verify_quantized
from espdl_streaming.declaration import make_declaration
from espdl_streaming.errors import HostEngineError, UnsupportedOpError
from espdl_streaming.espdl import Simulator, load_espdl, rounding_for_target
from espdl_streaming.host_engine import run_int_chunks

CHIPS = ["esp32p4", "esp32s3", "esp32c3"]
_DTYPE_CODES = {"float32": 1, "int8": 3, "int16": 5, "int32": 6, "int64": 7}

# --------------------------------------------------------------------------- hand-made .espdl files


def _espdl_bytes(
    nodes: list[tuple[str, str, list[str], list[str], dict[str, Any]]],
    initializers: dict[str, tuple[np.ndarray, list[int]]],
    inputs: list[tuple[str, tuple[int, ...], str, int]],
    outputs: list[tuple[str, tuple[int, ...], str, int]],
) -> bytes:
    """An EDL2 file as esp-ppq writes one (plain row-major weights, layout "UNK"), built with esp-ppq's
    FlatBuffers object API: nodes (name, op_type, inputs, outputs, attributes), initializers name ->
    (data, exponents), graph inputs/outputs (name, shape, dtype, exponent)."""
    import flatbuffers
    from esp_ppq.parser.espdl.FlatBuffers.Dl import (
        AlignedBytes,
        Attribute,
        AttributeF,
        AttributeI,
        Dimension,
        DimensionValue,
        Graph,
        Model,
        Node,
        Tensor,
        TensorShape,
        TensorTypeAndShape,
        TypeInfo,
        ValueInfo,
    )

    def attribute(name: str, value: Any) -> Any:
        a = Attribute.AttributeT()
        a.name = name
        if isinstance(value, str):
            a.attrType, a.s = 3, list(value.encode())
        elif isinstance(value, float):
            a.attrType, a.f = 1, AttributeF.AttributeFT()
            a.f.f = value
        elif isinstance(value, int):
            a.attrType, a.i = 2, AttributeI.AttributeIT()
            a.i.i = value
        else:
            a.attrType, a.ints = 7, [int(v) for v in value]
        return a

    def tensor(name: str, data: np.ndarray, exponents: list[int]) -> Any:
        t = Tensor.TensorT()
        t.name, t.dims, t.dataType, t.exponents, t.docString = (
            name,
            list(data.shape),
            _DTYPE_CODES[str(data.dtype)],
            exponents,
            "",
        )
        raw = data.astype(data.dtype.newbyteorder("<")).tobytes()
        raw += bytes(-len(raw) % 16)
        t.rawData = []
        for i in range(0, len(raw), 16):
            block = AlignedBytes.AlignedBytesT()
            block.bytes = list(raw[i : i + 16])
            t.rawData.append(block)
        return t

    def value_info(name: str, shape: tuple[int, ...], dtype: str, exponent: int) -> Any:
        v = ValueInfo.ValueInfoT()
        v.name, v.exponents = name, [exponent]
        v.valueInfoType = TypeInfo.TypeInfoT()
        v.valueInfoType.valueType = 1  # tensor_type
        tt = TensorTypeAndShape.TensorTypeAndShapeT()
        tt.elemType, tt.shape = _DTYPE_CODES[dtype], TensorShape.TensorShapeT()
        tt.shape.dim = []
        for d in shape:
            dim = Dimension.DimensionT()
            dim.value = DimensionValue.DimensionValueT()
            dim.value.dimType, dim.value.dimValue = 1, d
            tt.shape.dim.append(dim)
        v.valueInfoType.value = tt
        return v

    graph = Graph.GraphT()
    graph.name = "hand_made"
    graph.node = []
    for name, op_type, ins, outs, attrs in nodes:
        n = Node.NodeT()
        n.name, n.opType, n.input, n.output = name, op_type, ins, outs
        n.attribute = [attribute(k, v) for k, v in attrs.items()]
        graph.node.append(n)
    graph.initializer = [tensor(name, data, exps) for name, (data, exps) in initializers.items()]
    graph.input = [value_info(*i) for i in inputs]
    graph.output = [value_info(*o) for o in outputs]
    graph.valueInfo = []
    model = Model.ModelT()
    model.irVersion, model.producerName, model.graph = 8, "test_quant_schemes", graph
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder))
    body = bytes(builder.Output())
    return b"EDL2" + struct.pack("<II", 0, len(body)) + bytes(4) + body


# A Gemm, W8A16: x int16 at 2^-10, W int8 at 2^-6 (per tensor), bias int64, output int16 at 2^-12, so
# mac_shift = -12 + 10 + 6 = 4.  Column j of W is output channel j.
_X = np.array([[1000, -2000, 300], [32767, 32767, 32767]], dtype=np.int16)
_W = np.array([[5, -1, 127], [-7, 2, 127], [3, -128, 127]], dtype=np.int8)
_BIAS = np.array([108, -16, 0], dtype=np.int64)
# Row 0: sums 19900 + 108 = 20008 (/16 = 1250.5, a tie), -43400 - 16 = -43416 (-2713.5, a tie), -88900
# (-5556.25).  Row 1: 32767 + 108 = 32875 (2054.6875), -4161409 - 16 (saturates), 12484227 (saturates).
_HALF_EVEN = [[1250, -2714, -5556], [2055, -32768, 32767]]
_HALF_UP = [[1251, -2713, -5556], [2055, -32768, 32767]]


def _gemm_file(
    path: Path,
    *,
    quant: str = "W8A16",
    weight: np.ndarray = _W,
    w_exps: list[int] | None = None,
    bias: np.ndarray = _BIAS,
    b_exps: list[int] | None = None,
    activation: str = "Linear",
    x_dtype: str = "int16",
) -> Path:
    path.write_bytes(
        _espdl_bytes(
            nodes=[
                (
                    "gemm",
                    "Gemm",
                    ["x", "w", "b"],
                    ["y"],
                    {"quant_type": quant, "activation": activation, "transA": 0, "transB": 0},
                )
            ],
            initializers={"w": (weight, w_exps or [-6]), "b": (bias, b_exps or [-16])},
            inputs=[("x", (2, 3), x_dtype, -10)],
            outputs=[("y", (2, 3), "int16", -12)],
        )
    )
    return path


def _both(exe: Path, path: Path, target: str, x: np.ndarray = _X) -> list[list[int]]:
    """The simulator's output on `x`, after checking the host engine `exe` computes the same integers."""
    rounding = rounding_for_target(target)
    want = Simulator(load_espdl(path), rounding).run({"x": x})["y"]
    got = run_int_chunks(exe, path, rounding, [{"x": x}])[0]["y"]
    np.testing.assert_array_equal(got, want)
    assert want.dtype == np.int16
    return [[int(v) for v in row] for row in want]


@pytest.mark.parametrize("target", CHIPS)
def test_w8a16_gemm_matches_hand_computed_integers(target: str, tmp_path: Path, host_engine: Path) -> None:
    """Ties round half to even on ESP32-P4 and half up elsewhere; sums beyond int16 saturate."""
    got = _both(host_engine, _gemm_file(tmp_path / "gemm.espdl"), target)
    assert got == (_HALF_EVEN if target == "esp32p4" else _HALF_UP)


@pytest.mark.parametrize("target", CHIPS)
def test_w8a16_relu_applies_to_the_rounded_sum(target: str, tmp_path: Path, host_engine: Path) -> None:
    got = _both(host_engine, _gemm_file(tmp_path / "gemm.espdl", activation="Relu"), target)
    expected = _HALF_EVEN if target == "esp32p4" else _HALF_UP
    assert got == [[max(v, 0) for v in row] for row in expected]


@pytest.mark.parametrize("b_exps", [[-14], [-20], [0]])
def test_the_bias_counts_at_the_accumulator_exponent(b_exps: list[int], tmp_path: Path, host_engine: Path) -> None:
    """ESP-DL adds the bias integers to the accumulator as they are: the file's bias exponent is not read
    (esp-ppq writes input + weight exponent; another one does not change what the chip computes)."""
    for target in ("esp32p4", "esp32s3"):
        got = _both(host_engine, _gemm_file(tmp_path / "gemm.espdl", b_exps=b_exps), target)
        assert got == (_HALF_EVEN if target == "esp32p4" else _HALF_UP)


def test_per_channel_weight_exponents_on_esp32p4(tmp_path: Path, host_engine: Path) -> None:
    """ESP32-P4: one mac_shift per output channel.  Channel 1 at 2^-5 shifts by 3: -43400 - 4 = -43404 is
    -5425.5 (to even: -5426), and row 1 saturates."""
    path = _gemm_file(
        tmp_path / "gemm.espdl",
        w_exps=[-6, -5, -6],
        bias=np.array([108, -4, 0], dtype=np.int64),
        b_exps=[-16, -15, -16],
    )
    assert _both(host_engine, path, "esp32p4") == [[1250, -5426, -5556], [2055, -32768, 32767]]


@pytest.mark.parametrize("target", ["esp32s3", "esp32c3"])
def test_per_channel_weight_exponents_are_refused_off_esp32p4(target: str, tmp_path: Path, host_engine: Path) -> None:
    path = _gemm_file(tmp_path / "gemm.espdl", w_exps=[-6, -5, -6], b_exps=[-16, -15, -16])
    with pytest.raises(UnsupportedOpError, match="one exponent per channel"):
        Simulator(load_espdl(path), "half_up")
    with pytest.raises(HostEngineError, match="one exponent per channel"):
        run_int_chunks(host_engine, path, rounding_for_target(target), [{"x": _X}])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"weight": _W.astype(np.int16)}, r"the weight 'w' is int16, but ESP-DL's W8A16 Gemm kernel reads it as int8"),
        ({"x_dtype": "int8"}, r"the input 'x' is int8, but ESP-DL's W8A16 Gemm kernel reads it as int16"),
        ({"bias": _BIAS.astype(np.int32)}, r"the bias 'b' is int32, but ESP-DL's W8A16 Gemm kernel reads it as int64"),
        ({"quant": "S16"}, r"the weight 'w' is int8, but ESP-DL's S16 Gemm kernel reads it as int16"),
        ({"quant": "S8"}, r"the input 'x' is int16, but ESP-DL's S8 Gemm kernel reads it as int8"),
        ({"quant": "F32"}, r"quant_type 'F32': ESP-DL runs Gemm only as S8, S16 or W8A16"),
    ],
)
def test_operands_the_kernel_would_misread_are_refused(
    kwargs: dict[str, Any], message: str, tmp_path: Path, host_engine: Path
) -> None:
    path = _gemm_file(tmp_path / "gemm.espdl", **kwargs)
    x = _X.astype(np.int8) if kwargs.get("x_dtype") == "int8" else _X
    with pytest.raises(UnsupportedOpError, match=message):
        Simulator(load_espdl(path), "half_even")
    with pytest.raises(HostEngineError, match=message):
        run_int_chunks(host_engine, path, "half_even", [{"x": x}])


def test_a_w8a16_depthwise_convolution_is_refused(tmp_path: Path, host_engine: Path) -> None:
    """ESP-DL has no W8A16 depthwise kernel (esp-ppq keeps depthwise convolutions at S16)."""
    path = tmp_path / "dw.espdl"
    path.write_bytes(
        _espdl_bytes(
            nodes=[
                (
                    "dw",
                    "Conv",
                    ["x", "w"],
                    ["y"],
                    {
                        "quant_type": "W8A16",
                        "activation": "Linear",
                        "group": 3,
                        "kernel_shape": [2],
                        "strides": [1],
                        "dilations": [1],
                        "pads": [0, 0],
                    },
                )
            ],
            initializers={"w": (np.ones((2, 3, 1), dtype=np.int8), [-6])},
            inputs=[("x", (1, 4, 3), "int16", -10)],
            outputs=[("y", (1, 3, 3), "int16", -12)],
        )
    )
    with pytest.raises(UnsupportedOpError, match="W8A16 depthwise"):
        Simulator(load_espdl(path), "half_even")
    with pytest.raises(HostEngineError, match="W8A16 depthwise"):
        run_int_chunks(host_engine, path, "half_even", [{"x": np.zeros((1, 4, 3), dtype=np.int16)}])


# --------------------------------------------------------------------------- every scheme through esp-ppq

_MIX = '''
import torch
import torch.nn.functional as F
from torch import nn


class Mix(nn.Module):
    """Conv1d with a bias, a depthwise Conv1d, a Linear (Gemm), a constant MatMul and a GRU."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(8, 12, 3)
        self.dw = nn.Conv1d(12, 12, 2, groups=12)
        self.lin = nn.Linear(12, 10)
        self.w = nn.Parameter(torch.randn(10, 9) * 0.3)
        self.gru = nn.GRU(9, 6, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.conv(F.pad(x, (2, 0))))
        x = self.dw(F.pad(x, (1, 0)))
        x = torch.tanh(self.lin(x.transpose(1, 2)))
        y, _ = self.gru(torch.matmul(x, self.w))
        return y


class Conv2dModel(nn.Module):
    """Conv2d over (time, frequency), time on H: input [1, 1, T, 12]; 2 x 3 and 1 x 1 kernels with biases."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, (2, 3), padding=(0, 1))
        self.conv2 = nn.Conv2d(6, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.conv1(F.pad(x, (0, 0, 1, 0)))))


def mix() -> nn.Module:
    torch.manual_seed(5)
    return Mix().eval()


def conv2d() -> nn.Module:
    torch.manual_seed(6)
    return Conv2dModel().eval()
'''

_SHAPES = {"mix": "1,8,20", "conv2d": "1,1,16,12"}
_CHUNK = {"mix": 4, "conv2d": 4}
# (op_type, quant_type) -> what esp-ppq writes for each scheme: (quant_type, weight dtype)
_EXPECTED = {
    "w8a8": {"conv": ("S8", "int8"), "dw": ("S8", "int8"), "dense": ("S8", "int8"), "GRU": ("S8", "int8")},
    "w8a16": {"conv": ("W8A16", "int8"), "dw": ("S16", "int16"), "dense": ("W8A16", "int8"), "GRU": ("S16", "int16")},
    "w16a16": {"conv": ("S16", "int16"), "dw": ("S16", "int16"), "dense": ("S16", "int16"), "GRU": ("S16", "int16")},
}

Built = tuple[Any, Any]


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Built]:
    """quantize() one of the models above for a chip and scheme (cached): (declaration, QuantizeResult)."""
    from espdl_streaming.quantize import quantize

    root = tmp_path_factory.mktemp("schemes")
    models = root / "models.py"
    models.write_text(_MIX)
    done: dict[tuple[str, str, str, tuple[str, ...]], Built] = {}

    def run(name: str, chip: str, quant: str, promoted: tuple[str, ...] = ()) -> Built:
        key = (name, chip, quant, promoted)
        if key not in done:
            decl = make_declaration(
                name=name,
                model=f"{models}:{name}",
                input_shape=_SHAPES[name],
                chunk_frames=_CHUNK[name],
                target=chip,
                quant=quant,
                calib_steps=4,
                out_dir=root / f"{name}_{chip}_{quant}_{len(promoted)}",
            )
            done[key] = (decl, quantize(decl, promoted=list(promoted)))
        return done[key]

    return run


def _verify_and_compare(exe: Path, decl: Any, q: Any, chip: str, tmp_path: Path) -> tuple[Path, Path]:
    """verify() bit-exact streaming == offline, then the engine equal to the simulator on both files."""
    v = verify_quantized(decl, q)
    assert v.verified and v.max_abs_diff == 0
    streaming, offline = tmp_path / "streaming.espdl", tmp_path / "offline.espdl"
    streaming.write_bytes(q.streaming_bytes)
    offline.write_bytes(q.offline_bytes)
    rounding = rounding_for_target(chip)
    assert_engine_matches_simulator(exe, streaming, rounding, 6)
    assert_engine_matches_simulator(exe, offline, rounding, 2)
    return streaming, offline


def _kind(node: Any) -> str:
    if node.op_type == "Conv":
        return "dw" if node.attributes.get("group", 1) != 1 else "conv"
    return "dense" if node.op_type in ("Gemm", "MatMul") else node.op_type


# w8a16 on every chip family; the w8a8 / w16a16 controls (the zoo covers those schemes) on one chip each
# in `make test`, on all three with ESPDL_STREAMING_FULL_ZOO=1 (`make zoo`).
SCHEME_CASES = [(chip, quant) for chip in CHIPS for quant in ("w8a16", "w8a8", "w16a16")]
if not os.environ.get("ESPDL_STREAMING_FULL_ZOO"):
    SCHEME_CASES = [c for c in SCHEME_CASES if c[1] == "w8a16" or c in (("esp32s3", "w8a8"), ("esp32c3", "w16a16"))]


@pytest.mark.parametrize(("chip", "quant"), SCHEME_CASES)
def test_every_scheme_verifies_and_the_engine_agrees(
    build: Callable[..., Built], chip: str, quant: str, tmp_path: Path, host_engine: Path
) -> None:
    """Conv1d, depthwise, Gemm, constant MatMul and GRU with biases: what esp-ppq writes for the scheme,
    verified bit-exact, the C++ engine equal to the simulator chunk for chunk."""
    decl, q = build("mix", chip, quant)
    streaming, _ = _verify_and_compare(host_engine, decl, q, chip, tmp_path)
    model = load_espdl(streaming)
    seen = set()
    for node in model.nodes:
        kind = _kind(node)
        if kind not in _EXPECTED[quant]:
            continue
        quant_type, weight_dtype = _EXPECTED[quant][kind]
        assert node.attributes.get("quant_type") == quant_type, node.name
        assert model.initializers[node.inputs[1]].dtype == weight_dtype, node.name
        if len(node.inputs) > 2 and node.inputs[2] and kind != "GRU":
            bias = model.initializers[node.inputs[2]]
            assert bias.dtype == ("int32" if quant == "w8a8" else "int64"), node.name
        per_channel = len(model.initializers[node.inputs[1]].exponents) > 1
        assert per_channel == (chip == "esp32p4" and kind in ("conv", "dw", "dense") and node.op_type != "MatMul")
        seen.add(kind)
    assert seen == {"conv", "dw", "dense", "GRU"}


@pytest.mark.parametrize("chip", CHIPS)
def test_w8a16_conv2d_verifies_and_the_engine_agrees(
    build: Callable[..., Built], chip: str, tmp_path: Path, host_engine: Path
) -> None:
    decl, q = build("conv2d", chip, "w8a16")
    streaming, _ = _verify_and_compare(host_engine, decl, q, chip, tmp_path)
    convs = [n for n in load_espdl(streaming).nodes if n.op_type == "Conv"]
    assert len(convs) == 2 and all(n.attributes.get("quant_type") == "W8A16" for n in convs)


@pytest.mark.parametrize(
    ("chip", "promoted"), [("esp32p4", "/conv/Conv"), ("esp32s3", "/dw/Conv"), ("esp32c3", "/dw/Conv")]
)
def test_mixed_precision_requantizes_between_int8_and_int16(
    build: Callable[..., Built], chip: str, promoted: str, tmp_path: Path, host_engine: Path
) -> None:
    """One operation put at 16-bit activations (quantize(promoted=...): esp-ppq's dispatching table) on a w8a8
    model: esp-ppq inserts RequantizeLinear nodes where int8 and int16 tensors meet (ESP-DL's
    TensorBase::assign: a shift with the chip's rounding, saturated); bit-exact, the engine agrees.  The
    promoted layer runs W8A16 (int8 weights) or S16 (a depthwise convolution has no W8A16 kernel)."""
    decl, q = build("mix", chip, "w8a8", (promoted,))
    streaming, _ = _verify_and_compare(host_engine, decl, q, chip, tmp_path)
    model = load_espdl(streaming)
    infos = {v.name: v for v in (*model.value_info.values(), *model.inputs, *model.outputs)}
    wide = [n for n in model.nodes if n.op_type == "Conv" and n.attributes.get("quant_type") in ("S16", "W8A16")]
    assert [n.name for n in wide] == [promoted]
    weight = model.initializers[wide[0].inputs[1]]
    assert weight.dtype == ("int8" if wide[0].attributes["quant_type"] == "W8A16" else "int16")
    assert infos[wide[0].inputs[0]].dtype == infos[wide[0].outputs[0]].dtype == "int16"
    conversions = {
        (infos[n.inputs[0]].dtype, infos[n.outputs[0]].dtype) for n in model.nodes if n.op_type == "RequantizeLinear"
    }
    assert ("int16", "int8") in conversions and conversions <= {("int8", "int16"), ("int16", "int8")}
    assert all(
        n.attributes.get("quant_type") == "S8"
        for n in model.nodes
        if n.op_type in ("Conv", "Gemm", "MatMul", "GRU") and n is not wide[0]
    )
