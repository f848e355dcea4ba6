/*
 * Host engine, private: what an operator implementation sees.
 *
 * Each operator is one prepare function in the op table (host_ops.cpp). It runs once per node
 * while the model is opened: it validates the node exactly where the simulator would fail
 * (espdl/validate.py, or the op's kernel in espdl/ops/), computes the output shapes, creates the
 * outputs, precomputes whatever it needs (index maps, dequantized weights) and installs the kernel
 * that run() calls. Kernels cannot fail and never allocate.
 *
 * Numerics follow espdl/ops/kernels.py: inputs are dequantized to double (q * 2^exponent), the kernel
 * computes in double, and the executor requantizes every real result at the output's exponent
 * with the chip's rounding. Integer-valued sums of dyadic values are exact in double, so the
 * summation order does not matter; everything else (division, tanh...) is one IEEE operation
 * per numpy operation, in numpy's order (the engine is compiled with -ffp-contract=off).
 */
#pragma once

#include <cmath>

#include "host_graph.hpp"

namespace espdl_streaming::host {

/* Largest activation tensor the engine creates (a corrupt shape must not exhaust memory). */
constexpr int64_t max_tensor_elements = int64_t(1) << 26;
/* Largest amount of work (multiply-adds, element visits) one run may do. */
constexpr int64_t max_run_work = int64_t(1) << 34;
/* Exponents beyond this saturate every value anyway; clamping keeps ldexp's int argument sane. */
constexpr int64_t max_exponent = 4096;

/* A tensor at run time: a graph input, a constant or a node output. */
struct slot {
    str_view name;
    etype type = etype::f64;
    bool quantized = false;          /* integer with exponent(s): real = q * 2^exponent */
    int exponent = 0;                /* per tensor */
    const int *channel_exps = nullptr; /* constants with one exponent per element of the last axis */
    uint32_t channel_count = 0;
    shape_t shape;
    int64_t count = 0;
    void *data = nullptr;
    bool constant = false;
    const tensor_def *def = nullptr; /* constants: the initializer */
    const double *real = nullptr;    /* constants: dequantized once, when a kernel asks */
};

struct node_plan;

struct run_ctx {
    const node_plan &plan;
    rounding mode;
};

typedef void (*kernel_fn)(const run_ctx &ctx);

struct node_plan {
    const node_def *def = nullptr;
    kernel_fn run = nullptr;
    slot **in = nullptr; /* in_count entries, null for an omitted input */
    uint32_t in_count = 0;
    slot **out = nullptr; /* out_count entries */
    uint32_t out_count = 0;
    /* Dequantized inputs (x) and real results (y, requantized into out[i] after the kernel). */
    const double **x = nullptr;
    double **y = nullptr;
    bool *want_real = nullptr;
    bool *real_out = nullptr;
    void *state = nullptr;
    int64_t work = 0;
};

/* ------------------------------------------------------------------ element conversion (element.cpp) */

inline int clamp_exponent(int64_t e)
{
    return static_cast<int>(e < -max_exponent ? -max_exponent : e > max_exponent ? max_exponent : e);
}

/* espdl/ops/kernels.py round_scaled: rint (half to even) or floor(x) + (x - floor(x) >= 0.5). */
inline double round_scaled(double s, rounding mode)
{
    if (mode == rounding::half_even) {
        return std::nearbyint(s);
    }
    const double low = std::floor(s);
    return low + ((s - low) >= 0.5 ? 1.0 : 0.0);
}

/* espdl/ops/kernels.py quantize_values for one value: clamp(round(x * 2^-e)), NaN -> 0, +-inf saturate. */
inline double quantize_value(double x, int exponent, double low, double high, rounding mode)
{
    double s = std::ldexp(x, -exponent);
    if (s != s) {
        s = 0.0;
    }
    double q = round_scaled(s, mode);
    if (q < low) {
        q = low;
    }
    if (q > high) {
        q = high;
    }
    return q;
}

double half_to_double(uint16_t h);

/* Element i of a slot as a real number (dequantized, or the plain value). */
double real_at(const slot &s, int64_t i);
/* Dequantize a whole slot. */
void load_real(const slot &s, double *dst);
/* Write reals into a slot: quantize with the slot's exponent, or store as float. */
void store_real(slot &s, const double *src, rounding mode);
/* Write one real into element i of a slot. */
void store_real_at(slot &s, int64_t i, double value, rounding mode);
/* Raw integer/float value of element i (for shape-like constant inputs). */
bool int_at(const slot &s, int64_t i, int64_t *out);

/* ------------------------------------------------------------------ prepare (prepare.cpp) */

class engine_builder;

/* Per-node preparation context (see the file comment). */
class prep {
public:
    prep(engine_builder &b, node_plan &plan, rounding mode) : m_b(b), m_plan(plan), m_mode(mode) {}

    const node_def &node() const { return *m_plan.def; }
    node_plan &plan() { return m_plan; }
    rounding mode() const { return m_mode; }

    /* Input i: null when omitted (empty name, beyond the list, or never computed). */
    slot *input(uint32_t i) const { return i < m_plan.in_count ? m_plan.in[i] : nullptr; }
    bool has_input(uint32_t i) const { return input(i) != nullptr; }
    /* Input i, or an error "input i is missing". */
    esp_err_t need_input(uint32_t i, slot **out);
    /* The initializer named by input i (whatever the graph computed under that name), or an error. */
    esp_err_t need_constant(uint32_t i, const tensor_def **out);
    /* A constant integer input (shape, axes, starts...) as values; `what` names it in errors. */
    esp_err_t const_ints(uint32_t i, const char *what, int64_t *values, uint32_t capacity, uint32_t *count);

    /* Attributes (absent: the default). Wrong kinds are ESP_ERR_NOT_SUPPORTED. */
    esp_err_t attr_int(const char *name, int64_t fallback, int64_t *out);
    esp_err_t attr_float(const char *name, double fallback, double *out);
    esp_err_t attr_ints(const char *name, int64_t *values, uint32_t capacity, uint32_t *count, bool *present);
    esp_err_t attr_string(const char *name, const char *fallback, str_view *out);
    bool has_attr(const char *name) const { return node().attr(name) != nullptr; }

    /* The value info the graph records for a tensor name (a graph output, an input, then value_info), or null. */
    const value_info_def *info(const str_view &name) const;
    /* The exponent the graph records for output i's name (false: none, espdl/simulator.py Simulator.out_spec). */
    bool output_exponent(uint32_t i, int *exponent) const;
    /* Create output i with the graph's dtype and exponent for its name (espdl/simulator.py Simulator.out_spec). */
    esp_err_t output(uint32_t i, const shape_t &shape, slot **out);
    /* Create output i with an explicit type and exponent (kernels that do not requantize). */
    esp_err_t output_typed(uint32_t i, const shape_t &shape, etype type, bool quantized, int exponent, slot **out);
    /* Ask the executor to dequantize input i into plan().x[i] before the kernel. */
    esp_err_t want_real(uint32_t i);
    /* The kernel writes output i as reals into plan().y[i]; the executor requantizes them. */
    void emits_real(uint32_t i) { m_plan.real_out[i] = true; }
    /* Dequantized values of a constant (cached on the slot). */
    esp_err_t constant_real(slot *s, const double **out);

    void *alloc(size_t bytes);
    arena &arena_of();
    /* Value-initialized objects in the model's arena. */
    template <class T>
    T *make(size_t count)
    {
        return arena_of().make<T>(count);
    }
    esp_err_t no_mem();

    void set_kernel(kernel_fn fn, void *state = nullptr)
    {
        m_plan.run = fn;
        m_plan.state = state;
    }
    void add_work(int64_t w) { m_plan.work += w; }
    /* Register a state buffer that reset() zeroes (StreamingCache history). */
    esp_err_t add_state(void *data, size_t bytes);
    const graph_def &graph() const;
    uint32_t node_index() const;

    /* "node 'x' (Op): ..." with ESP_FAIL (a graph the simulator rejects) ... */
    esp_err_t fail(const char *format, ...) __attribute__((format(printf, 2, 3)));
    /* ... or ESP_ERR_NOT_SUPPORTED (an operator variant neither supports). */
    esp_err_t unsupported(const char *format, ...) __attribute__((format(printf, 2, 3)));

private:
    esp_err_t report(esp_err_t code, const char *format, va_list args);

    engine_builder &m_b;
    node_plan &m_plan;
    rounding m_mode;
};

typedef esp_err_t (*prepare_fn)(prep &p);

struct op_entry {
    const char *op_type;
    prepare_fn prepare;
};

/* The op table (host_ops.cpp); the last entry has a null op_type. */
const op_entry *find_op(const str_view &op_type);

/* ------------------------------------------------------------------ shared kernel helpers (element.cpp) */

/* Normalize a possibly negative axis (espdl/ops/kernels.py positive_axis); false if out of [0, rank). */
inline bool normalize_axis(int64_t axis, int rank, int *out)
{
    const int64_t a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank) {
        return false;
    }
    *out = static_cast<int>(a);
    return true;
}

/* numpy broadcasting of two shapes; false if they do not broadcast. */
bool broadcast_shapes(const shape_t &a, const shape_t &b, shape_t *out);
/* Element strides of `s` seen through the broadcast shape `to` (0 where broadcast). */
void broadcast_strides(const shape_t &s, const shape_t &to, int64_t *strides);

/* out = src[index] elementwise with dtype conversion; index < 0 writes `fill` (a real). */
struct gather_plan {
    const slot *const *sources = nullptr;
    uint32_t source_count = 0;
    const uint8_t *source_of = nullptr; /* per element (null: source 0) */
    const int64_t *index = nullptr;     /* per element, -1: fill */
    double fill = 0.0;
};
void run_gather(const gather_plan &g, slot &out, rounding mode);

/* The computed shape `s` is valid and within max_tensor_elements, else p's error (prepare.cpp). */
esp_err_t shape_ok(prep &p, const shape_t &s);

} // namespace espdl_streaming::host
