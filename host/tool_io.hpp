/* Small helpers shared by the host tools: files, rounding names, JSON strings. */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "espdl_streaming/port.hpp"
#include "espdl_streaming/types.hpp"
#include "host_graph.hpp"

namespace tool {

/* A whole file in a 16-byte aligned buffer (as the model is in flash). */
struct file_bytes {
    uint8_t *data = nullptr;
    size_t size = 0;

    file_bytes() = default;
    file_bytes(const file_bytes &) = delete;
    file_bytes &operator=(const file_bytes &) = delete;
    ~file_bytes();
    /* Allocate `size` zeroed bytes; false when out of memory. */
    bool resize(size_t size);
};

/* false with errno set when the file cannot be read. */
bool read_file(const char *path, file_bytes *out);
bool write_file(const char *path, const void *data, size_t size);

bool parse_rounding(const char *name, espdl_streaming::rounding *out);

/* Write `s` as a JSON string (with quotes). */
void json_string(std::FILE *f, const espdl_streaming::host::str_view &s);

/* An engine call that cannot fail on a model the engine opened (an index below input_count() or
 * output_count(); run() and reset()): if it ever does, that is an engine bug, so abort naming it. */
inline void must(esp_err_t ret, const char *call, const char *file, int line)
{
    if (ret != ESP_OK) {
        std::fprintf(stderr, "error: %s:%d: %s returned %d\n", file, line, call, static_cast<int>(ret));
        std::abort();
    }
}

#define TOOL_MUST(call) ::tool::must((call), #call, __FILE__, __LINE__)

} // namespace tool
