/*
 * PCM in, feature frames out: ESP-DL's speech front end (dl::audio::Fbank / MFCC / Spectrogram)
 * driven sample by sample, as a generated class's push_samples() does.
 *
 * frontend_spec is the SpeechFeatureConfig the build validated (FRONTEND and its options) plus
 * what the build computed from it. The feature computation depends on the build:
 *
 * - chips: ESP-DL's dl::audio classes (src/espdl_frontend.cpp; ESP-DL >= 3.3);
 * - ESP-IDF's linux target and host builds: the host engine's port of them
 *   (src/host/frontend/speech_frontend.cpp), the same computation as the build-time Python
 *   front end (python/espdl_streaming/audio/frontend.py).
 *
 * audio_frontend keeps the samples of the unfinished frame (the frame overlap; ESP-DL's
 * pre-emphasis works inside a frame, so that is all the history it needs) and computes one
 * feature frame per frame shift, whatever the sizes of the pieces pushed. The caller owns the
 * window and feature buffers; init() opens the feature extractor (its tables are allocated there);
 * push() and reset() never allocate. Not thread safe.
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include "espdl_streaming/port.hpp"

namespace espdl_streaming {

enum class frontend_kind : uint8_t { fbank, mfcc, spectrogram };

/* ESP-DL's WinType, same meanings (hann: the periodic torch.hann_window). */
enum class frontend_window : uint8_t { hanning, hann, sine, hamming, povey, rectangular, blackman, none };

/** The front end a model was built with: dl::audio::SpeechFeatureConfig's fields, plus derived sizes. */
struct frontend_spec {
    frontend_kind kind;
    int sample_rate;  /* Hz */
    int frame_length; /* ms */
    int frame_shift;  /* ms */
    int num_mel_bins;
    int num_ceps;
    float preemphasis;
    float cepstral_lifter;
    frontend_window window;
    float low_freq;
    float high_freq; /* <= 0: Nyquist */
    float log_epsilon;
    int use_log_fbank; /* 0: linear, 1: log(max(x, eps)), 2: log(x + eps) */
    bool raw_energy;
    bool use_power;
    bool use_energy;
    bool remove_dc_offset;
    /* What the build computed from the fields above; init() checks that the extractor agrees. */
    uint32_t win_len;     /* samples per frame */
    uint32_t win_step;    /* samples per frame shift */
    uint32_t feature_dim; /* floats per feature frame */
    /* Heap dl::audio's constructors allocate for this configuration (python/espdl_streaming/audio/cost.py,
     * the report's frontend.cost): on chips open_frontend() checks that the heap can hold it, since ESP-DL's
     * constructors report no allocation failure. 0: not checked. */
    uint32_t init_heap_bytes;
};

/** One frame of win_len float samples (PCM in [-1, 1)) to feature_dim floats: the build's backend. */
class feature_extractor {
public:
    virtual ~feature_extractor() = default;
    virtual uint32_t win_len() const = 0;
    virtual uint32_t feature_dim() const = 0;
    /** `frame` is not modified; `out` gets feature_dim() floats. Never allocates. */
    [[nodiscard]] virtual esp_err_t process_frame(const float *frame, float *out) = 0;
};

/**
 * Open the backend's feature extractor for `spec`; release it with close_frontend().
 *
 * @return ESP_OK, ESP_ERR_INVALID_ARG (a configuration the backend cannot run), ESP_ERR_NO_MEM,
 *         ESP_ERR_NOT_SUPPORTED (no front end in this build: ESP-DL older than 3.3, or a
 *         runtime-only build)
 */
[[nodiscard]] esp_err_t open_frontend(const frontend_spec &spec, feature_extractor **out);

/** Release what open_frontend() returned; null is ignored. */
void close_frontend(feature_extractor *extractor);

/** Called once per feature frame (feature_dim floats, valid during the call); a non-ESP_OK return stops push(). */
using feature_callback = esp_err_t (*)(const float *features, void *user);

class audio_frontend {
public:
    audio_frontend() = default;
    ~audio_frontend() { deinit(); }
    audio_frontend(const audio_frontend &) = delete;
    audio_frontend &operator=(const audio_frontend &) = delete;

    /**
     * Open the extractor for `spec` (open_frontend()) and bind the caller's buffers.
     *
     * @param window   spec->win_len floats: the frame being filled
     * @param features spec->feature_dim floats: the frame handed to the callback
     * @return ESP_OK, ESP_ERR_INVALID_ARG (null or too small buffers, a spec whose sizes the
     *         extractor does not reproduce; logged), ESP_ERR_INVALID_STATE (already initialised),
     *         open_frontend()'s errors
     */
    [[nodiscard]] esp_err_t init(const frontend_spec *spec, float *window, size_t window_floats, float *features,
                                 size_t feature_floats);

    /** The same with a given extractor (tests, other front ends): not owned, must outlive this object. */
    [[nodiscard]] esp_err_t init(const frontend_spec *spec, feature_extractor *extractor, float *window,
                                 size_t window_floats, float *features, size_t feature_floats);

    /**
     * Feed `n` samples (int16 PCM, scaled by 1/32768 as ESP-DL's process_frame(const int16_t *)
     * does); any n, 0 included. Every completed frame goes to `cb`; the samples of an unfinished
     * frame are kept for the next call.
     *
     * @param consumed optional: samples of this call taken into the stream. Equals n on success;
     *                 when `cb` fails, it counts up to and including the sample that completed the
     *                 frame passed to `cb`: push the rest again to continue.
     * @return ESP_OK, ESP_ERR_INVALID_ARG (null pcm with n > 0, null cb), ESP_ERR_INVALID_STATE
     *         (not initialised), the extractor's or the callback's error
     */
    [[nodiscard]] esp_err_t push(const int16_t *pcm, size_t n, feature_callback cb, void *user,
                                 size_t *consumed = nullptr);
    /** The same for float PCM in [-1, 1). */
    [[nodiscard]] esp_err_t push(const float *pcm, size_t n, feature_callback cb, void *user,
                                 size_t *consumed = nullptr);

    /** Forget the samples of the unfinished frame: the next sample starts a new stream. */
    void reset() { m_filled = 0; }

    /** Close the extractor (when init() opened it); init() may be called again. */
    void deinit();

    bool initialized() const { return m_extractor != nullptr; }
    /** Samples held for the unfinished frame. */
    size_t pending_samples() const { return m_filled; }
    const frontend_spec *spec() const { return m_spec; }

private:
    template <typename Sample>
    esp_err_t push_impl(const Sample *pcm, size_t n, feature_callback cb, void *user, size_t *consumed);

    const frontend_spec *m_spec = nullptr;
    feature_extractor *m_extractor = nullptr;
    bool m_owned = false; /* m_extractor came from open_frontend() */
    float *m_window = nullptr;
    float *m_features = nullptr;
    size_t m_filled = 0;
};

} // namespace espdl_streaming
