#include "bench/cost_model.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "shard/model/shard_spec.h"

namespace tandem::bench {

double ModelShape::bytes_per_weight() const {
  const auto& i = info(type);
  return static_cast<double>(i.block_bytes) / static_cast<double>(i.block_elems);
}
double ModelShape::layer_weight_bytes() const {
  const double q = double(n_heads) * head_dim, kv = double(n_kv_heads) * head_dim;
  return (dim * q * 2 + dim * kv * 2 + 3.0 * dim * ffn_dim) * bytes_per_weight();
}
double ModelShape::head_bytes() const { return double(n_vocab) * dim * bytes_per_weight(); }
double ModelShape::embedding_bytes() const { return double(n_vocab) * dim * bytes_per_weight(); }
double ModelShape::kv_bytes_per_position_layer() const { return 2.0 * n_kv_heads * head_dim * 2.0; }

namespace {
struct NamedShape {
  const char* name;
  int layers, dim, heads, kv_heads, head_dim, ffn, vocab;
};
// The published configurations (config.json of each release).
constexpr NamedShape kShapes[] = {
    {"tinyllama-1.1b", 22, 2048, 32, 4, 64, 5632, 32000},   {"llama-2-7b", 32, 4096, 32, 32, 128, 11008, 32000},
    {"llama-2-13b", 40, 5120, 40, 40, 128, 13824, 32000},   {"llama-3-8b", 32, 4096, 32, 8, 128, 14336, 128256},
    {"llama-3-70b", 80, 8192, 64, 8, 128, 28672, 128256},   {"qwen2.5-72b", 80, 8192, 64, 8, 128, 29568, 152064},
};
}  // namespace

std::vector<std::string> shape_names() {
  std::vector<std::string> v;
  for (const auto& s : kShapes) v.emplace_back(s.name);
  return v;
}

Result<ModelShape> named_shape(const std::string& name, WeightType type) {
  std::string lower = name;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
  for (const auto& s : kShapes)
    if (lower == s.name) return ModelShape{s.name, s.layers, s.dim, s.heads, s.kv_heads, s.head_dim, s.ffn, s.vocab, type};
  return make_error("--shape '{}': unknown shape (known: {})", name, fmt::join(shape_names(), ", "));
}

ModelShape shape_from_config(const ModelConfig& c, WeightType type) {
  return ModelShape{c.name.empty() ? c.arch : c.name, c.n_layers, c.dim, c.n_heads, c.n_kv_heads, c.head_dim,
                    c.ffn_dim, c.n_vocab, type};
}

double compute_factor(const ClusterSpec& c, WeightType t, double rows) {
  if (rows <= 1) return 1.0;
  const auto it = c.compute.find(std::string(name(t)));
  if (it == c.compute.end() || it->second.empty()) return 1.0;  // no profile: purely bandwidth-bound
  const auto& p = it->second;
  if (rows <= p.front().first) return p.front().second;
  for (size_t i = 1; i < p.size(); ++i) {
    if (rows <= p[i].first) {
      const double x0 = std::log2(double(p[i - 1].first)), x1 = std::log2(double(p[i].first));
      const double w = (std::log2(rows) - x0) / (x1 - x0);
      return p[i - 1].second + w * (p[i].second - p[i - 1].second);
    }
  }
  // Beyond the last point the step is compute-bound: time grows with rows at the last slope.
  if (p.size() < 2) return p.back().second;
  const auto& a = p[p.size() - 2];
  const auto& b = p.back();
  const double slope = std::max(0.0, (b.second - a.second) / double(b.first - a.first));
  return b.second + slope * (rows - b.first);
}

const char* mode_name(Mode m) {
  switch (m) {
    case Mode::AR: return "ar";
    case Mode::SD: return "sd";
    case Mode::PEARL: return "pearl";
  }
  return "?";
}

double pipeline_cycle(const std::vector<double>& stage_s, double hop_s, int micro) {
  double sum = 0, mx = 0;
  for (double t : stage_s) sum += t, mx = std::max(mx, t);
  // A micro-batch's trip: every stage plus pp sends (pp-1 hidden states, the sampled token back).
  const size_t pp = stage_s.size();
  const double trip = sum + (pp > 1 ? double(pp) * hop_s : 0.0);
  // With `micro` batches in flight the slowest stage serves each once per cycle.
  return std::max(trip, std::max(1, micro) * mx);
}

double expected_tokens(double alpha, int gamma) {
  if (alpha >= 1.0) return gamma + 1.0;
  return (1.0 - std::pow(alpha, gamma + 1)) / (1.0 - alpha);
}

namespace {

constexpr double kGiB = 1073741824.0;

double efficiency(const ClusterSpec& c, WeightType t) {
  const auto e = c.kernel_efficiency.find(std::string(name(t)));
  return e == c.kernel_efficiency.end() ? 1.0 : e->second;
}

// The rate a rank's GEMV streams its weights at while `bw` (bytes/s) is its share of the node's
// bandwidth: the lower of that share and what the kernel reaches alone (efficiency × one rank's
// bandwidth) — a roofline: a rank whose kernel is compute-limited alone loses nothing until its
// share of the bandwidth drops below its compute rate.
double gemv_rate(const ClusterSpec& c, WeightType t, double bw) {
  return std::min(bw, efficiency(c, t) * 1e9 * c.rank_read_GBps);
}

int node_of(const ClusterSpec& c, int world_rank) { return world_rank / std::max(1, c.ranks_per_node); }

// Read bandwidth (bytes/s) of one rank while `active` ranks of its node stream at the same time.
double shared_bw(const ClusterSpec& c, int active) {
  return 1e9 * std::min(c.rank_read_GBps, c.node_read_GBps / std::max(1, active));
}

// Most ranks of `ranks` on one node.
int max_per_node(const ClusterSpec& c, const std::vector<int>& ranks) {
  std::map<int, int> n;
  int best = 0;
  for (int r : ranks) best = std::max(best, ++n[node_of(c, r)]);
  return best;
}

std::vector<int> stage_ranks(const Layout& l, int s) {
  std::vector<int> v;
  for (int t = 0; t < l.tp; ++t) v.push_back(target_world_rank(l, s, t));
  return v;
}
std::vector<int> draft_ranks(const Layout& l) {
  std::vector<int> v;
  for (int d = 0; d < l.draft_tp; ++d) v.push_back(l.target_ranks() + d);
  return v;
}

const Link& link_between(const ClusterSpec& c, const std::vector<int>& ranks) {
  for (int r : ranks)
    if (node_of(c, r) != node_of(c, ranks.front())) return c.inter;
  return c.intra;
}

// Recursive doubling: log2(p) rounds, each a full message (decode messages are latency-sized).
double allreduce_s(const Link& l, int p, double bytes) {
  if (p <= 1) return 0;
  return std::ceil(std::log2(double(p))) * l.time(bytes);
}

struct RankSlice {  // what the heaviest rank (TP rank 0) of a stage holds and streams
  double layer_bytes = 0;  // per layer
  double kv_per_pos_layer = 0;
  double kv_heads = 0;
  double head_bytes = 0;
};

Result<RankSlice> slice_of(const ModelShape& m, int tp) {
  ModelConfig cfg;
  cfg.n_layers = m.n_layers, cfg.dim = m.dim, cfg.n_heads = m.n_heads, cfg.n_kv_heads = m.n_kv_heads;
  cfg.head_dim = m.head_dim, cfg.ffn_dim = m.ffn_dim, cfg.n_vocab = m.n_vocab;
  ShardSpec s;
  s.tp_size = tp;
  auto r = shard_ranges(cfg, s, m.type, m.type);
  if (!r) return r.error();
  const double bpw = m.bytes_per_weight();
  const double q = double(r->n_q_heads()) * m.head_dim, kv = double(r->n_kv_heads()) * m.head_dim;
  RankSlice out;
  out.layer_bytes = (m.dim * q * 2 + m.dim * kv * 2 + 3.0 * m.dim * r->n_ffn()) * bpw;
  out.kv_per_pos_layer = 2.0 * kv * 2.0;
  out.kv_heads = r->n_kv_heads();
  out.head_bytes = double(r->n_vocab()) * m.dim * bpw;
  return out;
}

struct Ctx {
  const ModelShape& m;
  const ClusterSpec& c;
  const Query& q;
  RankSlice slice;
  std::vector<std::pair<int, int>> stages;
};

// One stage's step over `rows` rows of `seqs` sequences with `ctx` cached positions each, while
// `active` ranks share the node's bandwidth. Adds its parts into `b` when given.
double stage_step(const Ctx& x, int s, double rows, double seqs, double ctx, int active, Breakdown* b) {
  const int layers = x.stages[s].second - x.stages[s].first;
  const bool last = s + 1 == static_cast<int>(x.stages.size());
  const double bw = shared_bw(x.c, active);
  const double wbw = gemv_rate(x.c, x.m.type, bw);
  const double weights = (layers * x.slice.layer_bytes + (last ? x.slice.head_bytes : 0)) / wbw *
                         compute_factor(x.c, x.m.type, rows);
  // Attention: its K/V rows are read once per step for all query rows (bandwidth), and every
  // query row computes over every position (calibrated compute); the larger of the two.
  const double kv_read = seqs * layers * ctx * x.slice.kv_per_pos_layer / bw;
  const double group = x.m.n_kv_heads > 0 ? double(x.m.n_heads) / x.m.n_kv_heads * x.m.head_dim : x.m.head_dim;
  const double attn_compute = x.c.attention_s_per_pos > 0
                                  ? rows * layers * x.slice.kv_heads * ctx * x.c.attention_s_per_pos *
                                        group / x.c.attention_ref
                                  : 0.0;
  const double attention = std::max(kv_read, attn_compute);
  const Link& l = link_between(x.c, stage_ranks(x.q.layout, s));
  const int tp = x.q.layout.tp;
  double ar = 2.0 * layers * allreduce_s(l, tp, rows * x.m.dim * 4.0);
  if (last) ar += allreduce_s(l, tp, rows * 8.0);  // max-loc over the vocabulary slices
  // The step's descriptor (its length, then its tokens and positions) broadcast to the TP group.
  if (x.c.bcast && tp > 1) {
    const Link& bl = &l == &x.c.inter ? x.c.inter : *x.c.bcast;
    ar += 2.0 * allreduce_s(bl, tp, rows * 16.0);
  }
  if (b) b->weights += weights, b->attention += attention, b->allreduce += ar;
  return weights + attention + ar;
}

double hop_s(const Ctx& x, double rows) {
  const Layout& l = x.q.layout;
  if (l.pp <= 1) return 0;
  // The slowest stage boundary (a boundary across nodes pays the inter-node link).
  double worst = 0;
  for (int s = 0; s + 1 < l.pp; ++s) {
    const Link& k = link_between(x.c, {target_world_rank(l, s, 0), target_world_rank(l, s + 1, 0)});
    const Link& kk = &k == &x.c.intra && x.c.p2p ? *x.c.p2p : k;  // measured sends within a node
    worst = std::max(worst, kk.time(rows * x.m.dim * 4.0));
  }
  return worst;
}

// One target step over `rows` rows of one sequence (single-sequence pipelining: stages in turn).
double target_step(const Ctx& x, double rows, int extra_active_per_node, Breakdown* b) {
  std::vector<double> st;
  for (int s = 0; s < x.q.layout.pp; ++s) {
    const int active = max_per_node(x.c, stage_ranks(x.q.layout, s)) + extra_active_per_node;
    st.push_back(stage_step(x, s, rows, 1, x.q.context, active, b));
  }
  // Stages in turn: each waits for the others' whole stage, long enough to fall asleep.
  const double hop = hop_s(x, rows) + (x.q.layout.pp > 1 ? x.c.hop_overhead_s : 0.0);
  const double cycle = pipeline_cycle(st, hop, 1);
  if (b) {
    double busy = 0;
    for (double t : st) busy += t;
    b->p2p += x.q.layout.pp > 1 ? x.q.layout.pp * hop : 0;
    b->bubble_fraction = 1.0 - busy / (x.q.layout.pp * cycle);
    b->overhead += x.c.step_overhead_s;
  }
  return cycle + x.c.step_overhead_s;
}

double memory_per_rank(const Ctx& x) {
  double worst = 0;
  for (size_t s = 0; s < x.stages.size(); ++s) {
    const int layers = x.stages[s].second - x.stages[s].first;
    double b = layers * x.slice.layer_bytes + layers * x.slice.kv_per_pos_layer * x.q.context * x.q.max_seqs;
    if (s == 0) b += x.m.embedding_bytes();  // mapped whole: any token's row may be read
    if (s + 1 == x.stages.size()) b += x.slice.head_bytes;
    worst = std::max(worst, b);
  }
  return worst;
}

// The stages the launcher makes (dist/cluster.cpp stage_split): --layer-split as given, else with
// pp > 1 balanced by the bytes a decode step streams, the head on the last stage.
Result<std::vector<std::pair<int, int>>> stages_of(const ModelShape& m, const Layout& l) {
  std::vector<int> split = l.layer_split;
  if (split.empty() && l.pp > 1)
    split = balanced_layer_split(std::vector<double>(std::max(0, m.n_layers), m.layer_weight_bytes()), l.pp,
                                 m.head_bytes());
  return pipeline_stages(m.n_layers, l.pp, split);
}

}  // namespace

Status check_feasible(const ModelShape& m, const ClusterSpec& c, const Query& q) {
  const Layout& l = q.layout;
  if (l.tp < 1 || l.pp < 1 || l.draft_tp < 0) return make_error("invalid layout {}: sizes must be positive", l.describe());
  if (q.mode == Mode::PEARL && l.draft_tp < 1)
    return make_error("{}: PEARL drafts on its own ranks; give the layout at least one draft rank", l.describe());
  if (q.mode != Mode::PEARL && l.draft_tp > 0)
    return make_error("{}: draft ranks are used by PEARL only (mode {})", l.describe(), mode_name(q.mode));
  if (l.world_size() > c.world())
    return make_error("the layout {} needs {} ranks but the cluster '{}' has {} ({} nodes × {} ranks)", l.describe(),
                      l.world_size(), c.name, c.world(), c.nodes, c.ranks_per_node);
  auto slice = slice_of(m, l.tp);
  if (!slice) return slice.error();
  auto stages = stages_of(m, l);
  if (!stages) return stages.error();
  Ctx x{m, c, q, *slice, *stages};
  const double mem = memory_per_rank(x);
  if (mem > c.rank_memory_GiB * kGiB)
    return make_error("the layout {} needs {:.2f} GiB on its heaviest rank (weights + KV cache of {} slots × {} "
                      "positions), more than the {:.2f} GiB per rank of '{}'; use more ranks or lower --ctx-size or "
                      "--max-seqs",
                      l.describe(), mem / kGiB, q.max_seqs, q.context, c.rank_memory_GiB, c.name);
  return ok_status();
}

Result<Prediction> predict(const ModelShape& m, const ClusterSpec& c, const Query& q) {
  TANDEM_TRY(check_feasible(m, c, q));
  auto slice = slice_of(m, q.layout.tp);
  auto stages = stages_of(m, q.layout);
  Ctx x{m, c, q, *slice, *stages};
  const Layout& l = q.layout;
  Prediction p;
  p.memory_per_rank_GiB = memory_per_rank(x) / kGiB;
  p.rank_read_GBps = shared_bw(c, max_per_node(c, stage_ranks(l, 0))) / 1e9;

  // Draft ranks stream at the same time as the target in PEARL; those on a target node share it.
  int draft_on_target_node = 0;
  if (q.mode == Mode::PEARL) {
    std::vector<int> all = stage_ranks(l, 0);
    for (int r : draft_ranks(l)) all.push_back(r);
    draft_on_target_node = max_per_node(c, all) - max_per_node(c, stage_ranks(l, 0));
  }

  if (q.mode == Mode::AR) {
    Breakdown b;
    p.decode_tok_s = 1.0 / target_step(x, 1, 0, &b);
    p.step = b;
  } else {
    // Draft token time: SD drafts on target rank 0 alone (the others wait); PEARL on its own ranks.
    const double draft_bytes = q.draft_fraction * (m.n_layers * m.layer_weight_bytes() + m.head_bytes());
    double draft_tok = 0;
    if (q.mode == Mode::SD) {
      draft_tok = draft_bytes / gemv_rate(c, m.type, shared_bw(c, max_per_node(c, stage_ranks(l, 0))));
    } else {
      std::vector<int> all = stage_ranks(l, 0);
      for (int r : draft_ranks(l)) all.push_back(r);
      draft_tok = draft_bytes / l.draft_tp / gemv_rate(c, m.type, shared_bw(c, max_per_node(c, all)));
      draft_tok += 2.0 * q.draft_layers * allreduce_s(link_between(c, draft_ranks(l)), l.draft_tp, m.dim * 4.0);
    }
    if (q.draft_fraction > 0) draft_tok += c.step_overhead_s;
    // PEARL's draft token with the draft ranks' node to themselves (the target idle or elsewhere).
    double draft_tok_alone = draft_tok;
    if (q.mode == Mode::PEARL && q.draft_fraction > 0) {
      draft_tok_alone = draft_bytes / l.draft_tp / gemv_rate(c, m.type, shared_bw(c, max_per_node(c, draft_ranks(l))));
      draft_tok_alone += 2.0 * q.draft_layers * allreduce_s(link_between(c, draft_ranks(l)), l.draft_tp, m.dim * 4.0);
      draft_tok_alone += c.step_overhead_s;
    }
    // The draft length the engine picks (decode/draft_length.cpp), from the model's own step times:
    // SD maximises E(α,γ) / (γ·t + T(γ+1)); PEARL E(α,γ−1) / max(T(γ), γ·t) (steady post-verify).
    const double a_eng = std::clamp(q.acceptance, 0.01, 0.99);
    auto engine_rate = [&](int g) {
      if (q.mode == Mode::SD) return expected_tokens(a_eng, g) / (g * draft_tok + target_step(x, g + 1, 0, nullptr));
      return expected_tokens(a_eng, g - 1) / std::max(target_step(x, g, draft_on_target_node, nullptr), g * draft_tok);
    };
    int g_pick = q.gamma;
    if (g_pick <= 0) {
      double best_rate = 0;
      for (int g = 1; g <= q.gamma_max; ++g)
        if (const double r = engine_rate(g); r > best_rate) best_rate = r, g_pick = g;
    }
    const int g = std::max(1, g_pick);
    Breakdown b;
    const double drafting = g * draft_tok;
    const double alpha = q.acceptance;
    if (q.mode == Mode::SD) {  // draft, then verify γ drafts in one step of γ+1 rows
      const double verify = target_step(x, g + 1, 0, &b);
      b.tokens_per_block = expected_tokens(alpha, g);
      p.decode_tok_s = b.tokens_per_block / (drafting + verify);
    } else {
      // PEARL as decode/engine.cpp runs it: the drafter drafts a block of γ while the target steps.
      //  V (verify): the target checks the block's other γ−1 tokens (γ rows; the first was
      //    pre-verified against the previous step's last row) while the drafter drafts the next
      //    block after them (post-verify). All accepted (α^(γ−1)): the round waits for that block,
      //    max(T(γ), γ·t), and its first token is pre-verified against this step's last row. A
      //    rejection ends the round after T(γ). Yield E(α, γ−1): the accepted tokens + one.
      //  R (after a rejection): the target steps the correction alone (1 row) while the drafter
      //    drafts γ from it; the block's first token is pre-verified against that row:
      //    max(T(1), γ·t) for 1 token. R → V with α; V → V with α^γ (all γ−1, then the pre-verify).
      // While both run they share the node's bandwidth; whichever ends first leaves the other the
      // node to itself for the rest (`overlap`).
      auto overlap = [](double a_shared, double a_alone, double b_shared, double b_alone) {
        if (a_shared > b_shared) std::swap(a_shared, b_shared), std::swap(a_alone, b_alone);
        return b_shared > 0 ? a_shared + (1.0 - a_shared / b_shared) * b_alone : a_shared;
      };
      const double tv_shared = target_step(x, g, draft_on_target_node, &b);
      const double tv_alone = target_step(x, g, 0, nullptr);
      const double t1_shared = target_step(x, 1, draft_on_target_node, nullptr);
      const double t1_alone = target_step(x, 1, 0, nullptr);
      const double d_alone = g * draft_tok_alone;
      const double all_v = std::pow(alpha, g - 1);
      const double cost_v = all_v * overlap(tv_shared, tv_alone, drafting, d_alone) + (1 - all_v) * tv_shared;
      const double cost_r = overlap(t1_shared, t1_alone, drafting, d_alone);
      const double e_v = expected_tokens(alpha, g - 1);
      // Stationary shares of the two rounds: π_V / π_R = α / (1 − α^γ).
      const double w_r = 1.0 - std::pow(alpha, g), w_v = alpha;
      p.decode_tok_s = (w_r * 1.0 + w_v * e_v) / (w_r * cost_r + w_v * cost_v);
      b.tokens_per_block = (w_r + w_v * e_v) / (w_r + w_v);
      b.pearl_hidden = (w_r * std::min(t1_shared, drafting) + w_v * all_v * std::min(tv_shared, drafting)) / (w_r + w_v);
    }
    b.draft = drafting;
    b.gamma = g;
    p.step = b;
  }

  // Throughput at B sequences (AR): B rows per step, micro-batched over the stages.
  {
    const int B = std::max(1, q.batch);
    const int micro = std::min(B, l.pp);
    const double rows = std::ceil(double(B) / micro);
    std::vector<double> st;
    for (int s = 0; s < l.pp; ++s) {
      std::vector<int> all;
      for (int t = 0; t < l.target_ranks(); ++t) all.push_back(t);  // every stage busy at once
      const int active = micro > 1 ? max_per_node(c, all) : max_per_node(c, stage_ranks(l, s));
      st.push_back(stage_step(x, s, rows, rows, q.context, active, nullptr));
    }
    const double per_step = c.step_overhead_s + (rows - 1) * c.seq_overhead_s;
    // One micro-batch: stages in turn, as for one sequence; with several in flight the stages
    // stay busy and rarely wait past the spin window.
    const double hop = hop_s(x, rows) + (micro == 1 && l.pp > 1 ? c.hop_overhead_s : 0.0);
    const double cycle = pipeline_cycle(st, hop, micro) + micro * per_step;
    p.throughput_tok_s = micro * rows / cycle;
  }

  // TTFT: the prompt in chunks; chunks pipeline through the stages, the last one ends the prefill.
  {
    const int P = std::max(1, q.prompt);
    const int C = std::min(P, std::max(1, q.prefill_chunk));
    const int n = (P + C - 1) / C;
    std::vector<double> st;
    for (int s = 0; s < l.pp; ++s)
      st.push_back(stage_step(x, s, C, 1, P / 2.0, max_per_node(c, stage_ranks(l, s)), nullptr));
    double sum = 0, mx = 0;
    for (double t : st) sum += t, mx = std::max(mx, t);
    p.ttft_s = sum + (n - 1) * mx + (l.pp > 1 ? (l.pp - 1) * hop_s(x, C) : 0) + n * c.step_overhead_s;
  }
  return p;
}

std::vector<Ranked> plan_layouts(const ModelShape& m, const ClusterSpec& c, const Query& base, int world,
                                 std::vector<std::pair<std::string, std::string>>* refused) {
  std::vector<Ranked> out;
  std::vector<int> drafts{0};
  if (base.mode == Mode::PEARL) {
    drafts.clear();
    for (int d = 1; d < world; d *= 2) drafts.push_back(d);
  }
  for (int draft : drafts)
    for (int tp = 1; tp + draft <= world; ++tp)
      for (int pp = 1; tp * pp + draft <= world; ++pp) {
        Query q = base;
        q.layout = Layout{tp, pp, {}, draft};
        if (q.layout.world_size() != world) continue;  // the job uses every rank it is given
        auto r = predict(m, c, q);
        if (!r) {
          if (refused) refused->emplace_back(q.layout.describe(), r.error().message);
          continue;
        }
        out.push_back({q, *r});
      }
  std::stable_sort(out.begin(), out.end(),
                   [](const Ranked& a, const Ranked& b) { return a.pred.decode_tok_s > b.pred.decode_tok_s; });
  return out;
}

}  // namespace tandem::bench
