"""Codegen: rendering rules, and the generated class compiled with the host g++ against the runtime.

The compiled tests use a deterministic fake "model" (outputs are a function of the quantized
chunk and of a state carried across chunks). A C++ test double checks every quantized input
chunk it receives against Python's quantization and returns the true outputs, so the glue,
the runner and the C++ quantizer are checked against this file's float64 reference.
"""

from __future__ import annotations

import dataclasses
import re
import struct
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from glue_fixture import CHUNK, CHUNKS, FEATURES, example_glue, example_glue_dict, fake_espdl, reference_quantize

from espdl_streaming.codegen import c_identifier, c_string, float_literal, output_identifiers, render_glue
from espdl_streaming.glue import Glue

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_SOURCES = ["quantize.cpp", "stream_runner.cpp", "self_test.cpp", "model_loader.cpp", "no_backend.cpp"]
CXXFLAGS = [
    "-std=gnu++17",
    "-g",
    "-O1",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
    "-fno-exceptions",
    "-fno-rtti",
    "-Wall",
    "-Wextra",
    "-Werror",
]
# ---------------------------------------------------------------- rendering, no compiler


def test_render_is_deterministic_and_records_command_line() -> None:
    hpp, cpp = render_glue(example_glue())
    assert (hpp, cpp) == render_glue(example_glue())
    for text in (hpp, cpp):
        assert "Do not edit" in text
        assert "// python -m espdl_streaming build --name kws --model model.py:make\n" in text
    assert "class kws {" in hpp
    assert "namespace espdl_streaming::models {" in hpp
    assert re.findall(r'#include "([^"]+)"', hpp) == [
        "espdl_streaming/backend.hpp",
        "espdl_streaming/model_interface.hpp",
        "espdl_streaming/port.hpp",
        "espdl_streaming/self_test.hpp",
        "espdl_streaming/stream_runner.hpp",
        "espdl_streaming/types.hpp",
    ]
    assert "logits = 0," in hpp and "state_h_0 = 1," in hpp
    assert "static constexpr uint32_t state_h_0_elements = 6;" in hpp
    assert 'extern "C" const uint8_t espdl_streaming_kws_espdl[];' in cpp
    assert "rounding::half_even" in cpp


def test_partition_placement() -> None:
    _, cpp = render_glue(example_glue(placement={"kind": "partition", "label": "model"}))
    assert "/* .where = */ placement::partition,\n" in cpp
    assert '/* .partition_label = */ "model",\n' in cpp
    assert "extern" not in cpp
    # init() is the same text for both placements: the runtime's load_model() reads either.
    _, rodata_cpp = render_glue(example_glue())
    init = re.compile(r"esp_err_t kws::init\(\)\n\{.*?\n\}\n", re.S)
    assert init.search(cpp) and init.search(cpp)[0] == init.search(rodata_cpp)[0]
    assert "load_model(k_source, &m_loaded)" in cpp


def test_digest_is_the_crc32_of_the_espdl_bytes() -> None:
    for placement in ({"kind": "partition", "label": "model"}, None):
        glue = example_glue(placement=placement)
        hpp, cpp = render_glue(glue)
        assert glue.espdl is not None
        digest = zlib.crc32(glue.espdl)
        assert f"static constexpr uint32_t espdl_crc32 = 0x{digest:08x}u;" in hpp
        if placement:
            # load_model() checks the partition's first espdl_bytes bytes against the digest
            assert "/* .check_crc32 = */ true,\n    /* .espdl_crc32 = */ kws::espdl_crc32,\n" in cpp
        else:
            # the linked bytes: only their header's size (they cannot be stale)
            assert "/* .rodata = */ espdl_streaming_kws_espdl,\n" in cpp
            assert "/* .check_crc32 = */ false," in cpp
        assert "/* .espdl_bytes = */ kws::espdl_bytes,\n" in cpp
    other = dataclasses.replace(example_glue(), espdl=fake_espdl(seed=2))
    assert render_glue(other)[0] != render_glue(example_glue())[0]
    # A digest given instead of the bytes is used as it is; with both, they must agree.
    given = example_glue_dict(placement={"kind": "partition", "label": "model"})
    digest = zlib.crc32(given.pop("espdl"))
    given["espdl_crc32"] = digest
    assert f"espdl_crc32 = 0x{digest:08x}u;" in render_glue(Glue.from_dict(given))[0]
    given["espdl"] = fake_espdl(seed=2)
    with pytest.raises(ValueError, match="is not the CRC-32"):
        Glue.from_dict(given)


def test_without_the_espdl_bytes_the_partition_is_not_checked() -> None:
    glue = dataclasses.replace(example_glue(placement={"kind": "partition", "label": "model"}), espdl=None)
    hpp, cpp = render_glue(glue)
    assert "espdl_crc32" not in hpp and "::espdl_crc32" not in cpp
    assert "/* .check_crc32 = */ false," in cpp
    assert "not checked" in hpp


@pytest.mark.parametrize("change", ["length", "header", "magic"])
def test_inconsistent_espdl_bytes_are_rejected(change: str) -> None:
    glue = example_glue_dict()
    if change == "length":
        glue["espdl_bytes"] = 4000
    elif change == "header":
        glue["espdl"] = glue["espdl"][:8] + struct.pack("<I", 100) + glue["espdl"][12:]
    else:
        glue["espdl"] = b"PDL2" + glue["espdl"][4:]
    with pytest.raises(ValueError, match="espdl"):
        Glue.from_dict(glue)


def test_identifiers() -> None:
    assert c_identifier("/model/Gemm_output_0") == "model_Gemm_output_0"
    assert c_identifier("0") == "output_0"
    assert c_identifier("a__b") == "a_b"
    assert c_identifier("///") == "output"
    idents = output_identifiers(["a.b", "a/b", "a_b", "init", "class", "x", "x_elements"], "kws")
    assert len(set(idents)) == len(idents)
    assert idents[:3] == ["a_b", "a_b_2", "a_b_3"]
    assert idents[3] == "out_init" and idents[4] == "out_class"
    derived = {f"{i}{s}" for i in idents for s in ("", "_elements", "_exponent", "_dtype")}
    assert len(derived) == 4 * len(idents)
    assert output_identifiers(["kws"], "kws") == ["out_kws"]


def test_literals() -> None:
    rng = np.random.default_rng(3)
    bit_patterns = rng.integers(0, 2**32, 2000, dtype=np.uint64).astype(np.uint32).view(np.float32)
    values = np.concatenate([rng.standard_normal(2000).astype(np.float32), bit_patterns])
    for v in values[np.isfinite(values)]:
        text = float_literal(v)
        assert text.endswith("f") and re.search(r"[.e]", text)
        assert np.float32(text[:-1]) == v and np.signbit(np.float32(text[:-1])) == np.signbit(v)
    assert float_literal(-0.0) == "-0.0f"
    assert float_literal(3.0) == "3.0f"
    with pytest.raises(ValueError):
        float_literal(float("nan"))
    assert c_string('a"b\\c?\n') == '"a\\"b\\\\c\\?\\012"'


def test_command_line_cannot_escape_the_comment() -> None:
    glue = dataclasses.replace(example_glue(), command_line="build --x 'a\nb' c\\")
    hpp, _ = render_glue(glue)
    assert "// build --x 'a b' c\\ #\n" in hpp


@pytest.mark.parametrize("change", ["unsorted", "elements", "golden_shape", "golden_range", "name", "dtype"])
def test_inconsistent_glue_is_rejected(change: str) -> None:
    glue = example_glue_dict()
    if change == "unsorted":
        glue["outputs"].reverse()
        glue["golden"]["outputs"].reverse()
    elif change == "elements":
        glue["input"]["shape"] = [1, CHUNK, FEATURES + 1]
    elif change == "golden_shape":
        glue["golden"]["outputs"][0] = glue["golden"]["outputs"][0][:-1]
    elif change == "golden_range":
        glue["golden"]["outputs"][0][0, 0] = 128
    elif change == "name":
        glue["name"] = "push"
    elif change == "dtype":
        glue["outputs"][0]["dtype"] = "float32"
    with pytest.raises(ValueError):
        Glue.from_dict(glue)


# ---------------------------------------------------------------- compiled with g++

TEST_MAIN = r"""
#include <cmath>
#include <cstdio>
#include <cstring>

#include "kws.hpp"
#include "test_data.h"

using namespace espdl_streaming;
using model_t = espdl_streaming::models::kws;

namespace {

/* Stands in for the engine: checks each quantized chunk, returns the true outputs of that chunk. */
class golden_double final : public model_interface {
public:
    uint32_t input_count() const override { return 1; }
    uint32_t output_count() const override { return model_t::output_count; }
    esp_err_t input(uint32_t, tensor_ref *out) override
    {
        describe(model_t::spec().input, m_input, out);
        return ESP_OK;
    }
    esp_err_t output(uint32_t i, tensor_ref *out) override
    {
        if (i >= model_t::output_count) {
            return ESP_ERR_INVALID_ARG;
        }
        describe(model_t::spec().outputs[i], m_outputs[i], out);
        return ESP_OK;
    }
    esp_err_t run() override
    {
        if (m_chunk >= td_chunks) {
            return ESP_FAIL;
        }
        input_mismatches += std::memcmp(m_input, td_input_chunks[m_chunk], sizeof(m_input)) != 0;
        std::memcpy(m_outputs[0], td_logits[m_chunk], sizeof(td_logits[0]));
        std::memcpy(m_outputs[1], td_state[m_chunk], sizeof(td_state[0]));
        std::memset(m_input, 0x55, sizeof(m_input));
        ++m_chunk;
        return ESP_OK;
    }
    esp_err_t reset() override
    {
        m_chunk = 0;
        return ESP_OK;
    }
    int input_mismatches = 0;

private:
    static void describe(const tensor_spec &s, void *data, tensor_ref *out)
    {
        *out = tensor_ref{data, s.type, s.exponent, s.elements, s.ndim,
                          {s.shape[0], s.shape[1], s.shape[2], s.shape[3]}};
    }
    alignas(16) int8_t m_input[model_t::input_elements] = {};
    alignas(16) int16_t m_outputs[2][64] = {};
    uint32_t m_chunk = 0;
};

struct stream_check {
    uint32_t chunks = 0;
    int output_mismatches = 0;
    int dequantize_mismatches = 0;
};

esp_err_t on_chunk(const chunk_result &r, void *user)
{
    stream_check &c = *static_cast<stream_check *>(user);
    ++c.chunks;
    if (r.output_count != model_t::output_count || r.chunk_index >= td_chunks) {
        ++c.output_mismatches;
        return ESP_FAIL;
    }
    const int8_t *logits = static_cast<const int8_t *>(r.raw[model_t::logits].data);
    const int16_t *state = static_cast<const int16_t *>(r.raw[model_t::state_h_0].data);
    c.output_mismatches += std::memcmp(logits, td_logits[r.chunk_index], sizeof(td_logits[0])) != 0;
    c.output_mismatches += std::memcmp(state, td_state[r.chunk_index], sizeof(td_state[0])) != 0;
    for (uint32_t e = 0; e < model_t::logits_elements; ++e) {
        const float want = std::ldexp(float(logits[e]), model_t::logits_exponent);
        c.dequantize_mismatches += r.outputs[model_t::logits][e] != want;
    }
    for (uint32_t e = 0; e < model_t::state_h_0_elements; ++e) {
        const float want = std::ldexp(float(state[e]), model_t::state_h_0_exponent);
        c.dequantize_mismatches += r.outputs[model_t::state_h_0][e] != want;
    }
    return ESP_OK;
}

} // namespace

int main()
{
    static model_t model;
    std::printf("init_default=%d\n", static_cast<int>(model.init())); /* no engine on the host */
    static golden_double engine;
    std::printf("init=%d\n", static_cast<int>(model.init(&engine)));
    std::printf("init_again=%d\n", static_cast<int>(model.init(&engine)));
    const golden_set &g = model_t::golden();
    std::printf("frames_exact=%d\n", g.frame_count == td_frame_count &&
                std::memcmp(g.frames, td_frame_bits, sizeof(td_frame_bits)) == 0);

    stream_check check;
    uint32_t state = 2024, at = 0;
    int push_errors = 0;
    while (at < g.frame_count) {
        state = state * 1664525u + 1013904223u;
        uint32_t n = (state >> 16) % 8; /* 0 to 7 frames per push */
        n = n > g.frame_count - at ? g.frame_count - at : n;
        push_errors += model.push(g.frames + at * model_t::feature_dim, n, on_chunk, &check) != ESP_OK;
        at += n;
    }
    std::printf("push_errors=%d\nchunks=%u\npending=%u\n", push_errors, check.chunks,
                static_cast<unsigned>(model.pending_frames()));
    std::printf("output_mismatches=%d\ndequantize_mismatches=%d\n", check.output_mismatches,
                check.dequantize_mismatches);
    std::printf("self_test=%d\n", static_cast<int>(model.self_test()));
    std::printf("input_mismatches=%d\n", engine.input_mismatches);
    model.deinit();
    std::printf("initialized_after_deinit=%d\n", model.initialized());
    return 0;
}
"""


def c_array(name: str, ctype: str, values: np.ndarray) -> str:
    dims = "".join(f"[{d}]" for d in values.shape)
    body = ", ".join(str(int(v)) for v in values.reshape(-1))
    return f"static const {ctype} {name}{dims} = {{{body}}};\n"


def make_test_data(glue: Glue) -> str:
    """What the double and main compare against, computed independently of the generated code."""
    frames = np.asarray(glue.golden.frames, dtype=np.float32)
    chunks_q = reference_quantize(frames[: CHUNKS * CHUNK], -5, glue.rounding, "int8")
    true_outputs = example_glue(glue.rounding).golden.outputs  # uncorrupted
    return "".join(
        [
            "#pragma once\n#include <cstdint>\n",
            f"static const uint32_t td_chunks = {CHUNKS};\n",
            f"static const uint32_t td_frame_count = {frames.shape[0]};\n",
            c_array("td_frame_bits", "uint32_t", frames.view(np.uint32)),
            c_array("td_input_chunks", "int8_t", chunks_q.reshape(CHUNKS, CHUNK * FEATURES)),
            c_array("td_logits", "int8_t", true_outputs[0]),
            c_array("td_state", "int16_t", true_outputs[1]),
        ]
    )


@pytest.fixture(scope="module")
def runtime_objects(tmp_path_factory: pytest.TempPathFactory, gxx: str) -> list[Path]:
    out = tmp_path_factory.mktemp("runtime")
    objects = []
    for source in RUNTIME_SOURCES:
        obj = out / (source + ".o")
        subprocess.run(
            ["g++", *CXXFLAGS, "-I", str(ROOT / "include"), "-c", str(ROOT / "src" / source), "-o", str(obj)],
            check=True,
        )
        objects.append(obj)
    return objects


def blob_source(header: bytes) -> str:
    """The rodata symbol the CMake side would define; only the .espdl header is ever read here."""
    body = ", ".join(str(b) for b in header[:16])
    return f'extern "C" {{ alignas(16) extern const unsigned char espdl_streaming_kws_espdl[16] = {{{body}}}; }}\n'


def build_and_run(
    glue: Glue, work: Path, objects: list[Path], linked: bytes | None = None
) -> tuple[dict[str, int], str]:
    """Compile the generated class with the test main; return its key=value lines and its log.

    `linked`: the bytes behind the rodata symbol (default: the glue's own .espdl)."""
    hpp, cpp = render_glue(glue)
    (work / "kws.hpp").write_text(hpp)
    (work / "kws.cpp").write_text(cpp)
    (work / "test_data.h").write_text(make_test_data(glue))
    (work / "main.cpp").write_text(TEST_MAIN)
    espdl = glue.espdl if linked is None else linked
    assert espdl is not None
    (work / "blob.cpp").write_text(blob_source(espdl))
    exe = work / "kws_test"
    subprocess.run(
        [
            "g++",
            *CXXFLAGS,
            "-I",
            str(ROOT / "include"),
            "-I",
            str(work),
            str(work / "kws.cpp"),
            str(work / "main.cpp"),
            str(work / "blob.cpp"),
            *map(str, objects),
            "-o",
            str(exe),
        ],
        check=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    values = dict(line.split("=", 1) for line in run.stdout.splitlines() if "=" in line)
    return {k: int(v) for k, v in values.items()}, run.stderr


@pytest.mark.parametrize("rounding", ["half_even", "half_up"])
def test_generated_class_streams_golden_data(rounding: str, tmp_path: Path, runtime_objects: list[Path]) -> None:
    result, _ = build_and_run(example_glue(rounding), tmp_path, runtime_objects)
    assert result["init_default"] == 0x106  # ESP_ERR_NOT_SUPPORTED: no engine on plain host builds
    assert result["init"] == 0
    assert result["init_again"] == 0x103  # ESP_ERR_INVALID_STATE
    assert result["frames_exact"] == 1
    assert result["push_errors"] == 0
    assert result["chunks"] == CHUNKS
    assert result["pending"] == 2
    assert result["output_mismatches"] == 0
    assert result["dequantize_mismatches"] == 0
    assert result["self_test"] == 0
    assert result["input_mismatches"] == 0
    assert result["initialized_after_deinit"] == 0


def test_rodata_init_refuses_a_linked_model_of_another_size(tmp_path: Path, runtime_objects: list[Path]) -> None:
    result, log = build_and_run(example_glue(), tmp_path, runtime_objects, linked=fake_espdl(4112))
    assert result["init_default"] == 0x10A  # ESP_ERR_INVALID_VERSION, before any engine is asked
    assert result["init"] == 0  # an injected engine is not checked
    line = "E (kws): the .espdl linked into the app is not this class's model: its header describes 4112 bytes, "
    assert line + "kws.espdl of the build that generated the class has 4096" in log
    assert len([entry for entry in log.splitlines() if "linked into the app" in entry]) == 1, log


PARTITION_CHECK_MAIN = r"""
#include <cstdio>

#include "espdl_streaming/model_check.hpp"
#include "partition_data.h"

using namespace espdl_streaming;

int main()
{
    std::printf("crc_empty=%lu\n", static_cast<unsigned long>(crc32(pd_model, 0)));
    std::printf("crc_model=%lu\n", static_cast<unsigned long>(crc32(pd_model, sizeof(pd_model))));
    const uint32_t half = crc32(pd_model, 100);
    std::printf("crc_chained=%lu\n", static_cast<unsigned long>(crc32(pd_model + 100, sizeof(pd_model) - 100, half)));
    std::printf("same=%d\n", check_partition_bytes("kws", "model", pd_model, sizeof(pd_model), pd_crc));
    std::printf("other=%d\n", check_partition_bytes("kws", "model", pd_other, sizeof(pd_model), pd_crc));
    std::printf("erased=%d\n", check_partition_bytes("kws", "model", pd_erased, sizeof(pd_model), pd_crc));
    return 0;
}
"""


def test_partition_check_uses_zlibs_crc32_and_names_the_fix(tmp_path: Path) -> None:
    """The runtime's CRC-32 (the portable one; ESP-IDF builds use the ROM's, test_idf.py) is zlib's, and a
    partition holding another model, or none, fails with one line: partition, both CRCs, the command."""
    model, other = fake_espdl(4096, 1), fake_espdl(4096, 2)[:3000] + b"\xff" * 1096  # smaller and older
    erased = b"\xff" * 4096
    data = "#pragma once\n#include <cstdint>\n" + "".join(
        c_array(name, "uint8_t", np.frombuffer(b, np.uint8)) for name, b in
        (("pd_model", model), ("pd_other", other), ("pd_erased", erased))
    ) + f"static const uint32_t pd_crc = {zlib.crc32(model)}u;\n"  # fmt: skip
    (tmp_path / "partition_data.h").write_text(data)
    (tmp_path / "main.cpp").write_text(PARTITION_CHECK_MAIN)
    exe = tmp_path / "partition_check"
    include = ["-I", str(ROOT / "include"), "-I", str(tmp_path)]
    subprocess.run(["g++", *CXXFLAGS, *include, str(tmp_path / "main.cpp"), "-o", str(exe)], check=True)
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    result = {k: int(v) for k, v in (line.split("=", 1) for line in run.stdout.splitlines())}
    assert result == {
        "crc_empty": 0,
        "crc_model": zlib.crc32(model),
        "crc_chained": zlib.crc32(model),
        "same": 0,
        "other": 0x10A,  # ESP_ERR_INVALID_VERSION
        "erased": 0x10A,
    }
    lines = run.stderr.splitlines()
    assert len(lines) == 2, run.stderr
    fix = "Flash the model with the app: `idf.py flash` writes both"
    for line, what, found in zip(lines, ("another model", "no model (erased?)"), (other, erased), strict=True):
        assert line.startswith(
            f"E (kws): partition 'model' holds {what}: CRC-32 of its first 4096 bytes is "
            f"0x{zlib.crc32(found):08x}, this app expects 0x{zlib.crc32(model):08x} (kws.espdl of its build). {fix}"
        ), line


def test_self_test_fails_on_corrupted_golden(tmp_path: Path, runtime_objects: list[Path]) -> None:
    glue = example_glue_dict()
    glue["golden"]["outputs"][1][5, 4] += 1
    result, log = build_and_run(Glue.from_dict(glue), tmp_path, runtime_objects)
    assert result["output_mismatches"] == 0  # the stream itself matches the true outputs
    assert result["self_test"] == -1  # ESP_FAIL
    assert "chunk 5, output 'state/h:0', element 4" in log


def test_host_ctest_project(tmp_path: Path, cmake: str, ninja: str) -> None:
    generator = ["-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={ninja}"]
    build = tmp_path / "build"
    subprocess.run(
        [cmake, "-S", str(ROOT / "tests" / "host"), "-B", str(build), *generator],
        check=True,
        capture_output=True,
    )
    subprocess.run([cmake, "--build", str(build)], check=True, capture_output=True)
    ctest = ["ctest", "--test-dir", str(build), "--output-on-failure"]
    run = subprocess.run(ctest, capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "100% tests passed" in run.stdout
