// Checks what the CMake core linked into this executable for the model "tcn":
//   - espdl_streaming_tcn_espdl is 16-byte aligned, starts with "EDL2" and spans exactly the
//     bytes of the .espdl file named on the command line (up to espdl_streaming_tcn_espdl_end);
//   - prints the generated class's constants, which the test compares with tcn.report.json.
// Exit status 0 when every check passed.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "tcn.hpp"

extern "C" const uint8_t espdl_streaming_tcn_espdl[];
extern "C" const uint8_t espdl_streaming_tcn_espdl_end[];

namespace {

int failures = 0;

void check(bool ok, const char *what)
{
    std::printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) {
        ++failures;
    }
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc != 2) {
        std::fprintf(stderr, "usage: %s <path of tcn.espdl>\n", argv[0]);
        return 2;
    }
    std::FILE *f = std::fopen(argv[1], "rb");
    if (f == nullptr) {
        std::fprintf(stderr, "cannot open %s\n", argv[1]);
        return 2;
    }
    std::vector<uint8_t> file;
    uint8_t buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        file.insert(file.end(), buf, buf + n);
    }
    std::fclose(f);

    const uint8_t *data = espdl_streaming_tcn_espdl;
    const size_t size = static_cast<size_t>(espdl_streaming_tcn_espdl_end - espdl_streaming_tcn_espdl);
    check(reinterpret_cast<uintptr_t>(data) % 16 == 0, "model bytes 16-byte aligned");
    check(size >= 4 && std::memcmp(data, "EDL2", 4) == 0, "model bytes start with EDL2");
    check(size == file.size(), "embedded size equals the .espdl file size");
    check(size == file.size() && std::memcmp(data, file.data(), size) == 0, "embedded bytes equal the .espdl file");

    using model = espdl_streaming::models::tcn;
    std::printf("embedded_bytes=%zu\n", size);
    std::printf("chunk_frames=%zu\n", static_cast<size_t>(model::chunk_frames));
    std::printf("feature_dim=%zu\n", static_cast<size_t>(model::feature_dim));
    std::printf("output_count=%zu\n", static_cast<size_t>(model::output_count));
    std::printf("espdl_bytes=%zu\n", static_cast<size_t>(model::espdl_bytes));
    check(model::espdl_bytes == size, "tcn::espdl_bytes equals the embedded size");
    return failures == 0 ? 0 : 1;
}
