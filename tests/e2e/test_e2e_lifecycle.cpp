// End to end, around the life of requests and of the server, on a synthetic model slow enough
// (~200 tok/s) that streams are still running when the test acts: cancellation, a client that
// vanishes, a full queue, health before warm-up, and shutdown by signal (drain, drain timeout,
// SIGINT/SIGTERM through tandem-mpirun, SIGTERM to rank 0 under a bare mpirun).
#include <gtest/gtest.h>

#include <regex>
#include <signal.h>

#include <atomic>
#include <thread>

#include "e2e_support.h"

using namespace tandem;
using namespace tandem::e2e;

namespace {

ServerConfig slow_config(int max_seqs = 4) {
  ServerConfig c;
  c.model = slow_model();
  c.max_seqs = max_seqs;
  return c;
}

// Generates `r` and checks it ended normally; returns the result.
rpc::GenerateResult generate_ok(rpc::Client& c, const v1::GenerateRequest& r) {
  rpc::GenerateResult g;
  const grpc::Status st = c.generate(r, g, {}, 120s);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_TRUE(g.has_final);
  return g;
}

// Waits until `g` has received at least one message with tokens (set by on_message).
void wait_until(const std::atomic<bool>& flag, std::chrono::milliseconds timeout = 60s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!flag && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(5ms);
  ASSERT_TRUE(flag.load()) << "the stream did not start in time";
}

}  // namespace

TEST(E2eLifecycle, CancelMidStreamFreesTheSlotAndSparesTheOthers) {
  Server srv(slow_config(4), "cancel");
  ASSERT_TRUE(srv.up());
  auto& c = srv.client();
  const auto b_req = text_request("Lily and Ben went to the park", 400);
  const auto b_alone = generate_ok(c, b_req);
  ASSERT_EQ(b_alone.ids.size(), 400u);

  rpc::GenerateResult b;
  grpc::Status b_status;
  std::atomic<bool> b_started{false};
  std::thread tb([&] {
    b_status = c.generate(b_req, b, [&](const v1::GenerateResponse&) { return b_started = true; }, 120s);
  });
  wait_until(b_started);
  // A: a long request cancelled by its client after its first tokens.
  int a_tokens = 0;
  rpc::GenerateResult a;
  const grpc::Status a_status = c.generate(text_request("Once upon a time", 3000), a, [&](const v1::GenerateResponse& m) {
    a_tokens += m.token_ids_size();
    return a_tokens < 10;
  }, 120s);
  EXPECT_EQ(a_status.error_code(), grpc::StatusCode::CANCELLED) << a_status.error_message();
  EXPECT_LT(a.ids.size(), 3000u);
  // The engine frees A's slot at its next step while B keeps running.
  bool b_was_running = false;
  EXPECT_TRUE(wait_for(c, [&](const v1::ServerInfo& s) {
    b_was_running = s.active() == 1 && s.free_slots() == 3;
    return s.counters().cancelled() == 1 && s.active() <= 1;
  })) << "A's slot was not freed";
  EXPECT_TRUE(b_was_running) << "B finished before A's slot was seen freed: the check did not overlap";
  tb.join();
  ASSERT_TRUE(b_status.ok()) << b_status.error_message();
  EXPECT_EQ(b.ids, b_alone.ids) << "the cancellation disturbed another stream";
  EXPECT_EQ(b.final.finish_reason(), v1::FINISH_REASON_LENGTH);
  EXPECT_TRUE(wait_for(c, [](const v1::ServerInfo& s) {
    return s.active() == 0 && s.free_slots() == 4 && s.counters().cancelled() == 1 && s.streams() == 0;
  })) << server_info(c).DebugString();
}

TEST(E2eLifecycle, AClientThatVanishesIsDetectedAndItsSlotFreed) {
  Server srv(slow_config(4), "vanish");
  ASSERT_TRUE(srv.up());
  auto& c = srv.client();
  const std::string dir = fresh_dir("vanish-client");
  const pid_t client = spawn({tandem_bin(), "client", "generate", "--addr", srv.addr(), "--prompt", "Once upon a time",
                              "--max-tokens", "3000", "--ignore-eos"},
                             dir + "/client.log");
  ASSERT_GT(client, 0);
  ASSERT_TRUE(wait_for(c, [](const v1::ServerInfo& s) { return s.active() == 1 && s.counters().tokens_generated() > 20; }, 60s))
      << read_text(dir + "/client.log");
  kill(client, SIGKILL);  // no cancel, no goodbye: the connection just drops
  EXPECT_EQ(wait_exit(client, 10s), 128 + SIGKILL);
  EXPECT_TRUE(wait_for(c, [](const v1::ServerInfo& s) {
    return s.active() == 0 && s.free_slots() == 4 && s.counters().cancelled() == 1 && s.streams() == 0;
  }, 15s)) << "the server did not notice the vanished client";
  EXPECT_LT(server_info(c).counters().tokens_generated(), 3000);
}

TEST(E2eLifecycle, AFullQueueGetsResourceExhaustedAndAdmittedRequestsStillComplete) {
  ServerConfig cfg = slow_config(1);
  cfg.max_queue = 2;
  Server srv(cfg, "queue-full");
  ASSERT_TRUE(srv.up());
  auto& c = srv.client();
  const std::vector<v1::GenerateRequest> reqs{text_request("The little dog was sad because", 150),
                                              text_request("Tom had a red ball. He liked to", 150)};
  std::vector<rpc::GenerateResult> alone;
  for (const auto& r : reqs) alone.push_back(generate_ok(c, r));
  constexpr int kBurst = 8;
  std::vector<rpc::GenerateResult> got(kBurst);
  std::vector<grpc::Status> st(kBurst);
  std::vector<std::thread> ts;
  for (int i = 0; i < kBurst; ++i) ts.emplace_back([&, i] { st[i] = c.generate(reqs[i % 2], got[i], {}, 120s); });
  for (auto& t : ts) t.join();
  int ok = 0, exhausted = 0;
  for (int i = 0; i < kBurst; ++i) {
    if (st[i].ok()) {
      ++ok;
      EXPECT_EQ(got[i].ids, alone[i % 2].ids) << "admitted request " << i << " came out different";
      EXPECT_EQ(got[i].final.finish_reason(), v1::FINISH_REASON_LENGTH);
    } else {
      EXPECT_EQ(st[i].error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << st[i].error_message();
      EXPECT_NE(st[i].error_message().find("queue is full"), std::string::npos) << st[i].error_message();
      exhausted += st[i].error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED;
    }
  }
  // One slot and two queue places: at most three of the burst get in, at least the two queued.
  EXPECT_GE(ok, 2);
  EXPECT_LE(ok, 3);
  EXPECT_EQ(ok + exhausted, kBurst);
  EXPECT_EQ(server_info(c).counters().rejected_queue_full(), exhausted);
  EXPECT_TRUE(wait_for(c, [](const v1::ServerInfo& s) { return s.active() == 0 && s.queued() == 0; }));
}

TEST(E2eLifecycle, HealthIsNotServingUntilWarmedUp) {
  ServerConfig cfg;
  cfg.model = testdata_model("stories260K.gguf");
  cfg.startup_delay = 3;  // NOT_SERVING for 3 s after load and warm-up
  cfg.wait_serving = false;
  Server srv(cfg, "health");
  ASSERT_TRUE(srv.up());
  auto& c = srv.client();
  const rpc::Health early = c.health(5s);
  EXPECT_EQ(early, rpc::Health::NotServing);
  rpc::GenerateResult g;
  const grpc::Status st = c.generate(text_request("Once", 5), g, {}, 10s);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  EXPECT_NE(st.error_message().find("starting"), std::string::npos) << st.error_message();
  EXPECT_FALSE(server_info(c).ready());
  EXPECT_EQ(c.wait_until_serving(60s, 50ms), rpc::Health::Serving);
  EXPECT_TRUE(server_info(c).ready());
  EXPECT_TRUE(c.generate(text_request("Once", 5), g, {}, 30s).ok());
}

namespace {

// Starts a long stream, stops the job with `sig` sent to `target` while it runs, and checks: new
// requests get UNAVAILABLE and health NOT_SERVING during the drain, the stream gets its final
// message (all its tokens, or CANCELLED after the drain timeout), and the job exits 0.
void stop_while_streaming(Server& srv, pid_t target, int sig, int max_tokens, v1::FinishReason expect) {
  auto& c = srv.client();
  std::atomic<bool> started{false};
  rpc::GenerateResult g;
  grpc::Status gst;
  std::thread t([&] {
    gst = c.generate(text_request("One day, a girl named Sue found a big box", max_tokens), g,
                     [&](const v1::GenerateResponse&) { return started = true; }, 120s);
  });
  wait_until(started);
  ASSERT_GT(target, 0);
  ASSERT_EQ(kill(target, sig), 0);
  // The stop reaches rank 0 (through mpirun, for the wrapper) within moments.
  bool unavailable = false, not_serving = false;
  for (auto end = std::chrono::steady_clock::now() + 20s; std::chrono::steady_clock::now() < end && !(unavailable && not_serving);) {
    rpc::GenerateResult probe;
    const grpc::Status st = c.generate(text_request("Once", 2), probe, {}, 10s);
    if (st.error_code() == grpc::StatusCode::UNAVAILABLE && st.error_message().find("shutting down") != std::string::npos)
      unavailable = true;
    if (c.health(2s) == rpc::Health::NotServing) not_serving = true;
    std::this_thread::sleep_for(10ms);
  }
  t.join();
  EXPECT_TRUE(unavailable) << "no request was refused with UNAVAILABLE during the drain";
  EXPECT_TRUE(not_serving) << "health never said NOT_SERVING during the drain";
  EXPECT_TRUE(gst.ok()) << gst.error_message();
  ASSERT_TRUE(g.has_final) << "the in-flight stream got no final message";
  EXPECT_EQ(g.final.finish_reason(), expect) << v1::FinishReason_Name(g.final.finish_reason());
  if (expect == v1::FINISH_REASON_LENGTH) {
    EXPECT_EQ(static_cast<int>(g.ids.size()), max_tokens);
  } else {
    EXPECT_NE(g.final.error().find("shutting down"), std::string::npos) << g.final.error();
  }
  const auto rc = srv.wait(60s);
  ASSERT_TRUE(rc.has_value()) << "the job did not end:\n" << srv.log();
  EXPECT_EQ(*rc, 0) << srv.log();
  const std::string log = srv.log();
  EXPECT_EQ(log.find("exited on signal"), std::string::npos) << log;
  EXPECT_EQ(log.find("non-zero exit"), std::string::npos) << log;
  EXPECT_TRUE(std::regex_search(log, std::regex(R"(\[rank 0 on [^\]]+\] \[info\] stopped:)"))) << log;
}

ServerConfig wrapped_pearl() {
  // Two ranks: the slow target on rank 0, its first two layers drafting on rank 1 (PEARL).
  ServerConfig cfg = slow_config(4);
  cfg.draft = "layers:2";
  cfg.draft_tp = 1;
  cfg.speculation = "pearl";
  cfg.wrapper = true;
  return cfg;
}

}  // namespace

TEST(E2eLifecycle, SigtermThroughTandemMpirunDrainsAndEveryRankExitsZero) {
  Server srv(wrapped_pearl(), "sigterm-wrapper");
  ASSERT_TRUE(srv.up());
  stop_while_streaming(srv, srv.launcher(), SIGTERM, 300, v1::FINISH_REASON_LENGTH);
}

TEST(E2eLifecycle, SigintThroughTandemMpirunDrainsAndEveryRankExitsZero) {
  Server srv(wrapped_pearl(), "sigint-wrapper");
  ASSERT_TRUE(srv.up());
  stop_while_streaming(srv, srv.launcher(), SIGINT, 300, v1::FINISH_REASON_LENGTH);
}

TEST(E2eLifecycle, DrainTimeoutCancelsInFlightStreamsWithAFinalMessage) {
  ServerConfig cfg = slow_config(4);
  cfg.drain_timeout = 0.5;
  Server srv(cfg, "drain-timeout");
  ASSERT_TRUE(srv.up());
  // Under a bare mpirun, SIGTERM goes to rank 0 itself (mpirun would kill the job).
  stop_while_streaming(srv, srv.rank_pid(0), SIGTERM, 3000, v1::FINISH_REASON_CANCELLED);
}
