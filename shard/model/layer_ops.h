// The small per-row operations of a LLaMA block. Each row is computed independently and in a
// fixed order, so a row's result never depends on the rest of the batch.
#pragma once
#include <cstdint>
#include <span>

#include "shard/format/arch.h"

namespace tandem {

// out = x / rms(x) * w  (rms accumulated in double)
void rms_norm(const float* x, const float* w, float* out, int n, float eps);
// Rotates pair i of the first rope_dim dimensions of each of `n_heads` heads by pos * inv_freq[i]:
// the pairs are (2i, 2i+1) for RopeStyle::Adjacent (GGUF llama layout), (i, i + rope_dim/2) for
// RopeStyle::Neox (qwen2, qwen3); dimensions past rope_dim are left alone.
void rope(float* x, int n_heads, int head_dim, int rope_dim, int pos, const float* inv_freq, RopeStyle style);
// x[r * n + i] += b[i] for every row r < rows.
void add_bias(float* x, int rows, int n, const float* b);
// a = silu(a) * b
void silu_mul(float* a, const float* b, int64_t n);
// In-place softmax of x[0..n)
void softmax(float* x, int n);

}  // namespace tandem
