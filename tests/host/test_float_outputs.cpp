/*
 * Float32 model outputs (ESP-DL's Softmax writes float32): the runner hands them to the callback
 * bit for bit (whatever exponent the engine records for them), the self test compares them bit
 * for bit, and only outputs may be float32.
 */
#include <cmath>
#include <cstring>

#include "check.hpp"
#include "espdl_streaming/quantize.hpp"
#include "espdl_streaming/self_test.hpp"
#include "espdl_streaming/stream_runner.hpp"

using namespace espdl_streaming;

namespace {

constexpr uint32_t chunk_frames = 2;
constexpr uint32_t feature_dim = 3;
constexpr uint32_t classes = 4;
constexpr uint32_t chunks = 3;

const tensor_spec k_outputs[1] = {
    {"probs", dtype::float32, 0, 3, {1, chunk_frames, classes, 0}, chunk_frames * classes},
};

model_spec make_spec(dtype input_type = dtype::int8)
{
    return {"float_model",
            chunk_frames,
            feature_dim,
            rounding::half_even,
            {"input",
             input_type,
             -4,
             3,
             {1, static_cast<int32_t>(chunk_frames), feature_dim, 0},
             chunk_frames * feature_dim},
            k_outputs,
            1,
            0,
            nullptr,
            nullptr,
            0};
}

uint32_t bits_of(float f)
{
    uint32_t b;
    std::memcpy(&b, &f, sizeof(b));
    return b;
}

float float_of(uint32_t b)
{
    float f;
    std::memcpy(&f, &b, sizeof(f));
    return f;
}

/* A model with one int8 input and one float32 output: a per-frame softmax of the frame's integers,
 * plus edge values (-0.0, the smallest subnormal) a dequantizing copy must keep bit for bit. It
 * records a nonzero exponent for its float output, which nothing may apply. */
class float_model final : public model_interface {
public:
    explicit float_model(dtype output_type = dtype::float32) : m_output_type(output_type) {}

    uint32_t input_count() const override { return 1; }
    uint32_t output_count() const override { return 1; }

    esp_err_t input(uint32_t index, tensor_ref *out) override
    {
        if (index != 0) {
            return ESP_ERR_INVALID_ARG;
        }
        *out = {m_input, dtype::int8, -4, chunk_frames * feature_dim, 3, {1, chunk_frames, feature_dim, 0}};
        return ESP_OK;
    }

    esp_err_t output(uint32_t index, tensor_ref *out) override
    {
        if (index != 0) {
            return ESP_ERR_INVALID_ARG;
        }
        *out = {m_output, m_output_type, 7, chunk_frames * classes, 3, {1, chunk_frames, classes, 0}};
        return ESP_OK;
    }

    esp_err_t run() override
    {
        for (uint32_t t = 0; t < chunk_frames; ++t) {
            float e[classes];
            float sum = 0.0f;
            for (uint32_t c = 0; c < classes; ++c) {
                const int8_t q = m_input[t * feature_dim + c % feature_dim];
                e[c] = std::exp(std::ldexp(static_cast<float>(q + static_cast<int>(c) + m_runs), -4));
                sum += e[c];
            }
            for (uint32_t c = 0; c < classes; ++c) {
                m_output[t * classes + c] = e[c] / sum;
            }
        }
        m_output[1] = -0.0f;
        m_output[2] = float_of(1u); /* 2^-149 */
        ++m_runs;
        return ESP_OK;
    }

    esp_err_t reset() override
    {
        m_runs = 0;
        return ESP_OK;
    }

private:
    dtype m_output_type;
    alignas(16) int8_t m_input[chunk_frames * feature_dim] = {};
    alignas(16) float m_output[chunk_frames * classes] = {};
    int m_runs = 0;
};

struct seen {
    uint32_t count = 0;
    uint32_t differ = 0;
    float values[chunks][chunk_frames * classes] = {};
};

esp_err_t record(const chunk_result &r, void *user)
{
    seen &s = *static_cast<seen *>(user);
    s.differ += std::memcmp(r.outputs[0], r.raw[0].data, chunk_frames * classes * sizeof(float)) != 0;
    s.differ += r.raw[0].type != dtype::float32;
    if (s.count < chunks) {
        std::memcpy(s.values[s.count], r.outputs[0], sizeof(s.values[0]));
    }
    ++s.count;
    return ESP_OK;
}

struct bound_runner {
    float_model model;
    stream_runner runner;
    alignas(16) int8_t staging[chunk_frames * feature_dim] = {};
    alignas(16) float storage[chunk_frames * classes] = {};
    float *const outputs[1] = {storage};
    tensor_ref raw[1] = {};

    esp_err_t init(const model_spec &spec)
    {
        return runner.init(&model, &spec, staging, sizeof(staging), outputs, raw);
    }
};

float g_frames[chunks * chunk_frames * feature_dim];

void test_types()
{
    CHECK_EQ(dtype_size(dtype::float32), 4u);
    CHECK(dtype_is_float(dtype::float32));
    CHECK(!dtype_is_float(dtype::int8) && !dtype_is_float(dtype::int16));
    CHECK(std::strcmp(dtype_name(dtype::float32), "float32") == 0);
    CHECK_EQ(static_cast<int>(dtype::float32), 1); /* the .espdl numbering */

    const float in[4] = {0.25f, -0.0f, float_of(1u), float_of(0x7fc00001u)};
    float out[4] = {};
    dequantize(in, dtype::float32, 4, -5, out); /* the exponent scales nothing */
    for (int i = 0; i < 4; ++i) {
        CHECK_EQ(bits_of(out[i]), bits_of(in[i]));
    }
}

void test_runner_passes_floats_through()
{
    const model_spec spec = make_spec();
    bound_runner b;
    CHECK_EQ(b.init(spec), ESP_OK); /* the engine's exponent 7 of a float32 output is not compared */
    seen s;
    CHECK_EQ(b.runner.push(g_frames, chunks * chunk_frames, record, &s), ESP_OK);
    CHECK_EQ(s.count, chunks);
    CHECK_EQ(s.differ, 0u);
    CHECK_EQ(bits_of(s.values[0][1]), 0x80000000u); /* -0.0 stays negative zero */
    CHECK_EQ(bits_of(s.values[0][2]), 1u);          /* the subnormal is not flushed */
    float total = 0.0f;
    for (uint32_t c = 0; c < classes; ++c) {
        total += s.values[1][classes + c];
    }
    CHECK(std::fabs(total - 1.0f) < 1e-5f); /* real values, not scaled by the recorded exponent */
}

void test_self_test_compares_bits()
{
    const model_spec spec = make_spec();
    bound_runner b;
    CHECK_EQ(b.init(spec), ESP_OK);
    seen s;
    CHECK_EQ(b.runner.push(g_frames, chunks * chunk_frames, record, &s), ESP_OK);
    CHECK_EQ(b.runner.reset(), ESP_OK);

    static float expected[chunks * chunk_frames * classes];
    std::memcpy(expected, s.values, sizeof(expected));
    const void *const expected_ptrs[1] = {expected};
    const golden_set golden = {g_frames, chunks * chunk_frames, expected_ptrs, chunks, "the test"};
    CHECK_EQ(run_self_test(b.runner, spec, golden), ESP_OK);

    const uint32_t keep = bits_of(expected[5]);
    expected[5] = float_of(keep + 1); /* one ulp */
    CHECK_EQ(run_self_test(b.runner, spec, golden), ESP_FAIL);
    expected[5] = float_of(keep);
    expected[chunk_frames * classes + 1] = 0.0f; /* +0.0 where the model writes -0.0 */
    CHECK_EQ(run_self_test(b.runner, spec, golden), ESP_FAIL);
    expected[chunk_frames * classes + 1] = -0.0f;
    CHECK_EQ(run_self_test(b.runner, spec, golden), ESP_OK);
}

void test_only_outputs_may_be_float()
{
    const model_spec float_input = make_spec(dtype::float32);
    bound_runner b;
    CHECK_EQ(b.init(float_input), ESP_ERR_NOT_SUPPORTED);
    CHECK(!b.runner.initialized());

    /* The generated code expects float32, the model has int8: refused like any dtype mismatch. */
    const model_spec spec = make_spec();
    float_model int_model(dtype::int8);
    stream_runner runner;
    int8_t staging[chunk_frames * feature_dim];
    float storage[chunk_frames * classes];
    float *const outputs[1] = {storage};
    tensor_ref raw[1] = {};
    CHECK_EQ(runner.init(&int_model, &spec, staging, sizeof(staging), outputs, raw), ESP_ERR_INVALID_SIZE);
}

} // namespace

int main()
{
    for (uint32_t i = 0; i < chunks * chunk_frames * feature_dim; ++i) {
        g_frames[i] = std::ldexp(static_cast<float>((static_cast<int>(i) * 37) % 41 - 20), -3);
    }
    test_types();
    test_runner_passes_floats_through();
    test_self_test_compares_bits();
    test_only_outputs_may_be_float();
    return check::finish();
}
