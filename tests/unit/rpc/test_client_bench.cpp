// `tandem client bench` arithmetic: percentiles, and how one stream's arrivals become TTFT, TPOT
// and inter-token latency samples.
#include <gtest/gtest.h>

#include <fstream>

#include "rpc/client_bench.h"

using namespace tandem;

TEST(RpcBench, PercentilesInterpolateBetweenRanks) {
  auto s = rpc::summarize({5, 1, 4, 2, 3});
  EXPECT_EQ(s.n, 5);
  EXPECT_DOUBLE_EQ(s.min, 1);
  EXPECT_DOUBLE_EQ(s.max, 5);
  EXPECT_DOUBLE_EQ(s.mean, 3);
  EXPECT_DOUBLE_EQ(s.p50, 3);
  EXPECT_DOUBLE_EQ(s.p90, 4.6);   // rank 0.9 × 4 = 3.6 between 4 and 5
  EXPECT_DOUBLE_EQ(s.p99, 4.96);
  auto one = rpc::summarize({7});
  EXPECT_DOUBLE_EQ(one.p99, 7);
  EXPECT_EQ(rpc::summarize({}).n, 0);
}

TEST(RpcBench, StreamTimingBecomesLatencySamples) {
  rpc::GenerateResult g;
  g.ids = {1, 2, 3, 4, 5, 6};
  g.has_final = true;
  g.final.mutable_usage()->set_prompt_tokens(4);
  g.final.mutable_usage()->set_drafted_tokens(3);
  g.final.mutable_usage()->set_accepted_tokens(2);
  g.ttft_ms = 10;
  g.arrivals = {{10, 1}, {14, 1}, {20, 3}, {22, 1}};  // a 3-token speculative block at t=20
  g.total_ms = 25;
  rpc::BenchReport r;
  std::vector<double> ttft, tpot, itl, e2e;
  rpc::add_sample(r, g, ttft, tpot, itl, e2e);
  EXPECT_EQ(ttft, std::vector<double>{10});
  EXPECT_EQ(e2e, std::vector<double>{25});
  ASSERT_EQ(tpot.size(), 1u);
  EXPECT_DOUBLE_EQ(tpot[0], (25.0 - 10.0) / 5);
  EXPECT_EQ(itl, (std::vector<double>{4, 2, 2, 2, 2}));  // the block's 6 ms gap is 3 × 2 ms
  EXPECT_EQ(r.completion_tokens, 6);
  EXPECT_EQ(r.prompt_tokens, 4);
  EXPECT_EQ(r.drafted, 3);
  EXPECT_EQ(r.accepted, 2);
}

TEST(RpcBench, PromptsFileOnePerLineWithEscapedNewlines) {
  const std::string path = std::string(TANDEM_TEST_WORK) + "/rpc_bench_prompts.txt";
  {
    std::ofstream f(path);
    f << "first prompt\n\nsecond\\nline two\r\n";
  }
  auto p = rpc::read_prompts_file(path);
  ASSERT_TRUE(p.ok()) << p.error().message;
  EXPECT_EQ(*p, (std::vector<std::string>{"first prompt", "second\nline two"}));
  { std::ofstream f(path); }
  auto empty = rpc::read_prompts_file(path);
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("no prompts"), std::string::npos);
  auto missing = rpc::read_prompts_file(path + ".missing");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().message.find("cannot open"), std::string::npos);
  EXPECT_FALSE(rpc::builtin_prompts().empty());
}

TEST(RpcBench, RefusesNonsenseOptionsAndAnUnreachableServer) {
  rpc::BenchOptions o;
  o.prompts = {"x"};
  o.requests = 0;
  EXPECT_FALSE(rpc::run_bench(o).ok());
  o.requests = 1;
  o.concurrency = 0;
  EXPECT_FALSE(rpc::run_bench(o).ok());
  o.concurrency = 1;
  o.addr = "127.0.0.1:1";  // nothing listens on port 1
  auto r = rpc::run_bench(o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("127.0.0.1:1"), std::string::npos);
}
