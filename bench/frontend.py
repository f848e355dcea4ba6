"""Figure 8: the speech front end's cost per second of audio on the host, against the model's.

Two models declared with FRONTEND fbank (25 ms frames every 10 ms at 16 kHz): the keyword spotter of
examples/kws_audio (40 mel bins, its own WAVs) and the example TCN of figure 3 over 16 mel bins (calibrated
on a generated WAV). Each is built by the plain-CMake core into a host program
(`bench/frontend_bench.cpp`, CMAKE_BUILD_TYPE=Release) linked with the C++ host engine and the host port of
ESP-DL's front end, the code ESP-IDF's linux target runs. The program times, alternating in one process,
the front end alone on 20 s of PCM, the generated class's push() of the features it computed (the model:
quantize, host engine, dequantize) and push_samples() of the PCM (both, the firmware's call), and checks
that push_samples() gives the outputs of push(). Reported per second of audio: medians with min and max,
and the ratio front end / model per repetition. The report's deterministic operation counts (`frontend.cost`,
when the report has them) are shown next to it.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from common import BENCH, EXAMPLE_MODEL, PYTHON, REPO, WORK, Stats, command_text, fmt_ratio, fresh_dir
from common import find_ninja, run_timed, table

sys.path.insert(0, str(REPO / "python"))

NAME = "kws_bench"  # the class bench/frontend_bench.cpp drives
KWS = REPO / "examples" / "kws_audio"
# (label, declaration after the name; {calib}: a generated WAV)
MODELS = (
    (
        "examples/kws_audio",
        f"MODEL {KWS}/model.py:build INPUT_SHAPE 1 40 32 CHUNK_FRAMES 4 CHIP esp32p4 FRONTEND fbank "
        f"NUM_MEL_BINS 40 CALIBRATION {KWS}/wav CALIB_ALGORITHM minmax",
    ),
    (
        "examples/tcn",
        f"MODEL {EXAMPLE_MODEL}:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3 CHIP esp32p4 FRONTEND fbank "
        "NUM_MEL_BINS 16 CALIBRATION {calib}",
    ),
)


@dataclass
class FrontendFigures:
    label: str
    frontend_us: Stats  # per second of audio
    model_us: Stats
    total_us: Stats
    ratio: Stats  # front end / model, per repetition
    values: dict[str, str]
    report: dict
    declaration: str
    configure_cmd: str
    build_cmd: str
    run_cmd: str


def _calibration_wav(path: Path) -> Path:
    """Two seconds of a deterministic voiced sound over noise, 16 kHz int16."""
    from espdl_streaming.audio.pcm import write_wav

    rate = 16000
    t = np.arange(2 * rate) / rate
    f0 = 110 + 40 * t
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(0.3 / h * np.sin(h * phase) for h in range(1, 20)) + 0.02 * np.random.default_rng(3).standard_normal(t.size)
    return write_wav(path, np.round(np.clip(x, -1, 1) * 32767).astype(np.int16), rate)


def run() -> list[FrontendFigures]:
    root = fresh_dir(WORK / "frontend")
    calib = _calibration_wav(root / "calib.wav")
    results = []
    for k, (label, declaration) in enumerate(MODELS):
        results.append(_measure(root / str(k), label, declaration.format(calib=calib), calib))
        print(f"  front end: {label} done", flush=True)
    return results


def _measure(root: Path, label: str, declaration: str, calib: Path) -> FrontendFigures:
    src = root / "src"
    src.mkdir(parents=True)
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(frontend_bench C CXX ASM)\nset(CMAKE_CXX_STANDARD 17)\n"
        f'include("{REPO}/cmake/espdl_streaming.cmake")\n'
        "espdl_streaming_add_host_runtime(espdl_streaming_runtime)\n"
        f'add_executable(frontend_bench "{BENCH / "frontend_bench.cpp"}")\n'
        "target_link_libraries(frontend_bench PRIVATE espdl_streaming_runtime)\n"
        f"espdl_streaming_add_model_to_target({NAME} TARGET frontend_bench {declaration})\n"
    )
    build = root / "build"
    configure = ["cmake", "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={find_ninja()}", "-DCMAKE_BUILD_TYPE=Release",
                 f"-DESPDL_STREAMING_PYTHON={PYTHON}", "-S", src, "-B", build]  # fmt: skip
    run_timed(configure)
    build_cmd = ["cmake", "--build", build]
    run_timed(build_cmd)
    exe = build / "frontend_bench"
    out = run_timed([exe]).stdout
    values = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    if values.get("same_outputs") != "1":
        raise RuntimeError(f"push_samples() and push() of the same features disagree:\n{out}")
    fe = [float(v) / 1000 for v in values["frontend_ns_per_s"].split(",")]
    model = [float(v) / 1000 for v in values["model_ns_per_s"].split(",")]
    total = [float(v) / 1000 for v in values["total_ns_per_s"].split(",")]
    (report_path,) = build.rglob(f"{NAME}.report.json")
    return FrontendFigures(
        label,
        Stats.of(fe),
        Stats.of(model),
        Stats.of(total),
        Stats.of([f / m for f, m in zip(fe, model)]),
        values,
        json.loads(report_path.read_text()),
        declaration.replace(str(calib), "calib.wav").replace(str(REPO) + "/", ""),  # as run from the repository
        command_text(configure),
        command_text(build_cmd),
        command_text([exe]),
    )


def _us(s: Stats) -> str:
    return f"{s.median:.0f} us (min {s.low:.0f}, max {s.high:.0f}, n={s.n})"


def _section(r: FrontendFigures) -> str:
    v = r.values
    fe = r.report["frontend"]
    rows = [
        ["front end alone (`audio_frontend::push`, host port of `dl::audio`)", _us(r.frontend_us),
         f"{r.frontend_us.median / 1e6:.4f} x real time"],
        ["model alone (the class's `push()` of those features: quantize, host engine, dequantize)", _us(r.model_us),
         f"{r.model_us.median / 1e6:.4f} x real time"],
        ["both: the class's `push_samples()` of the PCM", _us(r.total_us), "the firmware's call"],
        ["**ratio front end / model** (per repetition)", fmt_ratio(r.ratio), "the two first rows"],
    ]  # fmt: skip
    counts = ""
    cost = fe.get("cost")
    if isinstance(cost, dict):
        counts = (
            " The report's deterministic operation counts for this model (`frontend.cost`): "
            + ", ".join(f"`{k}` {json.dumps(val)}" for k, val in cost.items() if not isinstance(val, (dict, list)))
            + "."
        )
    text = (
        f"**{r.label}**: `espdl_streaming_add_model_to_target({NAME} TARGET frontend_bench {r.declaration})`."
        f" {v['seconds']} s of {v['sample_rate']} Hz int16 PCM: {v['frames']} feature frames ({fe['kind']},"
        f" {fe['feature_dim']} features, {fe['frame_length_samples']}-sample frames every"
        f" {fe['frame_shift_samples']}), {v['chunks']} chunks of {r.report['chunk_frames']} frames"
        f" ({r.report['macs_per_chunk']} MACs each). Configure `{r.configure_cmd}`, build `{r.build_cmd}`,"
        f" run `{r.run_cmd}`." + counts
    )
    return "\n".join([text, "", table(["what", "per second of audio", "note"], rows)])


def markdown(results: list[FrontendFigures]) -> str:
    return "\n".join(
        [
            "## 8. Speech front end",
            "",
            "`bench/frontend.py`: each model is declared in a plain-CMake project with the host runtime, built"
            " Release, and `bench/frontend_bench.cpp` times three loops over the same PCM, alternating, after a"
            " warm-up (9 repetitions; figures per second of audio): the front end alone, the model alone on the"
            " features it computed, and `push_samples()` (both). `push_samples()` gave the outputs of `push()` on"
            " the precomputed features (checked).",
            "",
            "\n\n".join(_section(r) for r in results),
            "",
            "On the host the front end is the C++ port (double-precision FFT); on a chip `dl::audio` runs a float32"
            " radix-2/4 FFT with SIMD dot products, and the model runs on ESP-DL's kernels, so the chip's ratio"
            " differs: these figures say which part dominates the host build, not the chip's.",
        ]
    )


if __name__ == "__main__":
    print(markdown(run()))
