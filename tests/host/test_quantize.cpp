/* Quantization: rounding modes, saturation, NaN/inf, exactness against a float64 reference. */
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "check.hpp"
#include "espdl_streaming/quantize.hpp"
#include "test_spec.hpp"

using namespace espdl_streaming;

namespace {

/* The Python simulator's rule: float64 math on the float32 input. */
int32_t reference(float x, int exponent, rounding r, int32_t lo, int32_t hi)
{
    if (std::isnan(x)) {
        return 0;
    }
    const double v = std::ldexp(static_cast<double>(x), -exponent);
    double q = r == rounding::half_up ? std::floor(v + 0.5) : std::nearbyint(v);
    q = q < lo ? lo : q > hi ? hi : q;
    return static_cast<int32_t>(q);
}

int32_t q8(float x, int exponent, rounding r)
{
    return quantize_value(x, exponent, r, -128, 127);
}

void test_halfway()
{
    const float values[] = {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -3.5f};
    const int32_t even[] = {0, 2, 2, 0, -2, -2, 4, -4};
    const int32_t up[] = {1, 2, 3, 0, -1, -2, 4, -3};
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); ++i) {
        CHECK_EQ(q8(values[i], 0, rounding::half_even), even[i]);
        CHECK_EQ(q8(values[i], 0, rounding::half_up), up[i]);
    }
    /* 2.5 * 2^-4 with exponent -4 is exactly 2.5 */
    CHECK_EQ(q8(0.15625f, -4, rounding::half_even), 2);
    CHECK_EQ(q8(0.15625f, -4, rounding::half_up), 3);
    /* positive exponent: 40 / 16 = 2.5 */
    CHECK_EQ(q8(40.0f, 4, rounding::half_even), 2);
    CHECK_EQ(q8(40.0f, 4, rounding::half_up), 3);
}

void test_no_float_error()
{
    /* The largest float below 0.5: floorf(v + 0.5f) would wrongly give 1. */
    const float below_half = std::nextafter(0.5f, 0.0f);
    CHECK_EQ(q8(below_half, 0, rounding::half_up), 0);
    CHECK_EQ(q8(below_half, 0, rounding::half_even), 0);
    CHECK_EQ(q8(-below_half, 0, rounding::half_up), 0);
    const float above_half = std::nextafter(0.5f, 1.0f);
    CHECK_EQ(q8(above_half, 0, rounding::half_up), 1);
    CHECK_EQ(q8(above_half, 0, rounding::half_even), 1);
    /* Integers beyond 2^23 are kept as they are. */
    CHECK_EQ(quantize_value(8388609.0f, 0, rounding::half_up, INT32_MIN, INT32_MAX), 8388609);
    CHECK_EQ(quantize_value(-8388609.0f, 0, rounding::half_even, INT32_MIN, INT32_MAX), -8388609);
}

void test_saturation()
{
    const float inf = std::numeric_limits<float>::infinity();
    const float nan = std::numeric_limits<float>::quiet_NaN();
    CHECK_EQ(q8(1000.0f, 0, rounding::half_even), 127);
    CHECK_EQ(q8(-1000.0f, 0, rounding::half_up), -128);
    CHECK_EQ(q8(inf, -5, rounding::half_even), 127);
    CHECK_EQ(q8(-inf, -5, rounding::half_up), -128);
    CHECK_EQ(q8(nan, -5, rounding::half_even), 0);
    CHECK_EQ(q8(-nan, 3, rounding::half_up), 0);
    CHECK_EQ(q8(127.5f, 0, rounding::half_even), 127);
    CHECK_EQ(q8(126.5f, 0, rounding::half_up), 127);
    CHECK_EQ(q8(-128.5f, 0, rounding::half_up), -128);
    CHECK_EQ(q8(-128.5f, 0, rounding::half_even), -128);
    CHECK_EQ(q8(3.0e38f, -10, rounding::half_even), 127); /* overflows float: +inf */

    int16_t out16[4];
    const float in16[] = {1.0e6f, -1.0e6f, nan, 1023.5f};
    quantize(in16, 4, -5, rounding::half_up, dtype::int16, out16);
    CHECK_EQ(out16[0], 32767);
    CHECK_EQ(out16[1], -32768);
    CHECK_EQ(out16[2], 0);
    CHECK_EQ(out16[3], 32752); /* 1023.5 * 32 fits */
}

void test_bulk_matches_reference()
{
    test_spec::lcg g{12345};
    const int exponents[] = {-12, -7, -5, -1, 0, 2, 6, -120, 120};
    const rounding modes[] = {rounding::half_even, rounding::half_up};
    constexpr size_t n = 4096;
    static float in[n];
    static int8_t out8[n];
    static int16_t out16[n];
    size_t mismatches = 0;
    for (int exponent : exponents) {
        for (size_t i = 0; i < n; ++i) {
            uint32_t bits = g.next() << 8 | g.below(256);
            float x;
            if (i % 3 == 0) {
                /* halfway points and small integers at this exponent */
                x = std::ldexp(static_cast<float>(static_cast<int32_t>(g.below(1024)) - 512) / 2.0f, exponent);
            } else if (i % 3 == 1) {
                x = (static_cast<float>(g.below(2000000)) - 1000000.0f) / 7919.0f;
            } else {
                std::memcpy(&x, &bits, sizeof(x)); /* any bit pattern: NaN, inf, subnormals */
            }
            in[i] = x;
        }
        for (rounding r : modes) {
            quantize(in, n, exponent, r, dtype::int8, out8);
            quantize(in, n, exponent, r, dtype::int16, out16);
            for (size_t i = 0; i < n; ++i) {
                mismatches += out8[i] != reference(in[i], exponent, r, -128, 127);
                mismatches += out16[i] != reference(in[i], exponent, r, -32768, 32767);
                mismatches += quantize_value(in[i], exponent, r, -128, 127) != out8[i];
            }
        }
    }
    CHECK_EQ(mismatches, 0u);
}

void test_dequantize()
{
    const int8_t in8[] = {-128, -1, 0, 1, 127};
    float out[5];
    dequantize(in8, dtype::int8, 5, -3, out);
    CHECK(out[0] == -16.0f && out[1] == -0.125f && out[2] == 0.0f && out[3] == 0.125f && out[4] == 15.875f);
    const int16_t in16[] = {-32768, 3, 32767};
    dequantize(in16, dtype::int16, 3, 2, out);
    CHECK(out[0] == -131072.0f && out[1] == 12.0f && out[2] == 131068.0f);
    dequantize(in16, dtype::int16, 3, -140, out); /* beyond the multiply fast path */
    CHECK(out[1] == std::ldexp(3.0f, -140));
    /* Round trip: dequantized values quantize back to themselves. */
    int8_t back[5];
    dequantize(in8, dtype::int8, 5, -7, out);
    quantize(out, 5, -7, rounding::half_up, dtype::int8, back);
    CHECK(std::memcmp(back, in8, sizeof(in8)) == 0);
}

} // namespace

int main()
{
    test_halfway();
    test_no_float_error();
    test_saturation();
    test_bulk_matches_reference();
    test_dequantize();
    return check::finish();
}
