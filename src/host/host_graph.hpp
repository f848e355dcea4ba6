/*
 * Host engine, private: the decoded .espdl graph and the helpers every engine file shares
 * (arena, error reporting, element types: graph.cpp); parse_espdl() is in espdl_file.cpp.
 *
 * The engine is a port of the Python simulator (python/espdl_streaming/espdl/simulator.py, validate.py
 * and ops/) and reader (reader.py): those files are the specification. Everything is decoded and
 * allocated while the model is opened; run() only computes.
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

#include "espdl_streaming/port.hpp"
#include "espdl_streaming/types.hpp"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the host engine reads .espdl files (little-endian) with memcpy: little-endian hosts only"
#endif

namespace espdl_streaming::host {

/* Rank limit of the reader (reader.py _MAX_RANK) and of every engine tensor. */
constexpr int max_rank = 16;
/* Largest element count a dims field may announce (reader.py _MAX_ELEMENTS). */
constexpr int64_t max_declared_elements = int64_t(1) << 31;

/* A string inside the model bytes (not NUL-terminated; the bytes outlive the model). */
struct str_view {
    const char *data = nullptr;
    uint32_t size = 0;

    bool empty() const { return size == 0; }
    bool equals(const char *s) const
    {
        const size_t n = std::strlen(s);
        return n == size && (n == 0 || std::memcmp(data, s, n) == 0);
    }
    bool equals(const str_view &o) const
    {
        return o.size == size && (size == 0 || std::memcmp(data, o.data, size) == 0);
    }
    bool starts_with(const char *s) const
    {
        const size_t n = std::strlen(s);
        return n <= size && std::memcmp(data, s, n) == 0;
    }
    /* std::string ordering (bytes as unsigned char, then length): dl::Model's std::map order. */
    int compare(const str_view &o) const
    {
        const uint32_t n = size < o.size ? size : o.size;
        const int c = n == 0 ? 0 : std::memcmp(data, o.data, n);
        if (c != 0) {
            return c;
        }
        return size < o.size ? -1 : size > o.size ? 1 : 0;
    }
};

/* "name" for messages: at most 80 bytes of a name (printf "%.*s" with QUOTED(q)). */
struct quoted {
    explicit quoted(const str_view &s) : size(s.size > 80 ? 80 : static_cast<int>(s.size)), data(s.data ? s.data : "")
    {}
    int size;
    const char *data;
};
#define QUOTED(q) (q).size, (q).data

/* Element types, numbered as in the .espdl schema (reader.py DTYPE_CODES). */
enum class etype : uint8_t {
    f32 = 1,
    u8 = 2,
    i8 = 3,
    u16 = 4,
    i16 = 5,
    i32 = 6,
    i64 = 7,
    boolean = 9,
    f16 = 10,
    f64 = 11,
    u32 = 12,
    u64 = 13,
};

bool etype_valid(int32_t code);
size_t etype_size(etype t);
const char *etype_name(etype t);
/* The integer types the simulator quantizes to (espdl/ops/kernels.py INT_RANGES). */
bool etype_quantizable(etype t);
void etype_range(etype t, double *low, double *high);
bool etype_is_float(etype t);

struct shape_t {
    uint8_t rank = 0;
    int64_t dims[max_rank] = {};

    int64_t count() const
    {
        int64_t n = 1;
        for (uint8_t i = 0; i < rank; ++i) {
            n *= dims[i];
        }
        return n;
    }
    int64_t last() const { return rank > 0 ? dims[rank - 1] : 1; }
    bool equals(const shape_t &o) const
    {
        if (o.rank != rank) {
            return false;
        }
        for (uint8_t i = 0; i < rank; ++i) {
            if (dims[i] != o.dims[i]) {
                return false;
            }
        }
        return true;
    }
};

/* "[1, 3, 16]" into buf. */
void format_shape(const shape_t &s, char *buf, size_t len);

/*
 * First error of an operation: the code and a one-line message (control characters replaced), so
 * tools can print it and open_model() can log it.
 */
class error_sink {
public:
    esp_err_t set(esp_err_t code, const char *format, ...) __attribute__((format(printf, 3, 4)));
    esp_err_t code() const { return m_code; }
    const char *message() const { return m_message; }
    bool failed() const { return m_code != ESP_OK; }

private:
    esp_err_t m_code = ESP_OK;
    char m_message[384] = {};
};

/*
 * Every allocation of a model, freed together. A byte budget turns absurd sizes from corrupt
 * files into ESP_ERR_NO_MEM instead of an attempt to allocate them.
 */
class arena {
public:
    arena() = default;
    arena(const arena &) = delete;
    arena &operator=(const arena &) = delete;
    ~arena();

    /* Zeroed, 16-byte aligned; nullptr when out of memory or over budget. */
    void *alloc(size_t bytes);
    /* `count` value-initialized objects (default member initializers apply). The arena never runs
     * destructors, hence trivially destructible types only. */
    template <class T>
    T *make(size_t count)
    {
        static_assert(std::is_trivially_destructible<T>::value, "arena objects are never destroyed");
        if (count > SIZE_MAX / sizeof(T) / 2) {
            return nullptr;
        }
        T *p = static_cast<T *>(alloc(count * sizeof(T)));
        for (size_t i = 0; p != nullptr && i < count; ++i) {
            new (&p[i]) T();
        }
        return p;
    }
    size_t used() const { return m_used; }

    static constexpr size_t budget = size_t(1) << 30;

private:
    struct alignas(16) block {
        block *next;
    };
    block *m_head = nullptr;
    size_t m_used = 0;
};

enum class attr_kind : int32_t {
    f = 1,
    i = 2,
    s = 3,
    t = 4,
    graph = 5,
    floats = 6,
    ints = 7,
    strings = 8,
};

struct tensor_def;

struct attr_def {
    str_view name;
    attr_kind kind = attr_kind::i;
    int64_t i = 0;
    float f = 0.0f;
    str_view s;
    const int64_t *ints = nullptr;
    const float *floats = nullptr;
    const str_view *strings = nullptr;
    uint32_t count = 0; /* ints, floats or strings */
    const tensor_def *t = nullptr;
};

struct tensor_def {
    str_view name;
    etype type = etype::f32;
    shape_t shape;
    const int64_t *exponents = nullptr;
    uint32_t exponent_count = 0;
    str_view layout;
    const void *data = nullptr; /* plain row-major (weight packing undone) */
    int64_t count = 0;
};

struct node_def {
    str_view name;
    str_view op_type;
    const str_view *inputs = nullptr;
    uint32_t input_count = 0;
    const str_view *outputs = nullptr;
    uint32_t output_count = 0;
    const attr_def *attrs = nullptr;
    uint32_t attr_count = 0;

    /* The attribute `name` (the last one wins, as in the reader's dict), or null. */
    const attr_def *attr(const char *name) const;
    bool has_input(uint32_t i) const { return i < input_count && !inputs[i].empty(); }
};

struct value_info_def {
    str_view name;
    etype type = etype::f32;
    shape_t shape;
    bool has_exponent = false;
    int64_t exponent = 0;
};

/* One metadata_props entry of the model (key and value, not NUL-terminated). */
struct meta_def {
    str_view key;
    str_view value;
};

struct graph_def {
    node_def *nodes = nullptr;
    uint32_t node_count = 0;
    tensor_def *initializers = nullptr;
    uint32_t initializer_count = 0;
    value_info_def *inputs = nullptr;
    uint32_t input_count = 0;
    value_info_def *outputs = nullptr;
    uint32_t output_count = 0;
    value_info_def *value_infos = nullptr;
    uint32_t value_info_count = 0;

    meta_def *metadata = nullptr; /* the model's metadata_props */
    uint32_t metadata_count = 0;

    /* Initializer by name (the last one wins), or null. */
    const tensor_def *initializer(const str_view &name) const;
    /* The metadata value of `key` (the last one wins), or null. */
    const str_view *meta(const char *key, size_t key_len) const;
};

/*
 * Parse an .espdl file (EDL1/EDL2 container, FlatBuffer model) of `size` bytes: every offset is
 * checked, weights are decoded into plain row-major order. ESP_FAIL for a corrupt or truncated
 * file, ESP_ERR_NOT_SUPPORTED for a valid file using what we cannot read (encryption, packed),
 * ESP_ERR_NO_MEM.
 */
esp_err_t parse_espdl(const uint8_t *data, size_t size, arena &mem, error_sink &err, graph_def *out);

/* Upper bound of a .espdl file's size from its header (so a caller with only a pointer, like
 * open_model() on rodata, can bound every read); 0 if the header is not an EDL1/EDL2 header. */
size_t espdl_size_from_header(const uint8_t *data);

} // namespace espdl_streaming::host
