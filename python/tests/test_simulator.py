"""The .espdl reader and the integer simulator.

The simulator's ground truth is esp-ppq itself: for every model, chip family and bit
width, simulating the exported ``test_inputs_value`` must reproduce the exported
``test_outputs_value`` exactly.  16-bit models are exported with esp-ppq's
``debug=True`` (double-precision forward); its default float32 forward can be off by
one LSB on int16 tensors, which is checked separately.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

# Import our package before esp-ppq: esp_ppq puts its own "espdl_streaming.py" on sys.path.
from espdl_streaming.errors import EspdlFormatError, UnsupportedOpError
from espdl_streaming.espdl import (
    EspdlModel,
    Node,
    Simulator,
    Tensor,
    ValueInfo,
    dequantize_values,
    load_espdl,
    quantize_values,
    read_espdl,
    rounding_for_target,
)

REPO = Path(__file__).resolve().parents[2]
TARGETS = ("esp32p4", "esp32s3", "c")
MODELS = ("tcn", "activations1d", "shapes1d", "conv2d")

Exporter = Callable[..., Path]


def _build(name: str):  # type: ignore[no-untyped-def]
    if name == "tcn":
        spec = importlib.util.spec_from_file_location("tcn_example", REPO / "examples" / "tcn" / "model.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.build(), [1, module.FEATURES, 24]
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import sim_models
    finally:
        sys.path.pop(0)
    model = sim_models.build(name)
    return model, list(model.input_shape)


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Exporter]:
    """export(model, target, bits, debug) -> path of an .espdl with test values (memoized)."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from sim_models import export_with_test_values
    finally:
        sys.path.pop(0)

    root = tmp_path_factory.mktemp("espdl_exports")
    done: dict[tuple[str, str, int, bool], Path] = {}

    def run(name: str, target: str, bits: int, debug: bool = True) -> Path:
        key = (name, target, bits, debug and bits == 16)
        if key not in done:
            model, shape = _build(name)
            path = root / "_".join(str(k) for k in key) / "model.espdl"
            done[key] = export_with_test_values(model, shape, path, target, bits, key[3])
        return done[key]

    yield run


def _simulate_test_values(path: Path, target: str) -> tuple[EspdlModel, dict[str, np.ndarray]]:
    model = load_espdl(path)
    assert model.test_inputs and model.test_outputs
    return model, Simulator(model, rounding_for_target(target)).run(model.test_inputs)


# --------------------------------------------------------------------------- exactness against esp-ppq


@pytest.mark.parametrize("bits", (8, 16))
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("name", MODELS)
def test_reproduces_esp_ppq_test_outputs(export: Exporter, name: str, target: str, bits: int) -> None:
    model, outputs = _simulate_test_values(export(name, target, bits), target)
    assert set(outputs) == set(model.test_outputs)
    for out_name, expected in model.test_outputs.items():
        assert outputs[out_name].dtype == np.dtype(f"int{bits}")
        np.testing.assert_array_equal(outputs[out_name], expected, err_msg=f"{name} {target} {bits}-bit")


def test_default_int16_export_within_one_lsb(export: Exporter) -> None:
    """esp-ppq's default INT16 forward accumulates in float32: at most one LSB apart."""
    model, outputs = _simulate_test_values(export("tcn", "esp32s3", 16, debug=False), "esp32s3")
    for out_name, expected in model.test_outputs.items():
        assert np.abs(outputs[out_name].astype(np.int64) - expected).max() <= 1


def test_exports_cover_every_operator_and_layout(export: Exporter) -> None:
    ops: set[str] = set()
    layouts: set[str] = set()
    for name in MODELS:
        for target in TARGETS:
            for bits in (8, 16):
                model = load_espdl(export(name, target, bits))
                ops.update(node.op_type for node in model.nodes)
                layouts.update(t.layout for t in model.initializers.values())
    assert {
        "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Relu", "PRelu", "LeakyRelu", "Sigmoid", "Tanh",
        "HardSigmoid", "HardSwish", "Clip", "LUT", "AveragePool", "MaxPool", "GlobalAveragePool",
        "Concat", "Slice", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "RequantizeLinear",
    } <= ops  # fmt: skip
    assert {
        "(N/16)WC16", "(N/16)WC16_UNALIGNED", "(N/8)WC8", "(N/8)WC8_UNALIGNED", "(N/16)HWC16",
        "(N/16)HWC16_UNALIGNED", "(N/8)HWC8_UNALIGNED", "NWC", "WCN", "NHWC", "HWCN",
    } <= layouts  # fmt: skip


def test_reader_decodes_the_tcn(export: Exporter) -> None:
    model = load_espdl(export("tcn", "esp32p4", 8))
    assert [(v.shape, v.dtype) for v in model.inputs] == [((1, 24, 16), "int8")]
    assert model.inputs[0].exponent is not None
    assert model.outputs[0].shape == (1, 8)
    weight = model.initializers["blocks.0.depthwise.conv.weight"]
    assert weight.dims == (3, 24, 1) and weight.layout == "(N/16)WC16_UNALIGNED"
    assert weight.data.shape == weight.dims and len(weight.exponents) == 24  # per-channel on P4
    assert model.initializers["stem.bias"].dtype == "int32"
    assert model.nodes[0].op_type == "Conv" and model.nodes[0].attributes["activation"] == "Relu"


# --------------------------------------------------------------------------- corrupt files


def test_corrupt_files_raise_format_error(export: Exporter, tmp_path: Path) -> None:
    good = export("shapes1d", "esp32s3", 8).read_bytes()
    read_espdl(good)
    rng = np.random.default_rng(1234)
    candidates: list[bytes] = [b"", b"EDL2", b"XXXX" + good[4:], b"PDL2" + good[4:]]
    candidates += [good[:n] for n in range(0, len(good), max(1, len(good) // 150))]
    for _ in range(400):
        data = bytearray(good)
        pos = int(rng.integers(0, len(data)))
        if rng.random() < 0.5:
            data[pos] = int(rng.integers(0, 256))
        else:
            data[pos : pos + 4] = bytes(rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00"]))
        candidates.append(bytes(data[: len(good)]))
    failures = 0
    for data in candidates:
        try:
            read_espdl(data, source="mutant.espdl")
        except EspdlFormatError as exc:
            assert "mutant.espdl" in str(exc)
            failures += 1
    assert failures > len(candidates) // 4
    with pytest.raises(EspdlFormatError, match="bad magic"):
        read_espdl(b"XXXX" + good[4:])
    with pytest.raises(EspdlFormatError, match="cannot read"):
        load_espdl(tmp_path / "missing.espdl")


# --------------------------------------------------------------------------- quantize_values


@pytest.mark.parametrize(
    ("target", "expected"),
    (("esp32p4", [2, -2, 0, 0, 2, -2]), ("esp32s31", [2, -2, 0, 0, 2, -2]),
     ("esp32s3", [3, -2, 1, 0, 2, -1]), ("esp32c3", [3, -2, 1, 0, 2, -1]), ("c", [3, -2, 1, 0, 2, -1])),
)  # fmt: skip
def test_quantize_rounds_ties_per_chip(target: str, expected: list[int]) -> None:
    ties = np.array([2.5, -2.5, 0.5, -0.5, 1.5, -1.5]) * 2.0**-3
    q = quantize_values(ties, -3, "int8", rounding_for_target(target))
    assert q.dtype == np.int8 and q.tolist() == expected


@pytest.mark.parametrize("rounding", ("half_even", "half_up"))
def test_quantize_saturates_and_zeroes_nan(rounding: str) -> None:
    x = np.array([1e9, -1e9, np.inf, -np.inf, np.nan, 0.49999999999999994])
    assert quantize_values(x, 0, "int8", rounding).tolist() == [127, -128, 127, -128, 0, 0]  # type: ignore[arg-type]
    assert quantize_values(x, 0, "int16", rounding).tolist() == [32767, -32768, 32767, -32768, 0, 0]  # type: ignore[arg-type]
    assert quantize_values(np.array([96.0]), 5, "int8", rounding).tolist() == [3]  # type: ignore[arg-type]
    assert dequantize_values(np.array([3, -128], dtype=np.int8), -2).tolist() == [0.75, -32.0]


# --------------------------------------------------------------------------- hand-built graphs


def _cache_model(window: int = 3) -> EspdlModel:
    x = ValueInfo("x", (1, 2, 3), "int8", -3)
    y = ValueInfo("y", (1, window + 1, 3), "int8", -3)
    node = Node("cache", "StreamingCache", ["x"], ["y"], {"window_size": window, "frame_axis": 1})
    return EspdlModel("test", [x], [y], [node], {}, {}, {}, {}, {})


def test_streaming_cache_carries_state_until_reset() -> None:
    sim = Simulator(_cache_model(), "half_up")
    assert sim.cache_bytes == 2 * 3
    first = np.arange(6, dtype=np.int8).reshape(1, 2, 3)
    second = -first - 1
    out = sim.run({"x": first})["y"]
    np.testing.assert_array_equal(out, np.concatenate([np.zeros((1, 2, 3), np.int8), first], axis=1))
    out = sim.run({"x": second})["y"]
    np.testing.assert_array_equal(out, np.concatenate([first, second], axis=1))
    sim.reset()
    out = sim.run({"x": second}, trace=True)
    assert set(out) == {"x", "y"}
    np.testing.assert_array_equal(out["y"][:, :2], np.zeros((1, 2, 3), np.int8))


def test_streaming_cache_feeds_a_causal_conv() -> None:
    """Cache + unpadded depthwise conv, one frame per run == offline causal conv."""
    weight = Tensor("w", (3, 2, 1), "int8", (-2,), "UNK", np.array([[[1], [2]], [[0], [-1]], [[3], [1]]], np.int8))
    conv = {"kernel_shape": [3], "pads": [0, 0], "strides": [1], "dilations": [1], "group": 2}
    nodes = [
        Node("cache", "StreamingCache", ["x"], ["xc"], {"window_size": 3, "frame_axis": 1}),
        Node("conv", "Conv", ["xc", "w"], ["y"], {**conv, "activation": "Linear"}),
    ]
    x = ValueInfo("x", (1, 1, 2), "int8", -4)
    y = ValueInfo("y", (1, 1, 2), "int8", -5)
    sim = Simulator(EspdlModel("t", [x], [y], nodes, {"w": weight}, {}, {}, {}, {}), "half_even")
    frames = np.random.default_rng(0).integers(-128, 128, size=(1, 10, 2)).astype(np.int8)
    streamed = np.concatenate([sim.run({"x": frames[:, t : t + 1]})["y"] for t in range(10)], axis=1)
    padded = np.concatenate([np.zeros((1, 2, 2)), frames * 2.0**-4], axis=1)
    w = weight.data[:, :, 0] * 2.0**-2
    real = sum(padded[:, k : k + 10] * w[k] for k in range(3))
    np.testing.assert_array_equal(streamed, quantize_values(real, -5, "int8", "half_even"))
    assert sim.macs() == 2 * 3


def test_unknown_operators_are_rejected_up_front() -> None:
    model = _cache_model()
    model.nodes.append(Node("mystery", "FancyOp", ["y"], ["z"], {}))
    with pytest.raises(UnsupportedOpError, match="mystery.*FancyOp"):
        Simulator(model, "half_up")
    model.nodes[-1] = Node("gelu_conv", "Conv", ["y", "w"], ["z"], {"activation": "Gelu", "kernel_shape": [1]})
    with pytest.raises(UnsupportedOpError, match="gelu_conv"):
        Simulator(model, "half_up")


def test_importing_the_simulator_does_not_import_torch() -> None:
    code = "import sys, espdl_streaming.espdl; assert 'torch' not in sys.modules and 'esp_ppq' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
