"""The model tool's own environment: tools/espdl_streaming_env.py, idf_ext.py and how the CMake finds it.

Network-free: the venvs made here install a one-file wheel written by the test (pip --no-index), never
torch. The CMake tests configure tiny projects that include cmake/espdl_streaming.cmake. The last test
needs an ESP-IDF (IDF_PATH, IDF_PYTHON_ENV_PATH) and skips without one: with the constraint check of
idf.py on, the set-up run through `idf.py espdl-streaming-setup` leaves ESP-IDF's Python as it was.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from test_cmake import CMAKE, NINJA, flat, run

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "tools" / "espdl_streaming_env.py"
CMAKE_CORE = REPO / "cmake" / "espdl_streaming.cmake"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("espdl_streaming_env_under_test", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


env_script = load_script()


def make_wheel(directory: Path, name: str = "tiny", version: str = "1.0") -> Path:
    """A minimal pure-Python wheel, so that pip installs something real without any index."""
    directory.mkdir(parents=True, exist_ok=True)
    dist = f"{name}-{version}.dist-info"
    files = {
        f"{name}/__init__.py": f"VERSION = {version!r}\n",
        f"{dist}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{dist}/WHEEL": "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = [f"{path},,\n" for path in files] + [f"{dist}/RECORD,,\n"]
    wheel = directory / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{dist}/RECORD", "".join(record))
    return wheel


def fake_component(root: Path, requirement: str = "tiny", lock: str = "tiny==1.0\n") -> Path:
    """A component with the real script, version source and extension, and a one-wheel requirement set."""
    component = root / "espdl_streaming"
    for rel in (
        "tools/espdl_streaming_env.py",
        "python/espdl_streaming/_version.py",
        "idf_component.yml",
        "idf_ext.py",
    ):
        (component / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, component / rel)
    (component / "python" / "requirements.txt").write_text(requirement + "\n")
    (component / "python" / "requirements.lock").write_text(lock)
    (component / "CMakeLists.txt").write_text("idf_component_register()\n")
    return component


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("wheels")
    make_wheel(directory)
    return directory


def offline(wheels: Path) -> list[str]:
    return ["--no-index", "--find-links", str(wheels)]


# --- location, version, pip command ---------------------------------------------------------------


def test_location_is_per_user_and_component_version_and_overridable() -> None:
    from espdl_streaming._version import __version__

    version = env_script.component_version()
    assert version == __version__  # the one version source: idf_component.yml
    home = {"HOME": "/home/u"}
    assert env_script.default_venv(version, home, windows=False) == Path(
        f"/home/u/.local/share/espdl_streaming/venv-{version}"
    )
    xdg = {**home, "XDG_DATA_HOME": "/data"}
    assert env_script.default_venv(version, xdg, windows=False) == Path(f"/data/espdl_streaming/venv-{version}")
    win = {"LOCALAPPDATA": "C:/Users/u/AppData/Local", **home}
    assert env_script.default_venv(version, win, windows=True) == Path(
        f"C:/Users/u/AppData/Local/espdl_streaming/venv-{version}"
    )
    assert env_script.default_venv(version, {**xdg, "ESPDL_STREAMING_VENV": "/opt/v"}, windows=False) == Path("/opt/v")
    assert env_script.venv_python(Path("/v"), windows=False) == Path("/v/bin/python")
    assert env_script.venv_python(Path("/v"), windows=True) == Path("/v/Scripts/python.exe")


def test_script_prints_the_interpreter_with_the_override(tmp_path: Path) -> None:
    env = {**os.environ, "ESPDL_STREAMING_VENV": str(tmp_path / "v")}
    out = subprocess.run([sys.executable, SCRIPT, "--print-python"], env=env, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == str(tmp_path / "v" / "bin" / "python")
    out = subprocess.run([sys.executable, SCRIPT, "--venv", tmp_path / "w", "--print-python"], env=env,
                         capture_output=True, text=True)  # fmt: skip
    assert out.stdout.strip() == str(tmp_path / "w" / "bin" / "python")
    out = subprocess.run([sys.executable, SCRIPT, "--check"], env=env, capture_output=True, text=True)
    assert out.returncode == 1 and "not set up" in out.stdout


def test_pip_command_pins_every_package_and_takes_cpu_torch() -> None:
    cmd = env_script.pip_install_command("/v/bin/python")
    requirements, lock = env_script.requirement_files()
    assert cmd[:4] == ["/v/bin/python", "-m", "pip", "install"]
    assert ["-r", str(requirements), "-c", str(lock)] == cmd[cmd.index("-r") : cmd.index("-r") + 4]
    assert cmd[cmd.index("--extra-index-url") + 1] == "https://download.pytorch.org/whl/cpu"
    assert "--extra-index-url" not in env_script.pip_install_command("/v/bin/python", torch_index="")
    pins: dict[str, list[str]] = {}
    for line in lock.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            spec = line.split(";", 1)[0].strip()
            assert re.fullmatch(r"[A-Za-z0-9_.-]+==[A-Za-z0-9_.+-]+", spec), f"not pinned: {line}"
            pins.setdefault(re.split(r"==", spec)[0].lower().replace("_", "-"), []).append(spec)
    assert pins["torch"] == ["torch==2.13.0+cpu", "torch==2.13.0"]  # CPU build; macOS wheels carry no +cpu
    for line in requirements.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name = re.split(r"[<>=!~ ]", line, maxsplit=1)[0].lower().replace("_", "-")
            assert name in pins, f"{name} of requirements.txt is not pinned in requirements.lock"


# --- the set-up: idempotent, atomic -------------------------------------------------------------


def leftovers(venv: Path) -> list[str]:
    return sorted(p.name for p in venv.parent.glob(f".{venv.name}.tmp-*"))


def test_setup_is_idempotent_relocated_and_redone_when_the_lock_changes(tmp_path: Path, wheels: Path) -> None:
    component = fake_component(tmp_path / "c")
    venv = tmp_path / "data" / "venv-x"
    assert env_script.create(venv, component=component, torch_index="", pip_args=offline(wheels)) is True
    python = env_script.venv_python(venv)
    assert subprocess.run([python, "-c", "import tiny; assert tiny.VERSION == '1.0'"]).returncode == 0
    assert env_script.is_current(venv, component)
    assert leftovers(venv) == []
    # Built in a temporary directory, then renamed: the scripts name the final place.
    pip_script = (venv / "bin" / "pip").read_text()
    assert str(venv) in pip_script and ".tmp-" not in pip_script
    assert ".tmp-" not in (venv / "pyvenv.cfg").read_text()

    start = time.monotonic()
    assert env_script.create(venv, component=component, torch_index="", pip_args=offline(wheels)) is False
    assert time.monotonic() - start < 2

    # New pins: no longer current, and the next run replaces it.
    make_wheel(wheels, version="2.0")
    (component / "python" / "requirements.lock").write_text("tiny==2.0\n")
    assert not env_script.is_current(venv, component)
    assert env_script.create(venv, component=component, torch_index="", pip_args=offline(wheels)) is True
    assert subprocess.run([python, "-c", "import tiny; assert tiny.VERSION == '2.0'"]).returncode == 0
    assert leftovers(venv) == []


def test_a_failing_install_leaves_no_venv_and_keeps_the_old_one(tmp_path: Path, wheels: Path) -> None:
    venv = tmp_path / "venv-x"
    broken = fake_component(tmp_path / "broken", requirement="no-such-package-espdl", lock="")
    with pytest.raises(env_script.SetupError, match="pip install failed"):
        env_script.create(venv, component=broken, torch_index="", pip_args=offline(wheels))
    assert not venv.exists() and leftovers(venv) == []

    good = fake_component(tmp_path / "good")
    env_script.create(venv, component=good, torch_index="", pip_args=offline(wheels))
    (good / "python" / "requirements.txt").write_text("no-such-package-espdl\n")  # an update that fails
    with pytest.raises(env_script.SetupError):
        env_script.create(venv, component=good, torch_index="", pip_args=offline(wheels))
    assert subprocess.run([env_script.venv_python(venv), "-c", "import tiny"]).returncode == 0
    assert leftovers(venv) == []


def test_a_killed_setup_leaves_nothing_the_build_would_pick_up(tmp_path: Path, wheels: Path) -> None:
    component = fake_component(tmp_path / "c")
    venv = tmp_path / "venv-x"
    # The set-up killed (SIGKILL: no clean-up runs) while pip installs.
    code = f"""
import os, signal, subprocess, importlib.util
from pathlib import Path
spec = importlib.util.spec_from_file_location("s", {str(SCRIPT)!r})
s = importlib.util.module_from_spec(spec); spec.loader.exec_module(s)
def runner(cmd, **kw):
    if "pip" in cmd:
        os.kill(os.getpid(), signal.SIGKILL)
    return subprocess.run(cmd, **kw)
s.create(Path({str(venv)!r}), component=Path({str(component)!r}), torch_index="", runner=runner)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not venv.exists() and not env_script.is_current(venv, component)
    assert len(leftovers(venv)) == 1  # the half-made one, beside the place the build looks at
    env_script.create(venv, component=component, torch_index="", pip_args=offline(wheels))
    assert env_script.is_current(venv, component) and leftovers(venv) == []


# --- CMake: which interpreter the build takes ----------------------------------------------------

PROBE = """\
cmake_minimum_required(VERSION 3.20)
project(probe NONE)
include("{core}")
__espdl_streaming_default_python(python {mode})
get_property(state GLOBAL PROPERTY ESPDL_STREAMING_VENV_STATE)
message(STATUS "probe python=${{python}} state=${{state}}")
__espdl_streaming_check_python("${{python}}" check)
add_custom_target(model ALL COMMAND "${{CMAKE_COMMAND}}" -E echo "probe: the tool would run")
if(check)
    add_dependencies(model ${{check}})
endif()
"""


def probe(tmp_path: Path, env: dict[str, str], mode: str = "IDF", *defines: str) -> tuple[str, str, Path]:
    src = tmp_path / f"src-{mode or 'plain'}"
    src.mkdir(exist_ok=True)
    (src / "CMakeLists.txt").write_text(PROBE.format(core=CMAKE_CORE.as_posix(), mode=mode))
    build = tmp_path / f"build-{mode or 'plain'}"
    shutil.rmtree(build, ignore_errors=True)
    proc = subprocess.run(
        [CMAKE, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={NINJA}", "-S", src, "-B", build, *defines],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    found = re.search(r"probe python=(.*) state=(\w+)", proc.stdout)
    assert found, proc.stdout
    return found.group(1), found.group(2), build


def fake_venv(venv: Path, stamp: str) -> Path:
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')  # this one's modules
    (venv / "bin" / "python").chmod(0o755)
    (venv / ".espdl_streaming_env").write_text(stamp)
    return venv / "bin" / "python"


@pytest.fixture
def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPDL_STREAMING_")}
    env["XDG_DATA_HOME"] = str(tmp_path / "data")
    return env


@pytest.mark.usefixtures("cmake", "ninja")
def test_cmake_takes_the_environment_without_any_variable(tmp_path: Path, clean_env: dict[str, str]) -> None:
    version = env_script.component_version()
    venv = tmp_path / "data" / "espdl_streaming" / f"venv-{version}"

    # Not set up: the IDF wrapper takes no other Python, and the build (not the configure) fails with the command.
    python, state, build = probe(tmp_path, clean_env)
    assert (python, state) == (str(venv / "bin" / "python"), "missing")
    proc = run([CMAKE, "--build", build])
    out = flat(proc.stdout)
    assert proc.returncode != 0 and "probe: the tool would run" not in proc.stdout
    assert f"the model tool's Python environment is not set up (no {venv})" in out, proc.stdout
    assert f"python3 {REPO / 'tools' / 'espdl_streaming_env.py'}" in out
    assert "pip install" not in out
    # Plain CMake falls back to find_package(Python3).
    python, state, _ = probe(tmp_path, clean_env, "")
    assert state == "missing" and python and python != str(venv / "bin" / "python")

    # Set up (a stamp matching the requirement files, as the script writes it): taken, and the build runs.
    stamp = env_script.stamp_text()
    venv_python = fake_venv(venv, stamp)
    for mode in ("IDF", ""):
        python, state, build = probe(tmp_path, clean_env, mode)
        assert (python, state) == (str(venv_python), "current")
    assert "probe: the tool would run" in run([CMAKE, "--build", build]).stdout

    # Stale (the lock changed since): the build asks for the set-up again.
    (venv / ".espdl_streaming_env").write_text(stamp.replace("sha256 ", "sha256 0", 1))
    python, state, build = probe(tmp_path, clean_env)
    assert (python, state) == (str(venv_python), "stale")
    proc = run([CMAKE, "--build", build])
    assert proc.returncode != 0 and "is out of date" in flat(proc.stdout)

    # ESPDL_STREAMING_VENV moves it; ESPDL_STREAMING_PYTHON (environment, then cache variable) still wins.
    other = fake_venv(tmp_path / "elsewhere", stamp)
    python, state, _ = probe(tmp_path, {**clean_env, "ESPDL_STREAMING_VENV": str(tmp_path / "elsewhere")})
    assert (python, state) == (str(other), "current")
    python, _, _ = probe(tmp_path, {**clean_env, "ESPDL_STREAMING_PYTHON": sys.executable})
    assert python == sys.executable
    python, _, _ = probe(tmp_path, {**clean_env, "ESPDL_STREAMING_PYTHON": "/env/python"}, "IDF",
                         f"-DESPDL_STREAMING_PYTHON={sys.executable}")  # fmt: skip
    assert python == sys.executable


def test_cmake_and_the_script_agree_on_the_stamp() -> None:
    """The CMake builds the stamp text from file(SHA256) of the same two files, in the same format."""
    text = CMAKE_CORE.read_text()
    assert 'set(expected "espdl_streaming model tool environment\\n")' in text
    assert 'string(APPEND expected "${req} sha256 ${sha}\\n")' in text
    assert "foreach(req requirements.txt requirements.lock)" in text
    assert '"${venv}/.espdl_streaming_env"' in text and env_script.STAMP_NAME == ".espdl_streaming_env"
    req, lock = env_script.requirement_files()
    assert env_script.stamp_text() == (
        "espdl_streaming model tool environment\n"
        f"requirements.txt sha256 {hashlib.sha256(req.read_bytes()).hexdigest()}\n"
        f"requirements.lock sha256 {hashlib.sha256(lock.read_bytes()).hexdigest()}\n"
    )


# --- ESP-IDF: the idf.py extension, with the constraint check on ------------------------------------

IDF_PATH = os.environ.get("IDF_PATH")
IDF_ENV = os.environ.get("IDF_PYTHON_ENV_PATH")


def idf_version_major_minor(idf_path: Path) -> str:
    found = (
        re.match(r"v(\d+\.\d+)", (idf_path / "version.txt").read_text())
        if (idf_path / "version.txt").exists()
        else None
    )
    if found:
        return found.group(1)
    header = (idf_path / "components" / "esp_common" / "include" / "esp_idf_version.h").read_text()
    major = re.search(r"#define\s+ESP_IDF_VERSION_MAJOR\s+(\d+)", header)
    minor = re.search(r"#define\s+ESP_IDF_VERSION_MINOR\s+(\d+)", header)
    assert major and minor
    return f"{major.group(1)}.{minor.group(1)}"


@pytest.mark.usefixtures("idf")
def test_idf_extension_sets_up_and_leaves_idf_python_untouched(tmp_path: Path, wheels: Path) -> None:
    assert IDF_PATH and IDF_ENV
    idf_python = str(Path(IDF_ENV) / "bin" / "python")
    idf_py = str(Path(IDF_PATH) / "tools" / "idf.py")

    def pip_freeze() -> str:
        proc = subprocess.run([idf_python, "-m", "pip", "freeze", "--all", "--disable-pip-version-check"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        return proc.stdout

    before = pip_freeze()
    # The constraint check on: a constraints file pinning what ESP-IDF's env holds (the real one is a
    # download), so idf.py refuses to start if anything in that env changed.
    tools = tmp_path / "idf-tools"
    tools.mkdir()
    (tools / f"espidf.constraints.v{idf_version_major_minor(Path(IDF_PATH))}.txt").write_text(before)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ESPDL_STREAMING_")}
    env.pop("IDF_PYTHON_CHECK_CONSTRAINTS", None)
    env.update(IDF_TOOLS_PATH=str(tools), IDF_COMPONENT_MANAGER="0", XDG_DATA_HOME=str(tmp_path / "data"),
               PIP_NO_INDEX="1", PIP_FIND_LINKS=str(wheels))  # fmt: skip

    def idf(*args: str) -> subprocess.CompletedProcess[str]:
        start = time.monotonic()
        proc = subprocess.run([idf_python, idf_py, *args], cwd=project, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=600)  # fmt: skip
        print(f"$ idf.py {' '.join(args)}  ({time.monotonic() - start:.2f} s, exit {proc.returncode})")
        return proc

    component = fake_component(tmp_path / "components")
    project = tmp_path / "project"
    (project / "main").mkdir(parents=True)
    (project / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.22)\n"
        f'set(EXTRA_COMPONENT_DIRS "{component.as_posix()}")\n'
        "set(COMPONENTS main espdl_streaming)\n"
        "include($ENV{IDF_PATH}/tools/cmake/project.cmake)\n"
        "project(setup_check)\n"
    )
    (project / "main" / "CMakeLists.txt").write_text('idf_component_register(SRCS "main.c")\n')
    (project / "main" / "main.c").write_text("void app_main(void) {}\n")

    proc = idf("--preview", "set-target", "linux")  # configured: idf.py then loads component extensions
    assert proc.returncode == 0, proc.stdout[-3000:]
    proc = idf("--help")
    assert proc.returncode == 0, proc.stdout[-3000:]
    print("\n".join(line for line in proc.stdout.splitlines() if "espdl" in line))
    assert "espdl-streaming-setup" in proc.stdout
    proc = idf("espdl-streaming-setup", "--torch-index", "")
    print(proc.stdout[-1500:])
    assert proc.returncode == 0, proc.stdout[-3000:]
    venv = tmp_path / "data" / "espdl_streaming" / f"venv-{env_script.component_version()}"
    assert "espdl_streaming: environment ready at " + str(venv) in proc.stdout
    assert env_script.is_current(venv, component)
    again = idf("espdl-streaming-setup", "--torch-index", "")
    assert again.returncode == 0 and "environment up to date" in again.stdout
    proc = idf("--version")
    assert proc.returncode == 0, proc.stdout
    after = pip_freeze()
    assert after == before


# --- no CONFIGURE_DEPENDS globs: edits rerun the model, added files re-run the configure ---------------

FAKE_TOOL = """\
#!/bin/sh
# Stands in for the tool's interpreter: the configure check (-c) goes to the real one; a model build
# writes empty outputs and logs the run.
if [ "$1" = "-c" ]; then exec "{python}" "$@"; fi
name=""; out=""; depfile=""
while [ $# -gt 0 ]; do
  case "$1" in --name) name=$2; shift;; --out-dir) out=$2; shift;; --depfile) depfile=$2; shift;; esac
  shift
done
for ext in espdl offline.espdl hpp cpp report.json report.html; do : > "$out/$name.$ext"; done
printf '%s: %s\\n' "$out/$name.espdl" "$PWD/model.py" > "$depfile"
echo run >> "{log}"
"""

WATCH_PROJECT = """\
cmake_minimum_required(VERSION 3.20)
project(watch C CXX ASM)
include("{core}")
espdl_streaming_add_host_runtime(runtime)
add_library(app STATIC app.cpp)
espdl_streaming_add_model_to_target(m TARGET app MODEL model.py:build INPUT_SHAPE 1 4 8 CHUNK_FRAMES 2)
"""


@pytest.mark.usefixtures("cmake", "ninja")
def test_tool_sources_without_verify_globs(tmp_path: Path) -> None:
    """A no-op rebuild runs no `VerifyGlobs` step; editing a tool source reruns the model build; adding
    a file to the tool (or the runtime) re-runs the configure through the directory's time, which lists
    it, and the model is rebuilt; Python creating its bytecode cache at the first build changes nothing."""
    component = tmp_path / "component"
    for rel in ("cmake", "python/espdl_streaming", "src", "include"):
        shutil.copytree(REPO / rel, component / rel, ignore=shutil.ignore_patterns("__pycache__"))
    for rel in ("idf_component.yml", "python/requirements.txt", "python/requirements.lock"):
        shutil.copy2(REPO / rel, component / rel)
    log = tmp_path / "runs.log"
    log.touch()
    tool = tmp_path / "tool-python"
    tool.write_text(FAKE_TOOL.format(python=sys.executable, log=log))
    tool.chmod(0o755)
    src = tmp_path / "src"
    src.mkdir()
    (src / "CMakeLists.txt").write_text(
        WATCH_PROJECT.format(core=(component / "cmake" / "espdl_streaming.cmake").as_posix())
    )
    (src / "app.cpp").write_text("int app() { return 0; }\n")
    (src / "model.py").write_text("def build():\n    pass\n")
    build = tmp_path / "build"
    proc = run([CMAKE, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={NINJA}", "-S", src, "-B", build,
                f"-DESPDL_STREAMING_PYTHON={tool}"])  # fmt: skip
    assert proc.returncode == 0, proc.stdout

    def build_once() -> tuple[str, int]:
        proc = run([CMAKE, "--build", build])
        assert proc.returncode == 0, proc.stdout
        return proc.stdout, len(log.read_text().splitlines())

    out, runs = build_once()
    assert runs == 1
    ninja_file = (build / "build.ninja").read_text()
    assert "VerifyGlobs" not in ninja_file and "verify_globs" not in ninja_file
    # The first run of the real tool writes bytecode next to its sources: not an added file.
    package = component / "python" / "espdl_streaming"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    subprocess.run([sys.executable, "-c", "import espdl_streaming.errors, espdl_streaming.espdl"],
                   env={**env, "PYTHONPATH": str(component / "python")}, check=True)  # fmt: skip
    assert list((package / "__pycache__").glob("errors.*.pyc"))
    out, runs = build_once()
    assert "ninja: no work to do" in out and runs == 1

    with (package / "cli.py").open("a") as f:  # an edit
        f.write("# edited\n")
    out, runs = build_once()
    assert runs == 2 and "Re-running CMake" not in out

    (package / "espdl" / "added.py").write_text("X = 1\n")  # an added file, in a subpackage
    out, runs = build_once()
    assert "Re-running CMake" in out and runs == 3
    (package / "espdl" / "added.py").write_text("X = 2\n")  # now listed: its edits count too
    out, runs = build_once()
    assert runs == 4 and "Re-running CMake" not in out

    (component / "src" / "host" / "added_runtime.cpp").write_text("int espdl_streaming_added() { return 1; }\n")
    out, runs = build_once()
    assert "Re-running CMake" in out and "added_runtime.cpp.o" in out and runs == 4
    out, runs = build_once()
    assert "ninja: no work to do" in out
