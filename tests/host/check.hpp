/* A tiny test harness: CHECK() counts, finish() prints "N passed, N failed". */
#pragma once

#include <cstdio>

namespace check {

inline int &passed()
{
    static int n = 0;
    return n;
}

inline int &failed()
{
    static int n = 0;
    return n;
}

inline bool record(bool ok, const char *expr, const char *file, int line)
{
    if (ok) {
        ++passed();
    } else {
        ++failed();
        std::printf("FAIL %s:%d: %s\n", file, line, expr);
    }
    return ok;
}

inline int finish()
{
    std::printf("%d passed, %d failed\n", passed(), failed());
    return failed() == 0 ? 0 : 1;
}

} // namespace check

#define CHECK(cond) check::record(static_cast<bool>(cond), #cond, __FILE__, __LINE__)
#define CHECK_EQ(a, b) check::record((a) == (b), #a " == " #b, __FILE__, __LINE__)
