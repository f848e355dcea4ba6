"""PCM in, outputs out (issue 13): a model declared with FRONTEND fbank, built from WAV calibration by the
plain-CMake core, linked with the C++ host engine (the host port of dl::audio), fed PCM through the
generated class's push_samples().

* PCM pushed in random-sized pieces (0-length pushes included), int16 or float, gives the same outputs,
  bit for bit, as pushing it at once, and as ``run --input audio.wav`` (the Python front end and the
  Python simulator; and ``--engine host``);
* reset() forgets the unfinished frame: re-pushing after a reset mid-stream reproduces the first run;
* self_test() passes, and covers the front end: a generated class whose golden features are off by more
  than the tolerance fails it, naming the frame and feature;
* nothing is allocated after init().
"""

from __future__ import annotations

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest
from conftest import TEST_MODELS, run_cli
from host_project import build_and_run
from test_audio_build import write_wav

MODEL = f"{TEST_MODELS / 'per_frame.py'}:build"  # [1, 8, T] -> [1, 4, T]
CHUNK = 4

MAIN = r"""
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "fe.hpp"

using espdl_streaming::chunk_result;
using espdl_streaming::models::fe;

static long g_allocations = 0;
static void *counted(std::size_t n) { ++g_allocations; return std::malloc(n ? n : 1); }
static void *counted_or_abort(std::size_t n) { void *p = counted(n); if (!p) std::abort(); return p; }
void *operator new(std::size_t n) { return counted_or_abort(n); }
void *operator new[](std::size_t n) { return counted_or_abort(n); }
void *operator new(std::size_t n, const std::nothrow_t &) noexcept { return counted(n); }
void *operator new[](std::size_t n, const std::nothrow_t &) noexcept { return counted(n); }
void operator delete(void *p) noexcept { std::free(p); }
void operator delete[](void *p) noexcept { std::free(p); }
void operator delete(void *p, std::size_t) noexcept { std::free(p); }
void operator delete[](void *p, std::size_t) noexcept { std::free(p); }

struct capture {
    std::vector<float> values; /* every chunk's dequantized outputs, back to back */
    unsigned chunks = 0;
};

static esp_err_t keep(const chunk_result &r, void *user)
{
    capture &c = *static_cast<capture *>(user);
    for (uint32_t o = 0; o < r.output_count; ++o) {
        c.values.insert(c.values.end(), r.outputs[o], r.outputs[o] + fe::spec().outputs[o].elements);
    }
    ++c.chunks;
    return ESP_OK;
}

static std::vector<int16_t> read_pcm(const char *path)
{
    std::FILE *f = std::fopen(path, "rb");
    if (!f) { std::printf("cannot open %s\n", path); std::exit(3); }
    std::vector<int16_t> pcm;
    int16_t s;
    while (std::fread(&s, sizeof s, 1, f) == 1) pcm.push_back(s);
    std::fclose(f);
    return pcm;
}

#define CHECK(x) \
    do { esp_err_t e_ = (x); if (e_ != ESP_OK) { std::printf("FAIL %s: %d\n", #x, e_); return 1; } } while (0)

template <typename T>
static esp_err_t push_pieces(fe &model, const std::vector<T> &pcm, capture *out, unsigned seed)
{
    size_t at = 0;
    unsigned state = seed;
    while (at < pcm.size()) {
        state = state * 1103515245u + 12345u;
        size_t n = (state >> 8) % 701; /* 0 .. 700 samples */
        if (n > pcm.size() - at) n = pcm.size() - at;
        size_t consumed = 12345;
        esp_err_t e = model.push_samples(pcm.data() + at, n, keep, out, &consumed);
        if (e != ESP_OK) return e;
        if (consumed != n) { std::printf("consumed %zu of %zu\n", consumed, n); return ESP_FAIL; }
        at += n;
    }
    return ESP_OK;
}

static void print(const char *tag, const capture &c)
{
    std::printf("%s %u", tag, c.chunks);
    for (float v : c.values) std::printf(" %a", static_cast<double>(v));
    std::printf("\n");
}

int main()
{
    static fe model;
    CHECK(model.init());
    CHECK(model.self_test());
    std::vector<int16_t> pcm = read_pcm("@PCM@");
    std::vector<float> pcm_f(pcm.size());
    for (size_t i = 0; i < pcm.size(); ++i) pcm_f[i] = static_cast<float>(pcm[i]) / 32768.0f;

    capture whole, pieces, pieces2, floats, after_reset, ignored;
    for (capture *c : {&whole, &pieces, &pieces2, &floats, &after_reset, &ignored}) c->values.reserve(1 << 16);
    const long after_init = g_allocations; /* from here on: pushes and resets only */
    CHECK(model.reset());
    CHECK(model.push_samples(pcm.data(), pcm.size(), keep, &whole));
    std::printf("PENDING %zu %zu\n", model.pending_samples(), model.pending_frames());
    CHECK(model.reset());
    CHECK(push_pieces(model, pcm, &pieces, 1));
    CHECK(model.reset());
    CHECK(push_pieces(model, pcm, &pieces2, 7));
    CHECK(model.reset());
    CHECK(push_pieces(model, pcm_f, &floats, 3));
    /* reset() mid-stream: half the audio, reset, then all of it again. */
    CHECK(model.reset());
    CHECK(model.push_samples(pcm.data(), pcm.size() / 2 + 37, keep, &ignored));
    CHECK(model.reset());
    CHECK(model.push_samples(pcm.data(), pcm.size(), keep, &after_reset));
    CHECK(model.push_samples(static_cast<const int16_t *>(nullptr), 0, keep, &after_reset));
    const long allocations = g_allocations - after_init;
    print("WHOLE", whole);
    print("PIECES", pieces);
    print("PIECES2", pieces2);
    print("FLOAT", floats);
    print("RESET", after_reset);
    std::printf("ALLOCATIONS_AFTER_INIT %ld\n", allocations);
    model.deinit();
    return 0;
}
"""


def _declaration(calib: Path) -> str:
    return (
        f"fe MODEL {MODEL} INPUT_SHAPE 1 8 16 CHUNK_FRAMES {CHUNK} CHIP esp32p4 FRONTEND fbank NUM_MEL_BINS 8 "
        f"CALIBRATION {calib}"
    )


def _outputs(stdout: str, tag: str) -> np.ndarray:
    line = next(x for x in stdout.splitlines() if x.startswith(tag + " "))
    _, chunks, *values = line.split()
    return np.array([float.fromhex(v) for v in values], np.float32).reshape(int(chunks), -1)


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, subprocess.CompletedProcess[str]]:
    root = tmp_path_factory.mktemp("push_samples")
    calib = root / "calib"
    write_wav(calib / "a.wav", 16000, tone_hz=300, seed=1)
    write_wav(calib / "b.wav", 16000, tone_hz=900, seed=2)
    wav = write_wav(root / "speech.wav", 16000, seconds=1.37, tone_hz=520, seed=5)
    with wave.open(str(wav)) as w:
        (root / "speech.pcm").write_bytes(w.readframes(w.getnframes()))
    proc = build_and_run(root, MAIN.replace("@PCM@", str(root / "speech.pcm")), [_declaration(calib)])
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return root, wav, proc


def _model_dir(root: Path) -> Path:
    (espdl,) = (root / "build").rglob("fe.espdl")
    return espdl.parent


def test_pieces_float_and_reset_give_the_outputs_of_one_push(
    pushed: tuple[Path, Path, subprocess.CompletedProcess[str]],
) -> None:
    _, _, proc = pushed
    whole = _outputs(proc.stdout, "WHOLE")
    # 1.37 s: 135 frames of 10 ms -> 33 chunks of 4
    assert whole.shape == (33, 16)
    for tag in ("PIECES", "PIECES2", "FLOAT", "RESET"):
        got = _outputs(proc.stdout, tag)
        assert got.tobytes() == whole.tobytes(), tag
    # 21920 samples: the last frame starts at 134 * 160; 21920 - 21440 - 400 = 80 samples past it, plus the
    # overlap of 240; 135 % 4 = 3 frames wait for the next chunk.
    assert "PENDING 320 3" in proc.stdout
    assert "ALLOCATIONS_AFTER_INIT 0" in proc.stdout
    assert "fe: front-end self test passed (16 frames)" in proc.stderr


@pytest.mark.parametrize("engine", ["python", "host"])
def test_outputs_equal_run_on_the_wav(
    pushed: tuple[Path, Path, subprocess.CompletedProcess[str]], tmp_path: Path, engine: str
) -> None:
    root, wav, proc = pushed
    out = tmp_path / "out.npy"
    r = run_cli("run", str(_model_dir(root) / "fe.espdl"), "--input", str(wav), "--out", str(out),
                "--engine", engine)  # fmt: skip
    assert r.returncode == 0, r.stderr
    run_out = np.load(out)  # [1, frames, 4]: each chunk's [1, 4 frames, 4] concatenated on the time axis
    whole = _outputs(proc.stdout, "WHOLE")
    assert run_out.shape == (1, whole.shape[0] * CHUNK, 4)
    per_chunk = run_out.reshape(whole.shape[0], -1)
    assert per_chunk.tobytes() == whole.tobytes()


def test_self_test_checks_the_front_end(pushed: tuple[Path, Path, subprocess.CompletedProcess[str]],
                                        tmp_path: Path) -> None:  # fmt: skip
    """A golden feature moved by more than the tolerance fails self_test() naming the frame and feature."""
    root, _, _ = pushed
    model_dir = _model_dir(root)
    cpp = (model_dir / "fe.cpp").read_text()
    report = json.loads((model_dir / "fe.report.json").read_text())
    assert report["frontend"]["kind"] == "fbank"
    head, rest = cpp.split("k_golden_features[", 1)
    decl, body = rest.split("= {\n", 1)
    first, tail = body.split(",", 1)
    value = float(first.strip().removesuffix("f"))
    broken = head + "k_golden_features[" + decl + "= {\n    " + f"{value + 0.02!r}f," + tail
    src = tmp_path / "src"
    src.mkdir()
    (src / "fe.cpp").write_text(broken)
    (src / "fe.hpp").write_text((model_dir / "fe.hpp").read_text())
    main = '#include <cstdio>\n#include "fe.hpp"\nint main() { static espdl_streaming::models::fe m;\n'
    main += "if (m.init() != ESP_OK) return 2; return m.self_test() == ESP_FAIL ? 0 : 1; }\n"
    (src / "main.cpp").write_text(main)
    # The espdl bytes for the RODATA symbol: linked like the CMake core does (an aligned array).
    blob = (model_dir / "fe.espdl").read_bytes()
    words = ", ".join(str(b) for b in blob)
    (src / "blob.cpp").write_text(
        f'#include <cstdint>\nextern "C" {{ alignas(16) extern const uint8_t espdl_streaming_fe_espdl[{len(blob)}] = '
        f"{{{words}}}; }}\n"
    )
    r = _compile_with_host_runtime(tmp_path, src)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "fe: front-end self test: frame 0, feature 0: expected" in r.stderr
    assert "allowed difference 0.01" in r.stderr


def _compile_with_host_runtime(tmp_path: Path, src: Path) -> subprocess.CompletedProcess[str]:
    from conftest import REPO
    from test_cmake import CMAKE, NINJA

    (src / "CMakeLists.txt").write_text(
        "cmake_minimum_required(VERSION 3.20)\nproject(broken CXX)\nset(CMAKE_CXX_STANDARD 17)\n"
        f'include("{REPO}/cmake/espdl_streaming.cmake")\n'
        "espdl_streaming_add_host_runtime(espdl_streaming_runtime)\n"
        "add_executable(check main.cpp fe.cpp blob.cpp)\n"
        "target_include_directories(check PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})\n"
        "target_link_libraries(check PRIVATE espdl_streaming_runtime)\n"
    )
    build = tmp_path / "build"
    for cmd in (
        [CMAKE, "-G", "Ninja", f"-DCMAKE_MAKE_PROGRAM={NINJA}", "-S", src, "-B", build],
        [CMAKE, "--build", build],
    ):
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=900)
        assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return subprocess.run([str(build / "check")], capture_output=True, text=True, timeout=60)
