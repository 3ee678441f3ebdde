// Passes over one row of floats (a vocabulary of logits, a row of attention scores): the SIMD
// part of sampling and of the attention softmax. Each runs as AVX-512 or AVX2 where the CPU has
// it (cpu_features(), capped by $TANDEM_KERNELS), else scalar; NaN entries are ignored everywhere
// (they never win a max and get weight 0). Results are the same at every level except where noted.
#pragma once
#include <cstddef>
#include <cstdint>
#include <span>

namespace tandem {

// max(x), -inf for an empty or all-NaN row.
float row_max(std::span<const float> x);

// w[i] = exp((x[i] - m) * inv_t), ids[i] = i when given (either may be null); returns the sum
// (double) and counts the zero weights (so the caller compacts only when there are any). Weights
// below FLT_MIN (a token more than ~87 nats below the best at temperature 1) and NaN become 0:
// such a weight, once normalised, could round to a probability of exactly 0 and break the
// support's meaning. w may alias x.
struct ExpSum {
  double sum = 0;
  size_t zeros = 0;
};
ExpSum exp_weights(std::span<const float> x, float m, float inv_t, float* w, int32_t* ids);

// First index i >= start with x[i] > t (x.size() if none).
size_t find_greater(std::span<const float> x, size_t start, float t);

// Sum in double. The AVX-512 path (rows of 64 or more) adds in another order than the scalar one.
double row_sum(std::span<const float> x);

// Keeps, in place and in order, the entries (ids[i], w[i]) ranked no later than the cut
// (key_c, id_c), where an entry's key is its weight's bit pattern (weights are >= 0): key > key_c,
// or key == key_c and id <= id_c. Returns the new size.
size_t keep_ranked(int32_t* ids, float* w, size_t n, uint32_t key_c, int32_t id_c);

// x[i] = exp(x[i] - max(x)) in place; returns the sum. The attention softmax without its
// normalisation (the caller divides the weighted values instead of every probability). The
// widest vector expf the CPU has is used, so results may differ by an ulp between CPUs with and
// without AVX-512; on one machine they are fixed, whatever the batch or threads.
float exp_shifted(float* x, int n);

}  // namespace tandem
