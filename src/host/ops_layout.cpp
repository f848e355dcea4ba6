/*
 * Data movement (espdl/ops/layout.py: data movement, Pad, InsertZeros, StreamingCache).
 *
 * Each op computes, at open time, which source element every output element reads (an index
 * map, -1 for padding), reproducing numpy's indexing rules including its quirks (Python slice
 * clamping, np.pad's iterative reflection). At run time the map is applied with the rule of
 * espdl/ops/kernels.py NodeRun.passthrough: the integers are copied when dtype and exponent are
 * unchanged, otherwise the value is requantized at the output's exponent.
 */
#include "host_ops.hpp"

namespace espdl_streaming::host {
namespace {

/* index[i] = the flat source element of output element i (or -1 for a zero), walking the output in
 * row-major order; `source` maps an output multi-index to that element. */
template <class F>
void fill_gather_index(const shape_t &out, int64_t *index, F &&source)
{
    int64_t idx[max_rank] = {};
    for (int64_t i = 0; i < out.count(); ++i) {
        index[i] = source(static_cast<const int64_t *>(idx));
        for (int d = out.rank - 1; d >= 0; --d) {
            if (++idx[d] < out.dims[d]) {
                break;
            }
            idx[d] = 0;
        }
    }
}

/* Pads, strides, slice counts larger than this are rejected (keeps index arithmetic in range). */
constexpr int64_t max_layout_attr = int64_t(1) << 24;
/* Concat inputs (the map stores the source as a byte). */
constexpr uint32_t max_concat_inputs = 255;

void row_strides(const shape_t &s, int64_t *strides)
{
    int64_t stride = 1;
    for (int d = s.rank - 1; d >= 0; --d) {
        strides[d] = stride;
        stride *= s.dims[d];
    }
}

void gather_kernel(const run_ctx &ctx)
{
    run_gather(*static_cast<const gather_plan *>(ctx.plan.state), *ctx.plan.out[0], ctx.mode);
}

/* A source read element by element: per-channel exponents (constants) must follow its last axis,
 * as numpy's broadcast in espdl/ops/kernels.py's dequantize requires. */
esp_err_t source_ok(prep &p, const slot &src)
{
    if (src.channel_count > 1 && src.channel_count != src.shape.last()) {
        return p.unsupported("constant with %lu exponents for a last axis of %lld",
                             static_cast<unsigned long>(src.channel_count), static_cast<long long>(src.shape.last()));
    }
    return ESP_OK;
}

/* A single-source gather plan over input 0 with a fresh index array for `count` outputs. */
esp_err_t single_source(prep &p, slot *src, int64_t count, gather_plan **out, int64_t **index)
{
    ESPDL_STREAMING_RETURN_ON_ERROR(source_ok(p, *src));
    gather_plan *g = p.make<gather_plan>(1);
    const slot **sources = p.make<const slot *>(1);
    *index = p.make<int64_t>(static_cast<size_t>(count));
    if (g == nullptr || sources == nullptr || *index == nullptr) {
        return p.no_mem();
    }
    sources[0] = src;
    g->sources = sources;
    g->source_count = 1;
    g->index = *index;
    *out = g;
    return ESP_OK;
}

esp_err_t finish_gather(prep &p, gather_plan *g, const shape_t &shape)
{
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, shape, &y));
    p.add_work(y->count * 2);
    p.set_kernel(gather_kernel, g);
    return ESP_OK;
}

/* An output of `shape` holding the input's elements in the same (row-major) order. */
esp_err_t same_order(prep &p, slot *x, const shape_t &shape)
{
    if (shape.count() != x->count) {
        return p.fail("internal error: element count changed");
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(shape_ok(p, shape));
    gather_plan *g = nullptr;
    int64_t *index = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(single_source(p, x, shape.count(), &g, &index));
    for (int64_t i = 0; i < x->count; ++i) {
        index[i] = i;
    }
    return finish_gather(p, g, shape);
}

/*
 * CPython's slice.indices() (PySlice_AdjustIndices) for slice(start, stop, step) over `length`:
 * the first index and the element count. `has_stop` false is a None stop.
 */
void python_slice(int64_t start, bool has_stop, int64_t stop, int64_t step, int64_t length, int64_t *first,
                  int64_t *count)
{
    if (start < 0) {
        start += length;
        if (start < 0) {
            start = step < 0 ? -1 : 0;
        }
    } else if (start >= length) {
        start = step < 0 ? length - 1 : length;
    }
    if (!has_stop) {
        stop = step < 0 ? -1 : length;
    } else if (stop < 0) {
        stop += length;
        if (stop < 0) {
            stop = step < 0 ? -1 : 0;
        }
    } else if (stop >= length) {
        stop = step < 0 ? length - 1 : length;
    }
    *first = start;
    if (step < 0) {
        /* -INT64_MIN overflows; INT64_MAX gives the same count for in-range bounds */
        const int64_t magnitude = step == INT64_MIN ? INT64_MAX : -step;
        *count = stop < start ? (start - stop - 1) / magnitude + 1 : 0;
    } else {
        *count = start < stop ? (stop - start - 1) / step + 1 : 0;
    }
}

/* Index of a Python list with a possibly negative index (wraps once); false when out of range. */
bool python_index(int64_t i, int rank, int *out)
{
    if (i < 0) {
        i += rank;
    }
    if (i < 0 || i >= rank) {
        return false;
    }
    *out = static_cast<int>(i);
    return true;
}

/* espdl/ops/layout.py _axes_of: the axes input, else the axes attribute (default []). */
esp_err_t axes_of(prep &p, int64_t *axes, uint32_t capacity, uint32_t *count)
{
    if (p.has_input(1)) {
        return p.const_ints(1, "axes", axes, capacity, count);
    }
    bool present = false;
    return p.attr_ints("axes", axes, capacity, count, &present);
}

} // namespace

/* ------------------------------------------------------------------ Concat */

esp_err_t prepare_concat(prep &p)
{
    const uint32_t n = p.node().input_count;
    if (n == 0) {
        return p.fail("needs at least one input");
    }
    if (n > max_concat_inputs) {
        return p.unsupported("more than %lu inputs", static_cast<unsigned long>(max_concat_inputs));
    }
    int64_t axis_attr = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("axis", 0, &axis_attr));
    const slot **sources = p.make<const slot *>(n);
    if (sources == nullptr) {
        return p.no_mem();
    }
    for (uint32_t i = 0; i < n; ++i) {
        slot *s = nullptr;
        ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(i, &s));
        ESPDL_STREAMING_RETURN_ON_ERROR(source_ok(p, *s));
        sources[i] = s;
    }
    const shape_t &first = sources[0]->shape;
    int axis = 0;
    if (first.rank == 0 || !normalize_axis(axis_attr, first.rank, &axis)) {
        return p.fail("axis %lld does not fit inputs of rank %d", static_cast<long long>(axis_attr), first.rank);
    }
    shape_t out = first;
    out.dims[axis] = 0;
    for (uint32_t i = 0; i < n; ++i) {
        const shape_t &s = sources[i]->shape;
        bool fits = s.rank == first.rank;
        for (int d = 0; fits && d < s.rank; ++d) {
            fits = d == axis || s.dims[d] == first.dims[d];
        }
        if (!fits) {
            return p.fail("input %lu does not match the other inputs outside axis %d", static_cast<unsigned long>(i),
                          axis);
        }
        out.dims[axis] += s.dims[axis];
        if (out.dims[axis] > max_tensor_elements) {
            return p.unsupported("concatenation too large");
        }
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(shape_ok(p, out));
    const int64_t count = out.count();
    gather_plan *g = p.make<gather_plan>(1);
    int64_t *index = p.make<int64_t>(static_cast<size_t>(count));
    uint8_t *source_of = p.make<uint8_t>(static_cast<size_t>(count));
    if (g == nullptr || index == nullptr || source_of == nullptr) {
        return p.no_mem();
    }
    int64_t inner = 1;
    for (int d = axis + 1; d < out.rank; ++d) {
        inner *= out.dims[d];
    }
    const int64_t outer = inner > 0 && out.dims[axis] > 0 ? count / (inner * out.dims[axis]) : 0;
    int64_t at = 0;
    for (int64_t o = 0; o < outer; ++o) {
        for (uint32_t i = 0; i < n; ++i) {
            const int64_t block = sources[i]->shape.dims[axis] * inner;
            for (int64_t k = 0; k < block; ++k) {
                index[at] = o * block + k;
                source_of[at] = static_cast<uint8_t>(i);
                ++at;
            }
        }
    }
    g->sources = sources;
    g->source_count = n;
    g->source_of = source_of;
    g->index = index;
    return finish_gather(p, g, out);
}

/* ------------------------------------------------------------------ Slice */

esp_err_t prepare_slice(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    constexpr uint32_t cap = 64;
    int64_t starts[cap];
    int64_t ends[cap];
    int64_t axes[cap];
    int64_t steps[cap];
    uint32_t n_starts = 0;
    uint32_t n_ends = 0;
    uint32_t n_axes = 0;
    uint32_t n_steps = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.const_ints(1, "starts", starts, cap, &n_starts));
    ESPDL_STREAMING_RETURN_ON_ERROR(p.const_ints(2, "ends", ends, cap, &n_ends));
    if (p.has_input(3)) {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.const_ints(3, "axes", axes, cap, &n_axes));
    } else {
        n_axes = n_starts;
        for (uint32_t i = 0; i < n_axes; ++i) {
            axes[i] = i;
        }
    }
    if (p.has_input(4)) {
        ESPDL_STREAMING_RETURN_ON_ERROR(p.const_ints(4, "steps", steps, cap, &n_steps));
    } else {
        n_steps = n_starts;
        for (uint32_t i = 0; i < n_steps; ++i) {
            steps[i] = 1;
        }
    }
    const shape_t &in = x->shape;
    int64_t first[max_rank];
    int64_t step[max_rank];
    shape_t out = in;
    for (int d = 0; d < in.rank; ++d) {
        first[d] = 0;
        step[d] = 1;
    }
    /* zip(): the shortest list decides; a repeated axis keeps its last slice */
    uint32_t n = n_starts;
    n = n_ends < n ? n_ends : n;
    n = n_axes < n ? n_axes : n;
    n = n_steps < n ? n_steps : n;
    for (uint32_t i = 0; i < n; ++i) {
        int a = 0;
        /* index[positive_axis(axis)] = ... : normalized once by positive_axis, once more by list indexing */
        const int64_t normalized = axes[i] < 0 ? axes[i] + in.rank : axes[i];
        if (!python_index(normalized, in.rank, &a)) {
            return p.fail("axis %lld does not fit a rank-%d tensor", static_cast<long long>(axes[i]), in.rank);
        }
        if (steps[i] == 0) {
            return p.fail("slice step cannot be zero");
        }
        /* espdl/ops/layout.py _clamp_slice, then Python's slice semantics */
        const int64_t size = in.dims[a];
        auto clamp = [&](int64_t v, int64_t low, int64_t high) {
            if (v < 0) {
                v += size;
            }
            return v < low ? low : v > high ? high : v;
        };
        int64_t count = 0;
        if (steps[i] > 0) {
            python_slice(clamp(starts[i], 0, size), true, clamp(ends[i], 0, size), steps[i], size, &first[a], &count);
        } else {
            const int64_t s = clamp(starts[i], -1, size - 1);
            const int64_t e = clamp(ends[i], -1, size - 1);
            python_slice(s, e >= 0, e, steps[i], size, &first[a], &count);
        }
        step[a] = steps[i];
        out.dims[a] = count;
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(shape_ok(p, out));
    gather_plan *g = nullptr;
    int64_t *index = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(single_source(p, x, out.count(), &g, &index));
    int64_t in_strides[max_rank];
    row_strides(in, in_strides);
    fill_gather_index(out, index, [&](const int64_t *idx) {
        int64_t src = 0;
        for (int d = 0; d < in.rank; ++d) {
            src += (first[d] + idx[d] * step[d]) * in_strides[d];
        }
        return src;
    });
    return finish_gather(p, g, out);
}

/* ------------------------------------------------------------------ Transpose */

esp_err_t prepare_transpose(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    int64_t perm[max_rank];
    uint32_t count = 0;
    bool present = false;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_ints("perm", perm, max_rank, &count, &present));
    if (!present) {
        return p.unsupported("Transpose needs a perm attribute");
    }
    const shape_t &in = x->shape;
    if (count != in.rank) {
        return p.fail("perm of %lu axes does not fit a rank-%d tensor", static_cast<unsigned long>(count), in.rank);
    }
    int axes[max_rank];
    bool used[max_rank] = {};
    for (uint32_t i = 0; i < count; ++i) {
        if (!normalize_axis(perm[i], in.rank, &axes[i]) || used[axes[i]]) {
            return p.fail("perm is not a permutation of the %d axes", in.rank);
        }
        used[axes[i]] = true;
    }
    shape_t out;
    out.rank = in.rank;
    for (int d = 0; d < in.rank; ++d) {
        out.dims[d] = in.dims[axes[d]];
    }
    gather_plan *g = nullptr;
    int64_t *index = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(single_source(p, x, out.count(), &g, &index));
    int64_t in_strides[max_rank];
    row_strides(in, in_strides);
    fill_gather_index(out, index, [&](const int64_t *idx) {
        int64_t src = 0;
        for (int d = 0; d < out.rank; ++d) {
            src += idx[d] * in_strides[axes[d]];
        }
        return src;
    });
    return finish_gather(p, g, out);
}

/* ------------------------------------------------------------------ Reshape, Flatten, (Un)Squeeze */

esp_err_t prepare_reshape(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    int64_t dims[max_rank];
    uint32_t count = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.const_ints(1, "shape", dims, max_rank, &count));
    int64_t allow_zero = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("allowzero", 0, &allow_zero));
    shape_t out;
    out.rank = static_cast<uint8_t>(count);
    int infer = -1;
    int64_t known = 1;
    for (uint32_t i = 0; i < count; ++i) {
        int64_t d = dims[i];
        if (d == 0 && allow_zero == 0) {
            if (i >= x->shape.rank) {
                return p.fail("shape entry %lu copies a dimension the input does not have",
                              static_cast<unsigned long>(i));
            }
            d = x->shape.dims[i];
        }
        if (d == -1 && infer < 0) {
            infer = static_cast<int>(i);
        } else if (d < 0) {
            return p.fail("cannot reshape to a shape with %lld", static_cast<long long>(d));
        } else {
            if (d > max_tensor_elements || (known > 0 && d > 0 && known > max_tensor_elements / d)) {
                return p.fail("cannot reshape %lld elements to a larger shape", static_cast<long long>(x->count));
            }
            known *= d;
        }
        out.dims[i] = d;
    }
    if (infer >= 0) {
        if (known == 0 || x->count % known != 0) {
            return p.fail("cannot reshape %lld elements with an inferred dimension", static_cast<long long>(x->count));
        }
        out.dims[infer] = x->count / known;
    } else if (known != x->count) {
        return p.fail("cannot reshape %lld elements to %lld", static_cast<long long>(x->count),
                      static_cast<long long>(known));
    }
    return same_order(p, x, out);
}

esp_err_t prepare_flatten(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    int64_t axis = 1;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_int("axis", 1, &axis));
    const int rank = x->shape.rank;
    if (axis < 0) {
        axis += rank; /* positive_axis */
    }
    /* shape[:axis] with Python's slice clamping */
    int64_t end = axis < 0 ? axis + rank : axis;
    end = end < 0 ? 0 : end > rank ? rank : end;
    int64_t outer = 1;
    for (int d = 0; d < end; ++d) {
        outer *= x->shape.dims[d];
    }
    if (outer == 0) {
        return p.fail("cannot flatten an empty tensor");
    }
    shape_t out;
    out.rank = 2;
    out.dims[0] = outer;
    out.dims[1] = x->count / outer;
    return same_order(p, x, out);
}

esp_err_t prepare_squeeze(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    int64_t axes[max_rank + 1];
    uint32_t count = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(axes_of(p, axes, max_rank + 1, &count));
    const shape_t &in = x->shape;
    bool drop[max_rank] = {};
    if (count == 0) {
        for (int d = 0; d < in.rank; ++d) {
            drop[d] = in.dims[d] == 1;
        }
    }
    for (uint32_t i = 0; i < count; ++i) {
        /* positive_axis, then numpy's own normalization */
        int a = 0;
        const int64_t once = axes[i] < 0 ? axes[i] + in.rank : axes[i];
        if (!normalize_axis(once, in.rank, &a) || drop[a]) {
            return p.fail("axis %lld is out of range or repeated", static_cast<long long>(axes[i]));
        }
        if (in.dims[a] != 1) {
            return p.fail("cannot squeeze axis %d of size %lld", a, static_cast<long long>(in.dims[a]));
        }
        drop[a] = true;
    }
    shape_t out;
    for (int d = 0; d < in.rank; ++d) {
        if (!drop[d]) {
            out.dims[out.rank++] = in.dims[d];
        }
    }
    return same_order(p, x, out);
}

esp_err_t prepare_unsqueeze(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    int64_t axes[max_rank + 1];
    uint32_t count = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(axes_of(p, axes, max_rank + 1, &count));
    const int rank = x->shape.rank + static_cast<int>(count);
    if (rank > max_rank) {
        return p.unsupported("a result of rank %d is beyond the host engine's limit of %d", rank, max_rank);
    }
    /* sorted(positive_axis(a, rank)), then np.expand_dims one by one on the growing tensor */
    int64_t sorted[max_rank + 1];
    for (uint32_t i = 0; i < count; ++i) {
        int64_t a = axes[i] < 0 ? axes[i] + rank : axes[i];
        uint32_t j = i;
        while (j > 0 && sorted[j - 1] > a) {
            sorted[j] = sorted[j - 1];
            --j;
        }
        sorted[j] = a;
    }
    shape_t out = x->shape;
    for (uint32_t i = 0; i < count; ++i) {
        int64_t a = sorted[i];
        const int nd = out.rank;
        if (a < -(nd + 1) || a > nd) {
            return p.fail("axis %lld is out of range", static_cast<long long>(axes[i]));
        }
        if (a < 0) {
            a += nd + 1;
        }
        for (int d = nd; d > a; --d) {
            out.dims[d] = out.dims[d - 1];
        }
        out.dims[a] = 1;
        out.rank = static_cast<uint8_t>(nd + 1);
    }
    return same_order(p, x, out);
}

/* ------------------------------------------------------------------ StreamingCache */

namespace {

struct cache_state {
    slot combined;       /* history then input, in the input's dtype and exponent */
    gather_plan to_output;
    const slot *combined_source = nullptr;
    void *history = nullptr; /* `keep` frames */
    int64_t outer = 0;
    int64_t frames = 0;      /* input frames */
    int64_t keep = 0;
    int64_t inner_bytes = 0; /* bytes of one frame (everything after the frame axis) */
};

void streaming_cache_kernel(const run_ctx &ctx)
{
    cache_state &s = *static_cast<cache_state *>(ctx.plan.state);
    const unsigned char *in = static_cast<const unsigned char *>(ctx.plan.in[0]->data);
    unsigned char *combined = static_cast<unsigned char *>(s.combined.data);
    unsigned char *history = static_cast<unsigned char *>(s.history);
    const int64_t total = s.keep + s.frames;
    for (int64_t o = 0; o < s.outer; ++o) {
        unsigned char *row = combined + o * total * s.inner_bytes;
        std::memcpy(row, history + o * s.keep * s.inner_bytes, static_cast<size_t>(s.keep * s.inner_bytes));
        std::memcpy(row + s.keep * s.inner_bytes, in + o * s.frames * s.inner_bytes,
                    static_cast<size_t>(s.frames * s.inner_bytes));
        /* the new history: the last `keep` frames of history + input */
        std::memcpy(history + o * s.keep * s.inner_bytes, row + s.frames * s.inner_bytes,
                    static_cast<size_t>(s.keep * s.inner_bytes));
    }
    run_gather(s.to_output, *ctx.plan.out[0], ctx.mode);
}

} // namespace

esp_err_t prepare_streaming_cache(prep &p)
{
    const attr_def *window = p.node().attr("window_size");
    if (window == nullptr || window->kind != attr_kind::i || window->i < 1) {
        return p.unsupported("window_size must be a positive integer");
    }
    const attr_def *frame_axis = p.node().attr("frame_axis");
    if (frame_axis != nullptr && frame_axis->kind != attr_kind::i) {
        return p.unsupported("frame_axis must be an integer");
    }
    /* The simulator keys the history by node name; two caches sharing one would share it. */
    for (uint32_t i = 0; i < p.node_index(); ++i) {
        const node_def &other = p.graph().nodes[i];
        if (other.op_type.equals("StreamingCache") && other.name.equals(p.node().name)) {
            return p.unsupported("another StreamingCache node has the same name");
        }
    }
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    ESPDL_STREAMING_RETURN_ON_ERROR(source_ok(p, *x));
    const shape_t &in = x->shape;
    int axis = 0;
    /* positive_axis, then numpy's normalization of the concatenate axis */
    const int64_t fa = frame_axis != nullptr ? frame_axis->i : 1;
    const int64_t once = fa < 0 ? fa + in.rank : fa;
    if (!normalize_axis(once, in.rank, &axis)) {
        return p.fail("frame_axis %lld does not fit a rank-%d input", static_cast<long long>(fa), in.rank);
    }
    if (window->i - 1 > max_layout_attr) {
        return p.unsupported("window_size %lld is beyond the host engine's limit", static_cast<long long>(window->i));
    }
    cache_state *s = p.make<cache_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    s->keep = window->i - 1;
    s->frames = in.dims[axis];
    s->outer = 1;
    for (int d = 0; d < axis; ++d) {
        s->outer *= in.dims[d];
    }
    int64_t inner = 1;
    for (int d = axis + 1; d < in.rank; ++d) {
        inner *= in.dims[d];
    }
    s->inner_bytes = inner * static_cast<int64_t>(etype_size(x->type));
    shape_t out = in;
    out.dims[axis] = s->keep + s->frames;
    ESPDL_STREAMING_RETURN_ON_ERROR(shape_ok(p, out));
    s->combined = *x;
    s->combined.shape = out;
    s->combined.count = out.count();
    s->combined.constant = false;
    s->combined.data = p.alloc(static_cast<size_t>(s->combined.count) * etype_size(x->type));
    const size_t history_bytes = static_cast<size_t>(s->outer * s->keep * s->inner_bytes);
    s->history = p.alloc(history_bytes);
    int64_t *index = p.make<int64_t>(static_cast<size_t>(s->combined.count));
    if (s->combined.data == nullptr || s->history == nullptr || index == nullptr) {
        return p.no_mem();
    }
    for (int64_t i = 0; i < s->combined.count; ++i) {
        index[i] = i;
    }
    s->combined_source = &s->combined;
    s->to_output.sources = &s->combined_source;
    s->to_output.source_count = 1;
    s->to_output.index = index;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.add_state(s->history, history_bytes));
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, out, &y));
    p.add_work(s->combined.count * 3);
    p.set_kernel(streaming_cache_kernel, s);
    return ESP_OK;
}

/* ------------------------------------------------------------------ Pad */

namespace {

enum class pad_mode : uint8_t { constant, edge, reflect };

/* np.pad's reflect mode along one axis of n >= 2 values, as an index map of left + n + right
 * entries: numpy fills the pad area chunk by chunk (_set_reflect_both), each chunk reflecting
 * what is already there. */
void reflect_map(int64_t n, int64_t left, int64_t right, int64_t *map)
{
    const int64_t length = left + n + right;
    for (int64_t i = 0; i < length; ++i) {
        map[i] = i >= left && i < left + n ? i - left : -1;
    }
    int64_t left_pad = left;
    int64_t right_pad = right;
    while (left_pad > 0 || right_pad > 0) {
        int64_t old_length = length - right_pad - left_pad;
        old_length = (old_length - 1) / (n - 1) * (n - 1) + 1;
        old_length -= 1;
        if (left_pad > 0) {
            const int64_t chunk = old_length < left_pad ? old_length : left_pad;
            /* padded[left_pad - chunk : left_pad] = padded[left_pad + chunk : left_pad : -1] */
            for (int64_t k = 0; k < chunk; ++k) {
                map[left_pad - chunk + k] = map[left_pad + chunk - k];
            }
            left_pad -= chunk;
        }
        if (right_pad > 0) {
            const int64_t chunk = old_length < right_pad ? old_length : right_pad;
            /* padded[L - right_pad : L - right_pad + chunk] = padded[-right_pad - 2 : ... : -1] */
            int64_t first = 0;
            int64_t count = 0;
            python_slice(-right_pad - 2, true, -right_pad - 2 - chunk, -1, length, &first, &count);
            const int64_t at = length - right_pad;
            for (int64_t k = 0; k < count && k < chunk; ++k) {
                map[at + k] = map[first - k];
            }
            right_pad -= chunk;
        }
    }
}

struct pad_state {
    gather_plan g;
    int fill_input = -1; /* a computed fill value: read at run time */
};

void pad_kernel(const run_ctx &ctx)
{
    pad_state &s = *static_cast<pad_state *>(ctx.plan.state);
    if (s.fill_input >= 0) {
        s.g.fill = ctx.plan.x[s.fill_input][0];
    }
    run_gather(s.g, *ctx.plan.out[0], ctx.mode);
}

} // namespace

esp_err_t prepare_pad(prep &p)
{
    str_view mode_name;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_string("mode", "constant", &mode_name));
    pad_mode mode;
    if (mode_name.equals("constant")) {
        mode = pad_mode::constant;
    } else if (mode_name.equals("edge")) {
        mode = pad_mode::edge;
    } else if (mode_name.equals("reflect")) {
        mode = pad_mode::reflect;
    } else {
        return p.unsupported("padding mode '%.*s'", static_cast<int>(mode_name.size > 40 ? 40 : mode_name.size),
                             mode_name.data ? mode_name.data : "");
    }
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    ESPDL_STREAMING_RETURN_ON_ERROR(source_ok(p, *x));
    int64_t pads[2 * max_rank];
    uint32_t count = 0;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.const_ints(1, "pads", pads, 2 * max_rank, &count));
    const shape_t &in = x->shape;
    bool fits = count == 2u * in.rank;
    for (uint32_t i = 0; fits && i < count; ++i) {
        fits = pads[i] >= 0;
    }
    if (!fits) {
        return p.fail("pads do not fit a rank-%d tensor", in.rank);
    }
    shape_t out = in;
    for (int d = 0; d < in.rank; ++d) {
        if (pads[d] > max_layout_attr || pads[d + in.rank] > max_layout_attr) {
            return p.unsupported("pads beyond the host engine's limit");
        }
        out.dims[d] = in.dims[d] + pads[d] + pads[d + in.rank];
        if (mode != pad_mode::constant && (pads[d] > 0 || pads[d + in.rank] > 0) && in.dims[d] == 0) {
            return p.fail("can't extend empty axis %d using modes other than 'constant'", d);
        }
    }
    if (mode != pad_mode::constant && x->count == 0) {
        return p.unsupported("edge/reflect padding of an empty tensor");
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(shape_ok(p, out));
    pad_state *s = p.make<pad_state>(1);
    if (s == nullptr) {
        return p.no_mem();
    }
    if (mode == pad_mode::constant && p.has_input(2)) {
        slot *fill = p.input(2);
        if (fill->count < 1) {
            return p.fail("the constant value is empty");
        }
        ESPDL_STREAMING_RETURN_ON_ERROR(p.want_real(2));
        if (fill->constant) {
            s->g.fill = fill->real[0];
        } else {
            s->fill_input = 2;
        }
    }
    /* per axis: output position -> input position (-1: constant padding) */
    int64_t *maps[max_rank];
    for (int d = 0; d < in.rank; ++d) {
        maps[d] = p.make<int64_t>(static_cast<size_t>(out.dims[d]));
        if (maps[d] == nullptr) {
            return p.no_mem();
        }
        const int64_t n = in.dims[d];
        const int64_t left = pads[d];
        if (mode == pad_mode::reflect && n >= 2) {
            reflect_map(n, left, pads[d + in.rank], maps[d]);
            continue;
        }
        for (int64_t i = 0; i < out.dims[d]; ++i) {
            const int64_t at = i - left;
            if (mode == pad_mode::constant) {
                maps[d][i] = at >= 0 && at < n ? at : -1;
            } else { /* edge; reflect of a single value extends it like edge (numpy's legacy) */
                maps[d][i] = at < 0 ? 0 : at >= n ? n - 1 : at;
            }
        }
    }
    const slot **sources = p.make<const slot *>(1);
    int64_t *index = p.make<int64_t>(static_cast<size_t>(out.count()));
    if (sources == nullptr || index == nullptr) {
        return p.no_mem();
    }
    int64_t in_strides[max_rank];
    row_strides(in, in_strides);
    fill_gather_index(out, index, [&](const int64_t *idx) {
        int64_t src = 0;
        for (int d = 0; d < in.rank && src >= 0; ++d) {
            const int64_t at = maps[d][idx[d]];
            src = at < 0 ? -1 : src + at * in_strides[d];
        }
        return src;
    });
    sources[0] = x;
    s->g.sources = sources;
    s->g.source_count = 1;
    s->g.index = index;
    slot *y = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.output(0, out, &y));
    p.add_work(y->count * 2);
    p.set_kernel(pad_kernel, s);
    return ESP_OK;
}

/* ------------------------------------------------------------------ InsertZeros */

esp_err_t prepare_insert_zeros(prep &p)
{
    slot *x = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.need_input(0, &x));
    const shape_t &in = x->shape;
    const int spatial = in.rank - 2;
    int64_t strides[max_rank];
    int64_t padding[max_rank];
    uint32_t n_strides = 0;
    uint32_t n_padding = 0;
    bool present = false;
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_ints("stride", strides, max_rank, &n_strides, &present));
    if (!present) {
        strides[0] = 1;
        n_strides = 1;
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(p.attr_ints("output_padding", padding, max_rank, &n_padding, &present));
    if (!present) {
        padding[0] = 0;
        n_padding = 1;
    }
    if (spatial >= 1 && n_strides == 1) {
        for (int i = 1; i < spatial; ++i) {
            strides[i] = strides[0];
        }
        n_strides = static_cast<uint32_t>(spatial);
    }
    if (spatial >= 1 && n_padding == 1) {
        for (int i = 1; i < spatial; ++i) {
            padding[i] = padding[0];
        }
        n_padding = static_cast<uint32_t>(spatial);
    }
    bool fits =
        spatial >= 1 && n_strides == static_cast<uint32_t>(spatial) && n_padding == static_cast<uint32_t>(spatial);
    for (int i = 0; fits && i < spatial; ++i) {
        fits = strides[i] >= 1 && padding[i] >= 0;
    }
    if (!fits) {
        return p.fail("stride / output_padding do not fit a rank-%d tensor", in.rank);
    }
    shape_t out = in;
    for (int i = 0; i < spatial; ++i) {
        if (strides[i] > max_layout_attr || padding[i] > max_layout_attr) {
            return p.unsupported("stride or output_padding beyond the host engine's limit");
        }
        const int64_t n = in.dims[1 + i];
        out.dims[1 + i] = n > 0 ? (n - 1) * strides[i] + 1 + padding[i] : 0;
    }
    ESPDL_STREAMING_RETURN_ON_ERROR(shape_ok(p, out));
    gather_plan *g = nullptr;
    int64_t *index = nullptr;
    ESPDL_STREAMING_RETURN_ON_ERROR(single_source(p, x, out.count(), &g, &index));
    int64_t in_strides[max_rank];
    row_strides(in, in_strides);
    fill_gather_index(out, index, [&](const int64_t *idx) {
        int64_t src = 0;
        for (int d = 0; d < in.rank && src >= 0; ++d) {
            int64_t at = idx[d];
            if (d >= 1 && d <= spatial) {
                const int64_t s = strides[d - 1];
                at = at % s == 0 && at / s < in.dims[d] ? at / s : -1;
            }
            src = at < 0 ? -1 : src + at * in_strides[d];
        }
        return src;
    });
    return finish_gather(p, g, out);
}

} // namespace espdl_streaming::host
