/*
 * Host engine: the small helpers of host_graph.hpp every engine file shares: element types,
 * format_shape, error_sink, the arena, and the lookups of node_def and graph_def.
 * Not here: reading an .espdl file (espdl_file.cpp).
 */
#include <cstdarg>
#include <cstdio>
#include <cstdlib>

#include "host_graph.hpp"

namespace espdl_streaming::host {

bool etype_valid(int32_t code)
{
    return (code >= 1 && code <= 7) || (code >= 9 && code <= 13);
}

size_t etype_size(etype t)
{
    switch (t) {
    case etype::u8:
    case etype::i8:
    case etype::boolean:
        return 1;
    case etype::u16:
    case etype::i16:
    case etype::f16:
        return 2;
    case etype::f32:
    case etype::i32:
    case etype::u32:
        return 4;
    case etype::i64:
    case etype::f64:
    case etype::u64:
        return 8;
    }
    return 1;
}

const char *etype_name(etype t)
{
    switch (t) {
    case etype::f32:
        return "float32";
    case etype::u8:
        return "uint8";
    case etype::i8:
        return "int8";
    case etype::u16:
        return "uint16";
    case etype::i16:
        return "int16";
    case etype::i32:
        return "int32";
    case etype::i64:
        return "int64";
    case etype::boolean:
        return "bool";
    case etype::f16:
        return "float16";
    case etype::f64:
        return "float64";
    case etype::u32:
        return "uint32";
    case etype::u64:
        return "uint64";
    }
    return "unknown";
}

bool etype_quantizable(etype t)
{
    return t == etype::i8 || t == etype::i16 || t == etype::i32 || t == etype::u8 || t == etype::u16;
}

bool etype_is_float(etype t)
{
    return t == etype::f32 || t == etype::f64 || t == etype::f16;
}

void etype_range(etype t, double *low, double *high)
{
    switch (t) {
    case etype::i8:
        *low = -128.0;
        *high = 127.0;
        return;
    case etype::i16:
        *low = -32768.0;
        *high = 32767.0;
        return;
    case etype::i32:
        *low = -2147483648.0;
        *high = 2147483647.0;
        return;
    case etype::u8:
        *low = 0.0;
        *high = 255.0;
        return;
    case etype::u16:
        *low = 0.0;
        *high = 65535.0;
        return;
    default:
        *low = 0.0;
        *high = 0.0;
        return;
    }
}

void format_shape(const shape_t &s, char *buf, size_t len)
{
    size_t used = 0;
    auto put = [&](const char *text) {
        while (*text != '\0' && used + 1 < len) {
            buf[used++] = *text++;
        }
    };
    put("[");
    for (uint8_t i = 0; i < s.rank; ++i) {
        char num[32];
        std::snprintf(num, sizeof(num), i == 0 ? "%lld" : ", %lld", static_cast<long long>(s.dims[i]));
        put(num);
    }
    put("]");
    if (len > 0) {
        buf[used] = '\0';
    }
}

esp_err_t error_sink::set(esp_err_t code, const char *format, ...)
{
    if (m_code != ESP_OK) {
        return m_code; /* the first error is the cause; later ones are consequences */
    }
    m_code = code;
    va_list args;
    va_start(args, format);
    std::vsnprintf(m_message, sizeof(m_message), format, args);
    va_end(args);
    /* Names come from the file: keep the message on one printable line. */
    for (char *p = m_message; *p != '\0'; ++p) {
        const unsigned char c = static_cast<unsigned char>(*p);
        if (c < 0x20 || c == 0x7f) {
            *p = '?';
        }
    }
    return m_code;
}

/* malloc/free rather than new: no exceptions either way, and the allocation-counting tests see
 * malloc through the linker's --wrap (sanitizers replace every operator new themselves). */
arena::~arena()
{
    while (m_head != nullptr) {
        block *next = m_head->next;
        std::free(m_head);
        m_head = next;
    }
}

void *arena::alloc(size_t bytes)
{
    if (bytes == 0) {
        bytes = 1;
    }
    if (bytes > budget || m_used + bytes > budget) {
        return nullptr;
    }
    const size_t total = sizeof(block) + ((bytes + 15) & ~size_t(15));
    unsigned char *raw = static_cast<unsigned char *>(std::malloc(total));
    if (raw == nullptr) {
        return nullptr;
    }
    std::memset(raw, 0, total);
    block *b = reinterpret_cast<block *>(raw);
    b->next = m_head;
    m_head = b;
    m_used += total;
    return raw + sizeof(block);
}

const attr_def *node_def::attr(const char *wanted) const
{
    for (uint32_t i = attr_count; i-- > 0;) {
        if (attrs[i].name.equals(wanted)) {
            return &attrs[i];
        }
    }
    return nullptr;
}

const tensor_def *graph_def::initializer(const str_view &wanted) const
{
    for (uint32_t i = initializer_count; i-- > 0;) {
        if (initializers[i].name.equals(wanted)) {
            return &initializers[i];
        }
    }
    return nullptr;
}

const str_view *graph_def::meta(const char *key, size_t key_len) const
{
    for (uint32_t i = metadata_count; i-- > 0;) {
        const str_view &k = metadata[i].key;
        if (k.size == key_len && (key_len == 0 || std::memcmp(k.data, key, key_len) == 0)) {
            return &metadata[i].value;
        }
    }
    return nullptr;
}

} // namespace espdl_streaming::host
