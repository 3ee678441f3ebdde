// Prometheus exposition (written, then parsed back) and the API-key and TLS checks.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "rpc/metrics.h"
#include "rpc/security.h"

using namespace tandem;
using namespace tandem::rpc;

namespace {

double value(const std::vector<Sample>& s, const std::string& name, std::map<std::string, std::string> labels = {}) {
  for (const auto& x : s)
    if (x.name == name && x.labels == labels) return x.value;
  return NAN;
}

std::string temp_file(const std::string& name, const std::string& text) {
  const std::string path = std::string(TANDEM_TEST_WORK) + "/" + name;
  std::ofstream(path) << text;
  return path;
}

}  // namespace

TEST(Metrics, ExpositionParsesBackWithCountersAndHistograms) {
  Metrics m;
  RequestRecord r;
  r.api = "http";
  r.outcome = Outcome::Stop;
  r.ttft_s = 0.02;
  r.total_s = 0.5;
  r.usage.completion_tokens = 49;
  r.usage.mode = SpecMode::Pearl;
  r.usage.drafted = 40;
  r.usage.accepted = 30;
  m.record(r);
  m.record({"grpc", Outcome::QueueFull});
  m.record({"http", Outcome::Cancelled});
  m.stream_opened("http");
  EngineInfo info;
  info.max_seqs = 8;
  info.active = 3;
  info.queued = 2;
  info.tokens_generated = 123;
  info.prompt_tokens = 45;
  info.draft_len = 4;
  info.step_seconds.observe(0.003);
  info.step_seconds.observe(0.2);
  auto parsed = parse_exposition(m.render(&info, true));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  const auto& s = *parsed;
  EXPECT_EQ(value(s, "tandem_ready"), 1);
  EXPECT_EQ(value(s, "tandem_requests_total", {{"api", "http"}, {"outcome", "stop"}}), 1);
  EXPECT_EQ(value(s, "tandem_requests_total", {{"api", "grpc"}, {"outcome", "queue_full"}}), 1);
  EXPECT_EQ(value(s, "tandem_requests_total", {{"api", "http"}, {"outcome", "cancelled"}}), 1);
  EXPECT_EQ(value(s, "tandem_open_streams", {{"api", "http"}}), 1);
  EXPECT_EQ(value(s, "tandem_active_sequences"), 3);
  EXPECT_EQ(value(s, "tandem_kv_slots", {{"state", "free"}}), 5);
  EXPECT_EQ(value(s, "tandem_queue_depth"), 2);
  EXPECT_EQ(value(s, "tandem_generation_tokens_total"), 123);
  EXPECT_EQ(value(s, "tandem_prompt_tokens_total"), 45);
  EXPECT_EQ(value(s, "tandem_draft_length"), 4);
  EXPECT_EQ(value(s, "tandem_speculation_drafted_tokens_total", {{"mode", "pearl"}}), 40);
  EXPECT_DOUBLE_EQ(value(s, "tandem_speculation_acceptance_ratio", {{"mode", "pearl"}}), 0.75);
  // Histograms: cumulative buckets ending in +Inf = count; TPOT = (0.5 - 0.02) / 48.
  EXPECT_EQ(value(s, "tandem_time_to_first_token_seconds_bucket", {{"le", "0.01"}}), 0);
  EXPECT_EQ(value(s, "tandem_time_to_first_token_seconds_bucket", {{"le", "0.025"}}), 1);
  EXPECT_EQ(value(s, "tandem_time_to_first_token_seconds_bucket", {{"le", "+Inf"}}), 1);
  EXPECT_DOUBLE_EQ(value(s, "tandem_time_per_output_token_seconds_sum"), 0.48 / 48);
  EXPECT_EQ(value(s, "tandem_target_step_seconds_bucket", {{"le", "0.005"}}), 1);
  EXPECT_EQ(value(s, "tandem_target_step_seconds_count"), 2);
  // Rejected and cancelled requests are counted but do not enter the latency histograms.
  EXPECT_EQ(value(s, "tandem_request_duration_seconds_count"), 1);
}

TEST(Metrics, StartingServerRendersZerosAndTheParserRejectsGarbage) {
  Metrics m;
  auto parsed = parse_exposition(m.render(nullptr, false));
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(value(*parsed, "tandem_ready"), 0);
  EXPECT_EQ(value(*parsed, "tandem_active_sequences"), 0);
  EXPECT_FALSE(parse_exposition("metric{label=\"x\" 1\n").ok());
  EXPECT_FALSE(parse_exposition("metric notanumber\n").ok());
  EXPECT_FALSE(parse_exposition("# TYPE x bogus\n").ok());
  auto esc = parse_exposition("m{a=\"q\\\"uote\"} 2.5\n");
  ASSERT_TRUE(esc.ok());
  EXPECT_EQ((*esc)[0].labels.at("a"), "q\"uote");
}

TEST(Security, ApiKeysAcceptExactlyTheListedKeys) {
  const std::string path = temp_file("keys-accept.txt", "# comment\n\n  key-one  \nkey-two\n");
  auto keys = load_api_keys(path);
  ASSERT_TRUE(keys.ok()) << keys.error().message;
  EXPECT_EQ(keys->digests.size(), 2u);
  EXPECT_TRUE(key_accepted(*keys, "key-one"));
  EXPECT_TRUE(key_accepted(*keys, "key-two"));
  EXPECT_FALSE(key_accepted(*keys, "key-on"));
  EXPECT_FALSE(key_accepted(*keys, "key-one "));
  EXPECT_FALSE(key_accepted(*keys, ""));
  EXPECT_TRUE(key_accepted(ApiKeys{}, "anything"));  // no keys configured: open
  auto empty = load_api_keys(temp_file("keys-empty.txt", "# only a comment\n"));
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.error().message.find("no key"), std::string::npos);
  EXPECT_FALSE(load_api_keys(std::string(TANDEM_TEST_WORK) + "/no-such-keys").ok());
}

TEST(Security, BearerHeadersAndLoopbackAddresses) {
  EXPECT_EQ(bearer_token("Bearer abc").value(), "abc");
  EXPECT_EQ(bearer_token("bearer   abc  ").value(), "abc");
  EXPECT_FALSE(bearer_token("Basic abc").has_value());
  EXPECT_FALSE(bearer_token("Bearer ").has_value());
  EXPECT_FALSE(bearer_token("abc").has_value());
  EXPECT_TRUE(is_loopback_listen("127.0.0.1:8080"));
  EXPECT_TRUE(is_loopback_listen("localhost:0"));
  EXPECT_TRUE(is_loopback_listen("[::1]:50051"));
  EXPECT_FALSE(is_loopback_listen("0.0.0.0:8080"));
  EXPECT_FALSE(is_loopback_listen("10.1.2.3:8080"));
  EXPECT_TRUE(exposure_warning("HTTP", "127.0.0.1:1", false, false).empty());
  EXPECT_TRUE(exposure_warning("HTTP", "0.0.0.0:1", true, true).empty());
  EXPECT_NE(exposure_warning("HTTP", "0.0.0.0:1", false, true).find("plaintext"), std::string::npos);
  EXPECT_NE(exposure_warning("HTTP", "0.0.0.0:1", true, false).find("without API keys"), std::string::npos);
}

TEST(Security, TlsFlagsComeTogetherAndMustBePem) {
  EXPECT_TRUE(load_tls("", "", "").ok());
  EXPECT_FALSE(load_tls("cert.pem", "", "").ok());
  EXPECT_FALSE(load_tls("", "", "ca.pem").ok());
  const std::string not_pem = temp_file("tls-not-pem.txt", "hello");
  auto r = load_tls(not_pem, not_pem, "");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().message.find("not a PEM certificate"), std::string::npos);
}
