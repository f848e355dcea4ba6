"""Shared fixtures: run the CLI as users do (a subprocess with the package's interpreter); the test
tiers (markers); one policy for a missing external tool (``require_tool`` and its fixtures)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

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

    for tool in ("cmake", "ninja", "c++"):  # skipped, or failed, as every missing tool is (require_tool)
        require_tool(tool)
    try:
        return build_host_engine(sanitize=True)
    except HostEngineUnavailableError as exc:
        pytest.fail(str(exc))  # the tools are there, yet the engine cannot be built: a failure


# --------------------------------------------------------------------------- test tiers
# The markers are registered in python/pyproject.toml. They are applied here, by module and by the
# fixtures a test uses, so the test files need no decorators:
#   slow      builds models with torch/esp-ppq, or sets up venvs and CMake projects (minutes); every
#             module not in FAST_MODULES. `pytest -m "not slow"` (`make test-fast`) runs the rest,
#             torch-free, in well under a minute.
#   zoo, fuzz the model zoo (test_zoo.py) and the architecture fuzzer (test_fuzz.py)
#   idf       needs an ESP-IDF (IDF_PATH): test_idf.py and the tests using the `idf` fixture
#   browser   needs a headless chromium (the `chromium` fixture)
#   compiler  needs a C++ toolchain or an assembler (the fixtures `cxx`, `gxx`, `cmake`, `ninja`,
#             `assemblers`, `host_engine`)
FAST_MODULES = {
    "test_audio_cost",
    "test_audio_declare",
    "test_audio_pcm",
    "test_dev_tools",
    "test_espdl_version",
    "test_facts",
    "test_fast_fixtures",
    "test_frontend",
    "test_layout",
    "test_planner_axes",
    "test_recurrent",
    "test_template_contract",
    "test_tool_policy",
}
MODULE_MARKERS = {"test_zoo": ("zoo",), "test_fuzz": ("fuzz",), "test_idf": ("idf",)}
FIXTURE_MARKERS = {
    "idf": "idf",
    "chromium": "browser",
    "cxx": "compiler",
    "gxx": "compiler",
    "cmake": "compiler",
    "ninja": "compiler",
    "assemblers": "compiler",
    "host_engine": "compiler",
}
# Never imported by a fast test: `-m "not slow"` blocks them so a fast test that reaches for them fails
# (an optional import, `try: import torch / except ImportError`, still works).
SLOW_PACKAGES = ("torch", "torchaudio", "esp_ppq")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.stem
        if module not in FAST_MODULES:
            item.add_marker(pytest.mark.slow)
        for name in MODULE_MARKERS.get(module, ()):
            item.add_marker(name)
        for fixture, name in FIXTURE_MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(name)


class _BlockSlowPackages:
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in SLOW_PACKAGES:
            raise ImportError(f"{name}: the fast tier (-m 'not slow') runs without torch and esp-ppq")
        return None


def _fast_tier(config: pytest.Config) -> bool:
    """-m "not slow" (or "not slow and ..." without an `or`): no slow test can be selected."""
    expr = " ".join(str(config.getoption("markexpr", "") or "").split())
    return expr == "not slow" or (expr.startswith("not slow and ") and " or " not in expr)


def pytest_configure(config: pytest.Config) -> None:
    if _fast_tier(config) and not any(p in sys.modules for p in SLOW_PACKAGES):
        sys.meta_path.insert(0, _BlockSlowPackages())


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fast tier does not even import the slow modules (most import torch)."""
    if _fast_tier(config) and collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        return collection_path.stem not in FAST_MODULES or None
    return None


# --------------------------------------------------------------------------- missing external tools
# One policy: a test that needs an external tool calls require_tool(name) (or uses the fixture of that
# name below). When the tool is missing the test is skipped with a reason naming the fix, unless the
# environment variable ESPDL_STREAMING_REQUIRE_TOOLS names it (a comma list of the names below, or
# `all`): then it fails. CI, which installs every tool but an ESP-IDF, names all the others (.ci/run).
REQUIRE_TOOLS_ENV = "ESPDL_STREAMING_REQUIRE_TOOLS"
ASSEMBLERS = ("xtensa-esp32s3-elf-as", "xtensa-lx106-elf-as", "riscv32-esp-elf-as", "riscv64-unknown-elf-as")


def _which(name: str) -> str | None:
    """On PATH, or next to this interpreter (pip installs cmake and ninja into the venv)."""
    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def _cxx() -> str | None:
    cxx = os.environ.get("CXX")
    return (_which(cxx) if cxx else None) or _which("c++") or _which("g++") or _which("clang++")


def _assemblers() -> list[str] | None:
    found = [a for a in ASSEMBLERS if _which(a)]
    return found if found and _which("readelf") and _which("cpp") else None


def _module(name: str) -> Callable[[], str | None]:
    return lambda: name if importlib.util.find_spec(name) is not None else None


def _idf() -> tuple[str, str] | None:
    """(IDF_PATH, the Python of idf.py's env) of an ESP-IDF set up by tools/setup_idf_dev.sh."""
    idf, env = os.environ.get("IDF_PATH"), os.environ.get("IDF_PYTHON_ENV_PATH")
    python = Path(env or "/nonexistent") / "bin" / "python"
    return (idf, str(python)) if idf and python.exists() else None


_PIP_DEV = "pip install -r python/requirements-dev.txt"
# name -> (how to look for it: the found value or None, how to install it)
TOOLS: dict[str, tuple[Callable[[], Any], str]] = {
    "c++": (_cxx, "install a C++ compiler (apt-get install g++) or set CXX"),
    "g++": (lambda: _which("g++"), "apt-get install g++"),
    "cmake": (lambda: _which("cmake"), "apt-get install cmake, or pip install cmake (CMake >= 3.20)"),
    "ninja": (lambda: _which("ninja"), f"{_PIP_DEV} (ninja) or apt-get install ninja-build"),
    "assemblers": (
        _assemblers,
        "apt-get install binutils-xtensa-lx106 binutils-riscv64-unknown-elf (with binutils and cpp): the "
        "Xtensa/RISC-V assemblers, readelf and cpp",
    ),
    "chromium": (
        lambda: next(filter(None, map(_which, ("chromium", "chromium-browser", "google-chrome"))), None),
        "apt-get install chromium (a headless browser: chromium, chromium-browser or google-chrome on PATH)",
    ),
    "kaldi-native-fbank": (_module("kaldi_native_fbank"), "pip install kaldi-native-fbank"),
    "idf-component-manager": (_module("idf_component_manager"), _PIP_DEV),
    "idf": (
        _idf,
        "run tools/setup_idf_dev.sh and source <idf>/espdl_streaming_env.sh (IDF_PATH and "
        "IDF_PYTHON_ENV_PATH must name an ESP-IDF and the Python env of its idf.py)",
    ),
}


def tools_required() -> set[str]:
    """The tools ESPDL_STREAMING_REQUIRE_TOOLS names (every one for `all`)."""
    names = {n.strip() for n in os.environ.get(REQUIRE_TOOLS_ENV, "").split(",") if n.strip()}
    return set(TOOLS) if "all" in names else names


def tool_missing(name: str, fix: str) -> NoReturn:
    """Skip the test naming the fix, or fail it when ESPDL_STREAMING_REQUIRE_TOOLS names `name`."""
    message = f"{name} is not available: {fix}"
    if name in tools_required():
        pytest.fail(f"{message} ({REQUIRE_TOOLS_ENV} requires it)", pytrace=False)
    pytest.skip(message)


def require_tool(name: str) -> Any:
    """What TOOLS finds for `name` (its path, mostly), else skip or fail per the policy above."""
    find, fix = TOOLS[name]
    found = find()
    if not found:
        tool_missing(name, fix)
    return found


@pytest.fixture(scope="session")
def cxx() -> str:
    """A C++ compiler: $CXX, c++, g++ or clang++."""
    return str(require_tool("c++"))


@pytest.fixture(scope="session")
def gxx() -> str:
    return str(require_tool("g++"))


@pytest.fixture(scope="session")
def cmake() -> str:
    return str(require_tool("cmake"))


@pytest.fixture(scope="session")
def ninja() -> str:
    return str(require_tool("ninja"))


@pytest.fixture(scope="session")
def assemblers() -> list[str]:
    """The Xtensa/RISC-V assemblers on PATH (at least one), with readelf and cpp."""
    return list(require_tool("assemblers"))


@pytest.fixture(scope="session")
def chromium() -> str:
    return str(require_tool("chromium"))


@pytest.fixture(scope="session")
def kaldi_native_fbank() -> str:
    """The Python package kaldi_native_fbank is importable."""
    return str(require_tool("kaldi-native-fbank"))


@pytest.fixture(scope="session")
def idf_component_manager() -> str:
    """The Python package idf_component_manager (compote) is importable."""
    return str(require_tool("idf-component-manager"))


@pytest.fixture(scope="session")
def idf() -> tuple[str, str]:
    """(IDF_PATH, the Python of idf.py's env)."""
    found: tuple[str, str] = require_tool("idf")
    return found
