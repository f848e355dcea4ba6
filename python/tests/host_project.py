"""A plain-CMake host project (the component's CMake core, espdl_streaming_add_host_runtime) that
declares some models, links them into one executable with the C++ host engine, and runs it: the
generated classes as a host application would use them."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import REPO
from test_cmake import CMAKE, NINJA, TOOL_PYTHON


def build_and_run(tmp_path: Path, main_cpp: str, declarations: list[str]) -> subprocess.CompletedProcess[str]:
    """`declarations`: the arguments of each espdl_streaming_add_model_to_target() after TARGET (added here)."""
    src = tmp_path / "src"
    src.mkdir()
    (src / "main.cpp").write_text(main_cpp)
    models = "\n".join(f"espdl_streaming_add_model_to_target({d.split(' ', 1)[0]} TARGET check {d.split(' ', 1)[1]})"
                       for d in declarations)  # fmt: skip
    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(host_check C CXX ASM)\nset(CMAKE_CXX_STANDARD 17)\n"
        f'include("{REPO}/cmake/espdl_streaming.cmake")\n'
        "espdl_streaming_add_host_runtime(espdl_streaming_runtime)\n"
        "add_executable(check main.cpp)\ntarget_link_libraries(check PRIVATE espdl_streaming_runtime)\n" + models + "\n"
    )
    build = tmp_path / "build"
    for cmd in (
        [CMAKE, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={NINJA}", "-S", src, "-B", build,
         f"-DESPDL_STREAMING_PYTHON={TOOL_PYTHON}"],
        [CMAKE, "--build", build],
    ):  # fmt: skip
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return subprocess.run([str(build / "check")], capture_output=True, text=True, timeout=60)
