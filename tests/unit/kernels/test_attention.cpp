// Attention kernels: against naive double loops, scalar / AVX2 / AVX-512 bit for bit, results
// independent of how many heads share the call, f32_to_kv rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "shard/kernels/attention.h"
#include "shard/kernels/cpu_features.h"
#include "shard/kernels/attention_internal.h"
#include "shard/kernels/quant.h"
#include "tests/unit/gaussian.h"

using namespace tandem;

namespace {

using test::gaussian;

// A cache of n_pos rows, each `stride` bytes (room for other heads in between), head at `offset`.
struct Cache {
  WeightType type;
  int head_dim;
  size_t stride, offset;
  std::vector<uint8_t> bytes;
  std::vector<float> values;  // the decoded cache values, [pos][d]
  const uint8_t* base() const { return bytes.data() + offset; }
};

Cache make_cache(WeightType t, int64_t n_pos, int head_dim, uint32_t seed) {
  const size_t esz = t == WeightType::F16 ? 2 : 4;
  Cache c{t, head_dim, esz * head_dim * 3, esz * head_dim, {}, {}};
  c.bytes.assign(c.stride * n_pos, 0xFF);  // NaN-patterned bytes outside the head
  const auto f = gaussian(n_pos * head_dim, seed);
  c.values.resize(f.size());
  for (int64_t j = 0; j < n_pos; ++j) {
    uint8_t* row = c.bytes.data() + j * c.stride + c.offset;
    f32_to_kv(f.data() + j * head_dim, row, head_dim, t);
    for (int d = 0; d < head_dim; ++d) {
      if (t == WeightType::F16) {
        uint16_t h;
        std::memcpy(&h, row + 2 * d, 2);
        c.values[j * head_dim + d] = fp16_to_fp32(h);
      } else {
        std::memcpy(&c.values[j * head_dim + d], row + 4 * d, 4);
      }
    }
  }
  return c;
}

std::vector<const kern::AttentionKernels*> levels() {
  std::vector<const kern::AttentionKernels*> v{&kern::attention_scalar()};
  const auto& f = cpu_features();
  if (f.avx2 && f.fma && f.f16c) v.push_back(&kern::attention_avx2());
  if (f.avx512() && f.fma && f.f16c) v.push_back(&kern::attention_avx512());
  return v;
}

struct Case {
  int n_q, head_dim;
  int64_t n_pos;
};
constexpr Case kCases[] = {{8, 64, 1}, {8, 64, 17}, {8, 64, 300}, {4, 128, 33}, {1, 64, 40},
                           {3, 72, 21}, {6, 8, 19},  {16, 64, 5},  {2, 128, 64}, {2, 520, 9}};

}  // namespace

// |s - s_ref| ≤ 1e-5 · Σ|q·k| (an fma chain over head_dim ≤ 520 terms: ~√n · 2^-24 in practice);
// |o - o_ref| ≤ 1e-5 · Σ|p·v| + 1e-6 · |o_init| (fma chain over n_pos ≤ 300 terms).
TEST(AttentionKernels, MatchNaiveLoopsAndAgreeAcrossLevels) {
  for (WeightType t : {WeightType::F16, WeightType::F32})
    for (const Case& cs : kCases) {
      SCOPED_TRACE(testing::Message() << name(t) << " n_q " << cs.n_q << " head_dim " << cs.head_dim << " n_pos " << cs.n_pos);
      const auto K = make_cache(t, cs.n_pos, cs.head_dim, 1), V = make_cache(t, cs.n_pos, cs.head_dim, 2);
      const auto q = gaussian(static_cast<size_t>(cs.n_q) * cs.head_dim, 3);
      auto p = gaussian(static_cast<size_t>(cs.n_q) * cs.n_pos, 4);
      for (auto& x : p) x = std::fabs(x) / static_cast<float>(cs.n_pos);
      const auto out0 = gaussian(static_cast<size_t>(cs.n_q) * cs.head_dim, 5);
      std::vector<float> first_s, first_o;
      for (const auto* lv : levels()) {
        std::vector<float> s(cs.n_q * cs.n_pos, -1.f), o = out0;
        lv->scores(q.data(), cs.n_q, cs.head_dim, K.base(), K.stride, t, cs.n_pos, s.data());
        lv->values(p.data(), cs.n_q, cs.n_pos, V.base(), V.stride, t, cs.head_dim, o.data());
        for (int h = 0; h < cs.n_q; ++h) {
          for (int64_t j = 0; j < cs.n_pos; ++j) {
            double ref = 0, mag = 0;
            for (int d = 0; d < cs.head_dim; ++d) {
              const double v = static_cast<double>(q[h * cs.head_dim + d]) * K.values[j * cs.head_dim + d];
              ref += v, mag += std::fabs(v);
            }
            ASSERT_LE(std::fabs(s[h * cs.n_pos + j] - ref), 1e-5 * mag) << lv->name << " score h " << h << " j " << j;
          }
          for (int d = 0; d < cs.head_dim; ++d) {
            double ref = out0[h * cs.head_dim + d], mag = 0;
            for (int64_t j = 0; j < cs.n_pos; ++j) {
              const double v = static_cast<double>(p[h * cs.n_pos + j]) * V.values[j * cs.head_dim + d];
              ref += v, mag += std::fabs(v);
            }
            ASSERT_LE(std::fabs(o[h * cs.head_dim + d] - ref), 1e-5 * mag + 1e-6 * std::fabs(out0[h * cs.head_dim + d]))
                << lv->name << " value h " << h << " d " << d;
          }
        }
        if (first_s.empty()) {
          first_s = s, first_o = o;
        } else {
          EXPECT_EQ(std::memcmp(first_s.data(), s.data(), s.size() * 4), 0) << lv->name << " scores differ from scalar";
          EXPECT_EQ(std::memcmp(first_o.data(), o.data(), o.size() * 4), 0) << lv->name << " values differ from scalar";
        }
      }
    }
}

// A head's scores and outputs are the same bits whether it is computed alone or with other heads
// (tensor parallelism and GQA grouping change n_q), via the public entry points.
TEST(AttentionKernels, ResultsIndependentOfHeadGrouping) {
  const int head_dim = 64, n_q = 8;
  const int64_t n_pos = 45;
  for (WeightType t : {WeightType::F16, WeightType::F32}) {
    const auto K = make_cache(t, n_pos, head_dim, 7), V = make_cache(t, n_pos, head_dim, 8);
    const auto q = gaussian(n_q * head_dim, 9);
    const auto p = gaussian(n_q * n_pos, 10);
    std::vector<float> s_all(n_q * n_pos), o_all(n_q * head_dim, 0.f);
    attn_scores(q.data(), n_q, head_dim, K.base(), K.stride, t, n_pos, s_all.data());
    attn_values(p.data(), n_q, n_pos, V.base(), V.stride, t, head_dim, o_all.data());
    for (int first = 0; first < n_q; ++first)
      for (int count : {1, 2, 3, 5}) {
        if (first + count > n_q) continue;
        std::vector<float> s(count * n_pos), o(count * head_dim, 0.f);
        attn_scores(q.data() + first * head_dim, count, head_dim, K.base(), K.stride, t, n_pos, s.data());
        attn_values(p.data() + first * n_pos, count, n_pos, V.base(), V.stride, t, head_dim, o.data());
        EXPECT_EQ(std::memcmp(s.data(), s_all.data() + first * n_pos, s.size() * 4), 0) << first << "+" << count;
        EXPECT_EQ(std::memcmp(o.data(), o_all.data() + first * head_dim, o.size() * 4), 0) << first << "+" << count;
      }
  }
}

// Scores over a prefix of the cache equal the first entries of scores over the whole cache (a
// sequence's attention does not change as it grows), and values accumulate position by position.
TEST(AttentionKernels, PrefixConsistency) {
  const int head_dim = 128, n_q = 4;
  const int64_t n_pos = 70;
  const auto K = make_cache(WeightType::F16, n_pos, head_dim, 11);
  const auto q = gaussian(n_q * head_dim, 12);
  std::vector<float> full(n_q * n_pos);
  attn_scores(q.data(), n_q, head_dim, K.base(), K.stride, WeightType::F16, n_pos, full.data());
  for (int64_t len : {1, 16, 33, 69}) {
    std::vector<float> s(n_q * len);
    attn_scores(q.data(), n_q, head_dim, K.base(), K.stride, WeightType::F16, len, s.data());
    for (int h = 0; h < n_q; ++h)
      EXPECT_EQ(std::memcmp(s.data() + h * len, full.data() + h * n_pos, len * 4), 0) << len << " head " << h;
  }
}

TEST(AttentionKernels, F32ToKvRoundsLikeFp16) {
  auto x = gaussian(37, 13);
  x[0] = 65520.f;                              // rounds to infinity
  x[1] = 1.f + std::ldexp(1.f, -11);           // tie between 1 and 1 + 2^-10: to even (1)
  x[2] = std::ldexp(1.f, -25);                 // tie to zero
  for (int64_t n : {1, 15, 16, 17, 37}) {
    std::vector<uint16_t> h(n, 0xABCD), hs(n);
    f32_to_kv(x.data(), h.data(), n, WeightType::F16);
    for (int64_t i = 0; i < n; ++i) EXPECT_EQ(h[i], fp32_to_fp16(x[i])) << n << " " << i;
    for (const auto* lv : levels()) {
      lv->to_kv(x.data(), hs.data(), n, WeightType::F16);
      EXPECT_EQ(hs, h) << lv->name;
    }
  }
  std::vector<float> f(37);
  f32_to_kv(x.data(), f.data(), 37, WeightType::F32);
  EXPECT_EQ(f, x);
  EXPECT_THROW(f32_to_kv(x.data(), f.data(), 32, WeightType::Q8_0), std::invalid_argument);
}
