"""The generated glue of a real build, compiled with g++, against the build's own simulator.

The example model is built with the CLI; the test data (a long float stream, the quantized
chunks and each chunk's outputs) comes from the host simulator running the built .espdl.
A model double checks every quantized chunk the glue hands it and returns the simulator's
outputs; pushing the stream in random-sized pieces must give those outputs chunk for chunk,
and the generated self_test() must pass against the same double.
"""

from __future__ import annotations

import json
import re
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO

from espdl_streaming.espdl import Simulator, load_espdl, quantize_values
from espdl_streaming.verify import TensorSpec, _random_stream

CHUNKS = 11
EXTRA_FRAMES = 2
CXX = [
    "g++",
    "-std=gnu++17",
    "-O1",
    "-g",
    "-Wall",
    "-Wextra",
    "-Werror",
    "-fno-exceptions",
    "-fno-rtti",
    "-fsanitize=address,undefined",
    "-fno-sanitize-recover=all",
]
RUNTIME = ["quantize.cpp", "stream_runner.cpp", "self_test.cpp", "model_loader.cpp", "no_backend.cpp"]

MAIN = r"""
#include <cmath>
#include <cstdio>
#include <cstring>

#include "tcn.hpp"
#include "test_data.h"

using namespace espdl_streaming;
using model_t = espdl_streaming::models::tcn;

namespace {

class simulator_double final : public model_interface {
public:
    uint32_t input_count() const override { return 1; }
    uint32_t output_count() const override { return 1; }
    esp_err_t input(uint32_t, tensor_ref *out) override
    {
        const tensor_spec &s = model_t::spec().input;
        *out = tensor_ref{m_input, s.type, s.exponent, s.elements, s.ndim, {s.shape[0], s.shape[1], s.shape[2], s.shape[3]}};
        return ESP_OK;
    }
    esp_err_t output(uint32_t, tensor_ref *out) override
    {
        const tensor_spec &s = model_t::spec().outputs[0];
        *out = tensor_ref{m_output, s.type, s.exponent, s.elements, s.ndim, {s.shape[0], s.shape[1], s.shape[2], s.shape[3]}};
        return ESP_OK;
    }
    esp_err_t run() override
    {
        if (m_chunk >= td_chunks) return ESP_FAIL;
        input_mismatches += std::memcmp(m_input, td_input_chunks[m_chunk], sizeof(m_input)) != 0;
        std::memcpy(m_output, td_outputs[m_chunk], sizeof(m_output));
        ++m_chunk;
        return ESP_OK;
    }
    esp_err_t reset() override { m_chunk = 0; ++resets; return ESP_OK; }
    int input_mismatches = 0;
    int resets = 0;

private:
    alignas(16) int8_t m_input[model_t::input_elements] = {};
    alignas(16) int8_t m_output[model_t::output_elements] = {};
    uint32_t m_chunk = 0;
};

struct seen { uint32_t chunks = 0; int mismatches = 0; int deq_mismatches = 0; };

esp_err_t on_chunk(const chunk_result &r, void *user)
{
    seen &s = *static_cast<seen *>(user);
    const int8_t *raw = static_cast<const int8_t *>(r.raw[0].data);
    s.mismatches += r.chunk_index != s.chunks || std::memcmp(raw, td_outputs[r.chunk_index], sizeof(td_outputs[0])) != 0;
    for (uint32_t e = 0; e < model_t::output_elements; ++e) {
        s.deq_mismatches += r.outputs[0][e] != std::ldexp(float(raw[e]), model_t::output_exponent);
    }
    ++s.chunks;
    return ESP_OK;
}

} // namespace

int main()
{
    static model_t model;
    static simulator_double engine;
    std::printf("init=%d\n", int(model.init(&engine)));
    seen s;
    uint32_t state = 7, at = 0;
    while (at < td_frame_count) {
        state = state * 1103515245u + 12345u;
        uint32_t n = (state >> 16) % 8;
        n = n > td_frame_count - at ? td_frame_count - at : n;
        if (model.push(td_frames + at * model_t::feature_dim, n, on_chunk, &s) != ESP_OK) std::printf("push_error=1\n");
        at += n;
    }
    std::printf("chunks=%u\nmismatches=%d\ndeq_mismatches=%d\npending=%u\n", s.chunks, s.mismatches,
                s.deq_mismatches, unsigned(model.pending_frames()));
    std::printf("input_mismatches=%d\n", engine.input_mismatches);
    std::printf("self_test=%d\n", int(model.self_test()));
    std::printf("input_mismatches_after_self_test=%d\n", engine.input_mismatches);
    return 0;
}
"""


def _c_array(name: str, ctype: str, values: np.ndarray) -> str:
    body = ", ".join(str(int(v)) for v in values.reshape(-1))
    dims = "".join(f"[{d}]" for d in values.shape)
    return f"static const {ctype} {name}{dims} = {{{body}}};\n"


@pytest.mark.parametrize("target", ["esp32p4", "esp32s3"])
def test_generated_glue_equals_simulator(
    gxx: str, example_builds: dict[str, Path], target: str, tmp_path: Path
) -> None:
    out = example_builds[target]
    report = json.loads((out / "tcn.report.json").read_text())
    model = load_espdl(out / "tcn.espdl")
    sim = Simulator(model, report["streaming"]["rounding"])
    spec = TensorSpec(**report["input"])
    chunk = report["chunk_frames"]
    frames = _random_stream(spec, CHUNKS * chunk + EXTRA_FRAMES, spec.shape[2:])  # starts with the golden frames
    q = quantize_values(frames, spec.exponent, spec.dtype, report["streaming"]["rounding"])
    outputs = []
    sim.reset()
    for k in range(CHUNKS):
        got = sim.run({spec.name: q[None, k * chunk : (k + 1) * chunk]})
        outputs.append(np.asarray(got[report["outputs"][0]["name"]]).reshape(-1))
    data = (
        "#pragma once\n#include <cstdint>\n"
        f"static const uint32_t td_chunks = {CHUNKS};\n"
        f"static const uint32_t td_frame_count = {frames.shape[0]};\n"
        + _c_array("td_frame_bits", "uint32_t", frames.reshape(-1).view(np.uint32))
        + "static const float *const td_frames = reinterpret_cast<const float *>(td_frame_bits);\n"
    )
    data += _c_array("td_input_chunks", "int8_t", q[: CHUNKS * chunk].reshape(CHUNKS, -1))
    data += _c_array("td_outputs", "int8_t", np.stack(outputs))
    (tmp_path / "test_data.h").write_text(data)
    (tmp_path / "main.cpp").write_text(MAIN)
    header = ", ".join(str(b) for b in (out / "tcn.espdl").read_bytes()[:16])  # init() reads only the header
    (tmp_path / "blob.cpp").write_text(
        f'extern "C" {{ alignas(16) extern const unsigned char espdl_streaming_tcn_espdl[16] = {{{header}}}; }}\n'
    )
    exe = tmp_path / "glue_test"
    subprocess.run(
        [
            *CXX,
            "-I",
            str(REPO / "include"),
            "-I",
            str(out),
            "-I",
            str(tmp_path),
            str(out / "tcn.cpp"),
            str(tmp_path / "main.cpp"),
            str(tmp_path / "blob.cpp"),
            *(str(REPO / "src" / s) for s in RUNTIME),
            "-o",
            str(exe),
        ],
        check=True,
    )
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    result = {k: int(v) for k, v in (line.split("=", 1) for line in run.stdout.splitlines())}
    assert result == {
        "init": 0,
        "chunks": CHUNKS,
        "mismatches": 0,
        "deq_mismatches": 0,
        "pending": EXTRA_FRAMES,
        "input_mismatches": 0,
        "self_test": 0,
        "input_mismatches_after_self_test": 0,
    }, run.stdout + run.stderr


def test_generated_digest_is_the_crc32_of_the_built_espdl(example_builds: dict[str, Path]) -> None:
    """The CRC-32 a PARTITION model's init() checks the partition against is that of the .espdl the build wrote."""
    out = example_builds["esp32p4"]
    hpp = (out / "tcn.hpp").read_text()
    espdl = (out / "tcn.espdl").read_bytes()
    match = re.search(r"static constexpr uint32_t espdl_crc32 = 0x([0-9a-f]{8})u;", hpp)
    assert match is not None, hpp[:2000]
    assert int(match.group(1), 16) == zlib.crc32(espdl)
    assert f"static constexpr uint32_t espdl_bytes = {len(espdl)};" in hpp
