/*
 * Opening a model with the engine available on this target: ESP-DL's dl::Model on chips; the host
 * engine (src/host/: the build-time simulator's integer semantics in C++) on ESP-IDF's linux
 * target and plain host builds.
 */
#pragma once

#include <cstdint>

#include "espdl_streaming/model_interface.hpp"
#include "espdl_streaming/port.hpp"
#include "espdl_streaming/types.hpp"

namespace espdl_streaming {

enum class placement : uint8_t { rodata, partition };

struct model_source {
    placement where;
    const uint8_t *rodata;       /* placement::rodata: the .espdl bytes, 16-byte aligned */
    const char *partition_label; /* placement::partition: data partition holding the .espdl */
    /* The rounding of the chip the model was quantized for (model_spec::round_mode). The host
     * engine rounds with it; dl::Model ignores it (the chip's own arithmetic rounds). */
    rounding round_mode;
};

/**
 * Load a model. On success `*out` is owned by the caller: release it with close_model().
 *
 * @return ESP_OK, ESP_ERR_INVALID_ARG (null/misaligned source, unknown rounding), ESP_ERR_NO_MEM,
 *         ESP_FAIL (the engine could not load the model; logged), ESP_ERR_NOT_SUPPORTED (no
 *         engine on this target; on the host: an operator the engine does not implement, or a
 *         partition placement)
 */
esp_err_t open_model(const model_source &src, model_interface **out);

/** Release a model returned by open_model(); null is ignored. */
void close_model(model_interface *model);

/**
 * Chips only (ESP-IDF, not the linux target; src/espdl_model.cpp): check that data partition
 * `label` starts with the .espdl of `expected_bytes` bytes and CRC-32 `expected_crc32`, before
 * open_model() hands the label to ESP-DL. Maps the first `expected_bytes` bytes, checks them
 * (model_check.hpp: why a CRC-32 of exactly the model) and unmaps them again.
 *
 * @return ESP_OK, ESP_ERR_NOT_FOUND (no such data partition), ESP_ERR_INVALID_SIZE (partition
 *         smaller than the model), ESP_ERR_INVALID_VERSION (another model, or none: logged with
 *         both CRCs and the command that flashes the model), or esp_partition_mmap()'s error
 */
esp_err_t check_partition_model(const char *model_name, const char *label, uint32_t expected_bytes,
                                uint32_t expected_crc32);

} // namespace espdl_streaming
