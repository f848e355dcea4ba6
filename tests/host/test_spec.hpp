/* The model description shared by the host tests, and deterministic test frames. */
#pragma once

#include <cstdint>

#include "espdl_streaming/types.hpp"

namespace test_spec {

using namespace espdl_streaming;

constexpr uint32_t chunk_frames = 3;
constexpr uint32_t feature_dim = 4;

inline const tensor_spec outputs[] = {
    {"a_out", dtype::int8, -3, 2, {1, 5, 0, 0}, 5},
    {"b/state", dtype::int16, -8, 3, {1, 2, 3, 0}, 6},
};

inline const model_spec spec = {
    "fake",
    chunk_frames,
    feature_dim,
    rounding::half_even,
    {"input.1", dtype::int8, -5, 3, {1, chunk_frames, feature_dim, 0}, chunk_frames * feature_dim},
    outputs,
    2,
    0,
    nullptr,
    nullptr,
    0,
};

/* A small linear congruential generator: same sequence on every host. */
struct lcg {
    uint32_t state;
    uint32_t next()
    {
        state = state * 1664525u + 1013904223u;
        return state >> 8;
    }
    uint32_t below(uint32_t n) { return next() % n; }
};

/* Frames in [-4.5, 4.5) on a 1/64 grid: exact halfway points for exponent -5 included. */
inline void make_frames(float *out, uint32_t count, uint32_t seed)
{
    lcg g{seed};
    for (uint32_t i = 0; i < count; ++i) {
        out[i] = (static_cast<float>(g.below(576)) - 288.0f) / 64.0f;
    }
}

} // namespace test_spec
