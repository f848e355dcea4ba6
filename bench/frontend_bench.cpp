/*
 * Figure 8: the speech front end's cost per second of audio against the model's, on the host, in one
 * process. The generated class (a model built with FRONTEND fbank) runs on the C++ host engine; the
 * front end is the host port of dl::audio (src/host/frontend/), the code ESP-IDF's linux target runs.
 *
 * Three loops over the same PCM, alternating, after a warm-up:
 *   frontend  audio_frontend::push() of the PCM (the class's front end alone), features discarded;
 *   model     the class's push() of the features that front end computed (quantize, engine, dequantize);
 *   total     the class's push_samples() of the PCM (front end + model, the firmware's call).
 * Prints key=value lines: per repetition, nanoseconds per second of audio for each loop, and a check that
 * push_samples() gave the outputs of push() on the precomputed features.
 */
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "espdl_streaming/audio_frontend.hpp"
#include "kws_bench.hpp"

using espdl_streaming::audio_frontend;
using espdl_streaming::chunk_result;
using espdl_streaming::models::kws_bench;

namespace {

constexpr int SECONDS = 20;
constexpr int REPS = 9;

struct digest {
    uint64_t hash = 1469598103934665603ull;
    uint32_t chunks = 0;
};

esp_err_t hash_outputs(const chunk_result &r, void *user)
{
    digest &d = *static_cast<digest *>(user);
    for (uint32_t o = 0; o < r.output_count; ++o) {
        const uint32_t n = kws_bench::spec().outputs[o].elements;
        const auto *bytes = reinterpret_cast<const uint8_t *>(r.outputs[o]);
        for (size_t i = 0; i < n * sizeof(float); ++i) {
            d.hash = (d.hash ^ bytes[i]) * 1099511628211ull;
        }
    }
    ++d.chunks;
    return ESP_OK;
}

std::vector<float> *g_features = nullptr;

esp_err_t keep_features(const float *f, void *)
{
    g_features->insert(g_features->end(), f, f + kws_bench::feature_dim);
    return ESP_OK;
}

esp_err_t drop_features(const float *, void *)
{
    return ESP_OK;
}

/* Deterministic speech-band test signal: a gliding harmonic tone over noise (LCG), int16. */
std::vector<int16_t> make_pcm(size_t n)
{
    std::vector<int16_t> pcm(n);
    uint32_t state = 12345;
    double phase = 0.0;
    for (size_t i = 0; i < n; ++i) {
        state = state * 1664525u + 1013904223u;
        const double noise = (static_cast<double>(state >> 8) / 16777216.0 - 0.5) * 0.05;
        const double f0 = 120.0 + 60.0 * static_cast<double>(i % 16000) / 16000.0;
        phase += 6.283185307179586 * f0 / kws_bench::sample_rate;
        double x = noise;
        for (int h = 1; h <= 12; ++h) {
            x += 0.25 / h * std::sin(h * phase);
        }
        pcm[i] = static_cast<int16_t>(x * 32767.0 * 0.5);
    }
    return pcm;
}

double now_ns()
{
    return static_cast<double>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
            .count());
}

#define MUST(x)                                                                    \
    do {                                                                           \
        const esp_err_t err_ = (x);                                                \
        if (err_ != ESP_OK) {                                                      \
            std::fprintf(stderr, "%s failed: 0x%x\n", #x, static_cast<int>(err_)); \
            std::exit(1);                                                          \
        }                                                                          \
    } while (0)

} // namespace

int main()
{
    static kws_bench model;
    MUST(model.init());
    MUST(model.self_test());
    const size_t samples = static_cast<size_t>(SECONDS) * kws_bench::sample_rate;
    const std::vector<int16_t> pcm = make_pcm(samples);

    static float window[kws_bench::frame_length_samples];
    static float features[kws_bench::feature_dim];
    audio_frontend fe;
    MUST(fe.init(&kws_bench::frontend(), window, kws_bench::frame_length_samples, features, kws_bench::feature_dim));
    std::vector<float> all_features;
    all_features.reserve((samples / kws_bench::frame_shift_samples + 1) * kws_bench::feature_dim);
    g_features = &all_features;
    MUST(fe.push(pcm.data(), pcm.size(), keep_features, nullptr));
    const size_t frames = all_features.size() / kws_bench::feature_dim;

    /* The outputs must agree: push_samples() == push() of the precomputed features. */
    digest a, b;
    MUST(model.reset());
    MUST(model.push(all_features.data(), frames, hash_outputs, &a));
    MUST(model.reset());
    MUST(model.push_samples(pcm.data(), pcm.size(), hash_outputs, &b));
    std::printf("same_outputs=%d\n", a.hash == b.hash && a.chunks == b.chunks ? 1 : 0);
    std::printf("seconds=%d\nsample_rate=%u\nframes=%zu\nchunks=%u\nreps=%d\n", SECONDS,
                static_cast<unsigned>(kws_bench::sample_rate), frames, a.chunks, REPS);

    std::vector<double> t_fe, t_model, t_total;
    for (int rep = -1; rep < REPS; ++rep) { /* rep -1: warm-up */
        fe.reset();
        double t0 = now_ns();
        MUST(fe.push(pcm.data(), pcm.size(), drop_features, nullptr));
        const double fe_ns = now_ns() - t0;

        digest d;
        MUST(model.reset());
        t0 = now_ns();
        MUST(model.push(all_features.data(), frames, hash_outputs, &d));
        const double model_ns = now_ns() - t0;

        digest e;
        MUST(model.reset());
        t0 = now_ns();
        MUST(model.push_samples(pcm.data(), pcm.size(), hash_outputs, &e));
        const double total_ns = now_ns() - t0;
        if (d.hash != a.hash || e.hash != a.hash) {
            std::fprintf(stderr, "outputs changed between repetitions\n");
            return 1;
        }
        if (rep >= 0) {
            t_fe.push_back(fe_ns / SECONDS);
            t_model.push_back(model_ns / SECONDS);
            t_total.push_back(total_ns / SECONDS);
        }
    }
    const auto print = [](const char *key, const std::vector<double> &v) {
        std::printf("%s=", key);
        for (size_t i = 0; i < v.size(); ++i) {
            std::printf("%s%.0f", i ? "," : "", v[i]);
        }
        std::printf("\n");
    };
    print("frontend_ns_per_s", t_fe);
    print("model_ns_per_s", t_model);
    print("total_ns_per_s", t_total);
    model.deinit();
    return 0;
}
