// Dispatch and the portable reference path of the attention kernels. The scalar path spells out
// the exact operation order the AVX-512 path uses (see attention.h).
#include "shard/kernels/attention.h"

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "shard/kernels/cpu_features.h"
#include "shard/kernels/attention_internal.h"
#include "shard/kernels/quant.h"

namespace tandem {
namespace kern {
namespace {

float load_elem(const uint8_t* row, int d, WeightType t) {
  if (t == WeightType::F32) {
    float f;
    std::memcpy(&f, row + 4 * d, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, row + 2 * d, 2);
  return fp16_to_fp32(h);
}

void check_type(WeightType t) {
  if (t != WeightType::F16 && t != WeightType::F32)
    throw std::invalid_argument("attention: KV cache type must be f16 or f32, not " + std::string(name(t)));
}

float dot(const float* q, const uint8_t* k, int head_dim, WeightType t) {
  float acc = 0.f;
  for (int d = 0; d < head_dim; ++d) acc = std::fma(q[d], load_elem(k, d, t), acc);
  return acc;
}

void scores_scalar(const float* q, int n_q, int head_dim, const uint8_t* k, size_t stride, WeightType t, int64_t n_pos,
                   float* scores) {
  for (int64_t j = 0; j < n_pos; ++j)
    for (int h = 0; h < n_q; ++h) scores[h * n_pos + j] = dot(q + h * head_dim, k + j * stride, head_dim, t);
}

void values_scalar(const float* p, int n_q, int64_t n_pos, const uint8_t* v, size_t stride, WeightType t, int head_dim,
                   float* out) {
  for (int h = 0; h < n_q; ++h)
    for (int d = 0; d < head_dim; ++d) {
      float acc = out[h * head_dim + d];
      for (int64_t j = 0; j < n_pos; ++j) acc = std::fma(p[h * n_pos + j], load_elem(v + j * stride, d, t), acc);
      out[h * head_dim + d] = acc;
    }
}

void to_kv_scalar(const float* src, void* dst, int64_t n, WeightType t) {
  if (t == WeightType::F32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * 4);
    return;
  }
  auto* h = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) h[i] = fp32_to_fp16(src[i]);
}

}  // namespace

const AttentionKernels& attention_scalar() {
  static const AttentionKernels k{"scalar", scores_scalar, values_scalar, to_kv_scalar};
  return k;
}

const AttentionKernels& attention_best() {
  static const AttentionKernels& k = []() -> const AttentionKernels& {
    const auto& f = cpu_features();
    if (f.avx512() && f.f16c && f.fma) return attention_avx512();
    if (f.avx2 && f.f16c && f.fma) return attention_avx2();
    return attention_scalar();
  }();
  return k;
}

}  // namespace kern

void attn_scores(const float* q, int n_q, int head_dim, const void* k_base, size_t k_stride_bytes, WeightType kv_type,
                 int64_t n_pos, float* scores) {
  kern::check_type(kv_type);
  kern::attention_best().scores(q, n_q, head_dim, static_cast<const uint8_t*>(k_base), k_stride_bytes, kv_type, n_pos,
                                scores);
}

void attn_values(const float* p, int n_q, int64_t n_pos, const void* v_base, size_t v_stride_bytes, WeightType kv_type,
                 int head_dim, float* out) {
  kern::check_type(kv_type);
  kern::attention_best().values(p, n_q, n_pos, static_cast<const uint8_t*>(v_base), v_stride_bytes, kv_type, head_dim,
                                out);
}

void f32_to_kv(const float* src, void* dst, int64_t n, WeightType kv_type) {
  kern::check_type(kv_type);
  kern::attention_best().to_kv(src, dst, n, kv_type);
}

}  // namespace tandem
