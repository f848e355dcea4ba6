/*
 * Golden-vector self test over a stream_runner.
 */
#include "espdl_streaming/self_test.hpp"

#include <cstdio>
#include <cstring>

namespace espdl_streaming {
namespace {

constexpr const char *TAG = "espdl_streaming";

struct compare_context {
    const model_spec *spec;
    const golden_set *golden;
    uint32_t chunk_offset; /* golden chunk compared with the runner's chunk 0 */
    uint32_t chunks_seen;
    bool mismatch;
};

int32_t element_at(const void *data, dtype t, size_t i)
{
    return t == dtype::int16 ? static_cast<const int16_t *>(data)[i] : static_cast<const int8_t *>(data)[i];
}

/* The bits of float element i: the golden values come from the same computation, so they must be equal
 * bit for bit (no tolerance; -0.0 differs from 0.0, and a NaN matches only the same NaN). */
uint32_t float_bits_at(const void *data, size_t i)
{
    uint32_t bits;
    std::memcpy(&bits, static_cast<const uint8_t *>(data) + i * sizeof(float), sizeof(bits));
    return bits;
}

float float_of(uint32_t bits)
{
    float value;
    std::memcpy(&value, &bits, sizeof(value));
    return value;
}

void log_mismatch(const compare_context &ctx, uint32_t chunk, const tensor_spec &out, uint32_t e, const char *want,
                  const char *got)
{
    ESP_LOGE(TAG,
             "%s: self test: chunk %lu, output '%s', element %lu: expected %s, got %s (the golden values assume "
             "%s)",
             ctx.spec->name, static_cast<unsigned long>(chunk), out.name, static_cast<unsigned long>(e), want, got,
             ctx.golden->assumes != nullptr ? ctx.golden->assumes : "the build's ESP-DL semantics");
}

esp_err_t compare_chunk(const chunk_result &result, void *user)
{
    compare_context &ctx = *static_cast<compare_context *>(user);
    const model_spec &spec = *ctx.spec;
    const uint32_t chunk = ctx.chunk_offset + result.chunk_index;
    ++ctx.chunks_seen;
    if (chunk >= ctx.golden->chunk_count) {
        ESP_LOGE(TAG, "%s: self test: unexpected chunk %lu (golden has %lu)", spec.name,
                 static_cast<unsigned long>(chunk), static_cast<unsigned long>(ctx.golden->chunk_count));
        ctx.mismatch = true;
        return ESP_FAIL;
    }
    for (uint32_t o = 0; o < result.output_count; ++o) {
        const tensor_spec &out = spec.outputs[o];
        const size_t base = static_cast<size_t>(chunk) * out.elements;
        for (uint32_t e = 0; e < out.elements; ++e) {
            char want_text[40];
            char got_text[40];
            if (dtype_is_float(out.type)) {
                const uint32_t want = float_bits_at(ctx.golden->expected[o], base + e);
                const uint32_t got = float_bits_at(result.raw[o].data, e);
                if (want == got) {
                    continue;
                }
                std::snprintf(want_text, sizeof(want_text), "%.9g (0x%08lx)", static_cast<double>(float_of(want)),
                              static_cast<unsigned long>(want));
                std::snprintf(got_text, sizeof(got_text), "%.9g (0x%08lx)", static_cast<double>(float_of(got)),
                              static_cast<unsigned long>(got));
            } else {
                const int32_t want = element_at(ctx.golden->expected[o], out.type, base + e);
                const int32_t got = element_at(result.raw[o].data, out.type, e);
                if (want == got) {
                    continue;
                }
                std::snprintf(want_text, sizeof(want_text), "%ld", static_cast<long>(want));
                std::snprintf(got_text, sizeof(got_text), "%ld", static_cast<long>(got));
            }
            log_mismatch(ctx, chunk, out, e, want_text, got_text);
            ctx.mismatch = true;
            return ESP_FAIL;
        }
    }
    return ESP_OK;
}

esp_err_t push_and_compare(stream_runner &runner, compare_context &ctx, uint32_t frames, uint32_t expect_chunks)
{
    ESPDL_STREAMING_RETURN_ON_ERROR(runner.reset());
    ctx.chunks_seen = 0;
    const esp_err_t ret = runner.push(ctx.golden->frames, frames, compare_chunk, &ctx);
    if (ctx.mismatch) {
        return ESP_FAIL;
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(ret);
    ESPDL_STREAMING_RETURN_ON_FALSE(ctx.chunks_seen == expect_chunks, ESP_FAIL, TAG,
                                    "%s: self test: %lu chunks ran, expected %lu", ctx.spec->name,
                                    static_cast<unsigned long>(ctx.chunks_seen),
                                    static_cast<unsigned long>(expect_chunks));
    return ESP_OK;
}

} // namespace

esp_err_t run_self_test(stream_runner &runner, const model_spec &spec, const golden_set &golden)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(runner.initialized(), ESP_ERR_INVALID_STATE, TAG,
                                    "%s: self test: model not initialised", spec.name);
    ESPDL_STREAMING_RETURN_ON_FALSE(golden.chunk_count > 0 && golden.frames != nullptr &&
                                        golden.frame_count >= golden.chunk_count * spec.chunk_frames &&
                                        (spec.output_count == 0 || golden.expected != nullptr),
                                    ESP_ERR_INVALID_ARG, TAG, "%s: self test: inconsistent golden set", spec.name);
    const uint32_t frames = golden.chunk_count * spec.chunk_frames;
    compare_context ctx = {&spec, &golden, 0, 0, false};

    esp_err_t ret = push_and_compare(runner, ctx, frames, golden.chunk_count);
    if (ret == ESP_OK) {
        /* The first chunk again, after reset(): state (caches) must start from zero again. */
        ret = push_and_compare(runner, ctx, spec.chunk_frames, 1);
        if (ret != ESP_OK) {
            ESP_LOGE(TAG, "%s: self test: the first chunk differs after reset()", spec.name);
        }
    }
    const esp_err_t reset_ret = runner.reset();
    if (ret == ESP_OK) {
        ret = reset_ret;
    }
    if (ret == ESP_OK) {
        ESP_LOGI(TAG, "%s: self test passed (%lu chunks)", spec.name, static_cast<unsigned long>(golden.chunk_count));
    }
    return ret;
}

} // namespace espdl_streaming
