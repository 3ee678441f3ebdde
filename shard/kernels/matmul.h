// The kernels' contract: y = x · Wᵀ for any weight type, one row (GEMV) or many (GEMM).
//
// Weights are packed once at load into a layout the kernels choose (they may interleave rows or
// split scales for SIMD); activations are quantized to 8 bits per call for quantized weights.
// Results are independent of the thread count and of how many rows are in the batch, so a
// sequence decoded alone and inside a batch gives the same logits (batch invariance).
#pragma once
#include <cstdint>
#include <memory>

#include "shard/kernels/thread_pool.h"
#include "shard/kernels/weight_type.h"

namespace tandem {

struct PackedMatrix {
  WeightType type = WeightType::F32;
  int64_t rows = 0;  // output features
  int64_t cols = 0;  // input features
  std::shared_ptr<uint8_t> data;  // 64-byte aligned, kernel-private layout
  size_t bytes = 0;               // weight bytes a full matmul reads (for GB/s figures)
};

// Packs `rows` rows of `cols` elements from ggml-layout rows `src_stride` bytes apart (a column
// slice of a larger matrix is `src` offset into each row, with the full row as stride).
// cols must be a multiple of the block size.
PackedMatrix pack_matrix(WeightType type, int64_t rows, int64_t cols, const uint8_t* src, size_t src_stride);

// y[r * ldy + o] = sum_i W[o][i] * x[r * cols + i] for r < n_rows, o < rows.
void matmul(const PackedMatrix& w, const float* x, int64_t n_rows, float* y, int64_t ldy, ThreadPool& pool);

// Dequantizes rows [row0, row0 + n) to floats (n × cols), e.g. for embedding lookup.
void unpack_rows(const PackedMatrix& w, int64_t row0, int64_t n, float* dst);

}  // namespace tandem
