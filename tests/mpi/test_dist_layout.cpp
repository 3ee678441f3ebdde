// Distributed == single-rank (tensor- and pipeline-parallel sharding), and sharded loading.
//
// For each layout and weight type, rank 0 computes the reference itself — the whole model in one
// shard, forward_stage with no-op collectives, no MPI — and drives the distributed target group
// through the same script of ragged steps: a two-sequence prefill (every row of one prompt), four
// decode steps, and a rollback that overwrites the last positions of one sequence. Full logits must
// match the reference within a tolerance; the Argmax mode (max-loc across the vocab-parallel
// head) must equal the argmax of the same step's Full logits exactly; an Engine generating 64
// greedy tokens for two prompts at once must produce the reference's tokens (checked by teacher
// forcing, see check_greedy: identical, except that quantized weights may resolve a near-tie of
// the top two logits either way). Each rank also reports what it read from the file: the sum over
// ranks must be one model (plus the replicated norms and KV heads), not one per rank.
//
// Shapes. A: 12 heads (4 KV heads), so tp 2, 3 and 4 all divide; 6 layers for pp 2 and 3; also
// as qwen2 (biases) and qwen3 (q/k norms, wider q, tied head) at tp 1, 2, 3, 4 and pp 2.
// B: 512-wide with 8 heads of 64, the narrowest shape whose per-rank slices at tp 2 are whole
// 256-element K-quant blocks. The matrix: every layout (and an uneven --layer-split) for f32 and
// q4_0 on A, every weight type for tp2, pp2 and tp2×pp2 on B.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include "shard/model/collectives.h"
#include "shard/model/forward.h"
#include "tests/mpi/mpi_support.h"

namespace tandem::mpitest {
namespace {

using DistLayout_np1 = MpiTest<1>;
using DistLayout_np2 = MpiTest<2>;
using DistLayout_np3 = MpiTest<3>;
using DistLayout_np4 = MpiTest<4>;

SynthShape shape_a() {
  SynthShape s;
  s.dim = 384, s.layers = 6, s.heads = 12, s.kv_heads = 4, s.ffn = 768, s.ctx = 256;
  return s;
}
// The qwen families on shape A's layout: qwen2 (q/k/v biases, split with their rows) untied, and
// qwen3 (per-head q/k norms, replicated) with 12 heads of 64 (q 768 wide on a 384-wide model)
// and a tied head (split over the vocabulary like an untied one).
SynthShape shape_qwen2() {
  SynthShape s = shape_a();
  s.arch = "qwen2";
  return s;
}
SynthShape shape_qwen3() {
  SynthShape s = shape_a();
  s.arch = "qwen3";
  s.head_dim = 64;
  s.tied = true;
  return s;
}
SynthShape shape_b() {
  SynthShape s;
  s.dim = 512, s.layers = 4, s.heads = 8, s.kv_heads = 4, s.ffn = 1024, s.ctx = 256;
  return s;
}

constexpr WeightType kShapeATypes[] = {WeightType::F32, WeightType::Q4_0};

bool is_quantized_type(WeightType t) { return info(t).block_elems > 1; }

// Logits are O(5) (synth.h sets their spread). Between layouts only the order of float sums
// changes (the TP all-reduce adds per-rank partial dot products): ~1e-5 for float weights. With
// quantized weights the activations are rounded to 8 bits before every matmul, and a 1e-7
// difference that tips one rounding grows through the layers: measured worst cases are ~0.05,
// mean ~0.008. A sharding error (a wrong slice, a missing partial sum, a misplaced head) moves
// every logit by O(1), far outside both bounds.
struct Tolerance {
  double max_abs, mean_abs;
};
Tolerance tolerance(WeightType t) {
  switch (t) {
    case WeightType::F32:
    case WeightType::F16:
    case WeightType::BF16:
      return {1e-3, 1e-4};
    default:
      return {0.25, 0.02};
  }
}

// The reference: the whole model as one shard on rank 0, its own KV cache, no MPI.
struct LocalModel {
  ShardModel m;
  KvCache kv;
  ThreadPool pool{1};
  ForwardScratch scratch;
  LocalCollectives coll;
  std::vector<float> hidden;
};

std::unique_ptr<LocalModel> load_local(const ModelFile& f, int max_seqs, int ctx) {
  auto lm = std::make_unique<LocalModel>();
  auto m = load_shard(f, ShardSpec{});
  EXPECT_TRUE(m.ok()) << m.error().message;
  if (!m) return nullptr;
  lm->m = std::move(*m);
  KvCacheConfig kc;
  kc.n_layers = f.config.n_layers;
  kc.n_kv_heads = f.config.n_kv_heads;
  kc.head_dim = f.config.head_dim;
  kc.max_seqs = max_seqs;
  kc.ctx = ctx;
  kc.type = WeightType::F16;  // what ClusterOptions uses
  auto kv = make_kv_cache(kc);
  EXPECT_TRUE(kv.ok()) << kv.error().message;
  if (!kv) return nullptr;
  lm->kv = std::move(*kv);
  return lm;
}

// out_rows × n_vocab logits of one step.
std::vector<float> local_forward(LocalModel& lm, const Step& st) {
  std::vector<float> logits;
  auto s = forward_stage(lm.m, lm.kv, seq_chunks(st), lm.coll, lm.pool, lm.scratch, lm.hidden, &logits);
  EXPECT_TRUE(s.ok()) << s.error().message;
  return logits;
}

// Checks a greedy generation against the reference by teacher forcing: one reference step over
// prompt + generated tokens (every row out); each generated token must be the reference's argmax
// after the same prefix. Where the reference's top two logits are closer than twice the logit
// tolerance either choice is within numerical noise, so such a position is let through and
// counted. With no such position, this is exactly "the generation equals the single-rank one".
int check_greedy(LocalModel& lm, int slot, const std::vector<int32_t>& prompt, const std::vector<int32_t>& got,
                 const Tolerance& tol, const std::string& what) {
  std::vector<int32_t> seq = prompt;
  seq.insert(seq.end(), got.begin(), got.end());
  Step st;
  st.logits = LogitsMode::Full;
  st.chunks.push_back({slot, 0, true, seq});
  const auto lg = local_forward(lm, st);
  const int nv = lm.m.config.n_vocab;
  int near_ties = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const float* row = lg.data() + (prompt.size() - 1 + i) * nv;
    const int32_t best = argmax(std::span<const float>(row, nv));
    if (got[i] == best) continue;
    const float margin = row[best] - row[got[i]];
    if (margin < 2 * tol.max_abs) {
      ++near_ties;
      std::printf(
          "[ layout   ] %s: token %zu is %d, single-rank argmax %d by a logit margin of %.2e (a tie within noise)\n",
          what.c_str(), i, got[i], best, margin);
      continue;
    }
    ADD_FAILURE() << what << ": generated token " << i << " is " << got[i] << " but the single-rank argmax after the "
                  << "same prefix is " << best << " (logit margin " << margin << ")";
    break;
  }
  return near_ties;
}

Step forward_step(LogitsMode mode, std::vector<StepChunk> chunks) {
  Step st;
  st.logits = mode;
  st.chunks = std::move(chunks);
  return st;
}

struct Compare {
  double max_abs = 0, sum_abs = 0;
  int64_t n = 0;
  int rows = 0;
};

// One step on both sides; checks the Full logits and returns the reference's per-row argmax.
std::vector<int32_t> compare_step(Cluster& c, LocalModel& lm, const Step& st, const Tolerance& tol,
                                  const std::string& what, Compare& cmp) {
  const auto ref = local_forward(lm, st);
  auto got = c.target->run(st);
  EXPECT_TRUE(got.ok()) << what << ": " << (got ? "" : got.error().message);
  if (!got) return {};
  const int nv = lm.m.config.n_vocab;
  const int rows = step_out_rows(st);
  EXPECT_EQ(got->mode, LogitsMode::Full);
  EXPECT_EQ(got->n_rows, rows);
  EXPECT_EQ(got->n_vocab, nv);
  EXPECT_EQ(got->logits.size(), ref.size()) << what;
  if (got->logits.size() != ref.size()) return {};
  std::vector<int32_t> top;
  for (int r = 0; r < rows; ++r) {
    double worst = 0;
    int at = 0;
    for (int j = 0; j < nv; ++j) {
      const double d = std::fabs(double(got->logits[size_t(r) * nv + j]) - ref[size_t(r) * nv + j]);
      cmp.sum_abs += d;
      ++cmp.n;
      if (!(d <= worst)) worst = d, at = j;  // NaN counts as the worst
    }
    EXPECT_LE(worst, tol.max_abs) << what << ", row " << r << ": logit " << at << " is "
                                  << got->logits[size_t(r) * nv + at] << ", single-rank " << ref[size_t(r) * nv + at];
    cmp.max_abs = std::max(cmp.max_abs, worst);
    ++cmp.rows;
    top.push_back(argmax(std::span<const float>(ref.data() + size_t(r) * nv, nv)));
  }
  // Argmax mode: the same step again (it rewrites the same KV positions with the same values);
  // the max-loc reduction must pick what the gathered Full logits pick, ties included.
  Step again = st;
  again.logits = LogitsMode::Argmax;
  auto am = c.target->run(again);
  EXPECT_TRUE(am.ok());
  if (am) {
    EXPECT_EQ(am->mode, LogitsMode::Argmax);
    EXPECT_EQ(static_cast<int>(am->argmax.size()), rows);
    for (int r = 0; r < rows && r < static_cast<int>(am->argmax.size()); ++r)
      EXPECT_EQ(am->argmax[r], argmax(std::span<const float>(got->logits.data() + size_t(r) * nv, nv)))
          << what << ", row " << r << ": Argmax mode disagrees with argmax of Full logits";
  }
  return top;
}

// Bytes of the file each rank should read for a (tp, pp) target, derived from the tensor sizes:
// every 2-D matrix once, its K/V rows once per rank that needs them (query heads of one KV head
// may land on two ranks), every norm once per TP rank; the embedding is read row by row at lookup
// and so not at load.
uint64_t expected_total_bytes(const ModelFile& f, int tp) {
  const ModelConfig& c = f.config;
  auto bytes = [&](const std::string& n) {
    const TensorRef* t = f.find(n);
    EXPECT_NE(t, nullptr) << n;
    return t ? t->nbytes : 0;
  };
  const int hq = c.n_heads / tp, group = c.n_heads / c.n_kv_heads;
  int kv_held = 0;
  for (int r = 0; r < tp; ++r) kv_held += ((r + 1) * hq - 1) / group + 1 - (r * hq) / group;
  // A tied head reads token_embd's rows, counted like output.weight's.
  uint64_t total = tp * bytes("output_norm.weight") + bytes(c.tied_output ? "token_embd.weight" : "output.weight");
  for (int l = 0; l < c.n_layers; ++l) {
    auto L = [&](const char* w) { return bytes(fmt::format("blk.{}.{}.weight", l, w)); };
    total += tp * (L("attn_norm") + L("ffn_norm"));
    total += L("attn_q") + L("attn_output") + L("ffn_gate") + L("ffn_up") + L("ffn_down");
    total += (L("attn_k") + L("attn_v")) * kv_held / c.n_kv_heads;
    // qwen2: biases go with their rows (q once, k/v like their rows); qwen3: the per-head q/k
    // norms are whole on every TP rank.
    auto B = [&](const char* w) -> uint64_t {
      const TensorRef* t = f.find(fmt::format("blk.{}.{}.bias", l, w));
      return t ? t->nbytes : 0;
    };
    total += B("attn_q") + (B("attn_k") + B("attn_v")) * kv_held / c.n_kv_heads;
    if (c.arch == "qwen3") total += tp * (L("attn_q_norm") + L("attn_k_norm"));
  }
  return total;
}

void check_layout(const SynthShape& shape, WeightType type, int tp, int pp, std::vector<int> layer_split = {}) {
  SCOPED_TRACE(fmt::format("{} {} tp{} pp{} dim {}", shape.arch, name(type), tp, pp, shape.dim));
  const SynthFiles files = synth_model(shape, type);
  ASSERT_FALSE(files.target.empty());
  constexpr int kCtx = 160;
  ClusterOptions o = cluster_options(files.target, tp, pp, "", 0, /*max_seqs=*/2, kCtx);
  o.layout.layer_split = layer_split;
  std::vector<uint64_t> loaded(world_size());
  auto every_rank = [&](Cluster& c) {
    uint64_t mine = c.target ? c.target->model().bytes_loaded : 0;
    MPI_Gather(&mine, 1, MPI_UINT64_T, loaded.data(), 1, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  };
  run_job(
      o,
      [&](Cluster& c) {
        // Sharded loading.
        uint64_t sum = 0;
        for (uint64_t b : loaded) sum += b;
        const uint64_t file = c.target_file.weight_bytes();
        EXPECT_EQ(sum, expected_total_bytes(c.target_file, tp)) << "bytes read over all ranks";
        EXPECT_LT(sum, file * 5 / 4) << "the ranks together read more than one model";
        if (tp * pp > 1 && layer_split.empty()) {
          for (size_t r = 0; r < loaded.size(); ++r)
            EXPECT_LT(loaded[r], file * 3 / (2 * tp * pp)) << "rank " << r << " read more than its share";
        }

        auto lm = load_local(c.target_file, 2, kCtx);
        ASSERT_TRUE(lm);
        const Tolerance tol = tolerance(type);
        Compare cmp;
        // Prefill: every row of an 11-token prompt, the last row of a 6-token one, one ragged step.
        std::vector<int32_t> p0{1, 300, 301, 412, 17, 290, 511, 260, 333, 404, 99};
        std::vector<int32_t> p1{1, 450, 270, 380, 281, 259};
        auto top = compare_step(c, *lm, forward_step(LogitsMode::Full, {{0, 0, true, p0}, {1, 0, false, p1}}), tol,
                                "prefill", cmp);
        ASSERT_EQ(top.size(), p0.size() + 1);
        int32_t next0 = top[p0.size() - 1], next1 = top.back();
        int len0 = static_cast<int>(p0.size()), len1 = static_cast<int>(p1.size());
        for (int d = 0; d < 4; ++d) {
          top = compare_step(c, *lm,
                             forward_step(LogitsMode::Full, {{0, len0, false, {next0}}, {1, len1, false, {next1}}}),
                             tol, fmt::format("decode step {}", d), cmp);
          ASSERT_EQ(top.size(), 2u);
          ++len0, ++len1;
          next0 = top[0], next1 = top[1];
        }
        // Rollback: overwrite slot 0's last three positions with other tokens, every row out.
        compare_step(c, *lm, forward_step(LogitsMode::Full, {{0, len0 - 3, true, {305, 306, 307}}}), tol, "rollback",
                     cmp);
        EXPECT_LE(cmp.sum_abs / std::max<int64_t>(1, cmp.n), tol.mean_abs) << "mean |logit - single-rank|";

        // 64 greedy tokens through the engine (two prompts decoded together) == the reference.
        auto tok = Tokenizer::create(c.target_file.vocab);
        ASSERT_TRUE(tok.ok());
        EngineOptions eo;
        eo.speculation = SpecMode::Off;
        Engine engine(c, *tok, eo);
        auto out = generate_all(engine, {greedy_request(p0, 64, SpecMode::Off), greedy_request(p1, 64, SpecMode::Off)});
        ASSERT_EQ(out[0].ids.size(), 64u);
        ASSERT_EQ(out[1].ids.size(), 64u);
        const int ties = check_greedy(*lm, 0, p0, out[0].ids, tol, "prompt 0") +
                         check_greedy(*lm, 1, p1, out[1].ids, tol, "prompt 1");
        if (!is_quantized_type(type)) {
          EXPECT_EQ(ties, 0) << "float weights: the generations must be identical";
        }
        std::printf(
            "[ layout   ] %s %s tp%d pp%d: logits vs single-rank: max |diff| %.2e, mean %.2e over %d rows; 128 greedy "
            "tokens: %d near-tie positions\n",
            shape.arch.c_str(), std::string(name(type)).c_str(), tp, pp, cmp.max_abs, cmp.sum_abs / std::max<int64_t>(1, cmp.n), cmp.rows,
            ties);
      },
      every_rank);
}

TEST_F(DistLayout_np1, Tp1ShapeA) {
  for (WeightType t : kShapeATypes) check_layout(shape_a(), t, 1, 1);
}
TEST_F(DistLayout_np1, Tp1Qwen) {
  for (WeightType t : kShapeATypes) {
    check_layout(shape_qwen2(), t, 1, 1);
    check_layout(shape_qwen3(), t, 1, 1);
  }
}

TEST_F(DistLayout_np2, Tp2ShapeA) {
  for (WeightType t : kShapeATypes) check_layout(shape_a(), t, 2, 1);
}
TEST_F(DistLayout_np2, Pp2ShapeA) {
  for (WeightType t : kShapeATypes) check_layout(shape_a(), t, 1, 2);
  check_layout(shape_a(), WeightType::F32, 1, 2, {1, 5});  // uneven --layer-split
}
TEST_F(DistLayout_np2, Tp2Pp2Qwen) {
  for (WeightType t : kShapeATypes)
    for (const SynthShape& sh : {shape_qwen2(), shape_qwen3()}) {
      check_layout(sh, t, 2, 1);
      check_layout(sh, t, 1, 2);
    }
}
TEST_F(DistLayout_np2, Tp2AllTypes) {
  for (WeightType t : kModelWeightTypes) check_layout(shape_b(), t, 2, 1);
}
TEST_F(DistLayout_np2, Pp2AllTypes) {
  for (WeightType t : kModelWeightTypes) check_layout(shape_b(), t, 1, 2);
}

TEST_F(DistLayout_np3, Tp3ShapeA) {
  for (WeightType t : kShapeATypes) check_layout(shape_a(), t, 3, 1);
}
TEST_F(DistLayout_np3, Tp3Qwen) {
  for (WeightType t : kShapeATypes) {
    check_layout(shape_qwen2(), t, 3, 1);
    check_layout(shape_qwen3(), t, 3, 1);
  }
}
TEST_F(DistLayout_np3, Pp3ShapeA) {
  for (WeightType t : kShapeATypes) check_layout(shape_a(), t, 1, 3);
}

TEST_F(DistLayout_np4, Tp4ShapeA) {
  for (WeightType t : kShapeATypes) check_layout(shape_a(), t, 4, 1);
}
TEST_F(DistLayout_np4, Tp2Pp2ShapeA) {
  for (WeightType t : kShapeATypes) check_layout(shape_a(), t, 2, 2);
}
TEST_F(DistLayout_np4, Tp4Qwen) {
  for (WeightType t : kShapeATypes) {
    check_layout(shape_qwen2(), t, 4, 1);
    check_layout(shape_qwen3(), t, 4, 1);
  }
}
TEST_F(DistLayout_np4, Tp2Pp2AllTypes) {
  for (WeightType t : kModelWeightTypes) check_layout(shape_b(), t, 2, 2);
}

}  // namespace
}  // namespace tandem::mpitest
