/*
 * A model_interface test double with static storage (no heap). Each run computes every output
 * from the quantized input and a state carried across runs, so chunking, refills and reset()
 * are all observable; every input chunk it received is logged.
 */
#pragma once

#include <cstring>

#include "espdl_streaming/model_interface.hpp"

namespace fake {

using namespace espdl_streaming;

constexpr uint32_t max_outputs = 4;
constexpr uint32_t max_elements = 256;
constexpr uint32_t max_logged_chunks = 64;

/* The tensors the fake reports; initialised from a spec, then tests may corrupt them. */
struct layout {
    uint32_t input_count = 1;
    tensor_spec input = {};
    uint32_t output_count = 0;
    tensor_spec outputs[max_outputs] = {};
};

inline layout layout_from(const model_spec &spec)
{
    layout l;
    l.input = spec.input;
    l.output_count = spec.output_count;
    for (uint32_t i = 0; i < spec.output_count && i < max_outputs; ++i) {
        l.outputs[i] = spec.outputs[i];
    }
    return l;
}

inline int32_t element(const void *data, dtype t, uint32_t i)
{
    return t == dtype::int16 ? static_cast<const int16_t *>(data)[i] : static_cast<const int8_t *>(data)[i];
}

class model final : public model_interface {
public:
    explicit model(const layout &l) : m_layout(l) {}

    uint32_t input_count() const override { return m_layout.input_count; }
    uint32_t output_count() const override { return m_layout.output_count; }

    esp_err_t input(uint32_t index, tensor_ref *out) override
    {
        if (index >= m_layout.input_count) {
            return ESP_ERR_INVALID_ARG;
        }
        describe(m_layout.input, m_input, out);
        return ESP_OK;
    }

    esp_err_t output(uint32_t index, tensor_ref *out) override
    {
        if (index >= m_layout.output_count) {
            return ESP_ERR_INVALID_ARG;
        }
        describe(m_layout.outputs[index], m_outputs[index], out);
        return ESP_OK;
    }

    esp_err_t run() override
    {
        if (fail_on_run >= 0 && m_runs == static_cast<uint32_t>(fail_on_run)) {
            ++m_runs;
            return ESP_FAIL;
        }
        const tensor_spec &in = m_layout.input;
        if (m_runs < max_logged_chunks) {
            std::memcpy(m_log[m_runs], m_input, in.elements * dtype_size(in.type));
        }
        int32_t sum = 0;
        for (uint32_t i = 0; i < in.elements; ++i) {
            sum += element(m_input, in.type, i);
        }
        for (uint32_t o = 0; o < m_layout.output_count; ++o) {
            const tensor_spec &out = m_layout.outputs[o];
            for (uint32_t e = 0; e < out.elements; ++e) {
                int32_t v = m_state + static_cast<int32_t>(e) * 3 - static_cast<int32_t>(o);
                for (uint32_t i = 0; i < in.elements; ++i) {
                    v += element(m_input, in.type, i) * static_cast<int32_t>((i + e + o) % 3) - 1;
                }
                v = v < dtype_min(out.type) ? dtype_min(out.type) : v > dtype_max(out.type) ? dtype_max(out.type) : v;
                if (out.type == dtype::int16) {
                    reinterpret_cast<int16_t *>(m_outputs[o])[e] = static_cast<int16_t>(v);
                } else {
                    reinterpret_cast<int8_t *>(m_outputs[o])[e] = static_cast<int8_t>(v);
                }
            }
        }
        m_state += sum % 17;
        /* Like ESP-DL's planner: the input buffer is scribbled on by the run. */
        std::memset(m_input, 0x5a, sizeof(m_input));
        ++m_runs;
        return ESP_OK;
    }

    esp_err_t reset() override
    {
        ++resets;
        if (!broken_reset) {
            m_state = 0;
        }
        m_runs = 0;
        return ESP_OK;
    }

    /* Raw input of run `k` since the last reset (k < max_logged_chunks). */
    const void *logged_input(uint32_t k) const { return m_log[k]; }
    uint32_t runs() const { return m_runs; }

    int fail_on_run = -1;      /* run index (since reset) that returns ESP_FAIL */
    bool broken_reset = false; /* reset() keeps the state: the self test must notice */
    uint32_t resets = 0;

private:
    static void describe(const tensor_spec &s, void *data, tensor_ref *out)
    {
        out->data = data;
        out->type = s.type;
        out->exponent = s.exponent;
        out->elements = s.elements;
        out->ndim = s.ndim;
        for (uint8_t i = 0; i < max_ndim; ++i) {
            out->shape[i] = s.shape[i];
        }
    }

    layout m_layout;
    alignas(16) uint8_t m_input[max_elements * 2] = {};
    alignas(16) uint8_t m_outputs[max_outputs][max_elements * 2] = {};
    uint8_t m_log[max_logged_chunks][max_elements * 2] = {};
    int32_t m_state = 0;
    uint32_t m_runs = 0;
};

} // namespace fake
