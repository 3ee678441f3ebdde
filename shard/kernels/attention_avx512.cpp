// AVX-512 attention kernels. Scores: one lane per position (blocks of 16 K rows transposed in
// registers), up to 8 heads per pass, each score an fma chain over head_dim in order.
// Values: lanes along head_dim, one fma per (head, element) per position, positions in order.
// No std:: templates here (see matmul_avx512.cpp).
#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "shard/kernels/attention_internal.h"

// GCC 12 flags its own intrinsic headers (the _mm*_undefined_* idiom) under -Wmaybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace tandem::kern {
namespace {

#define INL inline __attribute__((always_inline))
// Fully unroll the small loops over tile rows / groups / chunks so that GCC keeps the
// accumulator arrays in registers (otherwise it stores them to the stack on every iteration).
#define UNROLL _Pragma("GCC unroll 16")

// Chunk c (16 elements) of a cache row, zero past head_dim.
INL __m512 load_chunk(const uint8_t* row, int c, __mmask16 m, bool f16) {
  if (f16) return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, row + 32 * c));
  return _mm512_maskz_loadu_ps(m, row + 64 * c);
}

// K/V rows of one head are `stride` bytes apart (all KV heads of a position are stored together),
// a strided stream the hardware prefetchers follow poorly: without help a 2048-position layer ran
// at ~4 GB/s from DRAM, latency-bound. So the loops prefetch the rows they will need this many
// positions ahead (~2 µs of work at 2048 positions: enough to cover a DRAM round trip).
constexpr int64_t kPrefetchRows = 32;

INL void prefetch_row(const uint8_t* row, int bytes) {
  for (int b = 0; b < bytes; b += 64) _mm_prefetch(reinterpret_cast<const char*>(row + b), _MM_HINT_T0);
}

INL __mmask16 chunk_mask(int head_dim, int c) { return head_dim - 16 * c >= 16 ? __mmask16(0xFFFF) : __mmask16(0x00FF); }

// In-register transpose of a 16×16 matrix of 32-bit elements (row j of the input becomes
// column j of the output).
INL void transpose16(__m512i (&r)[16]) {
  __m512i t[16];
  UNROLL for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  UNROLL for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  UNROLL for (int i = 0; i < 16; i += 8)
    UNROLL for (int k = 0; k < 4; ++k) {
      t[i + k] = _mm512_shuffle_i32x4(r[i + k], r[i + k + 4], 0x88);
      t[i + k + 4] = _mm512_shuffle_i32x4(r[i + k], r[i + k + 4], 0xDD);
    }
  UNROLL for (int k = 0; k < 8; ++k) {
    r[k] = _mm512_shuffle_i32x4(t[k], t[k + 8], 0x88);
    r[k + 8] = _mm512_shuffle_i32x4(t[k], t[k + 8], 0xDD);
  }
}

// H heads (q rows head_dim apart) × blocks of 16 positions, one lane per position: the 16 K rows
// of a block are transposed in registers, 64 bytes at a time (32 f16 / 16 f32 elements), so every
// element of K is converted once and then feeds H fmas whose q factor is a broadcast operand.
// DIM > 0: head_dim == DIM (a multiple of the chunk), unmasked; DIM == 0: any multiple of 8.
template <int H, bool F16, int DIM>
void scores_heads(const float* q, int head_dim, const uint8_t* k, size_t stride, int64_t n_pos, float* scores) {
  constexpr int kPerChunk = F16 ? 32 : 16;  // elements per 64-byte chunk of a row
  if constexpr (DIM > 0) head_dim = DIM;
  const int row_bytes = head_dim * (F16 ? 2 : 4);
  for (int64_t j0 = 0; j0 < n_pos; j0 += 16) {
    const int n16 = n_pos - j0 < 16 ? static_cast<int>(n_pos - j0) : 16;
    if (j0 + kPrefetchRows + 16 <= n_pos)
      UNROLL for (int j = 0; j < 16; ++j) prefetch_row(k + (j0 + kPrefetchRows + j) * stride, row_bytes);
    __m512 acc[H];
    UNROLL for (int h = 0; h < H; ++h) acc[h] = _mm512_setzero_ps();
    for (int d0 = 0; d0 < head_dim; d0 += kPerChunk) {
      const int nd = DIM > 0 || head_dim - d0 >= kPerChunk ? kPerChunk : head_dim - d0;  // a multiple of 8
      const __mmask16 m = nd == kPerChunk ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << (nd * (F16 ? 2 : 4) / 4)) - 1);
      __m512i r[16];
      // Past the last position, reuse a valid row; those lanes are not stored.
      if (DIM > 0 && n16 == 16) {
        UNROLL for (int j = 0; j < 16; ++j) r[j] = _mm512_loadu_si512(k + (j0 + j) * stride + (F16 ? 2 : 4) * d0);
      } else {
        UNROLL for (int j = 0; j < 16; ++j)
          r[j] = _mm512_maskz_loadu_epi32(m, k + (j0 + (j < n16 ? j : 0)) * stride + (F16 ? 2 : 4) * d0);
      }
      transpose16(r);
      if constexpr (F16) {
        UNROLL for (int c = 0; c < 16; ++c) {
          if (2 * c >= nd) break;
          const int d = d0 + 2 * c;
          const __m512 lo = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(r[c]));
          const __m512 hi = _mm512_cvtph_ps(_mm512_cvtepi32_epi16(_mm512_srli_epi32(r[c], 16)));
          UNROLL for (int h = 0; h < H; ++h) acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * head_dim + d]), lo, acc[h]);
          UNROLL for (int h = 0; h < H; ++h) acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * head_dim + d + 1]), hi, acc[h]);
        }
      } else {
        UNROLL for (int c = 0; c < 16; ++c) {
          if (c >= nd) break;
          const __m512 kc = _mm512_castsi512_ps(r[c]);
          UNROLL for (int h = 0; h < H; ++h) acc[h] = _mm512_fmadd_ps(_mm512_set1_ps(q[h * head_dim + d0 + c]), kc, acc[h]);
        }
      }
    }
    const __mmask16 valid = static_cast<__mmask16>((1u << n16) - 1);
    UNROLL for (int h = 0; h < H; ++h) _mm512_mask_storeu_ps(scores + h * n_pos + j0, valid, acc[h]);
  }
}

template <int H, bool F16>
void scores_dim(const float* q, int head_dim, const uint8_t* k, size_t stride, int64_t n_pos, float* scores) {
  if (head_dim == 64)
    scores_heads<H, F16, 64>(q, head_dim, k, stride, n_pos, scores);
  else if (head_dim == 128)
    scores_heads<H, F16, 128>(q, head_dim, k, stride, n_pos, scores);
  else
    scores_heads<H, F16, 0>(q, head_dim, k, stride, n_pos, scores);
}

template <bool F16>
void scores_t(const float* q, int n_q, int head_dim, const uint8_t* k, size_t stride, int64_t n_pos, float* scores) {
  int h = 0;
  for (; h + 8 <= n_q; h += 8) scores_dim<8, F16>(q + h * head_dim, head_dim, k, stride, n_pos, scores + h * n_pos);
  auto rest = [&](auto hc) {
    constexpr int H = decltype(hc)::value;
    scores_dim<H, F16>(q + h * head_dim, head_dim, k, stride, n_pos, scores + h * n_pos);
  };
  switch (n_q - h) {
    case 1: rest(std::integral_constant<int, 1>{}); break;
    case 2: rest(std::integral_constant<int, 2>{}); break;
    case 3: rest(std::integral_constant<int, 3>{}); break;
    case 4: rest(std::integral_constant<int, 4>{}); break;
    case 5: rest(std::integral_constant<int, 5>{}); break;
    case 6: rest(std::integral_constant<int, 6>{}); break;
    case 7: rest(std::integral_constant<int, 7>{}); break;
    default: break;
  }
}

void scores(const float* q, int n_q, int head_dim, const uint8_t* k, size_t stride, WeightType t, int64_t n_pos, float* s) {
  if (t == WeightType::F16)
    scores_t<true>(q, n_q, head_dim, k, stride, n_pos, s);
  else
    scores_t<false>(q, n_q, head_dim, k, stride, n_pos, s);
}

// HT heads × CT chunks of 16 elements starting at chunk c0; accumulators stay in registers over
// all positions.
template <int HT, int CT, bool F16>
void values_tile(const float* p, int64_t n_pos, const uint8_t* v, size_t stride, int head_dim, int c0, float* out) {
  __m512 acc[HT][CT];
  __mmask16 m[CT];
  UNROLL for (int c = 0; c < CT; ++c) m[c] = chunk_mask(head_dim, c0 + c);
  UNROLL for (int h = 0; h < HT; ++h)
    UNROLL for (int c = 0; c < CT; ++c) acc[h][c] = _mm512_maskz_loadu_ps(m[c], out + h * head_dim + 16 * (c0 + c));
  const int tile_bytes = 16 * CT * (F16 ? 2 : 4);
  const int64_t pre_end = n_pos - kPrefetchRows;
  for (int64_t j = 0; j < n_pos; ++j) {
    if (j < pre_end) prefetch_row(v + (j + kPrefetchRows) * stride + 16 * c0 * (F16 ? 2 : 4), tile_bytes);
    __m512 vc[CT];
    UNROLL for (int c = 0; c < CT; ++c) vc[c] = load_chunk(v + j * stride, c0 + c, m[c], F16);
    UNROLL for (int h = 0; h < HT; ++h) {
      const __m512 pb = _mm512_set1_ps(p[h * n_pos + j]);
      UNROLL for (int c = 0; c < CT; ++c) acc[h][c] = _mm512_fmadd_ps(pb, vc[c], acc[h][c]);
    }
  }
  UNROLL for (int h = 0; h < HT; ++h)
    UNROLL for (int c = 0; c < CT; ++c) _mm512_mask_storeu_ps(out + h * head_dim + 16 * (c0 + c), m[c], acc[h][c]);
}

template <int HT, int CT, bool F16>
void values_heads(const float* p, int64_t n_pos, const uint8_t* v, size_t stride, int head_dim, float* out) {
  const int nc = (head_dim + 15) / 16;
  int c = 0;
  for (; c + CT <= nc; c += CT) values_tile<HT, CT, F16>(p, n_pos, v, stride, head_dim, c, out);
  for (; c < nc; ++c) values_tile<HT, 1, F16>(p, n_pos, v, stride, head_dim, c, out);
}

template <bool F16>
void values_t(const float* p, int n_q, int64_t n_pos, const uint8_t* v, size_t stride, int head_dim, float* out) {
  int h = 0;
  auto at = [&](int hh) { return p + hh * n_pos; };
  for (; h + 8 <= n_q; h += 8) values_heads<8, 2, F16>(at(h), n_pos, v, stride, head_dim, out + h * head_dim);
  if (h + 4 <= n_q) values_heads<4, 4, F16>(at(h), n_pos, v, stride, head_dim, out + h * head_dim), h += 4;
  if (h + 2 <= n_q) values_heads<2, 4, F16>(at(h), n_pos, v, stride, head_dim, out + h * head_dim), h += 2;
  if (h < n_q) values_heads<1, 8, F16>(at(h), n_pos, v, stride, head_dim, out + h * head_dim);
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
  for (; i + 16 <= n; i += 16)
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(h + 2 * i), _mm512_cvtps_ph(_mm512_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  if (i < n) {
    const __mmask16 m = static_cast<__mmask16>((1u << (n - i)) - 1);
    _mm256_mask_storeu_epi16(h + 2 * i, m, _mm512_cvtps_ph(_mm512_maskz_loadu_ps(m, src + i), _MM_FROUND_TO_NEAREST_INT));
  }
}

}  // namespace

const AttentionKernels& attention_avx512() {
  static const AttentionKernels k{"avx512", scores, values, to_kv};
  return k;
}

}  // namespace tandem::kern
