#!/usr/bin/env python3
"""Create the espdl_streaming model tool's own Python environment (a venv), once per user and version.

    python <component>/tools/espdl_streaming_env.py [--venv DIR] [--torch-index URL] [--python BASE]
                                                    [--force] [--check] [--print-python]

`idf.py build` (and the plain-CMake core) runs the model tool (torch, esp-ppq) with the interpreter of
this environment when ESPDL_STREAMING_PYTHON is not set, without any other variable. ESP-IDF's own
Python is never modified: any Python >= 3.10 may run this script, ESP-IDF's included; the venv it creates
is based on that interpreter's base installation (or --python) and lives at

    $ESPDL_STREAMING_VENV                                          when set, else
    ${XDG_DATA_HOME:-~/.local/share}/espdl_streaming/venv-<version>    (Windows: %LOCALAPPDATA%\\...)

where <version> is the component's (idf_component.yml). It installs python/requirements.txt with every
package pinned by python/requirements.lock, torch as the CPU build from the PyTorch CPU wheel index
(--torch-index, or ESPDL_STREAMING_TORCH_INDEX; empty: only pip's configured indexes).

- Idempotent: a stamp in the venv records the SHA-256 of both requirement files; a rerun with the same
  files does nothing (--force rebuilds).
- Atomic: the venv is built in a temporary directory beside its place and renamed into place once
  complete, so an interrupted run leaves nothing the build would pick up (the next run removes it).

The component's CMake (cmake/espdl_streaming.cmake, __espdl_streaming_default_python) computes the same
location and compares the same stamp; python/tests/test_setup_env.py keeps the two in agreement.
Standard library only; also loaded by the component's idf.py extension (idf_ext.py).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

COMPONENT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"
# The pins of requirements.lock (numpy 2.4, onnxruntime 1.32) need this Python in the venv.
MIN_VENV_PYTHON = (3, 11)
STAMP_NAME = ".espdl_streaming_env"
TEMP_MARK = ".tmp-"
ENV_VENV = "ESPDL_STREAMING_VENV"
ENV_TORCH_INDEX = "ESPDL_STREAMING_TORCH_INDEX"


class SetupError(Exception):
    """A set-up step failed; the message says which and what to do."""


def component_version(component: Path = COMPONENT_DIR) -> str:
    """The component's version from idf_component.yml, read by the package's own single source
    (python/espdl_streaming/_version.py, standard library only, loaded by path: no package import)."""
    spec = importlib.util.spec_from_file_location(
        "_espdl_streaming_version", component / "python" / "espdl_streaming" / "_version.py"
    )
    if spec is None or spec.loader is None:
        raise SetupError(f"cannot load {component / 'python' / 'espdl_streaming' / '_version.py'}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    found = module.manifest_version(component / "idf_component.yml")
    if not found:
        raise SetupError(f"no top-level version in {component / 'idf_component.yml'}")
    return str(found)


def default_venv(version: str, env: Mapping[str, str] | None = None, windows: bool | None = None) -> Path:
    """Where the environment lives: $ESPDL_STREAMING_VENV, else per user and component version."""
    env = os.environ if env is None else env
    windows = os.name == "nt" if windows is None else windows
    if env.get(ENV_VENV):
        return Path(env[ENV_VENV]).expanduser()
    if windows and env.get("LOCALAPPDATA"):
        base = Path(env["LOCALAPPDATA"])
    elif env.get("XDG_DATA_HOME"):
        base = Path(env["XDG_DATA_HOME"])
    else:
        home = env.get("HOME") or env.get("USERPROFILE") or str(Path.home())
        base = Path(home) / ".local" / "share"
    return base / "espdl_streaming" / f"venv-{version}"


def venv_python(venv: Path, windows: bool | None = None) -> Path:
    windows = os.name == "nt" if windows is None else windows
    return venv / "Scripts" / "python.exe" if windows else venv / "bin" / "python"


def requirement_files(component: Path = COMPONENT_DIR) -> tuple[Path, Path]:
    return component / "python" / "requirements.txt", component / "python" / "requirements.lock"


def stamp_text(component: Path = COMPONENT_DIR) -> str:
    """What the stamp of a current environment holds (the CMake check builds the same text)."""
    lines = ["espdl_streaming model tool environment"]
    for path in requirement_files(component):
        lines.append(f"{path.name} sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")
    return "\n".join(lines) + "\n"


def is_current(venv: Path, component: Path = COMPONENT_DIR) -> bool:
    stamp = venv / STAMP_NAME
    return venv_python(venv).exists() and stamp.is_file() and stamp.read_text(encoding="utf-8") == stamp_text(component)


def pip_install_command(
    python: Path | str, component: Path = COMPONENT_DIR, torch_index: str = DEFAULT_TORCH_INDEX,
    extra: Sequence[str] = (),
) -> list[str]:  # fmt: skip
    """The pip command that fills the venv: the requirements, every version pinned by the lock.
    --no-compile: bytecode is compiled after the rename, so it names the final paths."""
    requirements, lock = requirement_files(component)
    cmd = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "--no-input", "--no-compile",
           "-r", str(requirements), "-c", str(lock)]  # fmt: skip
    if torch_index:
        cmd += ["--extra-index-url", torch_index]
    return cmd + list(extra)


def child_env() -> dict[str, str]:
    """The environment for the venv's own processes: nothing of the caller's Python (ESP-IDF's) leaks in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["PIP_REQUIRE_VIRTUALENV"] = "0"
    return env


def directory_size(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _pid_alive(pid: int) -> bool:
    if os.name == "nt":
        return False  # best effort: a leftover from a run still going elsewhere is rare
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_leftovers(venv: Path) -> list[Path]:
    """Temporary directories of earlier runs of this venv that were interrupted (their process is gone)."""
    removed: list[Path] = []
    if not venv.parent.is_dir():
        return removed
    for path in venv.parent.glob(f".{venv.name}{TEMP_MARK}*"):
        pid = path.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(path)
    return removed


def _relocate(temp: Path, venv: Path) -> None:
    """Rewrite the temporary directory's path in the venv's scripts (shebangs, activate) and pyvenv.cfg."""
    old, new = str(temp).encode(), str(venv).encode()
    candidates = [temp / "pyvenv.cfg"]
    for scripts in (temp / "bin", temp / "Scripts"):
        if scripts.is_dir():
            candidates += [p for p in scripts.iterdir() if p.is_file() and not p.is_symlink()]
    for path in candidates:
        data = path.read_bytes()
        if old in data and b"\0" not in data[:4096]:  # text files only
            path.write_bytes(data.replace(old, new))


Runner = Callable[..., "subprocess.CompletedProcess[bytes]"]


def _run(cmd: Sequence[str], what: str, runner: Runner) -> None:
    print("$ " + " ".join(cmd), flush=True)
    proc = runner(list(cmd), env=child_env())
    if proc.returncode != 0:
        raise SetupError(f"{what} failed (exit {proc.returncode}): {' '.join(cmd)}")


def _python_version(python: str, runner: Runner) -> tuple[int, int]:
    proc = runner([python, "-c", "import sys; print('%d %d' % sys.version_info[:2])"], stdout=subprocess.PIPE)
    if proc.returncode != 0:
        raise SetupError(f"cannot run {python}")
    major, minor = proc.stdout.decode().split()
    return int(major), int(minor)


def create(
    venv: Path, *, base_python: str = sys.executable, component: Path = COMPONENT_DIR,
    torch_index: str = DEFAULT_TORCH_INDEX, pip_args: Sequence[str] = (), force: bool = False,
    runner: Runner = subprocess.run,
) -> bool:  # fmt: skip
    """Make `venv` a current environment; returns False when it already was (nothing done)."""
    venv = venv.absolute()
    if not force and is_current(venv, component):
        print(f"espdl_streaming: environment up to date at {venv} ({human_size(directory_size(venv))})")
        print(f"  interpreter: {venv_python(venv)}")
        return False
    version = _python_version(base_python, runner)
    if version < MIN_VENV_PYTHON:
        raise SetupError(
            f"{base_python} is Python {version[0]}.{version[1]}; the pinned requirements need "
            f">= {MIN_VENV_PYTHON[0]}.{MIN_VENV_PYTHON[1]}: pass --python <python3.11 or newer>"
        )
    venv.parent.mkdir(parents=True, exist_ok=True)
    remove_leftovers(venv)
    start = time.monotonic()
    temp = venv.parent / f".{venv.name}{TEMP_MARK}{os.getpid()}"
    old = venv.parent / f".{venv.name}{TEMP_MARK}old-{os.getpid()}"
    try:
        # --clear: a leftover of a recycled pid never mixes in.
        _run([base_python, "-m", "venv", "--clear", str(temp)], "creating the venv", runner)
        _run(pip_install_command(venv_python(temp), component, torch_index, pip_args), "pip install", runner)
        (temp / STAMP_NAME).write_text(stamp_text(component), encoding="utf-8")
        _relocate(temp, venv)
        if venv.exists() or venv.is_symlink():
            os.replace(venv, old)  # a stale environment: swapped out, then removed
        os.replace(temp, venv)
    finally:
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    # Bytecode for the final paths (optional: an interruption here leaves a working environment).
    runner([str(venv_python(venv)), "-m", "compileall", "-q", "-j", "0", str(venv / "lib"), str(venv / "Lib")],
           env=child_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    size = human_size(directory_size(venv))
    print(f"espdl_streaming: environment ready at {venv} ({size}, {time.monotonic() - start:.0f} s)")
    print(f"  interpreter: {venv_python(venv)}")
    print("  `idf.py build` finds it without any variable (ESPDL_STREAMING_PYTHON, when set, still wins).")
    return True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="espdl_streaming_env.py",
        description="Create (or update) the espdl_streaming model tool's own Python environment: a venv per "
        "user and component version with the pinned requirements and CPU-only torch. ESP-IDF's Python is "
        "not modified.",
    )
    parser.add_argument("--venv", type=Path, help=f"where to create it (default: ${ENV_VENV}, else per user: "
                        f"{default_venv('<version>')})")  # fmt: skip
    parser.add_argument("--torch-index", default=None,
                        help=f"extra index for the CPU build of torch (default: ${ENV_TORCH_INDEX}, else "
                        f"{DEFAULT_TORCH_INDEX}; '' for pip's configured indexes only)")  # fmt: skip
    parser.add_argument("--python", default=sys.executable,
                        help="base interpreter of the venv (default: this one; >= 3.11)")  # fmt: skip
    parser.add_argument("--pip-arg", action="append", default=[], metavar="ARG",
                        help="extra argument for pip install (repeatable), e.g. --pip-arg=--no-index")  # fmt: skip
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    parser.add_argument("--check", action="store_true", help="only say whether it is set up and current (exit 0/1)")
    parser.add_argument("--print-python", action="store_true", help="print the interpreter's path and exit")
    return parser.parse_args(argv)


def run(
    venv: Path | None = None, torch_index: str | None = None, python: str | None = None,
    pip_args: Sequence[str] = (), force: bool = False, check: bool = False, print_python: bool = False,
) -> int:  # fmt: skip
    """The command, for this script and the idf.py extension alike; returns the exit code."""
    try:
        target = venv if venv is not None else default_venv(component_version())
        if print_python:
            print(venv_python(target.absolute()))
            return 0
        if check:
            current = is_current(target.absolute())
            print(f"espdl_streaming: environment at {target.absolute()} is {'current' if current else 'not set up'}")
            return 0 if current else 1
        if torch_index is None:
            torch_index = os.environ.get(ENV_TORCH_INDEX, DEFAULT_TORCH_INDEX)
        create(target, base_python=python or sys.executable, torch_index=torch_index, pip_args=pip_args,
               force=force)  # fmt: skip
    except (SetupError, OSError) as exc:
        print(f"error: espdl_streaming: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: espdl_streaming: interrupted; nothing was left in place", file=sys.stderr)
        return 130
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    return run(args.venv, args.torch_index, args.python, args.pip_arg, args.force, args.check, args.print_python)


if __name__ == "__main__":
    sys.exit(main())
