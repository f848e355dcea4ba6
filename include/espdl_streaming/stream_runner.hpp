/*
 * Turns any stream of float frames into chunked model runs.
 *
 * The caller owns every buffer; init(), push() and reset() never allocate. Not thread safe:
 * one runner per model instance, driven from one task.
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include "espdl_streaming/model_interface.hpp"
#include "espdl_streaming/port.hpp"
#include "espdl_streaming/types.hpp"

namespace espdl_streaming {

/** One finished chunk, handed to the callback; everything is valid only during the call. */
struct chunk_result {
    uint32_t chunk_index;        /* 0 for the first chunk after init()/reset() */
    const float *const *outputs; /* dequantized (a float32 output as it is), per output in name order */
    const tensor_ref *raw;       /* the model's raw outputs (quantized integers, or float32), same order */
    uint32_t output_count;
};

/** Called once per chunk; a non-ESP_OK return stops push() and is returned by it. */
using chunk_callback = esp_err_t (*)(const chunk_result &result, void *user);

class stream_runner {
public:
    stream_runner() = default;
    stream_runner(const stream_runner &) = delete;
    stream_runner &operator=(const stream_runner &) = delete;

    /**
     * Bind a loaded model and the caller's buffers, after checking the model against `spec`
     * (the stream input, the recurrent states, every tensor's dtype, exponent, element count and
     * shape; input and output counts).
     *
     * @param staging        chunk_frames * feature_dim elements of the input dtype
     * @param output_buffers spec->output_count pointers, each to outputs[i].elements floats
     * @param raw_refs       spec->output_count entries, filled after every run
     * @param state_storage  state_storage_bytes(*spec) bytes holding the recurrent state between
     *                       chunks (null when the model has none)
     * @return ESP_OK, ESP_ERR_INVALID_ARG (null or too small buffers, inconsistent spec),
     *         ESP_ERR_INVALID_SIZE (model does not match the spec; logged), or the model's error
     */
    [[nodiscard]] esp_err_t init(model_interface *model, const model_spec *spec, void *staging, size_t staging_bytes,
                                 float *const *output_buffers, tensor_ref *raw_refs, void *state_storage = nullptr,
                                 size_t state_bytes = 0);

    /**
     * Feed `frame_count` frames (frame-major, feature_dim floats each); 0 frames is allowed.
     * Frames that do not fill a chunk are kept for the next call. For every completed chunk
     * the model runs and `cb` (may be null) gets the outputs.
     *
     * @param consumed optional: frames of this call taken into the stream. Equals frame_count
     *                 on success. When `cb` fails, it counts up to and including the last frame
     *                 of the chunk passed to `cb`: the rest was not consumed, push it again to
     *                 continue. When the model fails, that chunk's frames count as consumed and
     *                 the chunk is dropped; the model state is then undefined: call reset().
     * @return ESP_OK, ESP_ERR_INVALID_ARG (null frames with frame_count > 0),
     *         ESP_ERR_INVALID_STATE (not initialised), the model's or the callback's error
     */
    [[nodiscard]] esp_err_t push(const float *frames, size_t frame_count, chunk_callback cb, void *user,
                                 size_t *consumed = nullptr);

    /** Drop the partial chunk, restart chunk numbering, restore the recurrent state's initial value
     *  (zeros, or the learned initial state of the spec) and reset the model's streaming caches. */
    [[nodiscard]] esp_err_t reset();

    /** Forget the model and buffers (does not close the model); init() may be called again. */
    void deinit();

    bool initialized() const { return m_model != nullptr; }
    size_t pending_frames() const { return m_pending; }
    uint32_t chunks_run() const { return m_chunks; }

private:
    esp_err_t run_chunk(chunk_callback cb, void *user);
    esp_err_t copy_state(bool to_model);
    void restore_initial_state();

    model_interface *m_model = nullptr;
    const model_spec *m_spec = nullptr;
    uint8_t *m_staging = nullptr;
    float *const *m_outputs = nullptr;
    tensor_ref *m_raw = nullptr;
    uint8_t *m_state = nullptr;
    size_t m_state_bytes = 0;
    size_t m_pending = 0;
    uint32_t m_chunks = 0;
};

} // namespace espdl_streaming
