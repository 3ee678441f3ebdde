// Calibration plumbing: the link fit, the profile's JSON form, cluster files and their errors.
#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

#include "bench/calibration.h"

namespace tandem::bench {
namespace {

std::string work_file(const std::string& stem) {
  return std::string(TANDEM_TEST_WORK) + "/" + stem + "_" + std::to_string(getpid()) + ".json";
}

TEST(Calibration, LinkFitRecoversLatencyAndBandwidth) {
  std::vector<std::pair<double, double>> s;
  for (double b : {8.0, 1024.0, 65536.0, 1048576.0}) s.emplace_back(b, 12e-6 + b / 4e9);
  const Link l = fit_link(s);
  EXPECT_NEAR(l.latency_s, 12e-6, 1e-12);
  EXPECT_NEAR(l.bandwidth_Bps, 4e9, 1.0);
  // Noise-free but flat (latency only): infinite bandwidth is reported as a very fast link.
  const Link flat = fit_link({{8, 5e-6}, {1024, 5e-6}});
  EXPECT_NEAR(flat.latency_s, 5e-6, 1e-15);
  EXPECT_GE(flat.bandwidth_Bps, 1e12);
}

Profile sample_profile() {
  Profile p;
  p.machine = {{"cpu", "test cpu"}, {"cores", 2}, {"memory_gib", 16.0}, {"date", "2026-01-01 00:00 UTC"}};
  p.cores = 2, p.memory_GiB = 16;
  p.read_GBps = {{1, 25.0}, {2, 31.0}};
  p.compute["q8_0"] = {{1, 1.0}, {4, 1.3}, {16, 3.0}};
  p.gemv_GBps["q8_0"] = 22;
  p.intra = Link{9e-6, 6e9};
  p.link_source = "measured";
  return p;
}

TEST(Calibration, ProfileJsonRoundTripsAndMakesThisMachine) {
  const Profile p = sample_profile();
  auto back = profile_from_json(to_json(p), "mem");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->read_GBps, p.read_GBps);
  EXPECT_EQ(back->compute.at("q8_0"), p.compute.at("q8_0"));
  EXPECT_NEAR(back->intra.latency_s, 9e-6, 1e-15);
  EXPECT_NEAR(back->intra.bandwidth_Bps, 6e9, 1e-3);
  const ClusterSpec c = cluster_from_profile(*back, 2, "test");
  EXPECT_EQ(c.world(), 2);
  EXPECT_DOUBLE_EQ(c.rank_read_GBps, 25.0);  // a rank alone: the one-thread figure
  EXPECT_DOUBLE_EQ(c.node_read_GBps, 31.0);  // both ranks together: the best multi-thread figure
  EXPECT_DOUBLE_EQ(c.rank_memory_GiB, 8.0);
  EXPECT_NE(c.source.find("test cpu"), std::string::npos);
  EXPECT_NEAR(compute_factor(c, WeightType::Q8_0, 2), 1.0 + 0.5 * 0.3, 1e-12);  // halfway in log2 rows
  EXPECT_NEAR(compute_factor(c, WeightType::Q8_0, 32), 3.0 + 16 * (1.7 / 12), 1e-12);  // last slope beyond
  EXPECT_DOUBLE_EQ(compute_factor(c, WeightType::Q4_K, 8), 1.0);  // unprofiled type: bandwidth-bound
  EXPECT_DOUBLE_EQ(c.kernel_efficiency.at("q8_0"), 22.0 / 25.0);  // the GEMV's share of the read bandwidth

  auto bad = profile_from_json(nlohmann::json{{"machine", {}}}, "p.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("p.json: not a calibration profile"), std::string::npos);
}

TEST(Calibration, ClusterFileFieldsAndErrors) {
  const std::string prof = work_file("cal_profile");
  std::ofstream(prof) << to_json(sample_profile()).dump();
  const std::string path = work_file("cal_cluster");
  std::ofstream(path) << nlohmann::json{{"name", "pair"}, {"nodes", 2}, {"ranks_per_node", 2}, {"rank_read_gbs", 50},
                                        {"node_read_gbs", 80}, {"rank_memory_gib", 32},
                                        {"intra", {{"latency_us", 2}, {"gbs", 20}}},
                                        {"inter", {{"latency_us", 30}, {"gbs", 3}}}, {"profile", prof}}
                             .dump();
  auto c = load_cluster(path);
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->world(), 4);
  EXPECT_DOUBLE_EQ(c->node_read_GBps, 80);
  EXPECT_NEAR(c->inter.latency_s, 30e-6, 1e-15);
  EXPECT_NEAR(c->inter.bandwidth_Bps, 3e9, 1e-3);
  EXPECT_EQ(c->compute.at("q8_0").size(), 3u);

  std::ofstream(path) << R"({"nodes": 2, "rank_memory_gib": 8, "intra": {"latency_us": 1, "gbs": 1}})";
  auto missing = load_cluster(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("--cluster " + path + ": missing or mistyped field"), std::string::npos);
  EXPECT_NE(missing.error().message.find("rank_read_gbs"), std::string::npos) << missing.error().message;

  std::ofstream(path) << R"({"nodes": 0, "rank_read_gbs": 1, "rank_memory_gib": 8, "intra": {"latency_us": 1, "gbs": 1}})";
  auto zero = load_cluster(path);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(zero.error().message.find("must be positive"), std::string::npos);
  std::remove(path.c_str());
  std::remove(prof.c_str());
}

}  // namespace
}  // namespace tandem::bench

namespace tandem::bench {
namespace {

TEST(Calibration, LineFitAndStepOverhead) {
  const auto [a, b] = fit_line({{64, 1e-6 + 64 * 2e-9}, {256, 1e-6 + 256 * 2e-9}, {1024, 1e-6 + 1024 * 2e-9}});
  EXPECT_NEAR(a, 1e-6, 1e-15);
  EXPECT_NEAR(b, 2e-9, 1e-18);
  // Excess per step of 1 and 8 sequences: 300 µs and 370 µs → 300 µs + 10 µs per extra sequence.
  const auto [step, seq] = fit_step_overhead({{1, 300e-6}, {8, 370e-6}});
  EXPECT_NEAR(step, 300e-6, 1e-12);
  EXPECT_NEAR(seq, 10e-6, 1e-12);
  // One sequence count: its mean; a negative excess (the model was slower) is clamped to 0.
  EXPECT_NEAR(fit_step_overhead({{1, 2e-4}, {1, 4e-4}}).first, 3e-4, 1e-15);
  EXPECT_EQ(fit_step_overhead({{1, -1e-4}}).first, 0.0);
  EXPECT_EQ(fit_step_overhead({}).first, 0.0);
}

TEST(Calibration, NewConstantsRoundTripAndReachTheCluster) {
  Profile p = sample_profile();
  p.layer_gemv_GBps["q8_0"] = 20;
  p.layer_compute["q8_0"] = {{1, 1.0}, {4, 1.5}};
  p.p2p = Link{3e-6, 8e9};
  p.bcast = Link{4e-6, 2e9};
  p.attention = {{64, 1e-6}, {256, 2e-6}};
  p.attention_n_q = 8, p.attention_head_dim = 64, p.attention_s_per_pos = 5e-9;
  p.step_overhead_s = 250e-6, p.seq_overhead_s = 12e-6, p.overhead_source = "probe";
  auto back = profile_from_json(to_json(p), "mem");
  ASSERT_TRUE(back.ok()) << back.error().message;
  ASSERT_TRUE(back->p2p && back->bcast);
  EXPECT_NEAR(back->bcast->latency_s, 4e-6, 1e-15);
  EXPECT_NEAR(back->p2p->bandwidth_Bps, 8e9, 1e-3);
  EXPECT_EQ(back->attention, p.attention);
  EXPECT_NEAR(back->attention_s_per_pos, 5e-9, 1e-20);
  EXPECT_NEAR(back->step_overhead_s, 250e-6, 1e-15);
  EXPECT_NEAR(back->seq_overhead_s, 12e-6, 1e-15);
  const ClusterSpec c = cluster_from_profile(*back, 2, "test");
  EXPECT_DOUBLE_EQ(c.kernel_efficiency.at("q8_0"), 20.0 / 25.0);  // the whole layer's GEMV, not the one matrix
  EXPECT_EQ(c.compute.at("q8_0"), p.layer_compute.at("q8_0"));     // and its T(rows)/T(1)
  EXPECT_NEAR(c.attention_s_per_pos, 5e-9, 1e-20);
  EXPECT_DOUBLE_EQ(c.attention_ref, 512.0);
  EXPECT_NEAR(c.step_overhead_s, 250e-6, 1e-15);
  ASSERT_TRUE(c.bcast.has_value());
  // A profile without them (older calibrations) leaves them unset.
  auto old = profile_from_json(to_json(sample_profile()), "old");
  ASSERT_TRUE(old.ok());
  EXPECT_FALSE(old->bcast.has_value());
  EXPECT_EQ(cluster_from_profile(*old, 2, "t").step_overhead_s, 0.0);
  // Two ranks streaming at once, when measured, set the node's bandwidth (else the best thread count).
  EXPECT_DOUBLE_EQ(cluster_from_profile(*old, 2, "t").node_read_GBps, 31.0);
  Profile r = sample_profile();
  r.ranks_read_GBps = 44;
  auto rb = profile_from_json(to_json(r), "r");
  ASSERT_TRUE(rb.ok());
  EXPECT_DOUBLE_EQ(cluster_from_profile(*rb, 2, "t").node_read_GBps, 44.0);
  r.ranks_gemv_GBps = 33;  // two ranks' GEMVs together: preferred over the plain reads
  auto rg = profile_from_json(to_json(r), "r");
  ASSERT_TRUE(rg.ok());
  EXPECT_DOUBLE_EQ(cluster_from_profile(*rg, 2, "t").node_read_GBps, 33.0);
  // The samples behind the medians (model-check's probes between repetitions) round-trip.
  r.ranks_gemv_samples = {30, 33, 36};
  r.ranks_read_samples = {40, 44};
  r.layer_gemv_samples["q8_0"] = {18, 20, 21};
  auto rs = profile_from_json(to_json(r), "r");
  ASSERT_TRUE(rs.ok()) << rs.error().message;
  EXPECT_EQ(rs->ranks_gemv_samples, r.ranks_gemv_samples);
  EXPECT_EQ(rs->ranks_read_samples, r.ranks_read_samples);
  EXPECT_EQ(rs->layer_gemv_samples.at("q8_0"), r.layer_gemv_samples.at("q8_0"));
}

}  // namespace
}  // namespace tandem::bench
