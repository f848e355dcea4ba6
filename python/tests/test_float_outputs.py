"""Float32 model outputs (ESP-DL's Softmax writes float32) end to end.

* The build reports them as float32 without an exponent and generates ``dtype::float32`` specs and
  golden values as exact float literals.
* The generated class's self_test() passes on the C++ host engine (plain-CMake core), and compares
  the float outputs bit for bit: a golden value one ulp off fails it.
* ``run`` returns the float32 values the model computes, the same on the Python and the host engine.
* esp-ppq's own float test outputs are compared with the stated float tolerance, nothing looser.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from conftest import build_args, run_cli
from host_project import build_and_run

from espdl_streaming.codegen import render_glue
from espdl_streaming.espdl import LoopedSimulator, load_espdl, quantize_values
from espdl_streaming.espdl.reader import EspdlModel, Node, ValueInfo
from espdl_streaming.glue import Glue
from espdl_streaming.verify import TensorSpec, _float_test_rtol, _random_stream, _test_value_difference

ZOO = Path(__file__).resolve().parent / "zoo" / "faithful_ops.py"
CHUNK = 4
# (model, chip, bits): a per-frame softmax over channels and a softmax over classes after a last-frame head.
MODELS = (("softmax_per_frame", "esp32p4", 8), ("softmax_classes_head", "esp32s3", 16))


def _build(name: str, out: Path, chip: str, bits: int) -> dict:
    r = run_cli(*build_args(name, f"{ZOO}:{name}", "1,8,16", CHUNK, chip, out, "--calib-steps", "8",
                            "--bits", str(bits)))  # fmt: skip
    assert r.returncode == 0, r.stderr
    return json.loads((out / f"{name}.report.json").read_text())


@pytest.fixture(scope="module")
def per_frame(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("softmax_per_frame")
    return out, _build("softmax_per_frame", out, "esp32p4", 8)


def test_report_and_generated_code_describe_a_float32_output(per_frame: tuple[Path, dict]) -> None:
    out, report = per_frame
    (output,) = report["outputs"]
    assert output["dtype"] == "float32" and output["exponent"] is None
    assert report["streaming"]["verified"] is True and report["streaming"]["max_abs_diff"] == 0
    hpp = (out / "softmax_per_frame.hpp").read_text()
    cpp = (out / "softmax_per_frame.cpp").read_text()
    assert "static constexpr dtype output_dtype = dtype::float32;" in hpp
    spec_line = '{"output", dtype::float32, /* exponent */ 0, /* ndim */ 3, /* shape */ {1, 4, 5, 0}, '
    spec_line += "/* elements */ 20},"
    assert spec_line in cpp
    assert "alignas(16) const float k_golden_output_0[" in cpp
    # The golden literals are the streaming model's float32 outputs, exactly.
    body = cpp.split("k_golden_output_0[")[1].split("};")[0].split("= {")[1]
    literals = np.array([np.float32(v.strip().removesuffix("f")) for v in body.split(",") if v.strip()], np.float32)
    model = load_espdl(out / "softmax_per_frame.espdl")
    spec = TensorSpec(**report["input"])
    frames = _random_stream(spec, report["golden_chunks"] * CHUNK, spec.shape[2:])
    q = quantize_values(frames, spec.exponent, spec.dtype, report["streaming"]["rounding"])[None]
    sim = LoopedSimulator(model, report["streaming"]["rounding"])
    want = np.concatenate(
        [sim.run({spec.name: q[:, k * CHUNK : (k + 1) * CHUNK]})["output"].reshape(-1)
         for k in range(report["golden_chunks"])]
    )  # fmt: skip
    assert want.dtype == np.float32
    assert literals.tobytes() == want.tobytes()


def test_run_cli_returns_the_float32_values(per_frame: tuple[Path, dict], tmp_path: Path) -> None:
    out, report = per_frame
    spec = TensorSpec(**report["input"])
    frames = _random_stream(spec, 3 * CHUNK + 1, spec.shape[2:])
    np.save(tmp_path / "frames.npy", frames)
    rounding = report["streaming"]["rounding"]
    sim = LoopedSimulator(load_espdl(out / "softmax_per_frame.espdl"), rounding)
    q = quantize_values(frames, spec.exponent, spec.dtype, rounding)[None]
    want = np.concatenate([sim.run({spec.name: q[:, k * CHUNK : (k + 1) * CHUNK]})["output"] for k in range(3)], 1)
    assert want.dtype == np.float32 and want.shape == (1, 3 * CHUNK, 5)
    # A softmax over the 5 classes of every frame (an honest float result, not raw integers).
    np.testing.assert_allclose(want.sum(axis=-1), 1.0, rtol=1e-5)
    for engine in ("python", "host"):
        result = tmp_path / f"{engine}.npy"
        r = run_cli("run", out / "softmax_per_frame.espdl", "--input", tmp_path / "frames.npy", "--out", result,
                    "--engine", engine)  # fmt: skip
        assert r.returncode == 0, r.stderr
        assert "output [1, 12, 5]" in r.stdout, r.stdout
        got = np.load(result)
        assert got.dtype == np.float32
        assert got.tobytes() == want.tobytes(), engine  # bit for bit, no tolerance


MAIN = r"""
#include <cstdio>
#include <cstring>

#include "espdl_streaming/self_test.hpp"
#include "softmax_classes_head.hpp"
#include "softmax_per_frame.hpp"

using namespace espdl_streaming;

template <typename M> int check(M &m, const char *name)
{
    int failures = 0;
    const esp_err_t init = m.init();
    failures += init != ESP_OK;
    const esp_err_t first = m.self_test();
    const esp_err_t second = m.self_test();
    failures += first != ESP_OK || second != ESP_OK;

    // The float outputs reach the callback as they are: out == raw, bit for bit.
    struct seen_t {
        int chunks = 0;
        int differ = 0;
    } seen;
    auto cb = [](const chunk_result &r, void *user) -> esp_err_t {
        seen_t &s = *static_cast<seen_t *>(user);
        ++s.chunks;
        s.differ += std::memcmp(r.outputs[0], r.raw[0].data, M::output_elements * sizeof(float)) != 0;
        s.differ += r.raw[0].type != dtype::float32;
        return ESP_OK;
    };
    failures += m.reset() != ESP_OK;
    failures += m.push(M::golden().frames, M::golden().chunk_count * M::chunk_frames, cb, &seen) != ESP_OK;
    failures += seen.differ != 0 || seen.chunks != static_cast<int>(M::golden().chunk_count);

    // The self test compares floats bit for bit: one golden value one ulp off fails it.
    static float changed[64 * M::output_elements];
    const size_t count = static_cast<size_t>(M::golden().chunk_count) * M::output_elements;
    std::memcpy(changed, M::golden().expected[0], count * sizeof(float));
    uint32_t bits;
    std::memcpy(&bits, &changed[1], sizeof(bits));
    bits += 1;
    std::memcpy(&changed[1], &bits, sizeof(bits));
    const void *const expected[1] = {changed};
    golden_set off_by_one = M::golden();
    off_by_one.expected = expected;
    stream_runner runner;
    alignas(16) static uint8_t staging[M::input_elements * 2];
    alignas(16) static float storage[M::output_elements];
    float *const outputs[1] = {storage};
    tensor_ref raw[1] = {};
    const esp_err_t bound = runner.init(m.model(), &M::spec(), staging, sizeof(staging), outputs, raw);
    const esp_err_t exact = run_self_test(runner, M::spec(), M::golden());
    const esp_err_t ulp = run_self_test(runner, M::spec(), off_by_one);
    failures += bound != ESP_OK || exact != ESP_OK || ulp != ESP_FAIL;
    std::printf("%s init=%d self_test=%d,%d callback=%d,%d one_ulp_off=%d\n", name, int(init), int(first),
                int(second), seen.chunks, seen.differ, int(ulp));
    m.deinit();
    return failures;
}

int main()
{
    static espdl_streaming::models::softmax_per_frame a;
    static espdl_streaming::models::softmax_classes_head b;
    return check(a, "softmax_per_frame") + check(b, "softmax_classes_head");
}
"""


def test_generated_classes_pass_their_self_test_on_the_host_engine(tmp_path: Path) -> None:
    """The generated classes of Softmax models, linked with the C++ host engine through the plain-CMake
    core: init(), self_test() twice, the float outputs given to the callback as they are, and a
    golden set one ulp off refused."""
    run = build_and_run(
        tmp_path,
        MAIN,
        [f'{m} MODEL "{ZOO}:{m}" INPUT_SHAPE 1 8 16 CHUNK_FRAMES {CHUNK} CHIP {chip} CALIB_STEPS 8 BITS {bits}'
         for m, chip, bits in MODELS],
    )  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines() == [
        "softmax_per_frame init=0 self_test=0,0 callback=4,0 one_ulp_off=-1",
        "softmax_classes_head init=0 self_test=0,0 callback=4,0 one_ulp_off=-1",
    ]
    assert "chunk 0, output 'output', element 1: expected" in run.stdout + run.stderr


# ---------------------------------------------------------------- units, no build


def _softmax_model(shape: tuple[int, ...], axis: int, dtype: str = "int8", exponent: int = -4) -> EspdlModel:
    return EspdlModel(
        producer="test", inputs=[ValueInfo("x", shape, dtype, exponent)],
        outputs=[ValueInfo("y", shape, "float32", 0)],
        nodes=[Node("sm", "Softmax", ["x"], ["y"], {"axis": axis})], initializers={}, value_info={},
        test_inputs={}, test_outputs={}, metadata={},
    )  # fmt: skip


def test_esp_ppq_float_test_values_are_compared_with_the_stated_tolerance() -> None:
    model = _softmax_model((1, 4, 5), -1)  # n = 5 classes: rtol (2 * 5 + 8) * 2^-24 = 1.07e-6
    want = np.full((1, 4, 5), 0.2, np.float32)
    assert _test_value_difference(model, "y", want.copy(), want) is None
    ulps = want.copy()
    ulps[0, 1, 2] = np.nextafter(np.nextafter(ulps[0, 1, 2], np.float32(1)), np.float32(1))  # 2 ulps (measured)
    assert _test_value_difference(model, "y", ulps, want) is None
    off = want.copy()
    off[0, 2, 3] *= np.float32(1 + 2e-6)
    diff = _test_value_difference(model, "y", off, want)
    assert diff is not None and "1 of 20 float32 values differ by more than the relative tolerance 1.07e-06" in diff
    assert _test_value_difference(model, "y", want.astype(np.float64), want) == "dtype float64 vs float32"
    # An int16 Softmax input may be one step off in esp-ppq's reference (its +-1 for int16): exp(2 * 2^e) - 1 more.
    wide = _softmax_model((1, 4, 5), 2, "int16", -10)
    assert _float_test_rtol(wide, "y", want) == pytest.approx(18 * 2.0**-24 + math.expm1(2.0**-9), rel=1e-12)
    assert _test_value_difference(wide, "y", off, want) is None
    step = want.copy()
    step[0, 0, 0] *= np.float32(1.005)
    assert _test_value_difference(wide, "y", step, want) is not None
    # Not a Softmax: no known reason to differ, compared exactly.
    other = _softmax_model((1, 4, 5), -1)
    other.nodes[0].op_type = "Identity"
    assert _test_value_difference(other, "y", ulps, want) is not None
    # Integers keep their rule: int16 +-1 (esp-ppq's float32 accumulation), int8 exact.
    a = np.array([3, 4], np.int16)
    assert _test_value_difference(model, "y", a + 1, a) is None
    assert _test_value_difference(model, "y", (a + 1).astype(np.int8), a.astype(np.int8)) is not None


def _float_glue() -> dict:
    rng = np.random.default_rng(7)
    golden = rng.random((2, 6)).astype(np.float32)
    golden[0, 0] = np.float32(1e-45)  # the smallest subnormal: its literal must still parse back exactly
    golden[0, 1] = np.nextafter(np.float32(1), np.float32(0))
    return {
        "name": "fm", "target": "esp32p4", "command_line": "x", "espdl_versions": ">=3.3.8,<4.0.0",
        "chunk_frames": 2, "feature_dim": 3, "rounding": "half_even",
        "input": {"name": "in", "shape": [1, 2, 3], "dtype": "int8", "exponent": -5},
        "outputs": [{"name": "probs", "shape": [1, 2, 3], "dtype": "float32", "exponent": None}],
        "placement": {"kind": "rodata", "symbol": "fm_espdl"},
        "golden": {"frames": rng.random((4, 3)).astype(np.float32), "chunks": 2, "outputs": [golden]},
        "espdl_bytes": 100, "cache_bytes": 0, "macs_per_chunk": 1,
    }  # fmt: skip


def test_codegen_float_outputs() -> None:
    glue = _float_glue()
    hpp, cpp = render_glue(Glue.from_dict(glue))
    assert "static constexpr dtype probs_dtype = dtype::float32;" in hpp
    assert "static constexpr int probs_exponent = 0;  // float32: real values, never scaled" in hpp
    body = cpp.split("k_golden_output_0[2 * fm::probs_elements] = {")[1].split("};")[0]
    values = np.array([np.float32(v.strip().removesuffix("f")) for v in body.split(",") if v.strip()], np.float32)
    assert values.tobytes() == glue["golden"]["outputs"][0].reshape(-1).tobytes()
    bad = _float_glue()
    bad["golden"]["outputs"] = [bad["golden"]["outputs"][0].astype(np.float64)]
    with pytest.raises(ValueError, match="must be float32"):
        Glue.from_dict(bad)
    bad = _float_glue()
    bad["input"] = {"name": "in", "shape": [1, 2, 3], "dtype": "float32", "exponent": None}
    with pytest.raises(ValueError, match="is not one of"):
        Glue.from_dict(bad)  # the runner quantizes its input: int8 or int16 only
    bad = _float_glue()
    bad["outputs"][0]["exponent"] = -3
    with pytest.raises(ValueError, match="has no exponent"):
        Glue.from_dict(bad)
