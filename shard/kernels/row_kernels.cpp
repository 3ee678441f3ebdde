#include "shard/kernels/row_kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include "shard/kernels/cpu_features.h"

// glibc's vector expf (libmvec, <= 4 ulp): the softmax over a 32000-token row is the largest cost
// of sampling, and at a 2048-token context a scalar expf per attention score would cost more than
// the dot products themselves. The SSE2 variant exists on every x86-64.
extern "C" {
__m128 _ZGVbN4v_expf(__m128);
__attribute__((target("avx2"))) __m256 _ZGVdN8v_expf(__m256);
__attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512);
}

namespace tandem {

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kTiny = std::numeric_limits<float>::min();  // smallest normal float

// GCC 12 reports the intrinsics' own deliberately undefined pass-through operands as
// uninitialised; the kernels below have no uninitialised values of their own.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

enum class Isa { kScalar, kAvx2, kAvx512 };

Isa isa() {
  const CpuFeatures& f = cpu_features();
  if (f.avx512f) return Isa::kAvx512;
  if (f.avx2 && f.fma) return Isa::kAvx2;
  return Isa::kScalar;
}

__attribute__((target("avx512f"))) float row_max_avx512(const float* x, size_t n) {
  __m512 a0 = _mm512_set1_ps(-kInf), a1 = a0;
  size_t i = 0;
  // max_ps returns its second operand when either is NaN: the accumulator never becomes NaN.
  for (; i + 32 <= n; i += 32) {
    a0 = _mm512_max_ps(_mm512_loadu_ps(x + i), a0);
    a1 = _mm512_max_ps(_mm512_loadu_ps(x + i + 16), a1);
  }
  for (; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    a0 = _mm512_max_ps(_mm512_mask_loadu_ps(_mm512_set1_ps(-kInf), k, x + i), a0);
  }
  return _mm512_reduce_max_ps(_mm512_max_ps(a0, a1));
}

__attribute__((target("avx2"))) float row_max_avx2(const float* x, size_t n) {
  __m256 a0 = _mm256_set1_ps(-kInf), a1 = a0;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a0 = _mm256_max_ps(_mm256_loadu_ps(x + i), a0);
    a1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), a1);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_max_ps(a0, a1));
  float m = -kInf;
  for (float v : lanes) m = v > m ? v : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

__attribute__((target("avx512f"))) ExpSum exp_weights_avx512(const float* x, size_t n, float m,
                                                              float inv_t, float* w, int32_t* ids) {
  const __m512 vm = _mm512_set1_ps(m), vt = _mm512_set1_ps(inv_t), tiny = _mm512_set1_ps(kTiny);
  const __m512i step = _mm512_set1_epi32(16);
  __m512i vid = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  size_t zeros = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-kInf), k, x + i);
    __m512 e = _ZGVeN16v_expf(_mm512_mul_ps(_mm512_sub_ps(v, vm), vt));
    const __mmask16 pos = _mm512_cmp_ps_mask(e, tiny, _CMP_GE_OQ);  // false for NaN
    e = _mm512_maskz_mov_ps(pos, e);
    zeros += static_cast<size_t>(std::popcount(static_cast<unsigned>(k & ~pos)));
    if (w) _mm512_mask_storeu_ps(w + i, k, e);
    if (ids) _mm512_mask_storeu_epi32(ids + i, k, vid);
    vid = _mm512_add_epi32(vid, step);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
    s1 = _mm512_add_pd(
        s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(e), 1))));
  }
  return {_mm512_reduce_add_pd(_mm512_add_pd(s0, s1)), zeros};
}

__attribute__((target("avx2,fma"))) ExpSum exp_weights_avx2(const float* x, size_t n, float m,
                                                             float inv_t, float* w, int32_t* ids) {
  const __m256 vm = _mm256_set1_ps(m), vt = _mm256_set1_ps(inv_t), tiny = _mm256_set1_ps(kTiny);
  const __m256i step = _mm256_set1_epi32(8);
  __m256i vid = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  __m256d s0 = _mm256_setzero_pd(), s1 = s0;
  size_t zeros = 0, i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = _ZGVdN8v_expf(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm), vt));
    const __m256 pos = _mm256_cmp_ps(e, tiny, _CMP_GE_OQ);
    e = _mm256_and_ps(e, pos);
    zeros += static_cast<size_t>(8 - std::popcount(static_cast<unsigned>(_mm256_movemask_ps(pos))));
    if (w) _mm256_storeu_ps(w + i, e);
    if (ids) _mm256_storeu_si256(reinterpret_cast<__m256i*>(ids + i), vid);
    vid = _mm256_add_epi32(vid, step);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(e)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(e, 1)));
  }
  alignas(32) double lanes[4];
  _mm256_store_pd(lanes, _mm256_add_pd(s0, s1));
  ExpSum r{lanes[0] + lanes[1] + lanes[2] + lanes[3], zeros};
  for (; i < n; ++i) {
    float e = std::exp((x[i] - m) * inv_t);
    if (!(e >= kTiny)) {
      e = 0.0f;
      ++r.zeros;
    }
    if (w) w[i] = e;
    if (ids) ids[i] = static_cast<int32_t>(i);
    r.sum += e;
  }
  return r;
}


// First index i >= start with x[i] > t (n if none).
__attribute__((target("avx512f"))) size_t find_greater_avx512(const float* x, size_t n, size_t i,
                                                               float t) {
  const __m512 vt = _mm512_set1_ps(t);
  for (; i + 16 <= n; i += 16) {
    const __mmask16 k = _mm512_cmp_ps_mask(_mm512_loadu_ps(x + i), vt, _CMP_GT_OQ);
    if (k) return i + static_cast<size_t>(std::countr_zero(static_cast<unsigned>(k)));
  }
  for (; i < n; ++i)
    if (x[i] > t) return i;
  return n;
}

__attribute__((target("avx2"))) size_t find_greater_avx2(const float* x, size_t n, size_t i, float t) {
  const __m256 vt = _mm256_set1_ps(t);
  for (; i + 8 <= n; i += 8) {
    const int k = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + i), vt, _CMP_GT_OQ));
    if (k) return i + static_cast<size_t>(std::countr_zero(static_cast<unsigned>(k)));
  }
  for (; i < n; ++i)
    if (x[i] > t) return i;
  return n;
}

__attribute__((target("avx512f"))) double sum_avx512(const float* x, size_t n) {
  __m512d s0 = _mm512_setzero_pd(), s1 = s0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 k = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512 v = _mm512_maskz_loadu_ps(k, x + i);
    s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));
    s1 = _mm512_add_pd(
        s1, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))));
  }
  return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}


// Keeps, in place and in order, the entries ranked no later than the cut (key_c, id_c), where an
// entry's key is its weight's bit pattern (weights are >= 0): key > key_c, or key == key_c and
// id <= id_c. Compress-in-register and a full-width store: in place is safe because the write
// position never passes the block just loaded. Returns the new size.
__attribute__((target("avx512f"))) size_t keep_ranked_avx512(int32_t* ids, float* w, size_t n,
                                                              uint32_t key_c, int32_t id_c) {
  const __m512i vk = _mm512_set1_epi32(static_cast<int32_t>(key_c)), vi = _mm512_set1_epi32(id_c);
  size_t out = 0;
  for (size_t i = 0; i < n; i += 16) {
    const __mmask16 live = n - i >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << (n - i)) - 1);
    const __m512i key = _mm512_maskz_loadu_epi32(live, w + i);
    const __m512i id = _mm512_maskz_loadu_epi32(live, ids + i);
    const __mmask16 keep =
        live & (_mm512_cmpgt_epu32_mask(key, vk) |
                (_mm512_cmpeq_epi32_mask(key, vk) & _mm512_cmple_epi32_mask(id, vi)));
    const int kept = std::popcount(static_cast<unsigned>(keep));
    const auto dst = static_cast<__mmask16>((1u << kept) - 1);
    _mm512_mask_storeu_epi32(ids + out, dst, _mm512_maskz_compress_epi32(keep, id));
    _mm512_mask_storeu_epi32(w + out, dst, _mm512_maskz_compress_epi32(keep, key));
    out += static_cast<size_t>(kept);
  }
  return out;
}

// The maximum is exact whatever the order, so this equals the scalar loop (scores are finite);
// scalar, its dependency chain cost ~1 ms per token at 2048 positions.
__attribute__((target("avx512f"))) float max_avx512(const float* x, int n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), static_cast<__mmask16>((1u << (n - i)) - 1), x + i));
  return _mm512_reduce_max_ps(m);
}

__attribute__((target("avx512f"))) float exp_shifted_avx512(float* x, int n) {
  const float mx = max_avx512(x, n);
  const __m512 vm = _mm512_set1_ps(mx);
  __m512 acc = _mm512_setzero_ps();
  int i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
    _mm512_storeu_ps(x + i, e);
    acc = _mm512_add_ps(acc, e);
  }
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    const __m512 v = _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), m, x + i);
    const __m512 e = _ZGVeN16v_expf(_mm512_sub_ps(v, vm));
    _mm512_mask_storeu_ps(x + i, m, e);
    acc = _mm512_add_ps(acc, e);
  }
  return _mm512_reduce_add_ps(acc);
}

}  // namespace

float row_max(std::span<const float> x) {
  switch (isa()) {
    case Isa::kAvx512: return row_max_avx512(x.data(), x.size());
    case Isa::kAvx2: return row_max_avx2(x.data(), x.size());
    case Isa::kScalar: break;
  }
  float m = -kInf;
  for (float v : x) m = v > m ? v : m;
  return m;
}

ExpSum exp_weights(std::span<const float> x, float m, float inv_t, float* w, int32_t* ids) {
  switch (isa()) {
    case Isa::kAvx512: return exp_weights_avx512(x.data(), x.size(), m, inv_t, w, ids);
    case Isa::kAvx2: return exp_weights_avx2(x.data(), x.size(), m, inv_t, w, ids);
    case Isa::kScalar: break;
  }
  ExpSum r;
  for (size_t i = 0; i < x.size(); ++i) {
    float e = std::exp((x[i] - m) * inv_t);
    if (!(e >= kTiny)) {
      e = 0.0f;
      ++r.zeros;
    }
    if (w) w[i] = e;
    if (ids) ids[i] = static_cast<int32_t>(i);
    r.sum += e;
  }
  return r;
}

size_t find_greater(std::span<const float> x, size_t start, float t) {
  switch (isa()) {
    case Isa::kAvx512: return find_greater_avx512(x.data(), x.size(), start, t);
    case Isa::kAvx2: return find_greater_avx2(x.data(), x.size(), start, t);
    case Isa::kScalar: break;
  }
  for (size_t i = start; i < x.size(); ++i)
    if (x[i] > t) return i;
  return x.size();
}

double row_sum(std::span<const float> x) {
  if (x.size() >= 64 && isa() == Isa::kAvx512) return sum_avx512(x.data(), x.size());
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains: the adds are latency-bound otherwise
  const float* p = x.data();
  const size_t n = x.size(), n4 = n / 4 * 4;
  for (size_t i = 0; i < n4; i += 4) {
    s0 += p[i];
    s1 += p[i + 1];
    s2 += p[i + 2];
    s3 += p[i + 3];
  }
  for (size_t i = n4; i < n; ++i) s0 += p[i];
  return (s0 + s1) + (s2 + s3);
}

size_t keep_ranked(int32_t* ids, float* w, size_t n, uint32_t key_c, int32_t id_c) {
  if (isa() == Isa::kAvx512) return keep_ranked_avx512(ids, w, n, key_c, id_c);
  size_t out = 0;
  for (size_t i = 0; i < n; ++i) {
    const int32_t id = ids[i];
    const float wi = w[i];
    const uint32_t key = std::bit_cast<uint32_t>(wi);
    ids[out] = id;  // branch-free compaction: write always, advance only when kept
    w[out] = wi;
    out += (key > key_c) | ((key == key_c) & (id <= id_c));
  }
  return out;
}

float exp_shifted(float* x, int n) {
  if (__builtin_cpu_supports("avx512f")) return exp_shifted_avx512(x, n);
  float mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  const __m128 vm = _mm_set1_ps(mx);
  __m128 acc = _mm_setzero_ps();
  int i = 0;
  for (; i + 4 <= n; i += 4) {
    const __m128 e = _ZGVbN4v_expf(_mm_sub_ps(_mm_loadu_ps(x + i), vm));
    _mm_storeu_ps(x + i, e);
    acc = _mm_add_ps(acc, e);
  }
  if (i < n) {  // the tail through the same vector function, padded with -inf (exp = 0)
    alignas(16) float t[4] = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    for (int k = 0; i + k < n; ++k) t[k] = x[i + k];
    const __m128 e = _ZGVbN4v_expf(_mm_sub_ps(_mm_load_ps(t), vm));
    _mm_store_ps(t, e);
    for (int k = 0; i + k < n; ++k) x[i + k] = t[k];
    acc = _mm_add_ps(acc, e);
  }
  alignas(16) float lanes[4];
  _mm_store_ps(lanes, acc);
  return (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]);
}

#pragma GCC diagnostic pop

}  // namespace tandem
