"""The plain-CMake core (cmake/espdl_streaming.cmake), built for real with CMake + Ninja.

Builds a copy of tests/cmake_project that declares the example TCN (made to import a local
module, so the depfile matters), runs its checker executable, and checks the incremental-build
contract: a no-op rebuild, what reruns the quantizer and what does not. Bad arguments must stop
the configure with the function's message.

ESPDL_STREAMING_TEST_PYTHON selects the interpreter that runs the model tool (default: this one).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PROJECT = REPO / "tests" / "cmake_project"
EXAMPLE_MODEL = REPO / "examples" / "tcn" / "model.py"
TOOL_PYTHON = os.environ.get("ESPDL_STREAMING_TEST_PYTHON", sys.executable)
QUANTIZING = "espdl_streaming: quantizing tcn for esp32p4"
LINKING = "Linking CXX executable check_tcn"


def _find_ninja() -> str | None:
    found = shutil.which("ninja")
    if found:
        return found
    candidate = Path(sys.executable).parent / "ninja"
    return str(candidate) if candidate.exists() else None


CMAKE = shutil.which("cmake") or "cmake"
NINJA = _find_ninja() or "ninja"
pytestmark = pytest.mark.usefixtures("cmake", "ninja")  # skipped or failed per conftest.require_tool


def run(cmd: list[str | os.PathLike[str]], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    start = time.monotonic()
    proc = subprocess.run(
        [str(c) for c in cmd],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=900,
    )
    print(f"$ {' '.join(map(str, cmd))}  ({time.monotonic() - start:.2f} s, exit {proc.returncode})")
    return proc


def flat(text: str) -> str:
    """CMake wraps its error messages: compare with whitespace collapsed."""
    return " ".join(text.split())


@dataclass
class Project:
    root: Path
    build: Path
    model: Path
    seed_module: Path
    first: subprocess.CompletedProcess[str]

    @property
    def out_dir(self) -> Path:
        return self.build / "espdl_streaming" / "tcn"

    def build_again(self) -> subprocess.CompletedProcess[str]:
        proc = run([CMAKE, "--build", self.build])
        assert proc.returncode == 0, proc.stdout
        return proc


def write_model_copy(model_dir: Path) -> tuple[Path, Path]:
    """The example model, with its seed taken from a local module it imports."""
    text = EXAMPLE_MODEL.read_text()
    assert "torch.manual_seed(7)" in text and "from __future__ import annotations\n" in text
    text = text.replace(
        "from __future__ import annotations\n", "from __future__ import annotations\n\nimport tcn_seed\n", 1
    )
    text = text.replace("torch.manual_seed(7)", "torch.manual_seed(tcn_seed.SEED)")
    model = model_dir / "model.py"
    model.write_text(text)
    seed = model_dir / "tcn_seed.py"
    seed.write_text("SEED = 7\n")
    return model, seed


def configure(src: Path, build: Path, python: Path | str, model: Path) -> subprocess.CompletedProcess[str]:
    """Configure tests/cmake_project (or a copy) with Ninja, our tool's interpreter and a model copy."""
    return run(
        [
            CMAKE, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={NINJA}", "-S", src, "-B", build,
            f"-DESPDL_STREAMING_ROOT={REPO}", f"-DESPDL_STREAMING_PYTHON={python}", f"-DTCN_MODEL={model}:build",
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    root = tmp_path_factory.mktemp("cmake_project")
    src = root / "src"
    shutil.copytree(PROJECT, src)
    model_dir = root / "model"
    model_dir.mkdir()
    model, seed = write_model_copy(model_dir)
    build = root / "build"
    proc = configure(src, build, TOOL_PYTHON, model)
    assert proc.returncode == 0, proc.stdout
    first = run([CMAKE, "--build", build])
    assert first.returncode == 0, first.stdout
    return Project(root, build, model, seed, first)


def test_first_build_quantizes_once_and_links(project: Project) -> None:
    assert project.first.stdout.count(QUANTIZING) == 1
    assert LINKING in project.first.stdout
    for suffix in (".espdl", ".offline.espdl", ".hpp", ".cpp", ".report.json", "_espdl.S"):
        assert (project.out_dir / f"tcn{suffix}").is_file(), suffix


def test_embedded_model_and_generated_constants(project: Project) -> None:
    espdl = project.out_dir / "tcn.espdl"
    proc = run([project.build / "check_tcn", espdl])
    print(proc.stdout)
    assert proc.returncode == 0, proc.stdout
    assert "FAIL" not in proc.stdout
    values = dict(line.split("=", 1) for line in proc.stdout.splitlines() if "=" in line)
    assert int(values["embedded_bytes"]) == espdl.stat().st_size
    assert espdl.read_bytes()[:4] == b"EDL2"

    report = json.loads((project.out_dir / "tcn.report.json").read_text())
    assert int(values["chunk_frames"]) == report["chunk_frames"] == 3
    assert int(values["feature_dim"]) == report["feature_dim"] == 16
    assert int(values["output_count"]) == len(report["outputs"])
    assert int(values["espdl_bytes"]) == report["espdl_bytes"] == espdl.stat().st_size


def test_second_build_does_nothing(project: Project) -> None:
    proc = project.build_again()
    print(proc.stdout)
    assert "ninja: no work to do" in proc.stdout
    assert QUANTIZING not in proc.stdout


def test_touching_an_unrelated_source_does_not_quantize(project: Project) -> None:
    (project.root / "src" / "check_tcn.cpp").touch()
    proc = project.build_again()
    assert QUANTIZING not in proc.stdout
    assert "check_tcn.cpp.o" in proc.stdout
    assert LINKING in proc.stdout


def test_touching_the_model_reruns_the_quantizer(project: Project) -> None:
    espdl = project.out_dir / "tcn.espdl"
    before = espdl.read_bytes()
    time.sleep(0.01)
    os.utime(project.model)
    proc = project.build_again()
    print(proc.stdout)
    assert proc.stdout.count(QUANTIZING) == 1
    if espdl.read_bytes() == before:
        # Unchanged outputs are not rewritten; ninja's restat then skips reassembling/relinking.
        assert LINKING not in proc.stdout
    else:
        assert LINKING in proc.stdout
    assert "ninja: no work to do" in project.build_again().stdout


def test_editing_an_imported_module_reruns_and_relinks(project: Project) -> None:
    espdl = project.out_dir / "tcn.espdl"
    before = espdl.read_bytes()
    project.seed_module.write_text("SEED = 8\n")
    proc = project.build_again()
    print(proc.stdout)
    assert proc.stdout.count(QUANTIZING) == 1, "the depfile must list the imported module"
    assert espdl.read_bytes() != before
    assert "tcn_espdl.S.o" in proc.stdout
    assert LINKING in proc.stdout
    check = run([project.build / "check_tcn", espdl])
    assert check.returncode == 0, check.stdout


def test_generated_asm_assembles_for_chip_assemblers(assemblers: list[str], project: Project, tmp_path: Path) -> None:
    """The .S uses only GNU as syntax shared by Xtensa, RISC-V and host ELF (`assemblers`: those on PATH,
    with readelf and cpp; skipped without, failed when ESPDL_STREAMING_REQUIRE_TOOLS names them)."""
    readelf = shutil.which("readelf") or "readelf"
    pre = tmp_path / "tcn_espdl.s"
    proc = run(["cpp", "-P", "-undef", "-x", "assembler-with-cpp", project.out_dir / "tcn_espdl.S", "-o", pre])
    assert proc.returncode == 0, proc.stdout
    size = (project.out_dir / "tcn.espdl").stat().st_size
    for assembler in assemblers:
        obj = tmp_path / f"{assembler}.o"
        proc = run([assembler, pre, "-o", obj])
        assert proc.returncode == 0, proc.stdout
        sections = run([readelf, "-S", "-W", obj]).stdout
        line = next(ln for ln in sections.splitlines() if ".rodata.espdl_streaming_tcn_espdl" in ln)
        assert line.split()[-1] == "16", f"{assembler}: section not 16-byte aligned: {line}"
        symbols = run([readelf, "-s", "-W", obj]).stdout
        sym = next(ln.split() for ln in symbols.splitlines() if ln.endswith(" espdl_streaming_tcn_espdl"))
        assert int(sym[2]) == size and sym[3] == "OBJECT" and sym[4] == "GLOBAL", (assembler, sym)


# --- bad arguments stop the configure ------------------------------------------------------------

GOOD = "TARGET app MODEL model.py:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3"


@pytest.mark.parametrize(
    ("calls", "message"),
    [
        (["2tcn " + GOOD], "espdl_streaming_add_model_to_target(2tcn): the model name must be a C identifier"),
        (
            ["kws-model " + GOOD],
            "espdl_streaming_add_model_to_target(kws-model): the model name must be a C identifier",
        ),
        (["class " + GOOD], "espdl_streaming_add_model_to_target(class): the model name 'class' is a C++ keyword"),
        (
            ["tcn TARGET app MODEL missing.py:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3"],
            "espdl_streaming_add_model_to_target(tcn): MODEL file 'missing.py' not found",
        ),
        (
            ["tcn TARGET app MODEL model.py INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3"],
            "espdl_streaming_add_model_to_target(tcn): MODEL must be <file.py>:<factory> or <file.onnx>",
        ),
        (["tcn " + GOOD + " BITS 12"], "espdl_streaming_add_model_to_target(tcn): BITS must be 8 or 16, got '12'"),
        (
            ["tcn TARGET app MODEL model.py:build INPUT_SHAPE 1 x 24 CHUNK_FRAMES 3"],
            "espdl_streaming_add_model_to_target(tcn): INPUT_SHAPE dimensions must be positive integers",
        ),
        (
            ["tcn TARGET app MODEL model.py:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 0"],
            "espdl_streaming_add_model_to_target(tcn): CHUNK_FRAMES must be a positive integer, got '0'",
        ),
        (
            ["tcn TARGET app MODEL model.py:build INPUT_SHAPE 1 16 24"],
            "espdl_streaming_add_model_to_target(tcn): CHUNK_FRAMES is required",
        ),
        (
            ["tcn " + GOOD + " PLACEMENT PARTITION"],
            "espdl_streaming_add_model_to_target(tcn): PLACEMENT must be 'RODATA' or 'PARTITION <label>'",
        ),
        (
            ["tcn " + GOOD + " CALIBRATION calib.txt"],
            "espdl_streaming_add_model_to_target(tcn): CALIBRATION must be <file.npy>, <file.npz> or "
            "<file.py>:<function>",
        ),
        (
            ["tcn TARGET nope MODEL model.py:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3"],
            "espdl_streaming_add_model_to_target(tcn): TARGET 'nope' is not a target",
        ),
        (
            ["tcn " + GOOD, "tcn " + GOOD],
            "espdl_streaming_add_model_to_target(tcn): a model named 'tcn' is already declared",
        ),
        (
            ["tcn " + GOOD + " QUANT w4a8"],
            "espdl_streaming_add_model_to_target(tcn): QUANT must be w8a8, w8a16, w16a16 or auto",
        ),
        (["tcn " + GOOD + " QUANT auto"], "espdl_streaming_add_model_to_target(tcn): QUANT auto needs MIN_SNR_DB"),
        (
            ["tcn " + GOOD + " QUANT w8a16 BITS 8"],
            "espdl_streaming_add_model_to_target(tcn): BITS 8 contradicts QUANT w8a16: give only QUANT",
        ),
        (
            ["tcn " + GOOD + " MIN_SNR_DB high"],
            "espdl_streaming_add_model_to_target(tcn): MIN_SNR_DB must be a positive number",
        ),
        (
            ["tcn " + GOOD + " EVAL eval.txt"],
            "espdl_streaming_add_model_to_target(tcn): EVAL must be <file.npy>, <file.npz> or <file.py>:<function>",
        ),
        (
            ["tcn " + GOOD + " CALIB_ALGORITHM entropy"],
            "espdl_streaming_add_model_to_target(tcn): CALIB_ALGORITHM must be one of kl, minmax, percentile, mse",
        ),
        (
            ["tcn " + GOOD + " CALIB_OPTIONS equalisation"],
            "espdl_streaming_add_model_to_target(tcn): CALIB_OPTIONS: 'equalisation' is not an option: use any of "
            "equalization, bias_correction",
        ),
        (
            ["tcn " + GOOD + " CALIB_OPTIONS equalization equalization"],
            "espdl_streaming_add_model_to_target(tcn): CALIB_OPTIONS: 'equalization' is given twice",
        ),
        (
            ["tcn " + GOOD + " CALIB_OPTIONS"],
            "espdl_streaming_add_model_to_target(tcn): CALIB_OPTIONS needs one or more of",
        ),
        (
            ["tcn " + GOOD + " CALIBRATION calib.wav"],
            "espdl_streaming_add_model_to_target(tcn): CALIBRATION 'calib.wav' is audio (a .wav file or a folder): "
            "calibrating from audio needs the front end that turns it into the model's input: add FRONTEND",
        ),
    ],
    ids=[
        "digit-name",
        "dash-name",
        "keyword-name",
        "missing-model",
        "model-no-factory",
        "bits-12",
        "shape-not-int",
        "chunk-zero",
        "chunk-missing",
        "partition-no-label",
        "calibration-kind",
        "no-target",
        "duplicate",
        "quant-unknown",
        "auto-without-target",
        "quant-contradicts-bits",
        "min-snr-not-number",
        "eval-kind",
        "calib-algorithm-unknown",
        "calib-option-unknown",
        "calib-option-twice",
        "calib-options-empty",
        "wav-without-frontend",
    ],
)
def test_bad_arguments_fail_configure(tmp_path: Path, calls: list[str], message: str) -> None:
    (tmp_path / "model.py").write_text("def build():\n    raise RuntimeError('configure must fail before this runs')\n")
    (tmp_path / "main.cpp").write_text("int main() { return 0; }\n")
    lines = [
        "cmake_minimum_required(VERSION 3.20)",
        "project(bad C CXX ASM)",
        f'include("{REPO / "cmake" / "espdl_streaming.cmake"}")',
        "add_executable(app main.cpp)",
        *[f"espdl_streaming_add_model_to_target({call})" for call in calls],
    ]
    (tmp_path / "CMakeLists.txt").write_text("\n".join(lines) + "\n")
    proc = run(
        [
            CMAKE,
            "-G",
            "Ninja",
            f"-DCMAKE_MAKE_PROGRAM={NINJA}",
            "-S",
            tmp_path,
            "-B",
            tmp_path / "build",
            f"-DESPDL_STREAMING_PYTHON={TOOL_PYTHON}",
        ]
    )
    assert proc.returncode != 0
    assert message in flat(proc.stdout), proc.stdout


def test_missing_python_modules_fail_the_build_not_the_configure(tmp_path: Path) -> None:
    """An interpreter without torch/esp-ppq: configure passes, the build prints the pip command."""
    bare = tmp_path / "bare-python"
    bare.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')  # -S: no site-packages
    bare.chmod(0o755)
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    model, _ = write_model_copy(model_dir)
    build = tmp_path / "build"
    proc = configure(PROJECT, build, bare, model)
    assert proc.returncode == 0, proc.stdout
    proc = run([CMAKE, "--build", build])
    assert proc.returncode != 0
    assert f"{bare} -m pip install -r {REPO / 'python' / 'requirements.txt'}" in proc.stdout, proc.stdout
    assert re.search(r"Python modules missing from .*: .*esp_ppq", proc.stdout), proc.stdout
    assert QUANTIZING not in proc.stdout


# --- mistyped keywords: caught at configure time, named with the closest keyword and the call's line ----

SHAPE = "TARGET app MODEL model.py:build INPUT_SHAPE 1 16 24"


@pytest.mark.parametrize(
    ("call", "typo", "guess"),
    [
        (f"{SHAPE} CHUNK_FRAME 3", "CHUNK_FRAME", "CHUNK_FRAMES"),
        (f"{GOOD} BIT 16", "BIT", "BITS"),
        (f"{GOOD} CALIB_STEP 8", "CALIB_STEP", "CALIB_STEPS"),
        (f"{SHAPE} calibration calib.npy CHUNK_FRAMES 3", "calibration", "CALIBRATION"),
        (f"{GOOD} DEPENDS helper.py CALIB_STEP 8", "CALIB_STEP", "CALIB_STEPS"),
        (f"{GOOD} VERIFY_CHUNK 8", "VERIFY_CHUNK", "VERIFY_CHUNKS"),
        (f"{GOOD} QUANTIZE w8a16", "QUANTIZE", "QUANT"),
        (f"{GOOD} MIN_SNR 30", "MIN_SNR", "MIN_SNR_DB"),
        (f"{GOOD} EVALS eval.npy", "EVALS", "EVAL"),
        (f"{GOOD} STRICTLY", "STRICTLY", "STRICT"),
        (f"{GOOD} chip esp32s3", "chip", "CHIP"),
        (f"{GOOD} PLACEMENT RODATA PLACEMNT RODATA", "PLACEMNT", "PLACEMENT"),
        (f"{GOOD} DEPEND helper.py", "DEPEND", "DEPENDS"),
        (f"{GOOD} CALIB_OPTION equalization", "CALIB_OPTION", "CALIB_OPTIONS"),
        (f"{GOOD} CALIB_OPTIONS equalization CALIB_STEP 8", "CALIB_STEP", "CALIB_STEPS"),
        (f"{GOOD} CALIB_ALGO minmax", "CALIB_ALGO", "CALIB_ALGORITHM"),
        (f"{GOOD} FRONTEND fbank NUM_MEL_BIN 16", "NUM_MEL_BIN", "NUM_MEL_BINS"),
    ],
)
def test_mistyped_keywords_fail_configure_with_the_line(tmp_path: Path, call: str, typo: str, guess: str) -> None:
    (tmp_path / "model.py").write_text("def build():\n    raise RuntimeError('configure must fail before this runs')\n")
    (tmp_path / "helper.py").write_text("")
    (tmp_path / "main.cpp").write_text("int main() { return 0; }\n")
    lines = [
        "cmake_minimum_required(VERSION 3.20)",
        "project(bad C CXX ASM)",
        f'include("{REPO / "cmake" / "espdl_streaming.cmake"}")',
        "add_executable(app main.cpp)",
        f"espdl_streaming_add_model_to_target(tcn {call})",
    ]
    (tmp_path / "CMakeLists.txt").write_text("\n".join(lines) + "\n")
    proc = run([CMAKE, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={NINJA}", "-S", tmp_path, "-B", tmp_path / "build",
                f"-DESPDL_STREAMING_PYTHON={TOOL_PYTHON}"])  # fmt: skip
    assert proc.returncode != 0
    text = flat(proc.stdout)
    assert f"espdl_streaming_add_model_to_target(tcn): unknown keyword '{typo}': did you mean {guess}?" in text, text
    assert "CMakeLists.txt:5 (espdl_streaming_add_model_to_target)" in text, text


def test_cmake_and_python_share_their_limits() -> None:
    from espdl_streaming import declaration as d

    text = (REPO / "cmake" / "espdl_streaming.cmake").read_text()

    def values(var: str) -> list[str]:
        found = re.search(rf"set\({var} ([^)]*)\)", text)
        assert found, var
        return found.group(1).split()

    assert values("__ESPDL_STREAMING_MIN_VERIFY_CHUNKS") == [str(d.MIN_VERIFY_CHUNKS)]
    assert values("__ESPDL_STREAMING_QUANT_SCHEMES") == list(d.QUANT_SCHEMES)
    assert values("__ESPDL_STREAMING_CALIB_ALGORITHMS") == list(d.CALIB_ALGORITHMS)
    assert values("__ESPDL_STREAMING_CALIB_OPTIONS") == list(d.CALIB_OPTIONS)
    assert float(values("__ESPDL_STREAMING_MAX_MIN_SNR_DB")[0]) == d.MAX_MIN_SNR_DB
    assert values("__ESPDL_STREAMING_INPUT_RANKS") == ["3", "4"]
    with pytest.raises(d.DeclarationError, match="has 2 dims"):
        d.parse_shape("m", "1,16")


def test_build_time_errors_name_the_declaration_line(tmp_path: Path) -> None:
    (tmp_path / "model.py").write_text("def build():\n    raise RuntimeError('the factory is broken')\n")
    (tmp_path / "main.cpp").write_text("int main() { return 0; }\n")
    lines = [
        "cmake_minimum_required(VERSION 3.20)",
        "project(bad C CXX ASM)",
        f'include("{REPO / "cmake" / "espdl_streaming.cmake"}")',
        "add_executable(app main.cpp)",
        "",
        "espdl_streaming_add_model_to_target(",
        f"    tcn {GOOD})",
    ]
    (tmp_path / "CMakeLists.txt").write_text("\n".join(lines) + "\n")
    build = tmp_path / "build"
    proc = run([CMAKE, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={NINJA}", "-S", tmp_path, "-B", build,
                f"-DESPDL_STREAMING_PYTHON={TOOL_PYTHON}"])  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    proc = run([CMAKE, "--build", build])
    assert proc.returncode != 0
    assert "CMakeLists.txt:6: error: tcn: " in proc.stdout and "the factory is broken" in proc.stdout, proc.stdout


def _configured_tool_command(tmp_path: Path, call: str) -> str:
    """Configure a plain CMake project declaring `call` (the model is never built) and return the tool's
    command line from build.ninja."""
    (tmp_path / "model.py").write_text("def build():\n    raise RuntimeError('not run: configure only')\n")
    (tmp_path / "main.cpp").write_text("int main() { return 0; }\n")
    lines = [
        "cmake_minimum_required(VERSION 3.20)",
        "project(configure_only C CXX ASM)",
        f'include("{REPO / "cmake" / "espdl_streaming.cmake"}")',
        "add_executable(app main.cpp)",
        f"espdl_streaming_add_model_to_target({call})",
    ]
    (tmp_path / "CMakeLists.txt").write_text("\n".join(lines) + "\n")
    build = tmp_path / "build"
    proc = run([CMAKE, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={NINJA}", "-S", tmp_path, "-B", build,
                f"-DESPDL_STREAMING_PYTHON={TOOL_PYTHON}"])  # fmt: skip
    assert proc.returncode == 0, proc.stdout
    return next(ln for ln in (build / "build.ninja").read_text().splitlines() if "-m espdl_streaming build" in ln)


def test_quality_keywords_reach_the_tool(tmp_path: Path) -> None:
    """Every quality keyword of the declaration becomes the CLI flag the tool reads (configure only)."""
    (tmp_path / "eval.npy").write_bytes(b"")
    command = _configured_tool_command(
        tmp_path,
        f"tcn {GOOD} QUANT auto MIN_SNR_DB 32.5 STRICT EVAL eval.npy CALIB_ALGORITHM percentile "
        "CALIB_OPTIONS bias_correction equalization",
    )
    for flags in ("--quant auto", "--min-snr-db 32.5", "--strict", f"--eval {tmp_path / 'eval.npy'}",
                  "--calib-algorithm percentile", "--calib-options bias_correction,equalization"):  # fmt: skip
        assert flags in command, (flags, command)


def test_frontend_keywords_reach_the_tool(tmp_path: Path) -> None:
    """FRONTEND and its options become the tool's --frontend* flags; a folder of .wav files is CALIBRATION
    (configure only)."""
    (tmp_path / "audio").mkdir()
    (tmp_path / "eval.wav").write_bytes(b"")
    command = _configured_tool_command(
        tmp_path,
        f"tcn {GOOD} FRONTEND fbank SAMPLE_RATE 16000 NUM_MEL_BINS 16 LOG_MODE add USE_ENERGY OFF "
        "RESAMPLE ON CALIBRATION audio EVAL eval.wav",
    )
    for flags in ("--frontend fbank", "--frontend-sample-rate 16000", "--frontend-num-mel-bins 16",
                  "--frontend-log-mode add", "--frontend-use-energy OFF", "--frontend-resample ON",
                  f"--calibration {tmp_path / 'audio'}", f"--eval {tmp_path / 'eval.wav'}"):  # fmt: skip
        assert flags in command, (flags, command)
