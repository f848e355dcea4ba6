/*
 * open_frontend() on chips: ESP-DL's speech front end, dl::audio::Fbank / MFCC / Spectrogram
 * (ESP-DL >= 3.3, esp-dl/audio/). The build-time Python front end follows the same C++ sources;
 * the self test bounds the difference (float FFT and SIMD sums on the chip) by the tolerance the
 * build recorded.
 *
 * ESP-DL's constructors allocate their tables and report no failure, so open_frontend() first
 * checks that the heap can hold them: frontend_spec::init_heap_bytes, what the build counted
 * (audio/cost.py), and the FFT buffer's block of internal RAM. The int16 FFT (use_int16_fft) is not used: the build-time
 * front end models the float one.
 */
#include "espdl_streaming/audio_frontend.hpp"

#include <new>

#if __has_include("dl_fbank.hpp")
#include "dl_fbank.hpp"
#include "dl_mfcc.hpp"
#include "dl_spectrogram.hpp"
#include "esp_heap_caps.h"
#define ESPDL_STREAMING_HAS_DL_AUDIO 1
#else
#define ESPDL_STREAMING_HAS_DL_AUDIO 0
#endif
#if defined(ESPDL_STREAMING_REQUIRE_DL_AUDIO) && !ESPDL_STREAMING_HAS_DL_AUDIO
#error "dl_fbank.hpp not found: ESP-DL >= 3.3 with its audio/ include directories (and dl_fft) is required"
#endif

namespace espdl_streaming {
namespace {

constexpr const char *TAG = "espdl_streaming";

#if ESPDL_STREAMING_HAS_DL_AUDIO

bool to_win_type(frontend_window w, dl::audio::WinType *out)
{
    switch (w) {
    case frontend_window::hanning:
        *out = dl::audio::WinType::HANNING;
        return true;
    case frontend_window::hann:
        *out = dl::audio::WinType::HANN;
        return true;
    case frontend_window::sine:
        *out = dl::audio::WinType::SINE;
        return true;
    case frontend_window::hamming:
        *out = dl::audio::WinType::HAMMING;
        return true;
    case frontend_window::povey:
        *out = dl::audio::WinType::POVEY;
        return true;
    case frontend_window::rectangular:
        *out = dl::audio::WinType::RECTANGULAR;
        return true;
    case frontend_window::blackman:
        *out = dl::audio::WinType::BLACKMAN;
        return true;
    case frontend_window::none:
        *out = dl::audio::WinType::NONE;
        return true;
    }
    return false;
}

/* dl::audio's frame and feature sizes are protected members: read them through a subclass. */
template <typename Features>
class sized final : public Features {
public:
    using Features::Features;
    uint32_t frame_samples() const { return static_cast<uint32_t>(this->m_win_len); }
    uint32_t features() const { return static_cast<uint32_t>(this->m_feature_dim); }
    uint32_t fft_points() const { return static_cast<uint32_t>(this->m_fft_size); }
};

template <typename Features>
class espdl_extractor final : public feature_extractor {
public:
    explicit espdl_extractor(const dl::audio::SpeechFeatureConfig &config) : m_features(config) {}
    uint32_t win_len() const override { return m_features.frame_samples(); }
    uint32_t feature_dim() const override { return m_features.features(); }
    esp_err_t process_frame(const float *frame, float *out) override
    {
        /* `prev` is ignored by ESP-DL 3.3 (pre-emphasis replicates the frame's first sample). */
        return m_features.process_frame(frame, static_cast<int>(m_features.frame_samples()), out, frame[0]);
    }

private:
    sized<Features> m_features;
};

template <typename Features>
esp_err_t open_as(const dl::audio::SpeechFeatureConfig &config, uint32_t fft_size, feature_extractor **out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(heap_caps_get_largest_free_block(MALLOC_CAP_INTERNAL | MALLOC_CAP_8BIT) >=
                                        sizeof(float) * fft_size,
                                    ESP_ERR_NO_MEM, TAG,
                                    "audio front end: no internal RAM block of %lu bytes for dl::audio's FFT cache",
                                    static_cast<unsigned long>(sizeof(float) * fft_size));
    auto *extractor = new (std::nothrow) espdl_extractor<Features>(config);
    ESPDL_STREAMING_RETURN_ON_FALSE(extractor != nullptr, ESP_ERR_NO_MEM, TAG, "audio front end: out of memory");
    *out = extractor;
    return ESP_OK;
}

#endif

} // namespace

esp_err_t open_frontend(const frontend_spec &spec, feature_extractor **out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(out != nullptr, ESP_ERR_INVALID_ARG, TAG, "open_frontend: null out");
    *out = nullptr;
#if ESPDL_STREAMING_HAS_DL_AUDIO
    dl::audio::SpeechFeatureConfig config;
    config.sample_rate = spec.sample_rate;
    config.frame_length = spec.frame_length;
    config.frame_shift = spec.frame_shift;
    config.num_mel_bins = spec.num_mel_bins;
    config.num_ceps = spec.num_ceps;
    config.preemphasis = spec.preemphasis;
    config.cepstral_lifter = spec.cepstral_lifter;
    ESPDL_STREAMING_RETURN_ON_FALSE(to_win_type(spec.window, &config.window_type), ESP_ERR_INVALID_ARG, TAG,
                                    "audio front end: unknown window %d", static_cast<int>(spec.window));
    config.low_freq = spec.low_freq;
    config.high_freq = spec.high_freq;
    config.log_epsilon = spec.log_epsilon;
    config.use_log_fbank = spec.use_log_fbank;
    config.raw_energy = spec.raw_energy;
    config.use_power = spec.use_power;
    config.use_energy = spec.use_energy;
    config.use_int16_fft = false;
    config.remove_dc_offset = spec.remove_dc_offset;
    ESPDL_STREAMING_RETURN_ON_FALSE(spec.win_len >= 2 && spec.win_step >= 1, ESP_ERR_INVALID_ARG, TAG,
                                    "audio front end: frame of %lu samples", static_cast<unsigned long>(spec.win_len));
    uint32_t fft_size = 1;
    while (fft_size < spec.win_len) {
        fft_size <<= 1;
    }
    ESPDL_STREAMING_RETURN_ON_FALSE(heap_caps_get_free_size(MALLOC_CAP_DEFAULT) >= spec.init_heap_bytes, ESP_ERR_NO_MEM,
                                    TAG, "audio front end: dl::audio allocates %lu bytes of heap, %lu free",
                                    static_cast<unsigned long>(spec.init_heap_bytes),
                                    static_cast<unsigned long>(heap_caps_get_free_size(MALLOC_CAP_DEFAULT)));
    switch (spec.kind) {
    case frontend_kind::fbank:
        return open_as<dl::audio::Fbank>(config, fft_size, out);
    case frontend_kind::mfcc:
        return open_as<dl::audio::MFCC>(config, fft_size, out);
    case frontend_kind::spectrogram:
        return open_as<dl::audio::Spectrogram>(config, fft_size, out);
    }
    ESP_LOGE(TAG, "audio front end: unknown kind %d", static_cast<int>(spec.kind));
    return ESP_ERR_INVALID_ARG;
#else
    (void)spec;
    ESP_LOGE(TAG, "audio front end: this ESP-DL has no dl::audio (speech features need ESP-DL >= 3.3)");
    return ESP_ERR_NOT_SUPPORTED;
#endif
}

void close_frontend(feature_extractor *extractor)
{
    delete extractor;
}

} // namespace espdl_streaming
