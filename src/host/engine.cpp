/*
 * The host engine: plans a decoded .espdl graph once (every tensor, index map and scratch buffer
 * allocated in open_model) and runs it with simulate.py's integer semantics. Implements
 * open_model()/close_model() for ESP-IDF's linux target and plain host builds, where ESP-DL does
 * not exist.
 */
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <new>

#include "host_engine.hpp"

namespace espdl_streaming {
namespace {
constexpr const char *TAG = "espdl_streaming";
}

namespace host {

/* --------------------------------------------------------------------------- elements */

double half_to_double(uint16_t h)
{
    const int sign = (h & 0x8000) ? -1 : 1;
    const int exp = (h >> 10) & 0x1f;
    const int mant = h & 0x3ff;
    if (exp == 0) {
        return sign * std::ldexp(static_cast<double>(mant), -24);
    }
    if (exp == 31) {
        return mant != 0 ? std::nan("") : sign * HUGE_VAL;
    }
    return sign * std::ldexp(static_cast<double>(mant | 0x400), exp - 25);
}

namespace {

double raw_value(const slot &s, int64_t i)
{
    const unsigned char *p = static_cast<const unsigned char *>(s.data);
    switch (s.type) {
    case etype::i8:
        return static_cast<const int8_t *>(s.data)[i];
    case etype::u8:
        return p[i];
    case etype::boolean:
        return p[i] != 0 ? 1.0 : 0.0;
    case etype::i16:
        return static_cast<const int16_t *>(s.data)[i];
    case etype::u16:
        return static_cast<const uint16_t *>(s.data)[i];
    case etype::f16:
        return half_to_double(static_cast<const uint16_t *>(s.data)[i]);
    case etype::i32:
        return static_cast<const int32_t *>(s.data)[i];
    case etype::u32:
        return static_cast<const uint32_t *>(s.data)[i];
    case etype::f32:
        return static_cast<const float *>(s.data)[i];
    case etype::i64:
        return static_cast<double>(static_cast<const int64_t *>(s.data)[i]);
    case etype::u64:
        return static_cast<double>(static_cast<const uint64_t *>(s.data)[i]);
    case etype::f64:
        return static_cast<const double *>(s.data)[i];
    }
    return 0.0;
}

} // namespace

double real_at(const slot &s, int64_t i)
{
    const double v = raw_value(s, i);
    if (!s.quantized) {
        return v;
    }
    const int e = s.channel_count > 1 ? s.channel_exps[i % s.channel_count] : s.exponent;
    return std::ldexp(v, e);
}

void load_real(const slot &s, double *dst)
{
    if (s.type == etype::i8 && s.quantized && s.channel_count <= 1) {
        const int8_t *q = static_cast<const int8_t *>(s.data);
        for (int64_t i = 0; i < s.count; ++i) {
            dst[i] = std::ldexp(static_cast<double>(q[i]), s.exponent);
        }
        return;
    }
    if (s.type == etype::i16 && s.quantized && s.channel_count <= 1) {
        const int16_t *q = static_cast<const int16_t *>(s.data);
        for (int64_t i = 0; i < s.count; ++i) {
            dst[i] = std::ldexp(static_cast<double>(q[i]), s.exponent);
        }
        return;
    }
    for (int64_t i = 0; i < s.count; ++i) {
        dst[i] = real_at(s, i);
    }
}

void store_real_at(slot &s, int64_t i, double value, rounding mode)
{
    if (s.type == etype::f64) {
        static_cast<double *>(s.data)[i] = value;
        return;
    }
    if (s.type == etype::f32) {
        static_cast<float *>(s.data)[i] = static_cast<float>(value);
        return;
    }
    double low;
    double high;
    etype_range(s.type, &low, &high);
    const double q = quantize_value(value, s.exponent, low, high, mode);
    switch (s.type) {
    case etype::i8:
        static_cast<int8_t *>(s.data)[i] = static_cast<int8_t>(q);
        break;
    case etype::i16:
        static_cast<int16_t *>(s.data)[i] = static_cast<int16_t>(q);
        break;
    case etype::i32:
        static_cast<int32_t *>(s.data)[i] = static_cast<int32_t>(q);
        break;
    case etype::u8:
        static_cast<uint8_t *>(s.data)[i] = static_cast<uint8_t>(q);
        break;
    case etype::u16:
        static_cast<uint16_t *>(s.data)[i] = static_cast<uint16_t>(q);
        break;
    default:
        break; /* output slots are only the types above (see prep::output) */
    }
}

void store_real(slot &s, const double *src, rounding mode)
{
    if (s.type == etype::i8) {
        int8_t *q = static_cast<int8_t *>(s.data);
        for (int64_t i = 0; i < s.count; ++i) {
            q[i] = static_cast<int8_t>(quantize_value(src[i], s.exponent, -128.0, 127.0, mode));
        }
        return;
    }
    if (s.type == etype::i16) {
        int16_t *q = static_cast<int16_t *>(s.data);
        for (int64_t i = 0; i < s.count; ++i) {
            q[i] = static_cast<int16_t>(quantize_value(src[i], s.exponent, -32768.0, 32767.0, mode));
        }
        return;
    }
    for (int64_t i = 0; i < s.count; ++i) {
        store_real_at(s, i, src[i], mode);
    }
}

bool int_at(const slot &s, int64_t i, int64_t *out)
{
    switch (s.type) {
    case etype::i64:
        *out = static_cast<const int64_t *>(s.data)[i];
        return true;
    case etype::u64: {
        const uint64_t v = static_cast<const uint64_t *>(s.data)[i];
        if (v > static_cast<uint64_t>(INT64_MAX)) {
            return false;
        }
        *out = static_cast<int64_t>(v);
        return true;
    }
    case etype::f32:
    case etype::f64:
    case etype::f16: {
        /* Python's int(float) truncates; NaN, infinities and huge values are errors there. */
        const double v = raw_value(s, i);
        if (!(v > -9.2e18 && v < 9.2e18)) {
            return false;
        }
        *out = static_cast<int64_t>(v);
        return true;
    }
    default:
        *out = static_cast<int64_t>(raw_value(s, i));
        return true;
    }
}

/* --------------------------------------------------------------------------- shared kernel helpers */

bool broadcast_shapes(const shape_t &a, const shape_t &b, shape_t *out)
{
    const int rank = a.rank > b.rank ? a.rank : b.rank;
    out->rank = static_cast<uint8_t>(rank);
    for (int i = 0; i < rank; ++i) {
        const int ia = i - (rank - a.rank);
        const int ib = i - (rank - b.rank);
        const int64_t da = ia >= 0 ? a.dims[ia] : 1;
        const int64_t db = ib >= 0 ? b.dims[ib] : 1;
        if (da != db && da != 1 && db != 1) {
            return false;
        }
        out->dims[i] = da == 1 ? db : da;
    }
    return true;
}

void broadcast_strides(const shape_t &s, const shape_t &to, int64_t *strides)
{
    int64_t stride = 1;
    for (int i = to.rank - 1; i >= 0; --i) {
        const int is = i - (to.rank - s.rank);
        if (is < 0) {
            strides[i] = 0;
            continue;
        }
        strides[i] = s.dims[is] == 1 ? 0 : stride;
        stride *= s.dims[is];
    }
}

void run_gather(const gather_plan &g, slot &out, rounding mode)
{
    bool fast[8] = {};
    const size_t item = etype_size(out.type);
    for (uint32_t k = 0; k < g.source_count && k < 8; ++k) {
        const slot &src = *g.sources[k];
        /* simulate.py passthrough: same dtype and exponent keep the integers. */
        fast[k] = src.type == out.type && src.quantized == out.quantized && src.channel_count <= 1 &&
                  (!out.quantized || src.exponent == out.exponent);
    }
    unsigned char *dst = static_cast<unsigned char *>(out.data);
    for (int64_t i = 0; i < out.count; ++i) {
        const int64_t at = g.index[i];
        if (at < 0) {
            store_real_at(out, i, g.fill, mode);
            continue;
        }
        const uint32_t k = g.source_of != nullptr ? g.source_of[i] : 0;
        const slot &src = *g.sources[k];
        if (k < 8 && fast[k]) {
            std::memcpy(dst + i * static_cast<int64_t>(item), static_cast<const unsigned char *>(src.data) + at * static_cast<int64_t>(item), item);
        } else {
            store_real_at(out, i, real_at(src, at), mode);
        }
    }
}

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

/* --------------------------------------------------------------------------- the builder */

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
    /* Every name a node may read (simulate.py _check_graph's `known`). */
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
            /* simulate.py _constant_value: quantized integer constants carry their exponent(s). */
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

/* simulate.py _infos: value_info, then inputs, then outputs override (later entries win). */
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

/* "name" for messages: at most 80 bytes. */
struct quoted {
    explicit quoted(const str_view &s) : size(s.size > 80 ? 80 : static_cast<int>(s.size)), data(s.data ? s.data : "") {}
    int size;
    const char *data;
};
#define QUOTED(q) (q).size, (q).data

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

    /* Graph inputs: the buffers the caller fills (simulate.py _bind_inputs). */
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
            /* simulate.py _argument: a computed value, else the initializer of that name. */
            plan.in[i] = env_lookup(name);
            if (plan.in[i] == nullptr) {
                ESPDL_STREAMING_RETURN_ON_ERROR(constant_slot(name, &plan.in[i]));
            }
        }
        if (node.output_count == 0) {
            return err.set(ESP_FAIL, "node '%.*s' (%.*s): the node has no output", QUOTED(qn), QUOTED(qo));
        }
        /* simulate.py _validate_node, for every op: a `lut` attribute names a constant. */
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
    /* simulate.py emit: no value info -> float64; float dtypes stay float; an integer dtype with an
     * exponent is quantized; an integer dtype without one holds float64. */
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

/* --------------------------------------------------------------------------- the model */

namespace {

void describe(const slot &s, tensor_ref *out)
{
    out->data = s.data;
    /* finish_io() admits int8, int16 and (outputs only) float32 */
    out->type = s.type == etype::f32 ? dtype::float32 : s.type == etype::i16 ? dtype::int16 : dtype::int8;
    out->exponent = s.type == etype::f32 ? 0 : s.exponent;
    out->elements = static_cast<uint32_t>(s.count);
    out->ndim = s.shape.rank;
    for (uint8_t i = 0; i < max_ndim; ++i) {
        out->shape[i] = i < s.shape.rank ? static_cast<int32_t>(s.shape.dims[i]) : 0;
    }
}

} // namespace

esp_err_t host_model::input(uint32_t index, tensor_ref *out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(index < m_input_count && out != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                    "input %lu out of range", static_cast<unsigned long>(index));
    describe(*m_inputs[index], out);
    return ESP_OK;
}

esp_err_t host_model::output(uint32_t index, tensor_ref *out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(index < m_output_count && out != nullptr, ESP_ERR_INVALID_ARG, TAG,
                                    "output %lu out of range", static_cast<unsigned long>(index));
    describe(*m_outputs[index], out);
    return ESP_OK;
}

esp_err_t host_model::run()
{
    for (uint32_t n = 0; n < m_plan_count; ++n) {
        node_plan &p = m_plans[n];
        for (uint32_t i = 0; i < p.in_count; ++i) {
            if (p.want_real[i] && !p.in[i]->constant) {
                load_real(*p.in[i], const_cast<double *>(p.x[i]));
            }
        }
        p.run(run_ctx{p, m_mode});
        for (uint32_t o = 0; o < p.out_count; ++o) {
            if (p.real_out[o]) {
                store_real(*p.out[o], p.y[o], m_mode);
            }
        }
    }
    return ESP_OK;
}

esp_err_t host_model::reset()
{
    for (uint32_t i = 0; i < m_state_count; ++i) {
        std::memset(m_states[i], 0, m_state_bytes[i]);
    }
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

void destroy(host_model *model)
{
    model->~host_model();
    std::free(model);
}

esp_err_t open_model_bytes(const uint8_t *data, size_t size, rounding mode, bool quiet, error_sink &err,
                           host_model **out)
{
    *out = nullptr;
    if (data == nullptr) {
        return err.set(ESP_ERR_INVALID_ARG, "open_model: no model data");
    }
    if (mode != rounding::half_even && mode != rounding::half_up) {
        return err.set(ESP_ERR_INVALID_ARG, "open_model: unknown rounding %d", static_cast<int>(mode));
    }
    /* Constructed in malloc'ed memory, like every allocation of the engine (see arena). */
    void *storage = std::malloc(sizeof(host_model));
    if (storage == nullptr) {
        return err.set(ESP_ERR_NO_MEM, "open_model: out of memory");
    }
    host_model *model = new (storage) host_model();
    model->m_mode = mode;
    esp_err_t ret = parse_espdl(data, size, model->m_mem, err, &model->m_graph);
    if (ret == ESP_OK) {
        engine_builder builder(*model, err);
        ret = builder.build();
    }
    if (ret != ESP_OK) {
        if (!err.failed()) {
            err.set(ret, "could not open the model");
        }
        if (!quiet) {
            ESP_LOGE(TAG, "%s", err.message());
        }
        destroy(model);
        return ret;
    }
    *out = model;
    return ESP_OK;
}

} // namespace host

esp_err_t open_model(const model_source &src, model_interface **out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(out != nullptr, ESP_ERR_INVALID_ARG, TAG, "open_model: out is null");
    *out = nullptr;
    if (src.where == placement::partition) {
        ESP_LOGE(TAG,
                 "open_model: the host engine reads models linked into the app (PLACEMENT RODATA); partition '%s' "
                 "cannot be read on this target",
                 src.partition_label != nullptr ? src.partition_label : "(null)");
        return ESP_ERR_NOT_SUPPORTED;
    }
    ESPDL_STREAMING_RETURN_ON_FALSE(src.where == placement::rodata, ESP_ERR_INVALID_ARG, TAG,
                                    "open_model: unknown placement %d", static_cast<int>(src.where));
    ESPDL_STREAMING_RETURN_ON_FALSE(src.rodata != nullptr, ESP_ERR_INVALID_ARG, TAG, "open_model: no model data");
    /* The same requirement as ESP-DL's rodata loader, so a host run catches what a chip would. */
    ESPDL_STREAMING_RETURN_ON_FALSE((reinterpret_cast<uintptr_t>(src.rodata) & 15u) == 0, ESP_ERR_INVALID_ARG, TAG,
                                    "open_model: model data at %p is not 16-byte aligned",
                                    static_cast<const void *>(src.rodata));
    /* Only a pointer is known: the header's size bounds every read (as dl::Model trusts it too);
     * a header that is not EDL1/EDL2 is reported from its first 12 bytes. */
    size_t size = host::espdl_size_from_header(src.rodata);
    if (size == 0) {
        size = 12;
    }
    host::error_sink err;
    host::host_model *model = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(host::open_model_bytes(src.rodata, size, src.round_mode, false, err, &model));
    *out = model;
    return ESP_OK;
}

void close_model(model_interface *model)
{
    if (model != nullptr) {
        host::destroy(static_cast<host::host_model *>(model));
    }
}

} // namespace espdl_streaming
