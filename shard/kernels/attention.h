// The hot loops of attention for one query row and one KV head shared by n_q query heads (GQA),
// over a K/V cache stored as F16 or F32 rows (one row of head_dim values per position, rows
// `stride` bytes apart). Each K/V row is loaded once for all n_q heads.
//
// Every result is computed by a fixed sequence of operations that depends only on head_dim and
// (for values) the order of positions — not on n_q, on which head a query is, or on threads —
// and the scalar, AVX2 and AVX-512 paths use the same sequence, so they agree bit for bit:
//   score  = fma(q[d], K[j][d], score) for d = 0, 1, ..., head_dim-1, starting from 0;
//   out[d] = fma(p_j, V[j][d], out[d]) for j = 0, 1, ..., n_pos-1.
// (The SIMD paths vectorise across positions / heads / elements, never along a reduction.)
#pragma once
#include <cstddef>
#include <cstdint>

#include "shard/kernels/weight_type.h"

namespace tandem {

// scores[h * n_pos + j] = dot(q + h * head_dim, K[j]) for h < n_q, j < n_pos, where K[j] is the
// row at k_base + j * k_stride_bytes. head_dim must be a multiple of 8.
void attn_scores(const float* q, int n_q, int head_dim, const void* k_base, size_t k_stride_bytes, WeightType kv_type,
                 int64_t n_pos, float* scores);

// out[h * head_dim + d] += sum_j p[h * n_pos + j] * V[j][d], V[j] at v_base + j * v_stride_bytes.
void attn_values(const float* p, int n_q, int64_t n_pos, const void* v_base, size_t v_stride_bytes, WeightType kv_type,
                 int head_dim, float* out);

// Converts n floats to the cache's element type (F16: round to nearest even; F32: copy).
void f32_to_kv(const float* src, void* dst, int64_t n, WeightType kv_type);

}  // namespace tandem
