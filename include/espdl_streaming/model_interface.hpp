/*
 * What the stream runner needs from an inference engine. Implemented by the dl::Model backend
 * (backend.hpp) and by test doubles; tensors are addressed by their position in name order.
 */
#pragma once

#include <cstdint>

#include "espdl_streaming/port.hpp"
#include "espdl_streaming/types.hpp"

namespace espdl_streaming {

/** A view of one engine tensor; `data` stays owned by the engine. */
struct tensor_ref {
    void *data;
    dtype type;
    int exponent;
    uint32_t elements;
    uint8_t ndim;
    int32_t shape[max_ndim];
};

class model_interface {
public:
    virtual ~model_interface() = default;

    virtual uint32_t input_count() const = 0;
    virtual uint32_t output_count() const = 0;

    /** Describe input `index`; the runner writes the quantized chunk to `out->data`. */
    [[nodiscard]] virtual esp_err_t input(uint32_t index, tensor_ref *out) = 0;

    /** Describe output `index`; valid until the next run(). */
    [[nodiscard]] virtual esp_err_t output(uint32_t index, tensor_ref *out) = 0;

    /** Run one chunk on whatever the inputs hold. */
    [[nodiscard]] virtual esp_err_t run() = 0;

    /** Zero every streaming state (caches, recurrent state). */
    [[nodiscard]] virtual esp_err_t reset() = 0;
};

} // namespace espdl_streaming
