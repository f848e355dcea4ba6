"""The C++ host engine (src/host/, host/): bit-exact with the simulator, robust against bad files,
no allocation in run(), reset() restores the fresh state, and the generated glue runs on it.

The engine is built once per session with ASan and UBSan (fixture ``host_engine``); every zoo
model is also run on it by test_zoo.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO
from engine_parity import assert_engine_matches_simulator, edge_case_chunks, random_ints

from espdl_streaming.errors import EspdlFormatError, EspdlStreamingError, UnsupportedOpError
from espdl_streaming.espdl import Simulator, load_espdl, read_espdl, rounding_for_target
from espdl_streaming.host_engine import (
    HostEngineError,
    HostEngineUnavailableError,
    build_host_engine,
    model_info,
    run_int_chunks,
)

# --------------------------------------------------------------------------- exactness


@pytest.fixture(scope="module")
def sim_exports(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str, int], Path]:
    """The simulator's operator-coverage models (tests/sim_models.py) exported by esp-ppq, with test values."""
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        import sim_models
    finally:
        sys.path.pop(0)
    root = tmp_path_factory.mktemp("engine_exports")
    done: dict[tuple[str, str, int], Path] = {}

    def export(name: str, target: str, bits: int) -> Path:
        if (name, target, bits) not in done:
            model = sim_models.build(name)
            path = root / f"{name}_{target}_{bits}" / "model.espdl"
            done[name, target, bits] = sim_models.export_with_test_values(
                model, list(model.input_shape), path, target, bits, bits == 16
            )
        return done[name, target, bits]

    return export


# Both roundings, both bit widths, 1-D and 2-D filters in every packing (16 and 8 lanes).
EXPORTS = [
    ("activations1d", "esp32p4", 8),
    ("activations1d", "esp32s3", 16),
    ("shapes1d", "esp32s3", 16),
    ("conv2d", "c", 16),
    ("conv2d", "esp32p4", 8),
]


def test_every_operator_matches_the_simulator(host_engine: Path, sim_exports: Callable[[str, str, int], Path]) -> None:
    ops: set[str] = set()
    for name, target, bits in EXPORTS:
        path = sim_exports(name, target, bits)
        model = load_espdl(path)
        ops.update(node.op_type for node in model.nodes)
        rng = np.random.default_rng(7)
        info = model_info(host_engine, path)
        chunks = [dict(model.test_inputs)] + [
            {t["name"]: random_ints(rng, t) for t in info["inputs"]} for _ in range(3)
        ]
        assert_engine_matches_simulator(host_engine, path, rounding_for_target(target), 0, inputs=chunks)
    assert {
        "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Relu", "PRelu", "LeakyRelu", "Sigmoid", "Tanh",
        "HardSigmoid", "HardSwish", "Clip", "LUT", "AveragePool", "MaxPool", "GlobalAveragePool",
        "Concat", "Slice", "Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "RequantizeLinear",
    } <= ops  # fmt: skip


@pytest.mark.parametrize(("target", "bits"), [("esp32p4", 8), ("esp32s3", 16)])
def test_math_activations_without_tables_match(
    host_engine: Path, sim_exports: Callable[[str, str, int], Path], tmp_path: Path, target: str, bits: int
) -> None:
    """esp-ppq exports tables for every activation; without them (the `lut` attribute renamed)
    the int8 activations and INT16 LUT nodes compute the math: Relu, LeakyRelu, Sigmoid, Tanh,
    HardSigmoid, HardSwish, Clip in double, tanh from the C library."""
    path = tmp_path / "no_tables.espdl"
    path.write_bytes(sim_exports("activations1d", target, bits).read_bytes().replace(b"lut", b"lux"))
    model = load_espdl(path)
    assert not any("lut" in node.attributes for node in model.nodes)
    rng = np.random.default_rng(11)
    info = model_info(host_engine, path)
    chunks = [dict(model.test_inputs)] + [{t["name"]: random_ints(rng, t) for t in info["inputs"]} for _ in range(8)]
    assert_engine_matches_simulator(host_engine, path, rounding_for_target(target), 0, inputs=chunks)


@pytest.mark.parametrize(
    ("name", "target", "bits", "op"),
    [
        ("layernorm_btc", "esp32p4", 8, "LayerNormalization"),
        ("layernorm_per_frame", "esp32s3", 16, "LayerNormalization"),
        ("gather_channel", "esp32c3", 8, "Gather"),
    ],
)
def test_float32_kernels_match_the_simulator(
    host_engine: Path, tmp_path: Path, name: str, target: str, bits: int, op: str
) -> None:
    """LayerNormalization computes in float32 as ESP-DL does (sqrt_newton, the chip's float rounding):
    the engine reproduces the simulator bit for bit, also on frames that are constant (variance 0) or
    saturated; Gather copies the indexed channel."""
    from sim_models import export_with_test_values
    from zoo import faithful_ops

    path = export_with_test_values(getattr(faithful_ops, name)(), [1, 8, 16], tmp_path / "m.espdl", target, bits, False)
    model = load_espdl(path)
    assert op in {n.op_type for n in model.nodes}
    info = model_info(host_engine, path)
    chunks = edge_case_chunks(model, info, 3)
    assert_engine_matches_simulator(host_engine, path, rounding_for_target(target), 0, inputs=chunks)


@pytest.mark.parametrize(
    ("op", "target", "bits"),
    [
        ("ReduceMean", "esp32p4", 8),
        ("ReduceMean", "esp32s3", 16),
        ("ReduceMax", "esp32c3", 16),
        ("ReduceMin", "esp32s3", 8),
        ("ReduceSum", "esp32p4", 16),
        ("ReduceSum", "esp32c3", 8),
    ],
)
def test_reduce_kernels_match_the_simulator(host_engine: Path, tmp_path: Path, op: str, target: str, bits: int) -> None:
    """ReduceMean (float32 with the chip's float rounding), ReduceSum (the chip's shift rounding) and
    ReduceMax/Min (integers copied) over frequency: bit for bit with the simulator, also on constant
    and saturated inputs."""
    from sim_models import export_with_test_values
    from test_reduce_ops import ReduceHead

    path = export_with_test_values(ReduceHead(op), [1, 1, 8, 12], tmp_path / "m.espdl", target, bits, False)
    model = load_espdl(path)
    assert op in {n.op_type for n in model.nodes}
    info = model_info(host_engine, path)
    chunks = edge_case_chunks(model, info, 5)
    assert_engine_matches_simulator(host_engine, path, rounding_for_target(target), 0, inputs=chunks)


# --------------------------------------------------------------------------- bad files


def _open(exe: Path, data: bytes, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "model.espdl"
    path.write_bytes(data)
    return subprocess.run([str(exe), str(path), "--info"], capture_output=True, text=True, timeout=60)


def _python_rejects(data: bytes) -> str | None:
    try:
        Simulator(read_espdl(data), "half_even")
    except (EspdlFormatError, UnsupportedOpError) as exc:
        return str(exc)
    return None


def _rename(data: bytes, old: bytes, new: bytes) -> bytes:
    assert len(old) == len(new) and old in data
    return data.replace(old, new)


def test_bad_files_are_clean_errors(host_engine: Path, example_builds: dict[str, Path], tmp_path: Path) -> None:
    good = (example_builds["esp32p4"] / "tcn.espdl").read_bytes()
    size_field = int.from_bytes(good[8:12], "little")
    cases = {
        "empty": (b"", "too short for an .espdl header"),
        "truncated header": (good[:10], "too short"),
        "truncated": (good[: len(good) // 2], "header announces"),
        "truncated by one": (good[:-1], "header announces"),
        "bad magic": (b"XXXX" + good[4:], "bad magic"),
        "packed": (b"PDL2" + good[4:], "packed multi-model file"),
        "encrypted": (good[:4] + (1).to_bytes(4, "little") + good[8:], "AES-encrypted"),
        "size field too large": (good[:8] + (size_field + 1).to_bytes(4, "little") + good[12:], "header announces"),
        "root offset outside": (good[:16] + (0x7FFFFFF0).to_bytes(4, "little") + good[20:], "outside the"),
        "unknown operator": (_rename(good, b"Transpose", b"Transpoze"), "(op type Transpoze): "),
        "missing attribute": (_rename(good, b"window_size", b"window_sizf"), "window_size must be a positive integer"),
        "unknown layout": (_rename(good, b"(N/16)WC16_UNALIGNED", b"(N/16)WC17_UNALIGNED"), "unknown weight layout"),
    }
    for what, (data, expected) in cases.items():
        proc = _open(host_engine, data, tmp_path)
        assert proc.returncode == 2, (what, proc.stdout, proc.stderr)
        lines = proc.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], (what, proc.stderr)
        assert _python_rejects(data) is not None, what  # the simulator rejects it too
    (tmp_path / "model.espdl").write_bytes(cases["unknown operator"][0])
    with pytest.raises(
        HostEngineError, match=r"node '.*' \(op type Transpoze\): the host engine has no implementation"
    ):
        model_info(host_engine, tmp_path / "model.espdl")


def test_mutants_the_simulator_rejects_are_rejected(
    host_engine: Path, example_builds: dict[str, Path], tmp_path: Path
) -> None:
    """Random byte mutations of the example: whatever the Python reader/simulator refuses, the
    engine refuses; what both accept computes the same integers."""
    good = (example_builds["esp32s3"] / "tcn.espdl").read_bytes()
    rng = np.random.default_rng(2024)
    compared = rejected = 0
    for i in range(120):
        data = bytearray(good)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(16, len(data) - 4))
            if rng.random() < 0.5:
                data[pos] = int(rng.integers(0, 256))
            else:
                data[pos : pos + 4] = bytes(rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80", b"\x00\x00\x00\x00"]))
        path = tmp_path / f"mutant{i}.espdl"
        path.write_bytes(bytes(data))
        python_error = _python_rejects(bytes(data))
        proc = subprocess.run([str(host_engine), str(path), "--info"], capture_output=True, text=True, timeout=60)
        assert proc.returncode in (0, 2), proc.stderr  # never a crash or a sanitizer report
        if python_error is not None:
            assert proc.returncode == 2, (i, python_error)
            rejected += 1
            continue
        if proc.returncode != 0:
            continue  # the engine refuses more (what numpy would only fail on at run time)
        info = json.loads(proc.stdout)
        chunks = [{t["name"]: random_ints(rng, t) for t in info["inputs"]} for _ in range(3)]
        sim = Simulator(load_espdl(path), "half_up")
        try:
            expected = [sim.run(chunk) for chunk in chunks]
        except Exception:  # numpy fails on what the mutation broke
            continue
        got = run_int_chunks(host_engine, path, "half_up", chunks)
        for k, (want, have) in enumerate(zip(expected, got, strict=True)):
            for name, value in want.items():
                np.testing.assert_array_equal(have[name], value, err_msg=f"mutant {i}, chunk {k}, {name}")
        compared += 1
    assert rejected > 10 and compared > 10, (rejected, compared)


# --------------------------------------------------------------------------- fuzzing, allocation, reset


def test_fuzzing_the_loader_finds_no_crash(host_engine: Path, example_builds: dict[str, Path]) -> None:
    seeds = [
        example_builds[chip] / name for chip in ("esp32p4", "esp32s3") for name in ("tcn.espdl", "tcn.offline.espdl")
    ]
    proc = subprocess.run(
        [
            str(host_engine.parent / "espdl_fuzz"),
            "--seconds",
            "8",
            "--iterations",
            "10000000",
            "--seed",
            "3",
            *map(str, seeds),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]  # ASan/UBSan abort on any memory error or UB
    summary = json.loads(proc.stdout)
    assert summary["iterations"] >= 1000 and summary["opened"] > 0 and summary["ran"] > 0, summary
    assert summary["iterations"] == summary["opened"] + summary["fail"] + summary["not_supported"] + summary["no_mem"]


def test_run_does_not_allocate_and_reset_restores_the_fresh_state(
    host_engine: Path, example_builds: dict[str, Path]
) -> None:
    proc = subprocess.run(
        [
            str(host_engine.parent / "engine_check"),
            str(example_builds["esp32p4"] / "tcn.espdl"),
            "--rounding",
            "half_even",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout)
    assert result == {"allocations": 0, "reset_restores": True, "state_matters": True, "chunks": 6}


# --------------------------------------------------------------------------- the generated glue on the engine

GLUE_MAIN = r"""
#include <cstdio>

#include "tcn.hpp"

static espdl_streaming::models::tcn s_model;

int main()
{
    const esp_err_t init = s_model.init();
    const esp_err_t self_test = init == ESP_OK ? s_model.self_test() : ESP_FAIL;
    std::printf("{\"init\": %d, \"self_test\": %d}\n", init, self_test);
    s_model.deinit();
    return 0;
}
"""


def test_generated_glue_passes_its_self_test_on_the_engine(
    host_engine: Path, example_builds: dict[str, Path], tmp_path: Path
) -> None:
    """The generated class loads its .espdl with open_model() (the host engine here) and
    self_test() compares the engine's outputs with the golden vectors the build simulated."""
    for chip in ("esp32p4", "esp32s3"):
        out = example_builds[chip]
        data = (out / "tcn.espdl").read_bytes()
        rows = ",\n".join(", ".join(str(b) for b in data[i : i + 32]) for i in range(0, len(data), 32))
        (tmp_path / "model_bytes.cpp").write_text(
            '#include <cstdint>\nextern "C" {\nalignas(16) extern const uint8_t espdl_streaming_tcn_espdl[];\n'
            f"alignas(16) const uint8_t espdl_streaming_tcn_espdl[] = {{\n{rows}\n}};\n}}\n"
        )
        (tmp_path / "main.cpp").write_text(GLUE_MAIN)
        exe = tmp_path / f"glue_{chip}"
        flags = ["-std=gnu++17", "-O1", "-fno-exceptions", "-fno-rtti", "-fsanitize=address,undefined"]
        compile_ = subprocess.run(
            [
                "g++",
                *flags,
                f"-I{REPO / 'include'}",
                f"-I{out}",
                str(tmp_path / "main.cpp"),
                str(out / "tcn.cpp"),
                str(tmp_path / "model_bytes.cpp"),
                str(host_engine.parent / "libespdl_streaming_host.a"),
                "-o",
                str(exe),
            ],
            capture_output=True,
            text=True,
        )
        assert compile_.returncode == 0, compile_.stderr
        run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout) == {"init": 0, "self_test": 0}, (chip, run.stderr)


# --------------------------------------------------------------------------- the Python API


def test_run_int_chunks_checks_its_input(host_engine: Path, example_builds: dict[str, Path]) -> None:
    espdl = example_builds["esp32c3"] / "tcn.espdl"
    good = {"input": np.zeros((1, 3, 16), dtype=np.int8)}
    assert run_int_chunks(host_engine, espdl, "half_up", []) == []
    (out,) = run_int_chunks(host_engine, espdl, "half_up", [good])
    assert list(out) == ["output"] and out["output"].dtype == np.int8 and out["output"].shape == (1, 8)
    bad = [
        ({"input": np.zeros((1, 4, 16), dtype=np.int8)}, "has shape \\[1, 4, 16\\], the model expects \\[1, 3, 16\\]"),
        ({"input": np.full((1, 3, 16), 200)}, "must hold int8 integers"),
        ({"input": np.zeros((1, 3, 16))}, "must hold int8 integers"),
        ({}, "input 'input' is missing"),
        ({**good, "other": good["input"]}, "has no input 'other'"),
    ]
    for chunk, message in bad:
        with pytest.raises(HostEngineError, match=message):
            run_int_chunks(host_engine, espdl, "half_up", [good, chunk])
    with pytest.raises(HostEngineError, match="rounding must be"):
        run_int_chunks(host_engine, espdl, "nearest", [good])


def test_build_is_cached_and_missing_tools_name_the_fix(
    host_engine: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert build_host_engine(sanitize=True) == host_engine  # unchanged sources: no rebuild
    import espdl_streaming.host_engine as module

    monkeypatch.setattr(module, "_find_tool", lambda name: None)
    with pytest.raises(HostEngineUnavailableError, match="pip install cmake"):
        build_host_engine(tmp_path / "fresh")
    assert issubclass(HostEngineUnavailableError, EspdlStreamingError)
