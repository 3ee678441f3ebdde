// AVX2 attention kernels (for CPUs without AVX-512): the same per-result operation sequence as
// the scalar and AVX-512 paths (attention.h); scores with one lane per head, values with
// lanes along head_dim.
// No std:: templates here (see matmul_avx512.cpp).
#include <immintrin.h>

#include <cstring>

#include "shard/kernels/attention_internal.h"

namespace tandem::kern {
namespace {

#define INL inline __attribute__((always_inline))

// 8 elements at d of a cache row, zero past head_dim (head_dim is a multiple of 8).
INL __m256 load8(const uint8_t* row, int d, int head_dim, bool f16) {
  if (d >= head_dim) return _mm256_setzero_ps();
  if (f16) return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + 2 * d)));
  return _mm256_loadu_ps(reinterpret_cast<const float*>(row + 4 * d));
}

constexpr int kMaxHeadDim = 512;

// Rows this many positions ahead are prefetched: a head's history streams from DRAM at long
// context, and the loops do too little work per row for the hardware prefetchers to stay ahead
// (see attention_avx512.cpp).
constexpr int64_t kPrefetchRows = 32;

INL void prefetch_bytes(const uint8_t* p, int bytes) {
  for (int b = 0; b < bytes; b += 64) _mm_prefetch(reinterpret_cast<const char*>(p + b), _MM_HINT_T0);
}

// One lane per head (8 heads per pass, q transposed to [d][head]), four positions at a time as
// independent chains; each score is the fma chain over d of attention.h.
template <bool F16>
void scores_t(const float* q, int n_q, int head_dim, const uint8_t* k, size_t stride, int64_t n_pos, float* s) {
  alignas(32) float qt[kMaxHeadDim * 8];
  alignas(32) float kf[4][kMaxHeadDim];
  alignas(32) float out[8];
  for (int h0 = 0; h0 < n_q; h0 += 8) {
    const int nh = n_q - h0 < 8 ? n_q - h0 : 8;
    for (int d = 0; d < head_dim; ++d)
      for (int h = 0; h < 8; ++h) qt[d * 8 + h] = h < nh ? q[(h0 + h) * head_dim + d] : 0.f;
    for (int64_t j0 = 0; j0 < n_pos; j0 += 4) {
      const int np = n_pos - j0 < 4 ? static_cast<int>(n_pos - j0) : 4;
      if (j0 + kPrefetchRows + 4 <= n_pos)
        for (int p = 0; p < 4; ++p) prefetch_bytes(k + (j0 + kPrefetchRows + p) * stride, head_dim * (F16 ? 2 : 4));
      for (int p = 0; p < 4; ++p) {
        const uint8_t* row = k + (j0 + (p < np ? p : 0)) * stride;
        for (int d = 0; d < head_dim; d += 8) _mm256_store_ps(kf[p] + d, load8(row, d, head_dim, F16));
      }
      __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
      for (int d = 0; d < head_dim; ++d) {
        const __m256 qd = _mm256_load_ps(qt + d * 8);
        for (int p = 0; p < 4; ++p) acc[p] = _mm256_fmadd_ps(qd, _mm256_broadcast_ss(kf[p] + d), acc[p]);
      }
      for (int p = 0; p < np; ++p) {
        _mm256_store_ps(out, acc[p]);
        for (int h = 0; h < nh; ++h) s[(h0 + h) * n_pos + j0 + p] = out[h];
      }
    }
  }
}

// Heads of any size: the same chain, one score at a time.
void scores_long(const float* q, int n_q, int head_dim, const uint8_t* k, size_t stride, WeightType t, int64_t n_pos, float* s) {
  for (int64_t j = 0; j < n_pos; ++j)
    for (int h = 0; h < n_q; ++h) {
      const uint8_t* row = k + j * stride;
      __m128 acc = _mm_setzero_ps();
      for (int d = 0; d < head_dim; ++d) {
        float kv;
        if (t == WeightType::F16) {
          uint16_t bits;
          std::memcpy(&bits, row + 2 * d, 2);
          kv = _cvtsh_ss(bits);
        } else {
          std::memcpy(&kv, row + 4 * d, 4);
        }
        acc = _mm_fmadd_ss(_mm_set_ss(q[h * head_dim + d]), _mm_set_ss(kv), acc);
      }
      s[h * n_pos + j] = _mm_cvtss_f32(acc);
    }
}

void scores(const float* q, int n_q, int head_dim, const uint8_t* k, size_t stride, WeightType t, int64_t n_pos, float* s) {
  if (head_dim > kMaxHeadDim) return scores_long(q, n_q, head_dim, k, stride, t, n_pos, s);
  if (t == WeightType::F16)
    scores_t<true>(q, n_q, head_dim, k, stride, n_pos, s);
  else
    scores_t<false>(q, n_q, head_dim, k, stride, n_pos, s);
}

template <bool F16>
void values_t(const float* p, int n_q, int64_t n_pos, const uint8_t* v, size_t stride, int head_dim, float* out) {
  // Four heads × 16 elements per pass: 8 accumulators over all positions.
  for (int h0 = 0; h0 < n_q; h0 += 4) {
    const int nh = n_q - h0 < 4 ? n_q - h0 : 4;
    for (int d = 0; d < head_dim; d += 16) {
      const bool two = d + 8 < head_dim;
      __m256 acc[4][2];
      for (int h = 0; h < nh; ++h) {
        acc[h][0] = _mm256_loadu_ps(out + (h0 + h) * head_dim + d);
        acc[h][1] = two ? _mm256_loadu_ps(out + (h0 + h) * head_dim + d + 8) : _mm256_setzero_ps();
      }
      for (int64_t j = 0; j < n_pos; ++j) {
        if (j + kPrefetchRows < n_pos) prefetch_bytes(v + (j + kPrefetchRows) * stride + d * (F16 ? 2 : 4), 16 * (F16 ? 2 : 4));
        const __m256 v0 = load8(v + j * stride, d, head_dim, F16), v1 = load8(v + j * stride, d + 8, head_dim, F16);
        for (int h = 0; h < nh; ++h) {
          const __m256 pb = _mm256_set1_ps(p[(h0 + h) * n_pos + j]);
          acc[h][0] = _mm256_fmadd_ps(pb, v0, acc[h][0]);
          acc[h][1] = _mm256_fmadd_ps(pb, v1, acc[h][1]);
        }
      }
      for (int h = 0; h < nh; ++h) {
        _mm256_storeu_ps(out + (h0 + h) * head_dim + d, acc[h][0]);
        if (two) _mm256_storeu_ps(out + (h0 + h) * head_dim + d + 8, acc[h][1]);
      }
    }
  }
}

void values(const float* p, int n_q, int64_t n_pos, const uint8_t* v, size_t stride, WeightType t, int head_dim, float* out) {
  if (t == WeightType::F16)
    values_t<true>(p, n_q, n_pos, v, stride, head_dim, out);
  else
    values_t<false>(p, n_q, n_pos, v, stride, head_dim, out);
}

void to_kv(const float* src, void* dst, int64_t n, WeightType t) {
  if (t == WeightType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  auto* h = static_cast<uint8_t*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(h + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  for (; i < n; ++i) {  // the tail, one lane at a time (same rounding)
    const __m128i r = _mm_cvtps_ph(_mm_set_ss(src[i]), _MM_FROUND_TO_NEAREST_INT);
    const uint16_t bits = static_cast<uint16_t>(_mm_extract_epi16(r, 0));
    std::memcpy(h + 2 * i, &bits, 2);
  }
}

}  // namespace

const AttentionKernels& attention_avx2() {
  static const AttentionKernels k{"avx2", scores, values, to_kv};
  return k;
}

}  // namespace tandem::kern
