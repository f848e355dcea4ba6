"""What decides the bytes of a build, and paths that do not depend on where the project sits.

The build cache (cache.py) and the lock (lock.py) both compare a build's inputs by content: the
declaration (every field of :class:`~.declaration.Declaration` that decides an output byte, files by
their SHA-256), the local Python modules the model imports and the data files (the build's recorded
dependencies, by SHA-256), and the tool (its version and the hash of its own sources and templates, plus
the versions of esp-ppq, torch, numpy, onnx, onnxruntime and jinja2, read from their metadata).

Paths in the outputs are *portable*: relative to the project directory (``--project-dir``, CMake's top
source directory; default the working directory) when inside it, absolute otherwise, so the same project
built from two checkouts gives the same bytes.

Standard library only: a cache hit and a lock-mode build import neither torch, esp-ppq nor numpy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from . import __version__

#: Packages whose version decides the bytes of a build (read from their metadata, never imported).
PACKAGES = ("esp-ppq", "torch", "numpy", "onnx", "onnxruntime", "jinja2")
#: Declaration fields that decide no byte of the outputs (only where they are written).
NOT_IN_OUTPUTS = frozenset({"out_dir"})
#: Build flags left out of the command line the generated code records: where the outputs go, how the
#: tool reports, and where a build comes from (flag -> takes a value).
NOT_IN_COMMAND = {
    "--out-dir": True,
    "--depfile": True,
    "--declared-at": True,
    "--log": True,
    "--project-dir": True,
    "--lock-dir": True,
    "--refresh-command": True,
    "--quiet": False,
    "--no-cache": False,
    "--update-lock": False,
}

_PACKAGE_DIR = Path(__file__).resolve().parent


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Hasher:
    """SHA-256 of files, each read once per process; None for a missing file."""

    def __init__(self) -> None:
        self._memo: dict[Path, str | None] = {}

    def file(self, path: Path) -> str | None:
        path = Path(path)
        if path not in self._memo:
            try:
                self._memo[path] = sha256_bytes(path.read_bytes())
            except OSError:
                self._memo[path] = None
        return self._memo[path]


def project_dir_of(text: str | os.PathLike[str] | None) -> Path:
    """The project directory: the given one, else the working directory; symlinks resolved, as the
    declaration resolves its files."""
    return Path(text or os.getcwd()).resolve()


def portable_path(path: str | os.PathLike[str], project_dir: Path) -> str:
    """`path` relative to the project (POSIX separators) when inside it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(project_dir).as_posix()
    except ValueError:
        return str(absolute)


def resolve_portable(text: str, project_dir: Path) -> Path:
    """The file a portable path names."""
    path = Path(text)
    return path if path.is_absolute() else project_dir / path


def portable_text(text: str, project_dir: Path) -> str:
    """`text` with every path inside the project made relative to it."""
    prefix = str(project_dir).rstrip(os.sep) + os.sep
    return text.replace(prefix, "")


def portable_json(value: Any, project_dir: Path) -> Any:
    """A JSON value (a report) with every string made portable."""
    if isinstance(value, str):
        return portable_text(value, project_dir)
    if isinstance(value, list):
        return [portable_json(v, project_dir) for v in value]
    if isinstance(value, dict):
        return {k: portable_json(v, project_dir) for k, v in value.items()}
    return value


def _portable_argument(token: str, project_dir: Path) -> str:
    """A command-line value naming a file (FILE or FILE.py:FUNC, relative to the working directory or
    absolute), made portable; any other value unchanged."""
    path, sep, func = token.rpartition(":")
    candidates = [(path, f"{sep}{func}")] if sep and func.isidentifier() and path.endswith(".py") else []
    candidates.append((token, ""))
    for file, tail in candidates:
        if file and os.path.isfile(file):
            return portable_path(file, project_dir) + tail
    return portable_text(token, project_dir)


def portable_command(argv: Sequence[str], project_dir: Path) -> str:
    """The build command the generated code records: the flags that decide the outputs, with portable paths
    (no output directory, depfile or lock options: the same declaration gives the same line anywhere)."""
    words: list[str] = []
    skip = False
    for token in argv:
        if skip:
            skip = False
            continue
        flag, eq, value = token.partition("=")
        if flag in NOT_IN_COMMAND:
            skip = NOT_IN_COMMAND[flag] and not eq
            continue
        if token.startswith("--") and eq:
            words.append(f"{flag}={_portable_argument(value, project_dir)}")
        elif token.startswith("--"):
            words.append(token)
        else:
            words.append(_portable_argument(token, project_dir))
    return "python -m espdl_streaming " + " ".join(shlex.quote(w) for w in words)


def tool_sources_sha256() -> str:
    """One hash of the tool's own Python sources and templates (a change may change any output)."""
    h = hashlib.sha256()
    files = sorted(
        p
        for p in _PACKAGE_DIR.rglob("*")
        if p.is_file() and p.suffix in (".py", ".j2") and "__pycache__" not in p.parts
    )
    for path in files:
        h.update(path.relative_to(_PACKAGE_DIR).as_posix().encode() + b"\0")
        h.update(sha256_bytes(path.read_bytes()).encode() + b"\n")
    return h.hexdigest()


def package_versions() -> dict[str, str | None]:
    """The versions of the quantizer's packages from their metadata (None when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    found: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = None
    return found


def tool_fingerprint() -> dict[str, Any]:
    """The tool that builds: this package (version and sources) on this Python."""
    return {
        "espdl_streaming": __version__,
        "sources_sha256": tool_sources_sha256(),
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "machine": platform.machine(),
    }


def _canonical(value: Any, project_dir: Path, hasher: Hasher) -> Any:
    if isinstance(value, Path):
        return {"file": portable_path(value, project_dir), "sha256": hasher.file(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            f.name: _canonical(getattr(value, f.name), project_dir, hasher)
            for f in dataclasses.fields(value)
            if _in_fingerprint(f, getattr(value, f.name))
        }
    if isinstance(value, (list, tuple)):
        return [_canonical(v, project_dir, hasher) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v, project_dir, hasher) for k, v in sorted(value.items())}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _in_fingerprint(f: dataclasses.Field[Any], value: Any) -> bool:
    """A field marked ``fingerprint: when_set`` (declaration.FINGERPRINT_WHEN_SET) counts only when it is not
    its default: declarations that do not use it keep the fingerprint they had before it existed."""
    return f.metadata.get("fingerprint") != "when_set" or value != f.default


def declaration_fingerprint(decl: Any, project_dir: Path, hasher: Hasher) -> dict[str, Any]:
    """Every field of the declaration that decides an output byte (all but NOT_IN_OUTPUTS, so a field added
    to Declaration is part of it without a change here); files by portable path and SHA-256 (so the .wav
    files of a calibration folder, CalibrationRef.wav_files, by their listing and their contents)."""
    return {
        f.name: _canonical(getattr(decl, f.name), project_dir, hasher)
        for f in dataclasses.fields(decl)
        if f.name not in NOT_IN_OUTPUTS and _in_fingerprint(f, getattr(decl, f.name))
    }


def dependency_list(paths: Iterable[str], project_dir: Path, hasher: Hasher) -> list[list[str | None]]:
    """[portable path, SHA-256] of each dependency file the build recorded (paths portable or absolute)."""
    deps: dict[str, str | None] = {}
    for text in paths:
        path = resolve_portable(text, project_dir)
        deps[portable_path(path, project_dir)] = hasher.file(path)
    return [[p, sha] for p, sha in sorted(deps.items())]


def changed_dependencies(deps: Iterable[Sequence[Any]], project_dir: Path, hasher: Hasher) -> list[str]:
    """The recorded dependencies whose content is not the recorded one now."""
    return [str(p) for p, sha in deps if hasher.file(resolve_portable(str(p), project_dir)) != sha]


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _escape_make(path: str) -> str:
    return path.replace("\\", "\\\\").replace(" ", "\\ ").replace("#", "\\#").replace("$", "$$")


def depfile_text(target: Path, deps: Iterable[Path]) -> str:
    """A Makefile-style depfile, as build.make_depfile writes it."""
    return f"{_escape_make(str(target))}: " + " \\\n  ".join(_escape_make(str(p)) for p in deps) + "\n"
