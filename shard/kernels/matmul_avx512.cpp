// AVX-512 + VNNI kernels. One zmm lane = one output row of a 16-row group; a tile is G row groups
// × R activation rows, and every (row, activation row) pair is computed by the same instruction
// sequence whatever G and R are (see matmul_internal.h), so tiling never changes a result.
// No std:: templates here: their out-of-line copies could be shared with code built for plain
// x86-64 and carry AVX-512 instructions into it.
#include <immintrin.h>

// GCC 12 flags its own intrinsic headers (the _mm*_undefined_* idiom) under -Wmaybe-uninitialized.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include <cstring>
#include <type_traits>

#include "shard/kernels/matmul_internal.h"

namespace tandem::kern {
namespace {

constexpr int kTileRows = 8;     // activation rows per GEMM tile (their quants are interleaved)
constexpr int kChunkRows = 128;  // activation rows per cache block of a long GEMM

#define INL inline __attribute__((always_inline))
// Fully unroll the small loops over tile rows / groups / chunks so that GCC keeps the
// accumulator arrays in registers (otherwise it stores them to the stack on every iteration).
#define UNROLL _Pragma("GCC unroll 16")

INL int32_t load_i32(const void* p) {
  int32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

INL __m512 half16(const uint8_t* p) { return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))); }
INL __m512i load64(const uint8_t* p) { return _mm512_loadu_si512(p); }
INL __m512i bcast_quad(const int8_t* p) { return _mm512_set1_epi32(load_i32(p)); }

// Software prefetch of the weight bytes 2 KiB past a block, in tiles of several rows: there the
// loop is compute-bound, the hardware prefetcher falls behind the stream, and every new line then
// stalls the dot products (measured on a Zen 4 core, 5632×2048, 8 rows: Q4_0 1055 → ~690 µs,
// Q8_0 1176 → ~1000 µs; 1–2 KiB ahead was best, 512 B too short). Only the first tile over a
// group's weights streams them; in one-row GEMVs the hint costs more than it gains (Q8_0
// 620 → 900 µs), the hardware keeps up there.
constexpr int kPrefetchAhead = 2048;
constexpr int kPrefetchMinRows = 2;
template <int R>
INL void prefetch_w(bool first, const uint8_t* p, int bytes) {
  if constexpr (R >= kPrefetchMinRows)
    if (first)
      for (int o = 0; o < bytes; o += 64) _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchAhead + o), _MM_HINT_T0);
}

// ---- activations ---------------------------------------------------------------------------------

void quantize(WeightType t, const float* x, int64_t cols, int8_t* q, float* d, int32_t* aux) {
  const int64_t bc = block_cols(t);
  const int aw = aux_words(t);
  const __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127);
  for (int64_t b = 0; b < cols / bc; ++b) {
    const float* xb = x + b * bc;
    int8_t* qb = q + b * bc;
    __m512 m = _mm512_setzero_ps();
    for (int64_t i = 0; i < bc; i += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(xb + i)));
    const float amax = _mm512_reduce_max_ps(m);
    const float id = amax != 0 ? 127.f / amax : 0.f;
    d[b] = amax / 127.f;
    const __m512 vid = _mm512_set1_ps(id);
    int32_t sums16[16];
    for (int64_t i = 0; i < bc; i += 16) {
      __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(xb + i), vid));
      v = _mm512_max_epi32(_mm512_min_epi32(v, hi), lo);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(qb + i), _mm512_cvtepi32_epi8(v));
      sums16[i / 16] = _mm512_reduce_add_epi32(v);
    }
    block_aux(t, sums16, aux + b * aw);
  }
}

// ---- shared tile plumbing ------------------------------------------------------------------------

// G row groups from g × R activation rows from xr. Quantized activations of a tile are read
// interleaved by R (matmul_internal.h: R == 1 is the plain layout), so every row of the tile is a
// constant offset from one pointer.
struct Tile {
  const GemmArgs& a;
  int64_t g, xr;
  bool first = true;  // the first tile over this group's weights: it streams them from memory
};

template <int G, int R>
INL void store(const Tile& t, __m512 (&acc)[G][R]) {
  UNROLL for (int gi = 0; gi < G; ++gi) {
    const int64_t row0 = (t.g + gi) * kGroupRows;
    const int64_t valid = t.a.rows - row0;
    const __mmask16 mask = valid >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << valid) - 1);
    UNROLL for (int r = 0; r < R; ++r)
      if (t.xr + r < t.a.n_rows) _mm512_mask_storeu_ps(t.a.y + (t.xr + r) * t.a.ldy + row0, mask, acc[gi][r]);
  }
}

template <int G, int R>
struct QTile {
  const uint8_t* w[G];
  const int8_t* q;     // quad c of block b, row r: q + b*bc*R + (c*R + r)*4
  const float* d;      // d + b*R + r
  const int32_t* aux;  // word k of block b, row r: aux + (b*aw + k)*R + r
  int64_t nb;
  bool first;
  QTile(const Tile& t) : first(t.first) {
    const auto& a = t.a;
    const size_t gb = group_bytes(a.type, a.cols);
    nb = a.cols / block_cols(a.type);
    UNROLL for (int gi = 0; gi < G; ++gi) w[gi] = a.w + (t.g + gi) * gb;
    // Every tile before this one holds exactly xr rows (matmul_internal.h).
    q = a.act.q + t.xr * a.cols;
    d = a.act.d + t.xr * nb;
    aux = a.act.aux + t.xr * nb * aux_words(a.type);
  }
};

template <int G, int R>
INL void zero(__m512 (&acc)[G][R]) {
  UNROLL for (int gi = 0; gi < G; ++gi)
    UNROLL for (int r = 0; r < R; ++r) acc[gi][r] = _mm512_setzero_ps();
}

// acc += float(isum) * (w_scale * x_scale)
template <int G, int R>
INL void scale_acc(__m512 (&acc)[G][R], const __m512i (&ia)[G][R], const __m512 (&ws)[G], const float* dx) {
  UNROLL for (int r = 0; r < R; ++r) {
    const __m512 dxr = _mm512_set1_ps(dx[r]);
    UNROLL for (int gi = 0; gi < G; ++gi) acc[gi][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(ia[gi][r]), _mm512_mul_ps(ws[gi], dxr), acc[gi][r]);
  }
}

// ---- Q8_0 / Q4_0 -----------------------------------------------------------------------------------

template <int G, int R>
void tile_q8_0(const Tile& t) {
  const QTile<G, R> p(t);
  __m512 acc[G][R];
  zero(acc);
  for (int64_t b = 0; b < p.nb; ++b) {
    const int8_t* xq = p.q + b * 32 * R;
    UNROLL for (int gi = 0; gi < G; ++gi) prefetch_w<R>(p.first, p.w[gi] + b * 544, 544);
    __m512i ia[G][R];
    UNROLL for (int r = 0; r < R; ++r) {
      const __m512i c = _mm512_set1_epi32(p.aux[b * R + r]);
      UNROLL for (int gi = 0; gi < G; ++gi) ia[gi][r] = c;
    }
    UNROLL for (int c = 0; c < 8; ++c) {
      __m512i wv[G];
      UNROLL for (int gi = 0; gi < G; ++gi) wv[gi] = load64(p.w[gi] + b * 544 + 32 + 64 * c);
      UNROLL for (int r = 0; r < R; ++r) {
        const __m512i xv = bcast_quad(xq + (c * R + r) * 4);
        UNROLL for (int gi = 0; gi < G; ++gi) ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wv[gi], xv);
      }
    }
    __m512 ws[G];
    UNROLL for (int gi = 0; gi < G; ++gi) ws[gi] = half16(p.w[gi] + b * 544);
    scale_acc<G, R>(acc, ia, ws, p.d + b * R);
  }
  store<G, R>(t, acc);
}

template <int G, int R>
void tile_q4_0(const Tile& t) {
  const QTile<G, R> p(t);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[G][R];
  zero(acc);
  for (int64_t b = 0; b < p.nb; ++b) {
    const int8_t* xq = p.q + b * 32 * R;
    __m512i ia[G][R];
    UNROLL for (int r = 0; r < R; ++r) {
      const __m512i c = _mm512_set1_epi32(p.aux[b * R + r]);
      UNROLL for (int gi = 0; gi < G; ++gi) ia[gi][r] = c;
    }
    UNROLL for (int gi = 0; gi < G; ++gi) prefetch_w<R>(p.first, p.w[gi] + b * 288, 288);
    UNROLL for (int c = 0; c < 4; ++c) {
      __m512i wl[G], wh[G];
      UNROLL for (int gi = 0; gi < G; ++gi) {
        const __m512i raw = load64(p.w[gi] + b * 288 + 32 + 64 * c);
        wl[gi] = _mm512_and_si512(raw, m4);
        wh[gi] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
      }
      UNROLL for (int r = 0; r < R; ++r) {
        const __m512i x0 = bcast_quad(xq + (2 * c * R + r) * 4), x1 = bcast_quad(xq + ((2 * c + 1) * R + r) * 4);
        UNROLL for (int gi = 0; gi < G; ++gi) {
          ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wl[gi], x0);
          ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wh[gi], x1);
        }
      }
    }
    __m512 ws[G];
    UNROLL for (int gi = 0; gi < G; ++gi) ws[gi] = half16(p.w[gi] + b * 288);
    scale_acc<G, R>(acc, ia, ws, p.d + b * R);
  }
  store<G, R>(t, acc);
}

// The 5-bit quants of one 64 B nibble chunk c (0..3) of a 32-column unit: low / high nibbles plus
// 16 where bit 2c / 2c+1 of the byte of the fifth-bit chunk `h` is set (a byte-mask test and a
// masked add: fewer instructions than shifting the bits into place).
INL void q5_chunk(__m512i raw, __m512i h, int c, __m512i& wl, __m512i& wh) {
  const __m512i m4 = _mm512_set1_epi8(0x0F), v16 = _mm512_set1_epi8(0x10);
  const __m512i lo = _mm512_and_si512(raw, m4), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
  wl = _mm512_mask_add_epi8(lo, _mm512_test_epi8_mask(h, _mm512_set1_epi8(static_cast<char>(1 << (2 * c)))), lo, v16);
  wh = _mm512_mask_add_epi8(hi, _mm512_test_epi8_mask(h, _mm512_set1_epi8(static_cast<char>(2 << (2 * c)))), hi, v16);
}

template <int G, int R>
void tile_q5_0(const Tile& t) {
  const QTile<G, R> p(t);
  __m512 acc[G][R];
  zero(acc);
  for (int64_t b = 0; b < p.nb; ++b) {
    const int8_t* xq = p.q + b * 32 * R;
    __m512i ia[G][R];
    UNROLL for (int r = 0; r < R; ++r) {
      const __m512i c = _mm512_set1_epi32(p.aux[b * R + r]);
      UNROLL for (int gi = 0; gi < G; ++gi) ia[gi][r] = c;
    }
    UNROLL for (int gi = 0; gi < G; ++gi) prefetch_w<R>(p.first, p.w[gi] + b * 352, 352);
    __m512i h[G];
    UNROLL for (int gi = 0; gi < G; ++gi) h[gi] = load64(p.w[gi] + b * 352 + 288);
    UNROLL for (int c = 0; c < 4; ++c) {
      __m512i wl[G], wh[G];
      UNROLL for (int gi = 0; gi < G; ++gi) {
        q5_chunk(load64(p.w[gi] + b * 352 + 32 + 64 * c), h[gi], c, wl[gi], wh[gi]);
      }
      UNROLL for (int r = 0; r < R; ++r) {
        const __m512i x0 = bcast_quad(xq + (2 * c * R + r) * 4), x1 = bcast_quad(xq + ((2 * c + 1) * R + r) * 4);
        UNROLL for (int gi = 0; gi < G; ++gi) {
          ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wl[gi], x0);
          ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wh[gi], x1);
        }
      }
    }
    __m512 ws[G];
    UNROLL for (int gi = 0; gi < G; ++gi) ws[gi] = half16(p.w[gi] + b * 352);
    scale_acc<G, R>(acc, ia, ws, p.d + b * R);
  }
  store<G, R>(t, acc);
}

// ---- Q4_K / Q6_K -----------------------------------------------------------------------------------

template <int G, int R>
void tile_q4_k(const Tile& t) {
  const QTile<G, R> p(t);
  const __m512i m4 = _mm512_set1_epi8(0x0F);
  __m512 acc[G][R];
  zero(acc);
  for (int64_t b = 0; b < p.nb; ++b) {
    const uint8_t* wb[G];
    UNROLL for (int gi = 0; gi < G; ++gi) wb[gi] = p.w[gi] + b * 2368;
    const int8_t* xq = p.q + b * 256 * R;
    const float* dx = p.d + b * R;
    // The mins first: Σ_j min_j * bsum_j from pairs of int16 mins per row lane against pairs of
    // activation sums, applied at once so its registers are free for the quants.
    {
      __m512i B[G][R];
      UNROLL for (int gi = 0; gi < G; ++gi)
        UNROLL for (int r = 0; r < R; ++r) B[gi][r] = _mm512_setzero_si512();
      UNROLL for (int pr = 0; pr < 4; ++pr) {
        __m512i mv[G];
        UNROLL for (int gi = 0; gi < G; ++gi)
          mv[gi] = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[gi] + 192 + 32 * pr)));
        UNROLL for (int r = 0; r < R; ++r) {
          const __m512i bs = _mm512_set1_epi32(p.aux[(b * 4 + pr) * R + r]);
          UNROLL for (int gi = 0; gi < G; ++gi) B[gi][r] = _mm512_dpwssd_epi32(B[gi][r], mv[gi], bs);
        }
      }
      UNROLL for (int gi = 0; gi < G; ++gi) {
        const __m512 dmin = half16(wb[gi] + 32);
        UNROLL for (int r = 0; r < R; ++r)
          acc[gi][r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(B[gi][r]), _mm512_mul_ps(dmin, _mm512_set1_ps(dx[r])), acc[gi][r]);
      }
    }
    __m512i A[G][R];
    UNROLL for (int gi = 0; gi < G; ++gi)
      UNROLL for (int r = 0; r < R; ++r) A[gi][r] = _mm512_setzero_si512();
    for (int j = 0; j < 8; ++j) {
      __m512i ia[G][R];
      UNROLL for (int gi = 0; gi < G; ++gi)
        UNROLL for (int r = 0; r < R; ++r) ia[gi][r] = _mm512_setzero_si512();
      const int8_t* xj = xq + 32 * j * R;
      UNROLL for (int gi = 0; gi < G; ++gi) prefetch_w<R>(p.first, wb[gi] + 320 + 256 * j, 256);
      UNROLL for (int c = 0; c < 4; ++c) {
        __m512i wl[G], wh[G];
        UNROLL for (int gi = 0; gi < G; ++gi) {
          const __m512i raw = load64(wb[gi] + 320 + 256 * j + 64 * c);
          wl[gi] = _mm512_and_si512(raw, m4);
          wh[gi] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
        }
        UNROLL for (int r = 0; r < R; ++r) {
          const __m512i x0 = bcast_quad(xj + (2 * c * R + r) * 4), x1 = bcast_quad(xj + ((2 * c + 1) * R + r) * 4);
          UNROLL for (int gi = 0; gi < G; ++gi) {
            ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wl[gi], x0);
            ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wh[gi], x1);
          }
        }
      }
      UNROLL for (int gi = 0; gi < G; ++gi) {
        const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[gi] + 64 + 16 * j)));
        UNROLL for (int r = 0; r < R; ++r) A[gi][r] = _mm512_add_epi32(A[gi][r], _mm512_mullo_epi32(ia[gi][r], sc));
      }
    }
    UNROLL for (int gi = 0; gi < G; ++gi) {
      const __m512 d = half16(wb[gi]);
      UNROLL for (int r = 0; r < R; ++r)
        acc[gi][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(A[gi][r]), _mm512_mul_ps(d, _mm512_set1_ps(dx[r])), acc[gi][r]);
    }
  }
  store<G, R>(t, acc);
}

template <int G, int R>
void tile_q5_k(const Tile& t) {
  const QTile<G, R> p(t);
  __m512 acc[G][R];
  zero(acc);
  for (int64_t b = 0; b < p.nb; ++b) {
    const uint8_t* wb[G];
    UNROLL for (int gi = 0; gi < G; ++gi) wb[gi] = p.w[gi] + b * 2880;
    const int8_t* xq = p.q + b * 256 * R;
    const float* dx = p.d + b * R;
    {  // the mins first, as Q4_K (same head layout)
      __m512i B[G][R];
      UNROLL for (int gi = 0; gi < G; ++gi)
        UNROLL for (int r = 0; r < R; ++r) B[gi][r] = _mm512_setzero_si512();
      UNROLL for (int pr = 0; pr < 4; ++pr) {
        __m512i mv[G];
        UNROLL for (int gi = 0; gi < G; ++gi)
          mv[gi] = _mm512_cvtepu8_epi16(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[gi] + 192 + 32 * pr)));
        UNROLL for (int r = 0; r < R; ++r) {
          const __m512i bs = _mm512_set1_epi32(p.aux[(b * 4 + pr) * R + r]);
          UNROLL for (int gi = 0; gi < G; ++gi) B[gi][r] = _mm512_dpwssd_epi32(B[gi][r], mv[gi], bs);
        }
      }
      UNROLL for (int gi = 0; gi < G; ++gi) {
        const __m512 dmin = half16(wb[gi] + 32);
        UNROLL for (int r = 0; r < R; ++r)
          acc[gi][r] = _mm512_fnmadd_ps(_mm512_cvtepi32_ps(B[gi][r]), _mm512_mul_ps(dmin, _mm512_set1_ps(dx[r])), acc[gi][r]);
      }
    }
    __m512i A[G][R];
    UNROLL for (int gi = 0; gi < G; ++gi)
      UNROLL for (int r = 0; r < R; ++r) A[gi][r] = _mm512_setzero_si512();
    for (int j = 0; j < 8; ++j) {
      __m512i ia[G][R];
      UNROLL for (int gi = 0; gi < G; ++gi)
        UNROLL for (int r = 0; r < R; ++r) ia[gi][r] = _mm512_setzero_si512();
      const int8_t* xj = xq + 32 * j * R;
      UNROLL for (int gi = 0; gi < G; ++gi) prefetch_w<R>(p.first, wb[gi] + 320 + 320 * j, 320);
      __m512i h[G];
      UNROLL for (int gi = 0; gi < G; ++gi) h[gi] = load64(wb[gi] + 320 + 320 * j + 256);
      UNROLL for (int c = 0; c < 4; ++c) {
        __m512i wl[G], wh[G];
        UNROLL for (int gi = 0; gi < G; ++gi) {
          q5_chunk(load64(wb[gi] + 320 + 320 * j + 64 * c), h[gi], c, wl[gi], wh[gi]);
        }
        UNROLL for (int r = 0; r < R; ++r) {
          const __m512i x0 = bcast_quad(xj + (2 * c * R + r) * 4), x1 = bcast_quad(xj + ((2 * c + 1) * R + r) * 4);
          UNROLL for (int gi = 0; gi < G; ++gi) {
            ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wl[gi], x0);
            ia[gi][r] = _mm512_dpbusd_epi32(ia[gi][r], wh[gi], x1);
          }
        }
      }
      UNROLL for (int gi = 0; gi < G; ++gi) {
        const __m512i sc = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[gi] + 64 + 16 * j)));
        UNROLL for (int r = 0; r < R; ++r) A[gi][r] = _mm512_add_epi32(A[gi][r], _mm512_mullo_epi32(ia[gi][r], sc));
      }
    }
    UNROLL for (int gi = 0; gi < G; ++gi) {
      const __m512 d = half16(wb[gi]);
      UNROLL for (int r = 0; r < R; ++r)
        acc[gi][r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(A[gi][r]), _mm512_mul_ps(d, _mm512_set1_ps(dx[r])), acc[gi][r]);
    }
  }
  store<G, R>(t, acc);
}

template <int G, int R>
void tile_q6_k(const Tile& t) {
  const QTile<G, R> p(t);
  const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
  __m512 acc[G][R];
  zero(acc);
  for (int64_t b = 0; b < p.nb; ++b) {
    const uint8_t* wb[G];
    UNROLL for (int gi = 0; gi < G; ++gi) wb[gi] = p.w[gi] + b * 3360;
    const int8_t* xq = p.q + b * 256 * R;
    __m512i A[G][R];
    UNROLL for (int gi = 0; gi < G; ++gi)
      UNROLL for (int r = 0; r < R; ++r) A[gi][r] = _mm512_setzero_si512();
    for (int s = 0; s < 16; ++s) {
      __m512i w0[G], w1[G], w2[G], w3[G];
      UNROLL for (int gi = 0; gi < G; ++gi) {
        const uint8_t* c = wb[gi] + 288 + 192 * s;
        prefetch_w<R>(p.first, c, 192);
        const __m512i l01 = load64(c), l23 = load64(c + 64), h = load64(c + 128);
        w0[gi] = _mm512_or_si512(_mm512_and_si512(l01, m4), _mm512_and_si512(_mm512_slli_epi16(h, 4), m30));
        w1[gi] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l01, 4), m4), _mm512_and_si512(_mm512_slli_epi16(h, 2), m30));
        w2[gi] = _mm512_or_si512(_mm512_and_si512(l23, m4), _mm512_and_si512(h, m30));
        w3[gi] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l23, 4), m4), _mm512_and_si512(_mm512_srli_epi16(h, 2), m30));
      }
      __m512i sc[G];
      UNROLL for (int gi = 0; gi < G; ++gi)
        sc[gi] = _mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[gi] + 32 + 16 * s)));
      const int8_t* xs = xq + 16 * s * R;
      UNROLL for (int r = 0; r < R; ++r) {
        const __m512i x0 = bcast_quad(xs + (0 * R + r) * 4), x1 = bcast_quad(xs + (1 * R + r) * 4);
        const __m512i x2 = bcast_quad(xs + (2 * R + r) * 4), x3 = bcast_quad(xs + (3 * R + r) * 4);
        const __m512i c = _mm512_set1_epi32(p.aux[(b * 16 + s) * R + r]);
        UNROLL for (int gi = 0; gi < G; ++gi) {
          __m512i ia = _mm512_dpbusd_epi32(c, w0[gi], x0);
          ia = _mm512_dpbusd_epi32(ia, w1[gi], x1);
          ia = _mm512_dpbusd_epi32(ia, w2[gi], x2);
          ia = _mm512_dpbusd_epi32(ia, w3[gi], x3);
          A[gi][r] = _mm512_add_epi32(A[gi][r], _mm512_mullo_epi32(ia, sc[gi]));
        }
      }
    }
    __m512 ws[G];
    UNROLL for (int gi = 0; gi < G; ++gi) ws[gi] = half16(wb[gi]);
    scale_acc<G, R>(acc, A, ws, p.d + b * R);
  }
  store<G, R>(t, acc);
}

// ---- float weights ---------------------------------------------------------------------------------

INL __m512 load_w(WeightType t, const uint8_t* p) {
  if (t == WeightType::F32) return _mm512_loadu_ps(p);
  if (t == WeightType::F16) return half16(p);
  return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), 16));
}

template <WeightType T, int G, int R>
void tile_float(const Tile& t) {
  constexpr size_t esz = T == WeightType::F32 ? 4 : 2;
  const auto& a = t.a;
  const uint8_t* w[G];
  const float* x[R];
  UNROLL for (int gi = 0; gi < G; ++gi) w[gi] = a.w + float_group_offset(T, t.g + gi, a.cols);
  UNROLL for (int r = 0; r < R; ++r) x[r] = a.act.x + (t.xr + r) * a.cols;
  __m512 acc[G][R];
  UNROLL for (auto& row : acc)
    UNROLL for (auto& v : row) v = _mm512_setzero_ps();
  for (int64_t k = 0; k < a.cols; ++k) {
    __m512 wv[G];
    UNROLL for (int gi = 0; gi < G; ++gi) wv[gi] = load_w(T, w[gi] + k * kFloatQuad * kGroupRows * esz);
    UNROLL for (int r = 0; r < R; ++r) {
      const __m512 xv = _mm512_set1_ps(x[r][k]);
      UNROLL for (int gi = 0; gi < G; ++gi) acc[gi][r] = _mm512_fmadd_ps(wv[gi], xv, acc[gi][r]);
    }
  }
  store<G, R>(t, acc);
}

// ---- drivers ---------------------------------------------------------------------------------------

// Quantized weights, one row group (16 output rows) at a time: a single sequential stream
// reaches more DRAM bandwidth than several (measured: 2- to 4-row calls ran at half bandwidth with
// two groups in flight, at full bandwidth with one). Several activation rows: tiles of kTileRows
// (their quants interleaved), the last tile with just the rows left and its own kernel, so a 2- or
// 3-row verification block costs little more than one row; every tile of a group is finished
// before the next group, so the weights are read from memory once per call.
template <template <int, int> class K>
void drive_quant(const GemmArgs& a) {
  if (a.n_rows == 1) {
    for (int64_t g = a.group0; g < a.group1; ++g) K<1, 1>::run(Tile{a, g, 0});
    return;
  }
  constexpr int R = kTileRows;
  // Long prompts: activation rows in chunks that stay in L2 (~128 rows × cols bytes) while the
  // weights stream past; the weights are then read once per chunk.
  const int64_t chunk = (kChunkRows + R - 1) / R * R;
  auto tiles = [&](int64_t g, int64_t x0, int64_t x1) {
    constexpr int GG = 1;
    int64_t xr = x0;
    for (; xr + R <= x1; xr += R) K<GG, R>::run(Tile{a, g, xr, xr == x0});
    const bool first = xr == x0;
    switch (x1 - xr) {
      case 1: K<GG, 1>::run(Tile{a, g, xr, first}); break;
      case 2: K<GG, 2>::run(Tile{a, g, xr, first}); break;
      case 3: K<GG, 3>::run(Tile{a, g, xr, first}); break;
      case 4: K<GG, 4>::run(Tile{a, g, xr, first}); break;
      case 5: K<GG, 5>::run(Tile{a, g, xr, first}); break;
      case 6: K<GG, 6>::run(Tile{a, g, xr, first}); break;
      case 7: K<GG, 7>::run(Tile{a, g, xr, first}); break;
      default: break;
    }
  };
  static_assert(R == 8, "the tail cases above cover 1..R-1 rows");
  for (int64_t x0 = 0; x0 < a.n_rows; x0 += chunk) {
    const int64_t x1 = x0 + chunk < a.n_rows ? x0 + chunk : a.n_rows;
    for (int64_t g = a.group0; g < a.group1; ++g) tiles(g, x0, x1);
  }
}

// Float weights: four groups at once (one sequential stream in their layout, four independent
// fma chains); several rows in tiles of R, the last tile smaller.
template <template <int, int> class K, int G, int R>
void drive_float(const GemmArgs& a) {
  auto rows = [&](int64_t g, auto gc) {
    constexpr int GG = decltype(gc)::value;
    int64_t xr = 0;
    for (; xr + R <= a.n_rows; xr += R) K<GG, R>::run(Tile{a, g, xr});
    switch (a.n_rows - xr) {
#define TANDEM_TAIL(n) \
  case n:              \
    if constexpr (n < R) K<GG, n < R ? n : 1>::run(Tile{a, g, xr}); \
    break;
      TANDEM_TAIL(1) TANDEM_TAIL(2) TANDEM_TAIL(3) TANDEM_TAIL(4) TANDEM_TAIL(5) TANDEM_TAIL(6) TANDEM_TAIL(7)
#undef TANDEM_TAIL
      default: break;
    }
  };
  int64_t g = a.group0;
  for (; g + G <= a.group1; g += G) rows(g, std::integral_constant<int, G>{});
  for (; g < a.group1; ++g) rows(g, std::integral_constant<int, 1>{});
}

template <int G, int R> struct KQ8_0 { static void run(const Tile& t) { tile_q8_0<G, R>(t); } };
template <int G, int R> struct KQ4_0 { static void run(const Tile& t) { tile_q4_0<G, R>(t); } };
template <int G, int R> struct KQ5_0 { static void run(const Tile& t) { tile_q5_0<G, R>(t); } };
template <int G, int R> struct KQ4_K { static void run(const Tile& t) { tile_q4_k<G, R>(t); } };
template <int G, int R> struct KQ5_K { static void run(const Tile& t) { tile_q5_k<G, R>(t); } };
template <int G, int R> struct KQ6_K { static void run(const Tile& t) { tile_q6_k<G, R>(t); } };
template <int G, int R> struct KF32 { static void run(const Tile& t) { tile_float<WeightType::F32, G, R>(t); } };
template <int G, int R> struct KF16 { static void run(const Tile& t) { tile_float<WeightType::F16, G, R>(t); } };
template <int G, int R> struct KBF16 { static void run(const Tile& t) { tile_float<WeightType::BF16, G, R>(t); } };

void gemm(const GemmArgs& a) {
  switch (a.type) {
    case WeightType::Q8_0: return drive_quant<KQ8_0>(a);
    case WeightType::Q4_0: return drive_quant<KQ4_0>(a);
    case WeightType::Q5_0: return drive_quant<KQ5_0>(a);
    case WeightType::Q4_K: return drive_quant<KQ4_K>(a);
    case WeightType::Q5_K: return drive_quant<KQ5_K>(a);
    case WeightType::Q6_K: return drive_quant<KQ6_K>(a);
    case WeightType::F32: return a.n_rows == 1 ? drive_float<KF32, 4, 1>(a) : drive_float<KF32, 4, 6>(a);
    case WeightType::F16: return a.n_rows == 1 ? drive_float<KF16, 4, 1>(a) : drive_float<KF16, 4, 6>(a);
    case WeightType::BF16: return a.n_rows == 1 ? drive_float<KBF16, 4, 1>(a) : drive_float<KBF16, 4, 6>(a);
    default: return;
  }
}

}  // namespace

const KernelSet& kernels_avx512() {
  static const KernelSet k{"avx512-vnni", kTileRows, quantize, gemm};
  return k;
}

}  // namespace tandem::kern
