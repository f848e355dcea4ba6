// Unity tests of a generated class with a speech front end (FRONTEND fbank): the keyword spotter of
// examples/kws_audio, fed the int16 PCM of one of its WAV files (embedded with EMBED_FILES).
//
//   - self_test() replays the model's golden chunks and checks the front end on the golden PCM;
//   - PCM pushed in pseudo-random-sized pieces (0 to 700 samples) gives bit for bit the outputs of
//     one push of the whole clip, raw and dequantized, and so does the float overload with pcm / 32768;
//   - reset() in the middle of the clip, then the clip again from its start, reproduces the first run;
//   - every chunk's dequantized outputs are printed as `KWS_OUT <chunk> <value as %a>...` lines, which
//     python/tests/test_idf.py compares exactly with `python -m espdl_streaming run kws.espdl --input
//     01_up.wav` (both engines).
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "esp_err.h"
#include "unity.h"

#include "kws.hpp"

using espdl_streaming::chunk_result;
using espdl_streaming::dtype_size;
using espdl_streaming::models::kws;

extern const uint8_t kws_wav_start[] asm("_binary_01_up_wav_start");
extern const uint8_t kws_wav_end[] asm("_binary_01_up_wav_end");

namespace {

// Every chunk's outputs, flattened in output order: dequantized floats and raw bytes.
struct recorder {
    std::vector<uint32_t> chunk_indices;
    std::vector<float> values;
    std::vector<uint8_t> raw;
};

esp_err_t record(const chunk_result &result, void *user)
{
    auto *rec = static_cast<recorder *>(user);
    rec->chunk_indices.push_back(result.chunk_index);
    for (uint32_t i = 0; i < result.output_count; ++i) {
        const float *out = result.outputs[i];
        rec->values.insert(rec->values.end(), out, out + result.raw[i].elements);
        const auto *bytes = static_cast<const uint8_t *>(result.raw[i].data);
        rec->raw.insert(rec->raw.end(), bytes, bytes + result.raw[i].elements * dtype_size(result.raw[i].type));
    }
    return ESP_OK;
}

uint32_t read_le(const uint8_t *p, int bytes)
{
    uint32_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) {
        v = (v << 8) | p[i];
    }
    return v;
}

// The int16 samples of the embedded WAV (RIFF, PCM 16-bit mono at the model's sample rate).
std::vector<int16_t> wav_samples()
{
    const uint8_t *p = kws_wav_start;
    const size_t size = static_cast<size_t>(kws_wav_end - kws_wav_start);
    TEST_ASSERT_TRUE(size >= 12 && std::memcmp(p, "RIFF", 4) == 0 && std::memcmp(p + 8, "WAVE", 4) == 0);
    bool format_ok = false;
    for (size_t at = 12; at + 8 <= size;) {
        const uint32_t chunk = read_le(p + at + 4, 4);
        const uint8_t *body = p + at + 8;
        TEST_ASSERT_TRUE(at + 8 + chunk <= size);
        if (std::memcmp(p + at, "fmt ", 4) == 0) {
            TEST_ASSERT_EQUAL_UINT32(1, read_le(body, 2));                // PCM
            TEST_ASSERT_EQUAL_UINT32(1, read_le(body + 2, 2));            // mono
            TEST_ASSERT_EQUAL_UINT32(kws::sample_rate, read_le(body + 4, 4));
            TEST_ASSERT_EQUAL_UINT32(16, read_le(body + 14, 2));          // bits per sample
            format_ok = true;
        } else if (std::memcmp(p + at, "data", 4) == 0) {
            TEST_ASSERT_TRUE(format_ok);
            std::vector<int16_t> pcm(chunk / 2);
            for (size_t i = 0; i < pcm.size(); ++i) {
                pcm[i] = static_cast<int16_t>(read_le(body + 2 * i, 2));
            }
            return pcm;
        }
        at += 8 + chunk + (chunk & 1);
    }
    TEST_FAIL_MESSAGE("no data chunk in the embedded WAV");
    return {};
}

std::vector<float> as_float(const std::vector<int16_t> &pcm)
{
    std::vector<float> out(pcm.size());
    for (size_t i = 0; i < pcm.size(); ++i) {
        out[i] = static_cast<float>(pcm[i]) / 32768.0f;
    }
    return out;
}

template <typename Sample>
recorder push_whole(kws &model, const std::vector<Sample> &pcm)
{
    recorder rec;
    TEST_ASSERT_EQUAL(ESP_OK, model.reset());
    size_t consumed = 0;
    TEST_ASSERT_EQUAL(ESP_OK, model.push_samples(pcm.data(), pcm.size(), record, &rec, &consumed));
    TEST_ASSERT_EQUAL(pcm.size(), consumed);
    return rec;
}

// The clip in pieces of 0 to 700 samples drawn from a fixed-seed generator, with a 0-length push (null
// pointer or not) before the first piece and after every 5th; stops at `stop_at` samples.
template <typename Sample>
recorder push_pieces(kws &model, const std::vector<Sample> &pcm, uint32_t seed, size_t stop_at = SIZE_MAX)
{
    recorder rec;
    uint32_t x = seed;
    size_t at = 0;
    size_t consumed = SIZE_MAX;
    TEST_ASSERT_EQUAL(ESP_OK, model.push_samples(static_cast<const Sample *>(nullptr), 0, record, &rec, &consumed));
    TEST_ASSERT_EQUAL(0, consumed);
    for (size_t piece = 1; at < pcm.size() && at < stop_at; ++piece) {
        x = x * 1664525u + 1013904223u;
        size_t n = (x >> 8) % 701;
        if (n > pcm.size() - at) {
            n = pcm.size() - at;
        }
        consumed = SIZE_MAX;
        TEST_ASSERT_EQUAL(ESP_OK, model.push_samples(pcm.data() + at, n, record, &rec, &consumed));
        TEST_ASSERT_EQUAL(n, consumed);
        at += n;
        if (piece % 5 == 0) {
            TEST_ASSERT_EQUAL(ESP_OK, model.push_samples(pcm.data() + at, 0, record, &rec, &consumed));
            TEST_ASSERT_EQUAL(0, consumed);
        }
    }
    return rec;
}

void assert_same(const recorder &a, const recorder &b)
{
    TEST_ASSERT_EQUAL(a.chunk_indices.size(), b.chunk_indices.size());
    for (size_t i = 0; i < a.chunk_indices.size(); ++i) {
        TEST_ASSERT_EQUAL_UINT32(i, b.chunk_indices[i]);
    }
    TEST_ASSERT_EQUAL(a.values.size(), b.values.size());
    TEST_ASSERT_EQUAL(a.raw.size(), b.raw.size());
    TEST_ASSERT_EQUAL_MEMORY(a.values.data(), b.values.data(), a.values.size() * sizeof(float));
    TEST_ASSERT_EQUAL_MEMORY(a.raw.data(), b.raw.data(), a.raw.size());
}

size_t expected_chunks(size_t samples)
{
    const size_t frames =
        samples < kws::frame_length_samples ? 0 : 1 + (samples - kws::frame_length_samples) / kws::frame_shift_samples;
    return frames / kws::chunk_frames;
}

} // namespace

TEST_CASE("kws: init and self_test pass (model and front end)", "[espdl_streaming][kws]")
{
    static_assert(kws::sample_rate == 16000 && kws::frame_length_samples == 400 && kws::frame_shift_samples == 160,
                  "FRONTEND fbank at 16 kHz, 25 ms frames every 10 ms");
    static_assert(kws::feature_dim == 40 && kws::chunk_frames == 4, "NUM_MEL_BINS 40, CHUNK_FRAMES 4");
    kws model;
    TEST_ASSERT_EQUAL(ESP_OK, model.init());
    TEST_ASSERT_EQUAL(ESP_OK, model.self_test());
    // self_test leaves the stream reset: a second run must pass too.
    TEST_ASSERT_EQUAL(ESP_OK, model.self_test());
    TEST_ASSERT_EQUAL(0, model.pending_samples());
    model.deinit();
}

TEST_CASE("kws: PCM in random-sized pieces equals one push, int16 and float", "[espdl_streaming][kws]")
{
    kws model;
    TEST_ASSERT_EQUAL(ESP_OK, model.init());
    const std::vector<int16_t> pcm = wav_samples();
    const std::vector<float> pcm_float = as_float(pcm);

    const recorder whole = push_whole(model, pcm);
    TEST_ASSERT_EQUAL(expected_chunks(pcm.size()), whole.chunk_indices.size());
    TEST_ASSERT_EQUAL(whole.chunk_indices.size() * kws::output_elements, whole.values.size());
    const size_t pending_samples = model.pending_samples();
    const size_t pending_frames = model.pending_frames();

    for (uint32_t seed = 1; seed <= 4; ++seed) {
        TEST_ASSERT_EQUAL(ESP_OK, model.reset());
        assert_same(whole, push_pieces(model, pcm, seed));
        TEST_ASSERT_EQUAL(pending_samples, model.pending_samples());
        TEST_ASSERT_EQUAL(pending_frames, model.pending_frames());
    }
    // The float overload with the samples as ESP-DL scales them: the same features, the same outputs.
    assert_same(whole, push_whole(model, pcm_float));
    TEST_ASSERT_EQUAL(ESP_OK, model.reset());
    assert_same(whole, push_pieces(model, pcm_float, 5));
    model.deinit();
}

TEST_CASE("kws: reset in the middle of the clip restores the first run", "[espdl_streaming][kws]")
{
    kws model;
    TEST_ASSERT_EQUAL(ESP_OK, model.init());
    const std::vector<int16_t> pcm = wav_samples();
    const recorder first = push_whole(model, pcm);

    // Stop partway, with samples of an unfinished frame and frames of an unfinished chunk pending.
    TEST_ASSERT_EQUAL(ESP_OK, model.reset());
    const size_t middle = pcm.size() / 2 + 77;
    recorder ignored = push_pieces(model, pcm, 9, middle);
    TEST_ASSERT_TRUE(!ignored.chunk_indices.empty());
    TEST_ASSERT_NOT_EQUAL(0, model.pending_samples());

    TEST_ASSERT_EQUAL(ESP_OK, model.reset());
    TEST_ASSERT_EQUAL(0, model.pending_samples());
    TEST_ASSERT_EQUAL(0, model.pending_frames());
    assert_same(first, push_pieces(model, pcm, 10));
    model.deinit();
}

TEST_CASE("kws: print every chunk's outputs of the WAV for the host comparison", "[espdl_streaming][kws]")
{
    kws model;
    TEST_ASSERT_EQUAL(ESP_OK, model.init());
    const std::vector<int16_t> pcm = wav_samples();
    const recorder rec = push_whole(model, pcm);
    const size_t per_chunk = kws::output_elements;
    TEST_ASSERT_EQUAL(rec.chunk_indices.size() * per_chunk, rec.values.size());
    std::printf("KWS_WAV samples=%u chunks=%u values_per_chunk=%u\n", static_cast<unsigned>(pcm.size()),
                static_cast<unsigned>(rec.chunk_indices.size()), static_cast<unsigned>(per_chunk));
    for (size_t c = 0; c < rec.chunk_indices.size(); ++c) {
        std::printf("KWS_OUT %u", static_cast<unsigned>(rec.chunk_indices[c]));
        for (size_t i = 0; i < per_chunk; ++i) {
            std::printf(" %a", static_cast<double>(rec.values[c * per_chunk + i]));
        }
        std::printf("\n");
    }
    std::fflush(stdout);
    model.deinit();
}
