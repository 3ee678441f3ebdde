#include "decode/sampling.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <limits>

#include "shard/kernels/row_kernels.h"

namespace tandem {

namespace {
constexpr float kInf = std::numeric_limits<float>::infinity();

// ---------------------------------------------------------------------------------------------
// Selection.

// Ranking everywhere: larger value first, ties to the lower id, a strict total order (ids are
// unique), so every cut below has exactly one answer. Values are compared through an
// order-preserving unsigned key, which lets the large cuts run as radix selections.

// Order-preserving key of a logit; NaN ranks as -inf.
inline uint32_t logit_key(float v) {
  const uint32_t b = std::bit_cast<uint32_t>(std::isnan(v) ? -kInf : v);
  return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// Positive weights order like their bit patterns.
inline uint32_t weight_key(float w) { return std::bit_cast<uint32_t>(w); }

// The cut of a ranking: entry `pos` (positions ascend with ids) with key `key`; an entry is kept
// when it ranks no later: key > cut.key, or key == cut.key and position <= cut.pos.
struct Cut {
  uint32_t key;
  size_t pos;
};

// From the heaviest bucket down, the one where the cumulative weight reaches `need`; `need` becomes
// what is still needed inside it. When rounding leaves `need` just out of reach, the lightest
// non-empty bucket is picked and everything is kept.
size_t pick_bucket(std::span<const double> mass, double& need) {
  size_t pick = 0;
  double above = 0;
  bool reached = false;
  for (size_t b = mass.size(); b-- > 0 && !reached;) {
    if (mass[b] == 0) continue;
    pick = b;
    if (above + mass[b] >= need) {
      reached = true;
    } else {
      above += mass[b];
    }
  }
  if (!reached) above -= mass[pick];  // ran out: `pick` is the lightest, kept whole
  need -= above;
  return pick;
}

// The entry that ends the shortest prefix, in rank order, whose weight reaches `need` (need > 0,
// every weight > 0, n > 0, keys <= max_key). Radix select: a histogram of weight per bucket of
// the top 11 key bits finds the bucket where the cumulative weight crosses `need`; only that
// bucket's entries go on to the finer levels (11, then 10 bits), after which one key value is left
// and ties go by position. O(n), no comparison sort: a flat distribution keeps most of the
// vocabulary in the nucleus, where sorting would cost O(V log V). With unit weights and need = k
// it is the top-k cut.
template <class KeyFn, class WeightFn>
Cut radix_cut(size_t n, KeyFn key, WeightFn weight, uint32_t max_key, double need) {
  // Level 0 over everything, into four interleaved histograms so that runs of equal buckets do
  // not serialise on one memory cell.
  constexpr int kShift0 = 21;
  const size_t nb = (max_key >> kShift0) + 1;
  std::vector<double> hist(4 * nb, 0.0);
  std::vector<uint32_t> count(4 * nb, 0);  // entries per bucket: sizes the gather below
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t j = 0; j < 4; ++j) {
      const size_t b = j * nb + (key(i + j) >> kShift0);
      hist[b] += weight(i + j);
      ++count[b];
    }
  }
  for (; i < n; ++i) {
    hist[key(i) >> kShift0] += weight(i);
    ++count[key(i) >> kShift0];
  }
  for (size_t b = 0; b < nb; ++b) {
    hist[b] += (hist[nb + b] + hist[2 * nb + b]) + hist[3 * nb + b];
    count[b] += count[nb + b] + count[2 * nb + b] + count[3 * nb + b];
  }
  const size_t top = pick_bucket(std::span<const double>(hist.data(), nb), need);

  struct Entry {
    uint32_t key;
    uint32_t pos;
    double w;
  };
  // Gather the bucket's entries without a branch per entry (in a flat distribution the bucket
  // is a sizeable, randomly placed fraction of the row): write always, advance only on a match.
  std::vector<Entry> e(count[top] + 1);
  size_t m = 0;
  for (i = 0; i < n; ++i) {
    const uint32_t k = key(i);
    e[m] = {k, static_cast<uint32_t>(i), static_cast<double>(weight(i))};
    m += (k >> kShift0) == top ? 1 : 0;
  }
  e.resize(m);
  struct Level {
    int shift;
    uint32_t mask;
  };
  std::array<double, 0x800> mass;
  for (const Level lv : {Level{10, 0x7FF}, Level{0, 0x3FF}}) {
    const std::span<double> m(mass.data(), lv.mask + 1);
    std::fill(m.begin(), m.end(), 0.0);
    for (const Entry& x : e) m[(x.key >> lv.shift) & lv.mask] += x.w;
    const size_t pick = pick_bucket(m, need);
    std::erase_if(e, [&](const Entry& x) { return ((x.key >> lv.shift) & lv.mask) != pick; });
  }
  // One key value left: positions ascend, which is rank order among equals.
  for (const Entry& x : e) {
    need -= x.w;
    if (need <= 0) return {x.key, x.pos};
  }
  return {e.back().key, e.back().pos};
}

// The k best logits (NaN ranks as -inf), as positions, any order; k <= 256 < logits.size(). A heap
// whose front is the worst kept token: later ids lose ties, so only a strictly greater logit can
// enter, and the vector scan skips everything else (a handful of entries over a whole row).
void small_top_k(std::span<const float> logits, size_t k, std::vector<std::pair<float, int32_t>>& heap) {
  auto worse = [](const std::pair<float, int32_t>& a, const std::pair<float, int32_t>& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  };
  heap.resize(k);
  for (size_t i = 0; i < k; ++i)
    heap[i] = {std::isnan(logits[i]) ? -kInf : logits[i], static_cast<int32_t>(i)};
  std::make_heap(heap.begin(), heap.end(), worse);
  for (size_t i = find_greater(logits, k, heap.front().first); i < logits.size();
       i = find_greater(logits, i + 1, heap.front().first)) {
    std::pop_heap(heap.begin(), heap.end(), worse);
    heap.back() = {logits[i], static_cast<int32_t>(i)};
    std::push_heap(heap.begin(), heap.end(), worse);
  }
}

// Keeps the entries of `d` ranked no later than (key_c, id_c) (see keep_ranked in row_kernels.h).
void keep_ranked(SparseDist& d, uint32_t key_c, int32_t id_c) {
  const size_t n = tandem::keep_ranked(d.ids.data(), d.probs.data(), d.size(), key_c, id_c);
  d.ids.resize(n);
  d.probs.resize(n);
}

void one_hot(SparseDist& out, int32_t id) {
  out.ids.assign(1, id);
  out.probs.assign(1, 1.0f);
}

}  // namespace

Status validate(const SamplingParams& p) {
  // Written as !(in range) so that NaN is rejected too.
  if (!(p.temperature >= 0.0f) || !std::isfinite(p.temperature))
    return make_error("sampling: temperature must be a finite number >= 0 (got {})", p.temperature);
  if (p.top_k < 0) return make_error("sampling: top_k must be >= 0, 0 = off (got {})", p.top_k);
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f))
    return make_error("sampling: top_p must be in (0, 1], 1 = off (got {})", p.top_p);
  if (!(p.min_p >= 0.0f && p.min_p < 1.0f))
    return make_error("sampling: min_p must be in [0, 1), 0 = off (got {})", p.min_p);
  if (!(p.repetition_penalty > 0.0f) || !std::isfinite(p.repetition_penalty))
    return make_error("sampling: repetition_penalty must be a finite number > 0, 1 = off (got {})",
                      p.repetition_penalty);
  if (!std::isfinite(p.presence_penalty))
    return make_error("sampling: presence_penalty must be finite (got {})", p.presence_penalty);
  if (!std::isfinite(p.frequency_penalty))
    return make_error("sampling: frequency_penalty must be finite (got {})", p.frequency_penalty);
  if (p.penalty_last_n < -1)
    return make_error("sampling: penalty_last_n must be >= -1, -1 = whole history (got {})",
                      p.penalty_last_n);
  return ok_status();
}

// Not "== 0": a negative or NaN temperature (which validate() rejects) must not reach the
// softmax, where it would turn the ranking upside down or poison every weight.
bool is_greedy(const SamplingParams& params) { return !(params.temperature > 0.0f); }

float SparseDist::prob(int32_t id) const {
  auto it = std::lower_bound(ids.begin(), ids.end(), id);
  return (it != ids.end() && *it == id) ? probs[static_cast<size_t>(it - ids.begin())] : 0.0f;
}

int32_t argmax(std::span<const float> logits) {
  if (logits.empty()) return -1;
  const float m = row_max(logits);
  if (m == -kInf) {  // only -inf and NaN: the first -inf, or 0 when everything is NaN
    for (size_t i = 0; i < logits.size(); ++i)
      if (logits[i] == -kInf) return static_cast<int32_t>(i);
    return 0;
  }
  // The first index holding the maximum is the lowest id among ties.
  const size_t i = find_greater(logits, 0, std::nextafter(m, -kInf));
  return static_cast<int32_t>(i);
}

void apply_penalties(std::span<float> logits, std::span<const int32_t> history,
                     const SamplingParams& params) {
  const float rep = params.repetition_penalty;
  const float pres = params.presence_penalty;
  const float freq = params.frequency_penalty;
  if ((rep == 1.0f && pres == 0.0f && freq == 0.0f) || params.penalty_last_n == 0) return;
  size_t n = history.size();
  if (params.penalty_last_n > 0) n = std::min(n, static_cast<size_t>(params.penalty_last_n));
  // The window is small (tens of tokens): sorting a copy counts occurrences without a table the
  // size of the vocabulary.
  std::vector<int32_t> window(history.end() - static_cast<std::ptrdiff_t>(n), history.end());
  std::sort(window.begin(), window.end());
  const auto vocab = static_cast<int64_t>(logits.size());
  for (size_t i = 0; i < window.size();) {
    size_t j = i;
    while (j < window.size() && window[j] == window[i]) ++j;
    const int32_t id = window[i];
    const auto count = static_cast<float>(j - i);
    i = j;
    if (id < 0 || id >= vocab) continue;
    float& l = logits[static_cast<size_t>(id)];
    if (rep != 1.0f) l = l > 0.0f ? l / rep : l * rep;
    l -= count * freq + pres;
  }
}

void sampling_distribution(std::span<const float> logits, const SamplingParams& params,
                           SparseDist& out) {
  out.ids.clear();
  out.probs.clear();
  if (logits.empty()) return;
  if (is_greedy(params)) return one_hot(out, argmax(logits));

  const size_t vocab = logits.size();
  const float m = row_max(logits);
  if (m == -kInf) return one_hot(out, argmax(logits));  // no finite logit: nothing to weigh
  if (m == kInf) {
    // exp(inf - inf) is undefined: the limit puts all mass, evenly, on the +inf logits.
    for (size_t i = 0; i < vocab; ++i)
      if (logits[i] == m) out.ids.push_back(static_cast<int32_t>(i));
    out.probs.assign(out.ids.size(), 1.0f / static_cast<float>(out.ids.size()));
    return;
  }
  const float inv_t = 1.0f / params.temperature;
  if (!std::isfinite(inv_t)) return one_hot(out, argmax(logits));  // a subnormal temperature

  // 1. Temperature softmax (unnormalised weights; the best token weighs 1) over the top-k. The
  //    top-k cut is made on the logits, before any exp: same ranking, and only k exponentials.
  const size_t k = params.top_k > 0 ? static_cast<size_t>(params.top_k) : vocab;
  if (k < vocab) {
    // Gather the kept logits in id order into `out`, then weigh them in place.
    if (k <= 256) {
      std::vector<std::pair<float, int32_t>> heap;
      small_top_k(logits, k, heap);
      std::sort(heap.begin(), heap.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
      for (const auto& [v, id] : heap) {
        out.ids.push_back(id);
        out.probs.push_back(v);
      }
    } else {
      const Cut c = radix_cut(
          vocab, [&](size_t i) { return logit_key(logits[i]); }, [](size_t) { return 1.0; },
          0xFFFFFFFFu, static_cast<double>(k));
      out.ids.reserve(k);
      out.probs.reserve(k);
      for (size_t i = 0; i < vocab; ++i) {
        const uint32_t key = logit_key(logits[i]);
        if ((key > c.key) | ((key == c.key) & (i <= c.pos))) {
          out.ids.push_back(static_cast<int32_t>(i));
          out.probs.push_back(logits[i]);
        }
      }
    }
  } else {
    out.ids.resize(vocab);
    out.probs.assign(logits.begin(), logits.end());
  }
  // Weights in place (the best token weighs exactly 1; -inf, NaN and underflow weigh 0 and go).
  const ExpSum e = exp_weights(out.probs, m, inv_t, out.probs.data(), k < vocab ? nullptr : out.ids.data());
  const double total = e.sum;
  constexpr int32_t kAnyId = std::numeric_limits<int32_t>::max();
  if (e.zeros > 0) keep_ranked(out, weight_key(0.0f) + 1, kAnyId);  // w > 0

  // 2. Top-p over what top-k kept.
  if (params.top_p < 1.0f && out.size() > 1) {
    const float* w = out.probs.data();
    const Cut c = radix_cut(
        out.size(), [w](size_t i) { return weight_key(w[i]); }, [w](size_t i) { return double{w[i]}; },
        weight_key(row_max(out.probs)), static_cast<double>(params.top_p) * total);
    const int32_t cut_id = out.ids[c.pos];  // ids ascend with positions
    keep_ranked(out, c.key, cut_id);
  }

  // 3. Min-p: relative to the most likely survivor, so renormalisation does not change it.
  if (params.min_p > 0.0f && out.size() > 1) {
    const float floor = params.min_p * row_max(out.probs);
    keep_ranked(out, weight_key(floor), kAnyId);  // w >= floor
  }

  const auto inv = static_cast<float>(1.0 / row_sum(out.probs));
  for (float& w : out.probs) w *= inv;
}

int32_t sample(const SparseDist& dist, double u) {
  if (dist.empty()) return -1;
  // Scale u by the actual total instead of assuming 1, so float rounding in the stored
  // probabilities cannot shift mass onto the last token.
  const double target = u * row_sum(dist.probs);
  const size_t n = dist.size();
  double acc = 0;
  size_t i = 0;
  // Whole blocks first (their sums are independent, so they pipeline), then token by token
  // inside the block where the CDF crosses the target.
  constexpr size_t kBlock = 16;
  for (; i + kBlock <= n; i += kBlock) {
    const double block = row_sum(std::span<const float>(dist.probs).subspan(i, kBlock));
    if (target < acc + block) break;
    acc += block;
  }
  for (; i < n; ++i) {
    acc += dist.probs[i];
    if (target < acc) return dist.ids[i];
  }
  return dist.ids.back();
}

int32_t dist_argmax(const SparseDist& dist) {
  if (dist.empty()) return -1;
  size_t best = 0;
  for (size_t i = 1; i < dist.size(); ++i)
    if (dist.probs[i] > dist.probs[best]) best = i;  // ids ascend: strict > keeps the lowest id
  return dist.ids[best];
}

float logprob(std::span<const float> logits, int32_t id) {
  if (id < 0 || static_cast<size_t>(id) >= logits.size()) return -kInf;
  const float x = logits[static_cast<size_t>(id)];
  if (std::isnan(x) || x == -kInf) return -kInf;
  const float m = row_max(logits);
  if (m == kInf) {  // the limit: all mass shared evenly by the +inf logits
    if (x != kInf) return -kInf;
    const auto n_inf = std::count(logits.begin(), logits.end(), kInf);
    return -std::log(static_cast<float>(n_inf));
  }
  const double z = exp_weights(logits, m, 1.0f, nullptr, nullptr).sum;
  return static_cast<float>(static_cast<double>(x - m) - std::log(z));
}

}  // namespace tandem

namespace tandem {

std::vector<std::pair<int32_t, float>> top_logprobs(std::span<const float> logits, int n) {
  std::vector<std::pair<int32_t, float>> out;
  if (n <= 0 || logits.empty()) return out;
  // Ranking: higher logit first, lower id on ties; NaN never ranks. A small sorted buffer beats a
  // full sort of the vocabulary for the n <= 20 an API asks for.
  auto better = [&](int32_t a, int32_t b) {
    const float x = logits[static_cast<size_t>(a)], y = logits[static_cast<size_t>(b)];
    return x > y || (x == y && a < b);
  };
  std::vector<int32_t> best;
  best.reserve(static_cast<size_t>(n) + 1);
  for (int32_t i = 0; i < static_cast<int32_t>(logits.size()); ++i) {
    if (std::isnan(logits[static_cast<size_t>(i)])) continue;
    if (static_cast<int>(best.size()) == n && !better(i, best.back())) continue;
    best.insert(std::upper_bound(best.begin(), best.end(), i, better), i);
    if (static_cast<int>(best.size()) > n) best.pop_back();
  }
  if (best.empty()) return out;
  // One normaliser for all: log p(i) = log p(best) + (x_i - x_best) while both logits are finite.
  const float x0 = logits[static_cast<size_t>(best[0])], lp0 = logprob(logits, best[0]);
  for (int32_t id : best) {
    const float x = logits[static_cast<size_t>(id)];
    const bool finite = std::isfinite(x) && std::isfinite(x0) && std::isfinite(lp0);
    out.emplace_back(id, finite ? lp0 + (x - x0) : logprob(logits, id));
  }
  return out;
}

}  // namespace tandem
