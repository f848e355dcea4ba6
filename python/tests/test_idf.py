"""The ESP-IDF integration (project_include.cmake, CMakeLists.txt, Kconfig), built for real.

Builds projects for ESP-IDF's `linux` target, where the host gcc stands in for the chip's
toolchain: ESP-DL does not exist there, so nothing runs the model, but espdl_streaming_add_model
must quantize, embed and compile exactly as on a chip. Needs an ESP-IDF (tools/setup_idf_dev.sh
prepares one; source its espdl_streaming_env.sh) and runs with the component manager off, so the
component is added through EXTRA_COMPONENT_DIRS as a symlink named espdl_streaming (ESP-IDF names
a component after its directory, and a clone may be called anything).

ESPDL_STREAMING_TEST_PYTHON selects the interpreter that runs the model tool (default: this one).
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_MODEL = REPO / "examples" / "tcn" / "model.py"
TOOL_PYTHON = os.environ.get("ESPDL_STREAMING_TEST_PYTHON", sys.executable)
QUANTIZING = "espdl_streaming: quantizing tcn for esp32p4"


def _idf_python() -> str | None:
    env_path = os.environ.get("IDF_PYTHON_ENV_PATH")
    if env_path and (Path(env_path) / "bin" / "python").exists():
        return str(Path(env_path) / "bin" / "python")
    return None


IDF_PATH = os.environ.get("IDF_PATH")
IDF_PYTHON = _idf_python()
# Without an ESP-IDF (IDF_PATH and IDF_PYTHON_ENV_PATH, from tools/setup_idf_dev.sh) every test is skipped
# naming the fix, or failed when ESPDL_STREAMING_REQUIRE_TOOLS names `idf` (conftest.require_tool).
pytestmark = pytest.mark.usefixtures("idf")

ROOT_CMAKELISTS = """\
cmake_minimum_required(VERSION 3.22)
set(EXTRA_COMPONENT_DIRS "{components}")
set(COMPONENTS main)
include($ENV{{IDF_PATH}}/tools/cmake/project.cmake)
project(espdl_streaming_idf_check)
"""

# Prints what was linked, then exits (a linux-target app otherwise keeps its scheduler running).
MAIN_CPP = """\
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include "tcn.hpp"

extern "C" const uint8_t espdl_streaming_tcn_espdl[];
extern "C" const uint8_t espdl_streaming_tcn_espdl_end[];

extern "C" void app_main(void)
{
    const uint8_t *p = espdl_streaming_tcn_espdl;
    std::printf("espdl_bytes=%zu aligned=%d magic=%.4s chunk_frames=%u feature_dim=%u\\n",
                static_cast<size_t>(espdl_streaming_tcn_espdl_end - p),
                static_cast<int>(reinterpret_cast<uintptr_t>(p) % 16 == 0), p,
                static_cast<unsigned>(espdl_streaming::models::tcn::chunk_frames),
                static_cast<unsigned>(espdl_streaming::models::tcn::feature_dim));
    std::fflush(stdout);
    std::exit(0);
}
"""

# Loads the PARTITION model, runs its self test, prints both results and exits. ESPDL_FLASH_IMAGE names
# a whole flash image (partition table at 0x8000) to run on instead of the emulated flash the build
# preloads: what a chip's flash holds after `idf.py app-flash` of a new app over an old model.
PARTITION_MAIN_CPP = """\
#include <cstdio>
#include <cstdlib>
#include "esp_err.h"
#include "esp_private/partition_linux.h"
#include "tcn.hpp"

extern "C" void app_main(void)
{
    const char *image = std::getenv("ESPDL_FLASH_IMAGE");
    if (image != nullptr) {
        esp_partition_file_mmap_ctrl_t *ctrl = esp_partition_get_file_mmap_ctrl_input();
        std::snprintf(ctrl->flash_file_name, sizeof(ctrl->flash_file_name), "%s", image);
    }
    static espdl_streaming::models::tcn model;
    const esp_err_t init = model.init();
    const esp_err_t test = init == ESP_OK ? model.self_test() : init;
    std::printf("tcn init=%s self_test=%s\\n", esp_err_to_name(init), init == ESP_OK ? esp_err_to_name(test) : "-");
    std::fflush(stdout);
    std::exit(test == ESP_OK ? 0 : 1);
}
"""


def idf_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(IDF_COMPONENT_MANAGER="0", IDF_PYTHON_CHECK_CONSTRAINTS="no", ESPDL_STREAMING_PYTHON=TOOL_PYTHON)
    return env


def idf(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert IDF_PATH is not None and IDF_PYTHON is not None
    cmd = [IDF_PYTHON, str(Path(IDF_PATH) / "tools" / "idf.py"), *args]
    start = time.monotonic()
    proc = subprocess.run(
        cmd, cwd=project, env=idf_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=900
    )
    print(f"$ idf.py {' '.join(args)}  ({time.monotonic() - start:.2f} s, exit {proc.returncode})")
    return proc


def steps(output: str) -> list[str]:
    """The ninja steps of a build (`[n/m] what`)."""
    return [m.group(1) for m in re.finditer(r"^\[\d+/\d+\] (.*)$", output, re.M)]


def flat(text: str) -> str:
    return " ".join(text.split())


def make_project(root: Path, main_cmake: str, main_cpp: str, *, seed: int = 7, partitions: str | None = None) -> Path:
    components = root / "components"
    components.mkdir()
    (components / "espdl_streaming").symlink_to(REPO, target_is_directory=True)
    project = root / "project"
    (project / "main").mkdir(parents=True)
    (project / "CMakeLists.txt").write_text(ROOT_CMAKELISTS.format(components=components))
    (project / "main" / "CMakeLists.txt").write_text(main_cmake)
    (project / "main" / "main.cpp").write_text(main_cpp)
    write_model(project / "main" / "tcn_model.py", seed)
    if partitions is not None:
        (project / "partitions.csv").write_text(partitions)
        (project / "sdkconfig.defaults").write_text(
            'CONFIG_PARTITION_TABLE_CUSTOM=y\nCONFIG_PARTITION_TABLE_CUSTOM_FILENAME="partitions.csv"\n'
        )
    proc = idf(project, "--preview", "set-target", "linux")
    assert proc.returncode == 0, proc.stdout
    return project


def write_model(path: Path, seed: int) -> None:
    text = EXAMPLE_MODEL.read_text()
    assert "torch.manual_seed(7)" in text
    path.write_text(text.replace("torch.manual_seed(7)", f"torch.manual_seed({seed})"))


@dataclass
class Built:
    project: Path
    first: subprocess.CompletedProcess[str]

    @property
    def out_dir(self) -> Path:
        return self.project / "build" / "esp-idf" / "main" / "espdl_streaming" / "tcn"


@pytest.fixture(scope="module")
def rodata_project(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("idf_rodata")
    project = make_project(
        root,
        'idf_component_register(SRCS "main.cpp" PRIV_REQUIRES espdl_streaming)\n'
        "espdl_streaming_add_model(tcn MODEL tcn_model.py:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3)\n",
        MAIN_CPP,
    )
    first = idf(project, "build")
    assert first.returncode == 0, first.stdout
    return Built(project, first)


def test_build_runs_the_quantizer_and_embeds_the_model(rodata_project: Built) -> None:
    out = rodata_project.first.stdout
    assert out.count(QUANTIZING) == 1
    espdl = rodata_project.out_dir / "tcn.espdl"
    assert espdl.is_file()
    elf = rodata_project.project / "build" / "espdl_streaming_idf_check.elf"
    run = subprocess.run([str(elf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    print(run.stdout)
    assert run.returncode == 0
    assert f"espdl_bytes={espdl.stat().st_size} aligned=1 magic=EDL2 chunk_frames=3 feature_dim=16" in run.stdout


def test_kconfig_defaults_reach_the_tool(rodata_project: Built) -> None:
    ninja = (rodata_project.project / "build" / "build.ninja").read_text()
    command = next(line for line in ninja.splitlines() if "-m espdl_streaming build" in line and "--name tcn" in line)
    assert "--target esp32p4" in command  # CONFIG_ESPDL_STREAMING_HOST_CHIP on linux
    assert "--calib-steps 32" in command
    assert "--verify-chunks 8" in command
    assert f"{TOOL_PYTHON} -m espdl_streaming" in command


def test_second_build_does_nothing(rodata_project: Built) -> None:
    proc = idf(rodata_project.project, "build")
    print(proc.stdout[-300:])
    assert proc.returncode == 0
    assert "ninja: no work to do" in proc.stdout
    assert QUANTIZING not in proc.stdout


def test_editing_the_model_reruns_only_the_quantizer_and_relinks(rodata_project: Built) -> None:
    write_model(rodata_project.project / "main" / "tcn_model.py", seed=8)
    proc = idf(rodata_project.project, "build")
    assert proc.returncode == 0, proc.stdout
    ran = steps(proc.stdout)
    print("\n".join(ran))
    assert ran.count(QUANTIZING) == 1
    allowed = re.compile(
        r"Re-checking globbed directories|espdl_streaming: quantizing tcn"
        r"|Building (CXX|ASM) object esp-idf/main/.*/espdl_streaming/tcn/tcn(\.cpp|_espdl\.S)\.o"
        r"|Building CXX object esp-idf/main/.*/main\.cpp\.o"  # includes tcn.hpp
        r"|Linking C(XX)? static library esp-idf/main/libmain\.a"
        r"|Linking CXX executable espdl_streaming_idf_check\.elf"
    )
    assert [s for s in ran if not allowed.search(s)] == []
    assert any("Linking CXX executable" in s for s in ran)
    assert "ninja: no work to do" in idf(rodata_project.project, "build").stdout


PARTITION_MAIN_CMAKE = (
    'idf_component_register(SRCS "main.cpp" PRIV_REQUIRES espdl_streaming esp_partition)\n'
    "espdl_streaming_add_model(tcn MODEL tcn_model.py:build INPUT_SHAPE 1 16 24 CHUNK_FRAMES 3\n"
    "                          PLACEMENT PARTITION model)\n"
)
TABLE = (
    "# Name, Type, SubType, Offset, Size, Flags\n"
    "nvs,      data, nvs,     0x9000,  0x6000,\n"
    "phy_init, data, phy,     0xf000,  0x1000,\n"
    "factory,  app,  factory, 0x10000, 1M,\n"
)


def test_too_small_partition_fails_the_build_with_the_size(tmp_path: Path) -> None:
    project = make_project(
        tmp_path, PARTITION_MAIN_CMAKE, PARTITION_MAIN_CPP, partitions=TABLE + "model,    data, spiffs,  ,        4K,\n"
    )
    proc = idf(project, "build")
    out = flat(proc.stdout)
    assert proc.returncode != 0
    espdl = project / "build" / "esp-idf" / "main" / "espdl_streaming" / "tcn" / "tcn.espdl"
    size = espdl.stat().st_size
    assert size > 4096, f"the test needs a model larger than the 4K partition; it is {size} bytes"
    needed = (size + 4095) // 4096 * 4096
    assert (
        f"espdl_streaming_add_model(tcn): tcn.espdl is {size} bytes but partition 'model' is "
        f"4096 bytes (0x1000). It needs at least {needed} bytes ({needed:#x})"
    ) in out, proc.stdout
    assert f"model, data, spiffs, , {needed // 1024}K," in out


def test_missing_partition_fails_the_build_with_the_line_to_add(tmp_path: Path) -> None:
    project = make_project(tmp_path, PARTITION_MAIN_CMAKE, PARTITION_MAIN_CPP, partitions=TABLE)
    proc = idf(project, "build")
    out = flat(proc.stdout)
    assert proc.returncode != 0
    assert "espdl_streaming_add_model(tcn): PARTITION 'model' is not in the partition table" in out, proc.stdout
    assert "add this line to the table" in out and "model, data, spiffs, ," in out


@pytest.fixture(scope="module")
def partition_project(tmp_path_factory: pytest.TempPathFactory) -> Built:
    root = tmp_path_factory.mktemp("idf_partition")
    project = make_project(
        root, PARTITION_MAIN_CMAKE, PARTITION_MAIN_CPP, partitions=TABLE + "model,    data, spiffs,  ,        1M,\n"
    )
    first = idf(project, "build")
    assert first.returncode == 0, first.stdout
    return Built(project, first)


def run_app(project: Path, image: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("ESPDL_FLASH_IMAGE", None)
    if image is not None:
        env["ESPDL_FLASH_IMAGE"] = str(image)
    run = subprocess.run(
        [str(project / "build" / "espdl_streaming_idf_check.elf")], cwd=project / "build", env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120,
    )  # fmt: skip
    print(run.stdout[-2000:])
    return run


def flash_image(project: Path, path: Path, label: str, content: bytes) -> tuple[Path, int]:
    """A whole emulated flash: the build's partition table at 0x8000, `content` at the start of partition
    `label`, erased (0xff) elsewhere. Returns the path and the partition's size."""
    table = (project / "build" / "partition_table" / "partition-table.bin").read_bytes()
    entries = {}
    for at in range(0, len(table), 32):
        if table[at : at + 2] != b"\xaa\x50":
            break
        offset, size = struct.unpack_from("<II", table, at + 4)
        entries[table[at + 12 : at + 28].rstrip(b"\0").decode()] = (offset, size)
    offset, size = entries[label]
    assert len(content) <= size
    image = bytearray(b"\xff" * max(o + s for o, s in entries.values()))
    image[0x8000 : 0x8000 + len(table)] = table
    image[offset : offset + len(content)] = content
    path.write_bytes(bytes(image))
    return path, size


def test_partition_that_fits_builds_and_preloads_emulated_flash(partition_project: Built) -> None:
    proc = partition_project.first
    assert proc.stdout.count(QUANTIZING) == 1
    espdl = partition_project.out_dir / "tcn.espdl"
    manifest = partition_project.project / "build" / "linux_flash_data.txt"
    if not manifest.exists():  # ESP-IDF without esp_partition_register_target: nothing preloaded
        return
    assert str(espdl) in manifest.read_text()
    run = run_app(partition_project.project)
    assert "tcn init=ESP_OK self_test=ESP_OK" in run.stdout
    assert run.returncode == 0


def test_stale_model_in_the_partition_fails_init_with_both_crcs_and_the_fix(
    partition_project: Built, tmp_path: Path
) -> None:
    """`idf.py app-flash` after retraining: the new app meets the old model, same shapes and exponents.
    init() must refuse it (CRC-32 of the partition's first espdl_bytes bytes) in one log line naming the
    partition, both CRCs and `idf.py flash`; with the new model written it loads and self-tests."""
    project, espdl = partition_project.project, partition_project.out_dir / "tcn.espdl"
    old = espdl.read_bytes()
    write_model(project / "main" / "tcn_model.py", seed=8)  # retrained: same architecture, other weights
    proc = idf(project, "build")
    assert proc.returncode == 0, proc.stdout
    new = espdl.read_bytes()
    assert new != old
    hpp = (partition_project.out_dir / "tcn.hpp").read_text()
    assert "espdl_crc32" in hpp
    assert f"espdl_crc32 = 0x{zlib.crc32(new):08x}u;" in hpp

    image, size = flash_image(project, tmp_path / "stale.bin", "model", old)
    run = run_app(project, image)
    assert run.returncode == 1
    assert "tcn init=ESP_ERR_INVALID_VERSION self_test=-" in run.stdout
    found = zlib.crc32((old + b"\xff" * size)[: len(new)])  # what the partition holds where the model goes
    lines = [line for line in run.stdout.splitlines() if "partition 'model'" in line]
    assert len(lines) == 1, run.stdout
    assert (
        f"tcn: partition 'model' holds another model: CRC-32 of its first {len(new)} bytes is 0x{found:08x}, "
        f"this app expects 0x{zlib.crc32(new):08x} (tcn.espdl of its build). Flash the model with the app: "
        "`idf.py flash` writes both"
    ) in lines[0]

    image, _ = flash_image(project, tmp_path / "erased.bin", "model", b"")
    run = run_app(project, image)
    assert "tcn init=ESP_ERR_INVALID_VERSION" in run.stdout
    assert "partition 'model' holds no model (erased?)" in run.stdout

    image, _ = flash_image(project, tmp_path / "current.bin", "model", new)
    run = run_app(project, image)
    assert "tcn init=ESP_OK self_test=ESP_OK" in run.stdout
    assert run.returncode == 0


TEST_APP = REPO / "test_apps" / "streaming_tcn"


def test_test_app_passes_on_the_linux_target_with_the_host_engine(tmp_path: Path) -> None:
    """test_apps/streaming_tcn, unchanged, as a host executable: the generated classes (RODATA, PARTITION
    through the emulated flash, the recurrent GRU, and the keyword spotter of examples/kws_audio fed PCM)
    run the real .espdl bytes on the host engine. The keyword spotter's outputs on its embedded WAV, printed
    as hex floats, must equal `python -m espdl_streaming run kws.espdl --input <that WAV>` exactly, on both
    engines."""
    components = tmp_path / "components"
    components.mkdir()
    (components / "espdl_streaming").symlink_to(REPO, target_is_directory=True)
    build = tmp_path / "build"
    common = ["-C", str(TEST_APP), "-B", str(build), "-D", f"SDKCONFIG={tmp_path / 'sdkconfig'}",
              "-D", f"EXTRA_COMPONENT_DIRS={components}"]  # fmt: skip
    before = sorted(p.name for p in TEST_APP.iterdir())
    proc = idf(tmp_path, *common, "--preview", "set-target", "linux")
    assert proc.returncode == 0, proc.stdout
    proc = idf(tmp_path, *common, "build")
    assert proc.returncode == 0, proc.stdout
    assert sorted(p.name for p in TEST_APP.iterdir()) == before, "the build wrote into the test app's directory"
    run = subprocess.run(
        [str(build / "streaming_tcn.elf")], cwd=build, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=300,
    )  # fmt: skip
    print(run.stdout[-3000:])
    cases = re.findall(r"^.*:(PASS|FAIL.*)$", run.stdout, re.M)
    assert "9 Tests 0 Failures 0 Ignored" in run.stdout, run.stdout[-3000:]
    assert len(cases) == 9 and all(c == "PASS" for c in cases)
    assert run.returncode == 0

    # The PCM path on the chip's code equals the CLI's `run --input audio.wav`, bit for bit.
    device = _kws_outputs(run.stdout)
    (espdl,) = build.rglob("kws.espdl")
    assert espdl.with_name("kws.report.json").is_file()
    for engine in ("python", "host"):
        out = tmp_path / f"kws_{engine}.npz"
        proc = subprocess.run(
            [TOOL_PYTHON, "-m", "espdl_streaming", "run", str(espdl), "--input", str(KWS_WAV), "--out", str(out),
             "--engine", engine],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stdout
        with np.load(out) as npz:
            expected = npz["output"]  # [1, frames, classes]
        chunks = expected.reshape(-1, device.shape[1])  # frame-major: one chunk's outputs per row
        assert chunks.shape == device.shape, (engine, chunks.shape, device.shape)
        assert np.array_equal(chunks.view(np.uint32), device.view(np.uint32)), (
            f"{engine}: first differing chunk {int(np.argwhere(chunks != device)[0, 0])}"
        )


# The WAV test_apps/streaming_tcn embeds (main/CMakeLists.txt) and feeds to the kws model.
KWS_WAV = REPO / "examples" / "kws_audio" / "wav" / "01_up.wav"


def _kws_outputs(stdout: str) -> np.ndarray:
    """The `KWS_OUT <chunk> <hex float>...` lines of test_kws_audio.cpp: float32 [chunks, values per chunk]."""
    header = re.search(r"^KWS_WAV samples=(\d+) chunks=(\d+) values_per_chunk=(\d+)$", stdout, re.M)
    assert header, stdout[-3000:]
    chunks, per_chunk = int(header[2]), int(header[3])
    rows = re.findall(r"^KWS_OUT (\d+)((?: \S+)+)$", stdout, re.M)
    assert [int(i) for i, _ in rows] == list(range(chunks)), rows[:3]
    values = [[float.fromhex(v) for v in text.split()] for _, text in rows]
    assert all(len(v) == per_chunk for v in values)
    return np.array(values, dtype=np.float32)


def test_every_zoo_model_passes_its_self_test_on_the_linux_target(tmp_path: Path) -> None:
    """Every zoo architecture that verifies, 8- and 16-bit, declared in one ESP-IDF project built for
    linux: each generated class loads its .espdl in the host engine and its self_test() replays the
    build-time simulator's golden chunks bit for bit (recurrent state and caches carried, then reset)."""
    sys.path.insert(0, str(REPO / "python" / "tests"))
    from test_zoo import EXTRA, MODEL_FILES, ZOO_DIR
    from zoo import ALL_ENTRIES as ENTRIES

    seen: set[str] = set()
    decls, names = [], []
    for entry in [*ENTRIES, *EXTRA]:
        if entry.expect is not None or entry.name in seen:
            continue
        seen.add(entry.name)
        model = MODEL_FILES.get(entry.name, f"{ZOO_DIR / entry.file}:{entry.name}")
        shape = entry.input_shape.replace(",", " ")
        for bits in (8, 16):
            name = f"{entry.name}_{bits}"
            names.append(name)
            decls.append(
                f"espdl_streaming_add_model({name} MODEL {model} INPUT_SHAPE {shape} "
                f"CHUNK_FRAMES {entry.chunk} BITS {bits} CALIB_STEPS 8)"
            )
    main_cpp = "\n".join(
        ["#include <cstdio>", "#include <cstdlib>", *(f'#include "{n}.hpp"' for n in names), "",
         'extern "C" void app_main(void)', "{", "    int failures = 0;"]
        + [
            line
            for n in names
            for line in (
                "    {",
                f"        static espdl_streaming::models::{n} m;",
                "        esp_err_t err = m.init();",
                "        if (err == ESP_OK) { err = m.self_test(); }",
                f'        std::printf("zoo %s %s\\n", "{n}", err == ESP_OK ? "PASS" : esp_err_to_name(err));',
                "        failures += err != ESP_OK;",
                "        m.deinit();",
                "    }",
            )
        ]
        + ['    std::printf("zoo done: %d failures\\n", failures);', "    std::fflush(stdout);",
           "    std::exit(failures);", "}", ""]
    )  # fmt: skip
    project = make_project(
        tmp_path,
        'idf_component_register(SRCS "main.cpp" PRIV_REQUIRES espdl_streaming)\n' + "\n".join(decls) + "\n",
        main_cpp,
    )
    proc = idf(project, "build")
    assert proc.returncode == 0, proc.stdout[-5000:]
    run = subprocess.run(
        [str(project / "build" / "espdl_streaming_idf_check.elf")], stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=600,
    )  # fmt: skip
    results = dict(re.findall(r"^zoo (\S+) (\S+)$", run.stdout, re.M))
    print("\n".join(f"{k} {v}" for k, v in results.items()))
    assert sorted(results) == sorted(names), run.stdout[-3000:]
    assert [k for k, v in results.items() if v != "PASS"] == [], run.stdout[-3000:]
    assert run.returncode == 0
