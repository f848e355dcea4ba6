/* Heap allocation counter for the no-allocation tests (see alloc_counter.cpp). */
#pragma once

#include <cstddef>

namespace alloc_counter {

/** Allocations seen since the program started (malloc family and operator new). */
size_t count();

} // namespace alloc_counter
