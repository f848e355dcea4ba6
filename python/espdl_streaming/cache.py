"""The build cache: the outputs of a build, stored under the hash of everything that decides their bytes.

Shared by every build directory, project checkout and target of a user (``ESPDL_STREAMING_CACHE_DIR``,
default ``$XDG_CACHE_HOME/espdl_streaming`` or ``~/.cache/espdl_streaming``; builds go to its ``builds/``).
Layout::

    builds/v1/<key[:2]>/<key>/<variant>/   one entry: the six output files, entry.json, used
    builds/tmp/, builds/trash/             entries being written, entries being removed

``key`` hashes the declaration (inputs.declaration_fingerprint: options, target, model/calibration/
evaluation files by content), the portable command line the glue records and the tool (inputs.
tool_fingerprint, inputs.package_versions).  The local modules the model imports are only known after a
build: each entry lists them (portable path, SHA-256) and ``variant`` hashes that list, so a lookup
rehashes them and takes the entry whose list still holds.

An entry is written to ``tmp/`` and renamed into place in one step: a reader sees a whole entry or none,
and of two builds racing on one key the second rename fails and its copy is dropped.  A lookup checks
every file against the SHA-256 in entry.json; a mismatch removes the entry (it is rebuilt), never used.
A hit touches ``used``; after a store, the least recently used entries are removed until the cache is
within ``ESPDL_STREAMING_CACHE_MAX_MB`` (default 512).  ``ESPDL_STREAMING_CACHE=0`` (or
``build --no-cache``) turns it off.

Standard library only: a hit imports neither torch, esp-ppq nor numpy.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .inputs import (
    Hasher,
    canonical_json,
    changed_dependencies,
    declaration_fingerprint,
    package_versions,
    sha256_bytes,
    tool_fingerprint,
)

FORMAT = 1
DEFAULT_MAX_MB = 512
ENTRY = "entry.json"
USED = "used"


def default_cache_root() -> Path:
    base = os.environ.get("ESPDL_STREAMING_CACHE_DIR")
    if base:
        return Path(base)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "espdl_streaming"


def cache_enabled() -> bool:
    return os.environ.get("ESPDL_STREAMING_CACHE", "1").strip().lower() not in ("0", "off", "no", "false")


def max_bytes() -> int:
    text = os.environ.get("ESPDL_STREAMING_CACHE_MAX_MB", "")
    try:
        mb = float(text) if text.strip() else DEFAULT_MAX_MB
    except ValueError:
        mb = DEFAULT_MAX_MB
    return max(0, int(mb * 1024 * 1024))


def build_key(decl: Any, project_dir: Path, command_line: str, hasher: Hasher) -> str:
    """The hash of everything known before a build that decides its bytes."""
    return sha256_bytes(
        canonical_json(
            {
                "format": FORMAT,
                "declaration": declaration_fingerprint(decl, project_dir, hasher),
                "command_line": command_line,
                "tool": tool_fingerprint(),
                "packages": package_versions(),
            }
        )
    )


@dataclass
class Hit:
    key: str
    path: Path
    files: dict[str, bytes]  # output file name -> content
    deps: list[list[Any]]  # [portable path, sha256]


@dataclass
class BuildCache:
    root: Path  # <cache dir>/builds
    max_bytes: int = DEFAULT_MAX_MB * 1024 * 1024
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_environment(cls) -> BuildCache | None:
        if not cache_enabled():
            return None
        return cls(default_cache_root() / "builds", max_bytes())

    @property
    def entries(self) -> Path:
        return self.root / f"v{FORMAT}"

    def key_dir(self, key: str) -> Path:
        return self.entries / key[:2] / key

    # -- lookup ---------------------------------------------------------------------------------
    def lookup(self, key: str, project_dir: Path, hasher: Hasher) -> Hit | None:
        """The entry of `key` whose recorded dependencies still hold, verified; None on a miss."""
        try:
            variants = sorted(p for p in self.key_dir(key).iterdir() if p.is_dir())
        except OSError:
            return None
        for entry in variants:
            try:
                meta = json.loads((entry / ENTRY).read_text(encoding="utf-8"))
                deps = meta["deps"]
                if changed_dependencies(deps, project_dir, hasher):
                    continue
                files = {}
                for name, sha in sorted(meta["files"].items()):
                    data = (entry / name).read_bytes()
                    if sha256_bytes(data) != sha:
                        self._corrupt(entry, f"{name} does not match its SHA-256")
                        break
                    files[name] = data
                else:
                    _touch(entry / USED)
                    return Hit(key, entry, files, deps)
            except FileNotFoundError:
                if entry.exists():  # not removed meanwhile by another build: a torn or damaged entry
                    self._corrupt(entry, "a file is missing")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                self._corrupt(entry, f"unreadable ({type(exc).__name__}: {exc})")
        return None

    def _corrupt(self, entry: Path, why: str) -> None:
        self.warnings.append(f"build cache entry {entry} is corrupt ({why}): removed, building instead")
        self._remove(entry)

    # -- store ----------------------------------------------------------------------------------
    def store(self, key: str, files: dict[str, bytes], deps: list[list[Any]]) -> Path | None:
        """Store one build's outputs (file name -> content) under `key`; returns the entry, or None when
        another build stored the same one first or the cache cannot be written (the build goes on)."""
        variant = sha256_bytes(canonical_json(deps))[:32]
        final = self.key_dir(key) / variant
        if final.is_dir():
            return None
        try:
            tmp_root = self.root / "tmp"
            tmp_root.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f"{key[:12]}.", dir=tmp_root))
            try:
                for name, data in files.items():
                    _write_synced(tmp / name, data)
                meta = {
                    "format": FORMAT,
                    "files": {name: sha256_bytes(data) for name, data in sorted(files.items())},
                    "deps": deps,
                }
                _write_synced(tmp / ENTRY, (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())
                _write_synced(tmp / USED, b"")
                final.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.rename(tmp, final)  # atomic; fails when another build stored it first
                except OSError:
                    return None
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        except OSError as exc:
            self.warnings.append(f"build cache {self.root} not written: {exc}")
            return None
        self.evict()
        return final

    # -- eviction -------------------------------------------------------------------------------
    def evict(self) -> list[Path]:
        """Remove least recently used entries until the cache is within its size cap."""
        sized = []
        total = 0
        for entry in self.entries.glob("*/*/*"):
            try:
                size = sum(f.stat().st_size for f in entry.iterdir())
                used = (entry / USED).stat().st_mtime_ns
            except OSError:
                continue
            sized.append((used, str(entry), size))
            total += size
        removed = []
        for _, entry_text, size in sorted(sized):
            if total <= self.max_bytes:
                break
            self._remove(Path(entry_text))
            total -= size
            removed.append(Path(entry_text))
        return removed

    def _remove(self, entry: Path) -> None:
        """Move the entry out of the way in one rename (readers see it whole or not at all), then delete."""
        trash = self.root / "trash"
        try:
            trash.mkdir(parents=True, exist_ok=True)
            target = trash / uuid.uuid4().hex
            os.rename(entry, target)
        except OSError:
            return  # removed meanwhile by another build
        shutil.rmtree(target, ignore_errors=True)
        try:
            entry.parent.rmdir()  # the key's directory, when this was its last entry
        except OSError:
            pass


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass
