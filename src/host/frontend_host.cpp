/*
 * open_frontend() for ESP-IDF's linux target and host builds: the host engine's port of ESP-DL's
 * speech front end (frontend/speech_frontend.cpp), in place of dl::audio (src/espdl_frontend.cpp).
 */
#include <new>

#include "espdl_streaming/audio_frontend.hpp"
#include "frontend/speech_frontend.hpp"

namespace espdl_streaming {
namespace {

constexpr const char *TAG = "espdl_streaming";

namespace fe = host::frontend;

class host_extractor final : public feature_extractor {
public:
    esp_err_t init(const frontend_spec &s)
    {
        fe::frontend_config c;
        c.kind = static_cast<fe::feature_kind>(static_cast<uint8_t>(s.kind));
        c.sample_rate = s.sample_rate;
        c.frame_length = s.frame_length;
        c.frame_shift = s.frame_shift;
        c.num_mel_bins = s.num_mel_bins;
        c.num_ceps = s.num_ceps;
        c.preemphasis = s.preemphasis;
        c.cepstral_lifter = s.cepstral_lifter;
        c.window = static_cast<fe::window_type>(static_cast<uint8_t>(s.window));
        c.low_freq = s.low_freq;
        c.high_freq = s.high_freq;
        c.log_epsilon = s.log_epsilon;
        c.use_log_fbank = s.use_log_fbank;
        c.raw_energy = s.raw_energy;
        c.use_power = s.use_power;
        c.use_energy = s.use_energy;
        c.remove_dc_offset = s.remove_dc_offset;
        return m_frontend.init(c);
    }

    uint32_t win_len() const override { return static_cast<uint32_t>(m_frontend.win_len()); }
    uint32_t feature_dim() const override { return static_cast<uint32_t>(m_frontend.feature_dim()); }
    esp_err_t process_frame(const float *frame, float *out) override { return m_frontend.process_frame(frame, out); }

private:
    fe::speech_frontend m_frontend;
};

/* The two enums are one list each, in the same order. */
static_assert(static_cast<uint8_t>(frontend_kind::spectrogram) == static_cast<uint8_t>(fe::feature_kind::spectrogram));
static_assert(static_cast<uint8_t>(frontend_window::none) == static_cast<uint8_t>(fe::window_type::none));
static_assert(static_cast<uint8_t>(frontend_window::povey) == static_cast<uint8_t>(fe::window_type::povey));

} // namespace

esp_err_t open_frontend(const frontend_spec &spec, feature_extractor **out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(out != nullptr, ESP_ERR_INVALID_ARG, TAG, "open_frontend: null out");
    *out = nullptr;
    auto *extractor = new (std::nothrow) host_extractor();
    ESPDL_STREAMING_RETURN_ON_FALSE(extractor != nullptr, ESP_ERR_NO_MEM, TAG, "open_frontend: out of memory");
    const esp_err_t err = extractor->init(spec);
    if (err != ESP_OK) {
        delete extractor;
        return err;
    }
    *out = extractor;
    return ESP_OK;
}

void close_frontend(feature_extractor *extractor)
{
    delete extractor;
}

} // namespace espdl_streaming
