// Lossless speculative verification (Leviathan et al. 2023; Chen et al. 2023): a block of draft
// tokens is checked against the target's distributions so that the emitted tokens are distributed
// exactly as if the target had sampled them one by one. Pure functions over SparseDist rows; the
// engine and the PEARL scheduler decide when to call them.
//
// Randomness: every uniform comes from decode/philox.h keyed by (seed, absolute position, purpose):
// the draft token at position n uses kDraft, its accept test kAccept, the correction after a
// rejection at n kResidual, the bonus token kSample (the same purpose plain decoding uses).
#pragma once
#include <cstdint>
#include <span>

#include "decode/sampling.h"
#include "shard/result.h"

namespace tandem {

enum class VerifyRule {
  kLossless,
  // Deliberately wrong rules, only for tests that must show the statistical checks catch them.
  kWrongAlwaysAcceptGreedyDraft,  // accept untested whenever the draft token is argmax(q)
  kWrongNoResidual,               // after a rejection resample from p, not norm(max(0, p - q))
};

struct VerifyResult {
  int n_accepted = 0;      // draft tokens accepted, 0..γ
  int32_t next_token = -1; // the correction after a rejection, or the bonus token; -1 when all
                           // were accepted and no bonus row was given
};

// target: p_0..p_γ (one row per draft position plus the bonus position), or just p_0..p_{γ-1}
// when the caller takes no bonus token (PEARL keeps drafting past an accepted block).
// draft: q_0..q_{γ-1}, the drafter's distributions; tokens: x_0..x_{γ-1}; pos0: absolute position
// of x_0 (x_i is at pos0 + i, the bonus at pos0 + γ).
// Sampled: accept x_i with probability min(1, p_i(x_i) / q_i(x_i)); at the first rejection emit
// a token from norm(max(0, p_i - q_i)) (from p_i when that is all zero, i.e. p_i == q_i) and stop;
// if all are accepted emit a bonus token from p_γ. A token the drafter could not have sampled
// (q_i(x_i) == 0) ends the block with a fresh sample from p_i, which is still exact.
// Greedy (temperature 0): accept while x_i == argmax p_i; the correction/bonus is argmax; q unused.
// Errors: row counts that do not match, an empty target row, a negative token id.
Result<VerifyResult> verify_draft(std::span<const SparseDist> target,
                                  std::span<const SparseDist> draft,
                                  std::span<const int32_t> tokens, uint64_t seed, uint64_t pos0,
                                  bool greedy, VerifyRule rule = VerifyRule::kLossless);

// The drafter's token for `pos`, sampled from its distribution q with the kDraft uniform.
int32_t draft_sample(const SparseDist& q, uint64_t seed, uint64_t pos);

// Inverse CDF (increasing id order) of norm(max(0, p - q)); of p when that is all zero.
int32_t sample_residual(const SparseDist& p, const SparseDist& q, double u);

}  // namespace tandem
