#include "shard/kernels/matmul.h"

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#include "shard/kernels/cpu_features.h"
#include "shard/kernels/blocks.h"
#include "shard/kernels/matmul_internal.h"
#include "shard/kernels/quant.h"

namespace tandem {
namespace kern {

int64_t block_cols(WeightType t) {
  switch (t) {
    case WeightType::Q8_0:
    case WeightType::Q4_0:
    case WeightType::Q5_0: return 32;
    case WeightType::Q4_K:
    case WeightType::Q5_K:
    case WeightType::Q6_K: return 256;
    default: return 1;
  }
}

size_t group_block_bytes(WeightType t) {
  switch (t) {
    case WeightType::F32: return 4 * kGroupRows;
    case WeightType::F16:
    case WeightType::BF16: return 2 * kGroupRows;
    case WeightType::Q8_0: return 544;
    case WeightType::Q4_0: return 288;
    case WeightType::Q5_0: return 352;
    case WeightType::Q4_K: return 2368;
    case WeightType::Q5_K: return 2880;
    case WeightType::Q6_K: return 3360;
    default: throw std::invalid_argument("no packed layout for weight type " + std::string(name(t)));
  }
}

size_t group_bytes(WeightType t, int64_t cols) { return group_block_bytes(t) * static_cast<size_t>(cols / block_cols(t)); }

size_t float_group_offset(WeightType t, int64_t g, int64_t cols) {
  const size_t esz = group_block_bytes(t) / kGroupRows;
  return (static_cast<size_t>(g / kFloatQuad) * cols * kFloatQuad * kGroupRows + (g % kFloatQuad) * kGroupRows) * esz;
}

size_t packed_bytes(WeightType t, int64_t rows, int64_t cols) {
  const int64_t unit = is_quantized(t) ? kGroupRows : kGroupRows * kFloatQuad;
  return group_bytes(t, cols) * static_cast<size_t>((rows + unit - 1) / unit * (unit / kGroupRows));
}

int aux_words(WeightType t) {
  switch (t) {
    case WeightType::Q8_0:
    case WeightType::Q4_0:
    case WeightType::Q5_0: return 1;
    case WeightType::Q4_K:
    case WeightType::Q5_K: return 4;
    case WeightType::Q6_K: return 16;
    default: return 0;
  }
}

bool is_quantized(WeightType t) { return block_cols(t) > 1; }

const KernelSet& kernels_best() {
  static const KernelSet& k = [&]() -> const KernelSet& {
    const auto& f = cpu_features();
    if (f.avx512() && f.avx512vnni && f.avx2 && f.fma && f.f16c) return kernels_avx512();
    if (f.avx2 && f.fma && f.f16c) return kernels_avx2();
    return kernels_scalar();
  }();
  return k;
}

std::vector<const KernelSet*> kernels_available() {
  const auto& f = cpu_features();
  std::vector<const KernelSet*> v{&kernels_scalar()};
  if (f.avx2 && f.fma && f.f16c) v.push_back(&kernels_avx2());
  if (f.avx512() && f.avx512vnni && f.avx2 && f.fma && f.f16c) v.push_back(&kernels_avx512());
  return v;
}

}  // namespace kern

namespace {

using kern::kGroupRows;

uint16_t rd16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
void wr16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

// Quant k (0..255) of a ggml Q6_K block, unsigned 0..63.
int q6k_quant(const blocks::Q6_K& b, int e) {
  const int h = e / 128, t = e % 128, quarter = t / 32, l = t % 32;
  const uint8_t lo = b.ql[64 * h + (quarter & 1) * 32 + l];
  const int low = quarter < 2 ? lo & 0xF : lo >> 4;
  return low | (((b.qh[32 * h + l] >> (2 * quarter)) & 3) << 4);
}

// Quant k (0..31) of a ggml Q4_0 block, unsigned 0..15.
int q4_0_quant(const blocks::Q4_0& b, int k) { return k < 16 ? b.qs[k] & 0xF : b.qs[k - 16] >> 4; }

// Quant e (0..255) of a ggml Q4_K block.
int q4k_quant(const blocks::Q4_K& b, int e) {
  const int c = e / 64, l = e % 64;
  return l < 32 ? b.qs[32 * c + l] & 0xF : b.qs[32 * c + l - 32] >> 4;
}

// Writes 4-bit quant q of column k (0..31 within a 32-column unit) of row r into chunk area `c`
// (4 chunks of 64 B: byte 4r + k%4 of chunk k/8, low nibble for k%8 < 4).
void put_nibble(uint8_t* c, int r, int k, int q) {
  uint8_t& byte = c[64 * (k / 8) + 4 * r + k % 4];
  byte = static_cast<uint8_t>((k % 8) < 4 ? (byte & 0xF0) | q : (byte & 0x0F) | (q << 4));
}
int get_nibble(const uint8_t* c, int r, int k) {
  const uint8_t byte = c[64 * (k / 8) + 4 * r + k % 4];
  return (k % 8) < 4 ? byte & 0xF : byte >> 4;
}

// The fifth bit of quant k (0..31 within a 32-column unit) of row r in a 64 B fifth-bit chunk:
// bit 2(k/8) + (k%8)/4 of byte 4r + k%4.
int fifth_bit_pos(int k) { return 2 * (k / 8) + (k % 8) / 4; }
void put_fifth(uint8_t* h, int r, int k, int bit) {
  h[4 * r + k % 4] = static_cast<uint8_t>(h[4 * r + k % 4] | (bit << fifth_bit_pos(k)));
}
int get_fifth(const uint8_t* h, int r, int k) { return (h[4 * r + k % 4] >> fifth_bit_pos(k)) & 1; }

// Quant k (0..31) of a ggml Q5_0 block, unsigned 0..31.
int q5_0_quant(const blocks::Q5_0& b, int k) {
  uint32_t qh;
  std::memcpy(&qh, b.qh, 4);
  const int low = k < 16 ? b.qs[k] & 0xF : b.qs[k - 16] >> 4;
  return low | static_cast<int>(((qh >> k) & 1) << 4);
}

// Quant e (0..255) of a ggml Q5_K block, unsigned 0..31.
int q5k_quant(const blocks::Q5_K& b, int e) {
  const int c = e / 64, l = e % 64;
  const int low = l < 32 ? b.qs[32 * c + l] & 0xF : b.qs[32 * c + l - 32] >> 4;
  return low | (((b.qh[l % 32] >> (2 * c + l / 32)) & 1) << 4);
}

// Packs ggml block `src` as row r of the row-group block at p (quantized types).
void pack_block(WeightType t, const uint8_t* src, int r, uint8_t* p) {
  switch (t) {
    case WeightType::Q8_0: {
      blocks::Q8_0 b;
      std::memcpy(&b, src, sizeof b);
      wr16(p + 2 * r, b.d);
      for (int k = 0; k < 32; ++k) p[32 + 64 * (k / 4) + 4 * r + k % 4] = static_cast<uint8_t>(b.qs[k] + 128);
      return;
    }
    case WeightType::Q4_0: {
      blocks::Q4_0 b;
      std::memcpy(&b, src, sizeof b);
      wr16(p + 2 * r, b.d);
      for (int k = 0; k < 32; ++k) put_nibble(p + 32, r, k, q4_0_quant(b, k));
      return;
    }
    case WeightType::Q5_0: {
      blocks::Q5_0 b;
      std::memcpy(&b, src, sizeof b);
      wr16(p + 2 * r, b.d);
      for (int k = 0; k < 32; ++k) {
        const int q = q5_0_quant(b, k);
        put_nibble(p + 32, r, k, q & 0xF);
        put_fifth(p + 288, r, k, q >> 4);
      }
      return;
    }
    case WeightType::Q5_K: {
      blocks::Q5_K b;
      std::memcpy(&b, src, sizeof b);
      wr16(p + 2 * r, b.d);
      wr16(p + 32 + 2 * r, b.dmin);
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        blocks::q4k_scale_min(b.scales, j, sc, m);
        p[64 + 16 * j + r] = static_cast<uint8_t>(sc);
        p[192 + 32 * (j / 2) + 2 * r + j % 2] = static_cast<uint8_t>(m);
        uint8_t* sub = p + 320 + 320 * j;
        for (int k = 0; k < 32; ++k) {
          const int q = q5k_quant(b, 32 * j + k);
          put_nibble(sub, r, k, q & 0xF);
          put_fifth(sub + 256, r, k, q >> 4);
        }
      }
      return;
    }
    case WeightType::Q4_K: {
      blocks::Q4_K b;
      std::memcpy(&b, src, sizeof b);
      wr16(p + 2 * r, b.d);
      wr16(p + 32 + 2 * r, b.dmin);
      for (int j = 0; j < 8; ++j) {
        int sc, m;
        blocks::q4k_scale_min(b.scales, j, sc, m);
        p[64 + 16 * j + r] = static_cast<uint8_t>(sc);
        p[192 + 32 * (j / 2) + 2 * r + j % 2] = static_cast<uint8_t>(m);
        for (int k = 0; k < 32; ++k) put_nibble(p + 320 + 256 * j, r, k, q4k_quant(b, 32 * j + k));
      }
      return;
    }
    case WeightType::Q6_K: {
      blocks::Q6_K b;
      std::memcpy(&b, src, sizeof b);
      wr16(p + 2 * r, b.d);
      for (int s = 0; s < 16; ++s) {
        p[32 + 16 * s + r] = static_cast<uint8_t>(b.scales[s]);
        uint8_t* c = p + 288 + 192 * s;
        for (int k = 0; k < 16; ++k) {
          const int q = q6k_quant(b, 16 * s + k), quad = k / 4, i = k % 4;
          uint8_t& lo = c[64 * (quad / 2) + 4 * r + i];
          lo = static_cast<uint8_t>(quad % 2 ? (lo & 0x0F) | ((q & 0xF) << 4) : (lo & 0xF0) | (q & 0xF));
          uint8_t& hi = c[128 + 4 * r + i];
          hi = static_cast<uint8_t>((hi & ~(3 << (2 * quad))) | ((q >> 4) << (2 * quad)));
        }
      }
      return;
    }
    default: throw std::invalid_argument("pack_matrix: unsupported weight type " + std::string(name(t)));
  }
}

// The inverse of pack_block: rebuilds the ggml block bytes of row r.
void unpack_block(WeightType t, const uint8_t* p, int r, uint8_t* dst) {
  switch (t) {
    case WeightType::Q8_0: {
      blocks::Q8_0 b;
      b.d = rd16(p + 2 * r);
      for (int k = 0; k < 32; ++k) b.qs[k] = static_cast<int8_t>(p[32 + 64 * (k / 4) + 4 * r + k % 4] - 128);
      std::memcpy(dst, &b, sizeof b);
      return;
    }
    case WeightType::Q4_0: {
      blocks::Q4_0 b;
      b.d = rd16(p + 2 * r);
      for (int k = 0; k < 16; ++k)
        b.qs[k] = static_cast<uint8_t>(get_nibble(p + 32, r, k) | (get_nibble(p + 32, r, k + 16) << 4));
      std::memcpy(dst, &b, sizeof b);
      return;
    }
    case WeightType::Q5_0: {
      blocks::Q5_0 b;
      b.d = rd16(p + 2 * r);
      uint32_t qh = 0;
      for (int k = 0; k < 16; ++k)
        b.qs[k] = static_cast<uint8_t>(get_nibble(p + 32, r, k) | (get_nibble(p + 32, r, k + 16) << 4));
      for (int k = 0; k < 32; ++k) qh |= static_cast<uint32_t>(get_fifth(p + 288, r, k)) << k;
      std::memcpy(b.qh, &qh, 4);
      std::memcpy(dst, &b, sizeof b);
      return;
    }
    case WeightType::Q5_K: {
      blocks::Q5_K b;
      std::memset(&b, 0, sizeof b);
      b.d = rd16(p + 2 * r);
      b.dmin = rd16(p + 32 + 2 * r);
      uint8_t sc[8], m[8];
      for (int j = 0; j < 8; ++j) sc[j] = p[64 + 16 * j + r], m[j] = p[192 + 32 * (j / 2) + 2 * r + j % 2];
      blocks::q4k_pack_scales(sc, m, b.scales);
      for (int e = 0; e < 256; ++e) {
        const uint8_t* sub = p + 320 + 320 * (e / 32);
        const int q = get_nibble(sub, r, e % 32) | (get_fifth(sub + 256, r, e % 32) << 4);
        const int c = e / 64, l = e % 64;
        b.qs[32 * c + l % 32] |= static_cast<uint8_t>(l < 32 ? q & 0xF : (q & 0xF) << 4);
        b.qh[l % 32] |= static_cast<uint8_t>((q >> 4) << (2 * c + l / 32));
      }
      std::memcpy(dst, &b, sizeof b);
      return;
    }
    case WeightType::Q4_K: {
      blocks::Q4_K b;
      b.d = rd16(p + 2 * r);
      b.dmin = rd16(p + 32 + 2 * r);
      std::memset(b.scales, 0, sizeof b.scales);
      for (int j = 0; j < 8; ++j) {
        const int sc = p[64 + 16 * j + r], m = p[192 + 32 * (j / 2) + 2 * r + j % 2];
        if (j < 4) {
          b.scales[j] |= static_cast<uint8_t>(sc);
          b.scales[j + 4] |= static_cast<uint8_t>(m);
        } else {
          b.scales[j + 4] = static_cast<uint8_t>((sc & 0xF) | ((m & 0xF) << 4));
          b.scales[j - 4] |= static_cast<uint8_t>((sc >> 4) << 6);
          b.scales[j] |= static_cast<uint8_t>((m >> 4) << 6);
        }
      }
      for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) {
          const int e0 = 64 * c + l, e1 = e0 + 32;
          const int q0 = get_nibble(p + 320 + 256 * (e0 / 32), r, e0 % 32);
          const int q1 = get_nibble(p + 320 + 256 * (e1 / 32), r, e1 % 32);
          b.qs[32 * c + l] = static_cast<uint8_t>(q0 | (q1 << 4));
        }
      std::memcpy(dst, &b, sizeof b);
      return;
    }
    case WeightType::Q6_K: {
      blocks::Q6_K b;
      std::memset(&b, 0, sizeof b);
      b.d = rd16(p + 2 * r);
      for (int s = 0; s < 16; ++s) b.scales[s] = static_cast<int8_t>(p[32 + 16 * s + r]);
      for (int e = 0; e < 256; ++e) {
        const uint8_t* c = p + 288 + 192 * (e / 16);
        const int k = e % 16, quad = k / 4, i = k % 4;
        const uint8_t lo = c[64 * (quad / 2) + 4 * r + i];
        const int q = (quad % 2 ? lo >> 4 : lo & 0xF) | (((c[128 + 4 * r + i] >> (2 * quad)) & 3) << 4);
        const int h = e / 128, t2 = e % 128, quarter = t2 / 32, l = t2 % 32;
        b.ql[64 * h + (quarter & 1) * 32 + l] |= static_cast<uint8_t>(quarter < 2 ? q & 0xF : (q & 0xF) << 4);
        b.qh[32 * h + l] |= static_cast<uint8_t>((q >> 4) << (2 * quarter));
      }
      std::memcpy(dst, &b, sizeof b);
      return;
    }
    default: throw std::invalid_argument("unpack_rows: unsupported weight type " + std::string(name(t)));
  }
}

// Matrices of 2 MiB or more start on a 2 MiB boundary and ask for transparent huge pages: a GEMV
// streams the whole matrix, and on 4 KiB pages the hardware prefetcher stops at every page
// boundary (measured: Q4_0 2048×2048 GEMV 22 → 29 GB/s). The size is not rounded up, so the
// tail below 2 MiB stays on small pages and no memory is wasted.
std::shared_ptr<uint8_t> allocate(size_t bytes) {
  constexpr size_t kHuge = size_t{2} << 20, kPage = 4096;
  if (bytes < kHuge) {
    void* p = std::aligned_alloc(64, std::max<size_t>(64, (bytes + 63) / 64 * 64));
    if (!p) throw std::bad_alloc();
    return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
  }
  const size_t len = (bytes + kPage - 1) / kPage * kPage;
  void* raw = mmap(nullptr, len + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto base = reinterpret_cast<uintptr_t>(raw);
  const uintptr_t aligned = (base + kHuge - 1) / kHuge * kHuge;
  if (aligned > base) munmap(raw, aligned - base);
  if (const size_t tail = base + len + kHuge - (aligned + len); tail > 0) munmap(reinterpret_cast<void*>(aligned + len), tail);
  madvise(reinterpret_cast<void*>(aligned), len, MADV_HUGEPAGE);
  return std::shared_ptr<uint8_t>(reinterpret_cast<uint8_t*>(aligned), [len](uint8_t* q) { munmap(q, len); });
}

// Per-thread scratch for quantized activations, reused across calls so a decode step does not
// allocate (and fault in fresh pages) for every matmul.
struct ActScratch {
  std::vector<int8_t> q;
  std::vector<float> d;
  std::vector<int32_t> aux;
};

// The calling thread's scratch. Lambdas run on pool workers must reach it through a reference
// taken here: naming a thread_local inside them would pick the worker's own instance.
ActScratch& act_scratch() {
  thread_local ActScratch s;
  return s;
}

}  // namespace

PackedMatrix pack_matrix(WeightType type, int64_t rows, int64_t cols, const uint8_t* src, size_t src_stride) {
  const int64_t bc = kern::block_cols(type);
  if (rows < 0 || cols <= 0 || cols % std::max<int64_t>(bc, 1) != 0)
    throw std::invalid_argument("pack_matrix: " + std::to_string(rows) + "x" + std::to_string(cols) + " " +
                                std::string(name(type)) + " matrix: cols must be a positive multiple of " +
                                std::to_string(bc));
  PackedMatrix m;
  m.type = type;
  m.rows = rows;
  m.cols = cols;
  const int64_t groups = (rows + kGroupRows - 1) / kGroupRows;
  const size_t gb = kern::group_bytes(type, cols), bb = kern::group_block_bytes(type);
  m.bytes = kern::packed_bytes(type, rows, cols);
  m.data = allocate(m.bytes);
  uint8_t* out = m.data.get();
  std::memset(out, 0, m.bytes);
  const size_t src_block = info(type).block_bytes;
  const int64_t nb = cols / bc;
  if (!kern::is_quantized(type)) {
    // A transpose of each 64-row band, done in 64-column tiles that stay in L1.
    const size_t esz = src_block;
    constexpr int64_t kBand = kern::kFloatQuad * kGroupRows, kTile = 64;
    for (int64_t o0 = 0; o0 < rows; o0 += kBand) {
      uint8_t* band = out + kern::float_group_offset(type, o0 / kGroupRows, cols);
      const int64_t n = std::min(kBand, rows - o0);
      for (int64_t k0 = 0; k0 < cols; k0 += kTile)
        for (int64_t r = 0; r < n; ++r) {
          const uint8_t* row = src + static_cast<size_t>(o0 + r) * src_stride;
          for (int64_t k = k0; k < std::min(cols, k0 + kTile); ++k)
            std::memcpy(band + (k * kBand + r) * esz, row + k * esz, esz);
        }
    }
    return m;
  }
  for (int64_t g = 0; g < groups; ++g)
    for (int r = 0; r < kGroupRows && g * kGroupRows + r < rows; ++r) {
      const uint8_t* row = src + static_cast<size_t>(g * kGroupRows + r) * src_stride;
      for (int64_t b = 0; b < nb; ++b) pack_block(type, row + b * src_block, r, out + g * gb + b * bb);
    }
  return m;
}

void unpack_rows(const PackedMatrix& w, int64_t row0, int64_t n, float* dst) {
  if (row0 < 0 || n < 0 || row0 + n > w.rows)
    throw std::out_of_range("unpack_rows: rows [" + std::to_string(row0) + ", " + std::to_string(row0 + n) +
                            ") outside a matrix of " + std::to_string(w.rows) + " rows");
  const int64_t bc = kern::block_cols(w.type), nb = w.cols / bc;
  const size_t gb = kern::group_bytes(w.type, w.cols), bb = kern::group_block_bytes(w.type);
  const size_t src_block = info(w.type).block_bytes;
  std::vector<uint8_t> row(static_cast<size_t>(nb) * src_block);
  for (int64_t o = row0; o < row0 + n; ++o) {
    if (!kern::is_quantized(w.type)) {
      const uint8_t* p = w.data.get() + kern::float_group_offset(w.type, o / kGroupRows, w.cols) + (o % kGroupRows) * src_block;
      for (int64_t k = 0; k < w.cols; ++k)
        std::memcpy(row.data() + k * src_block, p + k * kern::kFloatQuad * kGroupRows * src_block, src_block);
      dequantize_row(w.type, row.data(), dst + (o - row0) * w.cols, w.cols);
      continue;
    }
    const uint8_t* g = w.data.get() + (o / kGroupRows) * gb;
    for (int64_t b = 0; b < nb; ++b) unpack_block(w.type, g + b * bb, static_cast<int>(o % kGroupRows), row.data() + b * src_block);
    dequantize_row(w.type, row.data(), dst + (o - row0) * w.cols, w.cols);
  }
}

void matmul(const PackedMatrix& w, const float* x, int64_t n_rows, float* y, int64_t ldy, ThreadPool& pool) {
  kern::matmul_with(kern::kernels_best(), w, x, n_rows, y, ldy, pool);
}

void kern::matmul_with(const KernelSet& ks, const PackedMatrix& w, const float* x, int64_t n_rows, float* y,
                       int64_t ldy, ThreadPool& pool) {
  if (n_rows <= 0 || w.rows == 0) return;
  kern::GemmArgs a{};
  a.type = w.type;
  a.w = w.data.get();
  a.rows = w.rows;
  a.cols = w.cols;
  a.n_rows = n_rows;
  a.y = y;
  a.ldy = ldy;
  a.act.x = x;
  if (kern::is_quantized(w.type)) {
    ActScratch& s = act_scratch();
    const int64_t cols = w.cols, bc = kern::block_cols(w.type), nb = cols / bc;
    const int aw = kern::aux_words(w.type);
    // Rows in tiles when the kernels want interleaved tiles (see matmul_internal.h); the last tile
    // holds just the remaining rows, so a 2- or 3-row verification block costs 2 or 3 rows.
    const int64_t T = n_rows > 1 ? ks.tile_rows : 1;
    const int64_t tiles = (n_rows + T - 1) / T;
    const size_t nq = static_cast<size_t>(n_rows * cols), nd = static_cast<size_t>(n_rows * nb);
    if (s.q.size() < nq) s.q.resize(nq);
    if (s.d.size() < nd) s.d.resize(nd);
    if (s.aux.size() < nd * aw) s.aux.resize(nd * aw);
    int8_t* q = s.q.data();
    float* d = s.d.data();
    int32_t* aux = s.aux.data();
    auto quantize_tiles = [&](int64_t t0, int64_t t1) {
      if (T == 1) {
        for (int64_t r = t0; r < t1; ++r) ks.quantize(w.type, x + r * cols, cols, q + r * cols, d + r * nb, aux + r * nb * aw);
        return;
      }
      std::vector<int8_t> rq(cols, 0);
      std::vector<float> rd(nb, 0.f);
      std::vector<int32_t> ra(nb * aw, 0);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t row0 = t * T, rt = std::min(T, n_rows - row0);
        int8_t* qt = q + row0 * cols;
        float* dt = d + row0 * nb;
        int32_t* at = aux + row0 * nb * aw;
        for (int64_t r = 0; r < rt; ++r) {
          ks.quantize(w.type, x + (row0 + r) * cols, cols, rq.data(), rd.data(), ra.data());
          for (int64_t b = 0; b < nb; ++b) {
            for (int64_t c = 0; c < bc / 4; ++c) std::memcpy(qt + b * bc * rt + (c * rt + r) * 4, rq.data() + b * bc + 4 * c, 4);
            dt[b * rt + r] = rd[b];
            for (int k = 0; k < aw; ++k) at[(b * aw + k) * rt + r] = ra[b * aw + k];
          }
        }
      }
    };
    // Quantizing a few rows is cheaper than waking the pool.
    if (n_rows * cols >= (int64_t{1} << 16))
      pool.parallel_for(tiles, 1, quantize_tiles);
    else
      quantize_tiles(0, tiles);
    a.act.q = q;
    a.act.d = d;
    a.act.aux = aux;
  }
  const int64_t groups = (w.rows + kGroupRows - 1) / kGroupRows;
  // Four row groups per chunk: the GEMV kernels stream four groups at once.
  pool.parallel_for(groups, 4, [&](int64_t g0, int64_t g1) {
    kern::GemmArgs part = a;
    part.group0 = g0;
    part.group1 = g1;
    ks.gemm(part);
  });
}

}  // namespace tandem
