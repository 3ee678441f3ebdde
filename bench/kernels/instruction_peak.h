// The core's peak multiply-add rates, measured: what a compute-bound GEMM is compared with.
// Each probe (best of five) runs independent chains of the instruction sequence the kernels of that level use
// for one exact integer (or float) dot product, long enough to hide latency, on the calling thread.
#pragma once
#include <string>

namespace tandem::bench {

struct PeakRate {
  std::string sequence;  // what was timed, e.g. "vpdpbusd zmm"
  double gmacs = 0;      // multiply-adds per second / 1e9, one thread
};

// int8 × int8 → int32 at the dispatched kernel level ("avx512-vnni": vpdpbusd; "avx2": vpmaddubsw
// + vpmaddwd + vpaddd). Zero rate on the scalar level.
PeakRate int8_peak();
// f32 FMA (vfmadd231ps at the widest vector width of the level).
PeakRate fma_peak();

}  // namespace tandem::bench
