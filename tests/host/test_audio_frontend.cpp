/* audio_frontend: PCM pieces of any size to one feature frame per shift, with a fake extractor whose features
 * identify the frame's samples (so every frame's content is checked, not only the count). */
#include <cstdint>
#include <cstring>
#include <vector>

#include "check.hpp"
#include "espdl_streaming/audio_frontend.hpp"
#include "espdl_streaming/self_test.hpp"

using namespace espdl_streaming;

namespace {

constexpr uint32_t WIN = 10;
constexpr uint32_t STEP = 4;
constexpr uint32_t DIM = 3;

/* Features: first sample, last sample, sum of the frame (float samples). */
class fake_extractor final : public feature_extractor {
public:
    uint32_t win_len() const override { return WIN; }
    uint32_t feature_dim() const override { return DIM; }
    esp_err_t process_frame(const float *frame, float *out) override
    {
        ++calls;
        if (fail_at >= 0 && calls == fail_at) {
            return ESP_ERR_INVALID_SIZE;
        }
        float sum = 0.0f;
        for (uint32_t i = 0; i < WIN; ++i) {
            sum += frame[i];
        }
        out[0] = frame[0];
        out[1] = frame[WIN - 1];
        out[2] = sum;
        return ESP_OK;
    }
    int calls = 0;
    int fail_at = -1;
};

frontend_spec make_spec()
{
    frontend_spec s{};
    s.kind = frontend_kind::fbank;
    s.sample_rate = 1000;
    s.frame_length = 10;
    s.frame_shift = 4;
    s.win_len = WIN;
    s.win_step = STEP;
    s.feature_dim = DIM;
    return s;
}

/* An audio_frontend over a fake_extractor, with its buffers. */
struct framer {
    fake_extractor fx;
    frontend_spec spec = make_spec();
    float window[WIN];
    float features[DIM];
    audio_frontend fe;

    esp_err_t init() { return fe.init(&spec, &fx, window, WIN, features, DIM); }
};

struct sink {
    std::vector<float> features;
    int fail_at = -1; /* frame index at which the callback fails */
};

esp_err_t collect(const float *f, void *user)
{
    sink &s = *static_cast<sink *>(user);
    if (s.fail_at >= 0 && static_cast<int>(s.features.size() / DIM) == s.fail_at) {
        return ESP_ERR_INVALID_STATE;
    }
    s.features.insert(s.features.end(), f, f + DIM);
    return ESP_OK;
}

/* What frames of `pcm` (as floats) must give. */
std::vector<float> expected(const std::vector<float> &pcm)
{
    std::vector<float> out;
    for (size_t start = 0; start + WIN <= pcm.size(); start += STEP) {
        float sum = 0.0f;
        for (uint32_t i = 0; i < WIN; ++i) {
            sum += pcm[start + i];
        }
        out.push_back(pcm[start]);
        out.push_back(pcm[start + WIN - 1]);
        out.push_back(sum);
    }
    return out;
}

void test_any_piece_sizes_give_the_frames_of_the_whole_signal()
{
    std::vector<int16_t> pcm(103);
    std::vector<float> as_float(pcm.size());
    for (size_t i = 0; i < pcm.size(); ++i) {
        pcm[i] = static_cast<int16_t>((i * 7919) % 65536 - 32768);
        as_float[i] = static_cast<float>(pcm[i]) / 32768.0f;
    }
    const std::vector<float> want = expected(as_float);
    CHECK_EQ(want.size(), static_cast<size_t>(24 * DIM)); /* 1 + (103 - 10) / 4 frames */
    const size_t sizes[] = {1, 2, 3, 4, 5, 9, 10, 11, 17, 103};
    for (size_t piece : sizes) {
        framer f;
        CHECK_EQ(f.init(), ESP_OK);
        audio_frontend &fe = f.fe;
        sink s;
        for (size_t at = 0; at < pcm.size(); at += piece) {
            const size_t n = pcm.size() - at < piece ? pcm.size() - at : piece;
            size_t consumed = 999;
            CHECK_EQ(fe.push(pcm.data() + at, n, collect, &s, &consumed), ESP_OK);
            CHECK_EQ(consumed, n);
            CHECK_EQ(fe.push(pcm.data() + at, 0, collect, &s, &consumed), ESP_OK); /* 0 samples: nothing */
            CHECK_EQ(consumed, static_cast<size_t>(0));
        }
        CHECK(s.features == want);
        /* 103 - (10 + 23 * 4) = 1 sample past the last frame, plus the overlap of 6 */
        CHECK_EQ(fe.pending_samples(), static_cast<size_t>(7));
        /* float PCM gives the same frames */
        fe.reset();
        sink from_floats;
        CHECK_EQ(fe.push(as_float.data(), as_float.size(), collect, &from_floats), ESP_OK);
        CHECK(from_floats.features == want);
    }
}

void test_reset_forgets_the_unfinished_frame()
{
    framer f;
    CHECK_EQ(f.init(), ESP_OK);
    audio_frontend &fe = f.fe;
    std::vector<float> pcm(30);
    for (size_t i = 0; i < pcm.size(); ++i) {
        pcm[i] = static_cast<float>(i) / 64.0f;
    }
    sink s;
    CHECK_EQ(fe.push(pcm.data(), 7, collect, &s), ESP_OK);
    CHECK_EQ(fe.pending_samples(), static_cast<size_t>(7));
    fe.reset();
    CHECK_EQ(fe.pending_samples(), static_cast<size_t>(0));
    CHECK_EQ(fe.push(pcm.data(), pcm.size(), collect, &s), ESP_OK);
    CHECK(s.features == expected(pcm));
}

void test_a_failing_callback_stops_after_the_frame_it_was_given()
{
    framer f;
    CHECK_EQ(f.init(), ESP_OK);
    audio_frontend &fe = f.fe;
    std::vector<float> pcm(40);
    for (size_t i = 0; i < pcm.size(); ++i) {
        pcm[i] = static_cast<float>(i);
    }
    sink s;
    s.fail_at = 2; /* the third frame: samples [8, 18) */
    size_t consumed = 0;
    CHECK_EQ(fe.push(pcm.data(), pcm.size(), collect, &s, &consumed), ESP_ERR_INVALID_STATE);
    CHECK_EQ(consumed, static_cast<size_t>(18)); /* through the sample that completed the failed frame */
    CHECK_EQ(s.features.size(), static_cast<size_t>(2 * DIM));
    /* Pushing the rest continues the stream: frames 3.. come out as if nothing happened. */
    s.fail_at = -1;
    CHECK_EQ(fe.push(pcm.data() + consumed, pcm.size() - consumed, collect, &s), ESP_OK);
    std::vector<float> want = expected(pcm);
    want.erase(want.begin() + 2 * DIM, want.begin() + 3 * DIM); /* the frame handed to the failing callback */
    CHECK(s.features == want);
}

void test_an_extractor_error_is_returned()
{
    framer f;
    f.fx.fail_at = 2;
    CHECK_EQ(f.init(), ESP_OK);
    audio_frontend &fe = f.fe;
    std::vector<float> pcm(40, 0.25f);
    sink s;
    size_t consumed = 0;
    CHECK_EQ(fe.push(pcm.data(), pcm.size(), collect, &s, &consumed), ESP_ERR_INVALID_SIZE);
    CHECK_EQ(consumed, static_cast<size_t>(14));
    CHECK_EQ(s.features.size(), static_cast<size_t>(DIM));
}

void test_bad_arguments()
{
    fake_extractor fx;
    frontend_spec spec = make_spec();
    float window[WIN];
    float features[DIM];
    audio_frontend fe;
    sink s;
    const float x = 0.0f;
    CHECK_EQ(fe.push(&x, 1, collect, &s), ESP_ERR_INVALID_STATE); /* before init() */
    CHECK_EQ(fe.init(&spec, &fx, window, WIN - 1, features, DIM), ESP_ERR_INVALID_ARG);
    frontend_spec wrong = spec;
    wrong.feature_dim = DIM + 1; /* the extractor disagrees with the build */
    float more[DIM + 1];
    CHECK_EQ(fe.init(&wrong, &fx, window, WIN, more, DIM + 1), ESP_ERR_INVALID_ARG);
    wrong = spec;
    wrong.win_step = WIN + 1;
    CHECK_EQ(fe.init(&wrong, &fx, window, WIN, features, DIM), ESP_ERR_INVALID_ARG);
    CHECK_EQ(fe.init(&spec, &fx, window, WIN, features, DIM), ESP_OK);
    CHECK_EQ(fe.init(&spec, &fx, window, WIN, features, DIM), ESP_ERR_INVALID_STATE);
    CHECK_EQ(fe.push(static_cast<const float *>(nullptr), 3, collect, &s), ESP_ERR_INVALID_ARG);
    CHECK_EQ(fe.push(&x, 1, nullptr, &s), ESP_ERR_INVALID_ARG);
    /* No backend in this build: open_frontend() says so. */
    audio_frontend own;
    CHECK_EQ(own.init(&spec, window, WIN, features, DIM), ESP_ERR_NOT_SUPPORTED);
}

void test_frontend_self_test()
{
    framer f;
    CHECK_EQ(f.init(), ESP_OK);
    audio_frontend &fe = f.fe;
    int16_t pcm[45];
    std::vector<float> as_float(45);
    for (int i = 0; i < 45; ++i) {
        pcm[i] = static_cast<int16_t>(i * 500 - 11000);
        as_float[static_cast<size_t>(i)] = static_cast<float>(pcm[i]) / 32768.0f;
    }
    std::vector<float> want = expected(as_float); /* 9 frames, 3 samples past the last */
    frontend_golden golden = {pcm, 45, want.data(), 9, 1e-6f, 0.0f};
    CHECK_EQ(run_frontend_self_test(fe, golden, "fake"), ESP_OK);
    CHECK_EQ(fe.pending_samples(), static_cast<size_t>(0));
    want[13] += 1e-5f; /* frame 4, feature 1: beyond the tolerance */
    CHECK_EQ(run_frontend_self_test(fe, golden, "fake"), ESP_FAIL);
    golden.rel_tol = 1e-4f; /* relative to the frame's largest value */
    CHECK_EQ(run_frontend_self_test(fe, golden, "fake"), ESP_OK);
    golden.frame_count = 8; /* inconsistent with 45 samples */
    CHECK_EQ(run_frontend_self_test(fe, golden, "fake"), ESP_ERR_INVALID_ARG);
}

} // namespace

int main()
{
    test_any_piece_sizes_give_the_frames_of_the_whole_signal();
    test_reset_forgets_the_unfinished_frame();
    test_a_failing_callback_stops_after_the_frame_it_was_given();
    test_an_extractor_error_is_returned();
    test_bad_arguments();
    test_frontend_self_test();
    return check::finish();
}
