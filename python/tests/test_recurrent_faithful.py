"""GRU/LSTM conversions compute what the user's float model computes.

* A layer that starts from a learned initial state (a constant h0/c0) starts from it in every
  runner: the verifier, `run`, the C++ host engine, and the generated class after init() and
  reset() (its self_test() replays golden chunks computed from that state).
* A last state the user's forward returns ((y, h_n)) stays a user output.
* An initial state computed from the input is refused, naming the node.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import build_args, run_cli
from host_project import build_and_run

from espdl_streaming.espdl import LoopedSimulator, StateLoop, dequantize_values, load_espdl, quantize_values
from espdl_streaming.verify import TensorSpec, _random_stream

ZOO = Path(__file__).resolve().parent / "zoo" / "faithful_recurrent.py"
CHUNK = 4


def _build(name: str, out: Path, chip: str = "esp32p4", *extra: str) -> dict:
    r = run_cli(*build_args(name, f"{ZOO}:{name}", "1,8,16", CHUNK, chip, out, "--calib-steps", "8", *extra))
    assert r.returncode == 0, r.stderr
    return json.loads((out / f"{name}.report.json").read_text())


def _float_model(name: str) -> torch.nn.Module:
    from zoo import faithful_recurrent

    return getattr(faithful_recurrent, name)()


@pytest.fixture(scope="module")
def learned_h0(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("gru_learned_h0")
    return out, _build("gru_learned_h0", out)


def test_learned_initial_state_is_where_every_stream_starts(learned_h0: tuple[Path, dict]) -> None:
    out, report = learned_h0
    (state,) = report["recurrent_states"]
    assert state["initial"] == "learned"
    model = load_espdl(out / "gru_learned_h0.espdl")
    loop = StateLoop.of(model, "gru_learned_h0.espdl")
    start = loop.initial()["state_in_0"]
    assert np.any(start != 0)

    # The float model on the first chunk: the learned start state is what it computes; zeros are not.
    spec = TensorSpec(**report["input"])
    rounding = report["streaming"]["rounding"]
    frames = _random_stream(spec, CHUNK, spec.shape[2:])
    q = quantize_values(frames, spec.exponent, spec.dtype, rounding)[None]
    torch_in = torch.from_numpy(dequantize_values(q, spec.exponent).astype(np.float32)).transpose(1, 2)
    with torch.no_grad():
        want = _float_model("gru_learned_h0")(torch_in).numpy()
    out_spec = report["outputs"][0]

    def first_chunk(start_from_zero: bool) -> np.ndarray:
        sim = LoopedSimulator(model, rounding)
        if start_from_zero:
            sim.state = {k: np.zeros_like(v) for k, v in sim.state.items()}
        got = sim.run({spec.name: q})[out_spec["name"]]
        return dequantize_values(np.asarray(got), out_spec["exponent"])

    err_learned = float(np.abs(first_chunk(False) - want).max())
    err_zero = float(np.abs(first_chunk(True) - want).max())
    assert err_learned < err_zero / 2, (err_learned, err_zero)


def test_run_cli_starts_from_the_learned_state(learned_h0: tuple[Path, dict], tmp_path: Path) -> None:
    out, report = learned_h0
    spec = TensorSpec(**report["input"])
    frames = _random_stream(spec, 3 * CHUNK, spec.shape[2:])
    np.save(tmp_path / "frames.npy", frames)
    model = load_espdl(out / "gru_learned_h0.espdl")
    rounding = report["streaming"]["rounding"]
    sim = LoopedSimulator(model, rounding)
    q = quantize_values(frames, spec.exponent, spec.dtype, rounding)[None]
    name = report["outputs"][0]["name"]
    want = np.concatenate([sim.run({spec.name: q[:, k * CHUNK : (k + 1) * CHUNK]})[name] for k in range(3)], axis=1)
    for engine in ("python", "host"):
        result = tmp_path / f"{engine}.npy"
        r = run_cli("run", out / "gru_learned_h0.espdl", "--input", tmp_path / "frames.npy", "--out", result,
                    "--engine", engine)  # fmt: skip
        assert r.returncode == 0, r.stderr
        expected = dequantize_values(want, report["outputs"][0]["exponent"])
        np.testing.assert_array_equal(np.load(result), expected, engine)


def test_returned_last_state_stays_a_user_output(tmp_path: Path) -> None:
    report = _build("gru_returns_hn", tmp_path, "esp32s3")
    names = [o["name"] for o in report["outputs"]]
    assert names == ["output0", "output1"]  # y and h_n, as the forward returns them
    assert report["outputs"][1]["shape"] == [1, 1, 6]
    (state,) = report["recurrent_states"]
    assert state["output"] == "output1" and state["user_output"] is True
    hpp = (tmp_path / "gru_returns_hn.hpp").read_text()
    assert "output_count = 2;" in hpp


def test_input_dependent_initial_state_is_refused(tmp_path: Path) -> None:
    r = run_cli(*build_args("gru_h0_from_input", f"{ZOO}:gru_h0_from_input", "1,8,16", CHUNK, "esp32p4", tmp_path))
    assert r.returncode == 2
    assert r.stderr.startswith("error: gru_h0_from_input: node '/gru/GRU' (GRU) starts from an initial state")
    assert "computed from the model input" in r.stderr
    assert list(tmp_path.iterdir()) == []


HOST_MODELS = (("gru_learned_h0", "esp32p4"), ("gru_returns_hn", "esp32s3"), ("lstm_returns_state", "esp32c3"))
MAIN = r"""
#include <cstdio>

#include "gru_learned_h0.hpp"
#include "gru_returns_hn.hpp"
#include "lstm_returns_state.hpp"

template <typename M> int check(M &m, const char *name)
{
    int failures = 0;
    const esp_err_t init = m.init();
    failures += init != ESP_OK;
    // self_test(): the golden chunks computed from the learned state, then reset and chunk 0 again.
    const esp_err_t first = m.self_test();
    const esp_err_t second = m.self_test();
    failures += first != ESP_OK || second != ESP_OK;
    std::printf("%s init=%d self_test=%d,%d\n", name, int(init), int(first), int(second));
    return failures;
}

int main()
{
    static espdl_streaming::models::gru_learned_h0 a;
    static espdl_streaming::models::gru_returns_hn b;
    static espdl_streaming::models::lstm_returns_state c;
    return check(a, "gru_learned_h0") + check(b, "gru_returns_hn") + check(c, "lstm_returns_state");
}
"""


def test_generated_classes_start_from_the_learned_state_on_the_host_engine(tmp_path: Path) -> None:
    """The generated classes, linked with the C++ host engine through the plain-CMake core: init()
    and reset() restore the learned initial state (self_test() replays golden chunks computed from
    it, resets, and replays the first one again); a returned last state is an output and the state."""
    run = build_and_run(
        tmp_path,
        MAIN,
        [f'{m} MODEL "{ZOO}:{m}" INPUT_SHAPE 1 8 16 CHUNK_FRAMES {CHUNK} CHIP {chip} CALIB_STEPS 8'
         for m, chip in HOST_MODELS],
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [
        "gru_learned_h0 init=0 self_test=0,0",
        "gru_returns_hn init=0 self_test=0,0",
        "lstm_returns_state init=0 self_test=0,0",
    ]
