/*
 * QuantizeLinear and DequantizeLinear (espdl/ops/quant.py _quantize_linear and espdl/validate.py
 * _validate_quantize_linear).
 *
 * ESP-DL registers both as dl::module::RequantizeLinear, whose forward is TensorBase::assign: the
 * input's and the output's dtypes decide what happens, and the scale and zero point inputs are not
 * read. float32 -> int8/int16 is dl::quantize: the float32 product x * DL_RESCALE(exponent), then
 * tool::round (the chip's float rounding), saturated; NaN becomes the largest value. int8/int16 ->
 * float32 is dl::dequantize: float32(q) * DL_SCALE(exponent). int -> int requantizes like
 * RequantizeLinear. Every float operation is one IEEE single-precision operation (the engine is
 * built with -ffp-contract=off).
 */
#include <cfloat>

#include "host_ops.hpp"

namespace espdl_streaming::host {
namespace {

/* A double as float32 with IEEE rounding, +-inf beyond the float range (numpy's astype(float32)). */
float to_f32(double v)
{
    if (v != v) {
        return NAN;
    }
    if (v > static_cast<double>(FLT_MAX)) {
        return INFINITY;
    }
    if (v < -static_cast<double>(FLT_MAX)) {
        return -INFINITY;
    }
    return static_cast<float>(v);
}

/* 2^exponent as float32: 0 or +inf outside the float range (espdl/ops/quant.py: np.ldexp then float32). */
float pow2_f32(int exponent)
{
    return to_f32(std::ldexp(1.0, exponent));
}

/* ESP-DL's tool::round of a float (espdl/ops/kernels.py round_f32): the FPU's round to nearest even on
 * ESP32-P4/S31 (fcvt.w.s rne), else (int)floorf(value + 0.5) where value + 0.5 is a double
 * narrowed to float by floorf. NaN stays NaN (the caller saturates it). */
double round_chip_f32(float v, rounding mode)
{
    if (mode == rounding::half_even) {
        return static_cast<double>(std::nearbyintf(v));
    }
    return static_cast<double>(std::floor(to_f32(static_cast<double>(v) + 0.5)));
}

struct quant_state {
    float factor = 1.0f; /* quantize: DL_RESCALE(out exponent); dequantize: DL_SCALE(in exponent) */
    double low = 0.0;
    double high = 0.0;
};

void quantize_kernel(const run_ctx &ctx)
{
    const quant_state &s = *static_cast<const quant_state *>(ctx.plan.state);
    const slot &x = *ctx.plan.in[0];
    slot &y = *ctx.plan.out[0];
    for (int64_t i = 0; i < y.count; ++i) {
        const float scaled = to_f32(real_at(x, i)) * s.factor;
        double q = round_chip_f32(scaled, ctx.mode);
        if (q != q) {
            q = s.high;
        }
        q = q < s.low ? s.low : q > s.high ? s.high : q;
        if (y.type == etype::i8) {
            static_cast<int8_t *>(y.data)[i] = static_cast<int8_t>(q);
        } else {
            static_cast<int16_t *>(y.data)[i] = static_cast<int16_t>(q);
        }
    }
}

void dequantize_kernel(const run_ctx &ctx)
{
    const quant_state &s = *static_cast<const quant_state *>(ctx.plan.state);
    const slot &x = *ctx.plan.in[0];
    float *y = static_cast<float *>(ctx.plan.out[0]->data);
    for (int64_t i = 0; i < ctx.plan.out[0]->count; ++i) {
        const int32_t q =
            x.type == etype::i8 ? static_cast<const int8_t *>(x.data)[i] : static_cast<const int16_t *>(x.data)[i];
        y[i] = static_cast<float>(q) * s.factor;
    }
}

/* float -> float: assign copies (espdl/ops/quant.py _quantize_linear returns the input as float32). */
void copy_f32_kernel(const run_ctx &ctx)
{
    const slot &x = *ctx.plan.in[0];
    float *y = static_cast<float *>(ctx.plan.out[0]->data);
    for (int64_t i = 0; i < ctx.plan.out[0]->count; ++i) {
        y[i] = to_f32(real_at(x, i));
    }
}

bool is_int8_16(etype t)
{
    return t == etype::i8 || t == etype::i16;
}

/* espdl/validate.py _validate_quantize_linear: the dtype pair (when the graph records both) and the zero point. */
esp_err_t validate(prep &p, const slot &x, const slot &y)
{
    /* f64 slots are tensors without value info: espdl/validate.py does not check their pair. */
    if (x.type != etype::f64 && y.type != etype::f64) {
        const bool ok = (is_int8_16(x.type) && (is_int8_16(y.type) || y.type == etype::f32)) ||
                        (x.type == etype::f32 && is_int8_16(y.type));
        if (!ok) {
            return p.unsupported("%s -> %s: ESP-DL converts only between float32, int8 and int16 (int to int)",
                                 etype_name(x.type), etype_name(y.type));
        }
    }
    if (p.node().input_count > 2 && !p.node().inputs[2].empty()) {
        if (p.graph().initializer(p.node().inputs[2]) == nullptr) {
            return p.unsupported("the zero point must be a constant");
        }
        const slot *zero = p.input(2);
        if (zero == nullptr) {
            return p.unsupported("the zero point must be a constant");
        }
        for (int64_t i = 0; i < zero->count; ++i) {
            if (real_at(*zero, i) != 0.0) {
                return p.unsupported("a non-zero zero point: ESP-DL's quantization is symmetric and ignores it");
            }
        }
    }
    return ESP_OK;
}

} // namespace

/* QuantizeLinear and DequantizeLinear (one function: the dtypes decide, as in ESP-DL). */
esp_err_t prepare_quantize_linear(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, x->shape, &y));
    ESPDL_STREAMING_RETURN_ON_ERROR(validate(p, *x, *y));
    quant_state *s = p.make<quant_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    p.add_work(x->count);
    if (!x->quantized) {
        if (y->quantized && is_int8_16(y->type)) {
            s->factor = pow2_f32(-y->exponent);
            s->low = y->type == etype::i8 ? -128.0 : -32768.0;
            s->high = y->type == etype::i8 ? 127.0 : 32767.0;
            p.set_kernel(quantize_kernel, s);
            return ESP_OK;
        }
        if (y->type != etype::f32 || y->quantized) {
            ESPDL_STREAMING_RETURN_ON_ERROR(p.output_typed(0, x->shape, etype::f32, false, 0, &y));
        }
        p.set_kernel(copy_f32_kernel, s);
        return ESP_OK;
    }
    if (!y->quantized) {
        if (x->channel_count > 1 || !is_int8_16(x->type)) {
            return p.fail("ESP-DL dequantizes only an int8 or int16 input with one exponent");
        }
        if (y->type != etype::f32) {
            ESPDL_STREAMING_RETURN_ON_ERROR(p.output_typed(0, x->shape, etype::f32, false, 0, &y));
        }
        s->factor = pow2_f32(x->exponent);
        p.set_kernel(dequantize_kernel, s);
        return ESP_OK;
    }
    return prepare_requantize(p);
}

} // namespace espdl_streaming::host
