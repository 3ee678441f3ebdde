#include "shard/kernels/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "shard/kernels/blocks.h"

namespace tandem {
namespace {

uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// Round half away from zero, as the ggml reference quantizers do.
int round_int(float x) { return static_cast<int>(std::lround(x)); }

// ---- Q8_0 / Q4_0 -------------------------------------------------------------------------------

void quantize_q8_0(const float* x, blocks::Q8_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += blocks::kQK0) {
    float amax = 0;
    for (int i = 0; i < blocks::kQK0; ++i) amax = std::max(amax, std::fabs(x[i]));
    const float d = amax / 127.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    y[b].d = fp32_to_fp16(d);
    for (int i = 0; i < blocks::kQK0; ++i) y[b].qs[i] = static_cast<int8_t>(round_int(x[i] * id));
  }
}

void dequantize_q8_0(const blocks::Q8_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_fp32(x[b].d);
    for (int i = 0; i < blocks::kQK0; ++i) *y++ = x[b].qs[i] * d;
  }
}

void quantize_q4_0(const float* x, blocks::Q4_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += blocks::kQK0) {
    // The scale maps the element of largest magnitude to -8 exactly, which uses the one extra
    // negative level of the asymmetric 4-bit range.
    float amax = 0, vmax = 0;
    for (int i = 0; i < blocks::kQK0; ++i)
      if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), vmax = x[i];
    const float d = vmax / -8.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    y[b].d = fp32_to_fp16(d);
    auto q = [&](float v) { return static_cast<uint8_t>(std::clamp(static_cast<int>(std::floor(v * id + 8.5f)), 0, 15)); };
    for (int i = 0; i < 16; ++i) y[b].qs[i] = static_cast<uint8_t>(q(x[i]) | (q(x[i + 16]) << 4));
  }
}

void dequantize_q4_0(const blocks::Q4_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += blocks::kQK0) {
    const float d = fp16_to_fp32(x[b].d);
    for (int i = 0; i < 16; ++i) {
      y[i] = ((x[b].qs[i] & 0xF) - 8) * d;
      y[i + 16] = ((x[b].qs[i] >> 4) - 8) * d;
    }
  }
}

// ---- Q5_0 --------------------------------------------------------------------------------------

void quantize_q5_0(const float* x, blocks::Q5_0* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += blocks::kQK0) {
    // As Q4_0 with 32 levels: the element of largest magnitude maps to -16 exactly.
    float amax = 0, vmax = 0;
    for (int i = 0; i < blocks::kQK0; ++i)
      if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), vmax = x[i];
    const float d = vmax / -16.f;
    const float id = d != 0 ? 1.f / d : 0.f;
    y[b].d = fp32_to_fp16(d);
    auto q = [&](float v) { return std::clamp(static_cast<int>(std::floor(v * id + 16.5f)), 0, 31); };
    uint32_t qh = 0;
    for (int i = 0; i < 16; ++i) {
      const int q0 = q(x[i]), q1 = q(x[i + 16]);
      y[b].qs[i] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
      qh |= static_cast<uint32_t>(q0 >> 4) << i;
      qh |= static_cast<uint32_t>(q1 >> 4) << (i + 16);
    }
    std::memcpy(y[b].qh, &qh, 4);
  }
}

void dequantize_q5_0(const blocks::Q5_0* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, y += blocks::kQK0) {
    const float d = fp16_to_fp32(x[b].d);
    uint32_t qh;
    std::memcpy(&qh, x[b].qh, 4);
    for (int i = 0; i < 16; ++i) {
      const int q0 = (x[b].qs[i] & 0xF) | static_cast<int>(((qh >> i) & 1) << 4);
      const int q1 = (x[b].qs[i] >> 4) | static_cast<int>(((qh >> (i + 16)) & 1) << 4);
      y[i] = (q0 - 16) * d;
      y[i + 16] = (q1 - 16) * d;
    }
  }
}

// ---- Q4_K --------------------------------------------------------------------------------------

// Fits x[i] ≈ scale * L[i] - mn with L in [0, nmax] and mn >= 0, minimising the w-weighted squared
// error: start from the min/max grid, then try a range of slightly stretched grids and keep the
// best least-squares (scale, min) pair.
float fit_scale_min(const float* x, const float* w, int n, int nmax, uint8_t* L, float* mn_out) {
  float lo = x[0], hi = x[0];
  for (int i = 1; i < n; ++i) lo = std::min(lo, x[i]), hi = std::max(hi, x[i]);
  lo = std::min(lo, 0.f);
  if (hi <= lo) {
    std::fill(L, L + n, 0);
    *mn_out = -lo;
    return 0.f;
  }
  uint8_t cand[blocks::kQKK];
  auto quantize_with = [&](float iscale, float offset, uint8_t* out) {
    for (int i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(std::clamp(round_int(iscale * (x[i] - offset)), 0, nmax));
  };
  auto error_of = [&](const uint8_t* l, float scale, float offset) {
    double e = 0;
    for (int i = 0; i < n; ++i) {
      const float d = scale * l[i] + offset - x[i];
      e += w[i] * d * d;
    }
    return e;
  };
  float best_scale = (hi - lo) / nmax, best_off = lo;
  quantize_with(1.f / best_scale, lo, L);
  double best_err = error_of(L, best_scale, best_off);
  for (int step = 0; step <= 20; ++step) {
    const float iscale = (nmax - 1.f + 0.1f * step) / (hi - lo);
    quantize_with(iscale, lo, cand);
    double sw = 0, swl = 0, swl2 = 0, swx = 0, swlx = 0;
    for (int i = 0; i < n; ++i) {
      sw += w[i], swl += w[i] * cand[i], swl2 += w[i] * cand[i] * cand[i];
      swx += w[i] * x[i], swlx += w[i] * cand[i] * x[i];
    }
    const double det = sw * swl2 - swl * swl;
    if (det <= 0) continue;
    double scale = (sw * swlx - swx * swl) / det;
    double off = (swl2 * swx - swl * swlx) / det;
    if (off > 0) off = 0, scale = swl2 > 0 ? swlx / swl2 : 0;
    const double err = error_of(cand, static_cast<float>(scale), static_cast<float>(off));
    if (err < best_err) {
      best_err = err, best_scale = static_cast<float>(scale), best_off = static_cast<float>(off);
      std::copy(cand, cand + n, L);
    }
  }
  *mn_out = -best_off;
  return best_scale;
}

// The Q4_K / Q5_K scale search shared by both: per 32-element sub-block a weighted (scale, min)
// fit with quants in [0, nmax], the eight scales and mins quantized to 6 bits against the
// super-block's d / dmin, then every quant recomputed against the scales as they will be decoded.
// Writes d, dmin, the packed scales and L (256 quants, element order).
void quantize_k_asym(const float* x, int nmax, uint16_t* d_out, uint16_t* dmin_out, uint8_t* packed_scales, uint8_t* L) {
  float scales[8], mins[8], w[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    const float* xs = x + 32 * j;
    // Weight larger elements more (their error matters more in the dot product), but keep a
    // floor so small ones are not ignored.
    double ss = 0;
    for (int i = 0; i < 32; ++i) ss += xs[i] * xs[i];
    const float rms = static_cast<float>(std::sqrt(ss / 32));
    for (int i = 0; i < 32; ++i) w[i] = rms + std::fabs(xs[i]);
    scales[j] = fit_scale_min(xs, w, 32, nmax, L + 32 * j, &mins[j]);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(std::min(63, round_int(inv_scale * scales[j])));
    lm[j] = static_cast<uint8_t>(std::min(63, round_int(inv_min * mins[j])));
  }
  blocks::q4k_pack_scales(ls, lm, packed_scales);
  *d_out = fp32_to_fp16(max_scale / 63.f);
  *dmin_out = fp32_to_fp16(max_min / 63.f);
  // Requantize against the scales as they will be decoded.
  const float d = fp16_to_fp32(*d_out), dmin = fp16_to_fp32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    blocks::q4k_scale_min(packed_scales, j, sc, m);
    const float ds = d * sc, dm = dmin * m;
    for (int i = 0; i < 32; ++i)
      L[32 * j + i] = ds == 0 ? 0 : static_cast<uint8_t>(std::clamp(round_int((x[32 * j + i] + dm) / ds), 0, nmax));
  }
}

void quantize_q4_k(const float* x, blocks::Q4_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += blocks::kQKK) {
    uint8_t L[blocks::kQKK];
    blocks::Q4_K& out = y[b];
    quantize_k_asym(x, 15, &out.d, &out.dmin, out.scales, L);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l)
        out.qs[32 * c + l] = static_cast<uint8_t>(L[64 * c + l] | (L[64 * c + 32 + l] << 4));
  }
}

void dequantize_q4_k(const blocks::Q4_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_fp32(x[b].d), dmin = fp16_to_fp32(x[b].dmin);
    const uint8_t* q = x[b].qs;
    for (int c = 0; c < 4; ++c, q += 32) {
      int sc, m;
      blocks::q4k_scale_min(x[b].scales, 2 * c, sc, m);
      const float d1 = d * sc, m1 = dmin * m;
      blocks::q4k_scale_min(x[b].scales, 2 * c + 1, sc, m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * (q[l] >> 4) - m2;
    }
  }
}

// ---- Q5_K --------------------------------------------------------------------------------------

void quantize_q5_k(const float* x, blocks::Q5_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += blocks::kQKK) {
    uint8_t L[blocks::kQKK];
    blocks::Q5_K& out = y[b];
    quantize_k_asym(x, 31, &out.d, &out.dmin, out.scales, L);
    std::memset(out.qh, 0, sizeof out.qh);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        const int q0 = L[64 * c + l], q1 = L[64 * c + 32 + l];
        out.qs[32 * c + l] = static_cast<uint8_t>((q0 & 0xF) | ((q1 & 0xF) << 4));
        out.qh[l] |= static_cast<uint8_t>(((q0 >> 4) << (2 * c)) | ((q1 >> 4) << (2 * c + 1)));
      }
  }
}

void dequantize_q5_k(const blocks::Q5_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_fp32(x[b].d), dmin = fp16_to_fp32(x[b].dmin);
    const uint8_t* q = x[b].qs;
    for (int c = 0; c < 4; ++c, q += 32) {
      int sc, m;
      blocks::q4k_scale_min(x[b].scales, 2 * c, sc, m);
      const float d1 = d * sc, m1 = dmin * m;
      blocks::q4k_scale_min(x[b].scales, 2 * c + 1, sc, m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) *y++ = d1 * ((q[l] & 0xF) | (((x[b].qh[l] >> (2 * c)) & 1) << 4)) - m1;
      for (int l = 0; l < 32; ++l) *y++ = d2 * ((q[l] >> 4) | (((x[b].qh[l] >> (2 * c + 1)) & 1) << 4)) - m2;
    }
  }
}

// ---- Q6_K --------------------------------------------------------------------------------------

// Fits x[i] ≈ scale * L[i] with L in [-nmax, nmax - 1], weighting by x² (large elements dominate
// a dot product); tries grids slightly finer and coarser than the one set by the largest element.
float fit_symmetric(const float* x, int n, int nmax, int8_t* L) {
  float amax = 0, vmax = 0;
  for (int i = 0; i < n; ++i)
    if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), vmax = x[i];
  if (amax < 1e-30f) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  int8_t cand[blocks::kQKK];
  float best_scale = 0;
  double best = -1;
  for (int step = -9; step <= 9; ++step) {
    const float iscale = -(nmax + 0.1f * step) / vmax;
    double slx = 0, sll = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(round_int(iscale * x[i]), -nmax, nmax - 1);
      cand[i] = static_cast<int8_t>(l);
      const double w = static_cast<double>(x[i]) * x[i];
      slx += w * x[i] * l, sll += w * l * l;
    }
    // The least-squares scale is slx / sll and it removes slx² / sll of the squared error.
    if (sll > 0 && slx * slx / sll > best) {
      best = slx * slx / sll, best_scale = static_cast<float>(slx / sll);
      std::copy(cand, cand + n, L);
    }
  }
  return best_scale;
}

void quantize_q6_k(const float* x, blocks::Q6_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += blocks::kQKK) {
    float scales[16];
    int8_t Ls[blocks::kQKK];
    float amax = 0, vmax = 0;
    for (int s = 0; s < 16; ++s) {
      scales[s] = fit_symmetric(x + 16 * s, 16, 32, Ls + 16 * s);
      if (std::fabs(scales[s]) > amax) amax = std::fabs(scales[s]), vmax = scales[s];
    }
    blocks::Q6_K& out = y[b];
    uint8_t L[blocks::kQKK];
    if (amax == 0) {
      std::memset(&out, 0, sizeof out);
      std::fill(L, L + blocks::kQKK, 32);
    } else {
      const float iscale = -128.f / vmax;
      out.d = fp32_to_fp16(1.f / iscale);
      for (int s = 0; s < 16; ++s) out.scales[s] = static_cast<int8_t>(std::min(127, round_int(iscale * scales[s])));
      const float d = fp16_to_fp32(out.d);
      for (int s = 0; s < 16; ++s) {
        const float ds = d * out.scales[s];
        for (int i = 0; i < 16; ++i) {
          const int l = ds == 0 ? 0 : std::clamp(round_int(x[16 * s + i] / ds), -32, 31);
          L[16 * s + i] = static_cast<uint8_t>(l + 32);
        }
      }
    }
    for (int h = 0; h < 2; ++h) {
      const uint8_t* Lh = L + 128 * h;
      uint8_t* ql = out.ql + 64 * h;
      uint8_t* qh = out.qh + 32 * h;
      for (int l = 0; l < 32; ++l) {
        ql[l] = static_cast<uint8_t>((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        ql[l + 32] = static_cast<uint8_t>((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        qh[l] = static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) | ((Lh[l + 64] >> 4) << 4) |
                                     ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

void dequantize_q6_k(const blocks::Q6_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b) {
    const float d = fp16_to_fp32(x[b].d);
    for (int h = 0; h < 2; ++h, y += 128) {
      const uint8_t* ql = x[b].ql + 64 * h;
      const uint8_t* qh = x[b].qh + 32 * h;
      const int8_t* sc = x[b].scales + 8 * h;
      for (int l = 0; l < 32; ++l) {
        const int s = l / 16;
        const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
        const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
        const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
        const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
        // (d * scale) * q, in this order, is what ggml computes.
        y[l] = d * sc[s] * q1;
        y[l + 32] = d * sc[s + 2] * q2;
        y[l + 64] = d * sc[s + 4] * q3;
        y[l + 96] = d * sc[s + 6] * q4;
      }
    }
  }
}

// ---- Q8_K --------------------------------------------------------------------------------------

void quantize_q8_k(const float* x, blocks::Q8_K* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b, x += blocks::kQKK) {
    float amax = 0;
    for (int i = 0; i < blocks::kQKK; ++i) amax = std::max(amax, std::fabs(x[i]));
    blocks::Q8_K& out = y[b];
    if (amax == 0) {
      std::memset(&out, 0, sizeof out);
      continue;
    }
    // Symmetric ±127 so the kernels may negate quants without overflow.
    const float iscale = 127.f / amax;
    out.d = 1.f / iscale;
    for (int i = 0; i < blocks::kQKK; ++i) out.qs[i] = static_cast<int8_t>(std::clamp(round_int(iscale * x[i]), -127, 127));
    for (int k = 0; k < 16; ++k) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += out.qs[16 * k + i];
      out.bsums[k] = static_cast<int16_t>(s);
    }
  }
}

void dequantize_q8_k(const blocks::Q8_K* x, float* y, int64_t nb) {
  for (int64_t b = 0; b < nb; ++b)
    for (int i = 0; i < blocks::kQKK; ++i) *y++ = x[b].d * x[b].qs[i];
}

int64_t block_count(WeightType t, int64_t n) {
  const int64_t be = info(t).block_elems;
  if (n % be != 0)
    throw std::invalid_argument("row of " + std::to_string(n) + " elements is not a multiple of the " +
                                std::string(name(t)) + " block size " + std::to_string(be));
  return n / be;
}

}  // namespace

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1F, mant = h & 0x3FF;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 0x1p-24f;  // exact: subnormal halves fit a float
    return sign ? -v : v;
  }
  if (exp == 31) return bits_float(sign | 0x7F800000u | (mant << 13));
  return bits_float(sign | ((exp + 112) << 23) | (mant << 13));
}

uint16_t fp32_to_fp16(float f) {
  const uint32_t u = float_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000);
  const uint32_t a = u & 0x7FFFFFFF;
  if (a > 0x7F800000) return sign | 0x7E00 | static_cast<uint16_t>((a >> 13) & 0x3FF);  // NaN stays NaN
  if (a >= 0x47800000) return sign | 0x7C00;  // >= 2^16: infinity (also inf itself)
  const uint32_t e = a >> 23;
  uint32_t m, shift, h;
  if (e >= 113) {  // normal half: rebias the exponent, drop 13 mantissa bits
    m = a & 0x7FFFFF;
    shift = 13;
    h = ((e - 112) << 10) | (m >> 13);
  } else {
    if (a < 0x33000000) return sign;  // below half the smallest subnormal: zero (2^-25 ties to 0)
    m = (a & 0x7FFFFF) | 0x800000;
    shift = 126 - e;
    h = m >> shift;
  }
  // Round to nearest even; a carry out of the mantissa correctly bumps the exponent (up to inf).
  const uint32_t rem = m & ((1u << shift) - 1), half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float bf16_to_fp32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

uint16_t fp32_to_bf16(float f) {
  const uint32_t u = float_bits(f);
  if ((u & 0x7FFFFFFF) > 0x7F800000) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  return static_cast<uint16_t>((u + 0x7FFF + ((u >> 16) & 1)) >> 16);
}

void dequantize_row(WeightType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = block_count(t, n);
  switch (t) {
    case WeightType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case WeightType::F16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_fp32(s[i]);
      return;
    }
    case WeightType::BF16: {
      const auto* s = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_fp32(s[i]);
      return;
    }
    case WeightType::Q8_0: return dequantize_q8_0(static_cast<const blocks::Q8_0*>(src), dst, nb);
    case WeightType::Q4_0: return dequantize_q4_0(static_cast<const blocks::Q4_0*>(src), dst, nb);
    case WeightType::Q5_0: return dequantize_q5_0(static_cast<const blocks::Q5_0*>(src), dst, nb);
    case WeightType::Q4_K: return dequantize_q4_k(static_cast<const blocks::Q4_K*>(src), dst, nb);
    case WeightType::Q5_K: return dequantize_q5_k(static_cast<const blocks::Q5_K*>(src), dst, nb);
    case WeightType::Q6_K: return dequantize_q6_k(static_cast<const blocks::Q6_K*>(src), dst, nb);
    case WeightType::Q8_K: return dequantize_q8_k(static_cast<const blocks::Q8_K*>(src), dst, nb);
  }
  throw std::invalid_argument("dequantize_row: unsupported weight type");
}

void quantize_row(WeightType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = block_count(t, n);
  switch (t) {
    case WeightType::F32: std::memcpy(dst, src, static_cast<size_t>(n) * 4); return;
    case WeightType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_fp16(src[i]);
      return;
    }
    case WeightType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) d[i] = fp32_to_bf16(src[i]);
      return;
    }
    case WeightType::Q8_0: return quantize_q8_0(src, static_cast<blocks::Q8_0*>(dst), nb);
    case WeightType::Q4_0: return quantize_q4_0(src, static_cast<blocks::Q4_0*>(dst), nb);
    case WeightType::Q5_0: return quantize_q5_0(src, static_cast<blocks::Q5_0*>(dst), nb);
    case WeightType::Q4_K: return quantize_q4_k(src, static_cast<blocks::Q4_K*>(dst), nb);
    case WeightType::Q5_K: return quantize_q5_k(src, static_cast<blocks::Q5_K*>(dst), nb);
    case WeightType::Q6_K: return quantize_q6_k(src, static_cast<blocks::Q6_K*>(dst), nb);
    case WeightType::Q8_K: return quantize_q8_k(src, static_cast<blocks::Q8_K*>(dst), nb);
  }
  throw std::invalid_argument("quantize_row: unsupported weight type");
}

}  // namespace tandem
