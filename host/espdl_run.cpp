/*
 * espdl_run: run a .espdl with the host engine on raw integer chunks (the protocol of
 * python/espdl_streaming/host_engine.py).
 *
 *   espdl_run MODEL.espdl --rounding half_even|half_up --in IN.bin --out OUT.bin [--chunks N]
 *   espdl_run MODEL.espdl --info
 *
 * IN.bin: N chunks; a chunk is every input in name order, its elements in the input's dtype,
 * little-endian. OUT.bin: per chunk, every output in name order, its elements in the output's dtype
 * (int8, int16, or float32 for ESP-DL's Softmax output), little-endian. Recurrent state: an input
 * `state_in_K` is fed from the previous chunk's output `state_out_K`, or the output the metadata
 * `espdl_streaming.state_output.K` names (raw integers); for the first chunk from the metadata
 * `espdl_streaming.state_initial.K` (hex of the raw little-endian integers), zeros without it
 * (python/espdl_streaming/espdl/state.py). It is not part of IN.bin; OUT.bin still holds the outputs.
 * --info prints the inputs and outputs (name, dtype, exponent, shape) and the state pairs as JSON.
 * --trace DIR writes every node output of the last chunk to DIR/<n>.bin and lists them (name,
 * dtype, exponent, shape, file) in DIR/trace.json, to find the first node that differs.
 * Exit status 0, or 2 with one line "error: ..." on stderr.
 */
#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "host_engine.hpp"
#include "tool_io.hpp"

using namespace espdl_streaming;
using host::host_model;
using host::slot;
using host::str_view;

namespace {

int fail(const char *format, ...) __attribute__((format(printf, 1, 2)));

int fail(const char *format, ...)
{
    std::fputs("error: ", stderr);
    va_list args;
    va_start(args, format);
    std::vfprintf(stderr, format, args);
    va_end(args);
    std::fputc('\n', stderr);
    return 2;
}

size_t slot_bytes(const slot &s)
{
    return static_cast<size_t>(s.count) * host::etype_size(s.type);
}

constexpr char state_in_prefix[] = "state_in_";
constexpr size_t state_in_prefix_len = sizeof(state_in_prefix) - 1;

/* The metadata value `<key_prefix>K` of state input "state_in_K", or null. */
const str_view *state_meta(const host_model &m, const slot &in, const char *key_prefix)
{
    std::string key(key_prefix);
    key.append(in.name.data + state_in_prefix_len, in.name.size - state_in_prefix_len);
    return m.metadata(key.data(), key.size());
}

/* "state_in_K" -> the index of its state output ("state_out_K", or the output the metadata names),
 * -1 if the input is not a state, -2 if the output is missing. */
int state_source(const host_model &m, const slot &in)
{
    if (in.name.size < state_in_prefix_len || std::memcmp(in.name.data, state_in_prefix, state_in_prefix_len) != 0) {
        return -1;
    }
    std::string wanted("state_out_");
    wanted.append(in.name.data + state_in_prefix_len, in.name.size - state_in_prefix_len);
    if (const str_view *named = state_meta(m, in, "espdl_streaming.state_output.")) {
        wanted.assign(named->data, named->size);
    }
    for (uint32_t o = 0; o < m.output_count(); ++o) {
        if (m.output_slot(o).name.equals(wanted.c_str())) {
            return static_cast<int>(o);
        }
    }
    return -2;
}

int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* The raw bytes state input `in` starts from: its metadata initial state, else zeros. False if the
 * metadata is not hex of exactly the input's size. */
bool initial_state(const host_model &m, const slot &in, std::vector<uint8_t> *out)
{
    out->assign(slot_bytes(in), 0);
    const str_view *text = state_meta(m, in, "espdl_streaming.state_initial.");
    if (text == nullptr) {
        return true;
    }
    if (text->size != 2 * out->size()) {
        return false;
    }
    for (size_t i = 0; i < out->size(); ++i) {
        const int hi = hex_digit(text->data[2 * i]);
        const int lo = hex_digit(text->data[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        (*out)[i] = static_cast<uint8_t>(hi * 16 + lo);
    }
    return true;
}

void print_tensor(const slot &s)
{
    std::fputs("{\"name\": ", stdout);
    tool::json_string(stdout, s.name);
    /* a float32 output (ESP-DL's Softmax) holds real values: no exponent */
    std::printf(", \"dtype\": \"%s\", \"exponent\": %s, \"shape\": [", host::etype_name(s.type),
                s.quantized ? std::to_string(s.exponent).c_str() : "null");
    for (uint8_t d = 0; d < s.shape.rank; ++d) {
        std::printf(d == 0 ? "%lld" : ", %lld", static_cast<long long>(s.shape.dims[d]));
    }
    std::fputs("]}", stdout);
}

void print_info(const host_model &m, const std::vector<int> &sources)
{
    std::fputs("{\"inputs\": [", stdout);
    for (uint32_t i = 0; i < m.input_count(); ++i) {
        std::fputs(i == 0 ? "" : ", ", stdout);
        print_tensor(m.input_slot(i));
    }
    std::fputs("], \"outputs\": [", stdout);
    for (uint32_t o = 0; o < m.output_count(); ++o) {
        std::fputs(o == 0 ? "" : ", ", stdout);
        print_tensor(m.output_slot(o));
    }
    std::fputs("], \"states\": [", stdout);
    bool first = true;
    for (uint32_t i = 0; i < m.input_count(); ++i) {
        if (sources[i] >= 0) {
            std::fputs(first ? "{\"input\": " : ", {\"input\": ", stdout);
            tool::json_string(stdout, m.input_slot(i).name);
            std::fputs(", \"output\": ", stdout);
            tool::json_string(stdout, m.output_slot(static_cast<uint32_t>(sources[i])).name);
            std::fputs("}", stdout);
            first = false;
        }
    }
    std::printf("], \"work\": %lld, \"bytes\": %lu}\n", static_cast<long long>(m.work()),
                static_cast<unsigned long>(m.bytes()));
}

bool write_trace(const host_model &m, const char *dir)
{
    std::string index_path = std::string(dir) + "/trace.json";
    std::FILE *index = std::fopen(index_path.c_str(), "w");
    if (index == nullptr) {
        return false;
    }
    std::fputs("[", index);
    uint32_t written = 0;
    for (uint32_t n = 0; n < m.node_count(); ++n) {
        const host::node_plan &plan = m.node(n);
        for (uint32_t o = 0; o < plan.out_count; ++o) {
            const slot *s = plan.out[o];
            if (s == nullptr) {
                continue;
            }
            const std::string file = std::to_string(written) + ".bin";
            if (!tool::write_file((std::string(dir) + "/" + file).c_str(), s->data, slot_bytes(*s))) {
                std::fclose(index);
                return false;
            }
            std::fputs(written == 0 ? "\n{\"name\": " : ",\n{\"name\": ", index);
            tool::json_string(index, s->name);
            std::fprintf(index, ", \"dtype\": \"%s\", \"exponent\": %s, \"shape\": [", host::etype_name(s->type),
                         s->quantized ? std::to_string(s->exponent).c_str() : "null");
            for (uint8_t d = 0; d < s->shape.rank; ++d) {
                std::fprintf(index, d == 0 ? "%lld" : ", %lld", static_cast<long long>(s->shape.dims[d]));
            }
            std::fprintf(index, "], \"file\": \"%s\"}", file.c_str());
            ++written;
        }
    }
    std::fputs("\n]\n", index);
    return std::fclose(index) == 0;
}

} // namespace

int main(int argc, char **argv)
{
    const char *model_path = nullptr;
    const char *in_path = nullptr;
    const char *out_path = nullptr;
    const char *rounding_name = nullptr;
    const char *trace_dir = nullptr;
    long chunks = -1;
    bool info = false;
    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i];
        const bool has_value = i + 1 < argc;
        if (std::strcmp(a, "--info") == 0) {
            info = true;
        } else if (std::strcmp(a, "--rounding") == 0 && has_value) {
            rounding_name = argv[++i];
        } else if (std::strcmp(a, "--in") == 0 && has_value) {
            in_path = argv[++i];
        } else if (std::strcmp(a, "--out") == 0 && has_value) {
            out_path = argv[++i];
        } else if (std::strcmp(a, "--trace") == 0 && has_value) {
            trace_dir = argv[++i];
        } else if (std::strcmp(a, "--chunks") == 0 && has_value) {
            char *end = nullptr;
            chunks = std::strtol(argv[++i], &end, 10);
            if (*end != '\0' || chunks < 0) {
                return fail("--chunks needs a non-negative integer, got '%s'", argv[i]);
            }
        } else if (a[0] != '-' && model_path == nullptr) {
            model_path = a;
        } else {
            return fail("unexpected argument '%s'; usage: espdl_run MODEL.espdl --rounding half_even|half_up "
                        "--in IN.bin --out OUT.bin [--chunks N] | espdl_run MODEL.espdl --info",
                        a);
        }
    }
    if (model_path == nullptr || (!info && (rounding_name == nullptr || in_path == nullptr || out_path == nullptr))) {
        return fail("usage: espdl_run MODEL.espdl --rounding half_even|half_up --in IN.bin --out OUT.bin "
                    "[--chunks N] | espdl_run MODEL.espdl --info");
    }
    rounding mode = rounding::half_even;
    if (rounding_name != nullptr && !tool::parse_rounding(rounding_name, &mode)) {
        return fail("--rounding must be half_even or half_up, got '%s'", rounding_name);
    }

    tool::file_bytes model_bytes;
    if (!tool::read_file(model_path, &model_bytes)) {
        return fail("%s: cannot read: %s", model_path, std::strerror(errno));
    }
    host::error_sink err;
    host_model *model = nullptr;
    if (host::open_model_bytes(model_bytes.data, model_bytes.size, mode, true, err, &model) != ESP_OK) {
        return fail("%s: %s", model_path, err.message());
    }

    std::vector<int> sources(model->input_count());
    std::vector<std::vector<uint8_t>> initial(model->input_count());
    size_t chunk_in = 0;
    size_t chunk_out = 0;
    for (uint32_t i = 0; i < model->input_count(); ++i) {
        const slot &in = model->input_slot(i);
        sources[i] = state_source(*model, in);
        if (sources[i] == -2) {
            const int len = static_cast<int>(in.name.size);
            close_model(model);
            return fail("%s: input '%.*s' has no matching output 'state_out_%.*s'", model_path, len, in.name.data,
                        len - 9, in.name.data + 9);
        }
        if (sources[i] >= 0 && !initial_state(*model, in, &initial[i])) {
            const int len = static_cast<int>(in.name.size);
            close_model(model);
            return fail("%s: the initial state of '%.*s' in the metadata is not hex of %lu bytes", model_path, len,
                        in.name.data, static_cast<unsigned long>(slot_bytes(in)));
        }
        if (sources[i] >= 0) {
            const slot &out = model->output_slot(static_cast<uint32_t>(sources[i]));
            if (out.type != in.type || out.count != in.count) {
                const int len = static_cast<int>(in.name.size);
                close_model(model);
                return fail("%s: state '%.*s' and its output differ in dtype or size", model_path, len, in.name.data);
            }
        } else {
            chunk_in += slot_bytes(in);
        }
    }
    std::vector<size_t> out_offset(model->output_count());
    for (uint32_t o = 0; o < model->output_count(); ++o) {
        out_offset[o] = chunk_out;
        chunk_out += slot_bytes(model->output_slot(o));
    }
    if (info) {
        print_info(*model, sources);
        close_model(model);
        return 0;
    }

    tool::file_bytes in_bytes;
    if (!tool::read_file(in_path, &in_bytes)) {
        close_model(model);
        return fail("%s: cannot read: %s", in_path, std::strerror(errno));
    }
    if (chunks < 0) {
        if (chunk_in == 0 || in_bytes.size % chunk_in != 0) {
            close_model(model);
            return fail("%s: %lu bytes are not a whole number of %lu-byte chunks (pass --chunks)", in_path,
                        static_cast<unsigned long>(in_bytes.size), static_cast<unsigned long>(chunk_in));
        }
        chunks = static_cast<long>(in_bytes.size / chunk_in);
    } else if (in_bytes.size != static_cast<size_t>(chunks) * chunk_in) {
        close_model(model);
        return fail("%s: holds %lu bytes, %ld chunks of %lu bytes need %lu", in_path,
                    static_cast<unsigned long>(in_bytes.size), chunks, static_cast<unsigned long>(chunk_in),
                    static_cast<unsigned long>(static_cast<size_t>(chunks) * chunk_in));
    }

    std::vector<uint8_t> out_bytes(static_cast<size_t>(chunks) * chunk_out);
    const uint8_t *src = in_bytes.data;
    uint8_t *dst = out_bytes.data();
    for (long c = 0; c < chunks; ++c) {
        for (uint32_t i = 0; i < model->input_count(); ++i) {
            tensor_ref ref = {};
            TOOL_MUST(model->input(i, &ref));
            const size_t bytes = slot_bytes(model->input_slot(i));
            if (sources[i] < 0) {
                std::memcpy(ref.data, src, bytes);
                src += bytes;
            } else if (c == 0) {
                std::memcpy(ref.data, initial[i].data(), bytes);
            } else {
                /* raw integers of the previous chunk's state_out_K */
                std::memcpy(ref.data, dst - chunk_out + out_offset[static_cast<size_t>(sources[i])], bytes);
            }
        }
        TOOL_MUST(model->run());
        for (uint32_t o = 0; o < model->output_count(); ++o) {
            const slot &out = model->output_slot(o);
            std::memcpy(dst, out.data, slot_bytes(out));
            dst += slot_bytes(out);
        }
    }
    if (trace_dir != nullptr && !write_trace(*model, trace_dir)) {
        close_model(model);
        return fail("%s: cannot write the trace: %s", trace_dir, std::strerror(errno));
    }
    close_model(model);
    if (!tool::write_file(out_path, out_bytes.data(), out_bytes.size())) {
        return fail("%s: cannot write: %s", out_path, std::strerror(errno));
    }
    return 0;
}
