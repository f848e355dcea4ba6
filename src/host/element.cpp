/*
 * Host engine: element access and the shared kernel helpers of host_kernels.hpp. Reading and writing
 * one element of a slot in any dtype (raw_value, real_at, int_at), whole-slot dequantize/requantize
 * (load_real, store_real), numpy broadcasting and the gather kernel every layout op shares.
 * Not here: planning (builder.cpp), the prepare context (prepare.cpp), running (model.cpp).
 */
#include "host_kernels.hpp"

namespace espdl_streaming::host {

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
        /* espdl/ops/kernels.py NodeRun.passthrough: same dtype and exponent keep the integers. */
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
            std::memcpy(dst + i * static_cast<int64_t>(item),
                        static_cast<const unsigned char *>(src.data) + at * static_cast<int64_t>(item), item);
        } else {
            store_real_at(out, i, real_at(src, at), mode);
        }
    }
}

} // namespace espdl_streaming::host
