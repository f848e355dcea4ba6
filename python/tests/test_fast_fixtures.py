"""The fast tier: the reader, the simulator and the C++ host engine on committed .espdl fixtures.

The fixtures (tests/data/fixtures/, listed in its manifest.json) are tiny models built once with the
real toolchain by tools/make_test_fixtures.py; these tests need neither torch nor esp-ppq. Per fixture:
the files are those the manifest records; the reader reads what the report says; the simulator reproduces
esp-ppq's own test outputs embedded in the offline model, the streaming model run chunk by chunk equals
the offline model on every causal prefix, and it reproduces the golden stream the build recorded in the
generated class (NAME.golden.json); the host engine equals the simulator bit for bit and gives the same golden outputs.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from engine_parity import assert_engine_matches_simulator

from espdl_streaming.espdl import LoopedSimulator, Simulator, StateLoop, load_espdl, quantize_values
from espdl_streaming.host_engine import model_info, run_int_chunks

FIXTURES = Path(__file__).resolve().parent / "data" / "fixtures"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
NAMES = sorted(MANIFEST["fixtures"])
STREAM_CHUNKS = 12  # chunks of the random stream compared with the offline model


def report(name: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads((FIXTURES / name / f"{name}.report.json").read_text())
    return result


def golden(name: str) -> tuple[list[np.ndarray], list[dict[str, np.ndarray]]]:
    """The golden stream the build wrote into the generated class (NAME.golden.json): per chunk, the
    quantized input and every output (raw values). The class holds the float frames; the glue quantizes
    them with the input's exponent and the chip's rounding, as the build did."""
    rep = report(name)
    data = json.loads((FIXTURES / name / f"{name}.golden.json").read_text())
    spec, chunks = rep["input"], data["chunks"]
    assert chunks == rep["golden_chunks"] >= 2
    frames = np.array(data["frames"], np.float32).reshape(chunks, *spec["shape"])
    q = [quantize_values(f, spec["exponent"], spec["dtype"], rep["streaming"]["rounding"]) for f in frames]
    outputs: list[dict[str, np.ndarray]] = [{} for _ in range(chunks)]
    for out in rep["outputs"]:
        values = np.array(data["outputs"][out["name"]], dtype=out["dtype"])
        for k, chunk in enumerate(values.reshape(chunks, *out["shape"])):
            outputs[k][out["name"]] = chunk
    return q, outputs


def random_stream(name: str, chunks: int) -> np.ndarray:
    """A seeded stream of integer frames [1, chunks * chunk_frames, *features], some saturating."""
    spec = report(name)["input"]
    limits = np.iinfo(spec["dtype"])
    rng = np.random.default_rng(sum(name.encode()))
    shape = [1, chunks * spec["shape"][1], *spec["shape"][2:]]
    values = rng.normal(0.0, (limits.max + 1) / 4, size=shape)
    return np.clip(np.rint(values), limits.min, limits.max).astype(spec["dtype"])


# --------------------------------------------------------------------------- the fixture set


def test_the_fixtures_are_what_the_manifest_records() -> None:
    """Every fixture's files, sizes and hashes as tools/make_test_fixtures.py recorded them, nothing else, and
    built from the models as they are (else: .venv/bin/python tools/make_test_fixtures.py)."""
    built = MANIFEST["built_with"]
    for source, digest in MANIFEST["sources"].items():  # the models: edited without a rebuild?
        path = FIXTURES.parents[3] / source
        assert hashlib.sha256(path.read_bytes()).hexdigest() == digest, f"{source} changed: rebuild the fixtures"
    assert {"espdl_streaming", "esp_ppq", "torch"} <= set(built)
    dirs = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir() and p.name != "__pycache__")
    assert dirs == NAMES, "fixture directories and manifest.json disagree: run tools/make_test_fixtures.py"
    for name in NAMES:
        entry = MANIFEST["fixtures"][name]
        files = {p.name: p for p in (FIXTURES / name).iterdir()}
        assert sorted(files) == sorted(entry["files"]), name
        for file, want in entry["files"].items():
            data = files[file].read_bytes()
            assert len(data) == want["bytes"], f"{name}/{file}"
            assert hashlib.sha256(data).hexdigest() == want["sha256"], f"{name}/{file} changed: rebuild it"
        assert entry["command"][:5] == ["python", "-m", "espdl_streaming", "build", "--name"]
        assert entry["command"][5] == name and entry["command"][-2:] == ["--out-dir", "DIR"]
        rep = report(name)
        assert rep["name"] == name and rep["target"] == entry["target"] and rep["quant"] == entry["quant"]
        assert rep["espdl_streaming_version"] == built["espdl_streaming"], name
        assert rep["esp_ppq_version"] == built["esp_ppq"], name
        assert rep["espdl_sha256"] == entry["files"][f"{name}.espdl"]["sha256"], name
        assert rep["streaming"]["verified"] and rep["streaming"]["max_abs_diff"] == 0, name
    # What the set covers: both roundings, both widths, a W8A16 model, a recurrent state, two outputs.
    reps = [report(n) for n in NAMES]
    assert {r["streaming"]["rounding"] for r in reps} == {"half_even", "half_up"}
    assert {r["quant"] for r in reps} >= {"w8a8", "w8a16", "w16a16"}
    assert any(r["recurrent_states"] for r in reps) and any(len(r["outputs"]) > 1 for r in reps)


# --------------------------------------------------------------------------- reader and simulator


@pytest.mark.parametrize("name", NAMES)
def test_the_reader_reads_what_the_report_says(name: str) -> None:
    rep = report(name)
    model = load_espdl(FIXTURES / name / f"{name}.espdl")
    inputs = {v.name: v for v in model.inputs}
    spec = rep["input"]
    assert [inputs[spec["name"]].dtype, list(inputs[spec["name"]].shape)] == [spec["dtype"], spec["shape"]]
    assert inputs[spec["name"]].exponent == spec["exponent"]
    outputs = {v.name: v for v in model.outputs}
    for out in rep["outputs"]:
        assert (outputs[out["name"]].dtype, outputs[out["name"]].exponent) == (out["dtype"], out["exponent"])
    states = {(s["input"], s["output"]) for s in rep["recurrent_states"]}
    assert {(i.name, o.name) for i, o in StateLoop.of(model, name).pairs} == states
    assert set(inputs) == {spec["name"], *(i for i, _ in states)}
    offline = load_espdl(FIXTURES / name / f"{name}.offline.espdl")
    assert offline.test_inputs and offline.test_outputs
    assert model.metadata == load_espdl(FIXTURES / name / f"{name}.espdl").metadata


@pytest.mark.parametrize("name", NAMES)
def test_the_simulator_reproduces_esp_ppqs_test_outputs(name: str) -> None:
    """The offline model carries esp-ppq's own test input and outputs: the simulator's ground truth (at
    16 bits esp-ppq's float reference may be one step off, as ESP-DL's Model::test() accepts)."""
    rep = report(name)
    model = load_espdl(FIXTURES / name / f"{name}.offline.espdl")
    got = Simulator(model, rep["streaming"]["rounding"]).run(model.test_inputs)
    for out, want in model.test_outputs.items():
        diff = np.abs(got[out].astype(np.int64) - want.astype(np.int64))
        assert diff.max() <= (1 if want.dtype == np.int16 else 0), f"{name}: output {out}"


@pytest.mark.parametrize("name", NAMES)
def test_streaming_chunks_equal_the_offline_model(name: str) -> None:
    """Chunk k of the streaming model equals the offline model run on the causal prefix [0, (k+1) * chunk):
    the whole output, or its last frames on the time axis (1); chunks before the offline model can run
    on the prefix are the report's warm-up chunks."""
    rep = report(name)
    rounding = rep["streaming"]["rounding"]
    streaming = LoopedSimulator(load_espdl(FIXTURES / name / f"{name}.espdl"), rounding, name)
    off_model = load_espdl(FIXTURES / name / f"{name}.offline.espdl")
    offline = Simulator(off_model, rounding, any_frames=True)
    start = StateLoop.of(off_model, name).initial()
    in_name, chunk = rep["input"]["name"], rep["chunk_frames"]
    stream = random_stream(name, STREAM_CHUNKS)
    warmup = compared = 0
    for k in range(STREAM_CHUNKS):
        got = streaming.run({in_name: stream[:, k * chunk : (k + 1) * chunk]})
        try:
            want = offline.run({in_name: stream[:, : (k + 1) * chunk], **start})
        except ValueError:  # the offline model's head needs more frames than the prefix has
            assert compared == 0, f"{name}: chunk {k}: the offline model fails after it ran"
            warmup += 1
            continue
        for out in rep["outputs"]:
            have, ref = got[out["name"]], want[out["name"]]
            if ref.shape != have.shape:
                ref = ref[:, ref.shape[1] - have.shape[1] :]
            np.testing.assert_array_equal(have, ref, err_msg=f"{name}: chunk {k}, output {out['name']!r}")
        compared += 1
    assert warmup == rep["streaming"]["warmup_chunks"]
    assert compared == STREAM_CHUNKS - warmup


@pytest.mark.parametrize("name", NAMES)
def test_the_simulator_reproduces_the_recorded_golden_stream(name: str) -> None:
    rep = report(name)
    sim = LoopedSimulator(load_espdl(FIXTURES / name / f"{name}.espdl"), rep["streaming"]["rounding"], name)
    chunks, outputs = golden(name)
    for k, (chunk, want) in enumerate(zip(chunks, outputs)):
        got = sim.run({rep["input"]["name"]: chunk})
        for out, values in want.items():
            np.testing.assert_array_equal(got[out], values, err_msg=f"{name}: golden chunk {k}, output {out!r}")


# --------------------------------------------------------------------------- the C++ host engine


@pytest.mark.parametrize("name", NAMES)
def test_the_host_engine_equals_the_simulator(host_engine: Path, name: str) -> None:
    """Bit for bit, states looped back: on the golden stream, a random stream, and every input held at 0,
    at its largest and at its smallest integer."""
    rep = report(name)
    path = FIXTURES / name / f"{name}.espdl"
    info = model_info(host_engine, path)
    assert [t["name"] for t in info["inputs"] if not t["name"].startswith("state_in")] == [rep["input"]["name"]]
    in_name, chunk = rep["input"]["name"], rep["chunk_frames"]
    stream = random_stream(name, 4)
    chunks = golden(name)[0]
    chunks = [{in_name: c} for c in chunks] + [{in_name: stream[:, k * chunk : (k + 1) * chunk]} for k in range(4)]
    limits = np.iinfo(rep["input"]["dtype"])
    chunks += [{in_name: np.full(rep["input"]["shape"], v, rep["input"]["dtype"])} for v in (0, limits.max, limits.min)]
    assert_engine_matches_simulator(host_engine, path, rep["streaming"]["rounding"], 0, inputs=chunks)


@pytest.mark.parametrize("name", NAMES)
def test_the_host_engine_runs_the_offline_model_on_esp_ppqs_test_input(host_engine: Path, name: str) -> None:
    """The whole offline input in one run, from the initial state: the simulator's outputs exactly."""
    rep = report(name)
    path = FIXTURES / name / f"{name}.offline.espdl"
    model = load_espdl(path)
    states = {s["input"] for s in rep["recurrent_states"]}
    test_input = {k: v for k, v in model.test_inputs.items() if k not in states}
    assert set(test_input) == {rep["input"]["name"]}
    assert_engine_matches_simulator(host_engine, path, rep["streaming"]["rounding"], 0, inputs=[test_input])


@pytest.mark.parametrize("name", NAMES)
def test_the_host_engine_gives_the_recorded_golden_outputs(host_engine: Path, name: str) -> None:
    rep = report(name)
    chunks, outputs = golden(name)
    got = run_int_chunks(
        host_engine,
        FIXTURES / name / f"{name}.espdl",
        rep["streaming"]["rounding"],
        [{rep["input"]["name"]: c} for c in chunks],
    )
    for k, (have, want) in enumerate(zip(got, outputs)):
        for out, values in want.items():
            np.testing.assert_array_equal(have[out], values, err_msg=f"{name}: golden chunk {k}, output {out!r}")
