"""Shared fixtures: run the CLI as users do (a subprocess with the package's interpreter)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The build cache (cache.py) is off in the tests unless a test turns it on (test_cache.py, test_lock.py): a
# replayed build would make tests of what a build does pass without building.
os.environ.setdefault("ESPDL_STREAMING_CACHE", "0")
EXAMPLE_MODEL = REPO / "examples" / "tcn" / "model.py"
TEST_MODELS = Path(__file__).resolve().parent / "models"


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str


def run_cli(*args: str | os.PathLike[str], cwd: Path | None = None) -> Run:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "python") + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.run(
        [sys.executable, "-m", "espdl_streaming", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=600,
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def build_args(name: str, model: str | Path, shape: str, chunk: int, target: str, out: Path, *extra: str) -> list[str]:
    return [
        "build",
        "--name",
        name,
        "--model",
        str(model),
        "--input-shape",
        shape,
        "--chunk-frames",
        str(chunk),
        "--target",
        target,
        "--out-dir",
        str(out),
        *extra,
    ]


def example_declaration(out_dir: Path, target: str = "esp32p4"):
    """The bundled example as the CLI would declare it (for tests that call the pipeline directly)."""
    from espdl_streaming.declaration import make_declaration

    return make_declaration(
        name="tcn",
        model=f"{EXAMPLE_MODEL}:build",
        input_shape="1,16,24",
        chunk_frames=3,
        target=target,
        out_dir=out_dir,
    )


@pytest.fixture(scope="session")
def example_builds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The bundled example built once per chip family (esp32p4, esp32s3, esp32c3)."""
    outs = {}
    for target in ("esp32p4", "esp32s3", "esp32c3"):
        out = tmp_path_factory.mktemp(f"example_{target}")
        r = run_cli(
            *build_args("tcn", f"{EXAMPLE_MODEL}:build", "1,16,24", 3, target, out, "--depfile", str(out / "tcn.d"))
        )
        assert r.returncode == 0, r.stderr
        outs[target] = out
    return outs


@pytest.fixture(scope="session")
def host_engine() -> Path:
    """The C++ host engine's espdl_run (espdl_fuzz and engine_check next to it), built once per
    change of its sources with AddressSanitizer and UBSan."""
    from espdl_streaming.host_engine import HostEngineUnavailableError, build_host_engine

    try:
        return build_host_engine(sanitize=True)
    except HostEngineUnavailableError as exc:
        # cmake, ninja (from the venv) and a C++ compiler are test requirements, as for test_cmake.py:
        # their absence is a failure that says what to install, never a silent skip.
        pytest.fail(str(exc))
