"""The lock: a project's committed build outputs, per target, with the hashes of the inputs they came from.

Layout (a directory in the project, ``espdl_streaming.lock/`` by convention)::

    <lock>/<target>/<name>/NAME.espdl, NAME.offline.espdl, NAME.hpp, NAME.cpp,
                           NAME.report.json, NAME.report.html, manifest.json

``manifest.json`` records the declaration (inputs.declaration_fingerprint: every option and the model,
calibration and evaluation files by portable path and SHA-256), every dependency the build recorded (the
local modules the model imports, by SHA-256), the tool (espdl_streaming's version and sources hash), the
versions of the packages that built it (information only: a lock-mode build runs without them) and the
SHA-256 of each file.  Every path in it and in the outputs is relative to the project, so a lock made in
one checkout is byte-identical to one made in another (``seconds`` in the report is the one exception).

``build --lock-dir DIR`` replays the entry when all of that still holds, importing neither torch, esp-ppq
nor numpy, and otherwise fails (exit 2) naming the first input that changed and the command that
refreshes the lock; ``build --lock-dir DIR --update-lock`` builds and (re)writes the entry; ``lock
--declarations FILE`` does that for every model and target a CMake build declared.

Standard library only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .atomic import write_atomically
from .errors import LockError
from .inputs import (
    Hasher,
    changed_dependencies,
    declaration_fingerprint,
    package_versions,
    portable_path,
    resolve_portable,
    sha256_bytes,
    tool_fingerprint,
)

FORMAT = 1
MANIFEST = "manifest.json"


@dataclass
class LockEntry:
    files: dict[str, bytes]  # output file name -> content
    deps: list[list[Any]]
    manifest_path: Path


def entry_dir(lock_dir: Path, chip: str, name: str) -> Path:
    return lock_dir / chip / name


def make_manifest(decl: Any, project_dir: Path, files: dict[str, bytes], deps: list[list[Any]]) -> bytes:
    tool = tool_fingerprint()
    manifest = {
        "format": FORMAT,
        "name": decl.name,
        "target": decl.chip,
        "declaration": declaration_fingerprint(decl, project_dir, Hasher()),
        "dependencies": deps,
        "tool": {"espdl_streaming": tool["espdl_streaming"], "sources_sha256": tool["sources_sha256"]},
        # What built the files (not compared: a lock-mode build runs without the quantizer).
        "built_with": {k: v for k, v in package_versions().items() if k in ("esp-ppq", "torch", "numpy")},
        "files": {name: sha256_bytes(data) for name, data in sorted(files.items())},
    }
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()


def write_entry(
    lock_dir: Path, decl: Any, project_dir: Path, files: dict[str, bytes], deps: list[list[Any]]
) -> list[Path]:
    """(Re)write the entry of `decl` with one build's outputs; unchanged files are left untouched and
    files no longer produced are removed.  Returns the paths written."""
    where = entry_dir(lock_dir, decl.chip, decl.name)
    content = {where / name: data for name, data in files.items()}
    content[where / MANIFEST] = make_manifest(decl, project_dir, files, deps)
    written = write_atomically(content)
    for stale in where.iterdir():
        if stale.is_file() and stale not in content:
            stale.unlink()
    return written


def _flatten(value: Any, key: str) -> Iterable[tuple[str, Any]]:
    if isinstance(value, dict) and not ("file" in value and "sha256" in value):
        for k, v in sorted(value.items()):
            yield from _flatten(v, f"{key}.{k}" if key else k)
    else:
        yield key, value


def _describe(key: str, locked: Any, now: Any, where: str) -> str:
    field = key.split(".")[0]
    if isinstance(locked, dict) and isinstance(now, dict) and "file" in locked and "file" in now:
        if locked["file"] == now["file"]:
            return (
                f"the {field} file {now['file']} changed (SHA-256 {str(locked['sha256'])[:12]} in {where}, "
                f"{str(now['sha256'])[:12]} now)"
            )
        return f"the {field} file is {now['file']}, the lock was made from {locked['file']}"
    show = {True: "on", False: "off", None: "not given"}
    return (
        f"option {key} is {show.get(now, now) if isinstance(now, (bool, type(None))) else now!r}, the lock was "
        f"made with {show.get(locked, locked) if isinstance(locked, (bool, type(None))) else locked!r}"
    )


def changed_inputs(manifest: dict[str, Any], decl: Any, project_dir: Path, hasher: Hasher, where: str) -> list[str]:
    """What differs between the inputs the lock was made from and the current ones, most telling first."""
    changes = []
    reported = set()
    locked = dict(_flatten(manifest.get("declaration", {}), ""))
    now = dict(_flatten(declaration_fingerprint(decl, project_dir, hasher), ""))
    for key in sorted(set(locked) | set(now), key=lambda k: (not isinstance(now.get(k), dict), k)):
        if locked.get(key) != now.get(key):
            changes.append(_describe(key, locked.get(key), now.get(key), where))
            if isinstance(now.get(key), dict):
                reported.add(now[key].get("file"))
    for path in changed_dependencies(manifest.get("dependencies", []), project_dir, hasher):
        if path not in reported:
            exists = resolve_portable(path, project_dir).is_file()
            changes.append(
                f"the imported module {path} changed" if exists else f"the imported module {path} is missing"
            )
    tool = manifest.get("tool", {})
    current = tool_fingerprint()
    if tool.get("espdl_streaming") != current["espdl_streaming"]:
        changes.append(
            f"espdl_streaming is {current['espdl_streaming']}, the lock was made by {tool.get('espdl_streaming')}"
        )
    elif tool.get("sources_sha256") != current["sources_sha256"]:
        changes.append("the espdl_streaming tool's sources changed (python/espdl_streaming)")
    return changes


def read_entry(lock_dir: Path, decl: Any, project_dir: Path, hasher: Hasher, refresh: str) -> LockEntry:
    """The lock's outputs for `decl`, or LockError naming what changed and how to refresh."""
    where = entry_dir(lock_dir, decl.chip, decl.name)
    manifest_path = where / MANIFEST
    shown = portable_path(manifest_path, project_dir)
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LockError(
            f"{decl.name}: the lock has no entry for {decl.name} on {decl.chip} ({shown} is missing): "
            f"make it with: {refresh}"
        ) from None
    except (OSError, ValueError) as exc:
        raise LockError(f"{decl.name}: {shown} is unreadable ({exc}): refresh the lock with: {refresh}") from None
    if manifest.get("format") != FORMAT:
        raise LockError(f"{decl.name}: {shown} is of another lock format: refresh the lock with: {refresh}")
    changes = changed_inputs(manifest, decl, project_dir, hasher, shown)
    if changes:
        more = f" (and {len(changes) - 1} more: {'; '.join(changes[1:])})" if len(changes) > 1 else ""
        raise LockError(
            f"{decl.name}: the lock {portable_path(where, project_dir)} is out of date for {decl.chip}: "
            f"{changes[0]}{more}; refresh the lock with: {refresh}"
        )
    files = {}
    for name, sha in sorted(manifest.get("files", {}).items()):
        try:
            data = (where / name).read_bytes()
        except OSError:
            raise LockError(
                f"{decl.name}: {portable_path(where / name, project_dir)} is missing from the lock: refresh it with: "
                f"{refresh}"
            ) from None
        if sha256_bytes(data) != sha:
            raise LockError(
                f"{decl.name}: {portable_path(where / name, project_dir)} does not match the SHA-256 in {shown} "
                f"(edited or damaged): refresh the lock with: {refresh}"
            )
        files[name] = data
    return LockEntry(files, manifest.get("dependencies", []), manifest_path)


def up_to_date(lock_dir: Path, decl: Any, project_dir: Path) -> bool:
    try:
        read_entry(lock_dir, decl, project_dir, Hasher(), "")
    except LockError:
        return False
    return True
