// Portable kernels: the reference for the packed layouts and for the exact order of floating-point
// operations every SIMD level reproduces (see matmul_internal.h).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "shard/kernels/matmul_internal.h"
#include "shard/kernels/quant.h"

namespace tandem::kern {
namespace {

constexpr int R = kGroupRows;

int16_t load_i16(const uint8_t* p) {
  int16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
uint16_t load_u16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}
float load_f32(const uint8_t* p) {
  float v;
  std::memcpy(&v, p, 4);
  return v;
}

// Nearest-even rounding with the saturation of cvtps2dq followed by a clamp to ±127 (NaN → -127).
int8_t quant8(float v) {
  const float r = std::nearbyint(v);
  if (r >= -127.f && r <= 127.f) return static_cast<int8_t>(r);
  return r > 127.f ? 127 : -127;
}

// Quant k (0..31) of row r of a 32-column unit stored as 4 nibble chunks at `nib` and a fifth-bit
// chunk at `hi` (Q5_0 / Q5_K, matmul_internal.h): unsigned 0..31.
int q5_unit(const uint8_t* nib, const uint8_t* hi, int r, int k) {
  const uint8_t byte = nib[64 * (k / 8) + 4 * r + k % 4];
  const int low = (k % 8) < 4 ? byte & 0xF : byte >> 4;
  return low | (((hi[4 * r + k % 4] >> (2 * (k / 8) + (k % 8) / 4)) & 1) << 4);
}

void quantize(WeightType t, const float* x, int64_t cols, int8_t* q, float* d, int32_t* aux) {
  const int64_t bc = block_cols(t);
  const int aw = aux_words(t);
  for (int64_t b = 0; b < cols / bc; ++b) {
    const float* xb = x + b * bc;
    int8_t* qb = q + b * bc;
    float amax = 0;
    for (int64_t i = 0; i < bc; ++i) amax = std::max(amax, std::fabs(xb[i]));
    const float id = amax != 0 ? 127.f / amax : 0.f;
    d[b] = amax / 127.f;
    for (int64_t i = 0; i < bc; ++i) qb[i] = quant8(xb[i] * id);
    int32_t sums16[16];
    for (int64_t i = 0; i < bc; i += 16) {
      int32_t sum = 0;
      for (int64_t k = i; k < i + 16; ++k) sum += qb[k];
      sums16[i / 16] = sum;
    }
    block_aux(t, sums16, aux + b * aw);
  }
}

// One row group × one activation row. acc[16] receives the 16 outputs.
void group_row(const GemmArgs& a, const uint8_t* g, int64_t xr, float* acc) {
  const int64_t cols = a.cols;
  std::fill(acc, acc + R, 0.f);
  const float* x = a.act.x + xr * cols;
  constexpr int64_t kColStride = kFloatQuad * R;  // values between consecutive columns
  switch (a.type) {
    case WeightType::F32:
      for (int64_t k = 0; k < cols; ++k)
        for (int r = 0; r < R; ++r) acc[r] = std::fma(load_f32(g + (k * kColStride + r) * 4), x[k], acc[r]);
      return;
    case WeightType::F16:
      for (int64_t k = 0; k < cols; ++k)
        for (int r = 0; r < R; ++r) acc[r] = std::fma(fp16_to_fp32(load_u16(g + (k * kColStride + r) * 2)), x[k], acc[r]);
      return;
    case WeightType::BF16:
      for (int64_t k = 0; k < cols; ++k)
        for (int r = 0; r < R; ++r) acc[r] = std::fma(bf16_to_fp32(load_u16(g + (k * kColStride + r) * 2)), x[k], acc[r]);
      return;
    default: break;
  }
  const int64_t bc = block_cols(a.type), nb = cols / bc;
  const int aw = aux_words(a.type);
  const int8_t* xq = a.act.q + xr * cols;
  const float* xd = a.act.d + xr * nb;
  const int32_t* xa = a.act.aux + xr * nb * aw;
  const size_t bb = group_block_bytes(a.type);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* p = g + b * bb;
    const int8_t* xb = xq + b * bc;
    const float dx = xd[b];
    const int32_t* ab = xa + b * aw;
    for (int r = 0; r < R; ++r) {
      switch (a.type) {
        case WeightType::Q8_0: {
          int32_t s = ab[0];
          for (int k = 0; k < 32; ++k) s += p[32 + 64 * (k / 4) + 4 * r + k % 4] * xb[k];
          acc[r] = std::fma(static_cast<float>(s), fp16_to_fp32(load_u16(p + 2 * r)) * dx, acc[r]);
          break;
        }
        case WeightType::Q4_0: {
          int32_t s = ab[0];
          for (int k = 0; k < 32; ++k) {
            const uint8_t byte = p[32 + 64 * (k / 8) + 4 * r + k % 4];
            s += ((k % 8) < 4 ? byte & 0xF : byte >> 4) * xb[k];
          }
          acc[r] = std::fma(static_cast<float>(s), fp16_to_fp32(load_u16(p + 2 * r)) * dx, acc[r]);
          break;
        }
        case WeightType::Q5_0: {
          int32_t s = ab[0];
          for (int k = 0; k < 32; ++k) s += q5_unit(p + 32, p + 288, r, k) * xb[k];
          acc[r] = std::fma(static_cast<float>(s), fp16_to_fp32(load_u16(p + 2 * r)) * dx, acc[r]);
          break;
        }
        case WeightType::Q5_K: {
          int32_t A = 0, B = 0;
          for (int j = 0; j < 8; ++j) {
            const uint8_t* sub = p + 320 + 320 * j;
            int32_t s = 0;
            for (int k = 0; k < 32; ++k) s += q5_unit(sub, sub + 256, r, k) * xb[32 * j + k];
            A += s * p[64 + 16 * j + r];
            const int16_t bsum = load_i16(reinterpret_cast<const uint8_t*>(ab) + 2 * j);
            B += p[192 + 32 * (j / 2) + 2 * r + j % 2] * bsum;
          }
          const float d = fp16_to_fp32(load_u16(p + 2 * r)), dmin = fp16_to_fp32(load_u16(p + 32 + 2 * r));
          acc[r] = std::fma(-static_cast<float>(B), dmin * dx, acc[r]);
          acc[r] = std::fma(static_cast<float>(A), d * dx, acc[r]);
          break;
        }
        case WeightType::Q4_K: {
          int32_t A = 0, B = 0;
          for (int j = 0; j < 8; ++j) {
            int32_t s = 0;
            for (int k = 0; k < 32; ++k) {
              const uint8_t byte = p[320 + 256 * j + 64 * (k / 8) + 4 * r + k % 4];
              s += ((k % 8) < 4 ? byte & 0xF : byte >> 4) * xb[32 * j + k];
            }
            A += s * p[64 + 16 * j + r];
            const int16_t bsum = load_i16(reinterpret_cast<const uint8_t*>(ab) + 2 * j);
            B += p[192 + 32 * (j / 2) + 2 * r + j % 2] * bsum;
          }
          const float d = fp16_to_fp32(load_u16(p + 2 * r)), dmin = fp16_to_fp32(load_u16(p + 32 + 2 * r));
          acc[r] = std::fma(-static_cast<float>(B), dmin * dx, acc[r]);
          acc[r] = std::fma(static_cast<float>(A), d * dx, acc[r]);
          break;
        }
        case WeightType::Q6_K: {
          int32_t A = 0;
          for (int s = 0; s < 16; ++s) {
            const uint8_t* c = p + 288 + 192 * s;
            int32_t v = ab[s];
            for (int k = 0; k < 16; ++k) {
              const int quad = k / 4, i = k % 4;
              const uint8_t lo = c[64 * (quad / 2) + 4 * r + i];
              const int low = (quad % 2) ? lo >> 4 : lo & 0xF;
              const int high = (c[128 + 4 * r + i] >> (2 * quad)) & 3;
              v += (low | (high << 4)) * xb[16 * s + k];
            }
            A += v * static_cast<int8_t>(p[32 + 16 * s + r]);
          }
          acc[r] = std::fma(static_cast<float>(A), fp16_to_fp32(load_u16(p + 2 * r)) * dx, acc[r]);
          break;
        }
        default: break;
      }
    }
  }
}

void gemm(const GemmArgs& a) {
  const size_t gb = group_bytes(a.type, a.cols);
  float acc[R];
  for (int64_t g = a.group0; g < a.group1; ++g) {
    const int64_t valid = std::min<int64_t>(R, a.rows - g * R);
    for (int64_t xr = 0; xr < a.n_rows; ++xr) {
      group_row(a, a.w + (is_quantized(a.type) ? g * gb : float_group_offset(a.type, g, a.cols)), xr, acc);
      std::copy(acc, acc + valid, a.y + xr * a.ldy + g * R);
    }
  }
}

}  // namespace

const KernelSet& kernels_scalar() {
  static const KernelSet k{"scalar", 1, quantize, gemm};
  return k;
}

}  // namespace tandem::kern
