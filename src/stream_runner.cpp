/*
 * Chunking, quantization and model checks of the stream runner. No allocation anywhere.
 */
#include "espdl_streaming/stream_runner.hpp"

#include <cstdio>
#include <cstring>

#include "espdl_streaming/quantize.hpp"

namespace espdl_streaming {
namespace {

constexpr const char *TAG = "espdl_streaming";

/* Append "[a, b, c]" to buf, truncating silently. */
void format_shape(char *buf, size_t len, uint8_t ndim, const int32_t *shape)
{
    size_t used = 0;
    auto put = [&](const char *s) {
        while (*s != '\0' && used + 1 < len) {
            buf[used++] = *s++;
        }
    };
    put("[");
    for (uint8_t i = 0; i < ndim && i < max_ndim; ++i) {
        char num[16];
        std::snprintf(num, sizeof(num), i == 0 ? "%ld" : ", %ld", static_cast<long>(shape[i]));
        put(num);
    }
    put(ndim > max_ndim ? ", ...]" : "]");
    buf[used] = '\0';
}

/* Compare what the engine reports with what the generated code expects; log every difference. */
esp_err_t check_tensor(const model_spec &spec, const char *role, const tensor_spec &want, const tensor_ref &got)
{
    esp_err_t ret = ESP_OK;
    if (got.type != want.type) {
        ESP_LOGE(TAG, "%s: %s '%s': dtype expected %s, model has %s", spec.name, role, want.name, dtype_name(want.type),
                 dtype_name(got.type));
        ret = ESP_ERR_INVALID_SIZE;
    }
    /* A float32 tensor holds real values: whatever exponent ESP-DL records for it scales nothing. */
    if (got.exponent != want.exponent && !(dtype_is_float(want.type) && got.type == want.type)) {
        ESP_LOGE(TAG, "%s: %s '%s': exponent expected %d, model has %d", spec.name, role, want.name,
                 static_cast<int>(want.exponent), got.exponent);
        ret = ESP_ERR_INVALID_SIZE;
    }
    bool same_shape = got.ndim == want.ndim && got.elements == want.elements;
    for (uint8_t i = 0; same_shape && i < want.ndim && i < max_ndim; ++i) {
        same_shape = got.shape[i] == want.shape[i];
    }
    if (!same_shape) {
        char want_shape[64];
        char got_shape[64];
        format_shape(want_shape, sizeof(want_shape), want.ndim, want.shape);
        format_shape(got_shape, sizeof(got_shape), got.ndim, got.shape);
        ESP_LOGE(TAG, "%s: %s '%s': shape expected %s (%lu elements), model has %s (%lu elements)", spec.name, role,
                 want.name, want_shape, static_cast<unsigned long>(want.elements), got_shape,
                 static_cast<unsigned long>(got.elements));
        ret = ESP_ERR_INVALID_SIZE;
    }
    if (got.data == nullptr) {
        ESP_LOGE(TAG, "%s: %s '%s' has no buffer", spec.name, role, want.name);
        ret = ESP_ERR_INVALID_STATE;
    }
    return ret;
}

esp_err_t check_spec(const model_spec &spec)
{
    const uint32_t chunk_elements = spec.chunk_frames * spec.feature_dim;
    ESPDL_STREAMING_RETURN_ON_FALSE(spec.chunk_frames > 0 && spec.feature_dim > 0, ESP_ERR_INVALID_ARG, TAG,
                                    "%s: chunk_frames and feature_dim must be positive", spec.name);
    ESPDL_STREAMING_RETURN_ON_FALSE(spec.input.elements == chunk_elements, ESP_ERR_INVALID_ARG, TAG,
                                    "%s: input '%s' has %lu elements, chunk_frames * feature_dim is %lu", spec.name,
                                    spec.input.name, static_cast<unsigned long>(spec.input.elements),
                                    static_cast<unsigned long>(chunk_elements));
    ESPDL_STREAMING_RETURN_ON_FALSE(spec.output_count == 0 || spec.outputs != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                    "%s: outputs missing from the spec", spec.name);
    ESPDL_STREAMING_RETURN_ON_FALSE(spec.state_count == 0 || spec.states != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                    "%s: states missing from the spec", spec.name);
    /* The runner quantizes the input and carries raw state integers: only model outputs may be float32. */
    ESPDL_STREAMING_RETURN_ON_FALSE(!dtype_is_float(spec.input.type), ESP_ERR_NOT_SUPPORTED, TAG,
                                    "%s: input '%s' is %s; the runner quantizes frames to int8 or int16", spec.name,
                                    spec.input.name, dtype_name(spec.input.type));
    for (uint32_t i = 0; i < spec.state_count; ++i) {
        const state_spec &st = spec.states[i];
        ESPDL_STREAMING_RETURN_ON_FALSE(!dtype_is_float(st.output.type), ESP_ERR_NOT_SUPPORTED, TAG,
                                        "%s: state '%s' is %s; recurrent states are int8 or int16", spec.name,
                                        st.output.name, dtype_name(st.output.type));
        ESPDL_STREAMING_RETURN_ON_FALSE(st.input.type == st.output.type && st.input.elements == st.output.elements,
                                        ESP_ERR_INVALID_ARG, TAG, "%s: state '%s' and '%s' differ in dtype or size",
                                        spec.name, st.input.name, st.output.name);
    }
    return ESP_OK;
}

/* Model output of spec output i. */
uint32_t output_slot(const model_spec &spec, uint32_t i)
{
    return spec.output_indices != nullptr ? spec.output_indices[i] : i;
}

} // namespace

esp_err_t stream_runner::init(model_interface *model, const model_spec *spec, void *staging, size_t staging_bytes,
                              float *const *output_buffers, tensor_ref *raw_refs, void *state_storage,
                              size_t state_bytes)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(model != nullptr && spec != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                    "init: model and spec are required");
    deinit();
    ESPDL_STREAMING_RETURN_ON_ERROR(check_spec(*spec));
    const size_t need = static_cast<size_t>(spec->input.elements) * dtype_size(spec->input.type);
    ESPDL_STREAMING_RETURN_ON_FALSE(staging != nullptr && staging_bytes >= need, ESP_ERR_INVALID_ARG, TAG,
                                    "%s: staging buffer needs %lu bytes, got %lu", spec->name,
                                    static_cast<unsigned long>(need), static_cast<unsigned long>(staging_bytes));
    ESPDL_STREAMING_RETURN_ON_FALSE(spec->output_count == 0 || (output_buffers != nullptr && raw_refs != nullptr),
                                    ESP_ERR_INVALID_ARG, TAG, "%s: output buffers are required", spec->name);
    for (uint32_t i = 0; i < spec->output_count; ++i) {
        ESPDL_STREAMING_RETURN_ON_FALSE(output_buffers[i] != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                        "%s: output buffer %lu is null", spec->name, static_cast<unsigned long>(i));
    }

    const size_t need_state = state_storage_bytes(*spec);
    ESPDL_STREAMING_RETURN_ON_FALSE(need_state == 0 || (state_storage != nullptr && state_bytes >= need_state),
                                    ESP_ERR_INVALID_ARG, TAG, "%s: recurrent state storage needs %lu bytes, got %lu",
                                    spec->name, static_cast<unsigned long>(need_state),
                                    static_cast<unsigned long>(state_storage != nullptr ? state_bytes : 0));

    const uint32_t inputs = 1 + spec->state_count;
    /* A state output may also be a user output (a last state the user's model returns). */
    uint32_t outputs = spec->output_count;
    for (uint32_t s = 0; s < spec->state_count; ++s) {
        bool shared = false;
        for (uint32_t i = 0; i < spec->output_count && !shared; ++i) {
            shared = output_slot(*spec, i) == spec->states[s].output_index;
        }
        outputs += shared ? 0 : 1;
    }
    ESPDL_STREAMING_RETURN_ON_FALSE(model->input_count() == inputs, ESP_ERR_INVALID_SIZE, TAG,
                                    "%s: expected %lu input(s) (the stream and %lu recurrent state(s)), model has %lu",
                                    spec->name, static_cast<unsigned long>(inputs),
                                    static_cast<unsigned long>(spec->state_count),
                                    static_cast<unsigned long>(model->input_count()));
    ESPDL_STREAMING_RETURN_ON_FALSE(model->output_count() == outputs, ESP_ERR_INVALID_SIZE, TAG,
                                    "%s: expected %lu outputs, model has %lu", spec->name,
                                    static_cast<unsigned long>(outputs),
                                    static_cast<unsigned long>(model->output_count()));
    esp_err_t ret = ESP_OK;
    tensor_ref ref = {};
    ESPDL_STREAMING_RETURN_ON_ERROR(model->input(spec->input_index, &ref));
    if (check_tensor(*spec, "input", spec->input, ref) != ESP_OK) {
        ret = ESP_ERR_INVALID_SIZE;
    }
    for (uint32_t i = 0; i < spec->output_count; ++i) {
        ref = {};
        ESPDL_STREAMING_RETURN_ON_ERROR(model->output(output_slot(*spec, i), &ref));
        if (check_tensor(*spec, "output", spec->outputs[i], ref) != ESP_OK) {
            ret = ESP_ERR_INVALID_SIZE;
        }
    }
    for (uint32_t i = 0; i < spec->state_count; ++i) {
        const state_spec &st = spec->states[i];
        ref = {};
        ESPDL_STREAMING_RETURN_ON_ERROR(model->input(st.input_index, &ref));
        if (check_tensor(*spec, "state input", st.input, ref) != ESP_OK) {
            ret = ESP_ERR_INVALID_SIZE;
        }
        ref = {};
        ESPDL_STREAMING_RETURN_ON_ERROR(model->output(st.output_index, &ref));
        if (check_tensor(*spec, "state output", st.output, ref) != ESP_OK) {
            ret = ESP_ERR_INVALID_SIZE;
        }
    }
    if (ret != ESP_OK) {
        ESP_LOGE(TAG,
                 "%s: the loaded model does not match the generated code; rebuild so both come from the "
                 "same .espdl",
                 spec->name);
        return ret;
    }

    m_model = model;
    m_spec = spec;
    m_staging = static_cast<uint8_t *>(staging);
    m_outputs = output_buffers;
    m_raw = raw_refs;
    m_state = need_state > 0 ? static_cast<uint8_t *>(state_storage) : nullptr;
    m_state_bytes = need_state;
    restore_initial_state();
    m_pending = 0;
    m_chunks = 0;
    return ESP_OK;
}

void stream_runner::deinit()
{
    m_model = nullptr;
    m_spec = nullptr;
    m_staging = nullptr;
    m_outputs = nullptr;
    m_raw = nullptr;
    m_state = nullptr;
    m_state_bytes = 0;
    m_pending = 0;
    m_chunks = 0;
}

esp_err_t stream_runner::push(const float *frames, size_t frame_count, chunk_callback cb, void *user, size_t *consumed)
{
    if (consumed != nullptr) {
        *consumed = 0;
    }
    ESPDL_STREAMING_RETURN_ON_FALSE(m_model != nullptr, ESP_ERR_INVALID_STATE, TAG, "push: runner not initialised");
    ESPDL_STREAMING_RETURN_ON_FALSE(frames != nullptr || frame_count == 0, ESP_ERR_INVALID_ARG, TAG,
                                    "%s: push: frames is null", m_spec->name);

    const model_spec &spec = *m_spec;
    const size_t frame_bytes = spec.feature_dim * dtype_size(spec.input.type);
    size_t done = 0;
    while (done < frame_count) {
        const size_t room = spec.chunk_frames - m_pending;
        const size_t take = frame_count - done < room ? frame_count - done : room;
        quantize(frames + done * spec.feature_dim, take * spec.feature_dim, spec.input.exponent, spec.round_mode,
                 spec.input.type, m_staging + m_pending * frame_bytes);
        m_pending += take;
        done += take;
        if (m_pending == spec.chunk_frames) {
            m_pending = 0;
            const esp_err_t ret = run_chunk(cb, user);
            if (ret != ESP_OK) {
                if (consumed != nullptr) {
                    *consumed = done;
                }
                return ret;
            }
        }
    }
    if (consumed != nullptr) {
        *consumed = done;
    }
    return ESP_OK;
}

esp_err_t stream_runner::run_chunk(chunk_callback cb, void *user)
{
    const model_spec &spec = *m_spec;
    /* Refill before every run: ESP-DL's memory planner may reuse the input buffer. */
    tensor_ref in = {};
    ESPDL_STREAMING_RETURN_ON_ERROR(m_model->input(spec.input_index, &in));
    ESPDL_STREAMING_RETURN_ON_FALSE(in.data != nullptr && in.elements == spec.input.elements, ESP_ERR_INVALID_SIZE, TAG,
                                    "%s: input '%s' changed since init", spec.name, spec.input.name);
    std::memcpy(in.data, m_staging, spec.input.elements * dtype_size(spec.input.type));
    ESPDL_STREAMING_RETURN_ON_ERROR(copy_state(true));

    esp_err_t ret = m_model->run();
    if (ret != ESP_OK) {
        ESP_LOGE(TAG, "%s: run failed on chunk %lu (error %d)", spec.name, static_cast<unsigned long>(m_chunks),
                 static_cast<int>(ret));
        return ret;
    }
    /* Keep the last state before anything else can touch the model's buffers. */
    ESPDL_STREAMING_RETURN_ON_ERROR(copy_state(false));
    for (uint32_t i = 0; i < spec.output_count; ++i) {
        tensor_ref &raw = m_raw[i];
        ESPDL_STREAMING_RETURN_ON_ERROR(m_model->output(output_slot(spec, i), &raw));
        const tensor_spec &want = spec.outputs[i];
        ESPDL_STREAMING_RETURN_ON_FALSE(raw.data != nullptr && raw.elements == want.elements && raw.type == want.type,
                                        ESP_ERR_INVALID_SIZE, TAG, "%s: output '%s' changed since init", spec.name,
                                        want.name);
        dequantize(raw.data, raw.type, raw.elements, raw.exponent, m_outputs[i]);
    }
    const chunk_result result = {m_chunks, m_outputs, m_raw, spec.output_count};
    ++m_chunks;
    return cb != nullptr ? cb(result, user) : ESP_OK;
}

esp_err_t stream_runner::copy_state(bool to_model)
{
    const model_spec &spec = *m_spec;
    size_t offset = 0;
    for (uint32_t i = 0; i < spec.state_count; ++i) {
        const state_spec &st = spec.states[i];
        const tensor_spec &want = to_model ? st.input : st.output;
        tensor_ref ref = {};
        ESPDL_STREAMING_RETURN_ON_ERROR(to_model ? m_model->input(st.input_index, &ref)
                                                 : m_model->output(st.output_index, &ref));
        const size_t bytes = static_cast<size_t>(want.elements) * dtype_size(want.type);
        ESPDL_STREAMING_RETURN_ON_FALSE(ref.data != nullptr && ref.elements == want.elements && ref.type == want.type &&
                                            offset + bytes <= m_state_bytes,
                                        ESP_ERR_INVALID_SIZE, TAG, "%s: state '%s' changed since init", spec.name,
                                        want.name);
        /* Raw integers: ESP-DL copies initial_h / initial_c into the layer without rescaling. */
        if (to_model) {
            std::memcpy(ref.data, m_state + offset, bytes);
        } else {
            std::memcpy(m_state + offset, ref.data, bytes);
        }
        offset += bytes;
    }
    return ESP_OK;
}

void stream_runner::restore_initial_state()
{
    if (m_state == nullptr) {
        return;
    }
    size_t offset = 0;
    for (uint32_t i = 0; i < m_spec->state_count; ++i) {
        const state_spec &st = m_spec->states[i];
        const size_t bytes = static_cast<size_t>(st.output.elements) * dtype_size(st.output.type);
        if (st.initial != nullptr) {
            std::memcpy(m_state + offset, st.initial, bytes);
        } else {
            std::memset(m_state + offset, 0, bytes);
        }
        offset += bytes;
    }
}

esp_err_t stream_runner::reset()
{
    ESPDL_STREAMING_RETURN_ON_FALSE(m_model != nullptr, ESP_ERR_INVALID_STATE, TAG, "reset: runner not initialised");
    m_pending = 0;
    m_chunks = 0;
    restore_initial_state();
    return m_model->reset();
}

} // namespace espdl_streaming
