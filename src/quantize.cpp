/*
 * Quantization rule shared with the Python simulator (which computes in float64 on float32
 * inputs). Every step here is exact in float32, so both sides agree bit for bit:
 * - x * 2^-exponent is exact (power-of-two scaling; overflow gives inf, which saturates;
 *   results below 2^-126 may lose bits but round to 0 either way);
 * - floorf(v) and v - floorf(v) are exact, so halfway cases are detected without error.
 * NaN and infinity are recognised from the bit pattern so the code stays correct when a
 * project compiles with -ffast-math.
 */
#include "espdl_streaming/quantize.hpp"

#include <cmath>
#include <cstring>

namespace espdl_streaming {
namespace {

bool is_nan(float x)
{
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof(bits));
    return (bits & 0x7f800000u) == 0x7f800000u && (bits & 0x007fffffu) != 0;
}

/* Round `v`, already known to lie strictly inside (lo, hi), to an integer. */
int32_t round_inside(float v, rounding r)
{
    const float low = std::floor(v);
    const float frac = v - low;
    int32_t q = static_cast<int32_t>(low);
    if (frac > 0.5f) {
        q += 1;
    } else if (frac == 0.5f) {
        if (r == rounding::half_up || (q & 1) != 0) {
            q += 1;
        }
    }
    return q;
}

int32_t saturate_round(float v, rounding r, int32_t lo, int32_t hi)
{
    if (is_nan(v)) {
        return 0;
    }
    if (v >= static_cast<float>(hi)) {
        return hi;
    }
    if (v <= static_cast<float>(lo)) {
        return lo;
    }
    return round_inside(v, r);
}

template <typename T>
void quantize_to(const float *in, size_t n, int exponent, rounding r, T *out)
{
    constexpr int32_t lo = sizeof(T) == 1 ? -128 : -32768;
    constexpr int32_t hi = sizeof(T) == 1 ? 127 : 32767;
    /* Multiplying by an exact power of two equals ldexpf as long as the factor is a normal float. */
    if (exponent > -100 && exponent < 100) {
        const float inv_scale = std::ldexp(1.0f, -exponent);
        for (size_t i = 0; i < n; ++i) {
            out[i] = static_cast<T>(saturate_round(in[i] * inv_scale, r, lo, hi));
        }
    } else {
        for (size_t i = 0; i < n; ++i) {
            out[i] = static_cast<T>(saturate_round(std::ldexp(in[i], -exponent), r, lo, hi));
        }
    }
}

template <typename T>
void dequantize_from(const T *in, size_t n, int exponent, float *out)
{
    if (exponent > -100 && exponent < 100) {
        const float scale = std::ldexp(1.0f, exponent);
        for (size_t i = 0; i < n; ++i) {
            out[i] = static_cast<float>(in[i]) * scale;
        }
    } else {
        for (size_t i = 0; i < n; ++i) {
            out[i] = std::ldexp(static_cast<float>(in[i]), exponent);
        }
    }
}

} // namespace

int32_t quantize_value(float x, int exponent, rounding r, int32_t lo, int32_t hi)
{
    return saturate_round(std::ldexp(x, -exponent), r, lo, hi);
}

void quantize(const float *in, size_t n, int exponent, rounding r, dtype t, void *out)
{
    if (t == dtype::int16) {
        quantize_to(in, n, exponent, r, static_cast<int16_t *>(out));
    } else {
        quantize_to(in, n, exponent, r, static_cast<int8_t *>(out));
    }
}

void dequantize(const void *in, dtype t, size_t n, int exponent, float *out)
{
    if (t == dtype::float32) {
        /* Real values already (ESP-DL's Softmax output): copied bit for bit, the exponent unused. */
        if (n > 0 && static_cast<const void *>(out) != in) {
            std::memcpy(out, in, n * sizeof(float));
        }
    } else if (t == dtype::int16) {
        dequantize_from(static_cast<const int16_t *>(in), n, exponent, out);
    } else {
        dequantize_from(static_cast<const int8_t *>(in), n, exponent, out);
    }
}

} // namespace espdl_streaming
