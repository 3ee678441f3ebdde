// ggml block formats: hand-written blocks decode to the values the format defines, quantizers
// round-trip within stated error bounds, fp16/bf16 conversions round to nearest even.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <stdexcept>
#include <vector>

#include "shard/kernels/quant.h"
#include "shard/kernels/weight_type.h"
#include "tests/unit/gaussian.h"

using namespace tandem;

namespace {

float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

using test::gaussian;

void put_u16(std::vector<uint8_t>& b, size_t off, uint16_t v) { std::memcpy(b.data() + off, &v, 2); }

}  // namespace

TEST(QuantFp16, KnownValues) {
  EXPECT_EQ(fp32_to_fp16(1.f), 0x3C00);
  EXPECT_EQ(fp32_to_fp16(-2.f), 0xC000);
  EXPECT_EQ(fp32_to_fp16(0.5f), 0x3800);
  EXPECT_EQ(fp32_to_fp16(65504.f), 0x7BFF);
  EXPECT_EQ(fp32_to_fp16(65519.f), 0x7BFF);       // below the midpoint to 2^16
  EXPECT_EQ(fp32_to_fp16(65520.f), 0x7C00);       // the midpoint ties to even = infinity
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(fp32_to_fp16(std::ldexp(1.f, -25)), 0x0000);  // half of it ties to even (zero)
  EXPECT_EQ(fp32_to_fp16(std::nextafter(std::ldexp(1.f, -25), 1.f)), 0x0001);
  EXPECT_EQ(fp32_to_fp16(-0.f), 0x8000);
  EXPECT_EQ(fp32_to_fp16(std::numeric_limits<float>::infinity()), 0x7C00);
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(bits_float(0x7F800001)))));  // NaN payload in low bits
  EXPECT_EQ(fp16_to_fp32(0x3555), 0.333251953125f);
  EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.f, -24));
  EXPECT_EQ(fp16_to_fp32(0x03FF), std::ldexp(1023.f, -24));
}

// Every half survives fp16 -> fp32 -> fp16, and the float halfway between two neighbouring halves
// rounds to the one with an even mantissa (just above / below it round to the nearer one).
TEST(QuantFp16, ExhaustiveRoundTripAndTies) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t hh = static_cast<uint16_t>(h);
    const float f = fp16_to_fp32(hh);
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF)) {
      ASSERT_TRUE(std::isnan(f));
      continue;
    }
    ASSERT_EQ(fp32_to_fp16(f), hh) << std::hex << h;
    if ((h & 0x7FFF) >= 0x7BFF) continue;  // no finite upper neighbour
    const uint16_t next = static_cast<uint16_t>(h + 1);
    if (h & 0x8000 && (h & 0x7FFF) == 0) continue;
    const double mid = (static_cast<double>(f) + fp16_to_fp32(next)) / 2;
    const float m = static_cast<float>(mid);
    ASSERT_EQ(static_cast<double>(m), mid);  // midpoints of halves are exact floats
    const uint16_t even = (h & 1) ? next : hh;
    ASSERT_EQ(fp32_to_fp16(m), even) << std::hex << h;
    const float above = std::nextafter(m, f < 0 ? -1e9f : 1e9f), below = std::nextafter(m, f < 0 ? 1e9f : -1e9f);
    ASSERT_EQ(fp32_to_fp16(above), next) << std::hex << h;
    ASSERT_EQ(fp32_to_fp16(below), hh) << std::hex << h;
  }
}

TEST(QuantBf16, RoundTripTiesAndNaN) {
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const uint16_t hh = static_cast<uint16_t>(h);
    const float f = bf16_to_fp32(hh);
    if (std::isnan(f)) continue;
    ASSERT_EQ(fp32_to_bf16(f), hh);
  }
  // 1 + 2^-8 lies halfway between 1 (even mantissa) and 1 + 2^-7: ties to 1.
  EXPECT_EQ(fp32_to_bf16(1.f + std::ldexp(1.f, -8)), 0x3F80);
  // 1 + 3*2^-8 lies halfway between 1 + 2^-7 (odd) and 1 + 2^-6: ties up.
  EXPECT_EQ(fp32_to_bf16(1.f + 3 * std::ldexp(1.f, -8)), 0x3F82);
  EXPECT_EQ(fp32_to_bf16(bits_float(0x3F808001)), 0x3F81);  // just above a tie rounds up
  EXPECT_EQ(fp32_to_bf16(bits_float(0x7F7FFFFF)), 0x7F80);  // FLT_MAX rounds to infinity
  // A NaN whose payload sits only in the discarded bits must stay NaN, not become infinity.
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(bits_float(0x7F800001)))));
  EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(bits_float(0xFF800001)))));
  EXPECT_EQ(bf16_to_fp32(0xC040), -3.f);
}

TEST(QuantBlocks, Q8_0HandBlock) {
  std::vector<uint8_t> b(34);
  put_u16(b, 0, 0x3400);  // d = 0.25
  for (int i = 0; i < 32; ++i) b[2 + i] = static_cast<uint8_t>(static_cast<int8_t>(i - 16));
  float y[32];
  dequantize_row(WeightType::Q8_0, b.data(), y, 32);
  for (int i = 0; i < 32; ++i) EXPECT_EQ(y[i], (i - 16) * 0.25f) << i;
}

TEST(QuantBlocks, Q4_0HandBlock) {
  // d = 0.5; byte i holds element i (low nibble = i) and element i + 16 (high nibble = 15 - i).
  std::vector<uint8_t> b(2 * 18);
  put_u16(b, 0, 0x3800);
  for (int i = 0; i < 16; ++i) b[2 + i] = static_cast<uint8_t>(i | ((15 - i) << 4));
  put_u16(b, 18, 0xC000);  // second block: d = -2, all nibbles 0x9 / 0x3
  for (int i = 0; i < 16; ++i) b[20 + i] = 0x39;
  float y[64];
  dequantize_row(WeightType::Q4_0, b.data(), y, 64);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(y[i], (i - 8) * 0.5f);
    EXPECT_EQ(y[i + 16], (7 - i) * 0.5f);
    EXPECT_EQ(y[32 + i], -2.f);       // (9 - 8) * -2
    EXPECT_EQ(y[32 + i + 16], 10.f);  // (3 - 8) * -2
  }
}

TEST(QuantBlocks, Q5_0HandBlock) {
  // Block 0: d = 0.5, byte i = i | (15 - i) << 4, qh = 0x0000FFFF (fifth bit set for elements
  // 0..15 only). Block 1: d = -2, nibbles 0x9 / 0x3, qh = 0xFFFF0000 (elements 16..31 only).
  // Block 2: d = 1, nibbles 0, qh = 0x00030001 (elements 0, 16 and 17): little-endian bytes.
  std::vector<uint8_t> b(3 * 22, 0);
  put_u16(b, 0, 0x3800);
  b[2] = b[3] = 0xFF;
  for (int i = 0; i < 16; ++i) b[6 + i] = static_cast<uint8_t>(i | ((15 - i) << 4));
  put_u16(b, 22, 0xC000);
  b[26] = b[27] = 0xFF;
  for (int i = 0; i < 16; ++i) b[28 + i] = 0x39;
  put_u16(b, 44, 0x3C00);
  b[46] = 0x01, b[48] = 0x03;
  float y[96];
  dequantize_row(WeightType::Q5_0, b.data(), y, 96);
  for (int i = 0; i < 16; ++i) {
    EXPECT_EQ(y[i], i * 0.5f) << i;                 // (16 + i - 16) * 0.5
    EXPECT_EQ(y[i + 16], (-1 - i) * 0.5f) << i;     // (15 - i - 16) * 0.5
    EXPECT_EQ(y[32 + i], 14.f) << i;                // (9 - 16) * -2
    EXPECT_EQ(y[32 + i + 16], -6.f) << i;           // (3 + 16 - 16) * -2
    EXPECT_EQ(y[64 + i], i == 0 ? 0.f : -16.f) << i;
    EXPECT_EQ(y[64 + i + 16], i < 2 ? 0.f : -16.f) << i;
  }
}

TEST(QuantBlocks, Q4_KHandBlock) {
  // Sub-block scales / mins (6 bits), chosen so the high bits of the j >= 4 entries are used.
  const int sc[8] = {1, 2, 3, 4, 17, 33, 48, 63};
  const int mn[8] = {0, 5, 10, 63, 20, 1, 35, 7};
  // The same table packed by hand into the 12 scale bytes of the format.
  const uint8_t packed[12] = {0x41, 0x82, 0xC3, 0xC4, 0x40, 0x05, 0x8A, 0x3F, 0x41, 0x11, 0x30, 0x7F};
  std::vector<uint8_t> b(144);
  put_u16(b, 0, 0x3C00);  // d = 1
  put_u16(b, 2, 0x3800);  // dmin = 0.5
  std::memcpy(b.data() + 4, packed, 12);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b[16 + 32 * c + l] = static_cast<uint8_t>((l % 16) | ((15 - l % 16) << 4));
  float y[256];
  dequantize_row(WeightType::Q4_K, b.data(), y, 256);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      EXPECT_EQ(y[64 * c + l], sc[2 * c] * float(l % 16) - 0.5f * mn[2 * c]) << c << " " << l;
      EXPECT_EQ(y[64 * c + 32 + l], sc[2 * c + 1] * float(15 - l % 16) - 0.5f * mn[2 * c + 1]) << c << " " << l;
    }
}

TEST(QuantBlocks, Q5_KHandBlock) {
  // The scales of Q4_KHandBlock; the same nibbles; fifth bits: qh[l] has bit 2c set when l is a
  // multiple of c + 2 (the first 32 elements of chunk c) and bit 2c + 1 set when l < 8 * (c + 1)
  // (its second 32).
  const int sc[8] = {1, 2, 3, 4, 17, 33, 48, 63};
  const int mn[8] = {0, 5, 10, 63, 20, 1, 35, 7};
  const uint8_t packed[12] = {0x41, 0x82, 0xC3, 0xC4, 0x40, 0x05, 0x8A, 0x3F, 0x41, 0x11, 0x30, 0x7F};
  std::vector<uint8_t> b(176, 0);
  put_u16(b, 0, 0x3C00);  // d = 1
  put_u16(b, 2, 0x3800);  // dmin = 0.5
  std::memcpy(b.data() + 4, packed, 12);
  for (int l = 0; l < 32; ++l)
    for (int c = 0; c < 4; ++c) {
      if (l % (c + 2) == 0) b[16 + l] |= static_cast<uint8_t>(1 << (2 * c));
      if (l < 8 * (c + 1)) b[16 + l] |= static_cast<uint8_t>(2 << (2 * c));
    }
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) b[48 + 32 * c + l] = static_cast<uint8_t>((l % 16) | ((15 - l % 16) << 4));
  float y[256];
  dequantize_row(WeightType::Q5_K, b.data(), y, 256);
  for (int c = 0; c < 4; ++c)
    for (int l = 0; l < 32; ++l) {
      const int q0 = l % 16 + (l % (c + 2) == 0 ? 16 : 0), q1 = 15 - l % 16 + (l < 8 * (c + 1) ? 16 : 0);
      EXPECT_EQ(y[64 * c + l], sc[2 * c] * float(q0) - 0.5f * mn[2 * c]) << c << " " << l;
      EXPECT_EQ(y[64 * c + 32 + l], sc[2 * c + 1] * float(q1) - 0.5f * mn[2 * c + 1]) << c << " " << l;
    }
}

TEST(QuantBlocks, Q6_KHandBlock) {
  // ql: first half 0x21 / 0x43 (bytes 0..31 / 32..63), second half 0x9F / 0x9F.
  // qh: first half bit pairs (0,1,2,3) = 0xE4, second half (3,2,1,0) = 0x1B.
  std::vector<uint8_t> b(210);
  for (int l = 0; l < 32; ++l) b[l] = 0x21, b[32 + l] = 0x43, b[64 + l] = 0x9F, b[96 + l] = 0x9F;
  for (int l = 0; l < 32; ++l) b[128 + l] = 0xE4, b[160 + l] = 0x1B;
  for (int s = 0; s < 16; ++s) b[192 + s] = static_cast<uint8_t>(static_cast<int8_t>(s - 8));
  put_u16(b, 208, 0x3800);  // d = 0.5
  // 6-bit quants (minus 32) per 32-element quarter of each half, decoded by hand:
  // half 0: 1|0<<4=1, 3|1<<4=19, 2|2<<4=34, 4|3<<4=52;  half 1: 15|3<<4=63, 15|2<<4=47, 9|1<<4=25, 9|0=9.
  const int q[2][4] = {{1 - 32, 19 - 32, 34 - 32, 52 - 32}, {63 - 32, 47 - 32, 25 - 32, 9 - 32}};
  float y[256];
  dequantize_row(WeightType::Q6_K, b.data(), y, 256);
  for (int e = 0; e < 256; ++e) {
    const float scale = static_cast<float>(e / 16 - 8);
    EXPECT_EQ(y[e], 0.5f * scale * q[e / 128][(e % 128) / 32]) << e;
  }
}

TEST(QuantBlocks, Q8_KHandBlock) {
  std::vector<uint8_t> b(292, 0);
  const float d = 0.125f;
  std::memcpy(b.data(), &d, 4);
  for (int i = 0; i < 256; ++i) b[4 + i] = static_cast<uint8_t>(i);  // int8: 0..127, -128..-1
  float y[256];
  dequantize_row(WeightType::Q8_K, b.data(), y, 256);
  for (int i = 0; i < 256; ++i) EXPECT_EQ(y[i], 0.125f * static_cast<int8_t>(i)) << i;
}

// Relative RMS error sqrt(Σ(y-x)² / Σx²) of quantize -> dequantize on N(0,1) data. A uniform
// quantizer with step s has RMS error s/√12; with the block maximum of n Gaussians (≈2.1σ for 32,
// ≈1.8σ for 16, ≈2.9σ for 256) setting s, the expected errors are q8_0 ≈ 0.53%, q8_k ≈ 0.66%,
// q6_k ≈ 1.7%, q4_k ≈ 7% (asymmetric 4-bit over 32), q4_0 ≈ 8.5% (4-bit, scale from the max),
// and with one more bit half of those: q5_k ≈ 3.5%, q5_0 ≈ 4.3%; the bounds are those plus ~7-10%. f16 / bf16 round each element to 11 / 8 significant bits
// (relative error ≤ 2^-11 / 2^-8 per element, hence also in RMS).
TEST(QuantRoundTrip, GaussianErrorWithinBounds) {
  struct Case {
    WeightType t;
    double bound;
  };
  const Case cases[] = {{WeightType::F32, 0.0},          {WeightType::F16, std::ldexp(1.0, -11)},
                        {WeightType::BF16, std::ldexp(1.0, -8)}, {WeightType::Q8_0, 0.006},
                        {WeightType::Q8_K, 0.0075},       {WeightType::Q6_K, 0.019},
                        {WeightType::Q4_K, 0.077},        {WeightType::Q4_0, 0.092},
                        {WeightType::Q5_K, 0.038},        {WeightType::Q5_0, 0.046}};
  const int64_t n = 256 * 64;
  const auto x = gaussian(n, 42);
  for (const auto& c : cases) {
    std::vector<uint8_t> q(row_bytes(c.t, n));
    std::vector<float> y(n);
    quantize_row(c.t, x.data(), q.data(), n);
    dequantize_row(c.t, q.data(), y.data(), n);
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; ++i) se += (y[i] - x[i]) * double(y[i] - x[i]), sx += x[i] * double(x[i]);
    const double rel = std::sqrt(se / sx);
    EXPECT_LE(rel, c.bound) << name(c.t);
    if (c.t != WeightType::F32) {
      EXPECT_GT(rel, 0.0) << name(c.t);  // it does quantize
    }
    RecordProperty(std::string(name(c.t)), std::to_string(rel));
  }
}

// The K-quant scale searches must beat the plain grid they start from: Q4_K vs. min/max 4-bit
// per 32 elements with exact float scales, Q6_K vs. absmax 6-bit per 16 with exact float scales.
TEST(QuantRoundTrip, KQuantSearchBeatsPlainGrid) {
  const int64_t n = 256 * 64;
  const auto x = gaussian(n, 5);
  auto rel_err = [&](const std::vector<float>& y) {
    double se = 0, sx = 0;
    for (int64_t i = 0; i < n; ++i) se += (y[i] - x[i]) * double(y[i] - x[i]), sx += x[i] * double(x[i]);
    return std::sqrt(se / sx);
  };
  std::vector<float> plain4(n), plain5(n), plain6(n), y(n);
  for (int64_t b = 0; b < n; b += 32) {
    float lo = 0, hi = x[b];
    for (int i = 0; i < 32; ++i) lo = std::min(lo, x[b + i]), hi = std::max(hi, x[b + i]);
    const float s = (hi - lo) / 15, s5 = (hi - lo) / 31;
    for (int i = 0; i < 32; ++i) plain4[b + i] = lo + s * std::clamp(std::round((x[b + i] - lo) / s), 0.f, 15.f);
    for (int i = 0; i < 32; ++i) plain5[b + i] = lo + s5 * std::clamp(std::round((x[b + i] - lo) / s5), 0.f, 31.f);
  }
  for (int64_t b = 0; b < n; b += 16) {
    float amax = 0, vmax = 0;
    for (int i = 0; i < 16; ++i)
      if (std::fabs(x[b + i]) > amax) amax = std::fabs(x[b + i]), vmax = x[b + i];
    const float s = vmax / -32;
    for (int i = 0; i < 16; ++i) plain6[b + i] = s * std::clamp(std::round(x[b + i] / s), -32.f, 31.f);
  }
  std::vector<uint8_t> q(row_bytes(WeightType::Q6_K, n));
  quantize_row(WeightType::Q4_K, x.data(), q.data(), n);
  dequantize_row(WeightType::Q4_K, q.data(), y.data(), n);
  EXPECT_LT(rel_err(y), rel_err(plain4));
  quantize_row(WeightType::Q6_K, x.data(), q.data(), n);
  dequantize_row(WeightType::Q6_K, q.data(), y.data(), n);
  EXPECT_LT(rel_err(y), rel_err(plain6));
  quantize_row(WeightType::Q5_K, x.data(), q.data(), n);
  dequantize_row(WeightType::Q5_K, q.data(), y.data(), n);
  EXPECT_LT(rel_err(y), rel_err(plain5));
}

// Q5_0 as ggml's reference quantizer defines it: the element of largest magnitude of each block
// decodes to itself (up to the fp16 scale: it is -16 * d), every other element within half a step,
// except those beyond +15.5 steps on the other side, which clamp to level 31 (within one step).
TEST(QuantRoundTrip, Q5_0ExtremeExactAndHalfStep) {
  const int64_t n = 32 * 128;
  const auto x = gaussian(n, 13);
  std::vector<uint8_t> q(row_bytes(WeightType::Q5_0, n));
  std::vector<float> y(n);
  quantize_row(WeightType::Q5_0, x.data(), q.data(), n);
  dequantize_row(WeightType::Q5_0, q.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    int imax = 0;
    for (int i = 1; i < 32; ++i)
      if (std::fabs(x[32 * b + i]) > std::fabs(x[32 * b + imax])) imax = i;
    const float vmax = x[32 * b + imax];
    const float d = fp16_to_fp32(fp32_to_fp16(vmax / -16.f));
    EXPECT_EQ(y[32 * b + imax], -16 * d) << b;
    for (int i = 0; i < 32; ++i) {
      const float v = x[32 * b + i], steps = d != 0 ? v / d : 0.f;
      ASSERT_LE(std::fabs(y[32 * b + i] - v), (steps > 15.5f ? 1.f : 0.5f) * std::fabs(d) * 1.01f) << b << " " << i;
    }
  }
}

// Q8_0's per-element error is at most half a step (plus the fp16 rounding of the scale).
TEST(QuantRoundTrip, Q8_0ElementwiseBound) {
  const int64_t n = 32 * 256;
  auto x = gaussian(n, 7);
  std::vector<uint8_t> q(row_bytes(WeightType::Q8_0, n));
  std::vector<float> y(n);
  quantize_row(WeightType::Q8_0, x.data(), q.data(), n);
  dequantize_row(WeightType::Q8_0, q.data(), y.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    float amax = 0;
    for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[32 * b + i]));
    const float step = amax / 127;
    for (int i = 0; i < 32; ++i) ASSERT_LE(std::fabs(y[32 * b + i] - x[32 * b + i]), 0.57f * step) << b << " " << i;
  }
}

// Zero input and outliers: zero blocks decode to exact zeros; a block with one huge element keeps
// it closely (the scale adapts) and never produces NaN/inf.
TEST(QuantRoundTrip, ZerosAndOutliers) {
  for (WeightType t : {WeightType::Q8_0, WeightType::Q4_0, WeightType::Q5_0, WeightType::Q4_K, WeightType::Q5_K,
                       WeightType::Q6_K, WeightType::Q8_K}) {
    const int64_t n = 512;
    std::vector<float> x(n, 0.f), y(n, 1.f);
    std::vector<uint8_t> q(row_bytes(t, n));
    quantize_row(t, x.data(), q.data(), n);
    dequantize_row(t, q.data(), y.data(), n);
    for (float v : y) ASSERT_EQ(v, 0.f) << name(t);
    x = gaussian(n, 3);
    x[100] = 1000.f;
    x[300] = -500.f;
    quantize_row(t, x.data(), q.data(), n);
    dequantize_row(t, q.data(), y.data(), n);
    for (float v : y) ASSERT_TRUE(std::isfinite(v)) << name(t);
    EXPECT_NEAR(y[100], 1000.f, 1000.f * 0.02f) << name(t);
    EXPECT_NEAR(y[300], -500.f, 500.f * 0.07f) << name(t);
  }
}

TEST(QuantRoundTrip, RowNotMultipleOfBlockThrows) {
  std::vector<float> x(48);
  std::vector<uint8_t> q(64);
  EXPECT_THROW(quantize_row(WeightType::Q4_0, x.data(), q.data(), 48), std::invalid_argument);
  EXPECT_THROW(dequantize_row(WeightType::Q4_K, q.data(), x.data(), 48), std::invalid_argument);
}
