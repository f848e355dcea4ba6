/*
 * Host engine: the prepare context (prep in host_kernels.hpp), what an operator's prepare function
 * calls while the model is opened: inputs and constants, attributes, output creation, real-value
 * requests, arena allocation, state registration and error reporting. Also shape_ok().
 * Not here: the builder that calls the prepare functions (builder.cpp), the ops (ops_*.cpp).
 */
#include <cstdarg>
#include <cstdio>

#include "host_builder.hpp"

namespace espdl_streaming::host {

esp_err_t shape_ok(prep &p, const shape_t &s)
{
    int64_t total = 1;
    for (uint8_t i = 0; i < s.rank; ++i) {
        if (s.dims[i] < 0) {
            return p.fail("negative dimension in the computed shape");
        }
        if (s.dims[i] != 0 && total > max_tensor_elements / s.dims[i]) {
            total = max_tensor_elements + 1;
            break;
        }
        total *= s.dims[i];
    }
    if (total > max_tensor_elements) {
        char buf[160];
        format_shape(s, buf, sizeof(buf));
        return p.unsupported("a tensor of shape %s is larger than the host engine's limit of %lld elements", buf,
                             static_cast<long long>(max_tensor_elements));
    }
    return ESP_OK;
}

/* --------------------------------------------------------------------------- prep */

esp_err_t prep::report(esp_err_t code, const char *format, va_list args)
{
    char detail[300];
    std::vsnprintf(detail, sizeof(detail), format, args);
    const quoted qn(node().name);
    const quoted qo(node().op_type);
    return m_b.err.set(code, "node '%.*s' (%.*s): %s", QUOTED(qn), QUOTED(qo), detail);
}

esp_err_t prep::fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    const esp_err_t ret = report(ESP_FAIL, format, args);
    va_end(args);
    return ret;
}

esp_err_t prep::unsupported(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    const esp_err_t ret = report(ESP_ERR_NOT_SUPPORTED, format, args);
    va_end(args);
    return ret;
}

void *prep::alloc(size_t bytes)
{
    return m_b.m.m_mem.alloc(bytes);
}

arena &prep::arena_of()
{
    return m_b.m.m_mem;
}

esp_err_t prep::no_mem()
{
    return m_b.no_mem();
}

esp_err_t prep::need_input(uint32_t i, slot **out)
{
    *out = input(i);
    if (*out == nullptr) {
        return fail("input %lu is missing", static_cast<unsigned long>(i));
    }
    return ESP_OK;
}

esp_err_t prep::need_constant(uint32_t i, const tensor_def **out)
{
    *out = i < node().input_count ? m_b.m.m_graph.initializer(node().inputs[i]) : nullptr;
    if (*out == nullptr) {
        const quoted q(i < node().input_count ? node().inputs[i] : str_view{});
        return fail("constant '%.*s' (input %lu) is not in the model", QUOTED(q), static_cast<unsigned long>(i));
    }
    return ESP_OK;
}

esp_err_t prep::const_ints(uint32_t i, const char *what, int64_t *values, uint32_t capacity, uint32_t *count)
{
    slot *s = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(need_input(i, &s));
    if (!s->constant) {
        return unsupported("%s (input %lu) must be a constant in the host engine", what, static_cast<unsigned long>(i));
    }
    if (s->count > static_cast<int64_t>(capacity)) {
        return unsupported("%s has %lld values, more than the %lu supported", what, static_cast<long long>(s->count),
                           static_cast<unsigned long>(capacity));
    }
    for (int64_t k = 0; k < s->count; ++k) {
        if (!int_at(*s, k, &values[k])) {
            return fail("%s value %lld is not an integer", what, static_cast<long long>(k));
        }
    }
    *count = static_cast<uint32_t>(s->count);
    return ESP_OK;
}

esp_err_t prep::attr_int(const char *name, int64_t fallback, int64_t *out)
{
    const attr_def *a = node().attr(name);
    if (a == nullptr) {
        *out = fallback;
        return ESP_OK;
    }
    if (a->kind == attr_kind::i) {
        *out = a->i;
        return ESP_OK;
    }
    if (a->kind == attr_kind::f && std::isfinite(a->f) && std::fabs(a->f) < 9.0e18f) {
        *out = static_cast<int64_t>(a->f); /* int(float) */
        return ESP_OK;
    }
    return unsupported("attribute %s must be an integer", name);
}

esp_err_t prep::attr_float(const char *name, double fallback, double *out)
{
    const attr_def *a = node().attr(name);
    if (a == nullptr) {
        *out = fallback;
        return ESP_OK;
    }
    if (a->kind == attr_kind::f) {
        *out = a->f;
        return ESP_OK;
    }
    if (a->kind == attr_kind::i) {
        *out = static_cast<double>(a->i);
        return ESP_OK;
    }
    return unsupported("attribute %s must be a number", name);
}

esp_err_t prep::attr_ints(const char *name, int64_t *values, uint32_t capacity, uint32_t *count, bool *present)
{
    const attr_def *a = node().attr(name);
    *count = 0;
    *present = a != nullptr;
    if (a == nullptr) {
        return ESP_OK;
    }
    if (a->kind != attr_kind::ints) {
        return unsupported("attribute %s must be a list of integers", name);
    }
    if (a->count > capacity) {
        return unsupported("attribute %s has %lu values, more than the %lu supported", name,
                           static_cast<unsigned long>(a->count), static_cast<unsigned long>(capacity));
    }
    for (uint32_t i = 0; i < a->count; ++i) {
        values[i] = a->ints[i];
    }
    *count = a->count;
    return ESP_OK;
}

esp_err_t prep::attr_string(const char *name, const char *fallback, str_view *out)
{
    const attr_def *a = node().attr(name);
    if (a == nullptr) {
        *out = str_view{fallback, static_cast<uint32_t>(std::strlen(fallback))};
        return ESP_OK;
    }
    if (a->kind != attr_kind::s) {
        return unsupported("attribute %s must be a string", name);
    }
    *out = a->s;
    return ESP_OK;
}

esp_err_t prep::output_typed(uint32_t i, const shape_t &shape, etype type, bool quantized, int exponent, slot **out)
{
    *out = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(shape_ok(*this, shape));
    slot *s = make<slot>(1);
    if (s == nullptr) {
        return no_mem();
    }
    s->name = i < node().output_count ? node().outputs[i] : str_view{};
    s->type = type;
    s->quantized = quantized;
    s->exponent = exponent;
    s->shape = shape;
    s->count = shape.count();
    s->data = alloc(static_cast<size_t>(s->count) * etype_size(type));
    if (s->data == nullptr) {
        return no_mem();
    }
    if (i < m_plan.out_count) {
        m_plan.out[i] = s;
    }
    *out = s;
    return ESP_OK;
}

const value_info_def *prep::info(const str_view &name) const
{
    return m_b.info_of(name);
}

bool prep::output_exponent(uint32_t i, int *exponent) const
{
    const value_info_def *info = m_b.info_of(i < node().output_count ? node().outputs[i] : str_view{});
    if (info == nullptr || !info->has_exponent) {
        return false;
    }
    *exponent = clamp_exponent(info->exponent);
    return true;
}

esp_err_t prep::output(uint32_t i, const shape_t &shape, slot **out)
{
    /* espdl/ops/kernels.py NodeRun.emit: no value info -> float64; float dtypes stay float; an integer
     * dtype with an exponent is quantized; an integer dtype without one holds float64. */
    const str_view name = i < node().output_count ? node().outputs[i] : str_view{};
    const value_info_def *info = m_b.info_of(name);
    etype type = etype::f64;
    bool quantized = false;
    int exponent = 0;
    if (info != nullptr) {
        if (info->type == etype::f16) {
            return unsupported("float16 tensors are not supported by the host engine");
        }
        if (info->type == etype::f32 || info->type == etype::f64) {
            type = info->type;
        } else if (info->has_exponent) {
            if (!etype_quantizable(info->type)) {
                return fail("cannot quantize to %s", etype_name(info->type));
            }
            type = info->type;
            quantized = true;
            exponent = clamp_exponent(info->exponent);
        }
    }
    return output_typed(i, shape, type, quantized, exponent, out);
}

esp_err_t prep::constant_real(slot *s, const double **out)
{
    if (s->real == nullptr) {
        if (s->channel_count > 1 && s->channel_count != s->shape.last()) {
            const quoted q(s->name);
            return unsupported("constant '%.*s' has %lu exponents for a last axis of %lld", QUOTED(q),
                               static_cast<unsigned long>(s->channel_count), static_cast<long long>(s->shape.last()));
        }
        double *real = make<double>(static_cast<size_t>(s->count));
        if (real == nullptr) {
            return no_mem();
        }
        load_real(*s, real);
        s->real = real;
    }
    *out = s->real;
    return ESP_OK;
}

esp_err_t prep::want_real(uint32_t i)
{
    slot *s = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(need_input(i, &s));
    if (s->constant) {
        const double *unused;
        ESPDL_STREAMING_RETURN_ON_ERROR(constant_real(s, &unused));
    }
    m_plan.want_real[i] = true;
    return ESP_OK;
}

esp_err_t prep::add_state(void *data, size_t bytes)
{
    host_model &m = m_b.m;
    /* Grown by one per StreamingCache node, only while the model is opened. */
    void **states = m.m_mem.make<void *>(m.m_state_count + 1);
    size_t *sizes = m.m_mem.make<size_t>(m.m_state_count + 1);
    if (states == nullptr || sizes == nullptr) {
        return no_mem();
    }
    for (uint32_t i = 0; i < m.m_state_count; ++i) {
        states[i] = m.m_states[i];
        sizes[i] = m.m_state_bytes[i];
    }
    states[m.m_state_count] = data;
    sizes[m.m_state_count] = bytes;
    m.m_states = states;
    m.m_state_bytes = sizes;
    ++m.m_state_count;
    return ESP_OK;
}

const graph_def &prep::graph() const
{
    return m_b.m.m_graph;
}

uint32_t prep::node_index() const
{
    return m_b.current_node;
}

} // namespace espdl_streaming::host
