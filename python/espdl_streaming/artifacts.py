"""Where a build's outputs come from: the lock, the build cache, or the quantizer.

``produce()`` is what ``build`` runs once the declaration is valid:

- ``--lock-dir DIR`` (lock mode): the lock's entry when every input still matches (lock.py), else an
  error naming the changed input and the refresh command; never the quantizer;
- otherwise the build cache's entry for these inputs (cache.py) when there is one, else a real build
  (build.run_build, which imports torch and esp-ppq), stored in the cache;
- ``--update-lock``: the outputs (from the cache or built) are also written to the lock.

Paths in the outputs are relative to ``--project-dir`` (inputs.py).  ``lock --declarations FILE`` refreshes
the lock for every model and target a CMake build declared.  Nothing here prints; the CLI does.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shlex
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .cache import BuildCache, build_key
from .errors import EspdlStreamingError, LockError
from .inputs import (
    Hasher,
    dependency_list,
    depfile_text,
    portable_command,
    portable_json,
    portable_path,
    project_dir_of,
    resolve_portable,
)
from .lock import read_entry, write_entry

QUANTIZER_MODULES = ("torch", "esp_ppq", "onnx", "onnxruntime", "jinja2", "numpy")


@dataclass
class Produced:
    files: dict[Path, bytes]  # final path -> content
    report: dict[str, Any]
    depfile: str
    source: str  # "quantizer", "cache" or "lock"
    notes: list[str] = field(default_factory=list)  # what the CLI says on stdout (unless --quiet)
    warnings: list[str] = field(default_factory=list)  # what it says on stderr


def add_build_arguments(b: argparse.ArgumentParser) -> None:
    """The build flags of the cache and the lock."""
    b.add_argument(
        "--project-dir",
        type=Path,
        help="the project's root (CMake: its top source directory; default: the working directory): paths in the "
        "outputs, the cache key and the lock are relative to it",
    )
    b.add_argument(
        "--no-cache",
        action="store_true",
        help="neither use nor fill the build cache (also: ESPDL_STREAMING_CACHE=0)",
    )
    b.add_argument(
        "--lock-dir",
        type=Path,
        help="lock mode: take the outputs from DIR/<target>/<name>/ when its manifest matches the inputs (no "
        "quantizer needed), else fail naming the changed input",
    )
    b.add_argument(
        "--update-lock", action="store_true", help="with --lock-dir: build and (re)write the lock's entry instead"
    )
    b.add_argument("--refresh-command", help="the command that refreshes the lock, for lock-mode errors")


def add_lock_parser(sub: Any) -> None:
    lk = sub.add_parser(
        "lock",
        help="refresh the lock for every model and target a CMake build declared "
        "(cmake --build BUILD --target espdl_streaming_lock runs this)",
        description="Build every model of FILE (written by CMake into <build>/espdl_streaming/declarations.json "
        "when ESPDL_STREAMING_LOCK_DIR is set) for every target, and write its outputs and the hashes of its inputs "
        "into the lock; entries whose inputs did not change are left as they are.",
    )
    lk.add_argument("--declarations", required=True, type=Path, metavar="FILE", help="the declarations file")
    lk.add_argument("--targets", help="comma-separated chips (default: the file's, ESPDL_STREAMING_LOCK_TARGETS)")
    lk.add_argument("--quiet", action="store_true", help="print only errors and warnings")


def _quantizer_missing() -> list[str]:
    """The quantizer's modules that cannot be found (find_spec: nothing is imported)."""
    missing = []
    for module in QUANTIZER_MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    return missing


def _replayed(decl: Any, named: dict[str, bytes], deps: list[Path], source: str, note: str) -> Produced:
    report = json.loads(named[f"{decl.name}.report.json"])
    files = {decl.out_dir / name: data for name, data in named.items()}
    return Produced(files, report, depfile_text(decl.output_path(".espdl"), deps), source, [note])


def produce(decl: Any, args: argparse.Namespace, argv: Sequence[str]) -> Produced:
    """The outputs of `decl` (`args`: the parsed build flags; `argv`: the build's arguments, for the command
    line the generated code records)."""
    project_dir = project_dir_of(args.project_dir)
    command_line = portable_command(argv, project_dir)
    hasher = Hasher()
    lock_dir = Path(args.lock_dir).resolve() if args.lock_dir else None
    if lock_dir is not None:
        refresh = args.refresh_command or shlex.join(["python", "-m", "espdl_streaming", *argv, "--update-lock"])
        try:
            entry = read_entry(lock_dir, decl, project_dir, hasher, refresh)
        except LockError:
            if not args.update_lock:
                raise
        else:
            where = portable_path(entry.manifest_path.parent, project_dir)
            deps = sorted({resolve_portable(str(p), project_dir) for p, _ in entry.deps} | {entry.manifest_path})
            return _replayed(
                decl, entry.files, deps, "lock",
                f"{decl.name}: lock {where} up to date" if args.update_lock else
                f"{decl.name}: outputs for {decl.chip} taken from the lock {where} (every input matches its manifest; "
                "no quantizer run)",
            )  # fmt: skip
    cache = None if args.no_cache else BuildCache.from_environment()
    key = build_key(decl, project_dir, command_line, hasher) if cache else None
    hit = cache.lookup(key, project_dir, hasher) if cache and key and not getattr(args, "log", None) else None
    if cache and hit:
        deps = sorted(resolve_portable(str(p), project_dir) for p, _ in hit.deps)
        produced = _replayed(
            decl, hit.files, deps, "cache",
            f"{decl.name}: replayed from the build cache ({hit.path}): same inputs, tool and packages; "
            "no quantizer run",
        )  # fmt: skip
        named, dep_list = hit.files, hit.deps
    else:
        missing = _quantizer_missing()
        if missing:
            raise EspdlStreamingError(
                f"{decl.name}: the quantizer is not installed in {sys.executable} (missing: {', '.join(missing)}): "
                f"install it with: {sys.executable} -m pip install -r "
                f"{Path(__file__).resolve().parents[1] / 'requirements.txt'}"
                + (" (or build from a lock: --lock-dir / ESPDL_STREAMING_LOCK_DIR)" if lock_dir is None else "")
            )
        from .build import run_build
        from .report_html import render_html

        result = run_build(decl, command_line)
        report = portable_json(result.report, project_dir)
        named = {path.name: data for path, data in result.files.items()}
        named[f"{decl.name}.report.json"] = (json.dumps(report, indent=2) + "\n").encode()
        named[f"{decl.name}.report.html"] = render_html(report).encode("utf-8")
        dep_list = dependency_list(report.get("dependencies", []), project_dir, hasher)
        produced = Produced(
            {decl.out_dir / name: data for name, data in named.items()}, report, result.depfile, "quantizer"
        )
        if cache and key:
            cache.store(key, named, dep_list)
    if cache:
        produced.warnings.extend(f"{decl.name}: {w}" for w in cache.warnings)
    if lock_dir is not None:
        written = write_entry(lock_dir, decl, project_dir, named, dep_list)
        where = portable_path(lock_dir / decl.chip / decl.name, project_dir)
        produced.notes.append(
            f"{decl.name}: lock {where} " + (f"updated ({len(written)} file(s))" if written else "unchanged")
        )
    return produced


def main_lock(args: argparse.Namespace, main: Callable[[Sequence[str]], int]) -> int:
    """`lock --declarations FILE`: every model of FILE for every target, into the lock, each built by the
    command line's `main` (cli.py passes it: this module does not import the CLI)."""
    try:
        spec = json.loads(args.declarations.read_text(encoding="utf-8"))
        models = spec["models"]
        targets = [t for t in (args.targets.split(",") if args.targets else spec["targets"]) if t]
        project_dir = Path(spec["project_dir"])
        lock_dir = Path(spec["lock_dir"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: lock: cannot read --declarations {args.declarations}: {exc}", file=sys.stderr)
        return 2
    if not models or not targets:
        print(f"error: lock: {args.declarations} declares no {'model' if not models else 'target'}", file=sys.stderr)
        return 2
    failed = []
    with tempfile.TemporaryDirectory(prefix="espdl_streaming_lock.") as tmp:
        for target in targets:
            for model in models:
                out = Path(tmp) / target / model["name"]
                given = list(model["args"])
                if "--target" in given[:-1]:  # in place: the glue records the flags in the order given
                    given[given.index("--target") + 1] = target
                else:
                    given += ["--target", target]
                argv = [
                    "build", *given, "--out-dir", str(out),
                    "--project-dir", str(project_dir), "--lock-dir", str(lock_dir), "--update-lock",
                ]  # fmt: skip
                if args.quiet:
                    argv.append("--quiet")
                if main(argv) != 0:
                    failed.append(f"{model['name']} for {target}")
    if failed:
        print(f"error: lock: not refreshed: {', '.join(failed)}", file=sys.stderr)
        return 2
    if not args.quiet:
        print(f"lock {lock_dir}: {len(models)} model(s) x {len(targets)} target(s) ({', '.join(targets)}) up to date")
    return 0
