/*
 * Element-wise operators (espdl/ops/elementwise.py): Add/Sub/Mul/Div with numpy
 * broadcasting, the activations (math in double, one IEEE operation per numpy operation, libm's
 * tanh), the look-up tables (int8 direct, ESP-DL's step-sub-sampled INT16 `LUT` node) and
 * RequantizeLinear.
 */
#include "host_ops.hpp"

namespace espdl_streaming::host {
namespace {

/* Walk a broadcast of two operands: calls fn(out index, a offset, b offset). */
struct broadcast2 {
    shape_t out;
    int64_t sa[max_rank] = {};
    int64_t sb[max_rank] = {};

    template <class F>
    void each(int64_t count, F &&fn) const
    {
        int64_t idx[max_rank] = {};
        int64_t oa = 0;
        int64_t ob = 0;
        for (int64_t i = 0; i < count; ++i) {
            fn(i, oa, ob);
            for (int d = out.rank - 1; d >= 0; --d) {
                oa += sa[d];
                ob += sb[d];
                if (++idx[d] < out.dims[d]) {
                    break;
                }
                oa -= sa[d] * out.dims[d];
                ob -= sb[d] * out.dims[d];
                idx[d] = 0;
            }
        }
    }
};

esp_err_t make_broadcast(prep &p, const shape_t &a, const shape_t &b, broadcast2 *out)
{
    if (!broadcast_shapes(a, b, &out->out)) {
        char sa[96];
        char sb[96];
        format_shape(a, sa, sizeof(sa));
        format_shape(b, sb, sizeof(sb));
        return p.fail("input shapes %s and %s do not broadcast", sa, sb);
    }
    broadcast_strides(a, out->out, out->sa);
    broadcast_strides(b, out->out, out->sb);
    return ESP_OK;
}

/* numpy's maximum / minimum (NaN propagates; the first operand wins ties). */
inline double np_maximum(double a, double b)
{
    return (a >= b || a != a) ? a : b;
}

inline double np_minimum(double a, double b)
{
    return (a <= b || a != a) ? a : b;
}

/* numpy's clip: max then min, NaN propagates. */
inline double np_clip(double v, double low, double high)
{
    if (v != v) {
        return v;
    }
    v = v > low ? v : (low != low ? low : (v < low ? low : v));
    return v < high ? v : (high != high ? high : (v > high ? high : v));
}

/* espdl/ops/elementwise.py _sigmoid */
inline double sigmoid(double x)
{
    return 0.5 * (1.0 + std::tanh(0.5 * x));
}

/* ------------------------------------------------------------------ binary */

enum class binary_op : uint8_t { add, sub, mul, div };

struct binary_state {
    broadcast2 bc;
    binary_op op = binary_op::add;
};

void binary_kernel(const run_ctx &ctx)
{
    const binary_state &s = *static_cast<const binary_state *>(ctx.plan.state);
    const double *a = ctx.plan.x[0];
    const double *b = ctx.plan.x[1];
    double *y = ctx.plan.y[0];
    switch (s.op) {
    case binary_op::add:
        s.bc.each(ctx.plan.out[0]->count, [&](int64_t i, int64_t ia, int64_t ib) { y[i] = a[ia] + b[ib]; });
        break;
    case binary_op::sub:
        s.bc.each(ctx.plan.out[0]->count, [&](int64_t i, int64_t ia, int64_t ib) { y[i] = a[ia] - b[ib]; });
        break;
    case binary_op::mul:
        s.bc.each(ctx.plan.out[0]->count, [&](int64_t i, int64_t ia, int64_t ib) { y[i] = a[ia] * b[ib]; });
        break;
    case binary_op::div:
        s.bc.each(ctx.plan.out[0]->count, [&](int64_t i, int64_t ia, int64_t ib) { y[i] = a[ia] / b[ib]; });
        break;
    }
}

esp_err_t prepare_binary(prep &p, binary_op op)
{
    binary_state *s = p.make<binary_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    s->op = op;
    slot *a = nullptr;
    slot *b = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &a));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(1, &b));
    ESPDL_STREAMING_RETURN_ON_ERROR(make_broadcast(p, a->shape, b->shape, &s->bc));
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, s->bc.out, &y));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(0));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(1));
    p.emits_real(0);
    p.add_work(y->count * (s->bc.out.rank + 1));
    p.set_kernel(binary_kernel, s);
    return ESP_OK;
}

/* ------------------------------------------------------------------ math activations */

enum class math_op : uint8_t {
    relu,
    leaky_relu,
    prelu,
    sigmoid,
    tanh,
    hard_sigmoid,
    hard_swish,
    swish,
    clip,
    identity,
};

struct math_state {
    math_op op = math_op::identity;
    double alpha = 0.0;
    double beta = 0.0;
    broadcast2 bc; /* PRelu (x, slope); Clip (x, bounds) */
    int low_input = -1; /* Clip: input index of the bound, or -1 for the constant below */
    int high_input = -1;
    double low = 0.0;
    double high = 0.0;
};

bool math_op_of(const str_view &name, math_op *out)
{
    static const struct {
        const char *name;
        math_op op;
    } names[] = {
        {"Relu", math_op::relu},
        {"LeakyRelu", math_op::leaky_relu},
        {"PRelu", math_op::prelu},
        {"Sigmoid", math_op::sigmoid},
        {"Tanh", math_op::tanh},
        {"HardSigmoid", math_op::hard_sigmoid},
        {"HardSwish", math_op::hard_swish},
        {"Swish", math_op::swish},
        {"SiLU", math_op::swish},
        {"Clip", math_op::clip},
        {"Identity", math_op::identity},
    };
    for (const auto &n : names) {
        if (name.equals(n.name)) {
            *out = n.op;
            return true;
        }
    }
    return false;
}

void math_kernel(const run_ctx &ctx)
{
    const math_state &s = *static_cast<const math_state *>(ctx.plan.state);
    const double *x = ctx.plan.x[0];
    double *y = ctx.plan.y[0];
    const int64_t n = ctx.plan.out[0]->count;
    switch (s.op) {
    case math_op::relu:
        for (int64_t i = 0; i < n; ++i) {
            y[i] = np_maximum(x[i], 0.0);
        }
        break;
    case math_op::leaky_relu:
        for (int64_t i = 0; i < n; ++i) {
            y[i] = x[i] >= 0 ? x[i] : x[i] * s.alpha;
        }
        break;
    case math_op::prelu: {
        const double *slope = ctx.plan.x[1];
        s.bc.each(n, [&](int64_t i, int64_t ix, int64_t is) { y[i] = x[ix] >= 0 ? x[ix] : x[ix] * slope[is]; });
        break;
    }
    case math_op::sigmoid:
        for (int64_t i = 0; i < n; ++i) {
            y[i] = sigmoid(x[i]);
        }
        break;
    case math_op::tanh:
        for (int64_t i = 0; i < n; ++i) {
            y[i] = std::tanh(x[i]);
        }
        break;
    case math_op::hard_sigmoid:
        for (int64_t i = 0; i < n; ++i) {
            y[i] = np_clip(s.alpha * x[i] + s.beta, 0.0, 1.0);
        }
        break;
    case math_op::hard_swish:
        for (int64_t i = 0; i < n; ++i) {
            y[i] = x[i] * np_clip(x[i] / 6.0 + 0.5, 0.0, 1.0);
        }
        break;
    case math_op::swish:
        for (int64_t i = 0; i < n; ++i) {
            y[i] = x[i] * sigmoid(x[i]);
        }
        break;
    case math_op::clip: {
        /* np.minimum(np.maximum(x, low), high); the bounds are single values */
        const double low = s.low_input >= 0 ? ctx.plan.x[s.low_input][0] : s.low;
        const double high = s.high_input >= 0 ? ctx.plan.x[s.high_input][0] : s.high;
        for (int64_t i = 0; i < n; ++i) {
            y[i] = np_minimum(np_maximum(x[i], low), high);
        }
        break;
    }
    case math_op::identity:
        for (int64_t i = 0; i < n; ++i) {
            y[i] = x[i];
        }
        break;
    }
}

esp_err_t prepare_math(prep &p, math_op op)
{
    math_state *s = p.make<math_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    s->op = op;
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(0));
    shape_t out = x->shape;
    switch (op) {
    case math_op::leaky_relu:
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_float("alpha", 0.01, &s->alpha));
        break;
    case math_op::hard_sigmoid:
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_float("alpha", 0.2, &s->alpha));
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_float("beta", 0.5, &s->beta));
        break;
    case math_op::prelu: {
        slot *slope = nullptr;
        ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(1, &slope));
        ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(1));
        if (x->shape.rank == 0) {
            return p.fail("PRelu of a scalar");
        }
        shape_t slope_shape = slope->shape;
        if (slope->count == x->shape.last()) {
            /* esp-ppq keeps the NCW-broadcast shape (C, 1): one slope per channel */
            slope_shape.rank = 1;
            slope_shape.dims[0] = slope->count;
        }
        ESPDL_STREAMING_RETURN_ON_ERROR(make_broadcast(p, x->shape, slope_shape, &s->bc));
        out = s->bc.out;
        break;
    }
    case math_op::clip: {
        /* low = x[1] or -inf, high = x[2] or +inf; min/max attributes override them (and then the
         * input's shape takes no part in the broadcast). */
        s->low = -HUGE_VAL;
        s->high = HUGE_VAL;
        const char *attr_names[2] = {"min", "max"};
        for (int which = 1; which <= 2; ++which) {
            slot *bound = p.input(which);
            if (p.has_attr(attr_names[which - 1])) {
                ESPDL_STREAMING_RETURN_ON_ERROR(
                    p.attr_float(attr_names[which - 1], 0.0, which == 1 ? &s->low : &s->high));
                continue;
            }
            if (bound == nullptr) {
                continue;
            }
            if (bound->count != 1) {
                return p.unsupported("Clip bounds must be single values");
            }
            ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(which));
            (which == 1 ? s->low_input : s->high_input) = which;
            shape_t joint;
            broadcast_shapes(out, bound->shape, &joint); /* one value: only the rank can grow */
            out = joint;
        }
        break;
    }
    default:
        break;
    }
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, out, &y));
    p.emits_real(0);
    p.add_work(y->count * 4);
    p.set_kernel(math_kernel, s);
    return ESP_OK;
}

/* ------------------------------------------------------------------ look-up tables */

struct lookup_state {
    double low = 0.0;             /* lowest input value: index = q - low */
    const int32_t *direct = nullptr; /* output integers (table exponent == output exponent) */
    const double *real = nullptr;    /* else output reals, requantized by the executor */
};

void lookup_kernel(const run_ctx &ctx)
{
    const lookup_state &s = *static_cast<const lookup_state *>(ctx.plan.state);
    const slot &x = *ctx.plan.in[0];
    slot &y = *ctx.plan.out[0];
    for (int64_t i = 0; i < x.count; ++i) {
        int64_t q = 0;
        int_at(x, i, &q);
        const int64_t index = q - static_cast<int64_t>(s.low);
        if (s.direct != nullptr) {
            /* store_real_at of an integer at the output's own exponent: the integer, clipped */
            switch (y.type) {
            case etype::i8:
                static_cast<int8_t *>(y.data)[i] = static_cast<int8_t>(s.direct[index]);
                break;
            case etype::i16:
                static_cast<int16_t *>(y.data)[i] = static_cast<int16_t>(s.direct[index]);
                break;
            case etype::u8:
                static_cast<uint8_t *>(y.data)[i] = static_cast<uint8_t>(s.direct[index]);
                break;
            case etype::u16:
                static_cast<uint16_t *>(y.data)[i] = static_cast<uint16_t>(s.direct[index]);
                break;
            default:
                static_cast<int32_t *>(y.data)[i] = s.direct[index];
                break;
            }
        } else {
            ctx.plan.y[0][i] = s.real[index];
        }
    }
}

/* espdl/ops/elementwise.py _lookup */
esp_err_t prepare_lookup(prep &p, const tensor_def &table)
{
    lookup_state *s = p.make<lookup_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    if (!x->quantized) {
        return p.fail("a look-up table needs a quantized input");
    }
    double high;
    etype_range(x->type, &s->low, &high);
    const int64_t span = int64_t(1) << (8 * etype_size(x->type));
    const int64_t entries = table.count;
    const bool is_lut_node = p.node().op_type.equals("LUT");
    if (entries != span && (!is_lut_node || span != 65536)) {
        return p.fail("a %lld-entry table does not fit a %s input", static_cast<long long>(entries),
                      etype_name(x->type));
    }
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, x->shape, &y));
    if (table.exponent_count == 0 && !y->quantized) {
        return p.fail("has a LUT without an exponent");
    }
    const int table_exp = table.exponent_count > 0 ? clamp_exponent(table.exponents[0]) : y->exponent;
    /* Entries as int64 (astype), for every possible input value. */
    slot tv;
    tv.type = table.type;
    tv.data = const_cast<void *>(table.data);
    tv.count = table.count;
    const bool direct = y->quantized && table_exp == y->exponent;
    int32_t *out_int = direct ? p.make<int32_t>(static_cast<size_t>(span)) : nullptr;
    double *out_real = direct ? nullptr : p.make<double>(static_cast<size_t>(span));
    if (out_int == nullptr && out_real == nullptr) {
        return p.no_mem();
    }
    double lo = 0.0;
    double hi = 0.0;
    etype_range(y->type, &lo, &hi);
    const int64_t step = entries == span ? 1 : span / (entries - 1);
    for (int64_t index = 0; index < span; ++index) {
        int64_t at = index;
        if (entries != span) {
            /* INT16 LUT node: 65536 / step + 1 pivots; the nearest pivot, idx / step rounded
             * with the chip's rounding (step is a power of two) */
            const double nearest = round_scaled(static_cast<double>(index) / static_cast<double>(step), p.mode());
            at = static_cast<int64_t>(nearest);
            at = at < 0 ? 0 : at > entries - 1 ? entries - 1 : at;
        }
        int64_t entry = 0;
        if (!int_at(tv, at, &entry)) {
            return p.unsupported("look-up table entry %lld is not an integer", static_cast<long long>(at));
        }
        if (direct) {
            const double v = static_cast<double>(entry);
            out_int[index] = static_cast<int32_t>(v < lo ? lo : v > hi ? hi : v);
        } else {
            out_real[index] = std::ldexp(static_cast<double>(entry), table_exp);
        }
    }
    s->direct = out_int;
    s->real = out_real;
    if (!direct) {
        p.emits_real(0);
    }
    p.add_work(x->count * 2);
    p.set_kernel(lookup_kernel, s);
    return ESP_OK;
}

/* espdl/validate.py _validate_lut_node */
esp_err_t validate_lut_node(prep &p, const tensor_def *table, math_op *original)
{
    if (table == nullptr) {
        str_view name;
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_string("original_op_type", "None", &name));
        if (!math_op_of(name, original)) {
            return p.unsupported("LUT node without a table for '%.*s'",
                                 static_cast<int>(name.size > 40 ? 40 : name.size), name.data ? name.data : "");
        }
        return ESP_OK;
    }
    const int64_t pivots = table->count - 1;
    if (pivots < 1 || 65536 % pivots != 0 || ((65536 / pivots) & (65536 / pivots - 1)) != 0) {
        return p.unsupported("a %lld-entry table is not a power-of-two step INT16 LUT",
                             static_cast<long long>(table->count));
    }
    return ESP_OK;
}

} // namespace

esp_err_t prepare_add(prep &p)
{
    return prepare_binary(p, binary_op::add);
}

esp_err_t prepare_sub(prep &p)
{
    return prepare_binary(p, binary_op::sub);
}

esp_err_t prepare_mul(prep &p)
{
    return prepare_binary(p, binary_op::mul);
}

esp_err_t prepare_div(prep &p)
{
    return prepare_binary(p, binary_op::div);
}

/* espdl/ops/elementwise.py _unary: the table when there is one (always for LUT nodes, for int8 inputs
 * otherwise), else the math of the op type (of original_op_type for a LUT node). */
esp_err_t prepare_unary(prep &p)
{
    const node_def &node = p.node();
    const bool is_lut_node = node.op_type.equals("LUT");
    /* The builder checked that a `lut` attribute names a constant; an empty name means no table
     * (`if name` in _lut_table) although the validation of a LUT node looks it up anyway. */
    const attr_def *lut = node.attr("lut");
    const tensor_def *named = lut != nullptr ? p.graph().initializer(lut->s) : nullptr;
    const tensor_def *table = lut != nullptr && !lut->s.empty() ? named : nullptr;
    math_op op = math_op::identity;
    if (is_lut_node) {
        ESPDL_STREAMING_RETURN_ON_ERROR(validate_lut_node(p, named, &op));
    } else if (!math_op_of(node.op_type, &op)) {
        return p.fail("internal error: no math for this op type");
    }
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    if (table != nullptr && (is_lut_node || x->type == etype::i8)) {
        return prepare_lookup(p, *table);
    }
    if (is_lut_node && table == nullptr) {
        str_view name;
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_string("original_op_type", "None", &name));
        if (!math_op_of(name, &op)) {
            return p.unsupported("LUT node without a table for '%.*s'",
                                 static_cast<int>(name.size > 40 ? 40 : name.size), name.data ? name.data : "");
        }
    }
    return prepare_math(p, op);
}

esp_err_t prepare_requantize(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(0));
    math_state *s = p.make<math_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    s->op = math_op::identity;
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, x->shape, &y));
    p.emits_real(0);
    p.add_work(y->count);
    p.set_kernel(math_kernel, s);
    return ESP_OK;
}

} // namespace espdl_streaming::host
