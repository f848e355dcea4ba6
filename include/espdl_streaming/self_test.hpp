/*
 * Golden-vector self test: proves on the device that the model, the runner and the chip's
 * rounding reproduce what the host simulator computed, chunk for chunk, bit for bit.
 */
#pragma once

#include <cstdint>

#include "espdl_streaming/audio_frontend.hpp"
#include "espdl_streaming/port.hpp"
#include "espdl_streaming/stream_runner.hpp"
#include "espdl_streaming/types.hpp"

namespace espdl_streaming {

struct golden_set {
    const float *frames;         /* frame_count * feature_dim floats */
    uint32_t frame_count;        /* at least chunk_count * chunk_frames */
    const void *const *expected; /* per output: every chunk's raw values concatenated, output dtype */
    uint32_t chunk_count;
    const char
        *assumes; /* what the golden values were computed for (ESP-DL versions, chip), for the log; may be null */
};

/**
 * Reset, push all golden frames and compare every chunk's raw outputs exactly; then reset,
 * push the first chunk again and compare it (reset must restore the initial state); then reset.
 * The first mismatch is logged (chunk, output, element, expected and actual, and `assumes`).
 *
 * @return ESP_OK, ESP_FAIL on a mismatch, ESP_ERR_INVALID_ARG for an inconsistent golden set,
 *         or the runner's error
 */
[[nodiscard]] esp_err_t run_self_test(stream_runner &runner, const model_spec &spec, const golden_set &golden);

/** The speech front end's golden data: what the build's front end computed from synthesized PCM. */
struct frontend_golden {
    const int16_t *pcm;      /* pcm_samples samples */
    uint32_t pcm_samples;    /* frame_count frames and less than a shift more */
    const float *features;   /* frame_count * feature_dim floats */
    uint32_t frame_count;
    /* A feature passes when |got - want| <= abs_tol + rel_tol * max|want| over its frame: the chip's float
     * FFT and SIMD sums differ from the build's computation (python/espdl_streaming/audio/golden.py). */
    float abs_tol;
    float rel_tol;
};

/**
 * Reset `frontend`, push golden.pcm in pieces of varying sizes and compare every feature frame with
 * golden.features within the tolerance; check the frame count and the samples left pending; reset again.
 * The first mismatch is logged (frame, feature, expected, got, the bound).
 *
 * @return ESP_OK, ESP_FAIL on a mismatch, ESP_ERR_INVALID_ARG for an inconsistent golden set,
 *         ESP_ERR_INVALID_STATE (front end not initialised), or the front end's error
 */
[[nodiscard]] esp_err_t run_frontend_self_test(audio_frontend &frontend, const frontend_golden &golden,
                                               const char *name);

} // namespace espdl_streaming
