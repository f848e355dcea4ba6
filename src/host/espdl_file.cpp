/*
 * The .espdl container and its FlatBuffer, decoded with a bounds check on every read: a port of
 * python/espdl_streaming/espdl/reader.py (same checks, same order, same messages where
 * practical): parse_espdl() and espdl_size_from_header() of host_graph.hpp.
 * Not here: the shared helpers host_graph.hpp declares (element types, arena, error_sink: graph.cpp).
 */
#include <cstdarg>
#include <cstdio>
#include <initializer_list>

#include "host_graph.hpp"

namespace espdl_streaming::host {

namespace {

/* --------------------------------------------------------------------------- flatbuffer access */

/* Vtable slots of the schema (reader.py _Slot). */
namespace slot {
constexpr int model_ir_version = 4, model_producer = 8, model_version = 14, model_graph = 18, model_metadata = 20;
constexpr int graph_nodes = 4, graph_name = 6, graph_initializers = 8;
constexpr int graph_inputs = 12, graph_outputs = 14, graph_value_info = 16;
constexpr int graph_test_inputs = 20, graph_test_outputs = 22;
constexpr int node_inputs = 4, node_outputs = 6, node_name = 8, node_op_type = 10, node_attributes = 14;
constexpr int tensor_dims = 4, tensor_dtype = 6, tensor_floats = 8, tensor_int32s = 10, tensor_int64s = 14;
constexpr int tensor_name = 16, tensor_doc = 18, tensor_raw = 20, tensor_location = 24, tensor_doubles = 26;
constexpr int tensor_uint64s = 28, tensor_exponents = 30;
constexpr int value_name = 4, value_type = 6, value_exponents = 10;
constexpr int type_value_type = 4, type_value = 6;
constexpr int tt_elem_type = 4, tt_shape = 6;
constexpr int shape_dims = 4;
constexpr int dim_value = 4;
constexpr int dimval_type = 4, dimval_value = 6;
constexpr int entry_key = 4, entry_value = 6;
constexpr int attr_name = 4, attr_type = 10, attr_f = 12, attr_i = 14, attr_s = 16, attr_t = 18;
constexpr int attr_floats = 24, attr_ints = 26, attr_strings = 28;
} // namespace slot

constexpr const char *layout_prefix = "layout ==> ";

/* Strict UTF-8 (what Python's decode("utf-8") accepts): no overlongs, surrogates or > U+10FFFF. */
bool valid_utf8(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const uint8_t c = s[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) {
                lo = 0xA0;
            } else if (c == 0xED) {
                hi = 0x9F;
            }
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) {
                lo = 0x90;
            } else if (c == 0xF4) {
                hi = 0x8F;
            }
        } else {
            return false;
        }
        if (n - i < len) {
            return false;
        }
        if (s[i + 1] < lo || s[i + 1] > hi) {
            return false;
        }
        for (size_t k = 2; k < len; ++k) {
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) {
                return false;
            }
        }
        i += len;
    }
    return true;
}

struct table {
    int64_t pos = 0;
    int64_t vtable = 0;
    uint32_t vtable_size = 0;
    const char *kind = "";
    bool present = false;
};

/*
 * Bounds-checked reads. The first failure is recorded in the error sink; later reads return
 * zeros/empties so decoding can unwind without a check after every read (callers test ok()
 * before allocating anything sized by what they read).
 */
class reader {
public:
    reader(const uint8_t *data, size_t size, error_sink &err, arena &mem)
        : m_data(data), m_size(size), m_err(err), m_mem(mem)
    {}

    bool ok() const { return !m_err.failed(); }
    arena &mem() { return m_mem; }
    error_sink &err() { return m_err; }

    bool corrupt(const char *format, ...) __attribute__((format(printf, 2, 3)))
    {
        if (m_err.failed()) {
            return false;
        }
        char detail[320];
        va_list args;
        va_start(args, format);
        std::vsnprintf(detail, sizeof(detail), format, args);
        va_end(args);
        m_err.set(ESP_FAIL, "corrupt or unsupported .espdl file: %s", detail);
        return false;
    }

    bool no_mem()
    {
        m_err.set(ESP_ERR_NO_MEM, "out of memory while reading the model (%lu bytes allocated)",
                  static_cast<unsigned long>(m_mem.used()));
        return false;
    }

    bool check(int64_t pos, int64_t length, const char *what)
    {
        if (!ok()) {
            return false;
        }
        if (pos < 0 || length < 0 || pos > static_cast<int64_t>(m_size) ||
            length > static_cast<int64_t>(m_size) - pos) {
            return corrupt("%s at offset %lld (+%lld bytes) is outside the %lu-byte buffer", what,
                           static_cast<long long>(pos), static_cast<long long>(length),
                           static_cast<unsigned long>(m_size));
        }
        return true;
    }

    template <class T>
    T read(int64_t pos, const char *what)
    {
        T value{};
        if (check(pos, sizeof(T), what)) {
            std::memcpy(&value, m_data + pos, sizeof(T));
        }
        return value;
    }

    const uint8_t *bytes(int64_t pos) const { return m_data + pos; }

    table table_at(int64_t pos, const char *kind)
    {
        table t;
        t.kind = kind;
        t.pos = pos;
        const int32_t soffset = read<int32_t>(pos, kind);
        t.vtable = pos - soffset;
        t.vtable_size = read<uint16_t>(t.vtable, "vtable");
        if (!ok()) {
            return table{};
        }
        if (t.vtable_size < 4 || t.vtable_size % 2 != 0) {
            corrupt("%s vtable has invalid size %u", kind, static_cast<unsigned>(t.vtable_size));
            return table{};
        }
        if (!check(t.vtable, t.vtable_size, "vtable")) {
            return table{};
        }
        t.present = true;
        return t;
    }

    /* Absolute position of a field, 0 when absent. */
    int64_t field(const table &t, int slot_offset)
    {
        if (!t.present || !ok() || slot_offset >= static_cast<int>(t.vtable_size)) {
            return 0;
        }
        const uint16_t offset = read<uint16_t>(t.vtable + slot_offset, "vtable entry");
        return offset != 0 ? t.pos + offset : 0;
    }

    template <class T>
    T scalar(const table &t, int slot_offset, T fallback)
    {
        const int64_t pos = field(t, slot_offset);
        return pos != 0 ? read<T>(pos, "field") : fallback;
    }

    int64_t indirect(int64_t pos, const char *what) { return pos + read<uint32_t>(pos, what); }

    table sub_table(const table &t, int slot_offset, const char *kind)
    {
        const int64_t pos = field(t, slot_offset);
        return pos != 0 ? table_at(indirect(pos, kind), kind) : table{};
    }

    str_view string_at(int64_t pos, const char *what)
    {
        const uint32_t length = read<uint32_t>(pos, what);
        if (!check(pos + 4, length, what)) {
            return str_view{};
        }
        if (!valid_utf8(m_data + pos + 4, length)) {
            corrupt("%s string at offset %lld is not UTF-8", what, static_cast<long long>(pos));
            return str_view{};
        }
        return str_view{reinterpret_cast<const char *>(m_data + pos + 4), length};
    }

    str_view string(const table &t, int slot_offset)
    {
        const int64_t pos = field(t, slot_offset);
        return pos != 0 ? string_at(indirect(pos, "string"), t.kind) : str_view{};
    }

    /* (first element, count) of a vector field, checked as a whole; (0, 0) when absent. */
    bool vector(const table &t, int slot_offset, size_t elem_size, const char *what, int64_t *start, uint32_t *count)
    {
        *start = 0;
        *count = 0;
        const int64_t pos = field(t, slot_offset);
        if (pos == 0) {
            return ok();
        }
        const int64_t begin = indirect(pos, what);
        const uint32_t n = read<uint32_t>(begin, what);
        if (!check(begin + 4, static_cast<int64_t>(n) * static_cast<int64_t>(elem_size), what)) {
            return false;
        }
        *start = begin + 4;
        *count = n;
        return true;
    }

    /* A vector of scalars copied into the arena (unaligned in the file). */
    template <class T>
    const T *numbers(const table &t, int slot_offset, const char *what, uint32_t *count)
    {
        int64_t start;
        if (!vector(t, slot_offset, sizeof(T), what, &start, count) || *count == 0) {
            *count = 0;
            return nullptr;
        }
        T *out = m_mem.make<T>(*count);
        if (out == nullptr) {
            no_mem();
            *count = 0;
            return nullptr;
        }
        std::memcpy(out, m_data + start, static_cast<size_t>(*count) * sizeof(T));
        return out;
    }

    /* Tables of a vector of offsets, in the arena. */
    table *tables(const table &t, int slot_offset, const char *kind, uint32_t *count)
    {
        int64_t start;
        if (!vector(t, slot_offset, 4, kind, &start, count) || *count == 0) {
            *count = 0;
            return nullptr;
        }
        table *out = m_mem.make<table>(*count);
        if (out == nullptr) {
            no_mem();
            *count = 0;
            return nullptr;
        }
        for (uint32_t i = 0; i < *count && ok(); ++i) {
            out[i] = table_at(indirect(start + 4 * int64_t(i), kind), kind);
        }
        return ok() ? out : nullptr;
    }

    str_view *strings(const table &t, int slot_offset, const char *what, uint32_t *count)
    {
        int64_t start;
        if (!vector(t, slot_offset, 4, what, &start, count) || *count == 0) {
            *count = 0;
            return nullptr;
        }
        str_view *out = m_mem.make<str_view>(*count);
        if (out == nullptr) {
            no_mem();
            *count = 0;
            return nullptr;
        }
        for (uint32_t i = 0; i < *count && ok(); ++i) {
            out[i] = string_at(indirect(start + 4 * int64_t(i), what), what);
        }
        return ok() ? out : nullptr;
    }

private:
    const uint8_t *m_data;
    size_t m_size;
    error_sink &m_err;
    arena &m_mem;
};

/* --------------------------------------------------------------------------- decoding */

bool checked_dims(reader &rd, const int64_t *values, uint32_t count, const char *where, const str_view &name,
                  shape_t *out)
{
    const quoted q(name);
    if (count > static_cast<uint32_t>(max_rank)) {
        return rd.corrupt("%s '%.*s' has invalid dims (rank %lu)", where, QUOTED(q), static_cast<unsigned long>(count));
    }
    int64_t total = 1;
    out->rank = static_cast<uint8_t>(count);
    for (uint32_t i = 0; i < count; ++i) {
        const int64_t d = values[i];
        if (d < 0) {
            return rd.corrupt("%s '%.*s' has invalid dims (dimension %lu is %lld)", where, QUOTED(q),
                              static_cast<unsigned long>(i), static_cast<long long>(d));
        }
        out->dims[i] = d;
    }
    /* Checked as the reader does: the running product must stay within the limit. */
    for (uint32_t i = 0; i < count; ++i) {
        const int64_t d = values[i];
        if (total > 0 && d > max_declared_elements / total) {
            return rd.corrupt("%s '%.*s' has implausibly large dims", where, QUOTED(q));
        }
        total *= d;
    }
    return true;
}

bool decode_value_info(reader &rd, const table &t, value_info_def *out)
{
    out->name = rd.string(t, slot::value_name);
    const quoted q(out->name);
    const table type_info = rd.sub_table(t, slot::value_type, "TypeInfo");
    if (!rd.ok()) {
        return false;
    }
    if (!type_info.present) {
        return rd.corrupt("value info '%.*s' has no type", QUOTED(q));
    }
    if (rd.scalar<uint8_t>(type_info, slot::type_value_type, 0) != 1) {
        return rd.ok() && rd.corrupt("value info '%.*s' is not a tensor type", QUOTED(q));
    }
    const table tensor_type = rd.sub_table(type_info, slot::type_value, "TensorTypeAndShape");
    if (!rd.ok()) {
        return false;
    }
    if (!tensor_type.present) {
        return rd.corrupt("value info '%.*s' has no tensor type", QUOTED(q));
    }
    const int32_t code = rd.scalar<int32_t>(tensor_type, slot::tt_elem_type, 0);
    if (!rd.ok()) {
        return false;
    }
    if (!etype_valid(code)) {
        return rd.corrupt("value info '%.*s' has unknown data type %ld", QUOTED(q), static_cast<long>(code));
    }
    out->type = static_cast<etype>(code);
    const table shape_table = rd.sub_table(tensor_type, slot::tt_shape, "TensorShape");
    uint32_t dim_count = 0;
    const table *dims =
        shape_table.present ? rd.tables(shape_table, slot::shape_dims, "Dimension", &dim_count) : nullptr;
    if (!rd.ok()) {
        return false;
    }
    int64_t values[max_rank] = {};
    for (uint32_t i = 0; i < dim_count; ++i) {
        const table value = rd.sub_table(dims[i], slot::dim_value, "DimensionValue");
        if (!rd.ok()) {
            return false;
        }
        if (!value.present || rd.scalar<int8_t>(value, slot::dimval_type, 0) != 1) {
            return rd.ok() && rd.corrupt("value info '%.*s' has a symbolic or missing dimension", QUOTED(q));
        }
        const int64_t v = rd.scalar<int64_t>(value, slot::dimval_value, 0);
        if (i < static_cast<uint32_t>(max_rank)) {
            values[i] = v;
        }
    }
    uint32_t exp_count = 0;
    const int64_t *exps = rd.numbers<int64_t>(t, slot::value_exponents, "exponents", &exp_count);
    if (!rd.ok()) {
        return false;
    }
    out->has_exponent = exp_count > 0;
    out->exponent = exp_count > 0 ? exps[0] : 0;
    if (dim_count > static_cast<uint32_t>(max_rank)) {
        return rd.corrupt("value info '%.*s' has invalid dims (rank %lu)", QUOTED(q),
                          static_cast<unsigned long>(dim_count));
    }
    return checked_dims(rd, values, dim_count, "value info", out->name, &out->shape);
}

/* reader.py _packing: (lanes, unaligned) of "(N/16)HWC16_UNALIGNED" and friends. */
bool packing(const str_view &layout, int *align, bool *unaligned)
{
    static const char *const names[][2] = {
        {"(N/16)WC16", "(N/16)WC16_UNALIGNED"},
        {"(N/16)HWC16", "(N/16)HWC16_UNALIGNED"},
        {"(N/8)WC8", "(N/8)WC8_UNALIGNED"},
        {"(N/8)HWC8", "(N/8)HWC8_UNALIGNED"},
    };
    for (int i = 0; i < 4; ++i) {
        for (int u = 0; u < 2; ++u) {
            if (layout.equals(names[i][u])) {
                *align = i < 2 ? 16 : 8;
                *unaligned = u == 1;
                return true;
            }
        }
    }
    return false;
}

bool plain_layout(const str_view &layout)
{
    static const char *const names[] = {"UNK", "", "NCHW", "NCW", "WCN", "HWCN"};
    for (const char *n : names) {
        if (layout.equals(n)) {
            return true;
        }
    }
    return false;
}

/*
 * reader.py unpack_filter: undo esp-ppq's weight packing. `flat` holds count elements of
 * `item` bytes in file order; `dst` (null: check only) receives them in plain row-major order of
 * `dims`. Returns false with the reason in `why`.
 */
bool unpack_filter(const uint8_t *flat, size_t item, const str_view &layout, const shape_t &dims, bool depthwise,
                   bool batched, uint8_t *dst, char *why, size_t why_len)
{
    const int64_t count = dims.count();
    if (plain_layout(layout) || dims.rank < 2) {
        if (dst != nullptr && count > 0) {
            std::memcpy(dst, flat, static_cast<size_t>(count) * item);
        }
        return true;
    }
    const int r = dims.rank;
    int64_t batches = 1;
    int64_t spatial = 1;
    for (int i = 0; i < r - 2; ++i) {
        (batched ? batches : spatial) *= dims.dims[i];
    }
    const int64_t n = depthwise ? dims.dims[r - 2] : dims.dims[r - 1];
    const int64_t c = depthwise ? dims.dims[r - 1] : dims.dims[r - 2];
    if (batches == 0) {
        return true; /* no matrices: nothing to move (count is 0) */
    }
    const int64_t per = count / batches;
    if (per != spatial * c * n) {
        std::snprintf(why, why_len, "%lld values do not fill a filter", static_cast<long long>(per));
        return false;
    }
    const bool nwc = layout.equals("NWC") || layout.equals("NHWC");
    int align = 0;
    bool unaligned = false;
    if (!nwc && !packing(layout, &align, &unaligned)) {
        std::snprintf(why, why_len, "unknown weight layout '%.*s'",
                      layout.size > 40 ? 40 : static_cast<int>(layout.size), layout.data ? layout.data : "");
        return false;
    }
    const int64_t aligned = nwc ? n : n / align * align;
    const int64_t rem = n - aligned;
    if (!nwc && unaligned != (rem != 0)) {
        std::snprintf(why, why_len, "layout '%.*s' does not match N=%lld", static_cast<int>(layout.size), layout.data,
                      static_cast<long long>(n));
        return false;
    }
    if (dst == nullptr) {
        return true;
    }
    const int64_t split = aligned * spatial * c;
    for (int64_t b = 0; b < batches; ++b) {
        const uint8_t *m = flat + static_cast<size_t>(b * per) * item;
        uint8_t *o = dst + static_cast<size_t>(b * per) * item;
        for (int64_t s = 0; s < spatial; ++s) {
            for (int64_t ci = 0; ci < c; ++ci) {
                for (int64_t ni = 0; ni < n; ++ni) {
                    int64_t src;
                    if (nwc) {
                        src = (ni * spatial + s) * c + ci;
                    } else if (ni < aligned) {
                        src = (((ni / align) * spatial + s) * c + ci) * align + ni % align;
                    } else if (depthwise) {
                        src = split + (ci * spatial + s) * rem + (ni - aligned);
                    } else {
                        src = split + ((ni - aligned) * spatial + s) * c + ci;
                    }
                    /* (*spatial, C, N), or (*spatial, N, C) for a depthwise filter */
                    const int64_t at = depthwise ? (s * n + ni) * c + ci : (s * c + ci) * n + ni;
                    std::memcpy(o + at * static_cast<int64_t>(item), m + src * static_cast<int64_t>(item), item);
                }
            }
        }
    }
    return true;
}

/* float32 -> float16 bits, round to nearest even (numpy's astype(float16)). */
uint16_t half_from_float(float value)
{
    uint32_t f;
    std::memcpy(&f, &value, 4);
    const uint16_t sign = static_cast<uint16_t>((f >> 16) & 0x8000u);
    const uint32_t exp = (f >> 23) & 0xffu;
    uint32_t mant = f & 0x7fffffu;
    if (exp == 0xff) {
        return static_cast<uint16_t>(sign | 0x7c00u | (mant != 0 ? 0x200u : 0u));
    }
    const int32_t e = static_cast<int32_t>(exp) - 127 + 15;
    if (e >= 31) {
        return static_cast<uint16_t>(sign | 0x7c00u);
    }
    if (e <= 0) {
        if (e < -10) {
            return sign;
        }
        mant |= 0x800000u;
        const uint32_t shift = static_cast<uint32_t>(14 - e);
        uint32_t h = mant >> shift;
        const uint32_t rest = mant & ((1u << shift) - 1u);
        const uint32_t half = 1u << (shift - 1);
        if (rest > half || (rest == half && (h & 1u))) {
            ++h;
        }
        return static_cast<uint16_t>(sign | h);
    }
    uint32_t h = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
    const uint32_t rest = mant & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) {
        ++h; /* may carry into the exponent, up to infinity: correct */
    }
    return static_cast<uint16_t>(sign | h);
}

/* Convert one element of a typed payload into the tensor's element type (numpy astype). */
template <class S>
void convert_into(etype to, const S &v, uint8_t *dst)
{
    switch (to) {
    case etype::f32: {
        const float x = static_cast<float>(v);
        std::memcpy(dst, &x, 4);
        break;
    }
    case etype::f16: {
        const uint16_t h = half_from_float(static_cast<float>(v));
        std::memcpy(dst, &h, 2);
        break;
    }
    case etype::f64: {
        const double x = static_cast<double>(v);
        std::memcpy(dst, &x, 8);
        break;
    }
    case etype::boolean:
        *dst = v != S(0) ? 1 : 0;
        break;
    default: {
        /* Integer to integer: wraps modulo 2^bits like numpy's astype. */
        const uint64_t bits = static_cast<uint64_t>(static_cast<int64_t>(v));
        std::memcpy(dst, &bits, etype_size(to));
        break;
    }
    }
}

/*
 * reader.py _decode_tensor. `consumer`: the node reading this tensor as its input 1 (selects the
 * depthwise / batched unpacking). With `materialize` false the payload is only checked.
 */
bool decode_tensor(reader &rd, const table &t, const node_def *consumer, bool materialize, tensor_def *out)
{
    out->name = rd.string(t, slot::tensor_name);
    const quoted q(out->name);
    uint32_t dim_count = 0;
    const int64_t *dims = rd.numbers<int64_t>(t, slot::tensor_dims, "dims", &dim_count);
    if (!rd.ok() || !checked_dims(rd, dims, dim_count, "tensor", out->name, &out->shape)) {
        return false;
    }
    const int32_t code = rd.scalar<int32_t>(t, slot::tensor_dtype, 0);
    if (!rd.ok()) {
        return false;
    }
    if (!etype_valid(code)) {
        return rd.corrupt("tensor '%.*s' has unknown data type %ld", QUOTED(q), static_cast<long>(code));
    }
    out->type = static_cast<etype>(code);
    out->exponents = rd.numbers<int64_t>(t, slot::tensor_exponents, "exponents", &out->exponent_count);
    const str_view doc = rd.string(t, slot::tensor_doc);
    if (!rd.ok()) {
        return false;
    }
    const size_t prefix = std::strlen(layout_prefix);
    if (doc.starts_with(layout_prefix)) {
        out->layout = str_view{doc.data + prefix, static_cast<uint32_t>(doc.size - prefix)};
    } else {
        out->layout = doc.empty() ? str_view{"UNK", 3} : doc;
    }
    out->count = out->shape.rank > 0 ? out->shape.count() : 1;

    /* reader.py _tensor_payload */
    if (rd.scalar<int32_t>(t, slot::tensor_location, 0) != 0) {
        return rd.ok() && rd.corrupt("tensor '%.*s' uses external data, which .espdl files cannot hold", QUOTED(q));
    }
    const size_t item = etype_size(out->type);
    int64_t raw_start;
    uint32_t raw_blocks;
    if (!rd.vector(t, slot::tensor_raw, 16, "raw_data", &raw_start, &raw_blocks)) {
        return false;
    }
    const int64_t need = out->count * static_cast<int64_t>(item);
    const uint8_t *flat = nullptr;
    uint8_t *converted = nullptr;
    if (raw_blocks > 0) {
        const int64_t have = static_cast<int64_t>(raw_blocks) * 16;
        if (have < need) {
            return rd.corrupt("tensor '%.*s' raw data holds %lld bytes, dims need %lld", QUOTED(q),
                              static_cast<long long>(have), static_cast<long long>(need));
        }
        flat = rd.bytes(raw_start);
    } else {
        /* reader.py _typed_payload: the typed field that holds this dtype, converted with astype */
        int field;
        size_t field_size;
        const char *what;
        switch (out->type) {
        case etype::f32:
        case etype::f16:
            field = slot::tensor_floats, field_size = 4, what = "float_data";
            break;
        case etype::f64:
            field = slot::tensor_doubles, field_size = 8, what = "double_data";
            break;
        case etype::i64:
            field = slot::tensor_int64s, field_size = 8, what = "int64_data";
            break;
        case etype::u32:
        case etype::u64:
            field = slot::tensor_uint64s, field_size = 8, what = "uint64_data";
            break;
        default:
            field = slot::tensor_int32s, field_size = 4, what = "int32_data";
            break;
        }
        int64_t start;
        uint32_t n;
        if (!rd.vector(t, field, field_size, what, &start, &n)) {
            return false;
        }
        if (static_cast<int64_t>(n) != out->count) {
            return rd.corrupt("tensor '%.*s' holds %lu values, dims need %lld", QUOTED(q),
                              static_cast<unsigned long>(n), static_cast<long long>(out->count));
        }
        if (materialize && n > 0) {
            converted = rd.mem().make<uint8_t>(static_cast<size_t>(need));
            if (converted == nullptr) {
                return rd.no_mem();
            }
            const uint8_t *src = rd.bytes(start);
            for (uint32_t i = 0; i < n; ++i) {
                uint8_t *dst = converted + static_cast<size_t>(i) * item;
                if (field == slot::tensor_floats) {
                    float v;
                    std::memcpy(&v, src + 4 * size_t(i), 4);
                    convert_into(out->type, v, dst);
                } else if (field == slot::tensor_doubles) {
                    double v;
                    std::memcpy(&v, src + 8 * size_t(i), 8);
                    convert_into(out->type, v, dst);
                } else if (field == slot::tensor_int64s) {
                    int64_t v;
                    std::memcpy(&v, src + 8 * size_t(i), 8);
                    convert_into(out->type, v, dst);
                } else if (field == slot::tensor_uint64s) {
                    uint64_t v;
                    std::memcpy(&v, src + 8 * size_t(i), 8);
                    if (out->type == etype::u64 || out->type == etype::u32) {
                        std::memcpy(dst, &v, item); /* little-endian truncation = astype wrap */
                    }
                } else {
                    int32_t v;
                    std::memcpy(&v, src + 4 * size_t(i), 4);
                    convert_into(out->type, v, dst);
                }
            }
        }
        flat = converted;
    }

    const bool depthwise = consumer != nullptr && consumer->op_type.equals("Conv") && [&] {
        const attr_def *group = consumer->attr("group");
        return group != nullptr && !(group->kind == attr_kind::i && group->i == 1) &&
               !(group->kind == attr_kind::f && group->f == 1.0f);
    }();
    const bool batched = consumer != nullptr && consumer->op_type.equals("MatMul");
    uint8_t *plain = nullptr;
    if (materialize) {
        plain = rd.mem().make<uint8_t>(static_cast<size_t>(need));
        if (plain == nullptr) {
            return rd.no_mem();
        }
    }
    char why[160] = {};
    if (!unpack_filter(flat, item, out->layout, out->shape, depthwise, batched, need > 0 ? plain : nullptr, why,
                       sizeof(why))) {
        return rd.corrupt("tensor '%.*s': %s", QUOTED(q), why);
    }
    out->data = plain;
    return true;
}

bool decode_attribute(reader &rd, const table &t, attr_def *out)
{
    out->name = rd.string(t, slot::attr_name);
    const int32_t kind = rd.scalar<int32_t>(t, slot::attr_type, 0);
    if (!rd.ok()) {
        return false;
    }
    out->kind = static_cast<attr_kind>(kind);
    switch (out->kind) {
    case attr_kind::i:
        out->i = rd.scalar<int64_t>(t, slot::attr_i, 0);
        break;
    case attr_kind::f:
        out->f = rd.scalar<float>(t, slot::attr_f, 0.0f);
        break;
    case attr_kind::s: {
        int64_t start;
        uint32_t n;
        if (rd.vector(t, slot::attr_s, 1, "s", &start, &n)) {
            if (!valid_utf8(rd.bytes(start), n)) {
                const quoted q(out->name);
                return rd.corrupt("attribute '%.*s' is not UTF-8", QUOTED(q));
            }
            out->s = n > 0 ? str_view{reinterpret_cast<const char *>(rd.bytes(start)), n} : str_view{};
        }
        break;
    }
    case attr_kind::ints:
        out->ints = rd.numbers<int64_t>(t, slot::attr_ints, "ints", &out->count);
        break;
    case attr_kind::floats:
        out->floats = rd.numbers<float>(t, slot::attr_floats, "floats", &out->count);
        break;
    case attr_kind::strings:
        out->strings = rd.strings(t, slot::attr_strings, "strings", &out->count);
        break;
    case attr_kind::t: {
        const table sub = rd.sub_table(t, slot::attr_t, "Tensor");
        if (sub.present) {
            tensor_def *tensor = rd.mem().make<tensor_def>(1);
            if (tensor == nullptr) {
                return rd.no_mem();
            }
            if (!decode_tensor(rd, sub, nullptr, true, tensor)) {
                return false;
            }
            out->t = tensor;
        }
        break;
    }
    default: {
        const quoted q(out->name);
        return rd.corrupt("attribute '%.*s' has unsupported type %ld", QUOTED(q), static_cast<long>(kind));
    }
    }
    return rd.ok();
}

bool decode_node(reader &rd, const table &t, node_def *out)
{
    uint32_t count = 0;
    const table *attrs = rd.tables(t, slot::node_attributes, "Attribute", &count);
    if (!rd.ok()) {
        return false;
    }
    attr_def *decoded = count > 0 ? rd.mem().make<attr_def>(count) : nullptr;
    if (count > 0 && decoded == nullptr) {
        return rd.no_mem();
    }
    for (uint32_t i = 0; i < count; ++i) {
        if (!decode_attribute(rd, attrs[i], &decoded[i])) {
            return false;
        }
    }
    out->attrs = decoded;
    out->attr_count = count;
    out->name = rd.string(t, slot::node_name);
    out->op_type = rd.string(t, slot::node_op_type);
    out->inputs = rd.strings(t, slot::node_inputs, "node inputs", &out->input_count);
    out->outputs = rd.strings(t, slot::node_outputs, "node outputs", &out->output_count);
    return rd.ok();
}

bool decode_value_infos(reader &rd, const table &graph, int slot_offset, value_info_def **out, uint32_t *count)
{
    const table *tables = rd.tables(graph, slot_offset, "ValueInfo", count);
    if (!rd.ok()) {
        return false;
    }
    *out = *count > 0 ? rd.mem().make<value_info_def>(*count) : nullptr;
    if (*count > 0 && *out == nullptr) {
        return rd.no_mem();
    }
    for (uint32_t i = 0; i < *count; ++i) {
        if (!decode_value_info(rd, tables[i], &(*out)[i])) {
            return false;
        }
    }
    return true;
}

/* The node reading `name` as its input 1, the last one winning (reader.py `consumers`). */
const node_def *consumer_of(const graph_def &g, const str_view &name)
{
    for (uint32_t i = g.node_count; i-- > 0;) {
        if (g.nodes[i].input_count > 1 && g.nodes[i].inputs[1].equals(name)) {
            return &g.nodes[i];
        }
    }
    return nullptr;
}

bool parse_flatbuffer(reader &rd, graph_def *g)
{
    const table root = rd.table_at(rd.read<uint32_t>(0, "root offset"), "Model");
    if (!rd.ok()) {
        return false;
    }
    const table graph = rd.sub_table(root, slot::model_graph, "Graph");
    if (!rd.ok()) {
        return false;
    }
    if (!graph.present) {
        return rd.corrupt("the model has no graph");
    }

    uint32_t count = 0;
    const table *tables = rd.tables(graph, slot::graph_nodes, "Node", &count);
    if (!rd.ok()) {
        return false;
    }
    g->nodes = count > 0 ? rd.mem().make<node_def>(count) : nullptr;
    if (count > 0 && g->nodes == nullptr) {
        return rd.no_mem();
    }
    g->node_count = count;
    for (uint32_t i = 0; i < count; ++i) {
        if (!decode_node(rd, tables[i], &g->nodes[i])) {
            return false;
        }
    }

    tables = rd.tables(graph, slot::graph_initializers, "Tensor", &count);
    if (!rd.ok()) {
        return false;
    }
    g->initializers = count > 0 ? rd.mem().make<tensor_def>(count) : nullptr;
    if (count > 0 && g->initializers == nullptr) {
        return rd.no_mem();
    }
    g->initializer_count = count;
    for (uint32_t i = 0; i < count; ++i) {
        /* The consumer depends on the name, which decode_tensor reads first. */
        const str_view name = rd.string(tables[i], slot::tensor_name);
        if (!rd.ok() || !decode_tensor(rd, tables[i], consumer_of(*g, name), true, &g->initializers[i])) {
            return false;
        }
    }

    /* Test values are checked like the reader does, not kept: the engine never uses them. */
    for (int which : {slot::graph_test_inputs, slot::graph_test_outputs}) {
        tables = rd.tables(graph, which, "Tensor", &count);
        for (uint32_t i = 0; i < count && rd.ok(); ++i) {
            tensor_def scratch;
            if (!decode_tensor(rd, tables[i], nullptr, false, &scratch)) {
                return false;
            }
        }
        if (!rd.ok()) {
            return false;
        }
    }

    tables = rd.tables(root, slot::model_metadata, "StringStringEntry", &count);
    g->metadata = count > 0 && rd.ok() ? rd.mem().make<meta_def>(count) : nullptr;
    if (count > 0 && rd.ok() && g->metadata == nullptr) {
        return rd.no_mem();
    }
    for (uint32_t i = 0; i < count && rd.ok(); ++i) {
        g->metadata[i].key = rd.string(tables[i], slot::entry_key);
        g->metadata[i].value = rd.string(tables[i], slot::entry_value);
    }
    g->metadata_count = rd.ok() ? count : 0;
    rd.string(root, slot::model_producer);
    if (!rd.ok()) {
        return false;
    }

    if (!decode_value_infos(rd, graph, slot::graph_inputs, &g->inputs, &g->input_count) ||
        !decode_value_infos(rd, graph, slot::graph_outputs, &g->outputs, &g->output_count) ||
        !decode_value_infos(rd, graph, slot::graph_value_info, &g->value_infos, &g->value_info_count)) {
        return false;
    }
    rd.scalar<int32_t>(root, slot::model_ir_version, 0);
    rd.scalar<int64_t>(root, slot::model_version, 0);
    rd.string(graph, slot::graph_name);
    return rd.ok();
}

} // namespace

size_t espdl_size_from_header(const uint8_t *data)
{
    if (std::memcmp(data, "EDL1", 4) != 0 && std::memcmp(data, "EDL2", 4) != 0) {
        return 0;
    }
    uint32_t size;
    std::memcpy(&size, data + 8, 4);
    return (data[3] == '2' ? 16u : 12u) + static_cast<size_t>(size);
}

esp_err_t parse_espdl(const uint8_t *data, size_t size, arena &mem, error_sink &err, graph_def *out)
{
    *out = graph_def{};
    /* reader.py _split_container */
    if (size < 12) {
        return err.set(ESP_FAIL,
                       "corrupt or unsupported .espdl file: file is %lu bytes, too short for an .espdl header",
                       static_cast<unsigned long>(size));
    }
    if (std::memcmp(data, "PDL", 3) == 0 && data[3] >= '1' && data[3] <= '3') {
        return err.set(ESP_ERR_NOT_SUPPORTED, "this is a packed multi-model file (PDL%c); unpack it first", data[3]);
    }
    if (std::memcmp(data, "EDL1", 4) != 0 && std::memcmp(data, "EDL2", 4) != 0) {
        return err.set(ESP_FAIL, "corrupt or unsupported .espdl file: bad magic (expected EDL1 or EDL2)");
    }
    uint32_t mode;
    uint32_t payload;
    std::memcpy(&mode, data + 4, 4);
    std::memcpy(&payload, data + 8, 4);
    if (mode == 1) {
        return err.set(ESP_ERR_NOT_SUPPORTED, "the model is AES-encrypted; only plain models can be read");
    }
    if (mode != 0) {
        return err.set(ESP_FAIL, "corrupt or unsupported .espdl file: unknown encryption mode %lu",
                       static_cast<unsigned long>(mode));
    }
    const size_t start = data[3] == '2' ? 16 : 12;
    if (payload < 8 || start > size || payload > size - start) {
        return err.set(ESP_FAIL,
                       "corrupt or unsupported .espdl file: header announces %lu bytes of model but the file holds %ld",
                       static_cast<unsigned long>(payload), static_cast<long>(size) - static_cast<long>(start));
    }
    reader rd(data + start, payload, err, mem);
    parse_flatbuffer(rd, out);
    return err.code();
}

} // namespace espdl_streaming::host
