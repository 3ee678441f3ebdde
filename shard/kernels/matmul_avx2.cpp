// AVX2 + FMA kernels over the same packed layout: a 16-row group is processed as two halves of
// 8 rows (one ymm lane per row). Integer block sums are exact and the float operations per
// element match matmul_internal.h, so results equal the AVX-512 and scalar levels bit for bit.
// No std:: templates here (see matmul_avx512.cpp).
#include <immintrin.h>

// GCC 12 flags its own intrinsic headers (the _mm*_undefined_* idiom) under -Wmaybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstring>
#include <type_traits>

#include "shard/kernels/matmul_internal.h"

namespace tandem::kern {
namespace {

#define INL inline __attribute__((always_inline))
// Fully unroll the small loops over tile rows / groups / chunks so that GCC keeps the
// accumulator arrays in registers (otherwise it stores them to the stack on every iteration).
#define UNROLL _Pragma("GCC unroll 16")

INL int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
INL int64_t load_i64(const void* p) {
  int64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
INL __m256 half8(const uint8_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
INL __m256i load32(const uint8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }
INL __m256i bcast_quad(const int8_t* p) { return _mm256_set1_epi32(load_i32(p)); }

// Σ over each 4-byte lane of w (unsigned, ≤ 63) × x (signed): no int16 saturation is possible.
INL __m256i dp_u8(__m256i acc, __m256i w, __m256i x) {
  return _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1)));
}

// s + a + b in int16 (s ignored when `first`), kept in one register: the empty asm stops GCC from
// re-associating the sums of a block into a tree whose partial sums spill to the stack.
INL __m256i acc16(__m256i s, bool first, __m256i a, __m256i b) {
  s = first ? a : _mm256_add_epi16(s, a);
  s = _mm256_add_epi16(s, b);
  asm("" : "+x"(s));
  return s;
}

INL float hmax8(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_shuffle_ps(m, m, 1));
  return _mm_cvtss_f32(m);
}
INL int32_t hsum8(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}

// ---- activations ---------------------------------------------------------------------------------

void quantize(WeightType t, const float* x, int64_t cols, int8_t* q, float* d, int32_t* aux) {
  const int64_t bc = block_cols(t);
  const int aw = aux_words(t);
  const __m256 sign = _mm256_set1_ps(-0.f);
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  for (int64_t b = 0; b < cols / bc; ++b) {
    const float* xb = x + b * bc;
    int8_t* qb = q + b * bc;
    __m256 m = _mm256_setzero_ps();
    for (int64_t i = 0; i < bc; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(xb + i)));
    const float amax = hmax8(m);
    const float id = amax != 0 ? 127.f / amax : 0.f;
    d[b] = amax / 127.f;
    const __m256 vid = _mm256_set1_ps(id);
    int32_t sums16[16];
    for (int64_t i = 0; i < bc; i += 16) {
      __m256i v0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i), vid));
      __m256i v1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(xb + i + 8), vid));
      v0 = _mm256_max_epi32(_mm256_min_epi32(v0, hi), lo);
      v1 = _mm256_max_epi32(_mm256_min_epi32(v1, hi), lo);
      sums16[i / 16] = hsum8(_mm256_add_epi32(v0, v1));
      // packs interleaves 128-bit lanes: [v0 lo, v1 lo, v0 hi, v1 hi] -> fix the order after.
      const __m256i w16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(v0, v1), 0xD8);
      const __m128i b8 = _mm_packs_epi16(_mm256_castsi256_si128(w16), _mm256_extracti128_si256(w16, 1));
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + i), b8);
    }
    block_aux(t, sums16, aux + b * aw);
  }
}

// ---- tiles over half groups --------------------------------------------------------------------

struct Tile {
  const GemmArgs& a;
  int64_t h, xr;      // first half group (8 rows), first activation row
  bool first = true;  // the first tile over these weights: it streams them from memory
};

template <int H, int R>
struct Ptrs {
  const uint8_t* w[H];  // group base of each half
  int part[H];          // 0 or 1: which 8 rows of the group
  const int8_t* q[R];
  const float* d[R];
  const int32_t* aux[R];
  Ptrs(const Tile& t) {
    const auto& a = t.a;
    const size_t gb = group_bytes(a.type, a.cols);
    UNROLL for (int hi = 0; hi < H; ++hi) {
      w[hi] = a.w + (is_quantized(a.type) ? ((t.h + hi) / 2) * gb : float_group_offset(a.type, (t.h + hi) / 2, a.cols));
      part[hi] = static_cast<int>((t.h + hi) % 2);
    }
    if (!is_quantized(a.type)) return;
    const int64_t nb = a.cols / block_cols(a.type);
    const int aw = aux_words(a.type);
    UNROLL for (int r = 0; r < R; ++r) {
      q[r] = a.act.q + (t.xr + r) * a.cols;
      d[r] = a.act.d + (t.xr + r) * nb;
      aux[r] = a.act.aux + (t.xr + r) * nb * aw;
    }
  }
};

// Software prefetch of the weight bytes kPrefetchAhead past a block, as in matmul_avx512.cpp, but
// here in every tile that streams a group's weights (the first over it, and there only half 0: the
// two halves of a group share every cache line), the one-row GEMV included: on a Zen 3 core
// (5632×2048, 1 thread) it took the Q4_0 / Q4_K / Q8_0 GEMV from 444–532 / 500–553 / 934–1042 µs
// to 376–395 / 470–495 / 744–1014 µs, and 2 KiB ahead was best for 8 rows (1 and 4 KiB slower).
constexpr int kPrefetchAhead = 2048;
template <int H, int R>
INL void prefetch_w(const Tile& t, const Ptrs<H, R>& p, size_t off, int bytes) {
  if (t.first)
    UNROLL for (int hi = 0; hi < H; ++hi)
      if (p.part[hi] == 0)
        for (int o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p.w[hi] + off + kPrefetchAhead + o), _MM_HINT_T0);
}

template <int H, int R>
INL void store(const Tile& t, __m256 (&acc)[H][R]) {
  UNROLL for (int hi = 0; hi < H; ++hi) {
    const int64_t row0 = (t.h + hi) * 8;
    const int64_t valid = t.a.rows - row0;
    UNROLL for (int r = 0; r < R; ++r) {
      float* y = t.a.y + (t.xr + r) * t.a.ldy + row0;
      if (valid >= 8) {
        _mm256_storeu_ps(y, acc[hi][r]);
      } else if (valid > 0) {
        const __m256i mask = _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(valid)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        _mm256_maskstore_ps(y, mask, acc[hi][r]);
      }
    }
  }
}

template <int H, int R>
INL void scale_acc(__m256 (&acc)[H][R], const __m256i (&ia)[H][R], const __m256 (&ws)[H], const float* const (&xd)[R], int64_t b) {
  UNROLL for (int r = 0; r < R; ++r) {
    const __m256 dx = _mm256_set1_ps(xd[r][b]);
    UNROLL for (int hi = 0; hi < H; ++hi) acc[hi][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(ia[hi][r]), _mm256_mul_ps(ws[hi], dx), acc[hi][r]);
  }
}

template <int H, int R>
INL void zero(__m256 (&acc)[H][R]) {
  UNROLL for (auto& row : acc)
    UNROLL for (auto& v : row) v = _mm256_setzero_ps();
}

template <int H, int R>
void tile_q8_0(const Tile& t) {
  const Ptrs<H, R> p(t);
  const int64_t nb = t.a.cols / 32;
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80)), ones = _mm256_set1_epi16(1);
  __m256 acc[H][R];
  zero(acc);
  for (int64_t b = 0; b < nb; ++b) {
    prefetch_w<H, R>(t, p, b * 544, 544);
    // Weights are stored as q + 128; flip back to signed and use |w| · sign(x, w), whose int16
    // pair sums stay below 2·128·127 (maddubs saturates beyond 32767).
    __m256i ia[H][R];
    UNROLL for (int hi = 0; hi < H; ++hi)
      UNROLL for (int r = 0; r < R; ++r) ia[hi][r] = _mm256_setzero_si256();
    UNROLL for (int c = 0; c < 8; ++c) {
      __m256i ws[H], wa[H];
      UNROLL for (int hi = 0; hi < H; ++hi) {
        ws[hi] = _mm256_xor_si256(load32(p.w[hi] + b * 544 + 32 + 64 * c + 32 * p.part[hi]), flip);
        wa[hi] = _mm256_abs_epi8(ws[hi]);
      }
      UNROLL for (int r = 0; r < R; ++r) {
        const __m256i xv = bcast_quad(p.q[r] + b * 32 + 4 * c);
        UNROLL for (int hi = 0; hi < H; ++hi)
          ia[hi][r] = _mm256_add_epi32(ia[hi][r], _mm256_madd_epi16(_mm256_maddubs_epi16(wa[hi], _mm256_sign_epi8(xv, ws[hi])), ones));
      }
    }
    __m256 sc[H];
    UNROLL for (int hi = 0; hi < H; ++hi) sc[hi] = half8(p.w[hi] + b * 544 + 16 * p.part[hi]);
    scale_acc<H, R>(acc, ia, sc, p.d, b);
  }
  store<H, R>(t, acc);
}

template <int H, int R>
void tile_q4_0(const Tile& t) {
  const Ptrs<H, R> p(t);
  const int64_t nb = t.a.cols / 32;
  const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1);
  __m256 acc[H][R];
  zero(acc);
  for (int64_t b = 0; b < nb; ++b) {
    prefetch_w<H, R>(t, p, b * 288, 288);
    // The eight maddubs of a block are added in int16 and widened once: each lane pair is at most
    // 2·15·127 = 3810 in magnitude, eight of them 30480 < 2^15, so the sum stays exact.
    __m256i s16[H][R];
    UNROLL for (int c = 0; c < 4; ++c) {
      __m256i wl[H], wh[H];
      UNROLL for (int hi = 0; hi < H; ++hi) {
        const __m256i raw = load32(p.w[hi] + b * 288 + 32 + 64 * c + 32 * p.part[hi]);
        wl[hi] = _mm256_and_si256(raw, m4);
        wh[hi] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
      }
      UNROLL for (int r = 0; r < R; ++r) {
        const __m256i x0 = bcast_quad(p.q[r] + b * 32 + 8 * c), x1 = bcast_quad(p.q[r] + b * 32 + 8 * c + 4);
        UNROLL for (int hi = 0; hi < H; ++hi) {
          s16[hi][r] = acc16(s16[hi][r], c == 0, _mm256_maddubs_epi16(wl[hi], x0), _mm256_maddubs_epi16(wh[hi], x1));
        }
      }
    }
    __m256i ia[H][R];
    UNROLL for (int r = 0; r < R; ++r) {
      const __m256i c = _mm256_set1_epi32(p.aux[r][b]);
      UNROLL for (int hi = 0; hi < H; ++hi) ia[hi][r] = _mm256_add_epi32(c, _mm256_madd_epi16(s16[hi][r], ones));
    }
    __m256 sc[H];
    UNROLL for (int hi = 0; hi < H; ++hi) sc[hi] = half8(p.w[hi] + b * 288 + 16 * p.part[hi]);
    scale_acc<H, R>(acc, ia, sc, p.d, b);
  }
  store<H, R>(t, acc);
}

// Bit `pos` (0..7) of every byte moved to bit 4 (the other bits are garbage, masked by the
// caller). 16-bit shifts by at most 4 take bit 4 of each byte from the same byte.
INL __m256i bit_to_4(__m256i h, int pos) {
  return pos < 4 ? _mm256_slli_epi16(h, 4 - pos) : pos == 4 ? h : _mm256_srli_epi16(h, pos - 4);
}

// The 5-bit quants of nibble chunk c (0..3) of a 32-column unit: low / high nibbles with bits
// 2c / 2c+1 of the fifth-bit chunk `h` as bit 4.
INL void q5_chunk(__m256i raw, __m256i h, int c, __m256i& wl, __m256i& wh) {
  const __m256i m4 = _mm256_set1_epi8(0x0F), m16 = _mm256_set1_epi8(0x10);
  wl = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_and_si256(bit_to_4(h, 2 * c), m16));
  wh = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), _mm256_and_si256(bit_to_4(h, 2 * c + 1), m16));
}

// Σ over each 4-byte lane of two nibble chunks (c, c+1) of 5-bit weights × x: the four maddubs
// are added in int16 before widening, exact because each is at most 2·31·127 in magnitude and
// four of them stay below 2^15.
template <int H, int R>
INL void q5_chunk_pair(__m256i (&ia)[H][R], const uint8_t* const (&w)[H], const uint8_t* const (&hb)[H],
                       const int8_t* const (&xq)[R], int c0) {
  __m256i s16[H][R];
  UNROLL for (int hi = 0; hi < H; ++hi)
    UNROLL for (int r = 0; r < R; ++r) s16[hi][r] = _mm256_setzero_si256();
  UNROLL for (int c = c0; c < c0 + 2; ++c) {
    __m256i wl[H], wh[H];
    UNROLL for (int hi = 0; hi < H; ++hi) q5_chunk(load32(w[hi] + 64 * c), load32(hb[hi]), c, wl[hi], wh[hi]);
    UNROLL for (int r = 0; r < R; ++r) {
      const __m256i x0 = bcast_quad(xq[r] + 8 * c), x1 = bcast_quad(xq[r] + 8 * c + 4);
      UNROLL for (int hi = 0; hi < H; ++hi)
        s16[hi][r] = _mm256_add_epi16(s16[hi][r], _mm256_add_epi16(_mm256_maddubs_epi16(wl[hi], x0), _mm256_maddubs_epi16(wh[hi], x1)));
    }
  }
  UNROLL for (int hi = 0; hi < H; ++hi)
    UNROLL for (int r = 0; r < R; ++r) ia[hi][r] = _mm256_add_epi32(ia[hi][r], _mm256_madd_epi16(s16[hi][r], _mm256_set1_epi16(1)));
}

template <int H, int R>
void tile_q5_0(const Tile& t) {
  const Ptrs<H, R> p(t);
  const int64_t nb = t.a.cols / 32;
  __m256 acc[H][R];
  zero(acc);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i ia[H][R];
    UNROLL for (int r = 0; r < R; ++r) {
      const __m256i c = _mm256_set1_epi32(p.aux[r][b]);
      UNROLL for (int hi = 0; hi < H; ++hi) ia[hi][r] = c;
    }
    const uint8_t* w[H];
    const uint8_t* hb[H];
    UNROLL for (int hi = 0; hi < H; ++hi) {
      w[hi] = p.w[hi] + b * 352 + 32 + 32 * p.part[hi];
      hb[hi] = p.w[hi] + b * 352 + 288 + 32 * p.part[hi];
    }
    const int8_t* xq[R];
    UNROLL for (int r = 0; r < R; ++r) xq[r] = p.q[r] + b * 32;
    q5_chunk_pair<H, R>(ia, w, hb, xq, 0);
    q5_chunk_pair<H, R>(ia, w, hb, xq, 2);
    __m256 sc[H];
    UNROLL for (int hi = 0; hi < H; ++hi) sc[hi] = half8(p.w[hi] + b * 352 + 16 * p.part[hi]);
    scale_acc<H, R>(acc, ia, sc, p.d, b);
  }
  store<H, R>(t, acc);
}

template <int H, int R>
void tile_q4_k(const Tile& t) {
  const Ptrs<H, R> p(t);
  const int64_t nb = t.a.cols / 256;
  const __m256i m4 = _mm256_set1_epi8(0x0F);
  __m256 acc[H][R];
  zero(acc);
  for (int64_t b = 0; b < nb; ++b) {
    {  // the mins first (see matmul_avx512.cpp)
      __m256i B[H][R];
      UNROLL for (int hi = 0; hi < H; ++hi)
        UNROLL for (int r = 0; r < R; ++r) B[hi][r] = _mm256_setzero_si256();
      UNROLL for (int pr = 0; pr < 4; ++pr) {
        __m256i mv[H];
        UNROLL for (int hi = 0; hi < H; ++hi)
          mv[hi] = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p.w[hi] + b * 2368 + 192 + 32 * pr + 16 * p.part[hi])));
        UNROLL for (int r = 0; r < R; ++r) {
          const __m256i bs = _mm256_set1_epi32(p.aux[r][b * 4 + pr]);
          UNROLL for (int hi = 0; hi < H; ++hi) B[hi][r] = _mm256_add_epi32(B[hi][r], _mm256_madd_epi16(mv[hi], bs));
        }
      }
      UNROLL for (int hi = 0; hi < H; ++hi) {
        const __m256 dmin = half8(p.w[hi] + b * 2368 + 32 + 16 * p.part[hi]);
        UNROLL for (int r = 0; r < R; ++r)
          acc[hi][r] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(B[hi][r]), _mm256_mul_ps(dmin, _mm256_set1_ps(p.d[r][b])), acc[hi][r]);
      }
    }
    __m256i A[H][R];
    UNROLL for (int hi = 0; hi < H; ++hi)
      UNROLL for (int r = 0; r < R; ++r) A[hi][r] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      prefetch_w<H, R>(t, p, b * 2368 + 320 + 256 * j, 256);
      // As Q4_0: the eight maddubs of a sub-block summed exactly in int16, then one madd with the
      // sub-block scale (≤ 63) in both halves of each row lane gives scale · Σ q·x in int32.
      __m256i s16[H][R];
      UNROLL for (int c = 0; c < 4; ++c) {
        __m256i wl[H], wh[H];
        UNROLL for (int hi = 0; hi < H; ++hi) {
          const __m256i raw = load32(p.w[hi] + b * 2368 + 320 + 256 * j + 64 * c + 32 * p.part[hi]);
          wl[hi] = _mm256_and_si256(raw, m4);
          wh[hi] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        }
        UNROLL for (int r = 0; r < R; ++r) {
          const int8_t* xq = p.q[r] + b * 256 + 32 * j + 8 * c;
          const __m256i x0 = bcast_quad(xq), x1 = bcast_quad(xq + 4);
          UNROLL for (int hi = 0; hi < H; ++hi) {
            s16[hi][r] = acc16(s16[hi][r], c == 0, _mm256_maddubs_epi16(wl[hi], x0), _mm256_maddubs_epi16(wh[hi], x1));
          }
        }
      }
      UNROLL for (int hi = 0; hi < H; ++hi) {
        const __m256i s32 = _mm256_cvtepu8_epi32(_mm_set1_epi64x(load_i64(p.w[hi] + b * 2368 + 64 + 16 * j + 8 * p.part[hi])));
        const __m256i sc = _mm256_or_si256(s32, _mm256_slli_epi32(s32, 16));
        UNROLL for (int r = 0; r < R; ++r) A[hi][r] = _mm256_add_epi32(A[hi][r], _mm256_madd_epi16(s16[hi][r], sc));
      }
    }
    UNROLL for (int hi = 0; hi < H; ++hi) {
      const __m256 d = half8(p.w[hi] + b * 2368 + 16 * p.part[hi]);
      UNROLL for (int r = 0; r < R; ++r)
        acc[hi][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(A[hi][r]), _mm256_mul_ps(d, _mm256_set1_ps(p.d[r][b])), acc[hi][r]);
    }
  }
  store<H, R>(t, acc);
}

template <int H, int R>
void tile_q5_k(const Tile& t) {
  const Ptrs<H, R> p(t);
  const int64_t nb = t.a.cols / 256;
  __m256 acc[H][R];
  zero(acc);
  for (int64_t b = 0; b < nb; ++b) {
    {  // the mins first, as Q4_K (same head layout)
      __m256i B[H][R];
      UNROLL for (int hi = 0; hi < H; ++hi)
        UNROLL for (int r = 0; r < R; ++r) B[hi][r] = _mm256_setzero_si256();
      UNROLL for (int pr = 0; pr < 4; ++pr) {
        __m256i mv[H];
        UNROLL for (int hi = 0; hi < H; ++hi)
          mv[hi] = _mm256_cvtepu8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p.w[hi] + b * 2880 + 192 + 32 * pr + 16 * p.part[hi])));
        UNROLL for (int r = 0; r < R; ++r) {
          const __m256i bs = _mm256_set1_epi32(p.aux[r][b * 4 + pr]);
          UNROLL for (int hi = 0; hi < H; ++hi) B[hi][r] = _mm256_add_epi32(B[hi][r], _mm256_madd_epi16(mv[hi], bs));
        }
      }
      UNROLL for (int hi = 0; hi < H; ++hi) {
        const __m256 dmin = half8(p.w[hi] + b * 2880 + 32 + 16 * p.part[hi]);
        UNROLL for (int r = 0; r < R; ++r)
          acc[hi][r] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(B[hi][r]), _mm256_mul_ps(dmin, _mm256_set1_ps(p.d[r][b])), acc[hi][r]);
      }
    }
    __m256i A[H][R];
    UNROLL for (int hi = 0; hi < H; ++hi)
      UNROLL for (int r = 0; r < R; ++r) A[hi][r] = _mm256_setzero_si256();
    for (int j = 0; j < 8; ++j) {
      __m256i ia[H][R];
      UNROLL for (int hi = 0; hi < H; ++hi)
        UNROLL for (int r = 0; r < R; ++r) ia[hi][r] = _mm256_setzero_si256();
      const uint8_t* w[H];
      const uint8_t* hb[H];
      UNROLL for (int hi = 0; hi < H; ++hi) {
        w[hi] = p.w[hi] + b * 2880 + 320 + 320 * j + 32 * p.part[hi];
        hb[hi] = w[hi] + 256;
      }
      const int8_t* xq[R];
      UNROLL for (int r = 0; r < R; ++r) xq[r] = p.q[r] + b * 256 + 32 * j;
      q5_chunk_pair<H, R>(ia, w, hb, xq, 0);
      q5_chunk_pair<H, R>(ia, w, hb, xq, 2);
      UNROLL for (int hi = 0; hi < H; ++hi) {
        const __m256i sc = _mm256_cvtepu8_epi32(_mm_set1_epi64x(load_i64(p.w[hi] + b * 2880 + 64 + 16 * j + 8 * p.part[hi])));
        UNROLL for (int r = 0; r < R; ++r) A[hi][r] = _mm256_add_epi32(A[hi][r], _mm256_mullo_epi32(ia[hi][r], sc));
      }
    }
    UNROLL for (int hi = 0; hi < H; ++hi) {
      const __m256 d = half8(p.w[hi] + b * 2880 + 16 * p.part[hi]);
      UNROLL for (int r = 0; r < R; ++r)
        acc[hi][r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(A[hi][r]), _mm256_mul_ps(d, _mm256_set1_ps(p.d[r][b])), acc[hi][r]);
    }
  }
  store<H, R>(t, acc);
}

template <int H, int R>
void tile_q6_k(const Tile& t) {
  const Ptrs<H, R> p(t);
  const int64_t nb = t.a.cols / 256;
  const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
  __m256 acc[H][R];
  zero(acc);
  for (int64_t b = 0; b < nb; ++b) {
    __m256i A[H][R];
    UNROLL for (int hi = 0; hi < H; ++hi)
      UNROLL for (int r = 0; r < R; ++r) A[hi][r] = _mm256_setzero_si256();
    for (int s = 0; s < 16; ++s) {
      __m256i w0[H], w1[H], w2[H], w3[H], sc[H];
      UNROLL for (int hi = 0; hi < H; ++hi) {
        const uint8_t* c = p.w[hi] + b * 3360 + 288 + 192 * s + 32 * p.part[hi];
        const __m256i l01 = load32(c), l23 = load32(c + 64), h = load32(c + 128);
        w0[hi] = _mm256_or_si256(_mm256_and_si256(l01, m4), _mm256_and_si256(_mm256_slli_epi16(h, 4), m30));
        w1[hi] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l01, 4), m4), _mm256_and_si256(_mm256_slli_epi16(h, 2), m30));
        w2[hi] = _mm256_or_si256(_mm256_and_si256(l23, m4), _mm256_and_si256(h, m30));
        w3[hi] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l23, 4), m4), _mm256_and_si256(_mm256_srli_epi16(h, 2), m30));
        sc[hi] = _mm256_cvtepi8_epi32(_mm_set1_epi64x(load_i64(p.w[hi] + b * 3360 + 32 + 16 * s + 8 * p.part[hi])));
      }
      UNROLL for (int r = 0; r < R; ++r) {
        const int8_t* xq = p.q[r] + b * 256 + 16 * s;
        const __m256i x0 = bcast_quad(xq), x1 = bcast_quad(xq + 4), x2 = bcast_quad(xq + 8), x3 = bcast_quad(xq + 12);
        const __m256i c = _mm256_set1_epi32(p.aux[r][b * 16 + s]);
        UNROLL for (int hi = 0; hi < H; ++hi) {
          const __m256i ia = dp_u8(dp_u8(dp_u8(dp_u8(c, w0[hi], x0), w1[hi], x1), w2[hi], x2), w3[hi], x3);
          A[hi][r] = _mm256_add_epi32(A[hi][r], _mm256_mullo_epi32(ia, sc[hi]));
        }
      }
    }
    __m256 ws[H];
    UNROLL for (int hi = 0; hi < H; ++hi) ws[hi] = half8(p.w[hi] + b * 3360 + 16 * p.part[hi]);
    scale_acc<H, R>(acc, A, ws, p.d, b);
  }
  store<H, R>(t, acc);
}

INL __m256 load_w(WeightType t, const uint8_t* p) {
  if (t == WeightType::F32) return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if (t == WeightType::F16) return _mm256_cvtph_ps(h);
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <WeightType T, int H, int R>
void tile_float(const Tile& t) {
  constexpr size_t esz = T == WeightType::F32 ? 4 : 2;
  const Ptrs<H, R> p(t);
  const float* x[R];
  UNROLL for (int r = 0; r < R; ++r) x[r] = t.a.act.x + (t.xr + r) * t.a.cols;
  __m256 acc[H][R];
  zero(acc);
  for (int64_t k = 0; k < t.a.cols; ++k) {
    if constexpr (R == 1) {  // GEMV: each weight vector used once, no need to keep them
      const __m256 xv = _mm256_set1_ps(x[0][k]);
      UNROLL for (int hi = 0; hi < H; ++hi)
        acc[hi][0] = _mm256_fmadd_ps(load_w(T, p.w[hi] + (k * kFloatQuad * kGroupRows + 8 * p.part[hi]) * esz), xv, acc[hi][0]);
    } else {
      __m256 wv[H];
      UNROLL for (int hi = 0; hi < H; ++hi) wv[hi] = load_w(T, p.w[hi] + (k * kFloatQuad * kGroupRows + 8 * p.part[hi]) * esz);
      UNROLL for (int r = 0; r < R; ++r) {
        const __m256 xv = _mm256_set1_ps(x[r][k]);
        UNROLL for (int hi = 0; hi < H; ++hi) acc[hi][r] = _mm256_fmadd_ps(wv[hi], xv, acc[hi][r]);
      }
    }
  }
  store<H, R>(t, acc);
}

// ---- drivers ---------------------------------------------------------------------------------------

template <template <int, int> class K, int H, int R>
void drive(const GemmArgs& a) {
  auto rows_tail = [&](int64_t h, auto hc) {
    constexpr int HH = decltype(hc)::value;
    int64_t xr = 0;
    for (; xr + R <= a.n_rows; xr += R) K<HH, R>::run(Tile{a, h, xr, xr == 0});
    switch (a.n_rows - xr) {
#define TANDEM_TAIL(n) \
  case n:              \
    if constexpr (n < R) K<HH, n < R ? n : 1>::run(Tile{a, h, xr, xr == 0}); \
    break;
      TANDEM_TAIL(1) TANDEM_TAIL(2) TANDEM_TAIL(3) TANDEM_TAIL(4) TANDEM_TAIL(5) TANDEM_TAIL(6) TANDEM_TAIL(7)
#undef TANDEM_TAIL
      default: break;
    }
  };
  int64_t h = 2 * a.group0;
  const int64_t h1 = 2 * a.group1;
  for (; h + H <= h1; h += H) rows_tail(h, std::integral_constant<int, H>{});
  for (; h < h1; ++h) rows_tail(h, std::integral_constant<int, 1>{});
}

template <int H, int R> struct KQ8_0 { static void run(const Tile& t) { tile_q8_0<H, R>(t); } };
template <int H, int R> struct KQ4_0 { static void run(const Tile& t) { tile_q4_0<H, R>(t); } };
template <int H, int R> struct KQ5_0 { static void run(const Tile& t) { tile_q5_0<H, R>(t); } };
template <int H, int R> struct KQ4_K { static void run(const Tile& t) { tile_q4_k<H, R>(t); } };
template <int H, int R> struct KQ5_K { static void run(const Tile& t) { tile_q5_k<H, R>(t); } };
template <int H, int R> struct KQ6_K { static void run(const Tile& t) { tile_q6_k<H, R>(t); } };
template <int H, int R> struct KF32 { static void run(const Tile& t) { tile_float<WeightType::F32, H, R>(t); } };
template <int H, int R> struct KF16 { static void run(const Tile& t) { tile_float<WeightType::F16, H, R>(t); } };
template <int H, int R> struct KBF16 { static void run(const Tile& t) { tile_float<WeightType::BF16, H, R>(t); } };

template <template <int, int> class K, int GemvH, int GemmH, int GemmR>
void dispatch(const GemmArgs& a) {
  if (a.n_rows == 1)
    drive<K, GemvH, 1>(a);
  else
    drive<K, GemmH, GemmR>(a);
}

void gemm(const GemmArgs& a) {
  switch (a.type) {
    // Several rows: tiles of one half group × 4 rows (Q4_K: × 2, its tile holds three arrays of
    // accumulators) measured faster for 8 rows than two halves × 2 / × 1 (Zen 3, 5632×2048:
    // Q4_0 1441–1475 against 1565–1646 µs, Q8_0 1994–2027 against 2228–2570, Q4_K 1449–1535
    // against 1837–2311).
    case WeightType::Q8_0: return dispatch<KQ8_0, 2, 1, 4>(a);
    case WeightType::Q4_0: return dispatch<KQ4_0, 2, 1, 4>(a);
    case WeightType::Q5_0: return dispatch<KQ5_0, 2, 2, 2>(a);
    case WeightType::Q4_K: return dispatch<KQ4_K, 2, 1, 2>(a);
    case WeightType::Q5_K: return dispatch<KQ5_K, 2, 2, 1>(a);
    case WeightType::Q6_K: return dispatch<KQ6_K, 2, 1, 2>(a);
    case WeightType::F32: return dispatch<KF32, 8, 2, 4>(a);
    case WeightType::F16: return dispatch<KF16, 8, 2, 4>(a);
    case WeightType::BF16: return dispatch<KBF16, 8, 2, 4>(a);
    default: return;
  }
}

}  // namespace

const KernelSet& kernels_avx2() {
  static const KernelSet k{"avx2", 1, quantize, gemm};
  return k;
}

}  // namespace tandem::kern
