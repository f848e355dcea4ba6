/*
 * The stream runner carries a recurrent state across chunks: after every run it copies the
 * model's state_out_<k> into its own storage and writes it to state_in_<k> before the next run,
 * zero after init() and reset(), or the spec's learned initial state. A state output may also be a
 * user output (a last state the user's model returns): one tensor, read for both. The double below keeps no state of its own (like ESP-DL's GRU,
 * which starts every run from initial_h) and scribbles on its input buffers after each run (like
 * ESP-DL's memory planner), so only a correct loop-back reproduces the one-pass reference.
 */
#include <cmath>
#include <cstring>

#include "check.hpp"
#include "espdl_streaming/stream_runner.hpp"

using namespace espdl_streaming;

namespace {

constexpr uint32_t chunk_frames = 3;
constexpr uint32_t feature_dim = 4;
constexpr uint32_t hidden = 2;
constexpr uint32_t total_frames = 7 * chunk_frames;

/* Names sort as dl::Model orders them: "a_in" < "state_in_0"; "output" < "state_out_0" < "z_last". */
const tensor_spec k_outputs[] = {
    {"output", dtype::int8, -5, 3, {1, chunk_frames, hidden, 0}, chunk_frames * hidden},
    {"z_last", dtype::int16, -8, 2, {1, hidden, 0, 0}, hidden},
};
const uint32_t k_output_indices[] = {0, 2};
const state_spec k_states[] = {
    {{"state_in_0", dtype::int16, -8, 3, {1, 1, hidden, 0}, hidden},
     {"state_out_0", dtype::int16, -8, 3, {1, 1, hidden, 0}, hidden},
     1,
     1,
     nullptr},
};
const model_spec k_spec = {
    "recurrent_fake",
    chunk_frames,
    feature_dim,
    rounding::half_up,
    {"a_in", dtype::int8, -5, 3, {1, chunk_frames, feature_dim, 0}, chunk_frames * feature_dim},
    k_outputs,
    2,
    0,
    k_output_indices,
    k_states,
    1,
};

/* One recurrence step over a frame: the state both models (double and reference) compute. */
void step(int32_t *state, const int8_t *frame)
{
    for (uint32_t j = 0; j < hidden; ++j) {
        int32_t v = state[j] - state[j] / 4 + frame[j] * 5 + frame[j + 2] - static_cast<int32_t>(j);
        state[j] = static_cast<int16_t>(v < -32768 ? -32768 : v > 32767 ? 32767 : v);
    }
}

int8_t clamp8(int32_t v)
{
    return static_cast<int8_t>(v < -128 ? -128 : v > 127 ? 127 : v);
}

/* The same model whose last state is a user output: outputs "output" and "state_out_0" (both user
 * outputs, the second also the state), and a learned initial state. */
const int16_t k_initial[hidden] = {700, -1300};
const tensor_spec k_shared_outputs[] = {
    {"output", dtype::int8, -5, 3, {1, chunk_frames, hidden, 0}, chunk_frames * hidden},
    {"state_out_0", dtype::int16, -8, 3, {1, 1, hidden, 0}, hidden},
};
const state_spec k_shared_states[] = {
    {{"state_in_0", dtype::int16, -8, 3, {1, 1, hidden, 0}, hidden},
     {"state_out_0", dtype::int16, -8, 3, {1, 1, hidden, 0}, hidden},
     1,
     1,
     k_initial},
};
const model_spec k_shared_spec = {
    "recurrent_shared",
    chunk_frames,
    feature_dim,
    rounding::half_up,
    {"a_in", dtype::int8, -5, 3, {1, chunk_frames, feature_dim, 0}, chunk_frames * feature_dim},
    k_shared_outputs,
    2,
    0,
    nullptr,
    k_shared_states,
    1,
};

class recurrent_double final : public model_interface {
public:
    explicit recurrent_double(bool shared = false) : m_shared(shared) {}
    uint32_t input_count() const override { return 2; }
    uint32_t output_count() const override { return m_shared ? 2 : 3; }

    esp_err_t input(uint32_t index, tensor_ref *out) override
    {
        if (index == 0) {
            describe(k_spec.input, m_in, out);
        } else if (index == 1) {
            describe(k_states[0].input, m_state_in, out);
        } else {
            return ESP_ERR_INVALID_ARG;
        }
        return ESP_OK;
    }

    esp_err_t output(uint32_t index, tensor_ref *out) override
    {
        if (index == 0) {
            describe(k_outputs[0], m_out, out);
        } else if (index == 1) {
            describe(k_states[0].output, m_state_out, out);
        } else if (index == 2 && !m_shared) {
            describe(k_outputs[1], m_last, out);
        } else {
            return ESP_ERR_INVALID_ARG;
        }
        return ESP_OK;
    }

    esp_err_t run() override
    {
        int32_t state[hidden] = {m_state_in[0], m_state_in[1]};
        for (uint32_t t = 0; t < chunk_frames; ++t) {
            step(state, m_in + t * feature_dim);
            for (uint32_t j = 0; j < hidden; ++j) {
                m_out[t * hidden + j] = clamp8(state[j] / 64);
            }
        }
        for (uint32_t j = 0; j < hidden; ++j) {
            m_state_out[j] = static_cast<int16_t>(state[j]);
            m_last[j] = static_cast<int16_t>(state[j]);
        }
        std::memset(m_in, 0x5a, sizeof(m_in));
        std::memset(m_state_in, 0x5a, sizeof(m_state_in));
        ++runs;
        return ESP_OK;
    }

    esp_err_t reset() override { return ESP_OK; } /* the state lives in the inputs, as in ESP-DL */

    uint32_t runs = 0;

private:
    static void describe(const tensor_spec &s, void *data, tensor_ref *out)
    {
        out->data = data;
        out->type = s.type;
        out->exponent = s.exponent;
        out->elements = s.elements;
        out->ndim = s.ndim;
        for (uint8_t i = 0; i < max_ndim; ++i) {
            out->shape[i] = s.shape[i];
        }
    }

    bool m_shared;
    int8_t m_in[chunk_frames * feature_dim] = {};
    int16_t m_state_in[hidden] = {};
    int8_t m_out[chunk_frames * hidden] = {};
    int16_t m_state_out[hidden] = {};
    int16_t m_last[hidden] = {};
};

struct collected {
    int8_t out[total_frames * hidden];
    int16_t last[total_frames / chunk_frames][hidden];
    uint32_t chunks;
};

esp_err_t collect(const chunk_result &r, void *user)
{
    auto *c = static_cast<collected *>(user);
    std::memcpy(c->out + r.chunk_index * chunk_frames * hidden, r.raw[0].data, chunk_frames * hidden);
    std::memcpy(c->last[r.chunk_index], r.raw[1].data, sizeof(c->last[0]));
    ++c->chunks;
    return ESP_OK;
}

/* Frames whose int8 quantization at exponent -5 is simply round(x * 32). */
void make_frames(float *frames)
{
    for (uint32_t i = 0; i < total_frames * feature_dim; ++i) {
        frames[i] = static_cast<float>(static_cast<int32_t>((i * 37u) % 61u) - 30) / 32.0f;
    }
}

/* The whole stream in one pass, state starting at `initial` (zeros if null). */
void reference(const float *frames, collected *want, const int16_t *initial = nullptr)
{
    int32_t state[hidden] = {initial != nullptr ? initial[0] : 0, initial != nullptr ? initial[1] : 0};
    for (uint32_t t = 0; t < total_frames; ++t) {
        int8_t q[feature_dim];
        for (uint32_t c = 0; c < feature_dim; ++c) {
            q[c] = static_cast<int8_t>(static_cast<int32_t>(frames[t * feature_dim + c] * 32.0f));
        }
        step(state, q);
        for (uint32_t j = 0; j < hidden; ++j) {
            want->out[t * hidden + j] = clamp8(state[j] / 64);
            if ((t + 1) % chunk_frames == 0) {
                want->last[t / chunk_frames][j] = static_cast<int16_t>(state[j]);
            }
        }
    }
    want->chunks = total_frames / chunk_frames;
}

void test_state_loops_back_across_chunks()
{
    float frames[total_frames * feature_dim];
    make_frames(frames);
    collected want = {};
    reference(frames, &want);

    recurrent_double model;
    stream_runner runner;
    int8_t staging[chunk_frames * feature_dim];
    float out0[chunk_frames * hidden];
    float out1[hidden];
    float *const outputs[] = {out0, out1};
    tensor_ref raw[2] = {};
    alignas(4) uint8_t state[state_storage_bytes(k_spec)];
    CHECK(state_storage_bytes(k_spec) == hidden * sizeof(int16_t));
    std::memset(state, 0x77, sizeof(state));
    CHECK(runner.init(&model, &k_spec, staging, sizeof(staging), outputs, raw, state, sizeof(state)) == ESP_OK);

    /* Uneven pushes: 5 frames, then 1, then the rest. */
    collected got = {};
    CHECK(runner.push(frames, 5, collect, &got) == ESP_OK);
    CHECK(runner.push(frames + 5 * feature_dim, 1, collect, &got) == ESP_OK);
    CHECK(runner.push(frames + 6 * feature_dim, total_frames - 6, collect, &got) == ESP_OK);
    CHECK(got.chunks == want.chunks);
    CHECK(std::memcmp(got.out, want.out, sizeof(want.out)) == 0);
    CHECK(std::memcmp(got.last, want.last, sizeof(want.last)) == 0);

    /* reset() zeroes the carried state: the same stream gives the same outputs again. */
    CHECK(runner.reset() == ESP_OK);
    collected again = {};
    CHECK(runner.push(frames, total_frames, collect, &again) == ESP_OK);
    CHECK(std::memcmp(again.out, want.out, sizeof(want.out)) == 0);
    CHECK(std::memcmp(again.last, want.last, sizeof(want.last)) == 0);
}

void test_state_storage_and_model_checked()
{
    recurrent_double model;
    stream_runner runner;
    int8_t staging[chunk_frames * feature_dim];
    float out0[chunk_frames * hidden];
    float out1[hidden];
    float *const outputs[] = {out0, out1};
    tensor_ref raw[2] = {};
    uint8_t state[hidden * sizeof(int16_t)];
    /* No or too little storage for the state. */
    CHECK(runner.init(&model, &k_spec, staging, sizeof(staging), outputs, raw) == ESP_ERR_INVALID_ARG);
    CHECK(runner.init(&model, &k_spec, staging, sizeof(staging), outputs, raw, state, 1) == ESP_ERR_INVALID_ARG);
    /* A spec whose state has a different exponent than the model's. */
    state_spec wrong = k_states[0];
    wrong.input.exponent = -7;
    model_spec spec = k_spec;
    spec.states = &wrong;
    CHECK(runner.init(&model, &spec, staging, sizeof(staging), outputs, raw, state, sizeof(state)) ==
          ESP_ERR_INVALID_SIZE);
    /* A spec without the state: the model's second input is unexpected. */
    spec = k_spec;
    spec.state_count = 0;
    spec.states = nullptr;
    CHECK(runner.init(&model, &spec, staging, sizeof(staging), outputs, raw) == ESP_ERR_INVALID_SIZE);
    CHECK(model.runs == 0);
}

void test_learned_initial_state_and_state_as_user_output()
{
    float frames[total_frames * feature_dim];
    make_frames(frames);
    collected want = {};
    reference(frames, &want, k_initial);
    collected from_zero = {};
    reference(frames, &from_zero);
    CHECK(std::memcmp(want.out, from_zero.out, sizeof(want.out)) != 0); /* the initial state matters */

    recurrent_double model(true);
    stream_runner runner;
    int8_t staging[chunk_frames * feature_dim];
    float out0[chunk_frames * hidden];
    float out1[hidden];
    float *const outputs[] = {out0, out1};
    tensor_ref raw[2] = {};
    alignas(4) uint8_t state[state_storage_bytes(k_shared_spec)];
    std::memset(state, 0x77, sizeof(state));
    CHECK(runner.init(&model, &k_shared_spec, staging, sizeof(staging), outputs, raw, state, sizeof(state)) == ESP_OK);
    collected got = {};
    CHECK(runner.push(frames, 4, collect, &got) == ESP_OK);
    CHECK(runner.push(frames + 4 * feature_dim, total_frames - 4, collect, &got) == ESP_OK);
    CHECK(got.chunks == want.chunks);
    CHECK(std::memcmp(got.out, want.out, sizeof(want.out)) == 0);
    CHECK(std::memcmp(got.last, want.last, sizeof(want.last)) == 0); /* the state, read as a user output */
    CHECK(out1[0] == std::ldexp(static_cast<float>(want.last[want.chunks - 1][0]), -8));

    /* reset() restores the learned state, not zeros. */
    CHECK(runner.reset() == ESP_OK);
    collected again = {};
    CHECK(runner.push(frames, total_frames, collect, &again) == ESP_OK);
    CHECK(std::memcmp(again.out, want.out, sizeof(want.out)) == 0);
}

} // namespace

int main()
{
    test_learned_initial_state_and_state_as_user_output();
    test_state_loops_back_across_chunks();
    test_state_storage_and_model_checked();
    return check::finish();
}
