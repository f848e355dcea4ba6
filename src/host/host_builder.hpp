/*
 * Host engine, private: the builder that plans a model while it is opened (builder.cpp): the
 * simulator's name environment, constant slots, graph inputs and outputs, one prepare call per
 * node and the shared scratch buffer. The prepare context (prepare.cpp) reaches the model through
 * it; open_model_bytes() (model.cpp) runs it.
 */
#pragma once

#include "host_engine.hpp"

namespace espdl_streaming::host {

class engine_builder {
public:
    engine_builder(host_model &model, error_sink &sink) : m(model), err(sink) {}

    esp_err_t build();

    host_model &m;
    error_sink &err;
    /* Name -> value as the simulator's `env`: graph inputs and node outputs, latest last. */
    str_view *env_names = nullptr;
    slot **env_slots = nullptr;
    uint32_t env_count = 0;
    /* Every name a node may read (espdl/simulator.py Simulator._check_graph's `known`). */
    str_view *known = nullptr;
    uint32_t known_count = 0;
    slot **constants = nullptr; /* per initializer, created on first use */
    uint32_t current_node = 0;

    esp_err_t no_mem()
    {
        return err.set(ESP_ERR_NO_MEM, "out of memory while planning the model (%lu bytes allocated)",
                       static_cast<unsigned long>(m.m_mem.used()));
    }

    slot *env_lookup(const str_view &name)
    {
        for (uint32_t i = env_count; i-- > 0;) {
            if (env_names[i].equals(name)) {
                return env_slots[i];
            }
        }
        return nullptr;
    }

    bool is_known(const str_view &name)
    {
        for (uint32_t i = known_count; i-- > 0;) {
            if (known[i].equals(name)) {
                return true;
            }
        }
        return m.m_graph.initializer(name) != nullptr;
    }

    esp_err_t constant_slot(const str_view &name, slot **out);
    const value_info_def *info_of(const str_view &name) const;
    esp_err_t finish_io();
    esp_err_t plan_scratch();
};

} // namespace espdl_streaming::host
