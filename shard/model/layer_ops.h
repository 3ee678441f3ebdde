// The small per-row operations of a LLaMA block. Each row is computed independently and in a
// fixed order, so a row's result never depends on the rest of the batch.
#pragma once
#include <cstdint>
#include <span>

namespace tandem {

// out = x / rms(x) * w  (rms accumulated in double)
void rms_norm(const float* x, const float* w, float* out, int n, float eps);
// Rotates adjacent pairs (x[2i], x[2i+1]) of each of `n_heads` heads (GGUF llama layout) by
// pos * inv_freq[i], for the first rope_dim dimensions of each head.
void rope(float* x, int n_heads, int head_dim, int rope_dim, int pos, const float* inv_freq);
// a = silu(a) * b
void silu_mul(float* a, const float* b, int64_t n);
// In-place softmax of x[0..n)
void softmax(float* x, int n);

}  // namespace tandem
