/*
 * Golden-vector self test: proves on the device that the model, the runner and the chip's
 * rounding reproduce what the host simulator computed, chunk for chunk, bit for bit.
 */
#pragma once

#include <cstdint>

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

} // namespace espdl_streaming
