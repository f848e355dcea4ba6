/* run_self_test: passes on matching golden data, reports corruption and a reset that does not reset. */
#include <cstring>

#include "check.hpp"
#include "espdl_streaming/self_test.hpp"
#include "fake_model.hpp"
#include "test_spec.hpp"

using namespace espdl_streaming;

namespace {

constexpr uint32_t chunks = 6;
constexpr uint32_t frames = chunks * test_spec::chunk_frames + 1; /* a trailing partial frame is ignored */
constexpr uint32_t fd = test_spec::feature_dim;

float g_frames[frames * fd];
int8_t g_expected_a[chunks * 5];
int16_t g_expected_b[chunks * 6];
const void *const g_expected[2] = {g_expected_a, g_expected_b};

struct harness {
    explicit harness(const fake::layout &l) : model(l) {}
    esp_err_t init() { return runner.init(&model, &test_spec::spec, staging, sizeof(staging), buffers, raw); }

    fake::model model;
    stream_runner runner;
    alignas(16) int8_t staging[test_spec::chunk_frames * fd] = {};
    float out_a[5] = {};
    float out_b[6] = {};
    float *const buffers[2] = {out_a, out_b};
    tensor_ref raw[2] = {};
};

esp_err_t collect(const chunk_result &r, void *)
{
    std::memcpy(g_expected_a + r.chunk_index * 5, r.raw[0].data, 5);
    std::memcpy(g_expected_b + r.chunk_index * 6, r.raw[1].data, 6 * sizeof(int16_t));
    return ESP_OK;
}

/* Golden outputs from a reference run, as the build's simulator would provide them. */
void make_golden()
{
    test_spec::make_frames(g_frames, frames * fd, 99);
    harness h(fake::layout_from(test_spec::spec));
    CHECK_EQ(h.init(), ESP_OK);
    CHECK_EQ(h.runner.push(g_frames, frames, collect, nullptr), ESP_OK);
}

golden_set golden()
{
    return golden_set{g_frames, frames, g_expected, chunks, "a hand-made model"};
}

void test_passes_and_leaves_runner_reset()
{
    harness h(fake::layout_from(test_spec::spec));
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, golden()), ESP_ERR_INVALID_STATE);
    CHECK_EQ(h.init(), ESP_OK);
    CHECK_EQ(h.runner.push(g_frames, 4, nullptr, nullptr), ESP_OK); /* state to be discarded */
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, golden()), ESP_OK);
    CHECK_EQ(h.runner.pending_frames(), 0u);
    CHECK_EQ(h.runner.chunks_run(), 0u);
    CHECK_EQ(h.model.runs(), 0u);
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, golden()), ESP_OK); /* repeatable */
}

void test_detects_corruption()
{
    harness h(fake::layout_from(test_spec::spec));
    CHECK_EQ(h.init(), ESP_OK);
    g_expected_b[4 * 6 + 2] ^= 1;
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, golden()), ESP_FAIL);
    g_expected_b[4 * 6 + 2] ^= 1;
    g_expected_a[0] ^= 4;
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, golden()), ESP_FAIL);
    g_expected_a[0] ^= 4;
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, golden()), ESP_OK);
}

void test_detects_reset_not_resetting()
{
    harness h(fake::layout_from(test_spec::spec));
    CHECK_EQ(h.init(), ESP_OK);
    h.model.broken_reset = true;
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, golden()), ESP_FAIL);
}

void test_rejects_inconsistent_golden()
{
    harness h(fake::layout_from(test_spec::spec));
    CHECK_EQ(h.init(), ESP_OK);
    golden_set g = golden();
    g.frame_count = chunks * test_spec::chunk_frames - 1;
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, g), ESP_ERR_INVALID_ARG);
    g = golden();
    g.chunk_count = 0;
    CHECK_EQ(run_self_test(h.runner, test_spec::spec, g), ESP_ERR_INVALID_ARG);
}

} // namespace

int main()
{
    make_golden();
    test_passes_and_leaves_runner_reset();
    test_detects_corruption();
    test_detects_reset_not_resetting();
    test_rejects_inconsistent_golden();
    return check::finish();
}
