/*
 * Plain descriptions of a streaming model, shared by the runtime and the generated code.
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace espdl_streaming {

/** Element type of a quantized tensor; values follow the .espdl numbering. */
enum class dtype : uint8_t { int8 = 3, int16 = 5 };

/** How a float is rounded to an integer: per chip (P4: half_even, S3 and others: half_up). */
enum class rounding : uint8_t { half_even, half_up };

constexpr size_t dtype_size(dtype t)
{
    return t == dtype::int16 ? 2 : 1;
}

constexpr int32_t dtype_min(dtype t)
{
    return t == dtype::int16 ? -32768 : -128;
}

constexpr int32_t dtype_max(dtype t)
{
    return t == dtype::int16 ? 32767 : 127;
}

constexpr const char *dtype_name(dtype t)
{
    return t == dtype::int16 ? "int16" : t == dtype::int8 ? "int8" : "unknown";
}

/** Maximum rank a tensor may have (ESP-DL streaming models use 2 to 4). */
constexpr uint8_t max_ndim = 4;

/** Expected properties of one model tensor (real = q * 2^exponent). */
struct tensor_spec {
    const char *name;
    dtype type;
    int8_t exponent;
    uint8_t ndim;
    int32_t shape[max_ndim];
    uint32_t elements;
};

/** Everything the runtime needs to know about a generated model. */
struct model_spec {
    const char *name;
    uint32_t chunk_frames;     /* frames consumed by one run() */
    uint32_t feature_dim;      /* floats per frame */
    rounding round_mode;       /* the target chip's rounding */
    tensor_spec input;         /* chunk_frames * feature_dim elements, frame-major */
    const tensor_spec *outputs; /* sorted by name: the order of dl::Model::get_outputs() */
    uint32_t output_count;
};

} // namespace espdl_streaming
