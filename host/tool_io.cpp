#include "tool_io.hpp"

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace tool {

file_bytes::~file_bytes()
{
    std::free(data);
}

bool file_bytes::resize(size_t n)
{
    std::free(data);
    data = static_cast<uint8_t *>(std::aligned_alloc(16, (n + 16) & ~size_t(15)));
    size = data != nullptr ? n : 0;
    if (data != nullptr) {
        std::memset(data, 0, (n + 16) & ~size_t(15));
    }
    return data != nullptr;
}

bool read_file(const char *path, file_bytes *out)
{
    std::FILE *f = std::fopen(path, "rb");
    if (f == nullptr) {
        return false;
    }
    bool ok = std::fseek(f, 0, SEEK_END) == 0;
    const long size = ok ? std::ftell(f) : -1;
    ok = ok && size >= 0 && std::fseek(f, 0, SEEK_SET) == 0 && out->resize(static_cast<size_t>(size));
    ok = ok && std::fread(out->data, 1, out->size, f) == out->size;
    const int saved = errno;
    std::fclose(f);
    errno = ok ? 0 : (saved != 0 ? saved : EIO);
    return ok;
}

bool write_file(const char *path, const void *data, size_t size)
{
    std::FILE *f = std::fopen(path, "wb");
    if (f == nullptr) {
        return false;
    }
    const bool ok = (size == 0 || std::fwrite(data, 1, size, f) == size);
    return std::fclose(f) == 0 && ok;
}

bool parse_rounding(const char *name, espdl_streaming::rounding *out)
{
    if (std::strcmp(name, "half_even") == 0) {
        *out = espdl_streaming::rounding::half_even;
        return true;
    }
    if (std::strcmp(name, "half_up") == 0) {
        *out = espdl_streaming::rounding::half_up;
        return true;
    }
    return false;
}

void json_string(std::FILE *f, const espdl_streaming::host::str_view &s)
{
    std::fputc('"', f);
    for (uint32_t i = 0; i < s.size; ++i) {
        const unsigned char c = static_cast<unsigned char>(s.data[i]);
        if (c == '"' || c == '\\') {
            std::fprintf(f, "\\%c", c);
        } else if (c < 0x20) {
            std::fprintf(f, "\\u%04x", c);
        } else {
            std::fputc(c, f); /* names are valid UTF-8 (the reader checks) */
        }
    }
    std::fputc('"', f);
}

} // namespace tool
