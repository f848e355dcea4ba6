/*
 * Counts allocations, for the no-allocation checks of the host tools (engine_check, espdl_features),
 * tests/host and the glue benchmark. malloc & co. called from objects of this link are wrapped with
 * -Wl,--wrap=malloc,calloc,realloc,aligned_alloc,posix_memalign (the sanitizer's allocator still does
 * the work); operator new is replaced, the nothrow forms included.
 */
#include "alloc_counter.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<size_t> g_count{0};
}

extern "C" {
void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void *__real_aligned_alloc(size_t align, size_t size);
int __real_posix_memalign(void **p, size_t align, size_t size);

void *__wrap_malloc(size_t size)
{
    ++g_count;
    return __real_malloc(size);
}

void *__wrap_calloc(size_t n, size_t size)
{
    ++g_count;
    return __real_calloc(n, size);
}

void *__wrap_realloc(void *p, size_t size)
{
    ++g_count;
    return __real_realloc(p, size);
}

void *__wrap_aligned_alloc(size_t align, size_t size)
{
    ++g_count;
    return __real_aligned_alloc(align, size);
}

int __wrap_posix_memalign(void **p, size_t align, size_t size)
{
    ++g_count;
    return __real_posix_memalign(p, align, size);
}
}

void *operator new(size_t size)
{
    ++g_count;
    void *p = __real_malloc(size == 0 ? 1 : size);
    if (p == nullptr) {
        std::abort();
    }
    return p;
}

void *operator new[](size_t size)
{
    return operator new(size);
}

void *operator new(size_t size, const std::nothrow_t &) noexcept
{
    ++g_count;
    return __real_malloc(size == 0 ? 1 : size);
}

void *operator new[](size_t size, const std::nothrow_t &tag) noexcept
{
    return operator new(size, tag);
}

void operator delete(void *p) noexcept
{
    std::free(p);
}

void operator delete[](void *p) noexcept
{
    std::free(p);
}

void operator delete(void *p, size_t) noexcept
{
    std::free(p);
}

void operator delete[](void *p, size_t) noexcept
{
    std::free(p);
}

void operator delete(void *p, const std::nothrow_t &) noexcept
{
    std::free(p);
}

void operator delete[](void *p, const std::nothrow_t &) noexcept
{
    std::free(p);
}

size_t alloc_counter::count()
{
    return g_count.load();
}
