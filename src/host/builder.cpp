/*
 * Host engine: the builder (host_builder.hpp) plans a decoded graph once, while the model is
 * opened: constant slots, graph inputs, every node through its op's prepare function (the op
 * table, host_ops.cpp), graph outputs, then one scratch buffer for every node's real values.
 * Not here: what a prepare function calls (prepare.cpp), running the plan (model.cpp).
 */
#include "host_builder.hpp"

namespace espdl_streaming::host {

esp_err_t engine_builder::constant_slot(const str_view &name, slot **out)
{
    *out = nullptr;
    const graph_def &g = m.m_graph;
    for (uint32_t i = g.initializer_count; i-- > 0;) {
        if (!g.initializers[i].name.equals(name)) {
            continue;
        }
        if (constants[i] == nullptr) {
            const tensor_def &t = g.initializers[i];
            slot *s = m.m_mem.make<slot>(1);
            if (s == nullptr) {
                return no_mem();
            }
            s->name = t.name;
            s->type = t.type;
            s->shape = t.shape;
            s->count = t.count;
            s->data = const_cast<void *>(t.data);
            s->constant = true;
            s->def = &t;
            /* espdl/simulator.py Simulator._constant_value: quantized integer constants carry their
             * exponent(s). */
            if (etype_quantizable(t.type) && t.exponent_count > 0) {
                s->quantized = true;
                s->exponent = clamp_exponent(t.exponents[0]);
                if (t.exponent_count > 1) {
                    int *exps = m.m_mem.make<int>(t.exponent_count);
                    if (exps == nullptr) {
                        return no_mem();
                    }
                    for (uint32_t k = 0; k < t.exponent_count; ++k) {
                        exps[k] = clamp_exponent(t.exponents[k]);
                    }
                    s->channel_exps = exps;
                    s->channel_count = t.exponent_count;
                }
            }
            constants[i] = s;
        }
        *out = constants[i];
        return ESP_OK;
    }
    return ESP_OK;
}

/* espdl/simulator.py Simulator._infos: value_info, then inputs, then outputs override (later entries win). */
const value_info_def *engine_builder::info_of(const str_view &name) const
{
    const graph_def &g = m.m_graph;
    for (uint32_t i = g.output_count; i-- > 0;) {
        if (g.outputs[i].name.equals(name)) {
            return &g.outputs[i];
        }
    }
    for (uint32_t i = g.input_count; i-- > 0;) {
        if (g.inputs[i].name.equals(name)) {
            return &g.inputs[i];
        }
    }
    for (uint32_t i = g.value_info_count; i-- > 0;) {
        if (g.value_infos[i].name.equals(name)) {
            return &g.value_infos[i];
        }
    }
    return nullptr;
}

namespace {

void sort_by_name(slot **slots, uint32_t count)
{
    for (uint32_t i = 1; i < count; ++i) {
        slot *s = slots[i];
        uint32_t j = i;
        while (j > 0 && slots[j - 1]->name.compare(s->name) > 0) {
            slots[j] = slots[j - 1];
            --j;
        }
        slots[j] = s;
    }
}

esp_err_t check_io_slot(error_sink &err, const char *role, const slot &s, bool real_ok = false)
{
    const quoted q(s.name);
    if (real_ok && s.type == etype::f32 && s.channel_count <= 1) {
        return ESP_OK; /* a float32 output holds real values (ESP-DL's Softmax): no exponent applies */
    }
    if (!s.quantized || (s.type != etype::i8 && s.type != etype::i16) || s.channel_count > 1) {
        return err.set(ESP_ERR_NOT_SUPPORTED,
                       "graph %s '%.*s' is %s%s; the host engine (like the runtime) needs int8 or int16 with an "
                       "exponent%s",
                       role, QUOTED(q), etype_name(s.type), s.quantized ? "" : " without exponent",
                       real_ok ? " (or float32, as ESP-DL's Softmax writes)" : "");
    }
    return ESP_OK;
}

} // namespace

esp_err_t engine_builder::finish_io()
{
    const graph_def &g = m.m_graph;
    m.m_outputs = m.m_mem.make<slot *>(g.output_count);
    if (m.m_outputs == nullptr) {
        return no_mem();
    }
    for (uint32_t i = 0; i < g.output_count; ++i) {
        const value_info_def &info = g.outputs[i];
        const quoted q(info.name);
        for (uint32_t k = 0; k < i; ++k) {
            if (g.outputs[k].name.equals(info.name)) {
                return err.set(ESP_FAIL, "graph output '%.*s' is listed twice", QUOTED(q));
            }
        }
        if (!is_known(info.name)) {
            return err.set(ESP_FAIL, "graph output '%.*s' is never computed", QUOTED(q));
        }
        slot *s = env_lookup(info.name);
        if (s == nullptr) {
            ESPDL_STREAMING_RETURN_ON_ERROR(constant_slot(info.name, &s));
        }
        if (s == nullptr) {
            return err.set(ESP_FAIL, "graph output '%.*s' is named by a node but never computed", QUOTED(q));
        }
        ESPDL_STREAMING_RETURN_ON_ERROR(check_io_slot(err, "output", *s, true));
        m.m_outputs[i] = s;
    }
    m.m_output_count = g.output_count;
    sort_by_name(m.m_inputs, m.m_input_count);
    sort_by_name(m.m_outputs, m.m_output_count);
    return ESP_OK;
}

esp_err_t engine_builder::plan_scratch()
{
    /* One scratch buffer serves every node in turn: dequantized inputs, then real results. */
    int64_t most = 0;
    for (uint32_t n = 0; n < m.m_plan_count; ++n) {
        const node_plan &p = m.m_plans[n];
        int64_t need = 0;
        for (uint32_t i = 0; i < p.in_count; ++i) {
            if (p.want_real[i] && !p.in[i]->constant) {
                need += p.in[i]->count;
            }
        }
        for (uint32_t o = 0; o < p.out_count; ++o) {
            if (p.real_out[o]) {
                need += p.out[o]->count;
            }
        }
        most = need > most ? need : most;
    }
    double *scratch = m.m_mem.make<double>(static_cast<size_t>(most));
    if (scratch == nullptr) {
        return no_mem();
    }
    for (uint32_t n = 0; n < m.m_plan_count; ++n) {
        node_plan &p = m.m_plans[n];
        double *cursor = scratch;
        for (uint32_t i = 0; i < p.in_count; ++i) {
            if (p.want_real[i]) {
                if (p.in[i]->constant) {
                    p.x[i] = p.in[i]->real;
                } else {
                    p.x[i] = cursor;
                    cursor += p.in[i]->count;
                }
            }
        }
        for (uint32_t o = 0; o < p.out_count; ++o) {
            if (p.real_out[o]) {
                p.y[o] = cursor;
                cursor += p.out[o]->count;
            }
        }
    }
    return ESP_OK;
}

esp_err_t engine_builder::build()
{
    graph_def &g = m.m_graph;
    uint32_t names = g.input_count;
    for (uint32_t n = 0; n < g.node_count; ++n) {
        names += g.nodes[n].output_count;
    }
    env_names = m.m_mem.make<str_view>(names);
    env_slots = m.m_mem.make<slot *>(names);
    known = m.m_mem.make<str_view>(names);
    constants = m.m_mem.make<slot *>(g.initializer_count);
    m.m_inputs = m.m_mem.make<slot *>(g.input_count);
    m.m_plans = m.m_mem.make<node_plan>(g.node_count);
    if (env_names == nullptr || env_slots == nullptr || known == nullptr || constants == nullptr ||
        m.m_inputs == nullptr || m.m_plans == nullptr) {
        return no_mem();
    }

    /* Graph inputs: the buffers the caller fills (espdl/simulator.py Simulator._bind_inputs). */
    for (uint32_t i = 0; i < g.input_count; ++i) {
        const value_info_def &info = g.inputs[i];
        const quoted q(info.name);
        for (uint32_t k = 0; k < i; ++k) {
            if (g.inputs[k].name.equals(info.name)) {
                return err.set(ESP_FAIL, "graph input '%.*s' is listed twice", QUOTED(q));
            }
        }
        slot *s = m.m_mem.make<slot>(1);
        if (s == nullptr) {
            return no_mem();
        }
        s->name = info.name;
        s->type = info.type;
        s->quantized = info.has_exponent;
        s->exponent = clamp_exponent(info.exponent);
        s->shape = info.shape;
        ESPDL_STREAMING_RETURN_ON_ERROR(check_io_slot(err, "input", *s));
        if (info.shape.count() > max_tensor_elements) {
            return err.set(ESP_ERR_NOT_SUPPORTED, "graph input '%.*s' is larger than the host engine's limit",
                           QUOTED(q));
        }
        s->count = info.shape.count();
        s->data = m.m_mem.alloc(static_cast<size_t>(s->count) * etype_size(s->type));
        if (s->data == nullptr) {
            return no_mem();
        }
        m.m_inputs[m.m_input_count++] = s;
        env_names[env_count] = info.name;
        env_slots[env_count++] = s;
        known[known_count++] = info.name;
    }

    for (uint32_t n = 0; n < g.node_count; ++n) {
        current_node = n;
        const node_def &node = g.nodes[n];
        node_plan &plan = m.m_plans[n];
        plan.def = &node;
        const quoted qn(node.name);
        const quoted qo(node.op_type);
        const op_entry *op = find_op(node.op_type);
        if (op == nullptr) {
            return err.set(ESP_ERR_NOT_SUPPORTED,
                           "node '%.*s' (op type %.*s): the host engine has no implementation of this operator",
                           QUOTED(qn), QUOTED(qo));
        }
        plan.in_count = node.input_count;
        plan.out_count = node.output_count;
        plan.in = m.m_mem.make<slot *>(plan.in_count);
        plan.x = m.m_mem.make<const double *>(plan.in_count);
        plan.want_real = m.m_mem.make<bool>(plan.in_count);
        plan.out = m.m_mem.make<slot *>(plan.out_count);
        plan.y = m.m_mem.make<double *>(plan.out_count);
        plan.real_out = m.m_mem.make<bool>(plan.out_count);
        if (plan.in == nullptr || plan.x == nullptr || plan.want_real == nullptr || plan.out == nullptr ||
            plan.y == nullptr || plan.real_out == nullptr) {
            return no_mem();
        }
        for (uint32_t i = 0; i < node.input_count; ++i) {
            const str_view &name = node.inputs[i];
            if (name.empty()) {
                continue; /* an omitted optional input */
            }
            if (!is_known(name)) {
                const quoted qi(name);
                return err.set(ESP_FAIL,
                               "node '%.*s' (%.*s): input '%.*s' is neither a graph input, a constant nor computed "
                               "earlier",
                               QUOTED(qn), QUOTED(qo), QUOTED(qi));
            }
            /* espdl/simulator.py Simulator._argument: a computed value, else the initializer of that name. */
            plan.in[i] = env_lookup(name);
            if (plan.in[i] == nullptr) {
                ESPDL_STREAMING_RETURN_ON_ERROR(constant_slot(name, &plan.in[i]));
            }
        }
        if (node.output_count == 0) {
            return err.set(ESP_FAIL, "node '%.*s' (%.*s): the node has no output", QUOTED(qn), QUOTED(qo));
        }
        /* espdl/validate.py validate_node, for every op: a `lut` attribute names a constant. */
        const attr_def *lut = node.attr("lut");
        if (lut != nullptr && (lut->kind != attr_kind::s || g.initializer(lut->s) == nullptr)) {
            const quoted ql(lut->kind == attr_kind::s ? lut->s : str_view{});
            return err.set(ESP_FAIL, "node '%.*s' (%.*s): look-up table '%.*s' is not in the model", QUOTED(qn),
                           QUOTED(qo), QUOTED(ql));
        }
        prep p(*this, plan, m.m_mode);
        ESPDL_STREAMING_RETURN_ON_ERROR(op->prepare(p));
        if (plan.run == nullptr) {
            return err.set(ESP_FAIL, "node '%.*s' (%.*s): internal error: no kernel", QUOTED(qn), QUOTED(qo));
        }
        m.m_work += plan.work;
        if (m.m_work > max_run_work) {
            return err.set(ESP_ERR_NOT_SUPPORTED,
                           "node '%.*s' (%.*s): the model needs more than %lld operations per run, beyond the host "
                           "engine's limit",
                           QUOTED(qn), QUOTED(qo), static_cast<long long>(max_run_work));
        }
        for (uint32_t o = 0; o < node.output_count; ++o) {
            if (plan.out[o] != nullptr) {
                env_names[env_count] = node.outputs[o];
                env_slots[env_count++] = plan.out[o];
            }
            known[known_count++] = node.outputs[o];
        }
        ++m.m_plan_count;
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(finish_io());
    return plan_scratch();
}

} // namespace espdl_streaming::host
