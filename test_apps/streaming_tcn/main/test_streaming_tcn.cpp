// Unity tests of the generated classes on a chip (ESP-DL backend) and on ESP-IDF's linux target
// (the component's host engine, same generated code, same .espdl bytes):
//
//   - self_test() replays the build-time golden chunks bit for bit;
//   - pushing a stream in random-sized pieces gives the same outputs as one big push;
//   - reset() restores the first chunk's output;
//   - the PARTITION-placed copy (tcn_part) computes what the RODATA one does;
//   - the GRU model (gru) carries its recurrent state across chunks and reset() clears it.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "esp_err.h"
#include "esp_random.h"
#include "unity.h"

#include "gru.hpp"
#include "tcn.hpp"
#include "tcn_part.hpp"

using espdl_streaming::chunk_result;
using espdl_streaming::models::gru;
using espdl_streaming::models::tcn;
using espdl_streaming::models::tcn_part;

namespace {

constexpr size_t total_chunks = 20;
constexpr size_t total_frames = total_chunks * tcn::chunk_frames;

// Every chunk's outputs, flattened in output order.
struct recorder {
    std::vector<uint32_t> chunk_indices;
    std::vector<float> values;
};

size_t output_floats()
{
    size_t n = 0;
    for (uint32_t i = 0; i < tcn::output_count; ++i) {
        n += tcn::spec().outputs[i].elements;
    }
    return n;
}

esp_err_t record(const chunk_result &result, void *user)
{
    auto *rec = static_cast<recorder *>(user);
    rec->chunk_indices.push_back(result.chunk_index);
    for (uint32_t i = 0; i < result.output_count; ++i) {
        const float *out = result.outputs[i];
        rec->values.insert(rec->values.end(), out, out + result.raw[i].elements);
    }
    return ESP_OK;
}

// Deterministic pseudo-random frames in [-1, 1) (same stream on every run).
std::vector<float> make_frames(uint32_t seed)
{
    std::vector<float> frames(total_frames * tcn::feature_dim);
    uint32_t x = seed;
    for (float &v : frames) {
        x = x * 1664525u + 1013904223u;
        v = static_cast<float>(static_cast<int32_t>(x >> 8) - (1 << 23)) / static_cast<float>(1 << 23);
    }
    return frames;
}

template <typename Model>
recorder push_whole(Model &model, const std::vector<float> &frames)
{
    recorder rec;
    TEST_ASSERT_EQUAL(ESP_OK, model.reset());
    TEST_ASSERT_EQUAL(ESP_OK, model.push(frames.data(), total_frames, record, &rec));
    return rec;
}

}  // namespace

TEST_CASE("tcn: init and self_test pass", "[espdl_streaming]")
{
    tcn model;
    TEST_ASSERT_EQUAL(ESP_OK, model.init());
    TEST_ASSERT_EQUAL(ESP_OK, model.self_test());
    // self_test leaves the stream reset: a second run must pass too.
    TEST_ASSERT_EQUAL(ESP_OK, model.self_test());
    model.deinit();
}

TEST_CASE("tcn: random-sized pushes equal one big push", "[espdl_streaming]")
{
    tcn model;
    TEST_ASSERT_EQUAL(ESP_OK, model.init());
    const std::vector<float> frames = make_frames(12345);

    const recorder whole = push_whole(model, frames);
    TEST_ASSERT_EQUAL(total_chunks, whole.chunk_indices.size());
    TEST_ASSERT_EQUAL(total_chunks * output_floats(), whole.values.size());

    for (int trial = 0; trial < 5; ++trial) {
        recorder pieces;
        TEST_ASSERT_EQUAL(ESP_OK, model.reset());
        size_t at = 0;
        while (at < total_frames) {
            size_t n = esp_random() % (2 * tcn::chunk_frames + 2);  // 0 .. 2 chunks + 1 frame
            if (n > total_frames - at) {
                n = total_frames - at;
            }
            TEST_ASSERT_EQUAL(ESP_OK, model.push(frames.data() + at * tcn::feature_dim, n, record, &pieces));
            at += n;
        }
        TEST_ASSERT_EQUAL(0, model.pending_frames());
        TEST_ASSERT_EQUAL(whole.chunk_indices.size(), pieces.chunk_indices.size());
        for (size_t i = 0; i < whole.chunk_indices.size(); ++i) {
            TEST_ASSERT_EQUAL_UINT32(i, pieces.chunk_indices[i]);
        }
        // Same quantized arithmetic on the same frames: bit-identical floats.
        TEST_ASSERT_EQUAL_MEMORY(whole.values.data(), pieces.values.data(), whole.values.size() * sizeof(float));
    }
    model.deinit();
}

TEST_CASE("tcn: reset restores the first chunk's output", "[espdl_streaming]")
{
    tcn model;
    TEST_ASSERT_EQUAL(ESP_OK, model.init());
    const std::vector<float> frames = make_frames(777);

    recorder first;
    TEST_ASSERT_EQUAL(ESP_OK, model.push(frames.data(), tcn::chunk_frames, record, &first));
    // Advance the streaming caches well past their window, then leave a partial chunk pending.
    recorder ignored;
    TEST_ASSERT_EQUAL(ESP_OK, model.push(frames.data() + tcn::chunk_frames * tcn::feature_dim,
                                         total_frames - tcn::chunk_frames - 1, record, &ignored));
    TEST_ASSERT_NOT_EQUAL(0, model.pending_frames());

    TEST_ASSERT_EQUAL(ESP_OK, model.reset());
    TEST_ASSERT_EQUAL(0, model.pending_frames());
    recorder again;
    TEST_ASSERT_EQUAL(ESP_OK, model.push(frames.data(), tcn::chunk_frames, record, &again));
    TEST_ASSERT_EQUAL(1, again.chunk_indices.size());
    TEST_ASSERT_EQUAL_UINT32(0, again.chunk_indices[0]);
    TEST_ASSERT_EQUAL(first.values.size(), again.values.size());
    TEST_ASSERT_EQUAL_MEMORY(first.values.data(), again.values.data(), first.values.size() * sizeof(float));
    model.deinit();
}

TEST_CASE("tcn_part: partition placement loads and matches rodata", "[espdl_streaming]")
{
    static_assert(tcn_part::chunk_frames == tcn::chunk_frames, "same declaration");
    static_assert(tcn_part::feature_dim == tcn::feature_dim, "same declaration");
    tcn_part part;
    TEST_ASSERT_EQUAL(ESP_OK, part.init());
    TEST_ASSERT_EQUAL(ESP_OK, part.self_test());

    tcn rodata;
    TEST_ASSERT_EQUAL(ESP_OK, rodata.init());
    const std::vector<float> frames = make_frames(4242);
    const recorder a = push_whole(rodata, frames);
    const recorder b = push_whole(part, frames);
    TEST_ASSERT_EQUAL(a.values.size(), b.values.size());
    TEST_ASSERT_EQUAL_MEMORY(a.values.data(), b.values.data(), a.values.size() * sizeof(float));
    rodata.deinit();
    part.deinit();
}

TEST_CASE("gru: recurrent state carried across chunks, cleared by reset", "[espdl_streaming]")
{
    static_assert(gru::state_count == 1 && gru::state_bytes == 12, "one int8 GRU hidden state of 12 values");
    gru model;
    TEST_ASSERT_EQUAL(ESP_OK, model.init());
    // The golden chunks were computed at build time with the state fed back after every chunk.
    TEST_ASSERT_EQUAL(ESP_OK, model.self_test());

    std::vector<float> frames(8 * gru::chunk_frames * gru::feature_dim);
    uint32_t x = 99;
    for (float &v : frames) {
        x = x * 1664525u + 1013904223u;
        v = static_cast<float>(static_cast<int32_t>(x >> 8) - (1 << 23)) / static_cast<float>(1 << 22);
    }
    recorder whole;
    TEST_ASSERT_EQUAL(ESP_OK, model.reset());
    TEST_ASSERT_EQUAL(ESP_OK, model.push(frames.data(), 8 * gru::chunk_frames, record, &whole));
    // The same first chunk after other history gives other outputs (the state is carried) ...
    recorder late;
    TEST_ASSERT_EQUAL(ESP_OK, model.push(frames.data(), gru::chunk_frames, record, &late));
    const size_t per_chunk = gru::output_elements;
    TEST_ASSERT_TRUE(std::memcmp(whole.values.data(), late.values.data(), per_chunk * sizeof(float)) != 0);
    // ... and after reset() exactly the first chunk's outputs again.
    recorder again;
    TEST_ASSERT_EQUAL(ESP_OK, model.reset());
    TEST_ASSERT_EQUAL(ESP_OK, model.push(frames.data(), gru::chunk_frames, record, &again));
    TEST_ASSERT_EQUAL_MEMORY(whole.values.data(), again.values.data(), per_chunk * sizeof(float));
    model.deinit();
}

extern "C" void app_main(void)
{
#if CONFIG_IDF_TARGET_LINUX
    // A host executable: run every case once and exit with the number of failures.
    UNITY_BEGIN();
    unity_run_all_tests();
    std::exit(UNITY_END());
#else
    unity_run_menu();
#endif
}
