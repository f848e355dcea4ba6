/*
 * engine_check: the host engine's run-time contract on a real model.
 *
 *   engine_check MODEL.espdl --rounding half_even|half_up [--chunks N]
 *
 * - run() and reset() allocate nothing (every malloc and operator new of the process is counted);
 * - reset() restores the fresh state: after N chunks and a reset, the same N chunks give the same
 *   outputs as the first time;
 * - the state matters (a streaming model's chunk 1 depends on chunk 0), so the reset check can
 *   fail.
 * Prints one line of JSON; exit status 0 when every check passed, 1 otherwise, 2 on bad input.
 * Recurrent states (state_in_K / state_out_K) start at zero and are not looped back here.
 */
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "alloc_counter.hpp"
#include "host_engine.hpp"
#include "tool_io.hpp"

using namespace espdl_streaming;

namespace {

/* Chunk c of a deterministic pseudo-random stream, into every input. */
void fill_inputs(host::host_model &m, uint32_t chunk)
{
    uint32_t x = 2463534242u + chunk * 7919u;
    for (uint32_t i = 0; i < m.input_count(); ++i) {
        tensor_ref ref = {};
        TOOL_MUST(m.input(i, &ref));
        uint8_t *bytes = static_cast<uint8_t *>(ref.data);
        const size_t n = ref.elements * dtype_size(ref.type);
        for (size_t k = 0; k < n; ++k) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            bytes[k] = static_cast<uint8_t>(x >> 7);
        }
    }
}

/* Append every output's bytes at `out` (preallocated). */
uint8_t *save_outputs(host::host_model &m, uint8_t *out)
{
    for (uint32_t o = 0; o < m.output_count(); ++o) {
        tensor_ref ref = {};
        TOOL_MUST(m.output(o, &ref));
        const size_t n = ref.elements * dtype_size(ref.type);
        std::memcpy(out, ref.data, n);
        out += n;
    }
    return out;
}

} // namespace

int main(int argc, char **argv)
{
    const char *path = nullptr;
    const char *rounding_name = "half_even";
    uint32_t chunks = 6;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--rounding") == 0 && i + 1 < argc) {
            rounding_name = argv[++i];
        } else if (std::strcmp(argv[i], "--chunks") == 0 && i + 1 < argc) {
            chunks = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 10));
        } else if (path == nullptr && argv[i][0] != '-') {
            path = argv[i];
        } else {
            std::fprintf(stderr, "error: usage: engine_check MODEL.espdl --rounding half_even|half_up [--chunks N]\n");
            return 2;
        }
    }
    rounding mode;
    if (path == nullptr || chunks < 2 || !tool::parse_rounding(rounding_name, &mode)) {
        std::fprintf(stderr, "error: usage: engine_check MODEL.espdl --rounding half_even|half_up [--chunks N>=2]\n");
        return 2;
    }
    tool::file_bytes bytes;
    if (!tool::read_file(path, &bytes)) {
        std::fprintf(stderr, "error: %s: cannot read: %s\n", path, std::strerror(errno));
        return 2;
    }
    host::error_sink err;
    host::host_model *model = nullptr;
    if (host::open_model_bytes(bytes.data, bytes.size, mode, true, err, &model) != ESP_OK) {
        std::fprintf(stderr, "error: %s: %s\n", path, err.message());
        return 2;
    }
    size_t per_chunk = 0;
    for (uint32_t o = 0; o < model->output_count(); ++o) {
        tensor_ref ref = {};
        TOOL_MUST(model->output(o, &ref));
        per_chunk += ref.elements * dtype_size(ref.type);
    }
    std::vector<uint8_t> first(per_chunk * chunks);
    std::vector<uint8_t> again(per_chunk * chunks);
    std::vector<uint8_t> fresh(per_chunk);

    const size_t before = alloc_counter::count();
    uint8_t *at = first.data();
    for (uint32_t c = 0; c < chunks; ++c) {
        fill_inputs(*model, c);
        TOOL_MUST(model->run());
        at = save_outputs(*model, at);
    }
    TOOL_MUST(model->reset());
    at = again.data();
    for (uint32_t c = 0; c < chunks; ++c) {
        fill_inputs(*model, c);
        TOOL_MUST(model->run());
        at = save_outputs(*model, at);
    }
    TOOL_MUST(model->reset());
    fill_inputs(*model, 1);
    TOOL_MUST(model->run());
    save_outputs(*model, fresh.data());
    const size_t allocations = alloc_counter::count() - before;

    const bool restores = first == again;
    const bool state_matters = std::memcmp(fresh.data(), first.data() + per_chunk, per_chunk) != 0;
    std::printf("{\"allocations\": %lu, \"reset_restores\": %s, \"state_matters\": %s, \"chunks\": %lu}\n",
                static_cast<unsigned long>(allocations), restores ? "true" : "false", state_matters ? "true" : "false",
                static_cast<unsigned long>(chunks));
    close_model(model);
    return allocations == 0 && restores ? 0 : 1;
}
