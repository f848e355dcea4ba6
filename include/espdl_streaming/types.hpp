/*
 * Plain descriptions of a streaming model, shared by the runtime and the generated code.
 */
#pragma once

#include <cstddef>
#include <cstdint>

namespace espdl_streaming {

/**
 * Element type of a model tensor; values follow the .espdl numbering. int8 and int16 are quantized
 * (real = q * 2^exponent); float32 holds real values (ESP-DL's Softmax output; model outputs only).
 */
enum class dtype : uint8_t { float32 = 1, int8 = 3, int16 = 5 };

/** How a float is rounded to an integer: per chip (P4: half_even, S3 and others: half_up). */
enum class rounding : uint8_t { half_even, half_up };

constexpr size_t dtype_size(dtype t)
{
    return t == dtype::float32 ? 4 : t == dtype::int16 ? 2 : 1;
}

/** Whether values of type `t` are real (not quantized: no exponent applies). */
constexpr bool dtype_is_float(dtype t)
{
    return t == dtype::float32;
}

/** Range of a quantized type (int8, int16). */
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
    return t == dtype::int16 ? "int16" : t == dtype::int8 ? "int8" : t == dtype::float32 ? "float32" : "unknown";
}

/** Maximum rank a tensor may have (ESP-DL streaming models use 2 to 4). */
constexpr uint8_t max_ndim = 4;

/** Expected properties of one model tensor (real = q * 2^exponent; float32: real values, exponent 0). */
struct tensor_spec {
    const char *name;
    dtype type;
    int8_t exponent;
    uint8_t ndim;
    int32_t shape[max_ndim];
    uint32_t elements;
};

/**
 * A recurrent state (a GRU/LSTM hidden or cell state) carried across chunks: ESP-DL starts every
 * run from the state the model reads from `input` and returns the last state in `output`. After
 * every run the runner copies the output's integers into its own storage and writes them to the
 * input before the next run. init() and reset() restore `initial` (the raw integers of a learned
 * initial state, output.elements values of output.type), or zeros when it is null.
 */
struct state_spec {
    tensor_spec input;     /* state_in_<k> */
    tensor_spec output;    /* state_out_<k>, or a user output that is the last state: same dtype and element count */
    uint32_t input_index;  /* position among the model's inputs (name order) */
    uint32_t output_index; /* position among the model's outputs (name order); may also be a user output's */
    const void *initial;   /* raw integers the state starts from; null: zeros */
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
    /* Models with recurrent state only (zero-initialised otherwise): */
    uint32_t input_index;            /* position of `input` among the model's inputs */
    const uint32_t *output_indices;  /* model output of each outputs[i]; null: output i */
    const state_spec *states;        /* state_count entries */
    uint32_t state_count;
};

/** Bytes of runner storage the recurrent states of `spec` need. */
constexpr size_t state_storage_bytes(const model_spec &spec)
{
    size_t bytes = 0;
    for (uint32_t i = 0; i < spec.state_count; ++i) {
        bytes += static_cast<size_t>(spec.states[i].output.elements) * dtype_size(spec.states[i].output.type);
    }
    return bytes;
}

} // namespace espdl_streaming
