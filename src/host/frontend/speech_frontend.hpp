/*
 * ESP-DL's speech front end (dl::audio::Fbank / MFCC / Spectrogram, ESP-DL 3.3) for host builds.
 *
 * The same computation as python/espdl_streaming/audio/frontend.py, in the same float order of
 * operations as ESP-DL's portable C++ (sequential float sums, tables built with the same
 * float/double conversions). Deliberate differences from the chip, shared with the Python version
 * (the two agree bit for bit on the tests' signals): the FFT is computed in double and rounded to
 * float (ESP-DL: float32 radix-2/4 FFT), libm's logf/cosf/sinf/powf are modelled as correctly
 * rounded (newlib's may differ in the last bit), and ESP32-S3/P4 builds of ESP-DL sum their dot
 * products with SIMD in another order.
 *
 * Configuration is checked by the Python tool at build time (FrontendConfig.validate(), with the
 * messages); init() repeats the checks that keep this code memory-safe and returns
 * ESP_ERR_INVALID_ARG for any of them. All memory is allocated by init(); process_frame() never
 * allocates.
 *
 * This computes one frame at a time. Cutting a stream of PCM pieces into frames is the runtime's
 * job: audio_frontend (include/espdl_streaming/audio_frontend.hpp, src/audio_frontend.cpp) drives
 * this class through open_frontend() (src/host/frontend_host.cpp) on host builds, as it drives
 * ESP-DL's dl::audio on chips; host/espdl_features.cpp runs that pair on files for the tests.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "espdl_streaming/port.hpp"

namespace espdl_streaming::host::frontend {

enum class feature_kind : uint8_t { fbank, mfcc, spectrogram };

/* The windows of ESP-DL's WinType, same meanings (hann is the periodic torch.hann_window). */
enum class window_type : uint8_t { hanning, hann, sine, hamming, povey, rectangular, blackman, none };

/* SpeechFeatureConfig with ESP-DL's defaults, plus the feature kind. */
struct frontend_config {
    feature_kind kind = feature_kind::fbank;
    int sample_rate = 16000;
    int frame_length = 25; /* ms */
    int frame_shift = 10;  /* ms */
    int num_mel_bins = 26;
    int num_ceps = 13;
    float preemphasis = 0.97f;
    float cepstral_lifter = 22.0f;
    window_type window = window_type::hanning;
    float low_freq = 80.0f;
    float high_freq = 0.0f; /* <= 0: Nyquist */
    float log_epsilon = 1.1920928955078125e-07f;
    int use_log_fbank = 1; /* 0: linear, 1: log(max(x, eps)), 2: log(x + eps) */
    bool raw_energy = true;
    bool use_power = true;
    bool use_energy = false;
    bool remove_dc_offset = true;
};

class speech_frontend {
public:
    speech_frontend() = default;
    speech_frontend(const speech_frontend &) = delete;
    speech_frontend &operator=(const speech_frontend &) = delete;

    /* Builds the tables and buffers; ESP_ERR_INVALID_ARG for a configuration it cannot run,
     * ESP_ERR_NO_MEM if an allocation fails. */
    esp_err_t init(const frontend_config &config);

    int win_len() const { return m_win_len; }
    int win_step() const { return m_win_step; }
    int fft_size() const { return m_fft_size; }
    int feature_dim() const { return m_feature_dim; }

    /* One frame of win_len() samples (float PCM in [-1, 1)) to feature_dim() floats; `frame` is not
     * modified. */
    esp_err_t process_frame(const float *frame, float *out);

private:
    esp_err_t build_mel_filters();
    void fft_power(float *x);

    frontend_config m_cfg{};
    bool m_ready = false;
    int m_win_len = 0;
    int m_win_step = 0;
    int m_fft_size = 0;
    int m_feat_width = 0;
    int m_feature_dim = 0;
    int m_mel_total = 0;

    std::unique_ptr<float[]> m_window;   /* win_len, or null for window_type::none */
    std::unique_ptr<float[]> m_mel_coeff; /* all filters' positive weights, back to back */
    std::unique_ptr<int[]> m_mel_pos;     /* per filter: first FFT bin, weight count */
    std::unique_ptr<float[]> m_dct;       /* num_ceps x num_mel_bins */
    std::unique_ptr<float[]> m_lifter;    /* num_ceps, or null */
    std::unique_ptr<double[]> m_twiddle;  /* fft_size / 2 complex */
    std::unique_ptr<int[]> m_bitrev;      /* fft_size */
    std::unique_ptr<double[]> m_fft;      /* fft_size complex */
    std::unique_ptr<float[]> m_work;      /* fft_size */
    std::unique_ptr<float[]> m_mel;       /* num_mel_bins */
};

} // namespace espdl_streaming::host::frontend
