// Trivial executable of the baseline project: the same standard headers as
// tests/cmake_project/check_tcn.cpp, no model.
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

int main(int argc, char **argv)
{
    std::vector<uint8_t> bytes(std::strlen(argv[0]));
    std::printf("argc=%d bytes=%zu\n", argc, bytes.size());
    return 0;
}
