#!/usr/bin/env python3
"""Build the committed .espdl fixtures of the fast test tier (python/tests/data/fixtures/).

The fast tests (python/tests/test_fast_fixtures.py) read these files instead of building models, so
they run without torch and esp-ppq. This script builds them once with the real toolchain, the tool's
own CLI, and records what built them in ``manifest.json`` (the command, the versions of
espdl_streaming, esp-ppq and torch, and each file's size and SHA-256); the tests check the fixture
set against it.

    .venv/bin/python tools/make_test_fixtures.py            # rebuild every fixture
    .venv/bin/python tools/make_test_fixtures.py gru        # rebuild one

Rebuild after a change to the .espdl format the tool writes, to the models (fixtures/models.py) or to
the list below, and commit the result. The committed report drops ``seconds`` (the only field that
varies from build to build), so an unchanged rebuild changes no file. Of the generated class only its
golden stream is kept (NAME.golden.json).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "python" / "tests" / "data" / "fixtures"
MODELS = FIXTURES.relative_to(REPO) / "models.py"

# name -> (what it covers, the build options after --name)
SPECS: dict[str, tuple[str, list[str]]] = {
    "tcn": (
        "causal conv TCN: Conv (dilated depthwise, pointwise), Relu, Add, AveragePool, Slice/Flatten/Gemm head; "
        "two outputs (per frame and per chunk); int8 (w8a8), esp32p4 rounding (half to even)",
        f"--model {MODELS}:tcn --input-shape 1,4,16 --chunk-frames 2 --target esp32p4".split(),
    ),
    "gru": (
        "conv front end + GRU whose state the streaming model loops back + per-frame Gemm; int8 (w8a8), "
        "esp32s3 rounding (half up)",
        f"--model {MODELS}:gru --input-shape 1,4,16 --chunk-frames 2 --target esp32s3".split(),
    ),
    "tcn_w8a16": (
        "the TCN with int8 weights and int16 activations (ESP-DL's W8A16 kernels), esp32s3",
        f"--model {MODELS}:tcn --input-shape 1,4,16 --chunk-frames 2 --target esp32s3 --quant w8a16 "
        "--espdl-version 3.3.11".split(),
    ),
    "gru_w16": (
        "the GRU model at 16 bits (w16a16), esp32c3 (the plain C kernels)",
        f"--model {MODELS}:gru --input-shape 1,4,16 --chunk-frames 2 --target esp32c3 --quant w16a16".split(),
    ),
}
# The build outputs kept: the two models and the report (shapes, exponents, rounding, states); of the
# generated class only its golden stream (NAME.golden.json), which the fast tests assert: the glue's
# C++ changes with the templates, the golden values do not.
SUFFIXES = (".espdl", ".offline.espdl", ".report.json")


def _c_array(source: str, name: str) -> list[str]:
    found = re.search(rf"\b{name}\[[^\]]*\]\s*=\s*\{{(.*?)\}};", source, re.DOTALL)
    if not found:
        sys.exit(f"no array {name} in the generated class: update _c_array() to the template")
    return [v.strip().rstrip("f") for v in found.group(1).split(",") if v.strip()]


def golden(name: str, cpp: str, report: dict[str, object]) -> dict[str, object]:
    """The golden stream the build wrote into NAME.cpp: the float frames (float32 values, exact in JSON's
    doubles) and, per output (sorted by name, as the class orders them), every chunk's raw values."""
    import numpy as np

    chunks = int(report["golden_chunks"])  # type: ignore[call-overload]
    frames = np.array([float(v) for v in _c_array(cpp, "k_golden_frames")], np.float32).reshape(chunks, -1)
    outputs = sorted(report["outputs"], key=lambda o: o["name"])  # type: ignore[arg-type,index]
    return {
        "about": f"the golden stream of {name}.cpp (k_golden_frames, k_golden_output_<i>) as the build wrote it",
        "chunks": chunks,
        "frames": [[float(x) for x in chunk] for chunk in frames],
        "outputs": {
            out["name"]: np.array([int(v) for v in _c_array(cpp, f"k_golden_output_{i}")]).reshape(chunks, -1).tolist()
            for i, out in enumerate(outputs)
        },
    }


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def command(name: str) -> list[str]:
    return ["python", "-m", "espdl_streaming", "build", "--name", name, *SPECS[name][1]]


def build(name: str) -> dict[str, object]:
    out = FIXTURES / name
    with tempfile.TemporaryDirectory() as tmp:
        argv = [sys.executable, *command(name)[1:], "--out-dir", tmp, "--quiet", "--no-cache"]
        env = {**os.environ, "PYTHONPATH": str(REPO / "python")}
        proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            sys.exit(f"{name}: the build failed ({proc.returncode}):\n{proc.stderr}")
        shutil.rmtree(out, ignore_errors=True)
        out.mkdir(parents=True)
        for suffix in SUFFIXES:
            shutil.copyfile(Path(tmp) / f"{name}{suffix}", out / f"{name}{suffix}")
        cpp = (Path(tmp) / f"{name}.cpp").read_text()
    report_path = out / f"{name}.report.json"
    report = json.loads(report_path.read_text())
    report.pop("seconds", None)
    report_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / f"{name}.golden.json").write_text(json.dumps(golden(name, cpp, report), indent=1) + "\n")
    files = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in sorted(out.iterdir())}
    return {
        "covers": SPECS[name][0],
        "command": command(name) + ["--out-dir", "DIR"],
        "target": report["target"],
        "quant": report["quant"],
        "files": files,
    }


def main(names: list[str]) -> None:
    unknown = sorted(set(names) - set(SPECS))
    if unknown:
        sys.exit(f"unknown fixture(s) {unknown}: one of {sorted(SPECS)}")
    manifest_path = FIXTURES / "manifest.json"
    old = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    fixtures = {k: v for k, v in old.get("fixtures", {}).items() if k in SPECS}
    for name in names or list(SPECS):
        print(f"building {name} ...", flush=True)
        fixtures[name] = build(name)
    sys.path.insert(0, str(REPO / "python"))
    from espdl_streaming._version import __version__

    manifest = {
        "about": "Built by tools/make_test_fixtures.py from models.py with the tool's CLI, run from the "
        "repository's root; the report drops 'seconds'; NAME.golden.json is the golden stream of the generated "
        "NAME.cpp. Rebuild with that script, never by hand.",
        "sources": {str(MODELS): sha256(REPO / MODELS)},
        "built_with": {
            "espdl_streaming": __version__,
            "esp_ppq": version("esp-ppq"),
            "torch": version("torch"),
            "python": platform.python_version(),
        },
        "fixtures": {k: fixtures[k] for k in SPECS if k in fixtures},
    }
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {manifest_path.relative_to(REPO)}")


if __name__ == "__main__":
    main(sys.argv[1:])
