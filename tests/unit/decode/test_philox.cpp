#include <gtest/gtest.h>

#include <cmath>
#include <set>
#include <vector>

#include "decode/philox.h"

using namespace tandem;

namespace {

// Upper critical value of chi-square with `df` degrees of freedom for the upper-tail
// probability whose standard normal quantile is z (Wilson-Hilferty; within ~0.5% for df >= 10).
double chi2_critical(double df, double z) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}
constexpr double kZ1e3 = 3.0902;  // P(Z > z) = 1e-3

struct Kat {
  PhiloxCounter ctr;
  PhiloxKey key;
  PhiloxCounter expected;
};

// Random123's kat_vectors ("philox4x32 R ctr[4] key[2] -> out[4]").
constexpr Kat kKat10[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
};
constexpr Kat kKat7[] = {
    {{0, 0, 0, 0}, {0, 0}, {0x5f6fb709, 0x0d893f64, 0x4f121f81, 0x4f730a48}},
    {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff},
     {0xffffffff, 0xffffffff},
     {0x5207ddc2, 0x45165e59, 0x4d8ee751, 0x8c52f662}},
    {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344},
     {0xa4093822, 0x299f31d0},
     {0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a}},
};

// The block function is constexpr: the first known answer is checked at compile time too.
static_assert(philox4x32(kKat10[0].ctr, kKat10[0].key) == kKat10[0].expected);

}  // namespace

TEST(Philox, KnownAnswers10Rounds) {
  for (const Kat& k : kKat10) {
    const PhiloxCounter got = philox4x32(k.ctr, k.key);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], k.expected[i]) << "word " << i;
  }
}

TEST(Philox, KnownAnswers7Rounds) {
  for (const Kat& k : kKat7) {
    const PhiloxCounter got = philox4x32(k.ctr, k.key, 7);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(got[i], k.expected[i]) << "word " << i;
  }
}

TEST(Philox, CounterLayoutIsPositionPurposeIndex) {
  const uint64_t seed = 0x0123456789abcdefULL, pos = 0x00000007fffffff3ULL;
  const PhiloxCounter direct =
      philox4x32({0xfffffff3u, 0x7u, static_cast<uint32_t>(Purpose::kAccept), 5u}, {0x89abcdefu, 0x01234567u});
  EXPECT_EQ(philox_bits(seed, pos, Purpose::kAccept, 5), direct);
}

TEST(Philox, UniformIsAPureFunctionOfItsKey) {
  EXPECT_EQ(uniform(7, 100, Purpose::kSample), uniform(7, 100, Purpose::kSample));
  // Every part of the key changes the value.
  const double base = uniform(7, 100, Purpose::kSample, 0);
  EXPECT_NE(base, uniform(8, 100, Purpose::kSample, 0));
  EXPECT_NE(base, uniform(7, 101, Purpose::kSample, 0));
  EXPECT_NE(base, uniform(7, 100, Purpose::kAccept, 0));
  EXPECT_NE(base, uniform(7, 100, Purpose::kSample, 1));
  // High position and seed bits matter too (they are separate counter/key words).
  EXPECT_NE(base, uniform(7 + (1ULL << 40), 100, Purpose::kSample, 0));
  EXPECT_NE(base, uniform(7, 100 + (1ULL << 40), Purpose::kSample, 0));
}

TEST(Philox, UniformHas53BitsInUnitInterval) {
  bool odd_numerator = false;
  std::set<double> distinct;
  for (uint64_t pos = 0; pos < 4096; ++pos) {
    const double u = uniform(42, pos, Purpose::kDraft);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    const double scaled = u * 0x1.0p53;
    ASSERT_EQ(scaled, std::floor(scaled)) << "not a multiple of 2^-53";
    if (std::fmod(scaled, 2.0) == 1.0) odd_numerator = true;
    distinct.insert(u);
  }
  EXPECT_TRUE(odd_numerator) << "the lowest of the 53 bits never set";
  EXPECT_EQ(distinct.size(), 4096u);
}

// Chi-square over 64 equal bins for 200k consecutive positions of each purpose, at significance
// 1e-3 (fixed seed: deterministic), plus the first two moments.
TEST(Philox, UniformityChiSquare) {
  constexpr int kBins = 64;
  constexpr int kN = 200000;
  for (Purpose purpose : {Purpose::kSample, Purpose::kDraft, Purpose::kAccept, Purpose::kResidual}) {
    std::vector<int> bins(kBins, 0);
    double sum = 0, sum_sq = 0;
    for (int pos = 0; pos < kN; ++pos) {
      const double u = uniform(20240611, static_cast<uint64_t>(pos), purpose);
      ++bins[static_cast<int>(u * kBins)];
      sum += u;
      sum_sq += u * u;
    }
    const double expected = static_cast<double>(kN) / kBins;
    double chi2 = 0;
    for (int b : bins) chi2 += (b - expected) * (b - expected) / expected;
    EXPECT_LT(chi2, chi2_critical(kBins - 1, kZ1e3)) << "purpose " << static_cast<int>(purpose);
    const double mean = sum / kN, var = sum_sq / kN - mean * mean;
    // Standard errors: 1/sqrt(12 N) ~ 6.5e-4 for the mean, ~ 2e-4 for the variance; 5 sigma.
    EXPECT_NEAR(mean, 0.5, 5 * 6.5e-4);
    EXPECT_NEAR(var, 1.0 / 12.0, 5 * 2.0e-4);
  }
}

// The speculative rule needs the accept and residual uniforms of one position, and the uniforms
// of neighbouring positions, to be independent: their correlation must be at noise level.
TEST(Philox, StreamsAreUncorrelated) {
  constexpr int kN = 200000;
  auto corr = [](auto a, auto b) {
    double sa = 0, sb = 0, sab = 0, saa = 0, sbb = 0;
    for (int i = 0; i < kN; ++i) {
      const double x = a(i), y = b(i);
      sa += x, sb += y, sab += x * y, saa += x * x, sbb += y * y;
    }
    const double n = kN;
    return (sab / n - sa / n * sb / n) /
           std::sqrt((saa / n - sa / n * sa / n) * (sbb / n - sb / n * sb / n));
  };
  const double bound = 5.0 / std::sqrt(static_cast<double>(kN));  // 5 sigma
  auto u = [](Purpose p, int shift) {
    return [p, shift](int i) { return uniform(99, static_cast<uint64_t>(i + shift), p); };
  };
  EXPECT_LT(std::abs(corr(u(Purpose::kAccept, 0), u(Purpose::kResidual, 0))), bound);
  EXPECT_LT(std::abs(corr(u(Purpose::kDraft, 0), u(Purpose::kAccept, 0))), bound);
  EXPECT_LT(std::abs(corr(u(Purpose::kSample, 0), u(Purpose::kSample, 1))), bound);
}
