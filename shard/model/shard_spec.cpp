#include "shard/model/shard_spec.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tandem {

std::vector<int> split_even(int n, int parts, int unit) {
  if (parts <= 0 || unit <= 0 || n % unit != 0) return {};
  const int units = n / unit;
  if (units < parts) return {};
  std::vector<int> b(parts + 1, 0);
  for (int p = 0; p < parts; ++p) b[p + 1] = b[p] + (units / parts + (p < units % parts ? 1 : 0)) * unit;
  return b;
}

Result<ShardRanges> shard_ranges(const ModelConfig& c, const ShardSpec& s, WeightType attn_output_type,
                                 WeightType ffn_down_type) {
  ShardRanges r;
  const int tp = s.tp_size;
  if (tp < 1 || s.tp_rank < 0 || s.tp_rank >= tp) return make_error("invalid tensor-parallel rank {} of {}", s.tp_rank, tp);
  if (c.n_heads % tp != 0)
    return make_error("--tp {} does not divide the model's {} attention heads (use a divisor of {})", tp, c.n_heads,
                      c.n_heads);
  const int hq = c.n_heads / tp;
  r.q_head_begin = s.tp_rank * hq;
  r.q_head_end = r.q_head_begin + hq;
  // Query head h reads KV head h / group; a rank needs every KV head its query heads read, so KV
  // heads are split when tp <= n_kv_heads and replicated when tp > n_kv_heads.
  const int group = c.n_heads / c.n_kv_heads;
  r.kv_head_begin = r.q_head_begin / group;
  r.kv_head_end = (r.q_head_end - 1) / group + 1;

  // attn_output is row-parallel: this rank's input columns are its query heads' outputs.
  const int64_t ob = info(attn_output_type).block_elems;
  if ((static_cast<int64_t>(r.q_head_begin) * c.head_dim) % ob != 0 || (static_cast<int64_t>(hq) * c.head_dim) % ob != 0)
    return make_error("--tp {}: {} heads of dimension {} per rank do not fall on the {}-element blocks of attn_output ({})",
                      tp, hq, c.head_dim, ob, name(attn_output_type));

  const int fb = static_cast<int>(info(ffn_down_type).block_elems);
  const auto fsplit = split_even(c.ffn_dim, tp, fb);
  if (fsplit.empty())
    return make_error("--tp {}: the feed-forward size {} cannot be split into {} pieces of whole {}-element blocks of "
                      "ffn_down ({})", tp, c.ffn_dim, tp, fb, name(ffn_down_type));
  r.ffn_begin = fsplit[s.tp_rank];
  r.ffn_end = fsplit[s.tp_rank + 1];

  const auto vsplit = split_even(c.n_vocab, tp, 1);
  if (vsplit.empty()) return make_error("--tp {} exceeds the vocabulary size {}", tp, c.n_vocab);
  r.vocab_begin = vsplit[s.tp_rank];
  r.vocab_end = vsplit[s.tp_rank + 1];

  r.layer_begin = s.layer_begin;
  r.layer_end = s.layer_end < 0 ? c.n_layers : s.layer_end;
  if (r.layer_begin < 0 || r.layer_end > c.n_layers || r.layer_begin > r.layer_end)
    return make_error("layer range [{}, {}) is outside the model's {} layers", r.layer_begin, r.layer_end, c.n_layers);
  return r;
}

Result<std::vector<std::pair<int, int>>> pipeline_stages(int n_layers, int pp, const std::vector<int>& layer_split) {
  std::vector<std::pair<int, int>> st;
  if (pp < 1) return make_error("--pp must be at least 1 (got {})", pp);
  if (!layer_split.empty()) {
    if (static_cast<int>(layer_split.size()) != pp)
      return make_error("--layer-split has {} entries but --pp is {}", layer_split.size(), pp);
    int b = 0;
    for (int n : layer_split) {
      if (n < 1) return make_error("--layer-split entries must be positive (got {})", n);
      st.emplace_back(b, b + n);
      b += n;
    }
    if (b != n_layers) return make_error("--layer-split sums to {} layers but the model has {}", b, n_layers);
    return st;
  }
  if (pp > n_layers) return make_error("--pp {} exceeds the model's {} layers", pp, n_layers);
  const auto b = split_even(n_layers, pp, 1);
  for (int i = 0; i < pp; ++i) st.emplace_back(b[i], b[i + 1]);
  return st;
}

std::vector<int> balanced_layer_split(const std::vector<double>& layer_bytes, int pp, double head_bytes) {
  const int n = static_cast<int>(layer_bytes.size());
  if (pp < 2 || pp > n) return {};
  std::vector<double> pre(n + 1, 0);
  for (int i = 0; i < n; ++i) pre[i + 1] = pre[i] + layer_bytes[i];
  const auto even = split_even(n, pp, 1);
  // best[k][i]: (largest stage, distance from even) splitting layers [0, i) into k stages.
  using Cost = std::pair<double, int>;
  const Cost inf{1e300, 0};
  std::vector<std::vector<Cost>> best(pp + 1, std::vector<Cost>(n + 1, inf));
  std::vector<std::vector<int>> from(pp + 1, std::vector<int>(n + 1, -1));
  best[0][0] = {0, 0};
  for (int k = 1; k <= pp; ++k)
    for (int i = k; i <= n - (pp - k); ++i)
      for (int j = k - 1; j < i; ++j) {
        if (best[k - 1][j].first >= inf.first) continue;
        const double stage = pre[i] - pre[j] + (k == pp ? head_bytes : 0.0);
        const Cost c{std::max(best[k - 1][j].first, stage), best[k - 1][j].second + std::abs(i - even[k])};
        // Equal maxima within a relative 1e-9 count as equal: then the more even split wins.
        const bool tie = std::abs(c.first - best[k][i].first) <= 1e-9 * std::max(1.0, c.first);
        if ((!tie && c.first < best[k][i].first) || (tie && c.second < best[k][i].second)) {
          best[k][i] = c;
          from[k][i] = j;
        }
      }
  std::vector<int> split(pp);
  for (int k = pp, i = n; k > 0; --k) {
    const int j = from[k][i];
    split[k - 1] = i - j;
    i = j;
  }
  return split;
}

}  // namespace tandem
