/*
 * GRU and LSTM as ESP-DL computes them (a port of python/espdl_streaming/espdl/ops/recurrent.py:
 * gru/lstm and _gru/_lstm). Unlike the other kernels these do not requantize a double result:
 * each time step mixes int64 dot products rounded to int16 at the node's gate exponent, float32
 * sigmoid/tanh tables built with the C library's expf, and float32 gate arithmetic with one
 * rounding per operation in source order (hence -ffp-contract=off). The hidden (and cell) state
 * is an integer between steps; it starts from the initial_h / initial_c inputs (raw integers) or
 * zeros on every run: a streaming model loops it through its state_in / state_out tensors.
 */
#include <initializer_list>

#include "host_ops.hpp"

namespace espdl_streaming::host {
namespace {

/* Ranges within which every intermediate stays exactly representable (int64 sums, float32
 * scales that are exact powers of two, float-to-integer conversions in range). Exported models
 * are far inside them. */
constexpr int64_t max_exponent_magnitude = 60;
constexpr int min_shift = -16;
constexpr int max_shift = 62;
constexpr int min_gate_exponent = -16;
constexpr int max_gate_exponent = 16;
constexpr int64_t max_width = int64_t(1) << 14; /* hidden size and input size */

constexpr double sigmoid_range = 6.3; /* ESP-DL's SigmoidLUT bounds */
constexpr double tanh_range = 3.5;    /* ESP-DL's TanhLUT bounds */

/* espdl/ops/recurrent.py _rescale / _scale: 2^-e / 2^e as float32 (exact powers of two in our range). */
float pow2f(int e)
{
    return std::ldexp(1.0f, e);
}

/* espdl/ops/recurrent.py GateTable: ESP-DL's SigmoidLUT / TanhLUT, entries 0..quant_max; negative
 * indices mirror (1 - v for the sigmoid, -v for tanh). */
struct gate_table {
    const float *values = nullptr;
    int64_t quant_max = 0;
    bool sigmoid = true;

    float get(int64_t index) const
    {
        const int64_t magnitude = index < 0 ? -index : index;
        const float v = values[magnitude < quant_max ? magnitude : quant_max];
        if (index >= 0) {
            return v;
        }
        return sigmoid ? 1.0f - v : -v;
    }
};

/* dl::math::sigmoid: 1 / (1 + expf(-x)) in double, returned as float. */
float sigmoid_f32(float x)
{
    return static_cast<float>(1.0 / (1.0 + static_cast<double>(std::exp(-x))));
}

esp_err_t make_gate_table(prep &p, bool sigmoid, int gate_exp, gate_table *out)
{
    const float bound = static_cast<float>(sigmoid ? sigmoid_range : tanh_range);
    const float scale = pow2f(gate_exp);
    const int64_t low = static_cast<int64_t>(-bound / scale) - 1; /* static_cast<int> truncates */
    int64_t high = static_cast<int64_t>(bound / scale) + 1;
    if (-low > high) {
        high = -low;
    }
    float *values = p.make<float>(static_cast<size_t>(high + 1));
    if (values == nullptr) {
        return p.no_mem();
    }
    for (int64_t i = 0; i <= high; ++i) {
        const float x = static_cast<float>(i) * scale;
        /* dl::math::tanh(x) = 2 * sigmoid(2 * x) - 1, in float32 */
        values[i] = sigmoid ? sigmoid_f32(x) : 2.0f * sigmoid_f32(2.0f * x) - 1.0f;
    }
    out->values = values;
    out->quant_max = high;
    out->sigmoid = sigmoid;
    return ESP_OK;
}

/* espdl/ops/recurrent.py round_f32: dl::tool::round on a float32. half_even: the FPU's round to nearest
 * even; half_up: floorf of (the float + 0.5 in double, converted back to float). */
int64_t round_f32(float x, rounding mode)
{
    const float r =
        mode == rounding::half_even ? std::nearbyint(x) : std::floor(static_cast<float>(static_cast<double>(x) + 0.5));
    return static_cast<int64_t>(r); /* |x| < 2^62 within the engine's ranges */
}

int64_t saturate(int64_t v, int64_t low, int64_t high)
{
    return v < low ? low : v > high ? high : v;
}

/* Assigning an int to an int16_t in C: modulo 2^16. */
int64_t wrap16(int64_t v)
{
    return static_cast<int16_t>(static_cast<uint16_t>(static_cast<uint64_t>(v) & 0xffffu));
}

/* espdl/ops/recurrent.py mat_vec_dotprod: int16 results of round(sum(row * vector) * 2^-shift). */
struct dotprod {
    const int64_t *matrix = nullptr; /* rows x cols */
    int64_t rows = 0;
    int64_t cols = 0;
    int shift = 0;
    bool exact = false; /* ESP32-P4's PIE kernel: exact sum, shifted with half-to-even rounding */
    float rescale = 1.0f;

    void run(const int64_t *vector, rounding mode, int64_t *out) const
    {
        for (int64_t row = 0; row < rows; ++row) {
            int64_t acc = 0;
            const int64_t *m = matrix + row * cols;
            for (int64_t k = 0; k < cols; ++k) {
                acc += m[k] * vector[k];
            }
            int64_t q;
            if (exact) {
                if (shift == 0) {
                    q = acc;
                } else {
                    const int64_t floor = acc >> shift; /* arithmetic: floor division */
                    const int64_t rem = static_cast<int64_t>(static_cast<uint64_t>(acc) & ((uint64_t(1) << shift) - 1));
                    const int64_t half = int64_t(1) << (shift - 1);
                    q = floor + ((rem > half || (rem == half && (floor & 1) != 0)) ? 1 : 0);
                }
            } else {
                /* the C kernel: the sum as a float, times DL_RESCALE(shift) (a float32), rounded */
                q = round_f32(static_cast<float>(acc) * rescale, mode);
            }
            out[row] = saturate(q, -32768, 32767);
        }
    }
};

struct recurrent_state {
    bool lstm = false;
    int64_t hidden = 0;
    int64_t input = 0;
    int64_t steps = 0;
    dotprod w;
    dotprod r;
    const int64_t *bias = nullptr; /* GRU: wb then rb (6H); LSTM: wb + rb (4H) */
    gate_table sig;
    gate_table tanh;
    float rescale_y = 1.0f;
    float rescale_c = 1.0f;
    int64_t state_low = 0; /* the input's (and Y's) integer range */
    int64_t state_high = 0;
    int h0_input = -1; /* initial_h / initial_c input indices, -1 when absent */
    int c0_input = -1;
    /* scratch */
    int64_t *x_t = nullptr;
    int64_t *xc = nullptr;
    int64_t *hc = nullptr;
    int64_t *h = nullptr;
    int64_t *c = nullptr;
    float *gates = nullptr;
};

/* Integer element i of a slot (integer types only, checked at prepare). */
int64_t int_of(const slot &s, int64_t i)
{
    int64_t v = 0;
    int_at(s, i, &v);
    return v;
}

/* Store an int64 that fits the slot's integer type. */
void put_int(slot &s, int64_t i, int64_t v)
{
    switch (s.type) {
    case etype::i8:
        static_cast<int8_t *>(s.data)[i] = static_cast<int8_t>(v);
        break;
    case etype::i16:
        static_cast<int16_t *>(s.data)[i] = static_cast<int16_t>(v);
        break;
    default:
        break;
    }
}

/* h0.reshape(-1)[:hidden].astype(dtype): the first `hidden` values, wrapped into the type. */
int64_t wrap_to(etype type, int64_t v)
{
    return type == etype::i8 ? static_cast<int8_t>(static_cast<uint8_t>(static_cast<uint64_t>(v) & 0xffu)) : wrap16(v);
}

void recurrent_kernel(const run_ctx &ctx)
{
    const recurrent_state &s = *static_cast<const recurrent_state *>(ctx.plan.state);
    const rounding mode = ctx.mode;
    const slot &x = *ctx.plan.in[0];
    slot &y = *ctx.plan.out[0];
    slot &y_h = *ctx.plan.out[1];
    const int64_t H = s.hidden;
    for (int64_t j = 0; j < H; ++j) {
        s.h[j] = s.h0_input >= 0 ? wrap_to(x.type, int_of(*ctx.plan.in[s.h0_input], j)) : 0;
        if (s.lstm) {
            s.c[j] = s.c0_input >= 0 ? wrap16(int_of(*ctx.plan.in[s.c0_input], j)) : 0;
        }
    }
    for (int64_t t = 0; t < s.steps; ++t) {
        for (int64_t k = 0; k < s.input; ++k) {
            s.x_t[k] = int_of(x, t * s.input + k);
        }
        s.w.run(s.x_t, mode, s.xc);
        s.r.run(s.h, mode, s.hc);
        if (!s.lstm) {
            if (s.bias != nullptr) {
                for (int64_t j = 0; j < 3 * H; ++j) {
                    s.xc[j] = wrap16(s.xc[j] + s.bias[j]);
                    s.hc[j] = wrap16(s.hc[j] + s.bias[3 * H + j]);
                }
            }
            for (int64_t j = 0; j < 2 * H; ++j) {
                s.gates[j] = s.sig.get(s.xc[j] + s.hc[j]);
            }
            for (int64_t j = 0; j < H; ++j) {
                const float z = s.gates[j];
                const float rg = s.gates[H + j];
                const float n_in = static_cast<float>(s.xc[2 * H + j]) + rg * static_cast<float>(s.hc[2 * H + j]);
                const float n = s.tanh.get(round_f32(n_in, mode));
                float temp = (1.0f - z) * n * s.rescale_y;
                temp = temp + z * static_cast<float>(s.h[j]);
                s.h[j] = saturate(round_f32(temp, mode), s.state_low, s.state_high);
            }
        } else {
            for (int64_t j = 0; j < 4 * H; ++j) {
                /* input_cache[i] += wb[i] + hidden_cache[i] + rb[i]: int arithmetic, stored as int16 */
                s.xc[j] = wrap16(s.xc[j] + (s.bias != nullptr ? s.bias[j] + s.hc[j] : s.hc[j]));
            }
            for (int64_t j = 0; j < H; ++j) {
                const float i_g = s.sig.get(s.xc[j]);
                const float o_g = s.sig.get(s.xc[H + j]);
                const float f_g = s.sig.get(s.xc[2 * H + j]);
                const float g_g = s.tanh.get(s.xc[3 * H + j]);
                const float temp = f_g * static_cast<float>(s.c[j]) + i_g * g_g * s.rescale_c;
                s.c[j] = wrap16(round_f32(temp, mode));
                const float out = o_g * s.tanh.get(s.c[j]) * s.rescale_y;
                s.h[j] = saturate(round_f32(out, mode), s.state_low, s.state_high);
            }
        }
        for (int64_t j = 0; j < H; ++j) {
            put_int(y, t * H + j, s.h[j]);
        }
    }
    for (int64_t j = 0; j < H; ++j) {
        put_int(y_h, j, s.h[j]);
        if (s.lstm) {
            put_int(*ctx.plan.out[2], j, s.c[j]);
        }
    }
}

bool exponent_ok(int64_t e)
{
    return e >= -max_exponent_magnitude && e <= max_exponent_magnitude;
}

/* espdl/validate.py _validate_recurrent */
esp_err_t validate(prep &p, bool lstm, int64_t *hidden)
{
    const node_def &node = p.node();
    const int64_t gates = lstm ? 4 : 3;
    const attr_def *hidden_attr = node.attr("hidden_size");
    if (hidden_attr == nullptr || hidden_attr->kind != attr_kind::i || hidden_attr->i < 1) {
        return p.unsupported("hidden_size must be a positive integer");
    }
    if (hidden_attr->i > max_width) {
        return p.unsupported("hidden_size %lld is beyond the host engine's limit of %lld",
                             static_cast<long long>(hidden_attr->i), static_cast<long long>(max_width));
    }
    *hidden = hidden_attr->i;
    str_view direction;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_string("direction", "forward", &direction));
    if (!direction.equals("forward")) {
        return p.unsupported("direction='%.*s': only forward recurrences are supported",
                             static_cast<int>(direction.size > 40 ? 40 : direction.size),
                             direction.data ? direction.data : "");
    }
    int64_t value = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("layout", 0, &value));
    if (value != 0) {
        return p.unsupported("layout=1 (batch first) is not supported; ESP-DL runs layout 0");
    }
    if (!lstm) {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("linear_before_reset", 0, &value));
        if (value != 1) {
            return p.unsupported("linear_before_reset must be 1 (ESP-DL implements PyTorch's GRU)");
        }
    } else {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("input_forget", 0, &value));
        if (node.has_input(7) || value != 0) {
            return p.unsupported("peepholes and input_forget are not supported by ESP-DL");
        }
    }
    for (const char *name : {"activations", "activation_alpha", "activation_beta", "clip"}) {
        if (p.has_attr(name)) {
            return p.unsupported("custom activations and clipping are not supported by ESP-DL");
        }
    }
    if (node.has_input(4)) {
        return p.unsupported("sequence_lens is not supported by ESP-DL");
    }
    for (uint32_t index = 1; index <= 2; ++index) {
        const char *what = index == 1 ? "W" : "R";
        const tensor_def *t = node.input_count > index ? p.graph().initializer(node.inputs[index]) : nullptr;
        if (t == nullptr) {
            return p.unsupported("%s must be a constant", what);
        }
        if (t->exponent_count != 1) {
            return p.unsupported("%s must have one exponent (per-tensor quantization)", what);
        }
        const shape_t &d = t->shape;
        if (d.rank != 3 || d.dims[0] != 1 || d.dims[1] != gates * *hidden || (index == 2 && d.dims[2] != *hidden)) {
            return p.unsupported("%s has dims that are not [1, %lld, ...]", what,
                                 static_cast<long long>(gates * *hidden));
        }
    }
    if (node.has_input(3)) {
        const tensor_def *b = p.graph().initializer(node.inputs[3]);
        if (b == nullptr || b->type != etype::i16 || b->count != 2 * gates * *hidden) {
            return p.unsupported("B must be a constant int16 tensor of %lld values",
                                 static_cast<long long>(2 * gates * *hidden));
        }
    }
    return ESP_OK;
}

/* A constant as int64 values (the raw integers: ESP-DL's kernels read them directly). int8 or
 * int16 only, as in ESP-DL: that keeps every dot product and scaled sum far inside int64. */
esp_err_t const_int64(prep &p, const tensor_def &t, const int64_t **out)
{
    if (t.type != etype::i8 && t.type != etype::i16) {
        return p.unsupported("'%.*s' is %s; ESP-DL's recurrent layers take int8 or int16",
                             static_cast<int>(t.name.size > 80 ? 80 : t.name.size), t.name.data ? t.name.data : "",
                             etype_name(t.type));
    }
    int64_t *values = p.make<int64_t>(static_cast<size_t>(t.count));
    if (values == nullptr) {
        return p.no_mem();
    }
    slot view;
    view.type = t.type;
    view.data = const_cast<void *>(t.data);
    for (int64_t i = 0; i < t.count; ++i) {
        int_at(view, i, &values[i]);
    }
    *out = values;
    return ESP_OK;
}

esp_err_t prepare_recurrent(prep &p, bool lstm)
{
    recurrent_state *s = p.make<recurrent_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    s->lstm = lstm;
    ESPDL_STREAMING_RETURN_ON_ERROR(validate(p, lstm, &s->hidden));
    const int64_t H = s->hidden;
    const int64_t gates = lstm ? 4 : 3;

    /* espdl/ops/recurrent.py _recurrent_args */
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    if (!x->quantized || x->channel_count > 1) {
        return p.fail("needs a quantized input with one exponent");
    }
    if (x->type != etype::i8 && x->type != etype::i16) {
        return p.unsupported("a %s input is not supported (ESP-DL: int8 or int16)", etype_name(x->type));
    }
    const uint32_t outputs = lstm ? 3 : 2;
    if (p.node().output_count < outputs) {
        return p.fail("needs %lu outputs", static_cast<unsigned long>(outputs));
    }
    int y_exp = 0;
    int h_exp = 0;
    int c_exp = 0;
    if (!p.output_exponent(0, &y_exp) || !p.output_exponent(1, &h_exp)) {
        return p.fail("its outputs Y and Y_h must be quantized");
    }
    if (lstm && !p.output_exponent(2, &c_exp)) {
        return p.fail("its output Y_c must be quantized");
    }
    const tensor_def *w = p.graph().initializer(p.node().inputs[1]);
    const tensor_def *r = p.graph().initializer(p.node().inputs[2]);
    int64_t gate_exp = -8;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("gate_exponent", -8, &gate_exp));
    const int64_t x_exp = x->exponent;
    if (!exponent_ok(x_exp) || !exponent_ok(w->exponents[0]) || !exponent_ok(r->exponents[0]) || !exponent_ok(y_exp) ||
        !exponent_ok(h_exp) || !exponent_ok(c_exp) || gate_exp < min_gate_exponent || gate_exp > max_gate_exponent) {
        return p.unsupported("exponents beyond the host engine's range for recurrent layers");
    }
    const int64_t w_shift = gate_exp - (x_exp + w->exponents[0]);
    const int64_t r_shift = gate_exp - (h_exp + r->exponents[0]);
    if (w_shift < min_shift || w_shift > max_shift || r_shift < min_shift || r_shift > max_shift) {
        return p.unsupported("gate shifts %lld / %lld beyond the host engine's range for recurrent layers",
                             static_cast<long long>(w_shift), static_cast<long long>(r_shift));
    }

    /* x: [T, 1, input]; W: [1, gates*H, input] */
    s->input = w->shape.dims[2];
    s->steps = x->shape.rank > 0 ? x->shape.dims[0] : 0;
    if (x->shape.rank == 0 || (s->steps > 0 && x->count / s->steps != s->input) || H > max_width ||
        s->input > max_width) {
        return p.fail("an input of %lld values per step does not fit W of %lld columns (or sizes beyond %lld)",
                      static_cast<long long>(s->steps > 0 ? x->count / s->steps : 0), static_cast<long long>(s->input),
                      static_cast<long long>(max_width));
    }
    for (int which = 5; which <= (lstm ? 6 : 5); ++which) {
        slot *init = p.input(static_cast<uint32_t>(which));
        if (init == nullptr) {
            continue;
        }
        if (!etype_quantizable(init->type) || init->count < H) {
            return p.unsupported("initial state input %d must hold at least %lld integers", which,
                                 static_cast<long long>(H));
        }
        (which == 5 ? s->h0_input : s->c0_input) = which;
    }

    const int64_t *w_values = nullptr;
    const int64_t *r_values = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(const_int64(p, *w, &w_values));
    ESPDL_STREAMING_RETURN_ON_ERROR(const_int64(p, *r, &r_values));
    const bool half_even = p.mode() == rounding::half_even;
    s->w = dotprod{w_values, gates * H, s->input, static_cast<int>(w_shift), false, pow2f(-static_cast<int>(w_shift))};
    s->r = dotprod{r_values, gates * H, H, static_cast<int>(r_shift), false, pow2f(-static_cast<int>(r_shift))};
    /* ESP32-P4's PIE kernels: 16 lanes for int8 x int8, 8 otherwise; a length multiple of them */
    const int64_t w_lanes = w->type == etype::i8 && x->type == etype::i8 ? 16 : 8;
    const int64_t r_lanes = r->type == etype::i8 && x->type == etype::i8 ? 16 : 8;
    s->w.exact = half_even && w_shift >= 0 && s->input % w_lanes == 0;
    s->r.exact = half_even && r_shift >= 0 && H % r_lanes == 0;

    if (p.node().has_input(3)) {
        const int64_t *b = nullptr;
        ESPDL_STREAMING_RETURN_ON_ERROR(const_int64(p, *p.graph().initializer(p.node().inputs[3]), &b));
        if (lstm) {
            int64_t *sum = p.make<int64_t>(static_cast<size_t>(4 * H));
            if (sum == nullptr) {
                return p.no_mem();
            }
            for (int64_t j = 0; j < 4 * H; ++j) {
                sum[j] = b[j] + b[4 * H + j];
            }
            b = sum;
        }
        s->bias = b;
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(make_gate_table(p, true, static_cast<int>(gate_exp), &s->sig));
    ESPDL_STREAMING_RETURN_ON_ERROR(make_gate_table(p, false, static_cast<int>(gate_exp), &s->tanh));
    s->rescale_y = pow2f(-y_exp);
    s->rescale_c = pow2f(-c_exp);
    s->state_low = x->type == etype::i8 ? -128 : -32768;
    s->state_high = x->type == etype::i8 ? 127 : 32767;
    s->x_t = p.make<int64_t>(static_cast<size_t>(s->input));
    s->xc = p.make<int64_t>(static_cast<size_t>(gates * H));
    s->hc = p.make<int64_t>(static_cast<size_t>(gates * H));
    s->h = p.make<int64_t>(static_cast<size_t>(H));
    s->c = p.make<int64_t>(static_cast<size_t>(H));
    s->gates = p.make<float>(static_cast<size_t>(2 * H));
    if (s->x_t == nullptr || s->xc == nullptr || s->hc == nullptr || s->h == nullptr || s->c == nullptr ||
        s->gates == nullptr) {
        return p.no_mem();
    }

    /* Y [T, 1, 1, H] and Y_h [1, 1, H] in the input's dtype; Y_c [1, 1, H] int16 */
    shape_t y_shape;
    y_shape.rank = 4;
    y_shape.dims[0] = s->steps;
    y_shape.dims[1] = 1;
    y_shape.dims[2] = 1;
    y_shape.dims[3] = H;
    shape_t state_shape;
    state_shape.rank = 3;
    state_shape.dims[0] = 1;
    state_shape.dims[1] = 1;
    state_shape.dims[2] = H;
    slot *out = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output_typed(0, y_shape, x->type, true, y_exp, &out));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output_typed(1, state_shape, x->type, true, h_exp, &out));
    if (lstm) {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.output_typed(2, state_shape, etype::i16, true, c_exp, &out));
    }
    p.add_work(s->steps * gates * H * (s->input + H + 8));
    p.set_kernel(recurrent_kernel, s);
    return ESP_OK;
}

} // namespace

esp_err_t prepare_gru(prep &p)
{
    return prepare_recurrent(p, false);
}

esp_err_t prepare_lstm(prep &p)
{
    return prepare_recurrent(p, true);
}

} // namespace espdl_streaming::host
