/*
 * The speech front end's self test (self_test.hpp: run_frontend_self_test()): golden PCM through an
 * audio_frontend, every feature frame compared with what the build computed, within its tolerance.
 * A file of its own: runtime builds without a front end link self_test.cpp alone.
 */
#include "espdl_streaming/self_test.hpp"

namespace espdl_streaming {
namespace {

constexpr const char *TAG = "espdl_streaming";

struct frontend_context {
    const frontend_golden *golden;
    const char *name;
    uint32_t feature_dim;
    uint32_t frames_seen;
    bool mismatch;
};

esp_err_t compare_features(const float *features, void *user)
{
    frontend_context &ctx = *static_cast<frontend_context *>(user);
    const frontend_golden &g = *ctx.golden;
    const uint32_t frame = ctx.frames_seen++;
    if (frame >= g.frame_count) {
        ESP_LOGE(TAG, "%s: front-end self test: frame %lu, the golden PCM gives %lu", ctx.name,
                 static_cast<unsigned long>(frame), static_cast<unsigned long>(g.frame_count));
        ctx.mismatch = true;
        return ESP_FAIL;
    }
    const float *want = g.features + static_cast<size_t>(frame) * ctx.feature_dim;
    float scale = 0.0f;
    for (uint32_t c = 0; c < ctx.feature_dim; ++c) {
        const float a = want[c] < 0.0f ? -want[c] : want[c];
        scale = a > scale ? a : scale;
    }
    const double bound = static_cast<double>(g.abs_tol) + static_cast<double>(g.rel_tol) * scale;
    for (uint32_t c = 0; c < ctx.feature_dim; ++c) {
        const double diff = static_cast<double>(features[c]) - static_cast<double>(want[c]);
        /* Written so that a NaN fails. */
        if (!(diff <= bound && -diff <= bound)) {
            ESP_LOGE(TAG,
                     "%s: front-end self test: frame %lu, feature %lu: expected %.7g, got %.7g (allowed difference "
                     "%.3g)",
                     ctx.name, static_cast<unsigned long>(frame), static_cast<unsigned long>(c),
                     static_cast<double>(want[c]), static_cast<double>(features[c]), bound);
            ctx.mismatch = true;
            return ESP_FAIL;
        }
    }
    return ESP_OK;
}

} // namespace

esp_err_t run_frontend_self_test(audio_frontend &frontend, const frontend_golden &golden, const char *name)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(frontend.initialized(), ESP_ERR_INVALID_STATE, TAG,
                                    "%s: front-end self test: front end not initialised", name);
    const frontend_spec &spec = *frontend.spec();
    ESPDL_STREAMING_RETURN_ON_FALSE(golden.pcm != nullptr && golden.features != nullptr && golden.frame_count > 0 &&
                                        golden.pcm_samples >= spec.win_len &&
                                        1 + (golden.pcm_samples - spec.win_len) / spec.win_step == golden.frame_count,
                                    ESP_ERR_INVALID_ARG, TAG, "%s: front-end self test: inconsistent golden set", name);
    frontend_context ctx = {&golden, name, spec.feature_dim, 0, false};
    frontend.reset();
    /* Pieces of 1, 2, 3, ... up to a frame and a half samples, then again: every split of a frame. */
    const size_t longest = spec.win_len + spec.win_len / 2;
    size_t piece = 1;
    esp_err_t ret = ESP_OK;
    for (size_t at = 0; at < golden.pcm_samples && ret == ESP_OK;) {
        const size_t n = golden.pcm_samples - at < piece ? golden.pcm_samples - at : piece;
        ret = frontend.push(golden.pcm + at, n, compare_features, &ctx);
        at += n;
        piece = piece >= longest ? 1 : piece * 2 + 1;
    }
    const size_t pending = frontend.pending_samples();
    frontend.reset();
    if (ctx.mismatch) {
        return ESP_FAIL;
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(ret);
    const size_t expect_pending = spec.win_len - spec.win_step + (golden.pcm_samples - spec.win_len) % spec.win_step;
    ESPDL_STREAMING_RETURN_ON_FALSE(ctx.frames_seen == golden.frame_count && pending == expect_pending, ESP_FAIL, TAG,
                                    "%s: front-end self test: %lu frames and %lu samples pending, expected %lu and %lu",
                                    name, static_cast<unsigned long>(ctx.frames_seen),
                                    static_cast<unsigned long>(pending), static_cast<unsigned long>(golden.frame_count),
                                    static_cast<unsigned long>(expect_pending));
    ESP_LOGI(TAG, "%s: front-end self test passed (%lu frames)", name, static_cast<unsigned long>(golden.frame_count));
    return ESP_OK;
}

} // namespace espdl_streaming
