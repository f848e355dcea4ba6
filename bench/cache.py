"""Figure 7: a clean build with a warm build cache, and a lock-mode build without torch, against the cold
build of the same model.

    python bench/cache.py [--reps N]      (also part of `make bench`)

The example model (examples/tcn/model.py:build, input 1,16,24, chunk 3, esp32p4, the seeded calibration
of figure 1) in a project directory. Each repetition runs three whole processes into fresh output
directories, in rotating order: the cold build (ESPDL_STREAMING_CACHE=0), the same build with a warm
cache (filled once before the repetitions; a clean build directory, as after `rm -rf build`), and the
build from a lock (made once before) run by the interpreter of a venv with nothing installed (no torch,
esp-ppq, onnx, numpy or jinja2; `python -m venv --without-pip`). All three run with PYTHONHASHSEED=0, as
the CMake build step does, and with a snapshot of python/espdl_streaming taken at the start (an edit of
the working tree meanwhile would rightly miss the cache and make the lock stale). The figures are the
per-repetition ratios warm / cold and lock / cold (target for the cache: <= 0.05).
Writes build/bench/cache.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cold_build import CALIB_SAMPLES, CALIB_SEED, write_calibration  # noqa: E402
from common import (  # noqa: E402
    EXAMPLE_MODEL,
    PYTHON,
    REPO,
    WORK,
    Stats,
    code,
    command_text,
    fmt_ratio,
    fmt_seconds,
    fresh_dir,
    run_timed,
    table,
)

LOCK = "espdl_streaming.lock"


@dataclass
class CacheResult:
    cold: Stats
    warm: Stats
    lock: Stats
    warm_ratio: Stats
    lock_ratio: Stats
    commands: dict[str, str]
    markdown: str


def build_cmd(out: Path, *extra: str) -> list:
    return [
        PYTHON, "-m", "espdl_streaming", "build", "--name", "tcn", "--model", "model/model.py:build",
        "--input-shape", "1,16,24", "--chunk-frames", "3", "--target", "esp32p4", "--calibration", "calib.npy",
        "--out-dir", out, "--quiet", *extra,
    ]  # fmt: skip


@contextmanager
def environment(**values: str | None) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    try:
        for k, v in values.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def run(reps: int) -> CacheResult:
    root = fresh_dir(WORK / "cache")
    project = root / "project"
    (project / "model").mkdir(parents=True)
    shutil.copy(EXAMPLE_MODEL, project / "model" / "model.py")
    write_calibration(project / "calib.npy")
    # An interpreter with nothing installed: no torch, esp-ppq, onnx, numpy or jinja2 (a venv without pip).
    bare = root / "bare-venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    bare_python = bare / "bin" / "python"
    assert subprocess.run([bare_python, "-c", "import numpy"], capture_output=True).returncode != 0
    # A snapshot of the tool: an edit of the working tree during the bench would (rightly) miss the cache
    # and make the lock stale.
    tool = root / "tool"
    shutil.copytree(REPO / "python" / "espdl_streaming", tool / "python" / "espdl_streaming",
                    ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
    shutil.copy(REPO / "idf_component.yml", tool / "idf_component.yml")  # the version, as in a checkout
    snapshot = str(tool / "python")
    cache_dir = root / "cache"
    cold_env = {"ESPDL_STREAMING_CACHE": "0", "PYTHONHASHSEED": "0", "PYTHONPATH": snapshot}
    warm_env = {"ESPDL_STREAMING_CACHE": "1", "ESPDL_STREAMING_CACHE_DIR": str(cache_dir), "PYTHONHASHSEED": "0"}
    lock_env = {"ESPDL_STREAMING_CACHE": "0", "PYTHONHASHSEED": "0", "PYTHONPATH": snapshot}
    with environment(**warm_env, PYTHONPATH=snapshot):  # fill the cache, make the lock
        run_timed(build_cmd(root / "fill"), cwd=project)
        made = run_timed(build_cmd(root / "fill", "--lock-dir", LOCK, "--update-lock", "--no-cache"), cwd=project)
    assert (project / LOCK / "esp32p4" / "tcn" / "manifest.json").is_file(), made.stdout
    times: dict[str, list[float]] = {"cold": [], "warm": [], "lock": []}
    kinds = [
        ("cold", cold_env, ()),
        ("warm", {**warm_env, "PYTHONPATH": snapshot}, ()),
        ("lock", lock_env, ("--lock-dir", LOCK)),
    ]
    for i in range(reps):
        for j in range(3):
            kind, env, extra = kinds[(i + j) % 3]
            out = fresh_dir(root / f"{kind}-{i}")
            cmd = build_cmd(out, *extra)
            if kind == "lock":
                cmd[0] = bare_python
            with environment(**env):
                t = run_timed(cmd, cwd=project)
            if kind != "cold":
                # --quiet hides the note; the outputs must equal the cold build's (checked below).
                assert t.returncode == 0
            times[kind].append(t.seconds)
        print(
            f"  cache rep {i + 1}/{reps}: cold {times['cold'][-1]:.2f} s, warm cache {times['warm'][-1]:.3f} s, "
            f"lock without torch {times['lock'][-1]:.3f} s",
            flush=True,
        )
    for kind in ("warm", "lock"):
        for name in ("tcn.espdl", "tcn.hpp", "tcn.cpp"):
            assert (root / f"{kind}-0" / name).read_bytes() == (root / "cold-0" / name).read_bytes(), (kind, name)
    commands = {
        "cold": "ESPDL_STREAMING_CACHE=0 PYTHONHASHSEED=0 " + command_text(build_cmd(Path("OUT"))),
        "warm": "ESPDL_STREAMING_CACHE_DIR=CACHE PYTHONHASHSEED=0 " + command_text(build_cmd(Path("OUT"))),
        "lock": "PYTHONPATH=python PYTHONHASHSEED=0 BARE_VENV/bin/python"
        + command_text(build_cmd(Path("OUT"), "--lock-dir", LOCK))[len(command_text([PYTHON])) :],
    }
    res = CacheResult(
        Stats.of(times["cold"]),
        Stats.of(times["warm"]),
        Stats.of(times["lock"]),
        Stats.of([w / c for w, c in zip(times["warm"], times["cold"])]),
        Stats.of([lk / c for lk, c in zip(times["lock"], times["cold"])]),
        commands,
        "",
    )
    res.markdown = markdown(res, reps)
    return res


def markdown(r: CacheResult, reps: int) -> str:
    rows = [
        ["cold build (no cache)", fmt_seconds(r.cold), "1", code(r.commands["cold"])],
        [
            "clean build, warm cache (replayed, no torch import)",
            fmt_seconds(r.warm),
            fmt_ratio(r.warm_ratio) + " (target <= 0.05)",
            code(r.commands["warm"]),
        ],
        [
            "lock-mode build, an interpreter with nothing installed",
            fmt_seconds(r.lock),
            fmt_ratio(r.lock_ratio),
            code(r.commands["lock"]),
        ],
    ]
    return "\n".join(
        [
            "## 7. Build cache and lock",
            "",
            "The example model (`examples/tcn/model.py:build`, input 1,16,24, chunk 3, esp32p4) in a project",
            f"directory, calibrated on the seeded `.npy` of figure 1 ({CALIB_SAMPLES} samples,"
            f" `numpy.random.default_rng({CALIB_SEED})`). Every build is a whole process (interpreter start",
            "included) into a fresh output directory, with `PYTHONHASHSEED=0` as the CMake build step runs it;",
            f"{reps} repetitions, the order of the three rotating. The warm cache was filled and the lock made",
            "once before the repetitions; the lock-mode build runs on a venv with nothing installed (no torch,",
            "esp-ppq, onnx, onnxruntime, numpy or jinja2: `python -m venv --without-pip`). Ratios per repetition",
            "against that repetition's cold build; outputs checked equal to the cold build's.",
            "",
            table(["what", "wall time", "ratio to cold", "command (in the project directory)"], rows),
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    res = run(args.reps)
    (WORK / "cache.md").write_text(res.markdown + "\n")
    print(res.markdown)
    print(
        f"cache: warm / cold {res.warm_ratio.median:.3f} (target <= 0.05), lock / cold {res.lock_ratio.median:.3f}; "
        f"wrote {WORK / 'cache.md'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
