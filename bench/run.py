"""`make bench`: runs every benchmark and writes BENCHMARKS.md (atomically).

    python bench/run.py [--quick]

--quick: fewer repetitions (3), for trying the bench out; `make bench` runs the full set.
Scratch files go to build/bench/.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import cache  # noqa: E402
import cold_build  # noqa: E402
import efficiency  # noqa: E402
import frontend  # noqa: E402
import quality  # noqa: E402
import glue  # noqa: E402
import host_engine  # noqa: E402
import incremental  # noqa: E402
from common import REPO, WORK, fresh_dir, python_shown  # noqa: E402

OUTPUT = REPO / "BENCHMARKS.md"
# The build cache is off for every figure but 7 (bench/cache.py turns it on for its own builds): the others
# measure what a build costs.
os.environ["ESPDL_STREAMING_CACHE"] = "0"


def versions() -> str:
    from importlib.metadata import version

    gxx = subprocess.run(["g++", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    cmake = subprocess.run(["cmake", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
    return (
        f"Python {platform.python_version()}, torch {version('torch')}, esp-ppq {version('esp-ppq')}, "
        f"{gxx}, {cmake}, {os.cpu_count()} CPUs ({platform.machine()})"
    )


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 repetitions instead of 9 / 7")
    parser.add_argument(
        "--quality-from",
        type=Path,
        help="section 6 from the reports an earlier `python bench/quality.py` left in DIR (its build/bench/quality, "
        "copied out of build/bench first) instead of rebuilding the zoo four times",
    )
    args = parser.parse_args()
    if args.quality_from is not None and args.quality_from.resolve().is_relative_to(WORK.resolve()):
        parser.error(f"--quality-from {args.quality_from}: copy it out of {WORK} first (the bench recreates it)")
    cold_reps = 3 if args.quick else 9
    incr_reps = 3 if args.quick else 7
    start = time.perf_counter()
    load_start = os.getloadavg()[0]
    fresh_dir(WORK)
    sections = []
    timing = []

    def step(name: str, fn):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        print(f"bench: {name}", flush=True)
        result = fn()
        timing.append(f"{name} {time.perf_counter() - t:.0f} s")
        return result

    cold = step("1 cold build", lambda: cold_build.run(cold_reps))
    sections.append(cold.markdown)
    incr = step("2 incremental build", lambda: incremental.run(incr_reps))
    sections.append(incr.markdown)
    eff = step("3 streaming efficiency", efficiency.run)
    sections.append(efficiency.markdown(eff))
    tcn = next(r for r in eff if r.name == "tcn")
    g = step("4 glue overhead", lambda: glue.run(WORK / "efficiency" / "tcn", tcn.cmd))
    sections.append(glue.markdown(g))
    eng = step("5 host engine", lambda: host_engine.run(WORK / "efficiency" / "tcn", tcn.cmd))
    sections.append(host_engine.markdown(eng))
    qual = step("6 quantization quality", lambda: quality.run(reuse=args.quality_from))
    reused = (
        "\n\nThis section was rendered from the reports of a separate `python bench/quality.py` run "
        "(`bench/run.py --quality-from DIR`); `make bench` rebuilds them."
        if args.quality_from is not None
        else ""
    )
    sections.append(quality.markdown(qual) + reused)
    cached = step("7 build cache and lock", lambda: cache.run(incr_reps))
    sections.append(cached.markdown)
    front = step("8 speech front end", frontend.run)
    sections.append(frontend.markdown(front))
    total = time.perf_counter() - start

    summary = [
        ["cold build, ours / manual tutorial (wall)", f"{cold.ratio.median:.3f}", "target <= 1.0; ours also verifies"],
        ["cold build, ours / manual tutorial (CPU time)", f"{cold.cpu_ratio.median:.3f}", "for reference"],
        [
            "no-op rebuild, model project / baseline",
            f"{incr.noop_ratio.median:.3f}",
            f"quantizer runs {sum(incr.noop_quantize)}",
        ],
        [
            "touch a C++ file, model project / baseline",
            f"{incr.touch_ratio.median:.3f}",
            f"quantizer runs {sum(incr.touch_quantize)}",
        ],
        *[
            [
                f"{r.name}: streaming MACs/frame / offline long sequence",
                f"{r.stream_per_frame / r.long_per_frame:.3f}",
                "ideal 1.0",
            ]
            for r in eff
        ],
        *[
            [
                f"{r.name}: streaming MACs/frame / sliding window",
                f"{r.stream_per_frame / r.sliding_per_frame:.3f}",
                "lower is better",
            ]
            for r in eff
        ],
        [
            "glue per chunk, generated class / bare copy",
            f"{g.ratio.median:.1f}",
            f"{g.ours.median:.0f} ns vs {g.copy.median:.1f} ns",
        ],
        [
            "glue per chunk, generated class / its quantize + dequantize alone",
            f"{g.convert_ratio.median:.3f}",
            f"{g.ours.median:.0f} ns vs {g.convert.median:.0f} ns",
        ],
        [
            "heap allocations per chunk after init",
            f"{int(g.values['allocs_after_init']) / int(g.values['chunks_after_init']):g}",
            "must be 0",
        ],
        ["clean build with a warm cache / cold build", f"{cached.warm_ratio.median:.3f}", "target <= 0.05"],
        ["lock-mode build without torch / cold build", f"{cached.lock_ratio.median:.3f}", "no quantizer installed"],
        *[
            [
                f"{r.name}: per chunk, Python simulator / C++ host engine",
                f"{r.speedup.median:.1f}",
                f"{r.engine_us.median:.1f} us vs {r.sim_us.median:.1f} us; same integers",
            ]
            for r in eng
        ],
        *[
            [
                f"{r.label}: speech front end / model, per second of audio (host)",
                f"{r.ratio.median:.3f}",
                f"{r.frontend_us.median:.0f} us vs {r.model_us.median:.0f} us per second of audio",
            ]
            for r in front
        ],
    ]
    from common import table

    header = "\n".join(
        [
            "# Benchmarks",
            "",
            "Generated by `make bench` (`"
            + python_shown()
            + " bench/run.py"
            + (" --quick" if args.quick else "")
            + "`, sources in `bench/`); do not edit by hand.",
            "Timings are wall clock on a noisy shared machine, so every timed figure is a ratio against a baseline",
            "measured in the same run, alternating with it: median of the per-repetition ratios, with min and max.",
            "Counts (MACs, bytes, frames, allocations) are deterministic. Every command is shown as run from",
            "the repository root.",
            "",
            f"Machine: {versions()}. Bench run time: {total:.0f} s ({', '.join(timing)}); 1-minute load"
            f" average {load_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end.",
            "",
            "## Summary (medians)",
            "",
            table(["figure", "value", "note"], summary),
        ]
    )
    write_atomically(OUTPUT, header + "\n\n" + "\n\n".join(sections) + "\n")
    print(f"bench: wrote {OUTPUT.relative_to(REPO)} in {total:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
