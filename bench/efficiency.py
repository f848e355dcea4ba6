"""Figure 3: streaming efficiency, from the build report and the host simulator.

Deterministic counts (MACs, bytes, frames): one build per model, no repetitions.
  streaming   MACs per stream frame = macs_per_chunk / chunk_frames
  (a) offline over a long sequence: the offline .espdl run once in the simulator on LONG_FRAMES
      frames (any_frames=True), MACs / LONG_FRAMES; the ideal ratio streaming/(a) is 1.0
  (b) sliding window (what "continuous inference" libraries do): the offline model at its
      declared input length re-run every chunk, offline_macs / chunk_frames
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import EXAMPLE_MODEL, PYTHON, REPO, WORK, code, command_text, fresh_dir, run_timed, table

LONG_FRAMES = 240
MODELS = [
    ("tcn", EXAMPLE_MODEL, "1,16,24", 3),
    ("per_frame", REPO / "python" / "tests" / "models" / "per_frame.py", "1,8,20", 4),
    ("branchy", REPO / "python" / "tests" / "models" / "branchy.py", "1,8,16", 2),
]


@dataclass
class ModelFigures:
    name: str
    cmd: str
    chunk: int
    frames: int
    stream_per_frame: float
    long_per_frame: float
    sliding_per_frame: float
    macs_per_chunk: int
    sim_macs_per_chunk: int
    offline_macs: int
    long_macs: int
    receptive_field: int
    cache_bytes: int
    sliding_history_bytes: int
    output_shapes: str


def build_cmd(name: str, model: Path, shape: str, chunk: int, out: Path) -> list:
    return [
        PYTHON,
        "-m",
        "espdl_streaming",
        "build",
        "--name",
        name,
        "--model",
        f"{model}:build",
        "--input-shape",
        shape,
        "--chunk-frames",
        str(chunk),
        "--target",
        "esp32p4",
        "--out-dir",
        out,
        "--quiet",
    ]


def measure(name: str, model: Path, shape: str, chunk: int, root: Path) -> ModelFigures:
    from espdl_streaming.espdl import Simulator, load_espdl

    out = root / name
    cmd = build_cmd(name, model, shape, chunk, out)
    run_timed(cmd)
    report = json.loads((out / f"{name}.report.json").read_text())
    rounding = report["streaming"]["rounding"]
    assert report["chunk_frames"] == chunk and report["streaming"]["verified"]

    # the streaming model: MACs of one chunk, in the simulator (after a few chunks of state)
    st_model = load_espdl(out / f"{name}.espdl")
    st = Simulator(st_model, rounding)
    rng = np.random.default_rng(0)
    for _ in range(5):
        st.run({i.name: rng.integers(-8, 8, i.shape).astype(i.dtype) for i in st_model.inputs})
    sim_chunk = st.macs()

    # (a) the offline model once over a long sequence
    off_model = load_espdl(out / f"{name}.offline.espdl")
    off = Simulator(off_model, rounding, any_frames=True)
    inputs = {}
    for info in off_model.inputs:
        shp = (info.shape[0], LONG_FRAMES, *info.shape[2:])
        inputs[info.name] = rng.integers(-8, 8, shp).astype(info.dtype)
    off.run(inputs)
    long_macs = off.macs()

    frames = int(report["offline_input_shape"][2])
    feature_elems = int(np.prod(report["input"]["shape"][2:]))
    elem = np.dtype(report["input"]["dtype"]).itemsize
    return ModelFigures(
        name=name,
        cmd=command_text(cmd),
        chunk=chunk,
        frames=frames,
        stream_per_frame=report["macs_per_chunk"] / chunk,
        long_per_frame=long_macs / LONG_FRAMES,
        sliding_per_frame=report["offline_macs"] / chunk,
        macs_per_chunk=int(report["macs_per_chunk"]),
        sim_macs_per_chunk=int(sim_chunk),
        offline_macs=int(report["offline_macs"]),
        long_macs=int(long_macs),
        receptive_field=int(report["receptive_field_frames"]),
        cache_bytes=int(report["cache_bytes"]),
        sliding_history_bytes=(frames - chunk) * feature_elems * elem,
        output_shapes="; ".join(f"{o['name']} {o['shape']}" for o in report["outputs"]),
    )


def run() -> list[ModelFigures]:
    root = fresh_dir(WORK / "efficiency")
    results = []
    for spec in MODELS:
        results.append(measure(*spec, root))
        print(f"  efficiency: {results[-1].name} done", flush=True)
    return results


def markdown(results: list[ModelFigures]) -> str:
    macs_rows = []
    mem_rows = []
    for r in results:
        macs_rows.append(
            [
                r.name,
                f"{r.chunk} / {r.frames}",
                f"{r.stream_per_frame:.1f} ({r.macs_per_chunk} per chunk)",
                f"{r.long_per_frame:.1f} ({r.long_macs} over {LONG_FRAMES})",
                f"**{r.stream_per_frame / r.long_per_frame:.3f}**",
                f"{r.sliding_per_frame:.1f} ({r.offline_macs} per run)",
                f"**{r.stream_per_frame / r.sliding_per_frame:.3f}**"
                f" ({r.sliding_per_frame / r.stream_per_frame:.1f}x fewer)",
            ]
        )
        mem_rows.append(
            [
                r.name,
                f"{r.chunk - 1} (mean {(r.chunk - 1) / 2:g})",
                str(r.receptive_field),
                f"{r.cache_bytes} B",
                f"{r.sliding_history_bytes} B",
                r.output_shapes,
            ]
        )
    checks = ", ".join(
        f"{r.name} {r.sim_macs_per_chunk} {'=' if r.sim_macs_per_chunk == r.macs_per_chunk else '!='}"
        f" {r.macs_per_chunk}"
        for r in results
    )
    cmd_rows = [[r.name, code(r.cmd)] for r in results]
    return "\n".join(
        [
            "## 3. Streaming efficiency",
            "",
            "Deterministic counts from the build report (`macs_per_chunk`, `offline_macs`, `cache_bytes`,",
            "`receptive_field_frames`) and the host simulator (`Simulator(...).macs()`: Conv, Gemm and MatMul",
            "multiply-accumulates of the last run): one build per model, no repetitions needed. esp32p4, 8-bit,",
            "the CLI's default (seeded random) calibration; MAC counts do not depend on it.",
            "",
            "MACs per stream frame. Streaming: `macs_per_chunk / chunk_frames`. (a) offline over a long",
            f"sequence: the offline `.espdl` run once in the simulator on {LONG_FRAMES} frames",
            f"(`Simulator(model, rounding, any_frames=True)`), MACs / {LONG_FRAMES}; ideal ratio 1.0. (b) sliding",
            "window: the offline model at its declared input length re-run every chunk, `offline_macs /",
            "chunk_frames`. A model with a head (tcn, branchy: slice the last frames, flatten, Linear) runs the head",
            f"once per chunk when streaming but once per {LONG_FRAMES} frames in (a), so its ratio (a) is above 1.0 by",
            "the head's share; per_frame has no head.",
            "",
            table(
                [
                    "model",
                    "chunk / declared frames",
                    "streaming MACs/frame",
                    "(a) offline long MACs/frame",
                    "streaming / (a)",
                    "(b) sliding-window MACs/frame",
                    "streaming / (b)",
                ],
                macs_rows,
            ),
            "",
            "Latency and RAM. Latency in frames = `chunk_frames - 1`: the first frame of a chunk waits for the",
            "chunk's other `chunk_frames - 1` frames before the model runs (the last waits 0; mean",
            "`(chunk_frames - 1) / 2`). Nothing is added for look-ahead: the tool refuses end padding, and the",
            "build verified every chunk's output equals the offline model on the prefix ending at the chunk's last",
            "frame. One chunk's compute time comes on top (not a frame count; see section 5). A sliding window with",
            "the same hop has the same latency. Cache RAM: `cache_bytes` (all StreamingCache state); for",
            "comparison, the input history a sliding window keeps, `(declared frames - chunk) x features x",
            "element size` (the offline model's intermediate tensors not included).",
            "",
            table(
                [
                    "model",
                    "latency (frames)",
                    "receptive field (frames)",
                    "cache RAM",
                    "sliding-window history",
                    "outputs per chunk",
                ],
                mem_rows,
            ),
            "",
            f"Check: simulator MACs of the 5th streaming chunk vs the report's `macs_per_chunk`: {checks}.",
            "",
            table(["model", "command (then the simulator, in bench/efficiency.py)"], cmd_rows),
        ]
    )
