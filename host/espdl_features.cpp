/*
 * espdl_features: PCM to feature frames through the runtime's audio_frontend (the framer a
 * generated class's push_samples() uses) and the host build's front end (open_frontend():
 * src/host/frontend_host.cpp, the C++ port of ESP-DL's dl::audio in src/host/frontend/). The
 * protocol of python/espdl_streaming/host_engine.py compute_features_host().
 *
 *   espdl_features --format int16|float32 --pcm PCM.bin [--pieces PIECES.bin] --out OUT.bin
 *                  [key=value ...]
 *
 * key=value: the fields of the Python FrontendConfig (audio/config.py) = ESP-DL's SpeechFeatureConfig
 * plus `kind` (fbank | mfcc | spectrogram); a field not given keeps ESP-DL's default. Booleans are
 * 0/1 or false/true; window_type is one of ESP-DL's window names. win_len, win_step and feature_dim
 * of the frontend_spec are computed as FrontendConfig does (frame_length * sample_rate / 1000, ...).
 * PCM.bin: raw little-endian samples, int16 (scaled by 1/32768, as ESP-DL does) or float32 in [-1, 1).
 * PIECES.bin: uint32 little-endian piece sizes summing to the sample count, pushed one push() each
 * (empty pieces allowed); without it, all samples in one push(). OUT.bin: the feature frames, float32
 * [frames, feature_dim] row-major.
 *
 * push() must not allocate: every allocation of the process is counted (alloc_counter.cpp: malloc & co.
 * and operator new), and one during the pushes is an error.
 * Exit status 0; 2 with one line "error: ..." on stderr for bad arguments or files; 1 with one line
 * "error: ..." naming the call and its esp_err_t when the front end fails.
 */
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "alloc_counter.hpp"
#include "espdl_streaming/audio_frontend.hpp"
#include "tool_io.hpp"

using namespace espdl_streaming;

namespace {

constexpr const char *USAGE = "usage: espdl_features --format int16|float32 --pcm PCM.bin [--pieces PIECES.bin] "
                              "--out OUT.bin [key=value ...]";

int fail_with(int status, const char *format, va_list args)
{
    std::fputs("error: ", stderr);
    std::vfprintf(stderr, format, args);
    std::fputc('\n', stderr);
    return status;
}

/* Bad arguments or files: exit 2. */
int fail(const char *format, ...) __attribute__((format(printf, 1, 2)));
int fail(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    const int status = fail_with(2, format, args);
    va_end(args);
    return status;
}

/* The front end failed: exit 1. */
int fail_runtime(const char *format, ...) __attribute__((format(printf, 1, 2)));
int fail_runtime(const char *format, ...)
{
    va_list args;
    va_start(args, format);
    const int status = fail_with(1, format, args);
    va_end(args);
    return status;
}

const char *err_name(esp_err_t err)
{
    switch (err) {
    case ESP_OK:
        return "ESP_OK";
    case ESP_FAIL:
        return "ESP_FAIL";
    case ESP_ERR_NO_MEM:
        return "ESP_ERR_NO_MEM";
    case ESP_ERR_INVALID_ARG:
        return "ESP_ERR_INVALID_ARG";
    case ESP_ERR_INVALID_STATE:
        return "ESP_ERR_INVALID_STATE";
    case ESP_ERR_INVALID_SIZE:
        return "ESP_ERR_INVALID_SIZE";
    case ESP_ERR_NOT_FOUND:
        return "ESP_ERR_NOT_FOUND";
    case ESP_ERR_NOT_SUPPORTED:
        return "ESP_ERR_NOT_SUPPORTED";
    default:
        return "an esp_err_t";
    }
}

/* ESP-DL's SpeechFeatureConfig defaults (as FrontendConfig's). */
frontend_spec default_spec()
{
    frontend_spec s = {};
    s.kind = frontend_kind::fbank;
    s.sample_rate = 16000;
    s.frame_length = 25;
    s.frame_shift = 10;
    s.num_mel_bins = 26;
    s.num_ceps = 13;
    s.preemphasis = 0.97f;
    s.cepstral_lifter = 22.0f;
    s.window = frontend_window::hanning;
    s.low_freq = 80.0f;
    s.high_freq = 0.0f;
    s.log_epsilon = 1.1920928955078125e-07f;
    s.use_log_fbank = 1;
    s.raw_energy = true;
    s.use_power = true;
    s.use_energy = false;
    s.remove_dc_offset = true;
    return s;
}

bool parse_int(const char *text, int *out)
{
    char *end = nullptr;
    errno = 0;
    const long v = std::strtol(text, &end, 10);
    if (end == text || *end != '\0' || errno != 0 || v < -2147483647L || v > 2147483647L) {
        return false;
    }
    *out = static_cast<int>(v);
    return true;
}

/* The double the text names, rounded to float (as the Python value of the field is). */
bool parse_float(const char *text, float *out)
{
    char *end = nullptr;
    errno = 0;
    const double v = std::strtod(text, &end);
    if (end == text || *end != '\0' || errno != 0 || !std::isfinite(v)) {
        return false;
    }
    *out = static_cast<float>(v);
    return std::isfinite(*out);
}

bool parse_bool(const char *text, bool *out)
{
    if (std::strcmp(text, "1") == 0 || std::strcmp(text, "true") == 0 || std::strcmp(text, "True") == 0) {
        *out = true;
        return true;
    }
    if (std::strcmp(text, "0") == 0 || std::strcmp(text, "false") == 0 || std::strcmp(text, "False") == 0) {
        *out = false;
        return true;
    }
    return false;
}

constexpr const char *KINDS[] = {"fbank", "mfcc", "spectrogram"};
constexpr const char *WINDOWS[] = {"hanning", "hann", "sine", "hamming", "povey", "rectangular", "blackman", "none"};

/* One key=value argument into `s`; 0, or the exit status after the message. */
int apply_setting(const char *arg, frontend_spec *s)
{
    const char *eq = std::strchr(arg, '=');
    if (eq == nullptr || eq == arg) {
        return fail("unexpected argument '%s': a setting is key=value (a FrontendConfig field); %s", arg, USAGE);
    }
    const size_t key_len = static_cast<size_t>(eq - arg);
    const char *v = eq + 1;
    auto is = [&](const char *name) { return std::strlen(name) == key_len && std::strncmp(arg, name, key_len) == 0; };
    bool ok = true;
    if (is("kind")) {
        ok = false;
        for (size_t k = 0; k < sizeof(KINDS) / sizeof(KINDS[0]); ++k) {
            if (std::strcmp(v, KINDS[k]) == 0) {
                s->kind = static_cast<frontend_kind>(k);
                ok = true;
            }
        }
        if (!ok) {
            return fail("kind=%s: must be fbank, mfcc or spectrogram", v);
        }
    } else if (is("window_type")) {
        ok = false;
        for (size_t w = 0; w < sizeof(WINDOWS) / sizeof(WINDOWS[0]); ++w) {
            if (std::strcmp(v, WINDOWS[w]) == 0) {
                s->window = static_cast<frontend_window>(w);
                ok = true;
            }
        }
        if (!ok) {
            return fail("window_type=%s: must be one of hanning, hann, sine, hamming, povey, rectangular, blackman, "
                        "none",
                        v);
        }
    } else if (is("sample_rate")) {
        ok = parse_int(v, &s->sample_rate);
    } else if (is("frame_length")) {
        ok = parse_int(v, &s->frame_length);
    } else if (is("frame_shift")) {
        ok = parse_int(v, &s->frame_shift);
    } else if (is("num_mel_bins")) {
        ok = parse_int(v, &s->num_mel_bins);
    } else if (is("num_ceps")) {
        ok = parse_int(v, &s->num_ceps);
    } else if (is("use_log_fbank")) {
        ok = parse_int(v, &s->use_log_fbank);
    } else if (is("preemphasis")) {
        ok = parse_float(v, &s->preemphasis);
    } else if (is("cepstral_lifter")) {
        ok = parse_float(v, &s->cepstral_lifter);
    } else if (is("low_freq")) {
        ok = parse_float(v, &s->low_freq);
    } else if (is("high_freq")) {
        ok = parse_float(v, &s->high_freq);
    } else if (is("log_epsilon")) {
        ok = parse_float(v, &s->log_epsilon);
    } else if (is("raw_energy")) {
        ok = parse_bool(v, &s->raw_energy);
    } else if (is("use_power")) {
        ok = parse_bool(v, &s->use_power);
    } else if (is("use_energy")) {
        ok = parse_bool(v, &s->use_energy);
    } else if (is("remove_dc_offset")) {
        ok = parse_bool(v, &s->remove_dc_offset);
    } else if (is("use_int16_fft")) {
        bool int16_fft = false;
        ok = parse_bool(v, &int16_fft);
        if (ok && int16_fft) {
            return fail("use_int16_fft=%s: ESP-DL 3.3's Fbank, MFCC and Spectrogram ignore it (float FFT); leave it "
                        "0",
                        v);
        }
    } else {
        return fail("unknown setting '%.*s' in '%s': give FrontendConfig fields (kind, sample_rate, frame_length, "
                    "frame_shift, num_mel_bins, num_ceps, preemphasis, cepstral_lifter, window_type, low_freq, "
                    "high_freq, log_epsilon, use_log_fbank, raw_energy, use_power, use_energy, use_int16_fft, "
                    "remove_dc_offset)",
                    static_cast<int>(key_len), arg, arg);
    }
    if (!ok) {
        return fail("'%s': not a valid value for %.*s (an integer, a finite number or 0/1, as the field takes)", arg,
                    static_cast<int>(key_len), arg);
    }
    return 0;
}

/* win_len, win_step and feature_dim as FrontendConfig computes them; 0, or the exit status. */
int derive_sizes(frontend_spec *s)
{
    const int64_t win_len = static_cast<int64_t>(s->frame_length) * s->sample_rate / 1000;
    const int64_t win_step = static_cast<int64_t>(s->frame_shift) * s->sample_rate / 1000;
    if (win_len <= 0 || win_step <= 0 || win_len > (int64_t(1) << 24)) {
        return fail("frame_length=%d, frame_shift=%d ms at sample_rate=%d Hz give frames of %lld samples every %lld: "
                    "give a positive rate, frame length and shift",
                    s->frame_length, s->frame_shift, s->sample_rate, static_cast<long long>(win_len),
                    static_cast<long long>(win_step));
    }
    uint32_t fft_size = 1;
    while (fft_size < static_cast<uint32_t>(win_len)) {
        fft_size <<= 1;
    }
    s->win_len = static_cast<uint32_t>(win_len);
    s->win_step = static_cast<uint32_t>(win_step);
    if (s->kind == frontend_kind::spectrogram) {
        s->feature_dim = fft_size / 2 + 1;
    } else {
        const int base = s->kind == frontend_kind::mfcc ? s->num_ceps : s->num_mel_bins;
        const int dim = s->use_energy ? base + 1 : base;
        if (dim <= 0) {
            return fail("%s of %d features per frame: give num_mel_bins (fbank) or num_ceps (mfcc) >= 1",
                        KINDS[static_cast<size_t>(s->kind)], dim);
        }
        s->feature_dim = static_cast<uint32_t>(dim);
    }
    return 0;
}

struct collected {
    float *data;
    size_t capacity; /* frames */
    size_t frames;
    size_t dim;
};

esp_err_t collect(const float *features, void *user)
{
    auto *c = static_cast<collected *>(user);
    if (c->frames >= c->capacity) {
        return ESP_ERR_INVALID_SIZE; /* more frames than 1 + (n - win_len) / win_step: a framer bug */
    }
    std::memcpy(c->data + c->frames * c->dim, features, c->dim * sizeof(float));
    ++c->frames;
    return ESP_OK;
}

} // namespace

int main(int argc, char **argv)
{
    const char *format = nullptr;
    const char *pcm_path = nullptr;
    const char *pieces_path = nullptr;
    const char *out_path = nullptr;
    frontend_spec spec = default_spec();
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const bool has_value = i + 1 < argc;
        if (std::strcmp(a, "--format") == 0 && has_value) {
            format = argv[++i];
        } else if (std::strcmp(a, "--pcm") == 0 && has_value) {
            pcm_path = argv[++i];
        } else if (std::strcmp(a, "--pieces") == 0 && has_value) {
            pieces_path = argv[++i];
        } else if (std::strcmp(a, "--out") == 0 && has_value) {
            out_path = argv[++i];
        } else if (a[0] == '-') {
            return fail("unexpected argument '%s'; %s", a, USAGE);
        } else if (const int status = apply_setting(a, &spec)) {
            return status;
        }
    }
    if (format == nullptr || pcm_path == nullptr || out_path == nullptr) {
        return fail("%s", USAGE);
    }
    const bool int16 = std::strcmp(format, "int16") == 0;
    if (!int16 && std::strcmp(format, "float32") != 0) {
        return fail("--format must be int16 or float32, got '%s'", format);
    }
    if (const int status = derive_sizes(&spec)) {
        return status;
    }

    tool::file_bytes pcm;
    if (!tool::read_file(pcm_path, &pcm)) {
        return fail("%s: cannot read: %s", pcm_path, std::strerror(errno));
    }
    const size_t sample_bytes = int16 ? sizeof(int16_t) : sizeof(float);
    if (pcm.size % sample_bytes != 0) {
        return fail("%s: %lu bytes are not a whole number of %s samples", pcm_path,
                    static_cast<unsigned long>(pcm.size), format);
    }
    const size_t samples = pcm.size / sample_bytes;
    std::vector<uint32_t> pieces;
    if (pieces_path != nullptr) {
        tool::file_bytes raw;
        if (!tool::read_file(pieces_path, &raw)) {
            return fail("%s: cannot read: %s", pieces_path, std::strerror(errno));
        }
        if (raw.size % sizeof(uint32_t) != 0) {
            return fail("%s: %lu bytes are not a whole number of uint32 piece sizes", pieces_path,
                        static_cast<unsigned long>(raw.size));
        }
        pieces.resize(raw.size / sizeof(uint32_t));
        if (!pieces.empty()) {
            std::memcpy(pieces.data(), raw.data, raw.size);
        }
        uint64_t total = 0;
        for (const uint32_t p : pieces) {
            total += p;
        }
        if (total != samples) {
            return fail("%s: the pieces sum to %llu samples, %s holds %lu", pieces_path,
                        static_cast<unsigned long long>(total), pcm_path, static_cast<unsigned long>(samples));
        }
    } else {
        pieces.push_back(static_cast<uint32_t>(samples));
        if (pieces[0] != samples) {
            return fail("%s: %lu samples do not fit one push of up to 2^32-1: pass --pieces", pcm_path,
                        static_cast<unsigned long>(samples));
        }
    }

    const size_t expected = samples < spec.win_len ? 0 : 1 + (samples - spec.win_len) / spec.win_step;
    std::vector<float> window(spec.win_len);
    std::vector<float> features(spec.feature_dim);
    std::vector<float> out(expected * spec.feature_dim);
    collected sink = {out.data(), expected, 0, spec.feature_dim};

    audio_frontend frontend;
    esp_err_t err = frontend.init(&spec, window.data(), window.size(), features.data(), features.size());
    if (err != ESP_OK) {
        return fail_runtime("audio_frontend::init returned %d (%s, 0x%x): the front end refused this configuration "
                            "(the log above says why)",
                            static_cast<int>(err), err_name(err), static_cast<unsigned>(err));
    }
    const size_t allocations_before = alloc_counter::count();
    size_t pos = 0;
    for (size_t p = 0; p < pieces.size(); ++p) {
        size_t consumed = 0;
        if (int16) {
            err =
                frontend.push(reinterpret_cast<const int16_t *>(pcm.data) + pos, pieces[p], collect, &sink, &consumed);
        } else {
            err = frontend.push(reinterpret_cast<const float *>(pcm.data) + pos, pieces[p], collect, &sink, &consumed);
        }
        if (err != ESP_OK) {
            return fail_runtime("audio_frontend::push of piece %lu (%lu samples at sample %lu) returned %d (%s, 0x%x)",
                                static_cast<unsigned long>(p), static_cast<unsigned long>(pieces[p]),
                                static_cast<unsigned long>(pos), static_cast<int>(err), err_name(err),
                                static_cast<unsigned>(err));
        }
        pos += pieces[p];
    }
    const size_t allocations = alloc_counter::count() - allocations_before;
    if (allocations != 0) {
        return fail_runtime("audio_frontend::push allocated %lu times: push() must never allocate",
                            static_cast<unsigned long>(allocations));
    }
    if (sink.frames != expected) {
        return fail_runtime("audio_frontend::push gave %lu frames for %lu samples, expected %lu",
                            static_cast<unsigned long>(sink.frames), static_cast<unsigned long>(samples),
                            static_cast<unsigned long>(expected));
    }
    if (!tool::write_file(out_path, out.data(), sink.frames * spec.feature_dim * sizeof(float))) {
        return fail("%s: cannot write: %s", out_path, std::strerror(errno));
    }
    return 0;
}
