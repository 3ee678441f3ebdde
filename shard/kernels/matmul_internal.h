// Internal contract between matmul.cpp (packing, dispatch, threading) and the per-instruction-set
// kernel files (matmul_scalar.cpp, matmul_avx2.cpp, matmul_avx512.cpp).
//
// Packed layout: output rows are taken 16 at a time ("row group"; the last group is zero-padded);
// a group is stored contiguously, block after block along the columns, and inside a block the 16
// rows are interleaved so that one SIMD lane holds one output row:
//   F32/F16/BF16  four row groups (64 rows) are stored together, per column k 64 values (rows
//        0..63 of the quad), so that a GEMV streaming four groups reads one sequential stream
//        (several concurrent streams measurably lose DRAM bandwidth on this machine); rows are
//        zero-padded to a multiple of 64. Group g starts at float_group_offset(g) and its
//        consecutive columns are 64 values apart.
//   Q8_0 (34 B/row/block → 544 B): 16 fp16 scales, then 8 chunks of 64 B; chunk c holds for
//        row r the bytes 4r..4r+3 = quants k = 4c..4c+3 stored as q + 128 (unsigned).
//   Q4_0 (288 B): 16 fp16 scales, then 4 chunks of 64 B; in chunk c byte 4r+i holds quant
//        k = 8c+i (low nibble) and k = 8c+4+i (high nibble), unsigned 0..15 (value q - 8).
//   Q5_0 (352 B): as Q4_0 (scales, 4 nibble chunks), then one 64 B chunk of fifth bits: byte
//        4r+i holds in bit 2c+h the top bit of quant k = 8c+4h+i (unsigned 0..31, value q - 16).
//   Q4_K per 256-column super-block (2368 B): fp16 d[16], fp16 dmin[16], scales u8 [8 sub][16],
//        mins u8 [4 pairs][16 rows][2], then per 32-column sub-block 4 chunks as for Q4_0.
//   Q5_K per super-block (2880 B): the 320 B head of Q4_K, then per 32-column sub-block 320 B:
//        4 nibble chunks and one fifth-bit chunk, both as for Q5_0 (quants unsigned 0..31).
//   Q6_K per super-block (3360 B): fp16 d[16], scales i8 [16 sub][16], then per 16-column
//        sub-block 3 chunks: low nibbles of quads 0/1, of quads 2/3, and the 2-bit high parts of
//        quads 0..3 (bits 0-1, 2-3, 4-5, 6-7); quants unsigned 0..63 (value q - 32).
//
// Every kernel level computes each output element with the same operations in the same order:
// an exact int32 dot product per block, then acc = fma(float(isum), w_scale * x_scale, acc)
// block after block (K-quants per super-block: fma(-B, dmin*dx), then fma(A, d*dx), with the
// exact integers A = Σ_j scale_j·Σ q·xq and B = Σ_j min_j·Σ xq over the sub-blocks j for Q4_K/Q5_K,
// A = Σ_s scale_s·Σ (q-32)·xq for Q6_K); float weights: acc = fma(w, x, acc) column after column.
// Hence results are identical across levels, batch sizes, row positions and thread counts.
//
// BF16 weights are widened to f32 (exact) and take the same fma chain as F16/F32. AVX-512 BF16
// (vdpbf16ps) is deliberately not used: it would round the activations to bf16 and add product
// pairs in its own order, so its results would differ from the AVX2 and scalar paths.
// Activations are quantized per block to int8 (scale = absmax/127, round to nearest even), the
// same way by every level; the weights of Q8_0 are stored offset by +128 so that the unsigned ×
// signed VNNI instruction applies, with the offset removed through the activation block sums.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "shard/kernels/matmul.h"
#include "shard/kernels/weight_type.h"

namespace tandem::kern {

inline constexpr int kGroupRows = 16;

inline constexpr int kFloatQuad = 4;  // row groups interleaved per column for float weights

// Columns per block of the packed layout and its bytes per row group.
int64_t block_cols(WeightType t);
size_t group_block_bytes(WeightType t);
size_t group_bytes(WeightType t, int64_t cols);
// Byte offset of row group g of a float-weight matrix (see above).
size_t float_group_offset(WeightType t, int64_t g, int64_t cols);
// Bytes of a packed rows × cols matrix (with padding).
size_t packed_bytes(WeightType t, int64_t rows, int64_t cols);

// Activations quantized for one weight type, `n_rows` rows of `cols`:
//   q   int8 quants, row r at q + r*cols (values within ±127)
//   d   float scale per block (32 columns for Q8_0/Q4_0/Q5_0, 256 for the K-quants), row stride
//       cols/block
//   aux int32 words per block, row stride (cols/block)*aux_words:
//       Q8_0: -128 * Σq (offset of the unsigned weights), Q4_0: -8 * Σq, Q5_0: -16 * Σq,
//       Q4_K, Q5_K: 8 int16 sums of each 32-column sub-block (4 words),
//       Q6_K: -32 * Σq of each 16-column sub-block (16 words).
// Float weight types use the float activations directly.
// A kernel set may ask for the rows in tiles of T (KernelSet::tile_rows): then the R rows of the
// tile starting at row x0 (R = T, or what is left for the last tile) are stored interleaved — the
// 4-byte quad c of block b of its row r at q + x0*cols + b*bc*R + (c*R + r)*4, d at
// d + x0*nb + b*R + r, aux word k at aux + x0*nb*aw + (b*aw + k)*R + r. No padding rows: a 2-row
// call computes 2 rows. T == 1 is the plain layout above.
int aux_words(WeightType t);
bool is_quantized(WeightType t);

// The aux words of one activation block (the encoding above) from the sums of its quants over
// consecutive 16-column pieces (bc / 16 of them). `static`: each kernel file is compiled for its
// own instruction set, and one shared out-of-line copy could carry AVX-512 code into the others.
static inline void block_aux(WeightType t, const int32_t* sums16, int32_t* ab) {
  switch (t) {
    case WeightType::Q8_0: ab[0] = -128 * (sums16[0] + sums16[1]); break;
    case WeightType::Q4_0: ab[0] = -8 * (sums16[0] + sums16[1]); break;
    case WeightType::Q5_0: ab[0] = -16 * (sums16[0] + sums16[1]); break;
    case WeightType::Q4_K:
    case WeightType::Q5_K:
      for (int p = 0; p < 4; ++p) {
        const uint32_t s0 = static_cast<uint16_t>(sums16[4 * p] + sums16[4 * p + 1]);
        const uint32_t s1 = static_cast<uint16_t>(sums16[4 * p + 2] + sums16[4 * p + 3]);
        ab[p] = static_cast<int32_t>(s0 | (s1 << 16));
      }
      break;
    case WeightType::Q6_K:
      for (int s = 0; s < 16; ++s) ab[s] = -32 * sums16[s];
      break;
    default: break;
  }
}

struct Act {
  const float* x = nullptr;  // float activations (row stride cols)
  const int8_t* q = nullptr;
  const float* d = nullptr;
  const int32_t* aux = nullptr;
};

struct GemmArgs {
  WeightType type;
  const uint8_t* w;  // packed matrix
  int64_t rows, cols;
  Act act;
  int64_t n_rows;
  float* y;
  int64_t ldy;
  int64_t group0, group1;  // row groups to compute
};

struct KernelSet {
  const char* name;
  int tile_rows;  // activation interleave for n_rows > 1 (1: plain rows)
  // Quantizes one activation row (cols floats) for weight type t into q / d / aux of that row.
  void (*quantize)(WeightType t, const float* x, int64_t cols, int8_t* q, float* d, int32_t* aux);
  void (*gemm)(const GemmArgs& a);
};

const KernelSet& kernels_scalar();
const KernelSet& kernels_avx2();
const KernelSet& kernels_avx512();
// The best set this CPU runs (capped by $TANDEM_KERNELS).
const KernelSet& kernels_best();
// Every set this CPU can run, scalar first (tests compare them).
std::vector<const KernelSet*> kernels_available();

// matmul() with an explicit kernel set.
void matmul_with(const KernelSet& ks, const PackedMatrix& w, const float* x, int64_t n_rows, float* y, int64_t ldy,
                 ThreadPool& pool);

}  // namespace tandem::kern
