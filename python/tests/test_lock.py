"""The lock (lock.py): build from committed outputs without the quantizer.

A project (the example TCN importing a local module, calibration data) makes its lock with the CLI; a copy
of it in another directory, with torch, esp-ppq, onnx and numpy unimportable, builds from the lock with
identical outputs; a changed model, imported module, calibration file or option fails (exit 2) naming the
changed input and the refresh command. The CMake test drives the same through ESPDL_STREAMING_LOCK_DIR and
the espdl_streaming_lock target (one command for every target).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from artifact_project import (
    OUTPUT_SUFFIXES,
    blocker_dir,
    copy_project,
    make_project,
    model_args,
    outputs,
    run_tool,
)
from conftest import REPO

LOCK = "espdl_streaming.lock"
FROM_LOCK = "taken from the lock"


@dataclass
class Locked:
    project: Path
    lock: Path


@pytest.fixture(scope="module")
def locked(tmp_path_factory: pytest.TempPathFactory) -> Locked:
    project = make_project(tmp_path_factory.mktemp("lock") / "project")
    r = run_tool([*model_args(), "--out-dir", "out", "--lock-dir", LOCK, "--update-lock"], project)
    assert r.returncode == 0, r.stderr
    assert f"tcn: lock {LOCK}/esp32p4/tcn updated" in r.stdout
    return Locked(project, project / LOCK)


def _lock_files(lock: Path, target: str = "esp32p4") -> dict[str, bytes]:
    return outputs(lock / target / "tcn")


def test_the_lock_holds_the_outputs_and_a_portable_manifest(locked: Locked) -> None:
    entry = locked.lock / "esp32p4" / "tcn"
    assert sorted(p.name for p in entry.iterdir()) == sorted([*(f"tcn{s}" for s in OUTPUT_SUFFIXES), "manifest.json"])
    assert _lock_files(locked.lock) == outputs(locked.project / "out")
    manifest = json.loads((entry / "manifest.json").read_text())
    assert manifest["declaration"]["model"]["path"]["file"] == "model/model.py"
    assert [d[0] for d in manifest["dependencies"]] == ["data/calib.npy", "model/model.py", "model/tcn_seed.py"]
    assert set(manifest["built_with"]) == {"esp-ppq", "torch", "numpy"}
    for path in entry.iterdir():
        assert str(locked.project).encode() not in path.read_bytes(), path.name


def test_lock_build_in_another_checkout_without_the_quantizer(locked: Locked, tmp_path: Path) -> None:
    other = copy_project(locked.project, tmp_path / "ci" / "checkout")
    r = run_tool(
        [*model_args(), "--out-dir", "build/tcn", "--depfile", "build/tcn.d", "--lock-dir", LOCK],
        other,
        no_quantizer=blocker_dir(tmp_path),
    )
    assert r.returncode == 0, r.stderr
    assert FROM_LOCK in r.stdout
    assert outputs(other / "build" / "tcn") == _lock_files(locked.lock)
    depfile = (other / "build" / "tcn.d").read_text()
    assert str(other / LOCK / "esp32p4" / "tcn" / "manifest.json") in depfile  # a refreshed lock reruns the build
    assert str(other / "model" / "tcn_seed.py") in depfile


def test_lock_build_on_an_interpreter_with_nothing_installed(locked: Locked, tmp_path: Path) -> None:
    """A venv without pip: no torch, esp-ppq, onnx, numpy or jinja2 at all, only the package's sources."""
    bare = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(bare)], check=True)
    python = bare / "bin" / "python"
    assert subprocess.run([python, "-c", "import numpy"], capture_output=True).returncode != 0
    proc = subprocess.run(
        [python, "-m", "espdl_streaming", *model_args(), "--out-dir", str(tmp_path / "out"), "--lock-dir", LOCK],
        cwd=locked.project, env={"PYTHONPATH": str(REPO / "python"), "PATH": os.environ.get("PATH", "")},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert FROM_LOCK in proc.stdout
    assert outputs(tmp_path / "out") == _lock_files(locked.lock)


def test_without_the_quantizer_and_without_a_lock_the_error_says_what_to_install(
    locked: Locked, tmp_path: Path
) -> None:
    r = run_tool([*model_args(), "--out-dir", "out2"], locked.project, no_quantizer=blocker_dir(tmp_path))
    assert r.returncode == 2
    assert "the quantizer is not installed" in r.stderr and "pip install -r" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        ("model", "the model file model/model.py changed"),
        ("module", "the imported module model/tcn_seed.py changed"),
        ("calibration", "the calibration file data/calib.npy changed"),
        ("option", "option quant is 'w16a16', the lock was made with 'w8a8'"),
        ("target", "the lock has no entry for tcn on esp32s3"),
    ],
)
def test_a_changed_input_fails_naming_it_and_the_refresh_command(
    locked: Locked, tmp_path: Path, edit: str, named: str
) -> None:
    other = copy_project(locked.project, tmp_path / "project")
    args = model_args()
    if edit == "model":
        (other / "model" / "model.py").write_text((other / "model" / "model.py").read_text() + "\n# retrained\n")
    elif edit == "module":
        (other / "model" / "tcn_seed.py").write_text("SEED = 8\n")
    elif edit == "calibration":
        calib = other / "data" / "calib.npy"
        calib.write_bytes(calib.read_bytes()[:-1] + b"\x01")
    elif edit == "option":
        args = [*args, "--quant", "w16a16"]
    elif edit == "target":
        args = model_args("esp32s3")
    r = run_tool([*args, "--out-dir", "out", "--lock-dir", LOCK], other, no_quantizer=blocker_dir(tmp_path))
    assert r.returncode == 2, r.stdout
    assert named in r.stderr, r.stderr
    assert "python -m espdl_streaming build" in r.stderr and "--update-lock" in r.stderr
    assert "Traceback" not in r.stderr and not (other / "out").exists()


def test_an_edited_lock_file_is_refused(locked: Locked, tmp_path: Path) -> None:
    other = copy_project(locked.project, tmp_path / "project")
    hpp = other / LOCK / "esp32p4" / "tcn" / "tcn.hpp"
    hpp.write_text(hpp.read_text() + "// edited\n")
    r = run_tool([*model_args(), "--out-dir", "out", "--lock-dir", LOCK], other)
    assert r.returncode == 2
    assert f"{LOCK}/esp32p4/tcn/tcn.hpp does not match the SHA-256" in r.stderr, r.stderr


def test_the_lock_command_refreshes_every_target_and_leaves_current_entries(locked: Locked, tmp_path: Path) -> None:
    other = copy_project(locked.project, tmp_path / "project")
    before = {p: p.stat().st_mtime_ns for p in (other / LOCK).rglob("*") if p.is_file()}
    declarations = tmp_path / "declarations.json"
    args = model_args()[1:]
    declarations.write_text(
        json.dumps(
            {
                "format": 1,
                "project_dir": str(other),
                "lock_dir": str(other / LOCK),
                "targets": ["esp32p4", "esp32c3"],
                "models": [{"name": "tcn", "target": "esp32p4", "args": args}],
            }
        )
    )
    r = run_tool(["lock", "--declarations", str(declarations)], other)
    assert r.returncode == 0, r.stderr
    assert f"tcn: lock {LOCK}/esp32p4/tcn up to date" in r.stdout
    assert f"tcn: lock {LOCK}/esp32c3/tcn updated" in r.stdout
    assert {p: p.stat().st_mtime_ns for p in (other / LOCK / "esp32p4").rglob("*") if p.is_file()} == before
    report = json.loads((other / LOCK / "esp32c3" / "tcn" / "tcn.report.json").read_text())
    assert report["target"] == "esp32c3"
    # The glue records the same command line as a build of this target would (the target in place).
    assert "--target esp32c3 --calibration data/calib.npy" in (other / LOCK / "esp32c3" / "tcn" / "tcn.hpp").read_text()
    no_quantizer = blocker_dir(tmp_path)
    r = run_tool([*model_args("esp32c3"), "--out-dir", "out", "--lock-dir", LOCK], other, no_quantizer=no_quantizer)
    assert r.returncode == 0, r.stderr


# -- CMake ------------------------------------------------------------------------------------------------


def _cmake(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # Run outside the repository: a mistake resolving the relative lock directory must not write into it.
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=900, cwd=cwd)


def test_cmake_lock_mode_one_command_for_every_target_then_no_quantizer(tmp_path: Path, cmake: str, ninja: str) -> None:
    src = tmp_path / "project"
    shutil.copytree(REPO / "tests" / "cmake_project", src)
    make_project(tmp_path / "parts")
    shutil.copytree(tmp_path / "parts" / "model", src / "model")
    build = tmp_path / "build"
    configure = [
        cmake, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}", "-S", src, "-B", build, f"-DESPDL_STREAMING_ROOT={REPO}",
        f"-DESPDL_STREAMING_PYTHON={sys.executable}", "-DTCN_MODEL=model/model.py:build",
        f"-DESPDL_STREAMING_LOCK_DIR={LOCK}", "-DESPDL_STREAMING_LOCK_TARGETS=esp32p4;esp32s3",
    ]  # fmt: skip
    proc = _cmake(*configure, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # No lock yet: the build fails with the one command that makes it.
    proc = _cmake(cmake, "--build", build, cwd=tmp_path)
    assert proc.returncode != 0
    refresh = f"cmake --build {build} --target espdl_streaming_lock"
    assert "the lock has no entry for tcn on esp32p4" in proc.stdout and refresh in proc.stdout, proc.stdout
    proc = _cmake(cmake, "--build", build, "--target", "espdl_streaming_lock", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.parent.parent.name for p in (src / LOCK).glob("*/tcn/manifest.json")} == {"esp32p4", "esp32s3"}
    proc = _cmake(cmake, "--build", build, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert FROM_LOCK in proc.stdout

    # Another checkout with the committed lock and an interpreter without torch, esp-ppq, onnx, numpy.
    ci = copy_project(src, tmp_path / "ci" / "project")
    shutil.rmtree(ci / "build", ignore_errors=True)
    wrapper = tmp_path / "python-without-quantizer"
    wrapper.write_text(f'#!/bin/sh\nPYTHONPATH="{blocker_dir(tmp_path)}:$PYTHONPATH" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    ci_build = tmp_path / "ci_build"
    ci_configure = [a if not str(a).startswith("-DESPDL_STREAMING_PYTHON=") else f"-DESPDL_STREAMING_PYTHON={wrapper}"
                    for a in configure]  # fmt: skip
    ci_configure[ci_configure.index(src)] = ci
    ci_configure[ci_configure.index(build)] = ci_build
    proc = _cmake(*ci_configure, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _cmake(cmake, "--build", ci_build, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert FROM_LOCK in proc.stdout
    out = ci_build / "espdl_streaming" / "tcn"
    assert outputs(out) == _lock_files(src / LOCK)
    check = subprocess.run([ci_build / "check_tcn", out / "tcn.espdl"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    proc = _cmake(cmake, "--build", ci_build, cwd=tmp_path)
    assert proc.returncode == 0 and "no work to do" in proc.stdout, proc.stdout

    # A retrained model: the build stops, naming the model file and the refresh command.
    model = ci / "model" / "model.py"
    model.write_text(model.read_text() + "\n# retrained\n")
    proc = _cmake(cmake, "--build", ci_build, cwd=tmp_path)
    assert proc.returncode != 0
    assert "the model file model/model.py changed" in proc.stdout, proc.stdout
    assert f"cmake --build {ci_build} --target espdl_streaming_lock" in proc.stdout
