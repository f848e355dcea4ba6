"""The component as the ESP Component Registry ships it: `compote component pack` of a clean checkout.

A copy of the checkout's files (what git tracks, plus new files it does not ignore) with one decoy of
every kind of development debris (.venv/, out/, build/, __pycache__, an example's output) is packed by
idf-component-manager; the archive must be small, hold nothing of the development checkout and hold
everything the component needs.  The packed copy's host engine must configure and build without
writing into the component (a managed component is read-only), and the version must be the same for
compote (idf_component.yml) and pip (python/pyproject.toml's dynamic version).
"""

from __future__ import annotations

import ast
import hashlib
import re
import runpy
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import pytest
from conftest import REPO, require_tool

# compote packs the component: without idf-component-manager (python/requirements-dev.txt) the module is
# skipped, or failed when ESPDL_STREAMING_REQUIRE_TOOLS names it (conftest.require_tool).
pytestmark = pytest.mark.usefixtures("idf_component_manager")

NAME = "espdl_streaming"
MAX_ARCHIVE_BYTES = 1_000_000
# md5 of the canonical Apache License 2.0 text (https://www.apache.org/licenses/LICENSE-2.0.txt).
APACHE_2_0_MD5 = "3b83ef96387f14655fc854ddc3c6bd57"
COPYRIGHT = "Copyright 2026 the espdl_streaming authors"

# Top-level directories and files of the development checkout that the package must not hold.
DEV_ONLY = {
    "tests",
    "test_apps",
    "bench",
    "tools",
    "out",
    "build",
    "dist",
    "venv",
    "Makefile",
    "BENCHMARKS.md",
    ".ci",
    ".venv",
    ".git",
    ".gitignore",
}
# Files of the checkout the component needs (directories: every file under them).
NEEDED = [
    "CMakeLists.txt",
    "project_include.cmake",
    "Kconfig",
    "README.md",
    "LICENSE",
    "idf_component.yml",
    "cmake",
    "include",
    "src",
    "host",
    "python/espdl_streaming",
    "python/pyproject.toml",
    "python/requirements.txt",
    "python/requirements.lock",
    "python/README.md",
    "idf_ext.py",
    "tools/espdl_streaming_env.py",
]
# Files under DEV_ONLY directories that the component ships all the same.
SHIPPED_FROM_DEV_DIRS = {"tools/espdl_streaming_env.py"}
DECOYS = [
    ".venv/lib/python3.11/site-packages/decoy.py",
    "out/demo/esp32p4/tcn.espdl",
    "build/host-engine/espdl_run",
    "test_apps/streaming_tcn/build/decoy.bin",
    "test_apps/streaming_tcn/sdkconfig",
    "python/espdl_streaming/__pycache__/build.cpython-311.pyc",
    "python/espdl_streaming/espdl/__pycache__/simulate.cpython-311.pyc",
    "python/espdl_streaming.egg-info/PKG-INFO",
    "python/.pytest_cache/v/cache/lastfailed",
    "examples/tcn/__pycache__/model.cpython-311.pyc",
    "examples/tcn/out/tcn.espdl",
    "examples/tcn/tcn.report.html",
    "examples/kws_audio/kws.espdl",
    "examples/kws_audio/wav/recorded.npy",
    "examples/kws_audio/wav/sub/extra.wav",
]


def _checkout_files() -> list[str]:
    """The checkout's files as a clean clone (plus not-yet-committed new files) would have them."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        )
    except (OSError, subprocess.CalledProcessError):
        # Not a git checkout: everything but what .gitignore names.
        skip = {".git", ".venv", "build", "out", "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"}
        return [
            path.relative_to(REPO).as_posix()
            for path in REPO.rglob("*")
            if path.is_file()
            and not skip.intersection(path.relative_to(REPO).parts)
            and not any(part.endswith(".egg-info") for part in path.parts)
        ]
    names = [name for name in proc.stdout.decode().split("\0") if name]
    return [name for name in names if (REPO / name).is_file()]  # tracked but deleted: not in a clone


def _is_example_input(name: str) -> bool:
    """What building an example needs: examples/X/*.py, *.npz and README.md, examples/X/wav/*.wav."""
    parts = PurePosixPath(name).parts
    if not parts or parts[0] != "examples" or "__pycache__" in parts:
        return False
    if len(parts) == 3:
        return name.endswith((".py", ".npz")) or parts[2] == "README.md"
    return len(parts) == 4 and parts[2] == "wav" and name.endswith(".wav")


def _is_needed(name: str) -> bool:
    parts = PurePosixPath(name).parts
    if "__pycache__" in parts:
        return False
    return any(name == need or name.startswith(need + "/") for need in NEEDED) or _is_example_input(name)


class Packed:
    def __init__(self, source: Path, archive: Path, unpacked: Path, files: list[str], names: list[str]) -> None:
        self.source = source  # the clean copy (with the decoys)
        self.archive = archive
        self.unpacked = unpacked
        self.files = files  # the clean copy's files, without the decoys
        self.names = names  # the archive's files


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Packed:
    tmp = tmp_path_factory.mktemp("package")
    source = tmp / NAME
    files = _checkout_files()
    for name in files:
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, source / name)
    for decoy in DECOYS:
        (source / decoy).parent.mkdir(parents=True, exist_ok=True)
        (source / decoy).write_bytes(b"decoy\n")
    dist = tmp / "dist"
    proc = subprocess.run(
        [sys.executable, "-m", "idf_component_manager", "component", "pack", "--name", NAME, "--dest-dir", str(dist)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    archives = sorted(dist.glob(f"{NAME}_*.tgz"))
    assert len(archives) == 1, (sorted(p.name for p in dist.iterdir()), proc.stdout)
    unpacked = tmp / "unpacked"
    with tarfile.open(archives[0]) as tar:
        members = tar.getmembers()
        if hasattr(tarfile, "data_filter"):
            tar.extractall(unpacked, filter="data")
        else:  # pragma: no cover - Python < 3.10.12
            tar.extractall(unpacked)
    names = sorted(PurePosixPath(m.name).relative_to(".").as_posix() for m in members if m.isfile())
    return Packed(source, archives[0], unpacked, files, names)


def test_the_archive_is_small_and_holds_nothing_of_the_development_checkout(packed: Packed) -> None:
    size = packed.archive.stat().st_size
    print(f"{packed.archive.name}: {size} bytes, {len(packed.names)} files")
    assert size < MAX_ARCHIVE_BYTES, f"{packed.archive.name} is {size} bytes"
    unwanted = []
    for name in packed.names:
        parts = PurePosixPath(name).parts
        if (
            (parts[0] in DEV_ONLY and name not in SHIPPED_FROM_DEV_DIRS)
            or any(part.startswith(".") or part == "__pycache__" or part.endswith(".egg-info") for part in parts)
            or name.endswith((".pyc", ".pyo"))
            or name.startswith("python/tests/")
            or name == "python/requirements-dev.txt"
            or PurePosixPath(name).name in ("sdkconfig", "sdkconfig.old", "dependencies.lock")
            or (parts[0] == "examples" and not _is_example_input(name))
        ):
            unwanted.append(name)
    assert not unwanted, f"{len(unwanted)} files of the development checkout packed: {unwanted[:20]}"
    assert not set(DECOYS) & set(packed.names)


def test_the_archive_holds_everything_the_component_needs(packed: Packed) -> None:
    needed = sorted(name for name in packed.files if _is_needed(name))
    for must in (
        "CMakeLists.txt",
        "project_include.cmake",
        "Kconfig",
        "README.md",
        "LICENSE",
        "idf_component.yml",
        "cmake/espdl_streaming.cmake",
        "host/CMakeLists.txt",
        "python/espdl_streaming/__init__.py",
        "python/espdl_streaming/_version.py",
        "python/espdl_streaming/templates/model.cpp.j2",
        "python/espdl_streaming/templates/model.hpp.j2",
        "examples/tcn/model.py",
        "examples/kws_audio/model.py",
        "examples/kws_audio/weights.npz",
        "examples/kws_audio/wav/01_up.wav",
        "idf_ext.py",
        "tools/espdl_streaming_env.py",
        "python/requirements.lock",
    ):
        assert must in needed, f"{must} is not in the checkout"
    assert any(n.startswith("include/") for n in needed) and any(n.startswith("src/") for n in needed)
    missing = sorted(set(needed) - set(packed.names))
    assert not missing, f"not packed: {missing}"
    # Packed as they are (compote rewrites only the manifest).
    changed = [
        name
        for name in needed
        if name != "idf_component.yml" and (packed.unpacked / name).read_bytes() != (packed.source / name).read_bytes()
    ]
    assert not changed, changed


def test_the_license_is_the_apache_2_0_text(packed: Packed) -> None:
    text = (packed.unpacked / "LICENSE").read_text(encoding="utf-8")
    first, rest = text.split("\n", 1)
    assert first == COPYRIGHT
    assert hashlib.md5(rest.encode()).hexdigest() == APACHE_2_0_MD5, "LICENSE is not the verbatim Apache-2.0 text"
    manifest = (REPO / "idf_component.yml").read_text(encoding="utf-8")
    assert re.search(r"^license:\s*['\"]?Apache-2\.0['\"]?\s*$", manifest, re.MULTILINE)


def test_compote_and_pip_see_the_same_version(packed: Packed) -> None:
    from setuptools.config.pyprojecttoml import read_configuration

    import espdl_streaming
    from espdl_streaming._version import manifest_version

    version = manifest_version(REPO / "idf_component.yml")
    assert version and re.fullmatch(r"\d+\.\d+\.\d+([.+~-][0-9A-Za-z.+~-]+)?", version), version
    # compote: the archive's name and its (rewritten) manifest.
    assert packed.archive.name == f"{NAME}_{version}.tgz"
    assert manifest_version(packed.unpacked / "idf_component.yml") == version
    # The tool, from the checkout and from the packed copy (a managed component puts python/ on PYTHONPATH).
    assert espdl_streaming.__version__ == version
    unpacked = runpy.run_path(str(packed.unpacked / "python" / "espdl_streaming" / "_version.py"))
    assert unpacked["__version__"] == version
    # pip: what setuptools computes for the wheel or the editable install.
    config = read_configuration(REPO / "python" / "pyproject.toml")
    assert config["project"]["version"] == version
    # Written in one place only.
    raw = read_configuration(REPO / "python" / "pyproject.toml", expand=False)["project"]
    assert "version" not in raw and "version" in raw["dynamic"]
    init = (REPO / "python" / "espdl_streaming" / "__init__.py").read_text(encoding="utf-8")
    assert not re.search(r"^__version__\s*=\s*['\"]", init, re.MULTILINE)


def _package_imports() -> set[str]:
    """The top-level modules outside the standard library that the package imports."""
    modules: set[str] = set()
    for path in (REPO / "python" / "espdl_streaming").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return {m for m in modules if m not in sys.stdlib_module_names and m != "espdl_streaming"}


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_declared_dependencies_are_what_the_tool_imports() -> None:
    import importlib.metadata

    from setuptools.config.pyprojecttoml import read_configuration

    distributions = importlib.metadata.packages_distributions()
    imported: dict[str, set[str]] = {}
    for module in sorted(_package_imports()):
        assert module in distributions, f"the package imports {module}, which is not installed"
        imported[module] = {_requirement_name(d) for d in distributions[module]}
    imported_dists = set().union(*imported.values())

    project = read_configuration(REPO / "python" / "pyproject.toml", expand=False)["project"]
    declared = {_requirement_name(r) for r in project["dependencies"]}
    for extra in project.get("optional-dependencies", {}).values():
        declared.update(_requirement_name(r) for r in extra)
    declared -= {"pytest"}  # the `test` extra
    requirements = {
        _requirement_name(line.split("#", 1)[0])
        for line in (REPO / "python" / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.split("#", 1)[0].strip()
    }
    for module, dists in imported.items():
        assert dists & declared, f"{module} is imported but not declared in python/pyproject.toml"
        assert dists & requirements, f"{module} is imported but not in python/requirements.txt"
    assert declared <= imported_dists, f"declared in pyproject.toml, never imported: {declared - imported_dists}"
    assert requirements <= imported_dists, f"in requirements.txt, never imported: {requirements - imported_dists}"


def test_the_configure_check_looks_for_what_the_tool_imports() -> None:
    """cmake/espdl_streaming.cmake checks (find_spec) that the build's Python has the tool's imports."""
    cmake = (REPO / "cmake" / "espdl_streaming.cmake").read_text(encoding="utf-8")
    match = re.search(r"set\(modules \"([^\"]*)\"\)", cmake)
    assert match, "the module list of __espdl_streaming_check_python is not found"
    checked = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", match.group(1)))
    wanted = _package_imports()
    listed = "', '".join(sorted(wanted))
    assert checked == wanted, f"""cmake/espdl_streaming.cmake should read: set(modules "{listed}")"""


@pytest.fixture
def read_only(packed: Packed) -> Iterator[Path]:
    """The unpacked component, read-only as a managed component is meant to be (root writes anyway:
    the test also compares the tree's listing before and after)."""
    paths = [packed.unpacked, *packed.unpacked.rglob("*")]
    modes = {path: path.stat().st_mode for path in paths}
    for path in paths:
        path.chmod(modes[path] & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    try:
        yield packed.unpacked
    finally:
        for path in reversed(paths):
            path.chmod(modes[path])


def _tool(name: str) -> str:
    return str(require_tool(name))  # cmake, ninja: skipped or failed per conftest.require_tool


def test_the_packed_host_engine_builds_outside_the_component(read_only: Path, tmp_path: Path) -> None:
    before = sorted(p.relative_to(read_only).as_posix() for p in read_only.rglob("*"))
    cmake, ninja = _tool("cmake"), _tool("ninja")
    build = tmp_path / "host-engine"
    configure = subprocess.run(
        [cmake, "-S", str(read_only / "host"), "-B", str(build), "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert configure.returncode == 0, configure.stdout + configure.stderr
    compile_ = subprocess.run([cmake, "--build", str(build)], capture_output=True, text=True, timeout=600)
    assert compile_.returncode == 0, "\n".join((compile_.stdout + compile_.stderr).splitlines()[-40:])
    # Every tool, engine_check and espdl_features (with the allocation counter, host/alloc_counter.cpp) included.
    for tool in ("espdl_run", "espdl_features", "espdl_fuzz", "engine_check"):
        assert (build / tool).is_file(), tool
    usage = subprocess.run([str(build / "espdl_run")], capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2 and "usage: espdl_run" in usage.stderr, usage.stderr
    after = sorted(p.relative_to(read_only).as_posix() for p in read_only.rglob("*"))
    assert after == before
