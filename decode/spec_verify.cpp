#include "decode/spec_verify.h"

#include "decode/philox.h"

namespace tandem {

namespace {

// Calls f(id, max(0, p(id) - q(id))) for every id of p's support, in increasing id order (ids
// outside p's support have p = 0 and so no residual mass). One merge walk over both rows.
template <class F>
void for_each_residual(const SparseDist& p, const SparseDist& q, F f) {
  size_t j = 0;
  for (size_t i = 0; i < p.size(); ++i) {
    const int32_t id = p.ids[i];
    while (j < q.size() && q.ids[j] < id) ++j;
    const double qv = (j < q.size() && q.ids[j] == id) ? q.probs[j] : 0.0;
    const double r = static_cast<double>(p.probs[i]) - qv;
    f(id, r > 0 ? r : 0.0);
  }
}

}  // namespace

int32_t sample_residual(const SparseDist& p, const SparseDist& q, double u) {
  double total = 0;
  for_each_residual(p, q, [&](int32_t, double r) { total += r; });
  // All zero only when p <= q everywhere, i.e. p == q: then a rejection cannot happen in exact
  // arithmetic, and p is the right answer if rounding produced one anyway.
  if (!(total > 0)) return sample(p, u);
  const double target = u * total;
  double acc = 0;
  int32_t chosen = -1, last = -1;
  for_each_residual(p, q, [&](int32_t id, double r) {
    if (chosen >= 0 || r <= 0) return;
    last = id;
    acc += r;
    if (target < acc) chosen = id;
  });
  return chosen >= 0 ? chosen : last;
}

int32_t draft_sample(const SparseDist& q, uint64_t seed, uint64_t pos) {
  return sample(q, uniform(seed, pos, Purpose::kDraft));
}

Result<VerifyResult> verify_draft(std::span<const SparseDist> target,
                                  std::span<const SparseDist> draft,
                                  std::span<const int32_t> tokens, uint64_t seed, uint64_t pos0,
                                  bool greedy, VerifyRule rule) {
  const size_t gamma = tokens.size();
  if (target.size() != gamma + 1 && target.size() != gamma)
    return make_error("verify_draft: {} target rows for {} draft tokens (need {} or {})",
                      target.size(), gamma, gamma + 1, gamma);
  if (!greedy && draft.size() != gamma)
    return make_error("verify_draft: {} draft rows for {} draft tokens", draft.size(), gamma);
  for (size_t i = 0; i < target.size(); ++i)
    if (target[i].empty()) return make_error("verify_draft: target row {} is empty", i);
  for (size_t i = 0; i < gamma; ++i)
    if (tokens[i] < 0) return make_error("verify_draft: draft token {} has id {}", i, tokens[i]);

  for (size_t i = 0; i < gamma; ++i) {
    const SparseDist& p = target[i];
    const int32_t x = tokens[i];
    const uint64_t pos = pos0 + i;
    const int n = static_cast<int>(i);
    if (greedy) {
      const int32_t best = dist_argmax(p);
      if (x != best) return VerifyResult{n, best};
      continue;
    }
    const SparseDist& q = draft[i];
    const double px = p.prob(x), qx = q.prob(x);
    if (!(qx > 0)) return VerifyResult{n, sample(p, uniform(seed, pos, Purpose::kResidual))};
    if (rule == VerifyRule::kWrongAlwaysAcceptGreedyDraft && x == dist_argmax(q)) continue;
    // u < p/q, written without the division; u is in [0, 1), so p >= q always accepts.
    if (uniform(seed, pos, Purpose::kAccept) * qx < px) continue;
    const double u = uniform(seed, pos, Purpose::kResidual);
    const int32_t next = rule == VerifyRule::kWrongNoResidual ? sample(p, u) : sample_residual(p, q, u);
    return VerifyResult{n, next};
  }
  VerifyResult all{static_cast<int>(gamma), -1};
  if (target.size() == gamma + 1) {
    const SparseDist& bonus = target[gamma];
    all.next_token = greedy ? dist_argmax(bonus)
                            : sample(bonus, uniform(seed, pos0 + gamma, Purpose::kSample));
  }
  return all;
}

}  // namespace tandem
