/*
 * espdl_fuzz: mutation fuzzing of the host engine's loader (and of run() on what still loads).
 *
 *   espdl_fuzz [--iterations N] [--seconds S] [--seed X] SEED.espdl...
 *
 * Every iteration copies a seed file, applies one to four mutations (bit flips, truncation, byte
 * runs, edits of 32-bit length/offset fields and of 64-bit integers such as dims and attributes,
 * splices, header size edits), opens the result and, when it opens, runs it on zero and on
 * pseudo-random inputs, resets and runs again. The point is to crash: build it with the
 * sanitizers (ESPDL_STREAMING_SANITIZE=ON), which abort on any memory error or undefined
 * behaviour. A summary line of JSON is printed at the end; exit status 0 unless a seed cannot be
 * read (a crash exits through the sanitizer).
 */
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "host_engine.hpp"
#include "tool_io.hpp"

using namespace espdl_streaming;

namespace {

/* xorshift64*: the same mutations for the same --seed on every host. */
struct rng {
    uint64_t state;
    uint64_t next()
    {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        return state * 0x2545F4914F6CDD1DULL;
    }
    size_t below(size_t n) { return n == 0 ? 0 : static_cast<size_t>(next() % n); }
};

void put32(std::vector<uint8_t> &d, size_t at, uint32_t v)
{
    if (at + 4 <= d.size()) {
        std::memcpy(&d[at], &v, 4);
    }
}

void mutate(std::vector<uint8_t> &d, rng &r)
{
    if (d.empty()) {
        d.push_back(static_cast<uint8_t>(r.next()));
        return;
    }
    static const uint32_t interesting32[] = {0,      1,       2,          3,           4,          8,
                                             12,     16,      0x7f,       0x80,        0xff,       0x100,
                                             0xffff, 0x10000, 0x7fffffff, 0x80000000u, 0xfffffffe, 0xffffffff};
    static const int64_t interesting64[] = {
        0,         1,         -1, 2,   3, 4, 5, 7, 16, 255, 256, 1000, 65535, 65536, int64_t(1) << 31, int64_t(1) << 40,
        INT64_MAX, INT64_MIN, -2, -100};
    switch (r.below(8)) {
    case 0: { /* bit flips */
        const size_t n = 1 + r.below(4);
        for (size_t i = 0; i < n; ++i) {
            d[r.below(d.size())] ^= static_cast<uint8_t>(1u << r.below(8));
        }
        break;
    }
    case 1: /* truncation */
        d.resize(r.below(d.size()));
        break;
    case 2: { /* a run of one byte value */
        const size_t at = r.below(d.size());
        const size_t len = 1 + r.below(32);
        const uint8_t value = r.below(3) == 0 ? 0 : r.below(2) == 0 ? 0xff : static_cast<uint8_t>(r.next());
        for (size_t i = at; i < at + len && i < d.size(); ++i) {
            d[i] = value;
        }
        break;
    }
    case 3: { /* a 32-bit length or offset field (FlatBuffers aligns them to 4) */
        const size_t at = r.below(d.size() / 4) * 4;
        uint32_t v = 0;
        if (at + 4 <= d.size()) {
            std::memcpy(&v, &d[at], 4);
        }
        if (r.below(2) == 0) {
            v += static_cast<uint32_t>(static_cast<int32_t>(r.below(33)) - 16);
        } else {
            v = interesting32[r.below(sizeof(interesting32) / sizeof(interesting32[0]))];
        }
        put32(d, at, v);
        break;
    }
    case 4: { /* a 64-bit integer (dims, attributes, exponents) */
        const size_t at = r.below(d.size() / 8) * 8;
        const int64_t v = interesting64[r.below(sizeof(interesting64) / sizeof(interesting64[0]))];
        if (at + 8 <= d.size()) {
            std::memcpy(&d[at], &v, 8);
        }
        break;
    }
    case 5: { /* splice: copy a block over another place */
        const size_t from = r.below(d.size());
        const size_t to = r.below(d.size());
        const size_t len = 1 + r.below(64);
        for (size_t i = 0; i < len && from + i < d.size() && to + i < d.size(); ++i) {
            d[to + i] = d[from + i];
        }
        break;
    }
    case 6: /* the header's model size */
        put32(d, 8,
              r.below(2) == 0 ? static_cast<uint32_t>(d.size() - 16 + r.below(9) - 4)
                              : interesting32[r.below(sizeof(interesting32) / sizeof(interesting32[0]))]);
        break;
    default: { /* a small signed 8/16-bit value (exponents, dtype codes, vtable entries) */
        const size_t at = r.below(d.size());
        d[at] = static_cast<uint8_t>(static_cast<int>(d[at]) + static_cast<int>(r.below(9)) - 4);
        break;
    }
    }
}

} // namespace

int main(int argc, char **argv)
{
    long iterations = 1000;
    double seconds = 10.0;
    uint64_t seed = 1;
    std::vector<const char *> paths;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--iterations") == 0 && i + 1 < argc) {
            iterations = std::strtol(argv[++i], nullptr, 10);
        } else if (std::strcmp(argv[i], "--seconds") == 0 && i + 1 < argc) {
            seconds = std::strtod(argv[++i], nullptr);
        } else if (std::strcmp(argv[i], "--seed") == 0 && i + 1 < argc) {
            seed = std::strtoull(argv[++i], nullptr, 10);
        } else if (argv[i][0] != '-') {
            paths.push_back(argv[i]);
        } else {
            std::fprintf(stderr, "error: usage: espdl_fuzz [--iterations N] [--seconds S] [--seed X] SEED.espdl...\n");
            return 2;
        }
    }
    if (paths.empty()) {
        std::fprintf(stderr, "error: usage: espdl_fuzz [--iterations N] [--seconds S] [--seed X] SEED.espdl...\n");
        return 2;
    }
    std::vector<std::vector<uint8_t>> seeds;
    for (const char *p : paths) {
        tool::file_bytes f;
        if (!tool::read_file(p, &f)) {
            std::fprintf(stderr, "error: %s: cannot read: %s\n", p, std::strerror(errno));
            return 2;
        }
        seeds.emplace_back(f.data, f.data + f.size);
    }

    rng r{seed * 0x9E3779B97F4A7C15ULL + 1};
    const auto start = std::chrono::steady_clock::now();
    long done = 0;
    long opened = 0;
    long ran = 0;
    long by_code[4] = {}; /* ESP_FAIL, NOT_SUPPORTED, NO_MEM, other */
    tool::file_bytes buffer;
    for (; done < iterations; ++done) {
        const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (elapsed >= seconds) {
            break;
        }
        std::vector<uint8_t> d = seeds[r.below(seeds.size())];
        const size_t mutations = 1 + r.below(4);
        for (size_t m = 0; m < mutations; ++m) {
            mutate(d, r);
        }
        /* an exact-size buffer, so ASan sees any read past the file's end */
        uint8_t *exact = static_cast<uint8_t *>(std::malloc(d.size() + (d.empty() ? 1 : 0)));
        if (!d.empty()) {
            std::memcpy(exact, d.data(), d.size());
        }
        host::error_sink err;
        host::host_model *model = nullptr;
        const rounding mode = r.below(2) == 0 ? rounding::half_even : rounding::half_up;
        const esp_err_t ret = host::open_model_bytes(exact, d.size(), mode, true, err, &model);
        if (ret == ESP_OK) {
            ++opened;
            /* keep each iteration short: skip running mutants that became huge */
            if (model->work() <= (int64_t(1) << 22)) {
                for (int pass = 0; pass < 3; ++pass) {
                    for (uint32_t i = 0; i < model->input_count(); ++i) {
                        tensor_ref ref = {};
                        TOOL_MUST(model->input(i, &ref));
                        uint8_t *bytes = static_cast<uint8_t *>(ref.data);
                        const size_t n = ref.elements * dtype_size(ref.type);
                        for (size_t k = 0; k < n; ++k) {
                            bytes[k] = pass == 0 ? 0 : static_cast<uint8_t>(r.next());
                        }
                    }
                    TOOL_MUST(model->run());
                    if (pass == 1) {
                        TOOL_MUST(model->reset());
                    }
                    for (uint32_t o = 0; o < model->output_count(); ++o) {
                        tensor_ref ref = {};
                        TOOL_MUST(model->output(o, &ref));
                    }
                }
                ++ran;
            }
            close_model(model);
        } else {
            ++by_code[ret == ESP_FAIL ? 0 : ret == ESP_ERR_NOT_SUPPORTED ? 1 : ret == ESP_ERR_NO_MEM ? 2 : 3];
            if (err.message()[0] == '\0') {
                std::fprintf(stderr, "error: open_model_bytes failed (%d) without a message\n", ret);
                std::free(exact);
                return 1;
            }
        }
        std::free(exact);
    }
    std::printf("{\"iterations\": %ld, \"opened\": %ld, \"ran\": %ld, \"fail\": %ld, \"not_supported\": %ld, "
                "\"no_mem\": %ld, \"other\": %ld}\n",
                done, opened, ran, by_code[0], by_code[1], by_code[2], by_code[3]);
    return 0;
}
