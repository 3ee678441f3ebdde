#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "decode/philox.h"
#include "decode/sampling.h"
#include "decode/spec_verify.h"

using namespace tandem;

namespace {

// Upper critical value of chi-square with `df` degrees of freedom for the upper-tail
// probability whose standard normal quantile is z (Wilson-Hilferty; within ~1% for df >= 3).
double chi2_critical(double df, double z) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + z * std::sqrt(a), 3.0);
}
constexpr double kZ1e3 = 3.0902;  // P(Z > z) = 1e-3

SparseDist dense(std::vector<float> probs) {
  SparseDist d;
  for (size_t i = 0; i < probs.size(); ++i) {
    if (probs[i] <= 0) continue;
    d.ids.push_back(static_cast<int32_t>(i));
    d.probs.push_back(probs[i]);
  }
  return d;
}

SparseDist one_hot(int32_t id) { return SparseDist{{id}, {1.0f}}; }

struct Fit {
  double chi2 = 0;
  double critical = 0;
  double tv = 0;        // total variation between empirical and expected
  int impossible = 0;   // outcomes with expected probability 0 that occurred
};

Fit fit(const std::vector<int>& counts, const std::vector<double>& expected_p, int n) {
  Fit f;
  int cells = 0;
  for (size_t i = 0; i < counts.size(); ++i) {
    const double e = expected_p[i] * n;
    f.tv += std::abs(counts[i] / static_cast<double>(n) - expected_p[i]) / 2;
    if (e == 0) {
      f.impossible += counts[i];
      continue;
    }
    f.chi2 += (counts[i] - e) * (counts[i] - e) / e;
    ++cells;
  }
  f.critical = chi2_critical(cells - 1, kZ1e3);
  return f;
}

bool detected(const Fit& f) { return f.impossible > 0 || f.chi2 > f.critical; }

}  // namespace

TEST(SpecVerify, GreedyAcceptsWhileDraftEqualsArgmax) {
  // Target argmaxes along the block: 3, 1, 4, 1 (the last is the bonus row).
  const std::vector<SparseDist> p = {one_hot(3), one_hot(1), one_hot(4), one_hot(1)};
  const std::vector<SparseDist> q = {one_hot(3), one_hot(1), one_hot(4)};  // unused when greedy
  struct Case {
    std::vector<int32_t> draft;
    int accepted;
    int32_t next;
  };
  for (const Case& c : {Case{{3, 1, 4}, 3, 1},    // all accepted -> bonus = argmax p_3
                        Case{{0, 1, 4}, 0, 3},    // rejected at the first token
                        Case{{3, 2, 4}, 1, 1},    // ... at the second
                        Case{{3, 1, 5}, 2, 4}}) { // ... at the last
    for (uint64_t seed : {0ULL, 12345ULL}) {  // greedy uses no randomness
      auto r = verify_draft(p, q, c.draft, seed, 100, true);
      ASSERT_TRUE(r.ok()) << r.error().message;
      EXPECT_EQ(r->n_accepted, c.accepted);
      EXPECT_EQ(r->next_token, c.next);
    }
  }
  // Without a bonus row an accepted block has no next token.
  auto r = verify_draft(std::span(p).first(3), q, std::vector<int32_t>{3, 1, 4}, 0, 0, true);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->n_accepted, 3);
  EXPECT_EQ(r->next_token, -1);
  // Greedy rows built from logits, ties broken to the lowest id like plain decoding.
  SparseDist row;
  sampling_distribution(std::vector<float>{0.5f, 2.0f, 2.0f}, SamplingParams{}, row);
  auto t = verify_draft(std::vector<SparseDist>{row, row}, {}, std::vector<int32_t>{2}, 0, 0, true);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->n_accepted, 0);
  EXPECT_EQ(t->next_token, 1);
}

TEST(SpecVerify, RejectsBadShapes) {
  const std::vector<SparseDist> p = {one_hot(1), one_hot(2)};
  const std::vector<SparseDist> q = {one_hot(1)};
  auto r = verify_draft(p, q, std::vector<int32_t>{1, 2, 3}, 0, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("target rows"), std::string::npos) << r.error().message;
  r = verify_draft(p, {}, std::vector<int32_t>{1}, 0, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("draft rows"), std::string::npos) << r.error().message;
  r = verify_draft(std::vector<SparseDist>{SparseDist{}, one_hot(1)}, q, std::vector<int32_t>{1}, 0, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("empty"), std::string::npos) << r.error().message;
  r = verify_draft(p, q, std::vector<int32_t>{-4}, 0, 0, false);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("-4"), std::string::npos) << r.error().message;
}

TEST(SpecVerify, ResidualAndGuards) {
  const SparseDist p = dense({0.5f, 0.3f, 0.2f});
  const SparseDist q = dense({0.2f, 0.3f, 0.5f});
  for (double u : {0.0, 0.4, 0.999}) EXPECT_EQ(sample_residual(p, q, u), 0);  // residual = [0.3, 0, 0]
  // Residual mass on a token the draft does not support at all.
  const SparseDist p2{{1, 4}, {0.5f, 0.5f}};
  EXPECT_EQ(sample_residual(p2, one_hot(4), 0.9), 1);
  // p == q: no residual mass, fall back to p itself.
  EXPECT_EQ(sample_residual(p, p, 0.1), sample(p, 0.1));
  EXPECT_EQ(sample_residual(p, p, 0.9), sample(p, 0.9));

  // A draft token its own distribution gives probability 0: the block ends with a plain sample
  // from p using the residual uniform of that position.
  const std::vector<SparseDist> rows = {p, p};
  for (uint64_t pos = 0; pos < 50; ++pos) {
    auto r = verify_draft(rows, std::vector<SparseDist>{one_hot(0)}, std::vector<int32_t>{2}, 9, pos, false);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->n_accepted, 0);
    EXPECT_EQ(r->next_token, sample(p, uniform(9, pos, Purpose::kResidual)));
  }
  EXPECT_EQ(draft_sample(q, 5, 77), sample(q, uniform(5, 77, Purpose::kDraft)));
}

TEST(SpecVerify, DeterministicForSeedAndPosition) {
  const SparseDist p = dense({0.1f, 0.2f, 0.3f, 0.4f});
  const SparseDist q = dense({0.4f, 0.3f, 0.2f, 0.1f});
  const std::vector<SparseDist> ps = {p, p, p}, qs = {q, q};
  int differ = 0;
  for (uint64_t pos = 0; pos < 200; ++pos) {
    const std::vector<int32_t> x = {draft_sample(q, 3, pos), draft_sample(q, 3, pos + 1)};
    auto a = verify_draft(ps, qs, x, 3, pos, false);
    auto b = verify_draft(ps, qs, x, 3, pos, false);
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->n_accepted, b->n_accepted);
    EXPECT_EQ(a->next_token, b->next_token);
    auto c = verify_draft(ps, qs, x, 4, pos, false);  // another seed: other uniforms
    ASSERT_TRUE(c.ok());
    differ += (a->n_accepted != c->n_accepted || a->next_token != c->next_token) ? 1 : 0;
  }
  EXPECT_GT(differ, 20);
}

// One draft token, 200k fresh positions: the first emitted token (x_0 if accepted, else the
// correction) must be distributed as p (chi-square, significance 1e-3, fixed seed), and the
// acceptance rate must be sum_x min(p, q). The deliberately wrong rules must fail the same test.
TEST(SpecVerify, FirstTokenIsDistributedAsTarget) {
  const std::vector<float> pv = {0.10f, 0.05f, 0.20f, 0.15f, 0.08f, 0.12f, 0.06f, 0.09f, 0.07f, 0.08f};
  // q differs on purpose; its most likely token (0) is much likelier under q than under p.
  const std::vector<float> qv = {0.35f, 0.02f, 0.10f, 0.05f, 0.10f, 0.05f, 0.13f, 0.05f, 0.10f, 0.05f};
  const SparseDist p = dense(pv), q = dense(qv);
  const std::vector<SparseDist> ps = {p, p}, qs = {q};
  double overlap = 0;
  for (size_t i = 0; i < pv.size(); ++i) overlap += std::min(pv[i], qv[i]);
  const std::vector<double> expected(pv.begin(), pv.end());

  constexpr int kN = 200000;
  auto run = [&](VerifyRule rule, double* acceptance) {
    std::vector<int> counts(pv.size(), 0);
    int accepted = 0;
    for (int t = 0; t < kN; ++t) {
      const uint64_t pos = 1000 + 4 * static_cast<uint64_t>(t);
      const std::vector<int32_t> x = {draft_sample(q, 2718, pos)};
      auto r = verify_draft(ps, qs, x, 2718, pos, false, rule);
      EXPECT_TRUE(r.ok());
      accepted += r->n_accepted;
      ++counts[r->n_accepted > 0 ? x[0] : r->next_token];
    }
    if (acceptance) *acceptance = static_cast<double>(accepted) / kN;
    return fit(counts, expected, kN);
  };

  double acceptance = 0;
  const Fit good = run(VerifyRule::kLossless, &acceptance);
  EXPECT_EQ(good.impossible, 0);
  EXPECT_LT(good.chi2, good.critical);
  EXPECT_LT(good.tv, 0.01);
  const double sigma = std::sqrt(overlap * (1 - overlap) / kN);
  EXPECT_NEAR(acceptance, overlap, 5 * sigma) << "expected sum min(p, q) = " << overlap;

  for (VerifyRule wrong : {VerifyRule::kWrongAlwaysAcceptGreedyDraft, VerifyRule::kWrongNoResidual}) {
    const Fit bad = run(wrong, nullptr);
    EXPECT_TRUE(detected(bad)) << "wrong rule " << static_cast<int>(wrong) << " not detected, chi2 "
                               << bad.chi2 << " < " << bad.critical;
    EXPECT_GT(bad.tv, 0.03);
  }
}

// Full draft -> verify -> commit loops with γ = 3 over a bigram "model": the target and the draft
// each give a distribution conditioned on the previous token (the target's with top-k 5, so it
// has zeros where the draft does not). The first two emitted tokens must be jointly distributed
// as p(a) p(b | a), whichever rounds and positions produced them (accepted drafts, corrections,
// bonus tokens).
TEST(SpecVerify, FirstTwoTokensJointlyDistributedAsTarget) {
  constexpr int kV = 8, kStart = kV, kGamma = 3, kN = 200000;
  std::mt19937 g(4242);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  SamplingParams tp;
  tp.temperature = 1.0f;
  tp.top_k = 5;
  SamplingParams dp;
  dp.temperature = 1.0f;
  std::vector<SparseDist> target(kV + 1), draft(kV + 1);  // row per context (token or start)
  for (int c = 0; c <= kV; ++c) {
    std::vector<float> tl(kV), dl(kV);
    for (float& x : tl) x = nd(g);
    // A drafter close enough that whole blocks are often accepted, but over-confident.
    for (size_t i = 0; i < dl.size(); ++i) dl[i] = tl[i] + 0.8f * nd(g);
    dl[static_cast<size_t>(argmax(dl))] += 1.0f;
    sampling_distribution(tl, tp, target[static_cast<size_t>(c)]);
    sampling_distribution(dl, dp, draft[static_cast<size_t>(c)]);
  }
  std::vector<double> expected(kV * kV, 0.0);
  for (int a = 0; a < kV; ++a)
    for (int b = 0; b < kV; ++b)
      expected[static_cast<size_t>(a * kV + b)] =
          static_cast<double>(target[kStart].prob(a)) * target[static_cast<size_t>(a)].prob(b);
  double overlap = 0;
  for (int x = 0; x < kV; ++x) overlap += std::min(target[kStart].prob(x), draft[kStart].prob(x));

  auto run = [&](VerifyRule rule, double* first_acceptance) {
    std::vector<int> counts(kV * kV, 0);
    std::vector<SparseDist> ps(kGamma + 1), qs(kGamma);
    std::vector<int32_t> xs(kGamma);
    int first_accepted = 0;
    for (int t = 0; t < kN; ++t) {
      const uint64_t seed = 99;
      uint64_t pos = 16 * static_cast<uint64_t>(t);  // fresh positions per trial
      std::vector<int32_t> emitted;
      int32_t ctx = kStart;
      bool first_round = true;
      while (emitted.size() < 2) {
        int32_t c = ctx;
        for (int j = 0; j < kGamma; ++j) {
          qs[j] = draft[static_cast<size_t>(c)];
          xs[j] = draft_sample(qs[j], seed, pos + j);
          ps[j] = target[static_cast<size_t>(c)];
          c = xs[j];
        }
        ps[kGamma] = target[static_cast<size_t>(c)];
        auto r = verify_draft(ps, qs, xs, seed, pos, false, rule);
        EXPECT_TRUE(r.ok());
        if (first_round) first_accepted += r->n_accepted > 0 ? 1 : 0;
        first_round = false;
        for (int j = 0; j < r->n_accepted; ++j) emitted.push_back(xs[j]);
        emitted.push_back(r->next_token);
        pos += static_cast<uint64_t>(r->n_accepted) + 1;
        ctx = emitted.back();
      }
      ++counts[static_cast<size_t>(emitted[0] * kV + emitted[1])];
    }
    if (first_acceptance) *first_acceptance = static_cast<double>(first_accepted) / kN;
    return fit(counts, expected, kN);
  };

  double acceptance = 0;
  const Fit good = run(VerifyRule::kLossless, &acceptance);
  EXPECT_EQ(good.impossible, 0);
  EXPECT_LT(good.chi2, good.critical);
  EXPECT_LT(good.tv, 0.015);
  EXPECT_NEAR(acceptance, overlap, 5 * std::sqrt(overlap * (1 - overlap) / kN));

  for (VerifyRule wrong : {VerifyRule::kWrongAlwaysAcceptGreedyDraft, VerifyRule::kWrongNoResidual}) {
    const Fit bad = run(wrong, nullptr);
    EXPECT_TRUE(detected(bad)) << "wrong rule " << static_cast<int>(wrong) << " not detected, chi2 "
                               << bad.chi2 << " < " << bad.critical;
  }
}
