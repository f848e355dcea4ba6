/*
 * audio_frontend: PCM pieces of any size to one feature frame per frame shift (audio_frontend.hpp).
 * The extractor is the build's (open_frontend(): src/espdl_frontend.cpp on chips,
 * src/host/frontend_host.cpp on the linux target and host builds).
 */
#include "espdl_streaming/audio_frontend.hpp"

#include <cstring>

namespace espdl_streaming {
namespace {

constexpr const char *TAG = "espdl_streaming";

inline float to_float(float x)
{
    return x;
}

/* ESP-DL's process_frame(const int16_t *) divides by 32768.0f; so does the Python front end. */
inline float to_float(int16_t x)
{
    return static_cast<float>(x) / 32768.0f;
}

} // namespace

esp_err_t audio_frontend::init(const frontend_spec *spec, float *window, size_t window_floats, float *features,
                               size_t feature_floats)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(m_extractor == nullptr, ESP_ERR_INVALID_STATE, TAG,
                                    "audio front end: already initialised");
    ESPDL_STREAMING_RETURN_ON_FALSE(spec != nullptr, ESP_ERR_INVALID_ARG, TAG, "audio front end: null spec");
    feature_extractor *extractor = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(open_frontend(*spec, &extractor));
    const esp_err_t err = init(spec, extractor, window, window_floats, features, feature_floats);
    if (err != ESP_OK) {
        close_frontend(extractor);
        return err;
    }
    m_owned = true;
    return ESP_OK;
}

esp_err_t audio_frontend::init(const frontend_spec *spec, feature_extractor *extractor, float *window,
                               size_t window_floats, float *features, size_t feature_floats)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(m_extractor == nullptr, ESP_ERR_INVALID_STATE, TAG,
                                    "audio front end: already initialised");
    ESPDL_STREAMING_RETURN_ON_FALSE(spec != nullptr && extractor != nullptr && window != nullptr && features != nullptr,
                                    ESP_ERR_INVALID_ARG, TAG, "audio front end: null spec, extractor or buffer");
    ESPDL_STREAMING_RETURN_ON_FALSE(spec->win_len > 0 && spec->win_step > 0 && spec->win_step <= spec->win_len &&
                                        spec->feature_dim > 0,
                                    ESP_ERR_INVALID_ARG, TAG,
                                    "audio front end: frame of %lu samples, shift %lu, %lu features: unusable",
                                    static_cast<unsigned long>(spec->win_len),
                                    static_cast<unsigned long>(spec->win_step),
                                    static_cast<unsigned long>(spec->feature_dim));
    ESPDL_STREAMING_RETURN_ON_FALSE(window_floats >= spec->win_len && feature_floats >= spec->feature_dim,
                                    ESP_ERR_INVALID_ARG, TAG,
                                    "audio front end: buffers of %lu and %lu floats, need %lu and %lu",
                                    static_cast<unsigned long>(window_floats),
                                    static_cast<unsigned long>(feature_floats),
                                    static_cast<unsigned long>(spec->win_len),
                                    static_cast<unsigned long>(spec->feature_dim));
    ESPDL_STREAMING_RETURN_ON_FALSE(
        extractor->win_len() == spec->win_len && extractor->feature_dim() == spec->feature_dim, ESP_ERR_INVALID_ARG,
        TAG,
        "audio front end: the build computed frames of %lu samples and %lu features, this target's front end %lu "
        "and %lu: rebuild the model with this component's tool",
        static_cast<unsigned long>(spec->win_len), static_cast<unsigned long>(spec->feature_dim),
        static_cast<unsigned long>(extractor->win_len()), static_cast<unsigned long>(extractor->feature_dim()));
    m_spec = spec;
    m_extractor = extractor;
    m_owned = false;
    m_window = window;
    m_features = features;
    m_filled = 0;
    return ESP_OK;
}

void audio_frontend::deinit()
{
    if (m_owned) {
        close_frontend(m_extractor);
    }
    m_owned = false;
    m_extractor = nullptr;
    m_spec = nullptr;
    m_window = nullptr;
    m_features = nullptr;
    m_filled = 0;
}

template <typename Sample>
esp_err_t audio_frontend::push_impl(const Sample *pcm, size_t n, feature_callback cb, void *user, size_t *consumed)
{
    if (consumed != nullptr) {
        *consumed = 0;
    }
    ESPDL_STREAMING_RETURN_ON_FALSE(m_extractor != nullptr, ESP_ERR_INVALID_STATE, TAG,
                                    "audio front end: push before init()");
    ESPDL_STREAMING_RETURN_ON_FALSE(cb != nullptr, ESP_ERR_INVALID_ARG, TAG, "audio front end: null callback");
    ESPDL_STREAMING_RETURN_ON_FALSE(pcm != nullptr || n == 0, ESP_ERR_INVALID_ARG, TAG,
                                    "audio front end: null samples (%lu of them)", static_cast<unsigned long>(n));
    const size_t win_len = m_spec->win_len;
    const size_t keep = win_len - m_spec->win_step; /* the overlap with the next frame */
    size_t done = 0;
    while (done < n) {
        const size_t room = win_len - m_filled;
        const size_t take = (n - done) < room ? (n - done) : room;
        float *dst = m_window + m_filled;
        for (size_t i = 0; i < take; ++i) {
            dst[i] = to_float(pcm[done + i]);
        }
        m_filled += take;
        done += take;
        if (m_filled < win_len) {
            break;
        }
        const esp_err_t err = m_extractor->process_frame(m_window, m_features);
        /* The frame's samples are consumed whatever happens next: the window moves on by one shift. */
        std::memmove(m_window, m_window + (win_len - keep), keep * sizeof(float));
        m_filled = keep;
        if (consumed != nullptr) {
            *consumed = done;
        }
        ESPDL_STREAMING_RETURN_ON_ERROR(err);
        ESPDL_STREAMING_RETURN_ON_ERROR(cb(m_features, user));
    }
    if (consumed != nullptr) {
        *consumed = n;
    }
    return ESP_OK;
}

esp_err_t audio_frontend::push(const int16_t *pcm, size_t n, feature_callback cb, void *user, size_t *consumed)
{
    return push_impl(pcm, n, cb, user, consumed);
}

esp_err_t audio_frontend::push(const float *pcm, size_t n, feature_callback cb, void *user, size_t *consumed)
{
    return push_impl(pcm, n, cb, user, consumed);
}

} // namespace espdl_streaming
