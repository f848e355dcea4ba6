"""Figure 5: the C++ host engine against the Python simulator, per chunk, on the same .espdl files.

For each model (the example TCN from figure 3 and the GRU example), the same random integer chunks
go through (a) `espdl_run` (host/, built -O2 without sanitizers) and (b) espdl.simulator.LoopedSimulator
driven chunk by chunk as `python -m espdl_streaming run --engine python` does. Both must give the
same integers (checked here too). The engine's time per chunk is the difference between a run of
CHUNKS chunks and a run of 0 chunks of the same process (start-up and model load cancel); the
simulator's is timed in this process. Reported: simulator time / engine time per chunk, median of
REPS alternating repetitions with min and max.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import PYTHON, REPO, WORK, Stats, code, command_text, fmt_ratio, fresh_dir, run_timed, table

sys.path.insert(0, str(REPO / "python"))

from espdl_streaming.espdl import LoopedSimulator, is_state_input, load_espdl  # noqa: E402
from espdl_streaming.facts import rounding_for_target  # noqa: E402
from espdl_streaming.host_engine import build_host_engine, run_int_chunks  # noqa: E402

CHUNKS = 400
SIM_CHUNKS = 60
REPS = 5
GRU_MODEL = REPO / "examples" / "gru" / "model.py"


@dataclass
class EngineFigures:
    name: str
    chunks: int
    engine_us: Stats
    sim_us: Stats
    speedup: Stats
    build_cmd: str


def _chunks(model_path: Path, count: int) -> list[dict[str, np.ndarray]]:
    model = load_espdl(model_path)
    rng = np.random.default_rng(5)
    chunks = []
    for _ in range(count):
        chunk = {}
        for info in model.inputs:
            if is_state_input(info.name):
                continue
            lo, hi = (-128, 127) if info.dtype == "int8" else (-32768, 32767)
            chunk[info.name] = rng.integers(lo // 4, hi // 4, size=info.shape).astype(info.dtype)
        chunks.append(chunk)
    return chunks


def _simulate(model_path: Path, rounding: str, chunks: list[dict[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    sim = LoopedSimulator(load_espdl(model_path), rounding)  # type: ignore[arg-type]
    return [sim.run(chunk) for chunk in chunks]


def measure(name: str, espdl: Path, rounding: str, exe: Path, build_cmd: str) -> EngineFigures:
    chunks = _chunks(espdl, CHUNKS)
    # Same integers from both engines, every chunk (the Python side on the first SIM_CHUNKS).
    want = _simulate(espdl, rounding, chunks[:SIM_CHUNKS])
    got = run_int_chunks(exe, espdl, rounding, chunks[:SIM_CHUNKS])
    for k, (w, g) in enumerate(zip(want, got)):
        for key, value in w.items():
            if not np.array_equal(np.asarray(value), np.asarray(g[key])):
                raise RuntimeError(f"{name}: host engine and simulator differ at chunk {k}, output {key}")
    engine, sim, ratio = [], [], []
    for _ in range(REPS):
        t = time.perf_counter()
        run_int_chunks(exe, espdl, rounding, chunks)
        full = time.perf_counter() - t
        t = time.perf_counter()
        run_int_chunks(exe, espdl, rounding, chunks[:1])
        one = time.perf_counter() - t
        per_engine = max(full - one, 1e-9) / (CHUNKS - 1)
        t = time.perf_counter()
        _simulate(espdl, rounding, chunks[:SIM_CHUNKS])
        per_sim = (time.perf_counter() - t) / SIM_CHUNKS
        engine.append(per_engine * 1e6)
        sim.append(per_sim * 1e6)
        ratio.append(per_sim / per_engine)
    return EngineFigures(name, CHUNKS, Stats.of(engine), Stats.of(sim), Stats.of(ratio), build_cmd)


def run(tcn_dir: Path, tcn_cmd: str) -> list[EngineFigures]:
    root = fresh_dir(WORK / "host_engine")
    exe = build_host_engine(root / "engine")
    gru_out = root / "gru"
    gru_cmd = [PYTHON, "-m", "espdl_streaming", "build", "--name", "gru", "--model", f"{GRU_MODEL}:build",
               "--input-shape", "1,16,24", "--chunk-frames", "3", "--target", "esp32p4", "--out-dir", gru_out,
               "--quiet"]  # fmt: skip
    run_timed(gru_cmd, cwd=REPO / "python")
    results = []
    for name, espdl, cmd in (
        ("tcn", tcn_dir / "tcn.espdl", tcn_cmd),
        ("gru", gru_out / "gru.espdl", command_text(gru_cmd)),
    ):
        target = json.loads(espdl.with_suffix(".report.json").read_text())["target"]
        rounding = rounding_for_target(target)
        results.append(measure(name, espdl, rounding, exe, cmd))
        print(f"  host engine: {name} done", flush=True)
    return results


def markdown(results: list[EngineFigures]) -> str:
    rows = [
        [
            r.name,
            f"{r.engine_us.median:.1f} us (min {r.engine_us.low:.1f}, max {r.engine_us.high:.1f})",
            f"{r.sim_us.median:.1f} us (min {r.sim_us.low:.1f}, max {r.sim_us.high:.1f})",
            fmt_ratio(r.speedup),
        ]
        for r in results
    ]
    return "\n".join(
        [
            "## 5. Host engine",
            "",
            "The C++ engine (`src/host/`, built by `host/` with -O2, no sanitizers) against the Python simulator,",
            f"per chunk, on the same random integer chunks: {CHUNKS} chunks through one `espdl_run` process minus a",
            "1-chunk run of the same process (start-up and load cancel), against the simulator driven chunk by chunk",
            f"in this process ({SIM_CHUNKS} chunks). The engine's figure includes `run_int_chunks` writing the chunks",
            "to its input file and reading its output file, so it is an upper bound. Both give the same integers",
            f"(checked on the first {SIM_CHUNKS} chunks before timing). {REPS} alternating repetitions.",
            "",
            table(["model", "host engine per chunk", "simulator per chunk", "simulator / engine"], rows),
            "",
            "Models built with: " + "; ".join(code(r.build_cmd) for r in results),
        ]
    )
