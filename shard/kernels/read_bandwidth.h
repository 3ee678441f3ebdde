// The machine's memory read bandwidth, measured in the same run as the kernels it is compared
// with (the machine is shared and its speed drifts), for roofline percentages.
#pragma once
#include <cstddef>

#include "shard/kernels/thread_pool.h"

namespace tandem {

// Sums a `bytes`-long buffer with wide loads, every pool thread its own contiguous slice, `reps`
// times; returns the median rate in GB/s (1e9 bytes per second).
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = size_t{512} << 20, int reps = 5);

}  // namespace tandem
