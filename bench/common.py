"""Helpers shared by the benchmark modules: paths, timed processes, statistics, formatting."""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "bench"
WORK = REPO / "build" / "bench"  # scratch space, recreated by run.py (`make clean` removes it)
PYTHON = Path(sys.executable)
EXAMPLE_MODEL = REPO / "examples" / "tcn" / "model.py"


def show(path: os.PathLike[str] | str) -> str:
    """A path as the report prints it: relative to the repository when inside it."""
    p = Path(path)
    try:
        return str(p.relative_to(REPO))
    except ValueError:
        return str(p)


def python_shown() -> str:
    return show(PYTHON) if PYTHON.is_relative_to(REPO) else "python"


def command_text(cmd: Sequence[str | os.PathLike[str]]) -> str:
    """A command as run from the repository root: paths inside the repository made relative."""
    shown = []
    for c in cmd:
        text = str(c)
        if Path(text) == PYTHON:
            text = python_shown()
        elif os.path.isabs(text):
            text = show(text)
        else:
            text = text.replace(f"={REPO}/", "=").replace(f"={REPO}", "=.")
        shown.append(text)
    return shlex.join(shown)


def tool_env() -> dict[str, str]:
    """The environment for child processes: the venv's bin first (ninja), nothing else changed."""
    env = dict(os.environ)
    env["PATH"] = f"{PYTHON.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


@dataclass
class Timed:
    seconds: float
    cpu_seconds: float  # user + system time of the child (and its children), all threads
    stdout: str
    returncode: int


def run_timed(cmd: Sequence[str | os.PathLike[str]], cwd: Path | None = None, check: bool = True) -> Timed:
    """Run a whole process; wall-clock time from spawn to exit (monotonic clock)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        env=tool_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    if check and proc.returncode != 0:
        raise RuntimeError(f"command failed (exit {proc.returncode}): {command_text(cmd)}\n{proc.stdout[-4000:]}")
    return Timed(seconds, cpu, proc.stdout, proc.returncode)


def find_ninja() -> str:
    for candidate in (PYTHON.parent / "ninja", shutil.which("ninja"), "/usr/bin/ninja"):
        if candidate and Path(candidate).is_file():
            return str(candidate)
    raise RuntimeError("ninja not found (the venv installs it: make venv)")


def fresh_dir(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


@dataclass
class Stats:
    median: float
    low: float
    high: float
    n: int

    @classmethod
    def of(cls, values: list[float]) -> Stats:
        return cls(statistics.median(values), min(values), max(values), len(values))


def fmt_seconds(s: Stats) -> str:
    return f"{s.median:.3f} s (min {s.low:.3f}, max {s.high:.3f}, n={s.n})"


def fmt_ratio(s: Stats) -> str:
    return f"**{s.median:.3f}** (min {s.low:.3f}, max {s.high:.3f}, n={s.n})"


def fmt_ns(s: Stats) -> str:
    return f"{s.median:.1f} ns (min {s.low:.1f}, max {s.high:.1f}, n={s.n})"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def code(text: str) -> str:
    return f"`{text}`"
