/*
 * Host engine, private: the model_interface implementation and the entry point the host tools
 * (host/espdl_run, host/espdl_fuzz, host/engine_check) use (model.cpp). The component's users go
 * through open_model() in backend.hpp.
 */
#pragma once

#include "espdl_streaming/backend.hpp"
#include "host_graph.hpp"
#include "host_kernels.hpp"

namespace espdl_streaming::host {

class host_model final : public model_interface {
public:
    host_model() = default;
    ~host_model() override = default;
    host_model(const host_model &) = delete;
    host_model &operator=(const host_model &) = delete;

    uint32_t input_count() const override { return m_input_count; }
    uint32_t output_count() const override { return m_output_count; }
    esp_err_t input(uint32_t index, tensor_ref *out) override;
    esp_err_t output(uint32_t index, tensor_ref *out) override;
    esp_err_t run() override;
    esp_err_t reset() override;

    /* For the tools: full names, shapes (any rank) and the run's work estimate. */
    const slot &input_slot(uint32_t index) const { return *m_inputs[index]; }
    const slot &output_slot(uint32_t index) const { return *m_outputs[index]; }
    int64_t work() const { return m_work; }
    /* Every node output of the last run (debugging: which node differs from the simulator). */
    uint32_t node_count() const { return m_plan_count; }
    const node_plan &node(uint32_t index) const { return m_plans[index]; }
    size_t bytes() const { return m_mem.used(); }
    /* The model's metadata value of `key`, or null. */
    const str_view *metadata(const char *key, size_t key_len) const { return m_graph.meta(key, key_len); }

private:
    friend class engine_builder;
    friend class prep;
    friend esp_err_t open_model_bytes(const uint8_t *data, size_t size, rounding mode, bool quiet, error_sink &err,
                                      host_model **out);

    arena m_mem;
    graph_def m_graph;
    rounding m_mode = rounding::half_even;
    node_plan *m_plans = nullptr;
    uint32_t m_plan_count = 0;
    slot **m_inputs = nullptr;
    uint32_t m_input_count = 0;
    slot **m_outputs = nullptr;
    uint32_t m_output_count = 0;
    /* State buffers zeroed by reset() (StreamingCache history). */
    void **m_states = nullptr;
    size_t *m_state_bytes = nullptr;
    uint32_t m_state_count = 0;
    int64_t m_work = 0;
};

/*
 * Open a model from `size` bytes (which must stay valid while the model is open): parse, validate
 * every node as espdl/simulator.py Simulator._check_graph does, plan every tensor. On failure `err`
 * holds the one-line reason (also logged with ESP_LOGE unless `quiet`) and `*out` is null.
 *
 * @return ESP_OK, ESP_FAIL (corrupt file or a graph the simulator rejects), ESP_ERR_NOT_SUPPORTED
 *         (an operator or variant the engine does not implement), ESP_ERR_NO_MEM
 */
esp_err_t open_model_bytes(const uint8_t *data, size_t size, rounding mode, bool quiet, error_sink &err,
                           host_model **out);

/* Release a model of open_model_bytes() (close_model() does the same). */
void destroy(host_model *model);

} // namespace espdl_streaming::host
