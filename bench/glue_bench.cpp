// Figure 4 (bench/glue.py): per-chunk cost of the generated class (quantize the float frames,
// copy into the model input, run, dequantize the outputs, call back) with a model double that
// does no work, against a bare loop that only copies the same bytes (input floats -> staging,
// output bytes -> caller), and a loop doing only the conversions (quantize the input floats,
// dequantize the outputs). All timed in this process, alternating, REPS repetitions of
// CHUNKS chunks each. Heap allocations are counted by host/alloc_counter.cpp (malloc & co. wrapped,
// operator new replaced).
//
// Built by bench/glue.py against include/, src/{quantize,stream_runner,self_test,model_loader,no_backend}.cpp,
// host/alloc_counter.cpp and the tcn.cpp of a CLI build. Prints key=value lines.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "alloc_counter.hpp"
#include "espdl_streaming/quantize.hpp"
#include "tcn.hpp"

using namespace espdl_streaming;
using model_t = espdl_streaming::models::tcn;

// ---------------------------------------------------------------- allocation counting

// host/alloc_counter.cpp counts every allocation of the link (malloc & co. wrapped, operator new replaced).
static unsigned long allocations()
{
    return static_cast<unsigned long>(alloc_counter::count());
}

// The streaming model's bytes: tcn.cpp refers to them for init(); the double never reads them.
extern "C" {
alignas(16) extern const unsigned char espdl_streaming_tcn_espdl[16] = {0};
}

// ---------------------------------------------------------------- the model double

namespace {

constexpr uint32_t k_max_output_bytes = 4096;

class null_engine final : public model_interface {
public:
    uint32_t input_count() const override { return 1; }
    uint32_t output_count() const override { return model_t::output_count; }
    esp_err_t input(uint32_t, tensor_ref *out) override
    {
        *out = ref(model_t::spec().input, m_input);
        return ESP_OK;
    }
    esp_err_t output(uint32_t index, tensor_ref *out) override
    {
        *out = ref(model_t::spec().outputs[index], m_output + index * k_max_output_bytes);
        return ESP_OK;
    }
    esp_err_t run() override { return ESP_OK; }  // no work: only the glue is measured
    esp_err_t reset() override { return ESP_OK; }

    alignas(16) uint8_t m_input[model_t::input_elements * 2] = {};
    alignas(16) uint8_t m_output[model_t::output_count * k_max_output_bytes] = {};

private:
    static tensor_ref ref(const tensor_spec &s, void *data)
    {
        return tensor_ref{data,       s.type, s.exponent,
                          s.elements, s.ndim, {s.shape[0], s.shape[1], s.shape[2], s.shape[3]}};
    }
};

constexpr uint32_t CHUNKS_PER_PUSH = 1000;
constexpr uint32_t PUSHES = 200;
constexpr uint32_t CHUNKS = CHUNKS_PER_PUSH * PUSHES;
constexpr uint32_t REPS = 11;
constexpr uint32_t IN_FLOATS = model_t::chunk_frames * model_t::feature_dim;

float g_frames[CHUNKS_PER_PUSH * IN_FLOATS];
volatile float g_sink_f = 0;
volatile uint32_t g_sink_u = 0;

esp_err_t on_chunk(const chunk_result &r, void *user)
{
    *static_cast<float *>(user) += r.outputs[0][0];
    return ESP_OK;
}

double now_ns()
{
    return double(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

uint32_t output_bytes()
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < model_t::output_count; ++i) {
        const tensor_spec &s = model_t::spec().outputs[i];
        n += s.elements * uint32_t(dtype_size(s.type));
    }
    return n;
}

// ours: the generated class, frames pushed CHUNKS_PER_PUSH chunks at a time
double time_ours(model_t &model)
{
    float acc = 0;
    const double t0 = now_ns();
    for (uint32_t p = 0; p < PUSHES; ++p) {
        if (model.push(g_frames, CHUNKS_PER_PUSH * model_t::chunk_frames, on_chunk, &acc) != ESP_OK)
            std::abort();
    }
    const double t1 = now_ns();
    g_sink_f = g_sink_f + acc;
    return (t1 - t0) / CHUNKS;
}

// baseline: only the copies (input floats -> staging, output bytes -> caller)
double time_copy(null_engine &engine, uint32_t out_bytes)
{
    alignas(16) static float staging[IN_FLOATS];
    alignas(16) static uint8_t out[model_t::output_count * k_max_output_bytes];
    uint32_t acc = 0;
    const double t0 = now_ns();
    for (uint32_t p = 0; p < PUSHES; ++p) {
        for (uint32_t k = 0; k < CHUNKS_PER_PUSH; ++k) {
            std::memcpy(staging, g_frames + size_t(k) * IN_FLOATS, sizeof(staging));
            asm volatile("" : : "r"(staging) : "memory");
            std::memcpy(out, engine.m_output, out_bytes);
            asm volatile("" : : "r"(out) : "memory");
            acc += out[0];
        }
    }
    const double t1 = now_ns();
    g_sink_u = g_sink_u + acc;
    return (t1 - t0) / CHUNKS;
}

// the conversions alone: quantize the chunk's floats and dequantize the outputs, nothing else
double time_convert(null_engine &engine)
{
    const model_spec &spec = model_t::spec();
    alignas(16) static uint8_t staging[IN_FLOATS * 2];
    alignas(16) static float outputs[model_t::output_count * k_max_output_bytes];
    float acc = 0;
    const double t0 = now_ns();
    for (uint32_t p = 0; p < PUSHES; ++p) {
        for (uint32_t k = 0; k < CHUNKS_PER_PUSH; ++k) {
            quantize(g_frames + size_t(k) * IN_FLOATS, IN_FLOATS, spec.input.exponent, spec.round_mode, spec.input.type,
                     staging);
            asm volatile("" : : "r"(staging) : "memory");
            for (uint32_t i = 0; i < spec.output_count; ++i) {
                dequantize(engine.m_output + i * k_max_output_bytes, spec.outputs[i].type, spec.outputs[i].elements,
                           spec.outputs[i].exponent, outputs + i * k_max_output_bytes);
            }
            asm volatile("" : : "r"(outputs) : "memory");
            acc += outputs[0];
        }
    }
    const double t1 = now_ns();
    g_sink_f = g_sink_f + acc;
    return (t1 - t0) / CHUNKS;
}

} // namespace

int main()
{
    uint32_t state = 12345;
    for (float &f : g_frames) {
        state = state * 1103515245u + 12345u;
        f = (float(state >> 8) / float(1u << 24) - 0.5f) * 8.0f;  // [-4, 4)
    }
    // the hooks work: one malloc and one new must be counted
    const unsigned long before_check = allocations();
    void *(*volatile do_malloc)(size_t) = std::malloc;  // through pointers: not elided
    void *(*volatile do_new)(size_t) = static_cast<void *(*)(size_t)>(::operator new);
    std::free(do_malloc(16));
    ::operator delete(do_new(16));
    std::printf("hook_check=%lu\n", allocations() - before_check);

    static null_engine engine;
    static model_t model;
    const unsigned long before_init = allocations();
    if (model.init(&engine) != ESP_OK) {
        std::printf("init_failed=1\n");
        return 1;
    }
    std::printf("allocs_init=%lu\n", allocations() - before_init);
    const uint32_t out_bytes = output_bytes();
    time_ours(model);  // warm-up
    time_copy(engine, out_bytes);
    time_convert(engine);

    const unsigned long before = allocations();
    const uint32_t chunks_before = model.chunks_run();
    double ours[REPS], copy[REPS], convert[REPS];
    for (uint32_t r = 0; r < REPS; ++r) {
        if (r % 2 == 0) {
            ours[r] = time_ours(model);
            copy[r] = time_copy(engine, out_bytes);
            convert[r] = time_convert(engine);
        } else {
            convert[r] = time_convert(engine);
            copy[r] = time_copy(engine, out_bytes);
            ours[r] = time_ours(model);
        }
    }
    const unsigned long allocs = allocations() - before;  // counted before any printing
    const uint32_t chunks = model.chunks_run() - chunks_before;

    std::printf("chunk_frames=%u\nfeature_dim=%u\ninput_float_bytes=%u\noutput_bytes=%u\n", model_t::chunk_frames,
                model_t::feature_dim, unsigned(IN_FLOATS * sizeof(float)), out_bytes);
    std::printf("reps=%u\nchunks_per_rep=%u\n", REPS, CHUNKS);
    std::printf("ours_ns_per_chunk=");
    for (uint32_t r = 0; r < REPS; ++r)
        std::printf("%s%.3f", r ? "," : "", ours[r]);
    std::printf("\ncopy_ns_per_chunk=");
    for (uint32_t r = 0; r < REPS; ++r)
        std::printf("%s%.3f", r ? "," : "", copy[r]);
    std::printf("\nconvert_ns_per_chunk=");
    for (uint32_t r = 0; r < REPS; ++r)
        std::printf("%s%.3f", r ? "," : "", convert[r]);
    std::printf("\nallocs_after_init=%lu\nchunks_after_init=%u\n", allocs, chunks);
    return 0;
}
