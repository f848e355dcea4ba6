/*
 * Opening a model with the engine available on this target: ESP-DL's dl::Model on chips; the host
 * engine (src/host/: the build-time simulator's integer semantics in C++) on ESP-IDF's linux
 * target and plain host builds.
 *
 * A generated class describes where its model is (a model_source) and calls load_model() in init()
 * and unload_model() in deinit(): the same code for both placements and every target. What differs
 * is chosen by the build: on chips dl::Model reads a partition itself (src/espdl_model.cpp); on the
 * linux target the host engine reads memory, so load_model() maps the partition of the emulated
 * flash (src/model_loader.cpp).
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
    /* What load_model() checks before the engine sees the bytes (model_check.hpp); open_model()
     * ignores them. */
    const char *model_name; /* tag of the log lines: the generated class's name */
    uint32_t espdl_bytes;   /* size of the .espdl the build made; 0: not checked */
    bool check_crc32;       /* placement::partition: its first espdl_bytes bytes must have espdl_crc32 */
    uint32_t espdl_crc32;   /* zlib.crc32() of the .espdl */
};

/** A model opened by load_model(); release it with unload_model(). */
struct loaded_model {
    model_interface *engine = nullptr;
    /* ESP-IDF's linux target, placement::partition: the mapping of the partition the host engine
     * reads (an esp_partition_mmap_handle_t), held as long as the engine. Unused elsewhere. */
    uint32_t partition_map = 0;
    bool partition_mapped = false;
};

/**
 * Load a model. On success `*out` is owned by the caller: release it with close_model().
 *
 * @return ESP_OK, ESP_ERR_INVALID_ARG (null/misaligned source, unknown rounding), ESP_ERR_NO_MEM,
 *         ESP_FAIL (the engine could not load the model; logged), ESP_ERR_NOT_SUPPORTED (no
 *         engine on this target; on the host: an operator the engine does not implement, or a
 *         partition placement)
 */
[[nodiscard]] esp_err_t open_model(const model_source &src, model_interface **out);

/** Release a model returned by open_model(); null is ignored. */
void close_model(model_interface *model);

/**
 * What a generated class's init() calls: check that `src` holds the model the class was built
 * for, then open it (open_model()). On success `*out` holds the engine: release it with
 * unload_model().
 *
 * - placement::rodata: the linked bytes must start with an .espdl header of espdl_bytes bytes
 *   (check_linked_model());
 * - placement::partition, chips: dl::Model maps the partition itself, after the CRC-32 check of
 *   check_partition_model() (when check_crc32);
 * - placement::partition, ESP-IDF's linux target: the partition of the emulated flash is mapped,
 *   must hold espdl_bytes bytes, is checked (check_partition_bytes(), when check_crc32) and handed to
 *   the host engine; it stays mapped until unload_model(). Needs esp_partition in the build (the
 *   component that declares the model requires it);
 * - placement::partition, plain host builds: no partitions (open_model() says so).
 *
 * @return ESP_OK; ESP_ERR_INVALID_VERSION when the bytes are not this build's model (one log line,
 *         tag model_name); ESP_ERR_NOT_FOUND / ESP_ERR_INVALID_SIZE when the partition is missing
 *         or too small; ESP_ERR_INVALID_ARG (null out, or `*out` already holds a model);
 *         open_model()'s errors
 */
[[nodiscard]] esp_err_t load_model(const model_source &src, loaded_model *out);

/** Release what load_model() loaded (engine, then mapping) and clear `*model`; an empty one is ignored. */
void unload_model(loaded_model *model);

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
[[nodiscard]] esp_err_t check_partition_model(const char *model_name, const char *label, uint32_t expected_bytes,
                                              uint32_t expected_crc32);

} // namespace espdl_streaming
