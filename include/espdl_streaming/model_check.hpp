/*
 * Is the model about to be loaded the one the generated class was built for? The generated init()
 * checks before it loads anything (templates/model.cpp.j2); a mismatch is ESP_ERR_INVALID_VERSION
 * and one log line.
 *
 * PARTITION placement can be stale: `idf.py app-flash`, or an OTA of the app alone, replaces the
 * app (with its generated spec and golden vectors) but leaves the partition as it was. A model
 * retrained at the same shape passes every shape and exponent check and then runs against
 * outputs computed for another one. So init() computes the CRC-32 of the first espdl_bytes bytes
 * of the partition and compares it with the CRC-32 the build computed of the .espdl it made
 * (the generated class's espdl_crc32 == zlib.crc32() of NAME.espdl).
 *
 * Why CRC-32 over exactly the model's bytes:
 * - esp_partition_get_sha256() hashes the whole data partition, the bytes after the model
 *   included (whatever an earlier, larger model or an erase left there): no digest of the file
 *   computed at build time can match it unless the partition is exactly the model's size.
 * - A SHA-256 of just the model needs mbedtls (or per-chip ROM SHA APIs) in every app; the CRC is
 *   esp_rom_crc32_le(), in ROM on every chip and in ESP-IDF's linux target, and zlib's crc32 in
 *   Python. The check guards against a mistake, not an attacker: 32 bits leave a 2^-32 chance of
 *   missing a stale model, and every change confined to 32 consecutive bits is detected.
 * - Cost: the model is read once from flash through the cache (ROM table CRC), roughly the time
 *   of one flash read of the model, once per init(): milliseconds for a model of 100 KB. On chips
 *   the first espdl_bytes of the partition are mapped for the check and unmapped before ESP-DL
 *   maps the partition itself (src/espdl_model.cpp), so it needs no extra MMU pages at run time.
 *
 * RODATA placement cannot be stale: the bytes are linked into the same image by the same build
 * step that generated the class. init() only checks, for free, that the linked bytes start with
 * an .espdl header describing espdl_bytes bytes (a symbol of another model wired in by hand, a
 * truncated blob); hashing them would add a full read of the model to every init() for nothing.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "espdl_streaming/port.hpp"

#if ESPDL_STREAMING_HAS_IDF && __has_include("esp_rom_crc.h")
#include "esp_rom_crc.h"
#define ESPDL_STREAMING_ROM_CRC 1
#else
#define ESPDL_STREAMING_ROM_CRC 0
#endif

namespace espdl_streaming {

/**
 * CRC-32 as Python's zlib.crc32() computes it (IEEE 802.3: reflected polynomial 0xEDB88320,
 * initial value and final XOR 0xFFFFFFFF). Continue over more bytes by passing the previous result.
 */
inline uint32_t crc32(const void *data, size_t size, uint32_t crc = 0)
{
#if ESPDL_STREAMING_ROM_CRC
    /* The ROM helper inverts the register on entry and on exit: crc32_le(0, ...) is zlib's CRC-32,
     * and passing a previous result continues it (esp_rom_crc.h). */
    return esp_rom_crc32_le(crc, static_cast<const uint8_t *>(data), static_cast<uint32_t>(size));
#else
    const uint8_t *p = static_cast<const uint8_t *>(data);
    crc = ~crc;
    for (size_t i = 0; i < size; ++i) {
        crc ^= p[i];
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
#endif
}

/**
 * Size of the .espdl file whose header is at `data` (at least 16 readable bytes): the header (12
 * bytes for EDL1, 16 for EDL2) plus the FlatBuffer size it records; 0 if `data` is no .espdl header.
 */
inline uint32_t espdl_file_size(const uint8_t *data)
{
    uint32_t body = 0;
    std::memcpy(&body, data + 8, sizeof(body)); /* little endian, as on every ESP chip and x86 host */
    if (std::memcmp(data, "EDL1", 4) == 0) {
        return body > UINT32_MAX - 12 ? 0 : body + 12;
    }
    if (std::memcmp(data, "EDL2", 4) == 0) {
        return body > UINT32_MAX - 16 ? 0 : body + 16;
    }
    return 0;
}

/**
 * RODATA: the linked bytes at `data` must be an .espdl of `expected_bytes` bytes.
 *
 * @return ESP_OK, or ESP_ERR_INVALID_VERSION (one log line, tag `model_name`)
 */
[[nodiscard]] inline esp_err_t check_linked_model(const char *model_name, const uint8_t *data, uint32_t expected_bytes)
{
    const uint32_t found = espdl_file_size(data);
    if (found == expected_bytes) {
        return ESP_OK;
    }
    ESP_LOGE(model_name,
             "the .espdl linked into the app is not this class's model: its header describes %lu bytes, "
             "%s.espdl of the build that generated the class has %lu (rebuild: the class and the model "
             "come from one build)",
             static_cast<unsigned long>(found), model_name, static_cast<unsigned long>(expected_bytes));
    return ESP_ERR_INVALID_VERSION;
}

/**
 * PARTITION: the first `expected_bytes` bytes of partition `label`, readable at `data`, must be the
 * .espdl whose CRC-32 is `expected_crc32`.
 *
 * @return ESP_OK, or ESP_ERR_INVALID_VERSION with one log line (tag `model_name`) naming the
 *         partition, the expected and the found CRC-32 and the command that writes the model
 */
[[nodiscard]] inline esp_err_t check_partition_bytes(const char *model_name, const char *label, const void *data,
                                                     uint32_t expected_bytes, uint32_t expected_crc32)
{
    const uint32_t found = crc32(data, expected_bytes);
    if (found == expected_crc32) {
        return ESP_OK;
    }
    const bool is_espdl = expected_bytes >= 16 && espdl_file_size(static_cast<const uint8_t *>(data)) != 0;
    ESP_LOGE(model_name,
             "partition '%s' holds %s: CRC-32 of its first %lu bytes is 0x%08lx, this app expects 0x%08lx "
             "(%s.espdl of its build). Flash the model with the app: `idf.py flash` writes both (`idf.py "
             "app-flash` and an OTA of the app alone leave the partition as it was)",
             label, is_espdl ? "another model" : "no model (erased?)", static_cast<unsigned long>(expected_bytes),
             static_cast<unsigned long>(found), static_cast<unsigned long>(expected_crc32), model_name);
    return ESP_ERR_INVALID_VERSION;
}

} // namespace espdl_streaming
