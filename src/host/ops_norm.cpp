/*
 * Gather, Softmax and LayerNormalization (espdl/ops/norm.py "Gather, Softmax, LayerNorm"), and
 * ReduceMean/Max/Min/Sum (espdl/ops/norm.py "ReduceMean/Max/Min/Sum").
 *
 * These follow ESP-DL's modules, which compute in float32: every float operation below is one
 * float32 operation of ESP-DL's, in ESP-DL's order (the engine is built with -ffp-contract=off, and
 * float arithmetic on the host is IEEE single precision), and exp is the C library's double exp
 * rounded to float, as espdl/ops/norm.py's _exp_f32 computes it.
 */
#include <cfloat>

#include "host_ops.hpp"

namespace espdl_streaming::host {
namespace {

/* float(exp(double(x))), +inf where the double result exceeds the float range (espdl/ops/norm.py _exp_f32). */
float exp_f32(float x)
{
    const double e = std::exp(static_cast<double>(x));
    if (e > static_cast<double>(FLT_MAX)) {
        return INFINITY;
    }
    return static_cast<float>(e);
}

/* ESP-DL's DL_SCALE(exponent) as a float: 2^exponent. */
float scale_f32(int exponent)
{
    return static_cast<float>(std::ldexp(1.0, exponent));
}

/* [outer, len, inner] view of a tensor around `axis`. */
void split_at(const shape_t &s, int axis, int64_t *outer, int64_t *len, int64_t *inner)
{
    *outer = 1;
    *inner = 1;
    for (int d = 0; d < s.rank; ++d) {
        if (d < axis) {
            *outer *= s.dims[d];
        } else if (d > axis) {
            *inner *= s.dims[d];
        }
    }
    *len = s.dims[axis];
}

/* An integer element of an int8 or int16 buffer. */
inline int32_t int_elem(const void *data, etype type, int64_t i)
{
    return type == etype::i8 ? static_cast<const int8_t *>(data)[i] : static_cast<const int16_t *>(data)[i];
}

/* ------------------------------------------------------------------ Gather */

struct gather_state {
    const int64_t *source = nullptr; /* per output element: the input element it copies */
    size_t element = 0;              /* bytes per element */
};

void gather_copy_kernel(const run_ctx &ctx)
{
    const gather_state &s = *static_cast<const gather_state *>(ctx.plan.state);
    const uint8_t *x = static_cast<const uint8_t *>(ctx.plan.in[0]->data);
    slot &y = *ctx.plan.out[0];
    uint8_t *out = static_cast<uint8_t *>(y.data);
    for (int64_t i = 0; i < y.count; ++i) {
        std::memcpy(out + static_cast<size_t>(i) * s.element, x + static_cast<size_t>(s.source[i]) * s.element,
                    s.element);
    }
}

/* ------------------------------------------------------------------ Softmax */

struct softmax_state {
    int64_t outer = 0;
    int64_t len = 0;
    int64_t inner = 0;
    const float *table = nullptr; /* int8: exp of every input value; null for int16 */
    float scale = 1.0f;
};

void softmax_kernel(const run_ctx &ctx)
{
    const softmax_state &s = *static_cast<const softmax_state *>(ctx.plan.state);
    const slot &x = *ctx.plan.in[0];
    float *y = static_cast<float *>(ctx.plan.out[0]->data);
    for (int64_t o = 0; o < s.outer; ++o) {
        for (int64_t k = 0; k < s.inner; ++k) {
            const int64_t base = o * s.len * s.inner + k;
            if (s.table != nullptr) {
                for (int64_t i = 0; i < s.len; ++i) {
                    const int64_t at = base + i * s.inner;
                    y[at] = s.table[int_elem(x.data, x.type, at) + 128];
                }
            } else {
                float top = 0.0f;
                for (int64_t i = 0; i < s.len; ++i) {
                    const int64_t at = base + i * s.inner;
                    y[at] = s.scale * static_cast<float>(int_elem(x.data, x.type, at));
                    top = (i == 0 || y[at] > top) ? y[at] : top;
                }
                for (int64_t i = 0; i < s.len; ++i) {
                    const int64_t at = base + i * s.inner;
                    y[at] = exp_f32(y[at] - top);
                }
            }
            float total = 0.0f;
            for (int64_t i = 0; i < s.len; ++i) {
                total = total + y[base + i * s.inner];
            }
            for (int64_t i = 0; i < s.len; ++i) {
                y[base + i * s.inner] = y[base + i * s.inner] / total;
            }
        }
    }
}

/* ------------------------------------------------------------------ LayerNormalization */

/* Newton steps of ESP-DL's dl::math::sqrt_newton are capped here (espdl/ops/norm.py _sqrt_newton fails
 * beyond: the chip would loop forever; the engine keeps the last value). */
constexpr int sqrt_newton_cap = 100000;

float sqrt_newton(float x)
{
    if (x == 0.0f) {
        return 0.0f;
    }
    float result = x;
    for (int i = 0; i < sqrt_newton_cap; ++i) {
        const float last = result;
        result = (last + x / last) * 0.5f;
        if (!(std::fabs(result - last) > 1e-5f)) {
            break;
        }
    }
    return result;
}

struct layer_norm_state {
    int64_t rows = 0;
    int64_t inner = 0;
    const float *gamma = nullptr; /* scale as floats (q * 2^e), null when absent */
    const float *beta = nullptr;  /* bias as floats, null when absent */
    float in_scale = 1.0f;
    float out_scale = 1.0f;
    float epsilon = 1e-5f;
    double low = 0.0;
    double high = 0.0;
};

/* ESP-DL's tool::round of a float (espdl/ops/kernels.py round_f32). */
double round_f32(float v, rounding mode)
{
    if (mode == rounding::half_even) {
        return static_cast<double>(std::nearbyintf(v));
    }
    const double up = static_cast<double>(v) + 0.5;
    float narrowed = 0.0f;
    if (up > static_cast<double>(FLT_MAX)) {
        narrowed = INFINITY;
    } else if (up < -static_cast<double>(FLT_MAX)) {
        narrowed = -INFINITY;
    } else {
        narrowed = static_cast<float>(up);
    }
    return static_cast<double>(std::floor(narrowed));
}

void layer_norm_kernel(const run_ctx &ctx)
{
    const layer_norm_state &s = *static_cast<const layer_norm_state *>(ctx.plan.state);
    const slot &x = *ctx.plan.in[0];
    slot &y = *ctx.plan.out[0];
    for (int64_t r = 0; r < s.rows; ++r) {
        const int64_t base = r * s.inner;
        int64_t total = 0;
        for (int64_t j = 0; j < s.inner; ++j) {
            total += int_elem(x.data, x.type, base + j);
        }
        float mean = static_cast<float>(static_cast<double>(total) * 1.0 / static_cast<double>(s.inner));
        float variance = 0.0f;
        for (int64_t j = 0; j < s.inner; ++j) {
            const float diff = static_cast<float>(int_elem(x.data, x.type, base + j)) - mean;
            variance = variance + diff * diff;
        }
        mean = mean * s.in_scale;
        variance = variance * (s.in_scale * s.in_scale);
        variance = variance / static_cast<float>(s.inner);
        const float inv_std = 1.0f / sqrt_newton(variance + s.epsilon);
        for (int64_t j = 0; j < s.inner; ++j) {
            const float xv = static_cast<float>(int_elem(x.data, x.type, base + j)) * s.in_scale;
            float result = (xv - mean) * inv_std;
            if (s.gamma != nullptr) {
                result = result * s.gamma[j];
            }
            if (s.beta != nullptr) {
                result = result + s.beta[j];
            }
            double q = round_f32(result * s.out_scale, ctx.mode);
            if (q != q) {
                q = s.high;
            }
            q = q < s.low ? s.low : q > s.high ? s.high : q;
            if (y.type == etype::i8) {
                static_cast<int8_t *>(y.data)[base + j] = static_cast<int8_t>(q);
            } else {
                static_cast<int16_t *>(y.data)[base + j] = static_cast<int16_t>(q);
            }
        }
    }
}

/* ------------------------------------------------------------------ ReduceMean/Max/Min/Sum */

enum class reduce_kind { mean, max, min, sum };

struct reduce_state {
    reduce_kind kind = reduce_kind::mean;
    const int64_t *target = nullptr; /* per input element: the output element it reduces into */
    int64_t *acc = nullptr;          /* per output element: the running sum, maximum or minimum */
    float count = 1.0f;              /* reduced elements per output element */
    float in_scale = 1.0f;
    float out_scale = 1.0f;
    int sum_shift = 0; /* ReduceSum: in_exp - out_exp */
    double low = 0.0;
    double high = 0.0;
};

void reduce_kernel(const run_ctx &ctx)
{
    const reduce_state &s = *static_cast<const reduce_state *>(ctx.plan.state);
    const slot &x = *ctx.plan.in[0];
    slot &y = *ctx.plan.out[0];
    const int64_t start = s.kind == reduce_kind::max   ? static_cast<int64_t>(s.low)
                          : s.kind == reduce_kind::min ? static_cast<int64_t>(s.high)
                                                       : 0;
    for (int64_t o = 0; o < y.count; ++o) {
        s.acc[o] = start;
    }
    for (int64_t i = 0; i < x.count; ++i) {
        const int64_t v = int_elem(x.data, x.type, i);
        int64_t &a = s.acc[s.target[i]];
        if (s.kind == reduce_kind::max) {
            a = v > a ? v : a;
        } else if (s.kind == reduce_kind::min) {
            a = v < a ? v : a;
        } else {
            a += v;
        }
    }
    for (int64_t o = 0; o < y.count; ++o) {
        double q = static_cast<double>(s.acc[o]);
        if (s.kind == reduce_kind::sum) {
            q = round_scaled(std::ldexp(q, s.sum_shift), ctx.mode);
        } else if (s.kind == reduce_kind::mean) {
            float m = static_cast<float>(s.acc[o]) * s.in_scale;
            m = m / s.count;
            q = round_f32(m * s.out_scale, ctx.mode);
        }
        if (q != q) {
            q = s.high;
        }
        q = q < s.low ? s.low : q > s.high ? s.high : q;
        if (y.type == etype::i8) {
            static_cast<int8_t *>(y.data)[o] = static_cast<int8_t>(q);
        } else {
            static_cast<int16_t *>(y.data)[o] = static_cast<int16_t>(q);
        }
    }
}

/* Input 0 as ESP-DL's Softmax, LayerNormalization and reduce modules need it: int8 or int16 with one exponent. */
esp_err_t int_input(prep &p, const char *op, slot **x)
{
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, x));
    if (!(*x)->quantized || (*x)->channel_count > 1 || ((*x)->type != etype::i8 && (*x)->type != etype::i16)) {
        return p.fail("ESP-DL's %s needs an int8 or int16 input with one exponent", op);
    }
    return ESP_OK;
}

esp_err_t axis_of(prep &p, int64_t fallback, int rank, int *axis)
{
    int64_t a = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("axis", fallback, &a));
    if (!normalize_axis(a, rank, axis)) {
        return p.fail("axis %lld does not fit a rank-%d tensor", static_cast<long long>(a), rank);
    }
    return ESP_OK;
}

} // namespace

/* espdl/validate.py _validate_gather + espdl/ops/norm.py _gather */
esp_err_t prepare_gather(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    const tensor_def *indices = nullptr;
    if (p.node().input_count < 2 || (indices = p.graph().initializer(p.node().inputs[1])) == nullptr) {
        return p.unsupported("the indices must be a constant (ESP-DL loads them as a parameter)");
    }
    if (indices->type != etype::i64 && indices->type != etype::i32) {
        return p.unsupported("%s indices: ESP-DL's Gather reads only int64 or int32 indices",
                             etype_name(indices->type));
    }
    slot iv;
    iv.type = indices->type;
    iv.data = const_cast<void *>(indices->data);
    iv.count = indices->count;
    int64_t *values = p.make<int64_t>(static_cast<size_t>(indices->count > 0 ? indices->count : 1));
    if (values == nullptr) {
        return p.no_mem();
    }
    int64_t lowest = 0;
    for (int64_t i = 0; i < indices->count; ++i) {
        int_at(iv, i, &values[i]);
        lowest = (i == 0 || values[i] < lowest) ? values[i] : lowest;
    }
    if (indices->count > 0 && lowest < 0) {
        return p.unsupported("index %lld is negative: ESP-DL's Gather uses it as is (it does not count from the end "
                             "like PyTorch and ONNX)",
                             static_cast<long long>(lowest));
    }
    int axis = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(axis_of(p, 0, x->shape.rank, &axis));
    int64_t outer = 0;
    int64_t len = 0;
    int64_t inner = 0;
    split_at(x->shape, axis, &outer, &len, &inner);
    for (int64_t i = 0; i < indices->count; ++i) {
        if (values[i] >= len) {
            return p.fail("index %lld is outside the %lld elements of axis %d: ESP-DL's Gather does not wrap indices "
                          "around, it would read another row or memory outside the tensor",
                          static_cast<long long>(values[i]), static_cast<long long>(len), axis);
        }
    }
    if (x->channel_count > 1) {
        return p.unsupported("Gather of a constant with per-channel exponents");
    }
    shape_t out;
    if (x->shape.rank - 1 + indices->shape.rank > max_rank) {
        return p.fail("the output would have more than %d axes", max_rank);
    }
    for (int d = 0; d < axis; ++d) {
        out.dims[out.rank++] = x->shape.dims[d];
    }
    for (int d = 0; d < indices->shape.rank; ++d) {
        out.dims[out.rank++] = indices->shape.dims[d];
    }
    for (int d = axis + 1; d < x->shape.rank; ++d) {
        out.dims[out.rank++] = x->shape.dims[d];
    }
    /* the bytes are copied; the graph's exponent says what they mean */
    int exponent = x->exponent;
    int recorded = 0;
    if (x->quantized && p.output_exponent(0, &recorded)) {
        exponent = recorded;
    }
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output_typed(0, out, x->type, x->quantized, exponent, &y));
    gather_state *s = p.make<gather_state>(1);
    int64_t *source = p.make<int64_t>(static_cast<size_t>(y->count > 0 ? y->count : 1));
    if (s == nullptr || source == nullptr) {
        return p.no_mem();
    }
    const int64_t n = indices->count;
    for (int64_t o = 0, i = 0; o < outer; ++o) {
        for (int64_t k = 0; k < n; ++k) {
            for (int64_t j = 0; j < inner; ++j, ++i) {
                source[i] = (o * len + values[k]) * inner + j;
            }
        }
    }
    s->source = source;
    s->element = etype_size(x->type);
    p.add_work(y->count * 2);
    p.set_kernel(gather_copy_kernel, s);
    return ESP_OK;
}

/* espdl/validate.py _validate_softmax + espdl/ops/norm.py _softmax */
esp_err_t prepare_softmax(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(int_input(p, "Softmax", &x));
    int axis = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(axis_of(p, -1, x->shape.rank, &axis));
    softmax_state *s = p.make<softmax_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    split_at(x->shape, axis, &s->outer, &s->len, &s->inner);
    s->scale = scale_f32(x->exponent);
    if (x->type == etype::i8) {
        float *table = p.make<float>(256);
        if (table == nullptr) {
            return p.no_mem();
        }
        for (int i = 0; i < 256; ++i) {
            table[i] = exp_f32(s->scale * static_cast<float>(i - 128));
        }
        s->table = table;
    }
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, x->shape, &y));
    if (y->type != etype::f32) {
        if (y->type != etype::f64 || y->quantized) {
            return p.unsupported("the output is %s, but ESP-DL's Softmax always writes float32", etype_name(y->type));
        }
        /* no value info: espdl/ops/norm.py _softmax returns the float32 result as it is */
        ESPDL_STREAMING_RETURN_ON_ERROR(p.output_typed(0, x->shape, etype::f32, false, 0, &y));
    }
    p.add_work(x->count * 4);
    p.set_kernel(softmax_kernel, s);
    return ESP_OK;
}

/* espdl/validate.py _validate_layer_norm + espdl/ops/norm.py _layer_norm */
esp_err_t prepare_layer_normalization(prep &p)
{
    uint32_t outputs = 0;
    for (uint32_t i = 0; i < p.node().output_count; ++i) {
        outputs += p.node().outputs[i].empty() ? 0 : 1;
    }
    if (outputs > 1) {
        return p.unsupported("the Mean and InvStdDev outputs are not supported");
    }
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    int64_t a = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("axis", -1, &a));
    const char *names[2] = {"Scale", "B"};
    const tensor_def *params[2] = {nullptr, nullptr};
    for (uint32_t k = 0; k < 2; ++k) {
        if (!p.node().has_input(k + 1)) {
            continue;
        }
        params[k] = p.graph().initializer(p.node().inputs[k + 1]);
        if (params[k] == nullptr) {
            return p.unsupported("%s must be a constant", names[k]);
        }
        if (params[k]->exponent_count != 1) {
            return p.unsupported("%s must have one exponent (ESP-DL reads one per tensor)", names[k]);
        }
        if (params[k]->type != x->type) {
            return p.unsupported("%s is %s but the input is %s: ESP-DL reads both as the input's type", names[k],
                                 etype_name(params[k]->type), etype_name(x->type));
        }
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(int_input(p, "LayerNormalization", &x));
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, x->shape, &y));
    if (!y->quantized || y->type != x->type) {
        return p.fail("the output must be %s with an exponent, like the input", etype_name(x->type));
    }
    int axis = 0;
    if (!normalize_axis(a, x->shape.rank, &axis)) {
        return p.fail("axis %lld does not fit a rank-%d tensor", static_cast<long long>(a), x->shape.rank);
    }
    layer_norm_state *s = p.make<layer_norm_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    s->inner = 1;
    for (int d = axis; d < x->shape.rank; ++d) {
        s->inner *= x->shape.dims[d];
    }
    s->rows = s->inner > 0 ? x->count / s->inner : 0;
    const float **dst[2] = {&s->gamma, &s->beta};
    for (uint32_t k = 0; k < 2; ++k) {
        if (params[k] == nullptr) {
            continue;
        }
        if (params[k]->count != s->inner) {
            return p.fail("input %lu has %lld values for %lld normalized elements", static_cast<unsigned long>(k + 1),
                          static_cast<long long>(params[k]->count), static_cast<long long>(s->inner));
        }
        float *values = p.make<float>(static_cast<size_t>(s->inner > 0 ? s->inner : 1));
        if (values == nullptr) {
            return p.no_mem();
        }
        const float scale = scale_f32(clamp_exponent(params[k]->exponents[0]));
        for (int64_t j = 0; j < s->inner; ++j) {
            values[j] = static_cast<float>(int_elem(params[k]->data, params[k]->type, j)) * scale;
        }
        *dst[k] = values;
    }
    double eps = 1e-5;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_float("epsilon", 1e-5, &eps));
    s->epsilon = static_cast<float>(eps);
    s->in_scale = scale_f32(x->exponent);
    s->out_scale = scale_f32(-y->exponent);
    etype_range(y->type, &s->low, &s->high);
    p.add_work(x->count * 6);
    p.set_kernel(layer_norm_kernel, s);
    return ESP_OK;
}

/* espdl/validate.py _validate_reduce + espdl/ops/norm.py _reduce (ESP-DL's dl_module_reduce_*.hpp) */
esp_err_t prepare_reduce(prep &p)
{
    const str_view &op = p.node().op_type;
    reduce_state *s = p.make<reduce_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    s->kind = op.equals("ReduceMax")   ? reduce_kind::max
              : op.equals("ReduceMin") ? reduce_kind::min
              : op.equals("ReduceSum") ? reduce_kind::sum
                                       : reduce_kind::mean;
    if (p.has_attr("axes")) {
        return p.unsupported("the axes are an attribute (ONNX opset < 18): ESP-DL reads them only from the constant "
                             "second input and would reduce every axis; export with opset 18 or later");
    }
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(int_input(p, "reduce module", &x));
    const int rank = x->shape.rank;
    int64_t axes[max_rank] = {};
    uint32_t axis_count = 0;
    if (p.has_input(1)) {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.const_ints(1, "axes", axes, max_rank, &axis_count));
    }
    int64_t noop = 0;
    int64_t keepdims = 1;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("noop_with_empty_axes", 0, &noop));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("keepdims", 1, &keepdims));
    bool flags[max_rank] = {};
    for (int d = 0; d < rank; ++d) {
        flags[d] = axis_count == 0 && noop == 0;
    }
    for (uint32_t k = 0; k < axis_count; ++k) {
        int axis = 0;
        if (!normalize_axis(axes[k], rank, &axis)) {
            return p.fail("axis %lld does not fit a rank-%d tensor", static_cast<long long>(axes[k]), rank);
        }
        flags[axis] = true;
    }
    /* the merged runs of equal flags ESP-DL's forward_template handles (espdl/ops/norm.py _REDUCE_PATTERNS) */
    int runs = 0;
    for (int d = 0; d < rank; ++d) {
        runs += (d == 0 || flags[d] != flags[d - 1]) ? 1 : 0;
    }
    if (runs == 0 || runs > 4 || (runs == 1 && !flags[0])) {
        return p.fail("reducing these axes of a rank-%d tensor: ESP-DL's reduce modules only handle up to two "
                      "separate runs of reduced axes (and at least one), and leave the output unwritten otherwise; "
                      "reduce over neighbouring axes",
                      rank);
    }
    shape_t out;
    int64_t count = 1;
    for (int d = 0; d < rank; ++d) {
        if (flags[d]) {
            count *= x->shape.dims[d];
            if (keepdims != 0) {
                out.dims[out.rank++] = 1;
            }
        } else {
            out.dims[out.rank++] = x->shape.dims[d];
        }
    }
    if (out.rank == 0) {
        out.dims[out.rank++] = 1; /* ESP-DL's output shape when every axis is reduced without keepdims */
    }
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, out, &y));
    if (!y->quantized || y->type != x->type) {
        return p.fail("the output must be %s with an exponent, like the input", etype_name(x->type));
    }
    int64_t *target = p.make<int64_t>(static_cast<size_t>(x->count > 0 ? x->count : 1));
    s->acc = p.make<int64_t>(static_cast<size_t>(y->count > 0 ? y->count : 1));
    if (target == nullptr || s->acc == nullptr) {
        return p.no_mem();
    }
    int64_t index[max_rank] = {};
    for (int64_t i = 0; i < x->count; ++i) {
        int64_t o = 0;
        for (int d = 0; d < rank; ++d) {
            o = flags[d] ? o : o * x->shape.dims[d] + index[d];
        }
        target[i] = o;
        for (int d = rank - 1; d >= 0; --d) {
            if (++index[d] < x->shape.dims[d]) {
                break;
            }
            index[d] = 0;
        }
    }
    s->target = target;
    s->count = static_cast<float>(count);
    s->in_scale = scale_f32(x->exponent);
    s->out_scale = scale_f32(-y->exponent);
    s->sum_shift = x->exponent - y->exponent;
    etype_range(y->type, &s->low, &s->high);
    p.add_work(x->count + y->count * 2);
    p.set_kernel(reduce_kernel, s);
    return ESP_OK;
}

} // namespace espdl_streaming::host
