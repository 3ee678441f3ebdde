#include "shard/model/layer_ops.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

// glibc's vector expf (libmvec, <= 4 ulp): at a 2048-token context a scalar expf per score would
// cost more than the attention dot products themselves. The widest variant the CPU has is used
// (the SSE2 one exists on every x86-64), so attention probabilities may differ by an ulp between
// CPUs with and without AVX-512; on one machine they are fixed, whatever the batch or threads.
extern "C" __m128 _ZGVbN4v_expf(__m128);
extern "C" __attribute__((target("avx512f"))) __m512 _ZGVeN16v_expf(__m512);

namespace tandem {

void rms_norm(const float* x, const float* w, float* out, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void rope(float* x, int n_heads, int head_dim, int rope_dim, int pos, const float* inv_freq) {
  const int half = rope_dim / 2;
  // Angles are shared by all heads of the row: compute them once.
  float cs[512], sn[512];
  for (int i = 0; i < half && i < 512; ++i) {
    const float a = static_cast<float>(pos) * inv_freq[i];
    cs[i] = std::cos(a);
    sn[i] = std::sin(a);
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      const float a = v[2 * i], b = v[2 * i + 1];
      v[2 * i] = a * cs[i] - b * sn[i];
      v[2 * i + 1] = a * sn[i] + b * cs[i];
    }
  }
}

void silu_mul(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = a[i] / (1.0f + std::exp(-a[i])) * b[i];
}

// The maximum is exact whatever the order, so this equals the scalar loop (scores are finite);
// scalar, its dependency chain cost ~1 ms per token at 2048 positions.
__attribute__((target("avx512f"))) static float max_avx512(const float* x, int n) {
  __m512 m = _mm512_set1_ps(-INFINITY);
  int i = 0;
  for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
  if (i < n) m = _mm512_max_ps(m, _mm512_mask_loadu_ps(_mm512_set1_ps(-INFINITY), static_cast<__mmask16>((1u << (n - i)) - 1), x + i));
  return _mm512_reduce_max_ps(m);
}

__attribute__((target("avx512f"))) static float exp_shifted_avx512(float* x, int n) {
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

void softmax(float* x, int n) {
  float mx = x[0];
  for (int i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  float sum = 0;
  for (int i = 0; i < n; ++i) {
    x[i] = std::exp(x[i] - mx);
    sum += x[i];
  }
  const float inv = 1.0f / sum;
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

}  // namespace tandem
