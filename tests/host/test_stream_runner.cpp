/* stream_runner: init checks, chunking, partial chunks, reset, errors, no heap allocation. */
#include <cmath>
#include <cstring>

#include "alloc_counter.hpp"
#include "check.hpp"
#include "espdl_streaming/quantize.hpp"
#include "espdl_streaming/stream_runner.hpp"
#include "fake_model.hpp"
#include "test_spec.hpp"

using namespace espdl_streaming;

namespace {

constexpr uint32_t max_chunks = 40;
constexpr uint32_t out0 = 5;
constexpr uint32_t out1 = 6;

/* The caller-owned buffers of one runner. */
struct harness {
    explicit harness(const fake::layout &l) : model(l) {}

    esp_err_t init(const model_spec &spec = test_spec::spec)
    {
        return runner.init(&model, &spec, staging, sizeof(staging), buffers, raw);
    }

    fake::model model;
    stream_runner runner;
    alignas(16) int8_t staging[test_spec::chunk_frames * test_spec::feature_dim] = {};
    float out_a[out0] = {};
    float out_b[out1] = {};
    float *const buffers[2] = {out_a, out_b};
    tensor_ref raw[2] = {};
};

/* Everything the callback saw, for comparing two streams. */
struct recording {
    uint32_t chunks = 0;
    uint32_t indices[max_chunks] = {};
    int8_t raw_a[max_chunks][out0] = {};
    int16_t raw_b[max_chunks][out1] = {};
    float deq_a[max_chunks][out0] = {};
    float deq_b[max_chunks][out1] = {};
    bool dequantize_exact = true;
    int fail_at = -1; /* chunk on which the callback returns ESP_ERR_INVALID_STATE */
};

esp_err_t record(const chunk_result &r, void *user)
{
    recording &rec = *static_cast<recording *>(user);
    if (rec.chunks >= max_chunks || r.output_count != 2) {
        return ESP_FAIL;
    }
    const uint32_t k = rec.chunks++;
    rec.indices[k] = r.chunk_index;
    std::memcpy(rec.raw_a[k], r.raw[0].data, sizeof(rec.raw_a[k]));
    std::memcpy(rec.raw_b[k], r.raw[1].data, sizeof(rec.raw_b[k]));
    std::memcpy(rec.deq_a[k], r.outputs[0], sizeof(rec.deq_a[k]));
    std::memcpy(rec.deq_b[k], r.outputs[1], sizeof(rec.deq_b[k]));
    for (uint32_t e = 0; e < out0; ++e) {
        rec.dequantize_exact &= rec.deq_a[k][e] == std::ldexp(static_cast<float>(rec.raw_a[k][e]), -3);
    }
    for (uint32_t e = 0; e < out1; ++e) {
        rec.dequantize_exact &= rec.deq_b[k][e] == std::ldexp(static_cast<float>(rec.raw_b[k][e]), -8);
    }
    return rec.fail_at == static_cast<int>(k) ? ESP_ERR_INVALID_STATE : ESP_OK;
}

bool same_stream(const recording &a, const recording &b)
{
    return a.chunks == b.chunks && std::memcmp(a.indices, b.indices, sizeof(a.indices)) == 0 &&
           std::memcmp(a.raw_a, b.raw_a, sizeof(a.raw_a)) == 0 && std::memcmp(a.raw_b, b.raw_b, sizeof(a.raw_b)) == 0 &&
           std::memcmp(a.deq_a, b.deq_a, sizeof(a.deq_a)) == 0 && std::memcmp(a.deq_b, b.deq_b, sizeof(a.deq_b)) == 0;
}

constexpr uint32_t fd = test_spec::feature_dim;
constexpr uint32_t stream_frames = 3 * 11 + 2; /* 11 chunks and a partial one */
float g_frames[stream_frames * fd];

fake::layout good_layout()
{
    return fake::layout_from(test_spec::spec);
}

esp_err_t init_with(const fake::layout &l)
{
    harness h(l);
    return h.init();
}

void test_init_accepts_matching_model()
{
    harness h(good_layout());
    CHECK_EQ(h.init(), ESP_OK);
    CHECK(h.runner.initialized());
    CHECK_EQ(h.runner.pending_frames(), 0u);
    CHECK_EQ(h.runner.chunks_run(), 0u);
}

void test_init_rejects_mismatches()
{
    fake::layout l = good_layout();
    l.input_count = 2;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    l = good_layout();
    l.output_count = 1;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    l = good_layout();
    l.input.type = dtype::int16;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    l = good_layout();
    l.input.exponent = -4;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    l = good_layout();
    l.input.shape[1] = 4; /* same element count, different shape */
    l.input.shape[2] = 3;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    l = good_layout();
    l.input.ndim = 2;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    l = good_layout();
    l.outputs[1].elements = 5;
    l.outputs[1].shape[2] = 5;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    l = good_layout();
    l.outputs[0].exponent = -2;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    l = good_layout();
    l.outputs[1].type = dtype::int8;
    CHECK_EQ(init_with(l), ESP_ERR_INVALID_SIZE);

    /* A failed init leaves the runner unusable. */
    l = good_layout();
    l.outputs[0].exponent = 0;
    harness h(l);
    CHECK_EQ(h.init(), ESP_ERR_INVALID_SIZE);
    CHECK(!h.runner.initialized());
    CHECK_EQ(h.runner.push(g_frames, 3, nullptr, nullptr), ESP_ERR_INVALID_STATE);
}

void test_init_rejects_bad_arguments()
{
    harness h(good_layout());
    CHECK_EQ(h.runner.init(nullptr, &test_spec::spec, h.staging, sizeof(h.staging), h.buffers, h.raw),
             ESP_ERR_INVALID_ARG);
    CHECK_EQ(h.runner.init(&h.model, &test_spec::spec, h.staging, sizeof(h.staging) - 1, h.buffers, h.raw),
             ESP_ERR_INVALID_ARG);
    CHECK_EQ(h.runner.init(&h.model, &test_spec::spec, nullptr, sizeof(h.staging), h.buffers, h.raw),
             ESP_ERR_INVALID_ARG);
    CHECK_EQ(h.runner.init(&h.model, &test_spec::spec, h.staging, sizeof(h.staging), nullptr, h.raw),
             ESP_ERR_INVALID_ARG);
    float *const null_buffers[2] = {h.out_a, nullptr};
    CHECK_EQ(h.runner.init(&h.model, &test_spec::spec, h.staging, sizeof(h.staging), null_buffers, h.raw),
             ESP_ERR_INVALID_ARG);
    model_spec inconsistent = test_spec::spec;
    inconsistent.feature_dim = 5;
    CHECK_EQ(h.init(inconsistent), ESP_ERR_INVALID_ARG);
}

void test_push_arguments()
{
    harness h(good_layout());
    CHECK_EQ(h.runner.push(g_frames, 1, nullptr, nullptr), ESP_ERR_INVALID_STATE);
    CHECK_EQ(h.runner.reset(), ESP_ERR_INVALID_STATE);
    CHECK_EQ(h.init(), ESP_OK);
    size_t consumed = 99;
    CHECK_EQ(h.runner.push(nullptr, 1, nullptr, nullptr, &consumed), ESP_ERR_INVALID_ARG);
    CHECK_EQ(consumed, 0u);
    CHECK_EQ(h.runner.push(nullptr, 0, nullptr, nullptr), ESP_OK);
    CHECK_EQ(h.runner.push(g_frames, 0, nullptr, nullptr), ESP_OK);
    CHECK_EQ(h.runner.pending_frames(), 0u);
    CHECK_EQ(h.model.runs(), 0u);
}

/* Random-sized pushes produce exactly what one big push produces. */
void test_chunking_is_independent_of_push_sizes()
{
    harness whole(good_layout());
    CHECK_EQ(whole.init(), ESP_OK);
    static recording ref;
    ref = recording();
    size_t consumed = 0;
    CHECK_EQ(whole.runner.push(g_frames, stream_frames, record, &ref, &consumed), ESP_OK);
    CHECK_EQ(consumed, stream_frames);
    CHECK_EQ(ref.chunks, 11u);
    CHECK_EQ(whole.runner.chunks_run(), 11u);
    CHECK_EQ(whole.runner.pending_frames(), 2u);
    CHECK(ref.dequantize_exact);
    for (uint32_t k = 0; k < ref.chunks; ++k) {
        CHECK_EQ(ref.indices[k], k);
    }

    /* Every chunk the model saw is the quantized frames of that chunk, refilled before each run. */
    int8_t expect[test_spec::chunk_frames * fd];
    bool inputs_ok = true;
    for (uint32_t k = 0; k < ref.chunks; ++k) {
        quantize(g_frames + k * test_spec::chunk_frames * fd, sizeof(expect), -5, rounding::half_even, dtype::int8,
                 expect);
        inputs_ok &= std::memcmp(whole.model.logged_input(k), expect, sizeof(expect)) == 0;
    }
    CHECK(inputs_ok);

    for (uint32_t seed = 1; seed <= 20; ++seed) {
        harness pieces(good_layout());
        CHECK_EQ(pieces.init(), ESP_OK);
        static recording got;
        got = recording();
        test_spec::lcg g{seed};
        uint32_t at = 0;
        bool pending_ok = true;
        while (at < stream_frames) {
            uint32_t n = g.below(8); /* 0 to 7 frames, across chunk boundaries */
            n = n > stream_frames - at ? stream_frames - at : n;
            size_t consumed_piece = 99;
            pending_ok &= pieces.runner.push(g_frames + at * fd, n, record, &got, &consumed_piece) == ESP_OK;
            pending_ok &= consumed_piece == n;
            at += n;
            pending_ok &= pieces.runner.pending_frames() == at % test_spec::chunk_frames;
        }
        CHECK(pending_ok);
        CHECK(same_stream(ref, got));
    }
}

void test_reset()
{
    harness h(good_layout());
    CHECK_EQ(h.init(), ESP_OK);
    static recording first;
    static recording again;
    first = recording();
    again = recording();
    CHECK_EQ(h.runner.push(g_frames, 7, record, &first), ESP_OK);
    CHECK_EQ(h.runner.pending_frames(), 1u);
    const uint32_t resets = h.model.resets;
    CHECK_EQ(h.runner.reset(), ESP_OK);
    CHECK_EQ(h.model.resets, resets + 1);
    CHECK_EQ(h.runner.pending_frames(), 0u);
    CHECK_EQ(h.runner.chunks_run(), 0u);
    /* The partial frame is gone: the same 6 frames give the same 2 chunks, numbered from 0. */
    CHECK_EQ(h.runner.push(g_frames, 7, record, &again), ESP_OK);
    CHECK(same_stream(first, again));
}

void test_callback_error_stops_push()
{
    harness h(good_layout());
    CHECK_EQ(h.init(), ESP_OK);
    static recording ref;
    ref = recording();
    CHECK_EQ(h.runner.push(g_frames, stream_frames, record, &ref), ESP_OK);

    CHECK_EQ(h.runner.reset(), ESP_OK);
    static recording got;
    got = recording();
    got.fail_at = 2;
    /* Start with 1 pending frame so the chunk boundaries do not coincide with the push. */
    CHECK_EQ(h.runner.push(g_frames, 1, record, &got), ESP_OK);
    size_t consumed = 0;
    CHECK_EQ(h.runner.push(g_frames + fd, stream_frames - 1, record, &got, &consumed), ESP_ERR_INVALID_STATE);
    CHECK_EQ(got.chunks, 3u);
    CHECK_EQ(consumed, 3u * test_spec::chunk_frames - 1); /* through the end of chunk 2 */
    CHECK_EQ(h.runner.pending_frames(), 0u);
    CHECK_EQ(h.runner.chunks_run(), 3u);
    /* Pushing the unconsumed rest continues the stream as if nothing happened. */
    got.fail_at = -1;
    CHECK_EQ(h.runner.push(g_frames + (1 + consumed) * fd, stream_frames - 1 - consumed, record, &got), ESP_OK);
    CHECK(same_stream(ref, got));
}

void test_run_error_is_returned()
{
    harness h(good_layout());
    CHECK_EQ(h.init(), ESP_OK);
    h.model.fail_on_run = 1;
    static recording got;
    got = recording();
    size_t consumed = 0;
    CHECK_EQ(h.runner.push(g_frames, 8, record, &got, &consumed), ESP_FAIL);
    CHECK_EQ(got.chunks, 1u);
    CHECK_EQ(consumed, 6u);
    CHECK_EQ(h.runner.pending_frames(), 0u);
}

void test_no_heap_allocation()
{
    harness h(good_layout());
    static recording got;
    got = recording();
    const size_t before = alloc_counter::count();
    CHECK_EQ(h.init(), ESP_OK);
    CHECK_EQ(h.runner.push(g_frames, 5, record, &got), ESP_OK);
    CHECK_EQ(h.runner.push(g_frames + 5 * fd, stream_frames - 5, record, &got), ESP_OK);
    CHECK_EQ(h.runner.reset(), ESP_OK);
    CHECK_EQ(h.runner.push(g_frames, 4, record, &got), ESP_OK);
    CHECK_EQ(alloc_counter::count(), before);

    /* The counter itself works. */
    int *p = new int(3);
    CHECK(alloc_counter::count() > before);
    delete p;
}

} // namespace

int main()
{
    test_spec::make_frames(g_frames, stream_frames * fd, 7);
    test_init_accepts_matching_model();
    test_init_rejects_mismatches();
    test_init_rejects_bad_arguments();
    test_push_arguments();
    test_chunking_is_independent_of_push_sizes();
    test_reset();
    test_callback_error_stops_push();
    test_run_error_is_returned();
    test_no_heap_allocation();
    return check::finish();
}
