/*
 * Conv, Gemm, MatMul and the pools (espdl/ops/dense.py "Conv, Gemm, MatMul" and "pooling").
 *
 * Tensors are channels-last (N, *spatial, C), filters (*kernel, C, N) or (*kernel, N, 1) for a
 * depthwise convolution, in plain row-major order (the reader undid the packing). Weights are
 * dequantized once at open time with their per-channel exponents; products and sums of these
 * dyadic values are exact in double, so any summation order gives numpy's result.
 */
#include "host_ops.hpp"

namespace espdl_streaming::host {
namespace {

/* Largest kernel attribute, stride, dilation or pad accepted (keeps index arithmetic in range). */
constexpr int64_t max_spatial_attr = int64_t(1) << 24;
/* Spatial rank of convolutions and pools (1-D and 2-D models; 3-D for good measure). */
constexpr int max_spatial_rank = 3;

struct spatial {
    int rank = 0;
    int64_t kernel[max_spatial_rank] = {};
    int64_t strides[max_spatial_rank] = {};
    int64_t dilations[max_spatial_rank] = {};
    int64_t pads[2 * max_spatial_rank] = {}; /* begin_0.., end_0.. */
    int64_t in[max_spatial_rank] = {};
    int64_t out[max_spatial_rank] = {};
    int64_t kernel_total = 1;
    int64_t in_total = 1;
    int64_t out_total = 1;
};

/* espdl/validate.py _validate_spatial and espdl/ops/dense.py _spatial_attrs. */
esp_err_t parse_spatial(prep &p, spatial *sp)
{
    int64_t values[2 * max_rank];
    uint32_t count = 0;
    bool present = false;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_ints("kernel_shape", values, max_rank, &count, &present));
    if (!present || count == 0) {
        return p.unsupported("missing kernel_shape");
    }
    if (count > static_cast<uint32_t>(max_spatial_rank)) {
        return p.unsupported("a %lu-D kernel is not supported by the host engine", static_cast<unsigned long>(count));
    }
    sp->rank = static_cast<int>(count);
    for (int i = 0; i < sp->rank; ++i) {
        sp->kernel[i] = values[i];
        sp->strides[i] = 1;
        sp->dilations[i] = 1;
        sp->pads[i] = sp->pads[i + sp->rank] = 0;
    }
    struct list {
        const char *name;
        int64_t *dst;
        uint32_t length;
    };
    const list lists[] = {{"strides", sp->strides, count},
                          {"dilations", sp->dilations, count},
                          {"pads", sp->pads, 2 * count}};
    for (const list &l : lists) {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_ints(l.name, values, 2 * max_rank, &count, &present));
        if (present && count != l.length) {
            return p.unsupported("%s has %lu values and does not match a %d-D kernel", l.name,
                                 static_cast<unsigned long>(count), sp->rank);
        }
        for (uint32_t i = 0; present && i < count; ++i) {
            l.dst[i] = values[i];
        }
    }
    for (int i = 0; i < sp->rank; ++i) {
        if (sp->strides[i] < 1 || sp->dilations[i] < 1) {
            return p.unsupported("strides and dilations must be positive");
        }
    }
    for (int i = 0; i < 2 * sp->rank; ++i) {
        if (sp->pads[i] < 0) {
            return p.unsupported("negative pads");
        }
    }
    int64_t ceil_mode = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("ceil_mode", 0, &ceil_mode));
    if (ceil_mode != 0) {
        return p.unsupported("ceil_mode=1 is not supported");
    }
    str_view auto_pad;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_string("auto_pad", "NOTSET", &auto_pad));
    if (!auto_pad.equals("NOTSET")) {
        return p.unsupported("auto_pad=%.*s is not supported",
                             static_cast<int>(auto_pad.size > 40 ? 40 : auto_pad.size),
                             auto_pad.data ? auto_pad.data : "");
    }
    for (int i = 0; i < sp->rank; ++i) {
        if (sp->kernel[i] < 1 || sp->kernel[i] > max_spatial_attr || sp->strides[i] > max_spatial_attr ||
            sp->dilations[i] > max_spatial_attr || sp->pads[i] > max_spatial_attr ||
            sp->pads[i + sp->rank] > max_spatial_attr) {
            return p.unsupported("kernel_shape, strides, dilations or pads out of the host engine's range");
        }
        sp->kernel_total *= sp->kernel[i];
        if (sp->kernel_total > max_spatial_attr) {
            return p.unsupported("a kernel of more than %lld taps is not supported",
                                 static_cast<long long>(max_spatial_attr));
        }
    }
    return ESP_OK;
}

/* Output size of every spatial axis of x (N, *spatial, C): _conv_windows on the padded input. */
esp_err_t spatial_output(prep &p, const shape_t &x, spatial *sp)
{
    if (x.rank != sp->rank + 2) {
        return p.fail("a %d-D kernel does not fit an input of rank %d", sp->rank, x.rank);
    }
    for (int d = 0; d < sp->rank; ++d) {
        sp->in[d] = x.dims[1 + d];
        const int64_t padded = sp->in[d] + sp->pads[d] + sp->pads[d + sp->rank];
        const int64_t span = sp->dilations[d] * (sp->kernel[d] - 1) + 1;
        if (span > padded) {
            return p.fail("axis %d: a window of %lld does not fit the padded input of %lld", d + 1,
                          static_cast<long long>(span), static_cast<long long>(padded));
        }
        sp->out[d] = (padded - span) / sp->strides[d] + 1;
        sp->in_total *= sp->in[d];
        sp->out_total *= sp->out[d];
    }
    return ESP_OK;
}

/* Call fn(tap, input spatial offset) for every tap of output position `o` inside the input;
 * returns how many there were (padding taps are skipped: they read zero, or -inf for MaxPool). */
template <class F>
int64_t for_each_tap(const spatial &sp, const int64_t *o, F &&fn)
{
    int64_t k[max_spatial_rank] = {};
    int64_t inside_count = 0;
    for (int64_t tap = 0; tap < sp.kernel_total; ++tap) {
        bool inside = true;
        int64_t flat = 0;
        for (int d = 0; d < sp.rank; ++d) {
            const int64_t pos = o[d] * sp.strides[d] + k[d] * sp.dilations[d] - sp.pads[d];
            if (pos < 0 || pos >= sp.in[d]) {
                inside = false;
                break;
            }
            flat = flat * sp.in[d] + pos;
        }
        if (inside) {
            fn(tap, flat);
            ++inside_count;
        }
        for (int d = sp.rank - 1; d >= 0; --d) {
            if (++k[d] < sp.kernel[d]) {
                break;
            }
            k[d] = 0;
        }
    }
    return inside_count;
}

void next_position(const spatial &sp, int64_t *o)
{
    for (int d = sp.rank - 1; d >= 0; --d) {
        if (++o[d] < sp.out[d]) {
            return;
        }
        o[d] = 0;
    }
}

/* espdl/ops/dense.py _activation: the fused Relu of Conv/Gemm/MatMul (np.maximum keeps NaN). */
inline double activate(double v, bool relu)
{
    return relu && v < 0.0 ? 0.0 : v;
}

esp_err_t parse_activation(prep &p, bool *relu)
{
    str_view act;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_string("activation", "Linear", &act));
    if (!act.equals("Linear") && !act.equals("Relu")) {
        return p.unsupported("fused activation '%.*s' is not supported",
                             static_cast<int>(act.size > 40 ? 40 : act.size), act.data ? act.data : "");
    }
    *relu = act.equals("Relu");
    return ESP_OK;
}

/* espdl/ops/dense.py _filter_real: a constant dequantized with one exponent, or one per index of `axis`. */
esp_err_t filter_real(prep &p, const tensor_def &t, int axis, const double **out)
{
    if (t.exponent_count == 0) {
        return p.unsupported("weight '%.*s' has no exponent", static_cast<int>(t.name.size > 80 ? 80 : t.name.size),
                             t.name.data ? t.name.data : "");
    }
    const int rank = t.shape.rank;
    const int a = axis < 0 ? axis + rank : axis;
    if (t.exponent_count > 1 && (a < 0 || a >= rank || t.shape.dims[a] != static_cast<int64_t>(t.exponent_count))) {
        return p.unsupported("weight '%.*s' has %lu exponents that do not match its axis %d",
                             static_cast<int>(t.name.size > 80 ? 80 : t.name.size), t.name.data ? t.name.data : "",
                             static_cast<unsigned long>(t.exponent_count), axis);
    }
    int64_t inner = 1;
    for (int d = a + 1; d < rank; ++d) {
        inner *= t.shape.dims[d];
    }
    double *real = p.make<double>(static_cast<size_t>(t.count));
    if (real == nullptr) {
        return p.no_mem();
    }
    slot view;
    view.type = t.type;
    view.data = const_cast<void *>(t.data);
    for (int64_t i = 0; i < t.count; ++i) {
        const int64_t channel = t.exponent_count > 1 ? (i / inner) % static_cast<int64_t>(t.exponent_count) : 0;
        view.quantized = false;
        real[i] = std::ldexp(real_at(view, i), clamp_exponent(t.exponents[channel]));
    }
    *out = real;
    return ESP_OK;
}

/* espdl/ops/dense.py _bias_real (input `index`, a constant) as an array broadcast over `y` with strides.
 * ESP-DL loads the bias integers into the accumulator of sum(x_q * w_q) as they are: they count at the
 * accumulator's exponent, the input's plus the channel's weight exponent (`weight` has one, or one per element
 * of the bias's last axis), whatever exponent the file gives them. An input without exponent has no
 * accumulator: then the bias's own exponents. */
struct bias_ref {
    const double *real = nullptr;
    int64_t strides[max_rank] = {};
};

esp_err_t bias_real(prep &p, uint32_t index, const shape_t &y, const slot &x, const tensor_def &weight, bias_ref *out)
{
    if (!p.has_input(index)) {
        return ESP_OK;
    }
    const tensor_def *t = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_constant(index, &t));
    if (t->exponent_count == 0 ||
        (t->exponent_count > 1 && t->shape.last() != static_cast<int64_t>(t->exponent_count))) {
        return p.unsupported("bias '%.*s' has %lu exponents for %lld values per row",
                             static_cast<int>(t->name.size > 80 ? 80 : t->name.size), t->name.data ? t->name.data : "",
                             static_cast<unsigned long>(t->exponent_count), static_cast<long long>(t->shape.last()));
    }
    const bool at_accumulator = x.quantized;
    const int64_t last = t->shape.last() > 0 ? t->shape.last() : 1;
    if (at_accumulator && weight.exponent_count > 1 && (weight.exponent_count != static_cast<uint32_t>(last))) {
        return p.fail("the bias has %lld values per row for %lu weight exponents", static_cast<long long>(last),
                      static_cast<unsigned long>(weight.exponent_count));
    }
    shape_t joint;
    if (!broadcast_shapes(y, t->shape, &joint) || !joint.equals(y)) {
        return p.fail("the bias does not broadcast to the output");
    }
    double *real = p.make<double>(static_cast<size_t>(t->count));
    if (real == nullptr) {
        return p.no_mem();
    }
    slot view;
    view.type = t->type;
    view.data = const_cast<void *>(t->data);
    for (int64_t i = 0; i < t->count; ++i) {
        int64_t exponent = 0;
        if (at_accumulator) {
            /* Each term clamped first: a corrupt file's exponents must not overflow the sum. */
            exponent = static_cast<int64_t>(clamp_exponent(x.exponent)) +
                       clamp_exponent(weight.exponents[weight.exponent_count > 1 ? i % last : 0]);
        } else {
            exponent = t->exponents[t->exponent_count > 1 ? i % last : 0];
        }
        real[i] = std::ldexp(real_at(view, i), clamp_exponent(exponent));
    }
    out->real = real;
    broadcast_strides(t->shape, y, out->strides);
    return ESP_OK;
}

/* espdl/validate.py _DENSE_KERNELS and _validate_dense_dtypes: ESP-DL picks the Conv/Gemm/MatMul kernel
 * from the node's quant_type (S8: int8 activations and weights, int32 bias; S16: int16, int16, int64; W8A16: int16
 * activations, int8 weights, int64 bias) and reads every operand as that kernel's type: the declared types
 * (initializers, value infos) are checked. `weight` is the constant weight (null: MatMul's computed second
 * input). No quant_type: nothing to check. */
esp_err_t check_kernel_dtypes(prep &p, const tensor_def *weight)
{
    if (!p.has_attr("quant_type")) {
        return ESP_OK;
    }
    str_view quant;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_string("quant_type", "", &quant));
    etype act = etype::i8;
    etype weight_type = etype::i8;
    etype bias_type = etype::i32;
    const bool w8a16 = quant.equals("W8A16");
    if (quant.equals("S16")) {
        act = weight_type = etype::i16;
        bias_type = etype::i64;
    } else if (w8a16) {
        act = etype::i16;
        bias_type = etype::i64;
    } else if (!quant.equals("S8")) {
        return p.unsupported("quant_type '%.*s': ESP-DL runs %.*s only as S8, S16 or W8A16 (integer kernels)",
                             static_cast<int>(quant.size > 40 ? 40 : quant.size), quant.data ? quant.data : "",
                             static_cast<int>(p.node().op_type.size), p.node().op_type.data);
    }
    const node_def &n = p.node();
    const bool matmul = n.op_type.equals("MatMul");
    int64_t group = 1;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("group", 1, &group));
    if (w8a16 && n.op_type.equals("Conv") && group != 1) {
        return p.unsupported("a W8A16 depthwise convolution: ESP-DL has W8A16 kernels only for group=1");
    }
    if (w8a16 && weight == nullptr) {
        return p.unsupported("a W8A16 MatMul of two computed tensors: ESP-DL's W8A16 kernel needs a constant B");
    }
    struct operand {
        const char *what;
        str_view name;
        etype want;
    };
    const str_view none{};
    operand operands[4];
    uint32_t count = 0;
    operands[count++] = {"the input", n.input_count > 0 ? n.inputs[0] : none, act};
    if (weight != nullptr) {
        operands[count++] = {"the weight", weight->name, weight_type};
    } else {
        operands[count++] = {"the second input", n.input_count > 1 ? n.inputs[1] : none, act};
    }
    if (!matmul && n.has_input(2)) {
        operands[count++] = {"the bias", n.inputs[2], bias_type};
    }
    operands[count++] = {"the output", n.output_count > 0 ? n.outputs[0] : none, act};
    for (uint32_t k = 0; k < count; ++k) {
        const operand &o = operands[k];
        const tensor_def *t = p.graph().initializer(o.name);
        const value_info_def *info = t == nullptr ? p.info(o.name) : nullptr;
        if (t == nullptr && info == nullptr) {
            continue;
        }
        const etype type = t != nullptr ? t->type : info->type;
        if (type != o.want) {
            return p.unsupported("%s '%.*s' is %s, but ESP-DL's %.*s %.*s kernel reads it as %s and would misread it",
                                 o.what, static_cast<int>(o.name.size > 80 ? 80 : o.name.size),
                                 o.name.data ? o.name.data : "", etype_name(type), static_cast<int>(quant.size),
                                 quant.data, static_cast<int>(n.op_type.size), n.op_type.data, etype_name(o.want));
        }
    }
    return ESP_OK;
}

/* espdl/validate.py validate_per_channel: ESP-DL applies per-channel weight exponents only on ESP32-P4's
 * SIMD kernels; the chips that round half up have no per-channel shift. */
esp_err_t check_per_channel(prep &p, const tensor_def &weight)
{
    if (p.mode() == rounding::half_up && weight.exponent_count > 1) {
        return p.unsupported("the weight '%.*s' has one exponent per channel: ESP-DL applies per-channel exponents "
                             "only on ESP32-P4 (esp-ppq writes them only for esp32p4): quantize for this chip",
                             static_cast<int>(weight.name.size > 80 ? 80 : weight.name.size),
                             weight.name.data ? weight.name.data : "");
    }
    return ESP_OK;
}

/* ------------------------------------------------------------------ Conv */

struct conv_state {
    spatial sp;
    int64_t batch = 0;
    int64_t cin = 0;
    int64_t cout = 0;
    bool depthwise = false;
    bool relu = false;
    const double *w = nullptr; /* (*kernel, C, M), or (*kernel, C) for depthwise */
    bias_ref bias;
    double *acc = nullptr; /* cout */
};

void conv_kernel(const run_ctx &ctx)
{
    const conv_state &s = *static_cast<const conv_state *>(ctx.plan.state);
    const double *x = ctx.plan.x[0];
    double *y = ctx.plan.y[0];
    const int r = s.sp.rank;
    int64_t o[max_spatial_rank] = {};
    for (int64_t n = 0; n < s.batch; ++n) {
        for (int64_t pos = 0; pos < s.sp.out_total; ++pos) {
            double *acc = s.acc;
            for (int64_t m = 0; m < s.cout; ++m) {
                acc[m] = 0.0;
            }
            for_each_tap(s.sp, o, [&](int64_t tap, int64_t in_flat) {
                const double *xr = x + (n * s.sp.in_total + in_flat) * s.cin;
                if (s.depthwise) {
                    const double *wr = s.w + tap * s.cin;
                    for (int64_t c = 0; c < s.cin; ++c) {
                        acc[c] += xr[c] * wr[c];
                    }
                    return;
                }
                const double *wt = s.w + tap * s.cin * s.cout;
                for (int64_t c = 0; c < s.cin; ++c) {
                    const double xv = xr[c];
                    const double *wr = wt + c * s.cout;
                    for (int64_t m = 0; m < s.cout; ++m) {
                        acc[m] += xv * wr[m];
                    }
                }
            });
            double *yr = y + (n * s.sp.out_total + pos) * s.cout;
            int64_t base = n * s.bias.strides[0];
            for (int d = 0; d < r; ++d) {
                base += o[d] * s.bias.strides[1 + d];
            }
            for (int64_t m = 0; m < s.cout; ++m) {
                const double b = s.bias.real != nullptr ? s.bias.real[base + m * s.bias.strides[r + 1]] : 0.0;
                yr[m] = activate(acc[m] + b, s.relu);
            }
            next_position(s.sp, o);
        }
    }
}

/* espdl/validate.py _validate_dense's common part: activation, then a constant weight. */
esp_err_t dense_weight(prep &p, bool *relu, const tensor_def **weight)
{
    ESPDL_STREAMING_RETURN_ON_ERROR(parse_activation(p, relu));
    *weight = p.node().input_count >= 2 ? p.graph().initializer(p.node().inputs[1]) : nullptr;
    if (*weight == nullptr) {
        return p.unsupported("the weight must be a constant");
    }
    return ESP_OK;
}

} // namespace

esp_err_t prepare_conv(prep &p)
{
    conv_state *s = p.make<conv_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    const tensor_def *weight = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(dense_weight(p, &s->relu, &weight));
    ESPDL_STREAMING_RETURN_ON_ERROR(parse_spatial(p, &s->sp));
    int64_t group = 1;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("group", 1, &group));
    const shape_t &wd = weight->shape;
    if (wd.rank != s->sp.rank + 2) {
        return p.unsupported("weight dims do not match the kernel");
    }
    if (group != 1 && (wd.dims[wd.rank - 1] != 1 || wd.dims[wd.rank - 2] != group)) {
        return p.unsupported("group=%lld is supported only as a depthwise convolution", static_cast<long long>(group));
    }
    s->depthwise = group != 1;

    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    ESPDL_STREAMING_RETURN_ON_ERROR(spatial_output(p, x->shape, &s->sp));
    for (int d = 0; d < s->sp.rank; ++d) {
        if (wd.dims[d] != s->sp.kernel[d]) {
            return p.fail("weight dims do not match kernel_shape");
        }
    }
    s->batch = x->shape.dims[0];
    s->cin = x->shape.last();
    s->cout = wd.dims[wd.rank - (s->depthwise ? 2 : 1)];
    if (s->depthwise ? s->cin != s->cout : s->cin != wd.dims[wd.rank - 2]) {
        return p.fail("the input has %lld channels, the weight expects %lld", static_cast<long long>(s->cin),
                      static_cast<long long>(s->depthwise ? s->cout : wd.dims[wd.rank - 2]));
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(filter_real(p, *weight, s->depthwise ? -2 : -1, &s->w));

    shape_t out;
    out.rank = x->shape.rank;
    out.dims[0] = s->batch;
    for (int d = 0; d < s->sp.rank; ++d) {
        out.dims[1 + d] = s->sp.out[d];
    }
    out.dims[out.rank - 1] = s->cout;
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, out, &y));
    ESPDL_STREAMING_RETURN_ON_ERROR(check_kernel_dtypes(p, weight));
    ESPDL_STREAMING_RETURN_ON_ERROR(check_per_channel(p, *weight));
    ESPDL_STREAMING_RETURN_ON_ERROR(bias_real(p, 2, out, *x, *weight, &s->bias));
    s->acc = p.make<double>(static_cast<size_t>(s->cout));
    if (s->acc == nullptr) {
        return p.no_mem();
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(0));
    p.emits_real(0);
    p.add_work(s->batch * s->sp.out_total * s->sp.kernel_total * s->cin * (s->depthwise ? 1 : s->cout) + y->count);
    p.set_kernel(conv_kernel, s);
    return ESP_OK;
}

/* ------------------------------------------------------------------ Gemm */

namespace {

struct gemm_state {
    int64_t rows = 0;
    int64_t cin = 0;
    int64_t cout = 0;
    int rank = 0;
    shape_t out;
    bool relu = false;
    const double *w = nullptr; /* (C, N) */
    bias_ref bias;
};

/* Offset of flat output element `i` (row-major in `shape`) in a broadcast operand. */
int64_t broadcast_offset(const shape_t &shape, const int64_t *strides, int64_t i)
{
    int64_t off = 0;
    for (int d = shape.rank - 1; d >= 0; --d) {
        const int64_t dim = shape.dims[d];
        off += (i % dim) * strides[d];
        i /= dim;
    }
    return off;
}

void gemm_kernel(const run_ctx &ctx)
{
    const gemm_state &s = *static_cast<const gemm_state *>(ctx.plan.state);
    const double *x = ctx.plan.x[0];
    double *y = ctx.plan.y[0];
    for (int64_t r = 0; r < s.rows; ++r) {
        double *yr = y + r * s.cout;
        for (int64_t m = 0; m < s.cout; ++m) {
            yr[m] = 0.0;
        }
        for (int64_t c = 0; c < s.cin; ++c) {
            const double xv = x[r * s.cin + c];
            const double *wr = s.w + c * s.cout;
            for (int64_t m = 0; m < s.cout; ++m) {
                yr[m] += xv * wr[m];
            }
        }
        for (int64_t m = 0; m < s.cout; ++m) {
            const double b =
                s.bias.real != nullptr ? s.bias.real[broadcast_offset(s.out, s.bias.strides, r * s.cout + m)] : 0.0;
            yr[m] = activate(yr[m] + b, s.relu);
        }
    }
}

} // namespace

esp_err_t prepare_gemm(prep &p)
{
    gemm_state *s = p.make<gemm_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    const tensor_def *weight = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(dense_weight(p, &s->relu, &weight));
    int64_t trans_a = 0;
    int64_t trans_b = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("transA", 0, &trans_a));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("transB", 0, &trans_b));
    if (trans_a != 0 || trans_b != 0) {
        return p.unsupported("transA/transB must be 0 (esp-ppq exports transposed weights)");
    }
    double alpha = 1.0;
    double beta = 1.0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_float("alpha", 1.0, &alpha));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_float("beta", 1.0, &beta));
    if (alpha != 1.0 || beta != 1.0) {
        return p.unsupported("alpha and beta must be 1");
    }
    const shape_t &wd = weight->shape;
    int64_t outer = 1;
    for (int d = 0; d + 2 < wd.rank; ++d) {
        outer *= wd.dims[d];
    }
    if (wd.rank < 2 || outer != 1) {
        return p.unsupported("weight dims are not a matrix");
    }
    s->cin = wd.dims[wd.rank - 2];
    s->cout = wd.dims[wd.rank - 1];
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    if (x->shape.rank < 1 || x->shape.last() != s->cin) {
        return p.fail("an input with %lld values per row does not fit a weight of %lld rows",
                      static_cast<long long>(x->shape.rank ? x->shape.last() : 0), static_cast<long long>(s->cin));
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(filter_real(p, *weight, -1, &s->w));
    s->out = x->shape;
    s->out.dims[s->out.rank - 1] = s->cout;
    s->rows = s->cin > 0 ? x->count / s->cin : 0;
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, s->out, &y));
    ESPDL_STREAMING_RETURN_ON_ERROR(check_kernel_dtypes(p, weight));
    ESPDL_STREAMING_RETURN_ON_ERROR(check_per_channel(p, *weight));
    ESPDL_STREAMING_RETURN_ON_ERROR(bias_real(p, 2, s->out, *x, *weight, &s->bias));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(0));
    p.emits_real(0);
    p.add_work(s->rows * s->cin * s->cout + y->count * s->out.rank);
    p.set_kernel(gemm_kernel, s);
    return ESP_OK;
}

/* ------------------------------------------------------------------ MatMul */

namespace {

struct matmul_state {
    shape_t batch;                 /* broadcast batch dims */
    int64_t a_strides[max_rank] = {}; /* per batch dim, in matrices of a */
    int64_t b_strides[max_rank] = {};
    int64_t batches = 1;
    int64_t m = 0, k = 0, n = 0;
    bool relu = false;
    const double *b_const = nullptr; /* dequantized constant b, else plan.x[1] */
};

void matmul_kernel(const run_ctx &ctx)
{
    const matmul_state &s = *static_cast<const matmul_state *>(ctx.plan.state);
    const double *a = ctx.plan.x[0];
    const double *b = s.b_const != nullptr ? s.b_const : ctx.plan.x[1];
    double *y = ctx.plan.y[0];
    for (int64_t t = 0; t < s.batches; ++t) {
        const double *am = a + broadcast_offset(s.batch, s.a_strides, t) * s.m * s.k;
        const double *bm = b + broadcast_offset(s.batch, s.b_strides, t) * s.k * s.n;
        double *ym = y + t * s.m * s.n;
        for (int64_t i = 0; i < s.m; ++i) {
            for (int64_t j = 0; j < s.n; ++j) {
                double acc = 0.0;
                for (int64_t q = 0; q < s.k; ++q) {
                    acc += am[i * s.k + q] * bm[q * s.n + j];
                }
                ym[i * s.n + j] = activate(acc, s.relu);
            }
        }
    }
}

} // namespace

esp_err_t prepare_matmul(prep &p)
{
    matmul_state *s = p.make<matmul_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(parse_activation(p, &s->relu));
    slot *a = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &a));
    /* espdl/ops/dense.py _matmul: a constant operand (by name) is dequantized like a filter. */
    const tensor_def *b_def = p.node().input_count > 1 ? p.graph().initializer(p.node().inputs[1]) : nullptr;
    shape_t b_shape;
    slot *b = nullptr; /* the computed second input (a constant b is b_def) */
    if (b_def != nullptr) {
        ESPDL_STREAMING_RETURN_ON_ERROR(filter_real(p, *b_def, -1, &s->b_const));
        b_shape = b_def->shape;
    } else {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(1, &b));
        b_shape = b->shape;
    }
    /* np.matmul: 1-D operands become a row / a column that the result drops. */
    const shape_t &as = a->shape;
    if (as.rank == 0 || b_shape.rank == 0) {
        return p.fail("matmul of a scalar");
    }
    const bool a_vec = as.rank == 1;
    const bool b_vec = b_shape.rank == 1;
    s->m = a_vec ? 1 : as.dims[as.rank - 2];
    s->k = as.dims[as.rank - 1];
    const int64_t k2 = b_vec ? b_shape.dims[0] : b_shape.dims[b_shape.rank - 2];
    s->n = b_vec ? 1 : b_shape.dims[b_shape.rank - 1];
    if (s->k != k2) {
        return p.fail("matmul inner dimensions %lld and %lld differ", static_cast<long long>(s->k),
                      static_cast<long long>(k2));
    }
    shape_t a_batch;
    shape_t b_batch;
    a_batch.rank = static_cast<uint8_t>(a_vec ? 0 : as.rank - 2);
    b_batch.rank = static_cast<uint8_t>(b_vec ? 0 : b_shape.rank - 2);
    for (int d = 0; d < a_batch.rank; ++d) {
        a_batch.dims[d] = as.dims[d];
    }
    for (int d = 0; d < b_batch.rank; ++d) {
        b_batch.dims[d] = b_shape.dims[d];
    }
    if (!broadcast_shapes(a_batch, b_batch, &s->batch)) {
        return p.fail("matmul batch dimensions do not broadcast");
    }
    broadcast_strides(a_batch, s->batch, s->a_strides);
    broadcast_strides(b_batch, s->batch, s->b_strides);
    s->batches = s->batch.count();
    shape_t out = s->batch;
    if (out.rank + 2 > max_rank) {
        return p.unsupported("matmul result of rank > %d", max_rank);
    }
    if (!a_vec) {
        out.dims[out.rank++] = s->m;
    }
    if (!b_vec) {
        out.dims[out.rank++] = s->n;
    }
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, out, &y));
    ESPDL_STREAMING_RETURN_ON_ERROR(check_kernel_dtypes(p, b_def));
    if (b_def != nullptr) {
        ESPDL_STREAMING_RETURN_ON_ERROR(check_per_channel(p, *b_def));
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(0));
    if (s->b_const == nullptr) {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(1));
    }
    p.emits_real(0);
    p.add_work(s->batches * s->m * s->n * (s->k + s->batch.rank + 1));
    p.set_kernel(matmul_kernel, s);
    return ESP_OK;
}

/* ------------------------------------------------------------------ pools */

namespace {

enum class pool_kind : uint8_t { average_with_pad, average, max };

struct pool_state {
    spatial sp;
    int64_t batch = 0;
    int64_t channels = 0;
    pool_kind kind = pool_kind::max;
};

void pool_kernel(const run_ctx &ctx)
{
    const pool_state &s = *static_cast<const pool_state *>(ctx.plan.state);
    const double *x = ctx.plan.x[0];
    double *y = ctx.plan.y[0];
    int64_t o[max_spatial_rank] = {};
    for (int64_t n = 0; n < s.batch; ++n) {
        for (int64_t pos = 0; pos < s.sp.out_total; ++pos) {
            double *yr = y + (n * s.sp.out_total + pos) * s.channels;
            const double init = s.kind == pool_kind::max ? -HUGE_VAL : 0.0;
            for (int64_t c = 0; c < s.channels; ++c) {
                yr[c] = init;
            }
            const int64_t inside = for_each_tap(s.sp, o, [&](int64_t, int64_t in_flat) {
                const double *xr = x + (n * s.sp.in_total + in_flat) * s.channels;
                for (int64_t c = 0; c < s.channels; ++c) {
                    if (s.kind != pool_kind::max) {
                        yr[c] += xr[c];
                    } else if (xr[c] != xr[c]) {
                        yr[c] = xr[c]; /* numpy's max propagates NaN (and nothing exceeds it after) */
                    } else if (xr[c] > yr[c]) {
                        yr[c] = xr[c];
                    }
                }
            });
            if (s.kind != pool_kind::max) {
                /* mean over the padded window, or over the taps inside (count_include_pad=0) */
                const double count =
                    static_cast<double>(s.kind == pool_kind::average_with_pad ? s.sp.kernel_total : inside);
                for (int64_t c = 0; c < s.channels; ++c) {
                    yr[c] = yr[c] / count;
                }
            }
            next_position(s.sp, o);
        }
    }
}

esp_err_t prepare_pool(prep &p, pool_kind kind)
{
    pool_state *s = p.make<pool_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    s->kind = kind;
    ESPDL_STREAMING_RETURN_ON_ERROR(parse_spatial(p, &s->sp));
    if (kind == pool_kind::max && p.node().output_count > 1) {
        return p.unsupported("MaxPool indices output is not supported");
    }
    if (kind != pool_kind::max) {
        int64_t include_pad = 0;
        ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("count_include_pad", 0, &include_pad));
        s->kind = include_pad != 0 ? pool_kind::average_with_pad : pool_kind::average;
    }
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    ESPDL_STREAMING_RETURN_ON_ERROR(spatial_output(p, x->shape, &s->sp));
    s->batch = x->shape.dims[0];
    s->channels = x->shape.last();
    shape_t out = x->shape;
    for (int d = 0; d < s->sp.rank; ++d) {
        out.dims[1 + d] = s->sp.out[d];
    }
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, out, &y));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(0));
    p.emits_real(0);
    p.add_work(s->batch * s->sp.out_total * s->sp.kernel_total * (s->channels + s->sp.rank));
    p.set_kernel(pool_kernel, s);
    return ESP_OK;
}

struct global_pool_state {
    int64_t outer = 0;  /* batch */
    int64_t spatial = 0;
    int64_t channels = 0;
};

void global_pool_kernel(const run_ctx &ctx)
{
    const global_pool_state &s = *static_cast<const global_pool_state *>(ctx.plan.state);
    const double *x = ctx.plan.x[0];
    double *y = ctx.plan.y[0];
    for (int64_t n = 0; n < s.outer; ++n) {
        for (int64_t c = 0; c < s.channels; ++c) {
            double sum = 0.0;
            for (int64_t i = 0; i < s.spatial; ++i) {
                sum += x[(n * s.spatial + i) * s.channels + c];
            }
            y[n * s.channels + c] = sum / static_cast<double>(s.spatial);
        }
    }
}

} // namespace

esp_err_t prepare_average_pool(prep &p)
{
    return prepare_pool(p, pool_kind::average);
}

esp_err_t prepare_max_pool(prep &p)
{
    return prepare_pool(p, pool_kind::max);
}

esp_err_t prepare_global_average_pool(prep &p)
{
    global_pool_state *s = p.make<global_pool_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    /* mean over axes 1 .. rank-2, keepdims (a rank < 3 tensor has none: mean over nothing) */
    shape_t out = x->shape;
    s->spatial = 1;
    for (int d = 1; d + 1 < out.rank; ++d) {
        s->spatial *= out.dims[d];
        out.dims[d] = 1;
    }
    if (out.rank >= 2) {
        s->outer = out.dims[0];
        s->channels = out.dims[out.rank - 1];
    } else {
        s->outer = 1;
        s->channels = x->count;
    }
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, out, &y));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(0));
    p.emits_real(0);
    p.add_work(x->count + y->count);
    p.set_kernel(global_pool_kernel, s);
    return ESP_OK;
}

} // namespace espdl_streaming::host
