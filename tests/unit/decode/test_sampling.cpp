#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "decode/philox.h"
#include "decode/sampling.h"

using namespace tandem;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Upper critical value of chi-square with `df` degrees of freedom for the upper-tail
// probability whose standard normal quantile is z (Wilson-Hilferty; within ~1% for df >= 3).
double chi2_critical(double df, double z) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}
constexpr double kZ1e3 = 3.0902;  // P(Z > z) = 1e-3

std::vector<float> random_logits(size_t n, float sigma, uint32_t seed) {
  std::mt19937 g(seed);
  std::normal_distribution<float> nd(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = nd(g);
  return v;
}

// The target distribution computed the obvious way, in double, with a full sort: the
// specification the fast implementation is checked against. `ambiguous` marks rows where a cut
// falls so close to a threshold that float rounding may legitimately decide it either way.
struct RefDist {
  std::vector<int32_t> ids;  // ascending
  std::vector<double> probs;
  bool ambiguous = false;
};

// Token ids by descending logit (NaN as -inf), ties to the lower id.
std::vector<int32_t> rank_order(const std::vector<float>& logits) {
  std::vector<int32_t> order(logits.size());
  std::iota(order.begin(), order.end(), 0);
  auto v = [&](int32_t i) { return std::isnan(logits[i]) ? -kInf : logits[i]; };
  std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return v(a) > v(b); });
  return order;
}

RefDist reference(const std::vector<float>& logits, const std::vector<int32_t>& order,
                  const SamplingParams& p) {
  RefDist r;
  const size_t n = logits.size();
  if (p.temperature == 0.0f) {
    r.ids = {order[0]};
    r.probs = {1.0};
    return r;
  }
  const double m = logits[order[0]];
  std::vector<double> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = std::isnan(logits[i]) ? 0.0 : std::exp((logits[i] - m) / p.temperature);
  size_t keep = n;
  if (p.top_k > 0) keep = std::min(keep, static_cast<size_t>(p.top_k));
  if (p.top_p < 1.0f) {
    double total = 0;
    for (size_t i = 0; i < keep; ++i) total += w[order[i]];
    const double target = p.top_p * total;
    double cum = 0;
    size_t len = keep;
    for (size_t i = 0; i < keep; ++i) {
      cum += w[order[i]];
      if (cum >= target) {
        len = i + 1;
        break;
      }
    }
    const double before = cum - w[order[len - 1]];
    // Float weights (expf is within a few ulp) put the fast path's masses within ~1e-6.
    if (std::abs(cum - target) < 2e-6 * total || std::abs(before - target) < 2e-6 * total)
      r.ambiguous = true;
    keep = len;
  }
  if (p.min_p > 0.0f) {
    const double floor = p.min_p * w[order[0]];
    size_t len = 0;
    while (len < keep && w[order[len]] >= floor) ++len;
    for (size_t i = 0; i < keep; ++i)
      if (std::abs(w[order[i]] / floor - 1.0) < 2e-6) r.ambiguous = true;
    keep = len;
  }
  std::vector<int32_t> kept(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(keep));
  std::sort(kept.begin(), kept.end());
  double total = 0;
  for (int32_t id : kept) total += w[id];
  for (int32_t id : kept) {
    if (w[id] == 0) continue;
    r.ids.push_back(id);
    r.probs.push_back(w[id] / total);
  }
  return r;
}

RefDist reference(const std::vector<float>& logits, const SamplingParams& p) {
  return reference(logits, rank_order(logits), p);
}

// Fast result == reference: same support, same probabilities within float accuracy. Tokens
// more than ~87 nats below the best may be dropped (their weight underflows in float); nothing
// else may differ.
::testing::AssertionResult matches_reference(const SparseDist& d, const RefDist& r) {
  if (!std::is_sorted(d.ids.begin(), d.ids.end()) ||
      std::adjacent_find(d.ids.begin(), d.ids.end()) != d.ids.end())
    return ::testing::AssertionFailure() << "ids not strictly increasing";
  double sum = 0;
  for (float p : d.probs) {
    if (!(p > 0)) return ::testing::AssertionFailure() << "non-positive probability " << p;
    sum += p;
  }
  if (std::abs(sum - 1.0) > 1e-5) return ::testing::AssertionFailure() << "probabilities sum to " << sum;
  size_t j = 0;
  for (size_t i = 0; i < r.ids.size(); ++i) {
    if (j < d.size() && d.ids[j] == r.ids[i]) {
      if (std::abs(d.probs[j] - r.probs[i]) > 1e-6 + 1e-4 * r.probs[i])
        return ::testing::AssertionFailure() << "token " << d.ids[j] << ": " << d.probs[j]
                                             << " vs reference " << r.probs[i];
      ++j;
    } else if (r.probs[i] > 1e-36) {
      return ::testing::AssertionFailure() << "token " << r.ids[i] << " (reference p=" << r.probs[i]
                                           << ") missing; support " << d.size() << " vs reference "
                                           << r.ids.size();
    }
  }
  if (j != d.size())
    return ::testing::AssertionFailure() << "token " << d.ids[j] << " is not in the reference support";
  return ::testing::AssertionSuccess();
}

SamplingParams params(float t, int k = 0, float top_p = 1.0f, float min_p = 0.0f) {
  SamplingParams p;
  p.temperature = t;
  p.top_k = k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

std::vector<float> logits_of(std::initializer_list<double> probs) {
  std::vector<float> l;
  for (double p : probs) l.push_back(static_cast<float>(std::log(p)));
  return l;
}

}  // namespace

TEST(Sampling, ValidateAcceptsDefaultsAndNamesBadFields) {
  EXPECT_TRUE(validate(SamplingParams{}).ok());
  EXPECT_TRUE(validate(params(0.7f, 40, 0.95f, 0.05f)).ok());
  struct Bad {
    SamplingParams p;
    const char* field;
  };
  SamplingParams neg_t = params(-0.5f), nan_t = params(kNaN), inf_t = params(kInf);
  SamplingParams k = params(1.0f, -1), p0 = params(1, 0, 0.0f), p_big = params(1, 0, 1.5f);
  SamplingParams p_nan = params(1, 0, kNaN), minp1 = params(1, 0, 1, 1.0f), minp_neg = params(1, 0, 1, -0.1f);
  SamplingParams rep = params(1), pres = params(1), freq = params(1), last_n = params(1);
  rep.repetition_penalty = 0.0f;
  pres.presence_penalty = kNaN;
  freq.frequency_penalty = kInf;
  last_n.penalty_last_n = -2;
  for (const Bad& b : {Bad{neg_t, "temperature"}, Bad{nan_t, "temperature"}, Bad{inf_t, "temperature"},
                       Bad{k, "top_k"}, Bad{p0, "top_p"}, Bad{p_big, "top_p"}, Bad{p_nan, "top_p"},
                       Bad{minp1, "min_p"}, Bad{minp_neg, "min_p"}, Bad{rep, "repetition_penalty"},
                       Bad{pres, "presence_penalty"}, Bad{freq, "frequency_penalty"},
                       Bad{last_n, "penalty_last_n"}}) {
    const Status s = validate(b.p);
    ASSERT_FALSE(s.ok()) << b.field;
    EXPECT_NE(s.error().message.find(b.field), std::string::npos) << s.error().message;
  }
}

TEST(Sampling, ArgmaxTiesGoToLowestIdAndNaNNeverWins) {
  EXPECT_EQ(argmax(std::vector<float>{1, 3, 3, 2}), 1);
  EXPECT_EQ(argmax(std::vector<float>{kNaN, 1, kNaN, 1}), 1);
  EXPECT_EQ(argmax(std::vector<float>{-kInf, -kInf}), 0);
  EXPECT_EQ(argmax(std::vector<float>{kNaN, -kInf}), 1);
  EXPECT_EQ(argmax(std::vector<float>{kNaN, kNaN}), 0);
  EXPECT_EQ(argmax(std::vector<float>{0, kInf, 5, kInf}), 1);
  EXPECT_EQ(argmax(std::vector<float>{}), -1);
  // Every size around the vector widths, the maximum (duplicated) in every place.
  std::mt19937 g(3);
  for (size_t n : {1u, 7u, 15u, 16u, 17u, 31u, 33u, 100u, 32000u}) {
    std::vector<float> v = random_logits(n, 1.0f, static_cast<uint32_t>(n));
    for (size_t trial = 0; trial < 20; ++trial) {
      std::vector<float> w = v;
      const size_t a = g() % n, b = g() % n;
      w[a] = w[b] = 10.0f;
      ASSERT_EQ(argmax(w), static_cast<int32_t>(std::min(a, b))) << "n=" << n;
    }
  }
}

TEST(Sampling, PenaltiesFollowLlamaCpp) {
  SamplingParams p = params(1);
  p.repetition_penalty = 2.0f;
  p.frequency_penalty = 0.5f;
  p.presence_penalty = 0.25f;
  p.penalty_last_n = 4;
  std::vector<float> l = {2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  // Window = last 4: {1, 0, 0, 3}; token 4 (only before the window) and the out-of-range ids
  // 9 / -1 (also before the window) are untouched.
  const std::vector<int32_t> history = {4, 9, -1, 1, 0, 0, 3};
  apply_penalties(l, history, p);
  EXPECT_FLOAT_EQ(l[0], 2.0f / 2 - 2 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[1], -2.0f * 2 - 1 * 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[2], 1.0f);
  EXPECT_FLOAT_EQ(l[3], 0.5f / 2 - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[4], 3.0f);

  std::vector<float> all = {1.0f, 1.0f};
  const std::vector<int32_t> h2 = {0, 5, 1};  // 5 is out of range: ignored
  p.penalty_last_n = -1;                       // whole history
  apply_penalties(all, h2, p);
  EXPECT_FLOAT_EQ(all[0], 0.5f - 0.75f);
  EXPECT_FLOAT_EQ(all[1], 0.5f - 0.75f);

  std::vector<float> none = {1.0f, 1.0f};
  p.penalty_last_n = 0;  // off
  apply_penalties(none, h2, p);
  EXPECT_EQ(none, (std::vector<float>{1.0f, 1.0f}));
}

TEST(Sampling, GreedyIsOneHotArgmax) {
  SparseDist d;
  sampling_distribution(std::vector<float>{0.1f, 2.0f, 2.0f, -1.0f}, params(0), d);
  EXPECT_EQ(d.ids, std::vector<int32_t>{1});
  EXPECT_EQ(d.probs, std::vector<float>{1.0f});
  EXPECT_EQ(dist_argmax(d), 1);
  // Invalid temperatures (validate() rejects them) still cannot poison the softmax.
  EXPECT_TRUE(is_greedy(params(0)));
  EXPECT_TRUE(is_greedy(params(-1)));
  EXPECT_TRUE(is_greedy(params(kNaN)));
  EXPECT_FALSE(is_greedy(params(0.01f)));
  sampling_distribution(std::vector<float>{0.1f, 2.0f, -1.0f}, params(-1), d);
  EXPECT_EQ(d.ids, std::vector<int32_t>{1});
}

TEST(Sampling, HandMadeFilters) {
  SparseDist d;
  const auto l = logits_of({0.4, 0.3, 0.2, 0.1});
  sampling_distribution(l, params(1), d);
  ASSERT_EQ(d.size(), 4u);
  EXPECT_NEAR(d.prob(2), 0.2, 1e-6);

  sampling_distribution(l, params(1, 2), d);  // top-k 2
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1}));
  EXPECT_NEAR(d.prob(0), 0.4 / 0.7, 1e-6);

  sampling_distribution(l, params(1, 0, 0.69f), d);  // 0.4 + 0.3 >= 0.69
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1}));
  sampling_distribution(l, params(1, 0, 0.71f), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1, 2}));

  // Top-p acts on what top-k kept: renormalised 0.4/0.7 = 0.57 alone reaches 0.5.
  sampling_distribution(l, params(1, 2, 0.5f), d);
  EXPECT_EQ(d.ids, std::vector<int32_t>{0});
  sampling_distribution(l, params(1, 0, 0.5f), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1}));

  sampling_distribution(l, params(1, 0, 1, 0.45f), d);  // keep p >= 0.18
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1, 2}));
  sampling_distribution(l, params(1, 0, 1, 0.6f), d);  // keep p >= 0.24
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1}));

  // Temperature: p ~ exp(l / t).
  sampling_distribution(l, params(0.5f), d);
  EXPECT_NEAR(d.prob(0), 0.16 / 0.30, 1e-6);
}

TEST(Sampling, TiesAreCutByLowestId) {
  SparseDist d;
  const std::vector<float> flat = {1, 1, 1, 1, 0};
  sampling_distribution(flat, params(1, 2), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1}));
  // Exactly half the top-4 mass after two equal tokens (all weights are exactly 1).
  sampling_distribution(flat, params(1, 4, 0.5f), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1}));
  sampling_distribution(flat, params(1, 0, 0.3f), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 1}));
  // Large k takes the radix path: 400 equal maxima, cut at 300 keeps the lowest ids.
  std::vector<float> many(1000, 0.0f);
  for (int i = 100; i < 500; ++i) many[static_cast<size_t>(i)] = 2.0f;
  sampling_distribution(many, params(1, 300), d);
  ASSERT_EQ(d.size(), 300u);
  EXPECT_EQ(d.ids.front(), 100);
  EXPECT_EQ(d.ids.back(), 399);
}

TEST(Sampling, NonFiniteLogits) {
  SparseDist d;
  sampling_distribution(std::vector<float>{kNaN, 0.0f, -kInf, 0.0f}, params(1), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{1, 3}));
  sampling_distribution(std::vector<float>{kNaN, 0.0f, -kInf, 0.0f, kNaN}, params(1, 3), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{1, 3}));
  sampling_distribution(std::vector<float>{1.0f, kInf, 3.0f, kInf}, params(1), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{1, 3}));
  EXPECT_FLOAT_EQ(d.probs[0], 0.5f);
  // Underflow: exp(-200) is 0 in float, so that token is not in the support.
  sampling_distribution(std::vector<float>{0.0f, -200.0f, -1.0f}, params(1), d);
  EXPECT_EQ(d.ids, (std::vector<int32_t>{0, 2}));
  sampling_distribution(std::vector<float>{}, params(1), d);
  EXPECT_TRUE(d.empty());
}

// The fast path (vector kernels, heap / radix selections) equals the sort-based reference over
// many rows, shapes and filter combinations, including the 32000-token vocabulary.
TEST(Sampling, MatchesReferenceImplementation) {
  SparseDist d;
  int checked = 0, ambiguous = 0;
  uint32_t seed = 1;
  for (size_t n : {5u, 37u, 1000u, 32000u}) {
    for (float sigma : {0.5f, 2.0f, 6.0f}) {
      const std::vector<float> l = random_logits(n, sigma, seed++);
      const std::vector<int32_t> order = rank_order(l);
      for (float t : {0.6f, 1.0f, 1.8f}) {
        for (int k : {0, 1, 3, 40, 300, 5000}) {
          for (float top_p : {1.0f, 0.9f, 0.5f, 0.05f}) {
            for (float min_p : {0.0f, 0.05f, 0.3f}) {
              const SamplingParams p = params(t, k, top_p, min_p);
              const RefDist r = reference(l, order, p);
              if (r.ambiguous) {
                ++ambiguous;
                continue;
              }
              sampling_distribution(l, p, d);
              ASSERT_TRUE(matches_reference(d, r))
                  << "n=" << n << " sigma=" << sigma << " t=" << t << " k=" << k
                  << " top_p=" << top_p << " min_p=" << min_p;
              ++checked;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(checked, 2500);
  EXPECT_LT(ambiguous, checked / 100);
}

TEST(Sampling, InverseCdfInIdOrder) {
  SparseDist d;
  d.ids = {2, 5, 9};
  d.probs = {0.25f, 0.5f, 0.25f};
  EXPECT_EQ(sample(d, 0.0), 2);
  EXPECT_EQ(sample(d, 0.2499), 2);
  EXPECT_EQ(sample(d, 0.25), 5);
  EXPECT_EQ(sample(d, 0.7499), 5);
  EXPECT_EQ(sample(d, 0.75), 9);
  EXPECT_EQ(sample(d, std::nextafter(1.0, 0.0)), 9);
  EXPECT_EQ(sample(SparseDist{}, 0.5), -1);

  // A dense 32000-token row: the blocked scan picks what a plain CDF walk picks.
  sampling_distribution(random_logits(32000, 1.0f, 77), params(1), d);
  ASSERT_EQ(d.size(), 32000u);
  double total = 0;
  for (float p : d.probs) total += p;
  for (uint64_t pos = 0; pos < 2000; ++pos) {
    const double u = uniform(5, pos, Purpose::kSample);
    double acc = 0;
    int32_t want = d.ids.back();
    for (size_t i = 0; i < d.size(); ++i) {
      acc += d.probs[i];
      if (u * total < acc) {
        want = d.ids[i];
        break;
      }
    }
    ASSERT_EQ(sample(d, u), want) << "u=" << u;
  }
}

// Empirical frequencies of sample(sampling_distribution(...), uniform(seed, pos, kSample)) over
// 200k positions match the reference distribution: chi-square at significance 1e-3 with a fixed
// seed (deterministic), and tokens the filters exclude never appear.
TEST(Sampling, EmpiricalFrequenciesMatchChiSquare) {
  constexpr int kN = 200000;
  const std::vector<float> l = random_logits(50, 1.5f, 2024);
  struct Case {
    SamplingParams p;
    const char* name;
  };
  for (const Case& c : {Case{params(1.0f), "t=1"}, Case{params(1.0f, 10), "top_k=10"},
                        Case{params(1.0f, 0, 0.8f), "top_p=0.8"},
                        Case{params(0.7f, 20, 0.9f, 0.05f), "t=0.7 k=20 p=0.9 min_p=0.05"},
                        Case{params(1.3f, 0, 1.0f, 0.1f), "t=1.3 min_p=0.1"}}) {
    const RefDist r = reference(l, c.p);
    ASSERT_FALSE(r.ambiguous) << c.name;
    SparseDist d;
    sampling_distribution(l, c.p, d);
    std::vector<int> counts(l.size(), 0);
    for (int pos = 0; pos < kN; ++pos) ++counts[sample(d, uniform(31337, static_cast<uint64_t>(pos), Purpose::kSample))];
    std::vector<double> expected(l.size(), 0.0);
    for (size_t i = 0; i < r.ids.size(); ++i) expected[r.ids[i]] = r.probs[i] * kN;
    double chi2 = 0;
    int excluded_hits = 0;
    for (size_t t = 0; t < l.size(); ++t) {
      if (expected[t] == 0) {
        excluded_hits += counts[t];
        continue;
      }
      chi2 += (counts[t] - expected[t]) * (counts[t] - expected[t]) / expected[t];
    }
    EXPECT_EQ(excluded_hits, 0) << c.name;
    const double df = static_cast<double>(r.ids.size()) - 1;
    EXPECT_LT(chi2, chi2_critical(df, kZ1e3)) << c.name << " (" << r.ids.size() << " tokens)";
  }
}

TEST(Sampling, LogprobIsTemperatureOneLogSoftmax) {
  const std::vector<float> l = random_logits(1000, 2.0f, 8);
  double m = -INFINITY;
  for (float x : l) m = std::max(m, static_cast<double>(x));
  double z = 0;
  for (float x : l) z += std::exp(x - m);
  for (int32_t id : {0, 17, 999}) EXPECT_NEAR(logprob(l, id), l[static_cast<size_t>(id)] - m - std::log(z), 1e-4);
  EXPECT_EQ(logprob(l, -1), -kInf);
  EXPECT_EQ(logprob(l, 1000), -kInf);
  EXPECT_EQ(logprob(std::vector<float>{0.0f, -kInf}, 1), -kInf);
  EXPECT_NEAR(logprob(std::vector<float>{kNaN, 0.0f, 0.0f}, 1), std::log(0.5), 1e-6);
  EXPECT_NEAR(logprob(std::vector<float>{kInf, 0.0f, kInf}, 0), std::log(0.5), 1e-6);
}
