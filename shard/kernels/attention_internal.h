// Internal: the instruction-set specific attention kernels behind attention.h.
#pragma once
#include <cstddef>
#include <cstdint>

#include "shard/kernels/weight_type.h"

namespace tandem::kern {

struct AttentionKernels {
  const char* name;
  void (*scores)(const float* q, int n_q, int head_dim, const uint8_t* k, size_t k_stride, WeightType t, int64_t n_pos,
                 float* scores);
  void (*values)(const float* p, int n_q, int64_t n_pos, const uint8_t* v, size_t v_stride, WeightType t, int head_dim,
                 float* out);
  void (*to_kv)(const float* src, void* dst, int64_t n, WeightType t);
};

const AttentionKernels& attention_scalar();
const AttentionKernels& attention_avx2();
const AttentionKernels& attention_avx512();
const AttentionKernels& attention_best();

}  // namespace tandem::kern
