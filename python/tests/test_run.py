"""`python -m espdl_streaming run`: recorded float frames through a built model, as the firmware does."""

from __future__ import annotations

import copy
import json
import shutil
import sys
import types
from pathlib import Path

import numpy as np
import pytest
from conftest import build_args, run_cli

import espdl_streaming
from espdl_streaming import cli
from espdl_streaming import run as run_mod
from espdl_streaming.errors import EspdlFormatError
from espdl_streaming.espdl import (
    EspdlModel,
    Node,
    Simulator,
    ValueInfo,
    dequantize_values,
    load_espdl,
    quantize_values,
    rounding_for_target,
)

FRAMES = 50  # 16 chunks of 3 frames, 2 frames left over


def _frames(n: int = FRAMES, seed: int = 7) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, 16)) * 1.5).astype(np.float32)


def _reference(model_path: Path, frames: np.ndarray, target: str) -> tuple[np.ndarray, list[np.ndarray]]:
    """The streaming model driven chunk by chunk here: float32 frames -> int chunks -> run -> float32.
    Returns the stacked outputs [1, chunks, 8] and the integer input chunks."""
    model = load_espdl(model_path)
    rounding = rounding_for_target(target)
    (inp,), (out,) = model.inputs, model.outputs
    sim = Simulator(model, rounding)
    outs, q_chunks = [], []
    for k in range(len(frames) // 3):
        q = quantize_values(frames[3 * k : 3 * k + 3][None], inp.exponent, inp.dtype, rounding)
        q_chunks.append(q)
        outs.append(dequantize_values(sim.run({inp.name: q})[out.name], out.exponent).astype(np.float32))
    return np.stack(outs, axis=1), q_chunks


@pytest.fixture(scope="module")
def p4_run(example_builds: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):
    """One CLI run of the esp32p4 example on FRAMES random frames."""
    d = tmp_path_factory.mktemp("run_p4")
    np.save(d / "frames.npy", _frames())
    r = run_cli("run", example_builds["esp32p4"] / "tcn.espdl", "--input", d / "frames.npy", "--out", d / "out.npy")
    return d, r


def test_run_equals_the_model_driven_chunk_by_chunk(p4_run, example_builds: dict[str, Path]) -> None:
    d, r = p4_run
    assert r.returncode == 0, r.stderr
    got = np.load(d / "out.npy")
    want, _ = _reference(example_builds["esp32p4"] / "tcn.espdl", _frames(), "esp32p4")
    assert got.dtype == np.float32 and got.shape == (1, FRAMES // 3, 8)  # one [1, 8] result per chunk
    assert np.array_equal(got, want)
    assert np.abs(got).max() > 0  # not a stream of zeros


def test_run_matches_the_offline_model_on_every_prefix(p4_run, example_builds: dict[str, Path]) -> None:
    """Independent of the streaming file: chunk k equals the offline model on frames [0, 3(k+1))."""
    d, _ = p4_run
    got = np.load(d / "out.npy")
    build = example_builds["esp32p4"]
    offline = load_espdl(build / "tcn.offline.espdl")
    (inp,), (out,) = offline.inputs, offline.outputs
    sim = Simulator(offline, "half_even", any_frames=True)
    q = quantize_values(_frames()[None], inp.exponent, inp.dtype, "half_even")
    warmup = json.loads((build / "tcn.report.json").read_text())["streaming"]["warmup_chunks"]
    for k in range(warmup, FRAMES // 3):
        ref = dequantize_values(sim.run({inp.name: q[:, : 3 * (k + 1)]})[out.name], out.exponent)
        assert np.array_equal(got[:, k], ref.astype(np.float32)), f"chunk {k}"


def test_summary_and_dropped_frames(p4_run) -> None:
    d, r = p4_run
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    summary = lines[0]
    for part in ("tcn.espdl", "50 frames in", "16 chunks of 3 frames", "python engine", "esp32p4", "output [1, 16, 8]"):
        assert part in summary, summary
    assert "the last 2 of 50 frames" in r.stderr and "pending" in r.stderr


def test_no_dropped_message_when_frames_fill_the_chunks(example_builds: dict[str, Path], tmp_path: Path) -> None:
    np.save(tmp_path / "f.npy", _frames(48))
    r = run_cli(
        "run", example_builds["esp32p4"] / "tcn.espdl", "--input", tmp_path / "f.npy", "--out", tmp_path / "o.npy",
        "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and r.stderr == ""
    assert np.load(tmp_path / "o.npy").shape == (1, 16, 8)


def test_same_bytes_twice_and_npz_for_one_output(p4_run, example_builds: dict[str, Path]) -> None:
    d, _ = p4_run
    model = example_builds["esp32p4"] / "tcn.espdl"
    for out in ("again.npy", "a.npz", "b.npz"):
        r = run_cli("run", model, "--input", d / "frames.npy", "--out", d / out, "--quiet")
        assert r.returncode == 0, r.stderr
    assert (d / "again.npy").read_bytes() == (d / "out.npy").read_bytes()
    assert (d / "a.npz").read_bytes() == (d / "b.npz").read_bytes()  # no timestamps in the archive
    with np.load(d / "a.npz") as z:
        assert list(z.keys()) == ["output"]
        assert np.array_equal(z["output"], np.load(d / "out.npy"))


def test_target_from_the_report_and_override(example_builds: dict[str, Path], tmp_path: Path) -> None:
    """Frames exactly half-way between two steps: half-up (esp32s3) and half-to-even (esp32p4) differ."""
    model = example_builds["esp32s3"] / "tcn.espdl"
    exponent = load_espdl(model).inputs[0].exponent
    rng = np.random.default_rng(3)
    frames = ((rng.integers(-40, 40, (60, 16)) + 0.5) * 2.0**exponent).astype(np.float32)
    np.save(tmp_path / "f.npy", frames)
    r = run_cli("run", model, "--input", tmp_path / "f.npy", "--out", tmp_path / "report.npy")
    assert r.returncode == 0, r.stderr
    assert "esp32s3 rounding half_up" in r.stdout and r.stderr == ""
    r = run_cli("run", model, "--input", tmp_path / "f.npy", "--out", tmp_path / "p4.npy", "--target", "esp32p4")
    assert r.returncode == 0, r.stderr
    assert "built for esp32s3" in r.stderr and "half_even" in r.stderr  # warned, run as asked
    half_up, q_up = _reference(model, frames, "esp32s3")
    half_even, q_even = _reference(model, frames, "esp32p4")
    assert not all(np.array_equal(a, b) for a, b in zip(q_up, q_even))
    assert np.array_equal(np.load(tmp_path / "report.npy"), half_up)
    assert np.array_equal(np.load(tmp_path / "p4.npy"), half_even)
    assert not np.array_equal(half_up, half_even)


def test_nan_is_zero_and_infinities_saturate_like_the_device(example_builds: dict[str, Path]) -> None:
    model_path = example_builds["esp32c3"] / "tcn.espdl"
    model = load_espdl(model_path)
    spec = run_mod.stream_spec(model, str(model_path))
    frames = _frames(30)
    frames[4, 3] = np.nan
    frames[10, :] = np.inf
    frames[11, 2] = -np.inf
    clean = frames.copy()
    clean[4, 3] = 0.0
    clean[10, :] = 1e30
    clean[11, 2] = -1e30
    engine = run_mod.python_engine(model, "half_up")
    got = run_mod.run_frames(spec, frames, "half_up", engine).outputs["output"]
    want = run_mod.run_frames(spec, clean, "half_up", engine).outputs["output"]
    assert np.array_equal(got, want) and np.isfinite(got).all()


# ---------------------------------------------------------------------------------------------
# User errors: exit 2, one `error:` line naming the problem, nothing written.


def _lone_model(example_builds: dict[str, Path], d: Path) -> Path:
    shutil.copy(example_builds["esp32p4"] / "tcn.espdl", d / "lone.espdl")
    return d / "lone.espdl"


def _stale_report(example_builds: dict[str, Path], d: Path) -> Path:
    shutil.copy(example_builds["esp32p4"] / "tcn.espdl", d / "tcn.espdl")
    shutil.copy(example_builds["esp32s3"] / "tcn.report.json", d / "tcn.report.json")
    return d / "tcn.espdl"


@pytest.mark.parametrize(
    "case,expect",
    [
        ("wrong_features", ["frames of shape [50, 24]", "expected [frames, 16]", "bad.npy"]),
        ("transposed", ["frames of shape [16, 50]", "expected [frames, 16]", "transpose"]),
        ("one_frame_vector", ["frames of shape [16]", "expected [frames, 16]"]),
        ("integers", ["holds int16 values", "float frames"]),
        ("npz_input", [".npz archive"]),
        ("missing_input", ["nope.npy: file not found"]),
        ("not_npy", ["not a readable .npy file"]),
        ("short", ["bad.npy: 2 frame(s) do not fill one chunk of 3 frames"]),
        ("bad_suffix", ["--out", ".npy file (one output) or an .npz file"]),
        ("bad_target", ["--target 'esp8266'"]),
        ("no_report", ["no --target given", "lone.report.json", "pass --target"]),
        ("stale_report", ["describes another build", "pass --target"]),
        ("not_a_model", ["bad magic"]),
    ],
)
def test_user_errors_exit_2_and_write_nothing(
    example_builds: dict[str, Path], tmp_path: Path, case: str, expect: list[str]
) -> None:
    model = example_builds["esp32p4"] / "tcn.espdl"
    frames = tmp_path / "bad.npy"
    out = tmp_path / "out" / "o.npy"
    extra: list[str] = []
    data: object = _frames()
    if case == "wrong_features":
        data = np.zeros((50, 24), np.float32)
    elif case == "transposed":
        data = _frames().T.copy()
    elif case == "one_frame_vector":
        data = _frames()[0]
    elif case == "integers":
        data = np.zeros((50, 16), np.int16)
    elif case == "short":
        data = _frames(2)
    if case == "npz_input":
        frames = tmp_path / "bad.npz"
        np.savez(frames, x=_frames())
    elif case == "missing_input":
        frames = tmp_path / "nope.npy"
    elif case == "not_npy":
        frames.write_text("hello")
    else:
        np.save(frames, data)
    if case == "bad_suffix":
        out = tmp_path / "out" / "o.bin"
    elif case == "bad_target":
        extra = ["--target", "esp8266"]
    elif case == "no_report":
        model = _lone_model(example_builds, tmp_path)
    elif case == "stale_report":
        model = _stale_report(example_builds, tmp_path)
    elif case == "not_a_model":
        model = tmp_path / "junk.espdl"
        model.write_bytes(b"not a model at all")
    r = run_cli("run", model, "--input", frames, "--out", out, *extra)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for part in expect:
        assert part in r.stderr
    assert r.stdout == ""
    assert not out.parent.exists()  # nothing written, not even the directory


def test_error_leaves_an_existing_out_file_intact(example_builds: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "o.npy"
    out.write_bytes(b"previous results")
    np.save(tmp_path / "f.npy", np.zeros((50, 24), np.float32))
    r = run_cli("run", example_builds["esp32p4"] / "tcn.espdl", "--input", tmp_path / "f.npy", "--out", out)
    assert r.returncode == 2
    assert out.read_bytes() == b"previous results"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy", "o.npy"]


def test_unwritable_out_is_a_user_error(example_builds: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    np.save(tmp_path / "f.npy", _frames(9))
    r = run_cli(
        "run", example_builds["esp32p4"] / "tcn.espdl", "--input", tmp_path / "f.npy", "--out", blocker / "o.npy"
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: --out") and "cannot write" in r.stderr and "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.npy", "file"]


def test_unknown_engine_is_an_argument_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["run", "m.espdl", "--input", "f.npy", "--out", "o.npy", "--engine", "gpu"])
    assert exc.value.code == 2
    assert "invalid choice: 'gpu'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# Several outputs, outputs with a time axis and recurrent state, on a model made from the example:
# acc = output + state_in_0, state_out_0 = acc (a running, saturating sum of the per-chunk output),
# plus the per-frame projection as an extra output.

PER_FRAME = "/proj/Conv_output_0"  # [1, chunk, 16] in the streaming example


def _recurrent_example(model: EspdlModel) -> EspdlModel:
    m = copy.deepcopy(model)
    (out,) = m.outputs
    state_in = ValueInfo("state_in_0", out.shape, out.dtype, out.exponent)
    acc = ValueInfo("acc", out.shape, out.dtype, out.exponent)
    state_out = ValueInfo("state_out_0", out.shape, out.dtype, out.exponent)
    m.inputs = [state_in, *m.inputs]  # the state input first: it must not be taken for the stream
    m.nodes += [
        Node("acc_add", "Add", ["output", "state_in_0"], ["acc"], {}),
        Node("state_copy", "Identity", ["acc"], ["state_out_0"], {}),
    ]
    m.outputs = [state_out, out, acc, m.value_info[PER_FRAME]]
    m.value_info.update({"acc": acc, "state_out_0": state_out})
    return m


def test_state_loops_back_and_stays_out_of_frames_and_outputs(example_builds: dict[str, Path]) -> None:
    path = example_builds["esp32p4"] / "tcn.espdl"
    plain = load_espdl(path)
    model = _recurrent_example(plain)
    spec = run_mod.stream_spec(model, "rec.espdl")
    assert spec.input.name == "input" and spec.frame_shape == (16,)
    assert [o.name for o in spec.outputs] == [PER_FRAME, "acc", "output"]
    frames = _frames(31)
    result = run_mod.run_frames(spec, frames, "half_even", run_mod.python_engine(model, "half_even"))
    assert set(result.outputs) == {PER_FRAME, "acc", "output"} and result.dropped == 1

    # independently: the plain example chunk by chunk, the running sum saturated in int8
    sim = Simulator(plain, "half_even")
    (inp,) = plain.inputs
    per_frame_exp = plain.value_info[PER_FRAME].exponent
    acc = np.zeros((1, 8), np.int64)
    want_out, want_acc, want_frames = [], [], []
    for k in range(10):
        q = quantize_values(frames[3 * k : 3 * k + 3][None], inp.exponent, inp.dtype, "half_even")
        trace = sim.run({inp.name: q}, trace=True)
        acc = np.clip(acc + trace["output"], -128, 127)
        want_out.append(dequantize_values(trace["output"], -8))
        want_acc.append(dequantize_values(acc, -8))
        want_frames.append(dequantize_values(trace[PER_FRAME], per_frame_exp))
    assert plain.outputs[0].exponent == -8
    assert np.array_equal(result.outputs["output"], np.stack(want_out, axis=1).astype(np.float32))
    assert np.array_equal(result.outputs["acc"], np.stack(want_acc, axis=1).astype(np.float32))
    assert not np.array_equal(result.outputs["acc"], result.outputs["output"])  # the state did loop back
    # a per-frame output: chunks concatenated on the time axis, one row per frame run
    assert result.outputs[PER_FRAME].shape == (1, 30, 16)
    assert np.array_equal(result.outputs[PER_FRAME], np.concatenate(want_frames, axis=1).astype(np.float32))

    # several outputs: .npz only, keyed by output name, no state
    with pytest.raises(run_mod.RunError, match=r"has 3 outputs .*use --out o\.npz"):
        run_mod.check_out_path(Path("o.npy"), spec)
    run_mod.check_out_path(Path("o.npz"), spec)
    import io

    with np.load(io.BytesIO(run_mod.encode_outputs(result.outputs, Path("o.npz")))) as z:
        assert sorted(z.keys()) == sorted([PER_FRAME, "acc", "output"])
        assert np.array_equal(z["acc"], result.outputs["acc"])


def test_state_pairs_are_checked(example_builds: dict[str, Path]) -> None:
    model = _recurrent_example(load_espdl(example_builds["esp32p4"] / "tcn.espdl"))
    lonely = copy.deepcopy(model)
    lonely.outputs = [o for o in lonely.outputs if o.name != "state_out_0"]
    with pytest.raises(EspdlFormatError, match="'state_in_0' but no 'state_out_0'"):
        run_mod.stream_spec(lonely, "rec.espdl")
    loop = run_mod.stream_spec(model, "rec.espdl").state
    assert [(i.name, o.name) for i, o in loop.pairs] == [("state_in_0", "state_out_0")]
    assert not loop.initial()["state_in_0"].any()
    with pytest.raises(EspdlFormatError, match="cannot loop its state back"):
        loop.next({"state_out_0": np.zeros((1, 9), np.int8)})
    nxt = loop.next({"state_out_0": np.arange(8, dtype=np.int8)})  # same values, any layout
    assert nxt["state_in_0"].shape == (1, 8) and nxt["state_in_0"][0, 7] == 7


@pytest.fixture(scope="module")
def lstm_build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real recurrent model: causal conv + LSTM, its hidden and cell state looped back by the glue."""
    out = tmp_path_factory.mktemp("lstm")
    zoo = Path(__file__).resolve().parent / "zoo" / "zoo_models.py"
    r = run_cli(*build_args("lstm", f"{zoo}:recurrent_lstm", "1,8,16", 4, "esp32s3", out, "--quiet"))
    assert r.returncode == 0, r.stderr
    return out / "lstm.espdl"


def test_recurrent_model_streams_like_the_offline_model(lstm_build: Path, tmp_path: Path) -> None:
    model = load_espdl(lstm_build)
    assert {v.name for v in model.inputs} > {"state_in_0", "input"}  # the premise: state inputs exist
    frames = np.random.default_rng(1).standard_normal((42, 8)).astype(np.float32)
    np.save(tmp_path / "f.npy", frames)
    r = run_cli("run", lstm_build, "--input", tmp_path / "f.npy", "--out", tmp_path / "o.npy")  # .npy: one user output
    assert r.returncode == 0, r.stderr
    assert "10 chunks of 4 frames" in r.stdout and "output [1, 40, 5]" in r.stdout and "state" not in r.stdout
    got = np.load(tmp_path / "o.npy")
    # the offline model over the whole stream at once, from a zero state
    offline = load_espdl(lstm_build.with_name("lstm.offline.espdl"))
    feeds = {v.name: np.zeros(v.shape, v.dtype) for v in offline.inputs}
    inp = next(v for v in offline.inputs if v.name == "input")
    feeds["input"] = quantize_values(frames[None, :40], inp.exponent, inp.dtype, "half_up")
    out = next(v for v in offline.outputs if v.name == "output")
    want = Simulator(offline, "half_up", any_frames=True).run(feeds)["output"]
    assert np.array_equal(got, dequantize_values(want, out.exponent).astype(np.float32))
    # and it takes the loop-back: every chunk from a zero state gives something else
    spec = run_mod.stream_spec(model, str(lstm_build))
    sim = Simulator(model, "half_up")
    zeros = spec.state.initial()
    chunks, _ = run_mod.quantize_chunks(frames, spec, "half_up")
    amnesic = run_mod.assemble_outputs(spec, [sim.run({**c, **zeros}) for c in chunks])["output"]
    assert not np.array_equal(amnesic, got)


def test_time_axis_rule() -> None:
    # esp-ppq records the offline shape of a streaming model's outputs
    assert run_mod.time_axis((1, 20, 4), (1, 4, 4)) == 1
    assert run_mod.time_axis((1, 20), (1, 4)) == 1  # a per-frame scalar
    assert run_mod.time_axis((1, 8), (1, 8)) is None  # one result per chunk
    # what the build recorded wins: an NCW output after a per-frame Linear keeps time on axis 2
    assert run_mod.time_axis((1, 3, 16), (1, 3, 4), built=2) == 2


def test_ncw_output_streams_verifies_and_runs_along_its_time_axis(tmp_path: Path) -> None:
    """A per-frame Linear followed by a transpose back to [B, C, T]: the exported output keeps time on
    axis 2; the verifier compares it there, and run concatenates the chunks there."""
    model = tmp_path / "ncw_out.py"
    model.write_text(
        "import torch\nfrom torch import nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.inp = nn.Conv1d(8, 12, 1)\n        self.lin = nn.Linear(12, 3)\n\n"
        "    def forward(self, x):\n"
        "        return self.lin(torch.relu(self.inp(x)).transpose(1, 2)).transpose(1, 2)\n\n\n"
        "def build():\n    torch.manual_seed(1)\n    return M().eval()\n"
    )
    out = tmp_path / "out"
    r = run_cli(*build_args("ncw_out", f"{model}:build", "1,8,16", 4, "esp32p4", out, "--calib-steps", "4"))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "ncw_out.report.json").read_text())
    assert report["outputs"][0]["shape"] == [1, 3, 4] and report["streaming"]["verified"] is True
    frames = np.random.default_rng(3).standard_normal((12, 8)).astype(np.float32)
    np.save(tmp_path / "frames.npy", frames)
    r = run_cli("run", out / "ncw_out.espdl", "--input", tmp_path / "frames.npy", "--out", tmp_path / "y.npy")
    assert r.returncode == 0, r.stderr
    assert np.load(tmp_path / "y.npy").shape == (1, 3, 12)


# ---------------------------------------------------------------------------------------------
# --engine host: the same float <-> int path, the integer step in the C++ runtime.


def test_host_engine_gets_all_chunks_in_one_call(
    example_builds: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The contract with host_engine.py, with a stand-in that computes with the simulator."""
    model = example_builds["esp32s3"] / "tcn.espdl"
    calls: list[tuple] = []

    def run_int_chunks(exe: Path, espdl: Path, rounding: str, chunks: list[dict[str, np.ndarray]]):
        calls.append((exe, espdl, rounding, chunks))
        sim = Simulator(load_espdl(espdl), rounding)  # type: ignore[arg-type]
        return [sim.run(c) for c in chunks]

    fake = types.ModuleType("espdl_streaming.host_engine")
    fake.build_host_engine = lambda build_dir=None, *, sanitize=False: Path("/fake/runner")  # type: ignore[attr-defined]
    fake.run_int_chunks = run_int_chunks  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "espdl_streaming.host_engine", fake)
    monkeypatch.setattr(espdl_streaming, "host_engine", fake, raising=False)  # if the real one was imported
    np.save(tmp_path / "f.npy", _frames())
    args = ["run", str(model), "--input", str(tmp_path / "f.npy"), "--out", str(tmp_path / "h.npy"), "--engine", "host"]
    assert cli.main(args) == 0
    (exe, espdl, rounding, chunks), *more = calls
    assert not more and exe == Path("/fake/runner") and espdl == model and rounding == "half_up"
    _, q_chunks = _reference(model, _frames(), "esp32s3")
    assert len(chunks) == 16 and [set(c) for c in chunks] == [{"input"}] * 16
    assert all(np.array_equal(c["input"], q) and c["input"].dtype == np.int8 for c, q in zip(chunks, q_chunks))
    assert np.array_equal(np.load(tmp_path / "h.npy"), _reference(model, _frames(), "esp32s3")[0])


@pytest.mark.parametrize("which", ["tcn-esp32p4", "tcn-esp32s3", "lstm"])
def test_host_engine_equals_python_engine(request: pytest.FixtureRequest, tmp_path: Path, which: str) -> None:
    if which == "lstm":  # recurrent: the host engine loops the state back itself
        model = request.getfixturevalue("lstm_build")
        frames = np.random.default_rng(5).standard_normal((50, 8)).astype(np.float32)
    else:
        model = request.getfixturevalue("example_builds")[which.split("-")[1]] / "tcn.espdl"
        frames = _frames()
    np.save(tmp_path / "f.npy", frames)
    outs = {}
    for engine in ("python", "host"):
        out = tmp_path / f"{engine}.npy"
        r = run_cli("run", model, "--input", tmp_path / "f.npy", "--out", out, "--engine", engine)
        if which == "lstm" and "(op type LSTM): the host engine has no implementation" in r.stderr:
            assert r.returncode == 2 and not out.exists()  # refused cleanly; runs for real once it has one
            pytest.xfail("the host engine has no LSTM kernel yet")
        assert r.returncode == 0, r.stderr
        assert f"{engine} engine" in r.stdout and "the last 2 of 50 frames" in r.stderr
        outs[engine] = out.read_bytes()
    assert outs["host"] == outs["python"]
