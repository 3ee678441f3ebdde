// Turning one row of logits into the next token: penalties, the target distribution (temperature,
// top-k, top-p, min-p), inverse-CDF sampling with a caller-supplied uniform, greedy argmax and the
// reported log-probability. Pure functions over spans: no model, no MPI, no hidden state.
#pragma once
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "shard/result.h"

namespace tandem {

struct SamplingParams {
  float temperature = 0.0f;  // 0 = greedy (argmax); other filters are then irrelevant
  int top_k = 0;             // keep the k most likely tokens; 0 = off
  float top_p = 1.0f;        // nucleus mass in (0, 1]; 1 = off
  float min_p = 0.0f;        // drop tokens with p < min_p * p_max; in [0, 1); 0 = off
  float repetition_penalty = 1.0f;  // > 0; 1 = off
  float presence_penalty = 0.0f;    // subtracted once from every token seen in the window
  float frequency_penalty = 0.0f;   // subtracted once per occurrence in the window
  int penalty_last_n = 64;          // window of recent tokens the penalties look at; 0 = none, -1 = all
  uint64_t seed = 0;                // key of every uniform of the request (decode/philox.h)
};

// Clear messages for out-of-range values (names the field and the value).
Status validate(const SamplingParams& params);

// temperature <= 0 (or NaN, which validate() rejects) samples greedily.
bool is_greedy(const SamplingParams& params);

// A distribution over token ids, stored sparsely: `ids` strictly increasing, `probs[i]` > 0 the
// probability of `ids[i]`, summing to 1 (up to float rounding). Sorted by id rather than by
// probability because the speculative rule looks tokens up (binary search) and walks two
// distributions together (merge) to form max(0, p - q); sorting by id also makes the
// representation canonical, whatever path produced it. Reuse one object across steps: its
// vectors keep their capacity.
struct SparseDist {
  std::vector<int32_t> ids;
  std::vector<float> probs;

  size_t size() const { return ids.size(); }
  bool empty() const { return ids.empty(); }
  float prob(int32_t id) const;  // 0 for a token outside the support
};

// Index of the largest logit; ties go to the lowest id (the distributed max-loc relies on this).
// NaN never wins; an all-NaN / empty row gives 0 / -1.
int32_t argmax(std::span<const float> logits);

// llama.cpp semantics over the last `penalty_last_n` tokens of `history`, once per distinct token:
// repetition penalty divides a positive logit and multiplies a non-positive one; then
// logit -= count * frequency_penalty + presence_penalty. Ids outside the row are ignored.
void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                     const SamplingParams& params);

// The target distribution of already-penalised logits: softmax at the temperature, then top-k,
// then top-p (the smallest prefix, by descending probability, whose mass is >= top_p of what
// top-k kept), then min-p, renormalised. Each filter sees the previous one's survivors; ranking
// ties go to the lower id, so the result is a deterministic function of the row. Greedy
// (temperature 0) gives the one-hot argmax. Tokens with -inf/NaN logits, or whose weight relative
// to the best token is below FLT_MIN (~1e-38), are never in the support; +inf logits share all
// the mass. Cost is O(V) (selections, never a full sort of the vocabulary); without top-k/top-p
// cuts the result is dense over the vocabulary (~35 us for 32000 tokens on the dev machine).
void sampling_distribution(std::span<const float> logits, const SamplingParams& params,
                           SparseDist& out);

// Inverse CDF in increasing id order, so a given u in [0, 1) always gives the same token.
// Returns -1 only for an empty distribution.
int32_t sample(const SparseDist& dist, double u);

// Most likely token of a distribution (ties -> lowest id); -1 when empty.
int32_t dist_argmax(const SparseDist& dist);

// log softmax(logits)[id] at temperature 1 of the (penalised) logits, whatever the sampling
// temperature and filters were: this is the model's own log-probability, what OpenAI-style APIs
// report as `logprobs`, and it stays finite for tokens the filters excluded.
float logprob(std::span<const float> logits, int32_t id);

// The n most likely tokens of the same distribution as logprob(), most likely first (ties: lower
// id), with their log-probabilities; fewer when the row has fewer non-NaN entries.
std::vector<std::pair<int32_t, float>> top_logprobs(std::span<const float> logits, int n);

}  // namespace tandem
