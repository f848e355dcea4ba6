/* Heap allocation counter for the no-allocation checks (see alloc_counter.cpp: link it with the
 * -Wl,--wrap options it names). */
#pragma once

#include <cstddef>

namespace alloc_counter {

/** Allocations seen since the program started (malloc family and operator new). */
size_t count();

} // namespace alloc_counter
