// The cost model on cases computed by hand: bytes over bandwidth, a two-stage pipeline, the
// speculative closed form, and the launcher's refusals.
#include <gtest/gtest.h>

#include <cmath>

#include "bench/cost_model.h"
#include "dist/layout.h"
#include "shard/model/shard_spec.h"

namespace tandem::bench {
namespace {

// A small shape whose bytes are easy to count: F16 (2 bytes per weight), MHA.
ModelShape small_shape() {
  ModelShape m;
  m.name = "hand";
  m.n_layers = 4, m.dim = 256, m.n_heads = 4, m.n_kv_heads = 4, m.head_dim = 64, m.ffn_dim = 512, m.n_vocab = 1000;
  m.type = WeightType::F16;
  return m;
}

ClusterSpec one_node(int ranks, double gbs) {
  ClusterSpec c;
  c.name = "test";
  c.nodes = 1, c.ranks_per_node = ranks;
  c.rank_read_GBps = gbs, c.node_read_GBps = gbs * ranks;
  c.rank_memory_GiB = 64;
  c.intra = Link{0, 1e12}, c.inter = Link{0, 1e12};
  return c;
}

TEST(CostModel, BandwidthBoundDecodeIsBytesOverBandwidth) {
  const ModelShape m = small_shape();
  const ClusterSpec c = one_node(1, 10);
  Query q;
  q.context = 0;  // no KV reads
  auto p = predict(m, c, q);
  ASSERT_TRUE(p.ok()) << p.error().message;
  // 4 layers × (q,k,v,o 4·256·256 + ffn 3·256·512) + head 1000·256, 2 bytes each.
  const double bytes = 2.0 * (4 * (4.0 * 256 * 256 + 3.0 * 256 * 512) + 1000.0 * 256);
  EXPECT_NEAR(p->decode_tok_s, 10e9 / bytes, 1e-9 * 10e9 / bytes);
  EXPECT_NEAR(p->step.weights, bytes / 10e9, 1e-15);
  EXPECT_EQ(p->step.allreduce, 0.0);
  EXPECT_EQ(p->step.p2p, 0.0);

  // A kernel streaming at 80% of the read bandwidth takes 1/0.8 of the time.
  ClusterSpec slow = c;
  slow.kernel_efficiency["f16"] = 0.8;
  EXPECT_NEAR(predict(m, slow, q)->step.weights, bytes / 8e9, 1e-15);

  // Context adds the KV cache reads: 4 layers × 100 positions × K+V × 256 × 2 bytes.
  q.context = 100;
  auto p2 = predict(m, c, q);
  ASSERT_TRUE(p2.ok());
  EXPECT_NEAR(1.0 / p2->decode_tok_s, (bytes + 4 * 100 * 2 * 256 * 2.0) / 10e9, 1e-12);
}

TEST(CostModel, NodeBandwidthIsSharedByItsRanks) {
  const ModelShape m = small_shape();
  ClusterSpec c = one_node(2, 10);
  c.node_read_GBps = 12;  // two ranks together get 12, not 20
  Query q;
  q.context = 0;
  q.layout = Layout{2, 1, {}, 0};
  auto p = predict(m, c, q);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_NEAR(p->rank_read_GBps, 6.0, 1e-12);
  // Each rank streams half of every matrix (tp 2 splits heads, ffn and vocabulary evenly here).
  const double half = 2.0 * (4 * (4.0 * 256 * 256 + 3.0 * 256 * 512) + 1000.0 * 256) / 2;
  EXPECT_NEAR(p->step.weights, half / 6e9, 1e-12);
}

TEST(CostModel, AllreduceTwicePerLayerPlusHead) {
  const ModelShape m = small_shape();
  ClusterSpec c = one_node(2, 10);
  c.intra = Link{10e-6, 1e9};
  Query q;
  q.context = 0;
  q.layout = Layout{2, 1, {}, 0};
  auto p = predict(m, c, q);
  ASSERT_TRUE(p.ok());
  // Two allreduces of dim floats per layer and one 8-byte max-loc, one round each at tp 2.
  const double expect = 2 * 4 * (10e-6 + 256 * 4 / 1e9) + (10e-6 + 8 / 1e9);
  EXPECT_NEAR(p->step.allreduce, expect, 1e-12);
}

TEST(CostModel, TwoStagePipelineWithKnownStageTimes) {
  EXPECT_DOUBLE_EQ(pipeline_cycle({3, 5}, 1, 1), 3 + 5 + 2 * 1);
  EXPECT_DOUBLE_EQ(pipeline_cycle({3, 5}, 1, 2), 10);      // trip 10 vs 2 × 5
  EXPECT_DOUBLE_EQ(pipeline_cycle({3, 5}, 0.1, 2), 10);    // slowest stage serves both: 2 × 5
  EXPECT_DOUBLE_EQ(pipeline_cycle({3, 5}, 0.1, 1), 8.2);
  EXPECT_DOUBLE_EQ(pipeline_cycle({4}, 1, 1), 4);          // one stage sends nothing

  // Through the model: pp 2 over 4 layers, stage 0 = 2 layers, stage 1 = 2 layers + head.
  const ModelShape m = small_shape();
  ClusterSpec c = one_node(2, 10);
  c.intra = Link{20e-6, 1e12};
  Query q;
  q.context = 0;
  q.layout = Layout{1, 2, {}, 0};
  q.batch = 2;
  auto p = predict(m, c, q);
  ASSERT_TRUE(p.ok()) << p.error().message;
  const double layer = 2.0 * (4.0 * 256 * 256 + 3.0 * 256 * 512);
  const double t0 = 2 * layer / 10e9, t1 = (2 * layer + 2.0 * 1000 * 256) / 10e9;
  const double hop = 20e-6 + 256 * 4 / 1e12;
  EXPECT_NEAR(1.0 / p->decode_tok_s, t0 + t1 + 2 * hop, 1e-12);
  EXPECT_NEAR(p->step.bubble_fraction, 1.0 - (t0 + t1) / (2 * (t0 + t1 + 2 * hop)), 1e-12);
  // Two sequences, one per stage (no compute profile: a row costs what the weights cost).
  const double hop1 = 20e-6 + 256 * 4 / 1e12;
  EXPECT_NEAR(p->throughput_tok_s, 2.0 / std::max(t0 + t1 + 2 * hop1, 2 * t1), 1e-6);
}

TEST(CostModel, TimeToFirstTokenCountsChunksThroughStages) {
  const ModelShape m = small_shape();
  ClusterSpec c = one_node(2, 10);
  Query q;
  q.prompt = 100;
  const double bytes = 2.0 * (4 * (4.0 * 256 * 256 + 3.0 * 256 * 512) + 1000.0 * 256);
  const double attn = 4 * 50.0 * 2 * 256 * 2;  // prompt attention reads half the prompt's positions on average
  auto one = predict(m, c, q);  // one 100-row chunk, flat profile: one pass over the weights
  ASSERT_TRUE(one.ok());
  EXPECT_NEAR(one->ttft_s, (bytes + attn) / 10e9, 1e-12);
  q.prefill_chunk = 25;  // four chunks in turn on one stage
  EXPECT_NEAR(predict(m, c, q)->ttft_s, 4 * (bytes + attn) / 10e9, 1e-12);
  // Two stages: the chunks pipeline, the first crosses both stages, the other three wait on the slower.
  q.layout = Layout{1, 2, {}, 0};
  const double layer = 2.0 * (4.0 * 256 * 256 + 3.0 * 256 * 512);
  const double t0 = (2 * layer + attn / 2) / 10e9, t1 = (2 * layer + 2.0 * 1000 * 256 + attn / 2) / 10e9;
  const double hop = 25 * 256 * 4 / 1e12;  // the hidden states of one chunk to stage 1
  EXPECT_NEAR(predict(m, c, q)->ttft_s, t0 + t1 + 3 * std::max(t0, t1) + hop, 1e-12);
}

TEST(CostModel, ExpectedTokensClosedForm) {
  EXPECT_DOUBLE_EQ(expected_tokens(0.0, 4), 1.0);
  EXPECT_DOUBLE_EQ(expected_tokens(1.0, 4), 5.0);
  EXPECT_NEAR(expected_tokens(0.5, 2), 1 + 0.5 + 0.25, 1e-15);
  EXPECT_NEAR(expected_tokens(0.8, 4), (1 - std::pow(0.8, 5)) / 0.2, 1e-12);
}

TEST(CostModel, PearlWithFreeDraftIsTheClosedForm) {
  const ModelShape m = small_shape();
  const ClusterSpec c = one_node(2, 10);
  Query ar;
  ar.context = 0;
  auto pa = predict(m, c, ar);
  ASSERT_TRUE(pa.ok());
  Query q = ar;
  q.mode = Mode::PEARL;
  q.layout = Layout{1, 1, {}, 1};
  q.draft_fraction = 0;
  q.acceptance = 0.8;
  q.gamma = 4;
  auto p = predict(m, c, q);
  ASSERT_TRUE(p.ok()) << p.error().message;
  // The engine's two rounds (after a rejection: the correction alone, 1 token; verify: the γ−1
  // tokens after the pre-verified first, E(α, γ−1) tokens), R → V with α, V → V with α^γ. With a
  // free draft and a flat profile every round is one AR step: speed-up = (1−α^γ) / ((1−α)(1+α−α^γ)).
  const double a4 = std::pow(0.8, 4);
  EXPECT_NEAR(p->decode_tok_s / pa->decode_tok_s, (1 - a4) / (0.2 * (1 + 0.8 - a4)), 1e-9);
  EXPECT_EQ(p->step.gamma, 4);

  // With a compute profile, the verify round costs T(4)/T(1) = 1.5, the round after a rejection T(1).
  ClusterSpec c2 = c;
  c2.compute["f16"] = {{1, 1.0}, {2, 1.2}, {4, 1.5}, {8, 2.5}};
  auto p2 = predict(m, c2, q);
  ASSERT_TRUE(p2.ok());
  const double f5 = 1.5 + (std::log2(5.0) - 2) * (2.5 - 1.5);
  EXPECT_NEAR(compute_factor(c2, WeightType::F16, 5), f5, 1e-12);
  const double ev = (1 - a4) / 0.2;  // E(α, γ−1)
  EXPECT_NEAR(p2->decode_tok_s / pa->decode_tok_s, ((1 - a4) + 0.8 * ev) / ((1 - a4) * 1.0 + 0.8 * 1.5), 1e-9);

  // A costly draft (γ·t = 0.8 of an AR step t, on its own rank with its own bandwidth): V waits
  // for the next block only when all γ−1 are accepted, R waits for the whole block.
  Query pc = q;
  pc.draft_fraction = 0.2;
  auto pp = predict(m, c, pc);
  ASSERT_TRUE(pp.ok());
  {
    const double t = 1.0 / pa->decode_tok_s, d = 4 * 0.2 * t, all = std::pow(0.8, 3);
    const double cost_v = all * std::max(d, t) + (1 - all) * t, cost_r = std::max(t, d);
    EXPECT_NEAR(pp->decode_tok_s, ((1 - a4) + 0.8 * ev) / ((1 - a4) * cost_r + 0.8 * cost_v), 1e-6);
    EXPECT_NEAR(pp->step.pearl_hidden, ((1 - a4) * d + 0.8 * all * d) / (1 - a4 + 0.8), 1e-12);
  }
  {  // A draft slower than the target: every round waits for it.
    Query slow = q;
    slow.draft_fraction = 0.5;  // γ·t = 2 AR steps
    auto ps = predict(m, c, slow);
    ASSERT_TRUE(ps.ok());
    const double t = 1.0 / pa->decode_tok_s, d = 4 * 0.5 * t, all = std::pow(0.8, 3);
    const double cost_v = all * d + (1 - all) * t;
    EXPECT_NEAR(ps->decode_tok_s, ((1 - a4) + 0.8 * ev) / ((1 - a4) * d + 0.8 * cost_v), 1e-6);
  }
  {  // Draft and target on one node of one rank's bandwidth: they share it while both stream.
    ClusterSpec shared = c;
    shared.node_read_GBps = shared.rank_read_GBps;  // the two ranks together get what one gets alone
    Query sq = q;
    sq.draft_fraction = 0.1;  // γ·t = 0.4 AR steps alone, 0.8 shared
    auto ps = predict(m, shared, sq);
    ASSERT_TRUE(ps.ok());
    const double t = 1.0 / pa->decode_tok_s, d = 4 * 0.1 * t, all = std::pow(0.8, 3);
    // Both at half speed until the draft ends at 2d; the target's remaining (1 − 2d/2t) at full speed.
    const double both = 2 * d + (1 - d / t) * t;
    const double cost_v = all * both + (1 - all) * 2 * t;
    EXPECT_NEAR(ps->decode_tok_s, ((1 - a4) + 0.8 * ev) / ((1 - a4) * both + 0.8 * cost_v), 1e-6);
  }

  // SD pays for the draft in turn: E / (γ·t_draft + t_verify) with t_draft = fraction × AR step.
  Query sd = q;
  sd.mode = Mode::SD;
  sd.layout = Layout{1, 1, {}, 0};
  sd.draft_fraction = 0.1;
  auto ps = predict(m, c, sd);
  ASSERT_TRUE(ps.ok());
  const double t = 1.0 / pa->decode_tok_s;
  EXPECT_NEAR(ps->decode_tok_s, ((1 - std::pow(0.8, 5)) / 0.2) / (4 * 0.1 * t + t), 1e-6);
}

TEST(CostModel, AdaptiveGammaIsTheBestFixedOne) {
  const ModelShape m = small_shape();
  ClusterSpec c = one_node(1, 10);
  c.compute["f16"] = {{1, 1.0}, {2, 1.1}, {4, 1.3}, {8, 2.0}, {16, 3.8}};
  Query q;
  q.mode = Mode::SD;
  q.acceptance = 0.7;
  q.draft_fraction = 0.15;
  double best = 0;
  for (int g = 1; g <= 16; ++g) {
    q.gamma = g;
    best = std::max(best, predict(m, c, q)->decode_tok_s);
  }
  q.gamma = 0;
  EXPECT_DOUBLE_EQ(predict(m, c, q)->decode_tok_s, best);
}

TEST(CostModel, RefusesWhatTheLauncherRefuses) {
  const ModelShape m = small_shape();  // 4 heads, 4 layers
  const ClusterSpec c = one_node(8, 10);
  ModelConfig cfg;
  cfg.n_layers = 4, cfg.dim = 256, cfg.n_heads = 4, cfg.n_kv_heads = 4, cfg.head_dim = 64, cfg.ffn_dim = 512;
  cfg.n_vocab = 1000;

  Query q;
  q.layout = Layout{3, 1, {}, 0};
  auto r = predict(m, c, q);
  ASSERT_FALSE(r.ok());
  auto launcher = shard_ranges(cfg, ShardSpec{0, 3}, WeightType::F16, WeightType::F16);
  ASSERT_FALSE(launcher.ok());
  EXPECT_EQ(r.error().message, launcher.error().message);
  EXPECT_NE(r.error().message.find("does not divide the model's 4 attention heads"), std::string::npos);

  q.layout = Layout{1, 5, {}, 0};
  r = predict(m, c, q);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, pipeline_stages(4, 5, {}).error().message);

  // World size: the planner lists only layouts using the whole job, and check_world_size words it.
  const auto plans = plan_layouts(m, c, Query{}, 3);
  for (const auto& p : plans) EXPECT_EQ(p.query.layout.world_size(), 3);
  EXPECT_FALSE(check_world_size(Layout{2, 1, {}, 0}, 3).ok());

  // Memory per rank: a 1 GiB rank cannot hold a 6.6 GiB llama-2-7b Q8_0 shard.
  ClusterSpec tiny = c;
  tiny.rank_memory_GiB = 1;
  auto big = named_shape("llama-2-7b", WeightType::Q8_0);
  ASSERT_TRUE(big.ok());
  r = predict(*big, tiny, Query{});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("more than the 1.00 GiB per rank"), std::string::npos) << r.error().message;
  // ... but eight ranks (tp 8) can: each holds an eighth.
  tiny.rank_memory_GiB = 2;
  q = Query{};
  q.layout = Layout{8, 1, {}, 0};
  EXPECT_TRUE(predict(*big, tiny, q).ok());

  // A layout larger than the cluster.
  q.layout = Layout{4, 4, {}, 0};
  r = predict(m, c, q);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("needs 16 ranks but the cluster 'test' has 8"), std::string::npos);

  // PEARL needs a draft rank; AR/SD have none.
  q.layout = Layout{1, 1, {}, 0};
  q.mode = Mode::PEARL;
  EXPECT_FALSE(predict(m, c, q).ok());
}

TEST(CostModel, PlannerRanksByDecodeAndNamesLayouts) {
  auto m = named_shape("llama-2-7b", WeightType::Q4_K);
  ASSERT_TRUE(m.ok());
  ClusterSpec c;
  c.name = "4x1";
  c.nodes = 4, c.ranks_per_node = 1, c.rank_read_GBps = 100, c.node_read_GBps = 100, c.rank_memory_GiB = 64;
  c.intra = Link{5e-6, 10e9}, c.inter = Link{30e-6, 3e9};
  std::vector<std::pair<std::string, std::string>> refused;
  const auto plans = plan_layouts(*m, c, Query{}, 4, &refused);
  ASSERT_EQ(plans.size(), 3u);  // tp4×pp1, tp2×pp2, tp1×pp4
  for (size_t i = 1; i < plans.size(); ++i) EXPECT_GE(plans[i - 1].pred.decode_tok_s, plans[i].pred.decode_tok_s);
  // One sequence: pipelining does not add bandwidth, TP does.
  EXPECT_EQ(plans.front().query.layout.describe(), "tp4×pp1");
  EXPECT_TRUE(refused.empty());
  EXPECT_NE(named_shape("llama-5", WeightType::Q4_K).error().message.find("llama-3-70b"), std::string::npos);
}

}  // namespace
}  // namespace tandem::bench

namespace tandem::bench {
namespace {

TEST(CostModel, CalibratedAttentionChargesEveryQueryRow) {
  const ModelShape m = small_shape();  // 4 heads of 64, MHA: 64 query values per KV head
  ClusterSpec c = one_node(1, 10);
  c.attention_s_per_pos = 1e-6;  // per position per KV head at 512 query values per KV head
  c.attention_ref = 512;
  Query q;
  q.context = 100;
  auto p = predict(m, c, q);
  ASSERT_TRUE(p.ok()) << p.error().message;
  // 1 row × 4 layers × 4 KV heads × 100 positions × 1 µs × 64/512 = 200 µs, more than the KV
  // reads (4 × 100 × 2 × 256 × 2 bytes / 10 GB/s = 41 µs).
  EXPECT_NEAR(p->step.attention, 200e-6, 1e-12);
  // A cheap compute term leaves the bandwidth term.
  c.attention_s_per_pos = 1e-9;
  EXPECT_NEAR(predict(m, c, q)->step.attention, 4 * 100 * 2 * 256 * 2.0 / 10e9, 1e-15);
}

TEST(CostModel, BroadcastPerTensorParallelStep) {
  const ModelShape m = small_shape();
  ClusterSpec c = one_node(2, 10);
  Query q;
  q.context = 0;
  q.layout = Layout{2, 1, {}, 0};
  const double without = predict(m, c, q)->step.allreduce;
  c.bcast = Link{5e-6, 1e9};
  // Two broadcasts (length, then the step's 16 bytes per row), one round each at tp 2.
  EXPECT_NEAR(predict(m, c, q)->step.allreduce - without, 2 * (5e-6 + 16 / 1e9), 1e-12);
  q.layout = Layout{1, 1, {}, 0};  // no TP group: nothing broadcast
  EXPECT_EQ(predict(m, c, q)->step.allreduce, 0.0);
}

TEST(CostModel, OverheadPerStepAndPerSequence) {
  const ModelShape m = small_shape();
  ClusterSpec c = one_node(1, 10);
  Query q;
  q.context = 0, q.batch = 4;
  const double bytes = 2.0 * (4 * (4.0 * 256 * 256 + 3.0 * 256 * 512) + 1000.0 * 256);
  c.step_overhead_s = 100e-6, c.seq_overhead_s = 10e-6;
  auto p = predict(m, c, q);
  ASSERT_TRUE(p.ok());
  EXPECT_NEAR(1.0 / p->decode_tok_s, bytes / 10e9 + 100e-6, 1e-12);  // one sequence: the step's only
  // 4 rows in one step (no compute profile: T(4) = T(1)) + 100 µs + 3 × 10 µs.
  EXPECT_NEAR(4.0 / p->throughput_tok_s, bytes / 10e9 + 130e-6, 1e-12);
}

}  // namespace
}  // namespace tandem::bench

namespace tandem::bench {
namespace {

TEST(CostModel, SharedBandwidthAndKernelRateTakeTheLower) {
  const ModelShape m = small_shape();
  const double half = 2.0 * (4 * (4.0 * 256 * 256 + 3.0 * 256 * 512) + 1000.0 * 256) / 2;
  ClusterSpec c = one_node(2, 10);
  c.kernel_efficiency["f16"] = 0.8;  // alone: 8 GB/s
  Query q;
  q.context = 0;
  q.layout = Layout{2, 1, {}, 0};
  c.node_read_GBps = 12;  // shared: 6 GB/s each, below the kernel's 8: bandwidth-bound at 6
  EXPECT_NEAR(predict(m, c, q)->step.weights, half / 6e9, 1e-12);
  c.node_read_GBps = 18;  // shared: 9 GB/s each, above the kernel's 8: the kernel's rate
  EXPECT_NEAR(predict(m, c, q)->step.weights, half / 8e9, 1e-12);
}

}  // namespace
}  // namespace tandem::bench
