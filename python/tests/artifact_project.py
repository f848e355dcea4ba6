"""A small project for the build cache and lock tests: the example TCN importing a local module, with
calibration data, built through the CLI in a subprocess; and a way to run it with the quantizer absent."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from conftest import EXAMPLE_MODEL, REPO, Run

OUTPUT_SUFFIXES = (".espdl", ".offline.espdl", ".hpp", ".cpp", ".report.json", ".report.html")
#: What a build without the quantizer must not import (numpy too: a hit and the lock need none of them).
BLOCKED = ("torch", "esp_ppq", "onnx", "onnxruntime", "numpy", "jinja2")

_BLOCKER = f'''
import sys

class _Blocked:
    """The quantizer is not installed: importing any of {BLOCKED} fails (test_cache.py / test_lock.py)."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {BLOCKED!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None

sys.meta_path.insert(0, _Blocked())
'''


def make_project(root: Path) -> Path:
    """<root>/model/model.py (the example, seeded from model/tcn_seed.py) and <root>/data/calib.npy."""
    model_dir = root / "model"
    model_dir.mkdir(parents=True)
    text = EXAMPLE_MODEL.read_text()
    text = text.replace(
        "from __future__ import annotations\n", "from __future__ import annotations\n\nimport tcn_seed\n", 1
    )
    assert "torch.manual_seed(7)" in text
    (model_dir / "model.py").write_text(text.replace("torch.manual_seed(7)", "torch.manual_seed(tcn_seed.SEED)"))
    (model_dir / "tcn_seed.py").write_text("SEED = 7\n")
    (root / "data").mkdir()
    rng = np.random.default_rng(3)
    np.save(root / "data" / "calib.npy", rng.standard_normal((12, 16, 24)).astype(np.float32))
    return root


def copy_project(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("out*", "__pycache__"))
    return dst


def blocker_dir(tmp: Path) -> Path:
    """A directory whose sitecustomize.py makes torch, esp-ppq, onnx and numpy unimportable."""
    d = tmp / "no_quantizer"
    d.mkdir(exist_ok=True)
    (d / "sitecustomize.py").write_text(_BLOCKER)
    return d


def model_args(target: str = "esp32p4", *extra: str) -> list[str]:
    """The build flags, with paths relative to the project (the CLI runs in the project directory)."""
    return [
        "build", "--name", "tcn", "--model", "model/model.py:build", "--input-shape", "1,16,24",
        "--chunk-frames", "3", "--target", target, "--calibration", "data/calib.npy", *extra,
    ]  # fmt: skip


def run_tool(args: list[str], cwd: Path, *, cache_dir: Path | None = None, no_quantizer: Path | None = None) -> Run:
    """The CLI in a subprocess in `cwd`; the cache on in `cache_dir` (off without it); with `no_quantizer` (a
    blocker_dir) torch, esp-ppq, onnx and numpy cannot be imported."""
    env = dict(os.environ)
    path = [str(REPO / "python")]
    if no_quantizer is not None:
        path.insert(0, str(no_quantizer))
    env["PYTHONPATH"] = os.pathsep.join(path)
    if cache_dir is None:
        env["ESPDL_STREAMING_CACHE"] = "0"
    else:
        env["ESPDL_STREAMING_CACHE"] = "1"
        env["ESPDL_STREAMING_CACHE_DIR"] = str(cache_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "espdl_streaming", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=600
    )
    return Run(proc.returncode, proc.stdout, proc.stderr)


def outputs(out_dir: Path, name: str = "tcn") -> dict[str, bytes]:
    return {suffix: (out_dir / f"{name}{suffix}").read_bytes() for suffix in OUTPUT_SUFFIXES}


def without_seconds(files: dict[str, bytes]) -> dict[str, object]:
    """The outputs with the report's `seconds` (the one field that varies from run to run) left out."""
    import json

    report = json.loads(files[".report.json"])
    report.pop("seconds")
    return {**files, ".report.json": report}
