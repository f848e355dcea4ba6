/*
 * Float <-> power-of-two quantized integers, bit-identical to the Python simulator:
 * v = x * 2^-exponent (exact), NaN -> 0, rounded per `rounding`, saturated to the type range.
 */
#pragma once

#include <cstddef>
#include <cstdint>

#include "espdl_streaming/types.hpp"

namespace espdl_streaming {

/** Quantize one value and saturate it to [lo, hi] (+-inf saturate, NaN gives 0). */
int32_t quantize_value(float x, int exponent, rounding r, int32_t lo, int32_t hi);

/** Quantize `n` floats into `out`, an array of `n` elements of type `t` (int8 or int16). */
void quantize(const float *in, size_t n, int exponent, rounding r, dtype t, void *out);

/** Dequantize `n` elements of type `t`: out[i] = in[i] * 2^exponent (exact); float32 is copied as it is. */
void dequantize(const void *in, dtype t, size_t n, int exponent, float *out);

} // namespace espdl_streaming
