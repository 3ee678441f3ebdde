#include "shard/model/layer_ops.h"

#include <algorithm>
#include <cmath>

namespace tandem {

void rms_norm(const float* x, const float* w, float* out, int n, float eps) {
  double ss = 0;
  for (int i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const float scale = static_cast<float>(1.0 / std::sqrt(ss / n + eps));
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * w[i];
}

void rope(float* x, int n_heads, int head_dim, int rope_dim, int pos, const float* inv_freq, RopeStyle style) {
  const int half = rope_dim / 2;
  // Angles are shared by all heads of the row: compute them once.
  float cs[512], sn[512];
  for (int i = 0; i < half && i < 512; ++i) {
    const float a = static_cast<float>(pos) * inv_freq[i];
    cs[i] = std::cos(a);
    sn[i] = std::sin(a);
  }
  // Two loops with constant offsets rather than one with a runtime stride: the compiler
  // vectorises the NeoX halves and keeps the adjacent pairs as they were.
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    if (style == RopeStyle::Neox) {
      float* w = v + half;
      for (int i = 0; i < half; ++i) {
        const float a = v[i], b = w[i];
        v[i] = a * cs[i] - b * sn[i];
        w[i] = a * sn[i] + b * cs[i];
      }
    } else {
      for (int i = 0; i < half; ++i) {
        const float a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * cs[i] - b * sn[i];
        v[2 * i + 1] = a * sn[i] + b * cs[i];
      }
    }
  }
}

void add_bias(float* x, int rows, int n, const float* b) {
  for (int r = 0; r < rows; ++r) {
    float* row = x + static_cast<int64_t>(r) * n;
    for (int i = 0; i < n; ++i) row[i] += b[i];
  }
}

void silu_mul(float* a, const float* b, int64_t n) {
  for (int64_t i = 0; i < n; ++i) a[i] = a[i] / (1.0f + std::exp(-a[i])) * b[i];
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
