/*
 * ESP-DL's speech front end for host builds: see speech_frontend.hpp. Written from ESP-DL 3.3's
 * esp-dl/audio/ (dl_audio_common.cpp, dl_fbank.cpp, dl_mfcc.cpp, dl_spectrogram.cpp): the same
 * steps, the same float/double conversions, sequential float sums. Build with
 * -ffp-contract=off so that no multiply-add is fused (the Python version does not fuse either).
 */
#include "speech_frontend.hpp"

#include <math.h>
#include <new>

namespace espdl_streaming::host::frontend {

namespace {

constexpr const char *TAG = "speech_frontend";
constexpr double PI = 3.14159265358979323846;

/* ESP-DL calls libm's float functions (newlib's on the chip). Both this port and the Python version
 * model them as correctly rounded (evaluated in double, rounded once), which newlib's and glibc's
 * are in all but a few cases in a hundred (<= 0.56 ulp), so that the two agree bit for bit. */
float logf_(float x)
{
    return static_cast<float>(log(static_cast<double>(x)));
}
float cosf_(float x)
{
    return static_cast<float>(cos(static_cast<double>(x)));
}
float sinf_(float x)
{
    return static_cast<float>(sin(static_cast<double>(x)));
}
float powf_(float x, float y)
{
    return static_cast<float>(pow(static_cast<double>(x), static_cast<double>(y)));
}

/* hz2mel(): 1127.0 * logf(1.0 + x / 700.0), the double quotient rounded to float for logf. */
float hz2mel(float x)
{
    return static_cast<float>(1127.0 * static_cast<double>(logf_(static_cast<float>(1.0 + x / 700.0))));
}

template <typename T>
std::unique_ptr<T[]> alloc(size_t n)
{
    return std::unique_ptr<T[]>(new (std::nothrow) T[n]());
}

/* win_func_init(): false for a window it does not know. */
bool fill_window(window_type type, int n, float *w)
{
    double a = 2.0 * PI / (n - 1);
    if (type == window_type::hann) {
        a = 2.0 * PI / n;
    }
    constexpr float blackman_coeff = 0.42f;
    for (int i = 0; i < n; i++) {
        const double i_fl = static_cast<double>(i);
        switch (type) {
        case window_type::hanning:
        case window_type::hann:
            w[i] = 0.5f - 0.5f * cosf_(static_cast<float>(a * i_fl));
            break;
        case window_type::sine:
            w[i] = sinf_(static_cast<float>(0.5 * a * i_fl));
            break;
        case window_type::hamming:
            w[i] = 0.54f - 0.46f * cosf_(static_cast<float>(a * i_fl));
            break;
        case window_type::povey:
            w[i] = powf_(0.5f - 0.5f * cosf_(static_cast<float>(a * i_fl)), 0.85f);
            break;
        case window_type::rectangular:
            w[i] = 1.0f;
            break;
        case window_type::blackman: {
            const float first = blackman_coeff - 0.5f * cosf_(static_cast<float>(a * i_fl));
            const float cos2 = cosf_(static_cast<float>(2.0 * a * i_fl));
            const double second = (0.5 - static_cast<double>(blackman_coeff)) * static_cast<double>(cos2);
            w[i] = static_cast<float>(static_cast<double>(first) + second);
            break;
        }
        default:
            return false;
        }
    }
    return true;
}

float log_floor(float x, float eps, int mode)
{
    if (mode == 1) {
        return logf_(x > eps ? x : eps);
    }
    if (mode == 2) {
        return logf_(x + eps);
    }
    return x;
}

} // namespace

esp_err_t speech_frontend::init(const frontend_config &config)
{
    m_ready = false;
    m_cfg = config;
    const frontend_config &c = m_cfg;
    ESPDL_STREAMING_RETURN_ON_FALSE(c.sample_rate > 0 && c.frame_length > 0 && c.frame_shift > 0 &&
                                        c.frame_shift <= c.frame_length,
                                    ESP_ERR_INVALID_ARG, TAG, "bad sample rate or frame length/shift");
    const int64_t win_len = static_cast<int64_t>(c.frame_length) * c.sample_rate / 1000;
    const int64_t win_step = static_cast<int64_t>(c.frame_shift) * c.sample_rate / 1000;
    ESPDL_STREAMING_RETURN_ON_FALSE(win_len >= 16 && win_len <= 32768 && win_step >= 1, ESP_ERR_INVALID_ARG, TAG,
                                    "frame of %lld samples", static_cast<long long>(win_len));
    m_win_len = static_cast<int>(win_len);
    m_win_step = static_cast<int>(win_step);
    ESPDL_STREAMING_RETURN_ON_FALSE(c.preemphasis >= 0.0f && c.preemphasis < 1.0f && c.log_epsilon > 0.0f &&
                                        c.use_log_fbank >= 0 && c.use_log_fbank <= 2,
                                    ESP_ERR_INVALID_ARG, TAG, "bad preemphasis, log_epsilon or use_log_fbank");
    m_fft_size = 1;
    while (m_fft_size < m_win_len) {
        m_fft_size <<= 1;
    }
    m_feat_width = m_fft_size / 2 + 1;
    if (c.kind == feature_kind::spectrogram) {
        m_feature_dim = m_feat_width;
        ESPDL_STREAMING_RETURN_ON_FALSE(c.use_power && c.use_log_fbank == 1 && !c.use_energy, ESP_ERR_INVALID_ARG, TAG,
                                        "spectrogram forces use_power, use_log_fbank=1, no use_energy");
    } else {
        ESPDL_STREAMING_RETURN_ON_FALSE(c.num_mel_bins >= 1 && c.num_mel_bins <= m_feat_width && c.low_freq >= 0.0f &&
                                            c.high_freq <= c.sample_rate / 2.0f,
                                        ESP_ERR_INVALID_ARG, TAG, "num_mel_bins or frequency range");
        const int base = c.kind == feature_kind::mfcc ? c.num_ceps : c.num_mel_bins;
        m_feature_dim = c.use_energy ? base + 1 : base;
    }
    if (c.kind == feature_kind::mfcc) {
        ESPDL_STREAMING_RETURN_ON_FALSE(c.use_power && c.use_log_fbank == 1 && c.num_ceps >= 1 &&
                                            c.num_ceps <= c.num_mel_bins && m_feat_width + c.num_mel_bins <= m_fft_size,
                                        ESP_ERR_INVALID_ARG, TAG, "bad MFCC settings");
    }

    m_window.reset();
    if (c.window != window_type::none) {
        m_window = alloc<float>(m_win_len);
        ESPDL_STREAMING_RETURN_ON_FALSE(m_window, ESP_ERR_NO_MEM, TAG, "window");
        ESPDL_STREAMING_RETURN_ON_FALSE(fill_window(c.window, m_win_len, m_window.get()), ESP_ERR_INVALID_ARG, TAG,
                                        "window type");
    }
    if (c.kind != feature_kind::spectrogram) {
        ESPDL_STREAMING_RETURN_ON_ERROR(build_mel_filters());
        m_mel = alloc<float>(c.num_mel_bins);
        ESPDL_STREAMING_RETURN_ON_FALSE(m_mel, ESP_ERR_NO_MEM, TAG, "mel buffer");
    }
    m_lifter.reset();
    if (c.kind == feature_kind::mfcc) {
        const int rows = c.num_ceps, cols = c.num_mel_bins;
        m_dct = alloc<float>(static_cast<size_t>(rows) * cols);
        ESPDL_STREAMING_RETURN_ON_FALSE(m_dct, ESP_ERR_NO_MEM, TAG, "DCT");
        const float norm0 = sqrtf(static_cast<float>(1.0 / cols));
        for (int n = 0; n < cols; n++) {
            m_dct[n] = norm0;
        }
        const float norm = sqrtf(static_cast<float>(2.0 / cols));
        for (int k = 1; k < rows; k++) {
            for (int n = 0; n < cols; n++) {
                m_dct[static_cast<size_t>(k) * cols + n] =
                    static_cast<float>(static_cast<double>(norm) * cos(PI / cols * (n + 0.5) * k));
            }
        }
        if (c.cepstral_lifter != 0.0f) {
            m_lifter = alloc<float>(rows);
            ESPDL_STREAMING_RETURN_ON_FALSE(m_lifter, ESP_ERR_NO_MEM, TAG, "lifter");
            const double q = c.cepstral_lifter;
            for (int i = 0; i < rows; i++) {
                m_lifter[i] = static_cast<float>(1.0 + 0.5 * q * sin(PI * i / q));
            }
        }
    }

    /* Radix-2 FFT tables. */
    const int n = m_fft_size;
    m_twiddle = alloc<double>(static_cast<size_t>(n));
    m_bitrev = alloc<int>(static_cast<size_t>(n));
    m_fft = alloc<double>(static_cast<size_t>(2 * n));
    m_work = alloc<float>(static_cast<size_t>(n));
    ESPDL_STREAMING_RETURN_ON_FALSE(m_twiddle && m_bitrev && m_fft && m_work, ESP_ERR_NO_MEM, TAG, "FFT buffers");
    for (int k = 0; k < n / 2; k++) {
        m_twiddle[2 * k] = cos(-2.0 * PI * k / n);
        m_twiddle[2 * k + 1] = sin(-2.0 * PI * k / n);
    }
    int bits = 0;
    while ((1 << bits) < n) {
        bits++;
    }
    for (int i = 0; i < n; i++) {
        int r = 0;
        for (int b = 0; b < bits; b++) {
            r |= ((i >> b) & 1) << (bits - 1 - b);
        }
        m_bitrev[i] = r;
    }
    m_ready = true;
    return ESP_OK;
}

/* mel_filter_init(): the positive weights of each filter between its first and last FFT bin. A
 * filter whose bins ESP-DL would get wrong (no bin, or its end left unset at the Nyquist edge) is
 * rejected. */
esp_err_t speech_frontend::build_mel_filters()
{
    const frontend_config &c = m_cfg;
    const int nfilter = c.num_mel_bins;
    const int feat_width = m_feat_width;
    float high = c.high_freq <= 0 ? c.sample_rate / 2.0f : c.high_freq;
    const int low_i = static_cast<int>(c.low_freq);
    int high_i = static_cast<int>(high);
    if (high_i <= low_i) {
        high_i = c.sample_rate / 2;
    }
    const float lowmel = hz2mel(static_cast<float>(low_i));
    const float highmel = hz2mel(static_cast<float>(high_i));
    const float nyquist = static_cast<float>(c.sample_rate / 2.0);

    auto edges = alloc<float>(static_cast<size_t>(nfilter) + 2);
    auto bin_mel = alloc<float>(static_cast<size_t>(feat_width));
    m_mel_coeff = alloc<float>(static_cast<size_t>(feat_width) * 2);
    m_mel_pos = alloc<int>(static_cast<size_t>(nfilter) * 2);
    ESPDL_STREAMING_RETURN_ON_FALSE(edges && bin_mel && m_mel_coeff && m_mel_pos, ESP_ERR_NO_MEM, TAG, "mel tables");
    for (int i = 0; i < nfilter + 2; i++) {
        edges[i] = ((highmel - lowmel) / static_cast<float>(nfilter + 1) * static_cast<float>(i)) + lowmel;
    }
    for (int i = 0; i < feat_width; i++) {
        bin_mel[i] = hz2mel(static_cast<float>(i) * nyquist / static_cast<float>(feat_width - 1));
    }
    int idx = 0;
    for (int i = 0; i < nfilter; i++) {
        int start = -1, stop = -1, count = 0;
        for (int j = 1; j < feat_width; j++) {
            const float lower = (bin_mel[j] - edges[i]) / (edges[i + 1] - edges[i]);
            const float upper = (edges[i + 2] - bin_mel[j]) / (edges[i + 2] - edges[i + 1]);
            const float w = lower < upper ? lower : upper;
            if (lower > 0 && start == -1) {
                start = j;
            }
            if (upper <= 0 && stop == -1) {
                stop = j - 1;
            }
            if (w > 0.0f) {
                ESPDL_STREAMING_RETURN_ON_FALSE(idx < feat_width * 2, ESP_ERR_INVALID_ARG, TAG, "mel weights");
                m_mel_coeff[idx++] = w;
                count++;
            }
        }
        ESPDL_STREAMING_RETURN_ON_FALSE(start >= 1 && stop >= start && count == stop - start + 1, ESP_ERR_INVALID_ARG,
                                        TAG, "mel filter %d would be wrong in ESP-DL (bins %d..%d, %d weights)", i,
                                        start, stop, count);
        m_mel_pos[2 * i] = start;
        m_mel_pos[2 * i + 1] = count;
    }
    m_mel_total = idx;
    return ESP_OK;
}

/* The spectrum of m_work (win_len samples, zero-padded): an FFT in double, each bin rounded to
 * float, then power (or magnitude) in float as compute_spectrum() does. Leaves feat_width values in
 * m_work. */
void speech_frontend::fft_power(float *x)
{
    const int n = m_fft_size;
    double *d = m_fft.get();
    for (int i = 0; i < n; i++) {
        const int r = m_bitrev[i];
        d[2 * r] = i < m_win_len ? static_cast<double>(x[i]) : 0.0;
        d[2 * r + 1] = 0.0;
    }
    for (int half = 1; half < n; half <<= 1) {
        const int stride = n / (2 * half);
        for (int base = 0; base < n; base += 2 * half) {
            for (int k = 0; k < half; k++) {
                const double wr = m_twiddle[2 * k * stride], wi = m_twiddle[2 * k * stride + 1];
                double *a = d + 2 * (base + k);
                double *b = d + 2 * (base + k + half);
                const double tr = wr * b[0] - wi * b[1];
                const double ti = wr * b[1] + wi * b[0];
                b[0] = a[0] - tr;
                b[1] = a[1] - ti;
                a[0] += tr;
                a[1] += ti;
            }
        }
    }
    for (int k = 0; k < m_feat_width; k++) {
        const float re = static_cast<float>(d[2 * k]);
        const float im = static_cast<float>(d[2 * k + 1]);
        const float p = re * re + im * im;
        x[k] = m_cfg.use_power ? p : sqrtf(p);
    }
}

esp_err_t speech_frontend::process_frame(const float *frame, float *out)
{
    ESPDL_STREAMING_RETURN_ON_FALSE(m_ready && frame && out, ESP_ERR_INVALID_ARG, TAG, "process_frame");
    const frontend_config &c = m_cfg;
    const int n = m_win_len;
    float *x = m_work.get();
    for (int i = 0; i < n; i++) {
        x[i] = frame[i];
    }
    if (c.remove_dc_offset) {
        float sum = 0.0f;
        for (int i = 0; i < n; i++) {
            sum += x[i];
        }
        const float mean = sum / static_cast<float>(n);
        for (int i = 0; i < n; i++) {
            x[i] -= mean;
        }
    }
    const bool wants_energy = c.use_energy || c.kind == feature_kind::spectrogram;
    float energy = 0.0f;
    auto log_energy = [&]() {
        float s = 0.0f;
        for (int i = 0; i < n; i++) {
            s += x[i] * x[i];
        }
        return logf_(s > c.log_epsilon ? s : c.log_epsilon);
    };
    if (wants_energy && c.raw_energy) {
        energy = log_energy();
    }
    if (c.preemphasis > 1e-7) {
        for (int i = n - 1; i >= 1; i--) {
            x[i] = x[i] - x[i - 1] * c.preemphasis;
        }
        x[0] = x[0] - x[0] * c.preemphasis;
    }
    if (m_window) {
        for (int i = 0; i < n; i++) {
            x[i] = x[i] * m_window[i];
        }
    }
    if (wants_energy && !c.raw_energy) {
        energy = log_energy();
    }
    fft_power(x);

    if (c.kind == feature_kind::spectrogram) {
        out[0] = energy;
        for (int j = 1; j < m_feat_width; j++) {
            out[j] = log_floor(x[j], c.log_epsilon, c.use_log_fbank);
        }
        return ESP_OK;
    }
    if (c.use_energy) {
        *out++ = energy;
    }
    float *mel = c.kind == feature_kind::mfcc ? m_mel.get() : out;
    const float *coeff = m_mel_coeff.get();
    for (int j = 0; j < c.num_mel_bins; j++) {
        const int start = m_mel_pos[2 * j], count = m_mel_pos[2 * j + 1];
        float sum = 0.0f;
        for (int k = 0; k < count; k++) {
            sum += coeff[k] * x[start + k];
        }
        coeff += count;
        mel[j] = log_floor(sum, c.log_epsilon, c.use_log_fbank);
    }
    if (c.kind == feature_kind::mfcc) {
        for (int i = 0; i < c.num_ceps; i++) {
            const float *row = m_dct.get() + static_cast<size_t>(i) * c.num_mel_bins;
            float sum = 0.0f;
            for (int k = 0; k < c.num_mel_bins; k++) {
                sum += row[k] * mel[k];
            }
            out[i] = m_lifter ? sum * m_lifter[i] : sum;
        }
    }
    return ESP_OK;
}

} // namespace espdl_streaming::host::frontend
