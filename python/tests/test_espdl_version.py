"""The ESP-DL versions the golden vectors assume: one range, in the manifest, CMake and Python,
and the configure-time check that rejects an ESP-DL outside it with the fix."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from conftest import REPO
from test_cmake import CMAKE

from espdl_streaming.espdl_semantics import ESPDL_BELOW, ESPDL_MIN, ESPDL_RANGE


def test_manifest_cmake_and_python_hold_the_same_range() -> None:
    manifest = (REPO / "idf_component.yml").read_text()
    block = manifest[manifest.index("espressif/esp-dl:") :]
    assert re.search(r'version:\s*"([^"]+)"', block).group(1) == ESPDL_RANGE  # type: ignore[union-attr]
    cmake = (REPO / "cmake" / "espdl_version.cmake").read_text()
    assert f'set(ESPDL_STREAMING_ESPDL_MIN "{ESPDL_MIN}")' in cmake
    assert f'set(ESPDL_STREAMING_ESPDL_BELOW "{ESPDL_BELOW}")' in cmake


def _check(tmp_path: Path, manifest: str | None) -> str:
    component = tmp_path / "esp-dl"
    component.mkdir()
    if manifest is not None:
        (component / "idf_component.yml").write_text(manifest)
    script = tmp_path / "check.cmake"
    script.write_text(
        f'include("{REPO}/cmake/espdl_version.cmake")\n'
        f'__espdl_streaming_check_espdl_version("{component}" problem)\n'
        'message(STATUS "RESULT=[${problem}]")\n'
    )
    proc = subprocess.run([CMAKE, "-P", str(script)], capture_output=True, text=True, check=True)
    found = re.search(r"RESULT=\[(.*)\]", proc.stdout + proc.stderr, re.S)
    assert found is not None, proc.stdout + proc.stderr
    return found.group(1)


@pytest.mark.parametrize("version", ["3.3.8", "3.3.9", '"3.4.0"', "3.10.1"])
def test_supported_esp_dl_versions_pass(tmp_path: Path, version: str) -> None:
    assert _check(tmp_path, f"version: {version}\nlicense: MIT\n") == ""


@pytest.mark.parametrize("version", ["3.3.2", "3.3.7", '"4.0.0"', "5.1.0"])
def test_other_esp_dl_versions_fail_with_the_fix(tmp_path: Path, version: str) -> None:
    problem = _check(tmp_path, f"version: {version}\n")
    assert problem.startswith(f"ESP-DL {version.strip(chr(34))} ")
    assert f'espressif/esp-dl ">={ESPDL_MIN},<{ESPDL_BELOW}"' in problem
    assert "3.3.8 changed the int16 LUT" in problem


def test_a_local_esp_dl_without_version_is_not_rejected(tmp_path: Path) -> None:
    assert _check(tmp_path, None) == ""


def test_the_declared_version_is_read_for_the_model_declarations(tmp_path: Path) -> None:
    """The ESP-IDF wrapper passes the ESP-DL version to the tool (QUANT w8a16 needs >= 3.3.11)."""
    component = tmp_path / "esp-dl"
    component.mkdir()
    (component / "idf_component.yml").write_text('version: "3.3.11"\nlicense: MIT\n')
    script = tmp_path / "v.cmake"
    script.write_text(
        f'include("{REPO}/cmake/espdl_version.cmake")\n'
        f'__espdl_streaming_espdl_version("{component}" v)\n'
        f'__espdl_streaming_espdl_version("{tmp_path / "none"}" none)\n'
        'message(STATUS "V=[${v}] NONE=[${none}]")\n'
    )
    proc = subprocess.run([CMAKE, "-P", str(script)], capture_output=True, text=True, check=True)
    assert "V=[3.3.11] NONE=[]" in proc.stdout + proc.stderr
    text = (REPO / "project_include.cmake").read_text()
    assert "__espdl_streaming_espdl_version(" in text and "ESPDL_VERSION ${espdl_version}" in text
