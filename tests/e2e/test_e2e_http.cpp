// End to end over the OpenAI HTTP API: the official `openai` npm client (streamed and not, chat and
// completions, 16 concurrent streams) against `tandem generate`; SSE framing byte by byte and
// every error status through curl; /metrics parsed and moving; a client that disconnects frees its
// slot; TLS and API keys on both HTTP and gRPC; 1,000 requests at concurrency 16 without loss.
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <csignal>
#include <fstream>
#include <regex>

#include "e2e_support.h"
#include "rpc/client_bench.h"
#include "rpc/metrics.h"

using namespace tandem;
using namespace tandem::e2e;
using nlohmann::json;

namespace {

const std::string kChatTemplate = std::string(TANDEM_SOURCE_DIR) + "/tests/chat_templates/chatml.jinja";

std::string write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

struct CurlResult {
  int rc = -1;      // curl's exit code
  int status = 0;   // HTTP status
  std::string body;
};

// curl with the body to a file and the status line from the dumped headers (curl's own output
// would mix with its messages in the log).
CurlResult curl(const std::string& dir, const std::string& name, std::vector<std::string> args) {
  const std::string body = dir + "/" + name + ".body", headers = dir + "/" + name + ".headers";
  std::vector<std::string> argv = {TANDEM_CURL, "-sS", "-N", "-o", body, "-D", headers};
  argv.insert(argv.end(), args.begin(), args.end());
  CurlResult r;
  r.rc = run(argv, dir + "/" + name + ".log", 120s);
  r.body = read_text(body);
  std::smatch m;
  const std::string h = read_text(headers);
  if (std::regex_search(h, m, std::regex("HTTP/[0-9.]+ ([0-9]{3})"))) r.status = std::stoi(m[1]);
  return r;
}

std::vector<std::string> post(const std::string& url, const json& body, const std::string& key = "") {
  std::vector<std::string> a = {"-H", "Content-Type: application/json", "-d", body.dump(), url};
  if (!key.empty()) a.insert(a.begin(), {"-H", "Authorization: Bearer " + key});
  return a;
}

// Runs tests/js/openai_client.mjs; one result per job.
json node_client(const std::string& dir, const std::string& name, const std::string& base, const json& jobs,
                 const std::string& key = "") {
  const std::string log = dir + "/" + name + ".log";
  const int rc = run({TANDEM_NODE, std::string(TANDEM_SOURCE_DIR) + "/tests/js/openai_client.mjs",
                      json{{"base", base}, {"key", key}, {"jobs", jobs}}.dump()},
                     log, 180s);
  EXPECT_EQ(rc, 0) << read_text(log);
  std::istringstream in(read_text(log));
  json out;
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] == '[') out = json::parse(line, nullptr, false);
  EXPECT_TRUE(out.is_array()) << read_text(log);
  return out;
}

std::vector<rpc::Sample> scrape(int port, const std::string& path = "/metrics") {
  httplib::Client c("127.0.0.1", port);
  auto res = c.Get(path.c_str());
  EXPECT_TRUE(res) << "GET " << path;
  if (!res) return {};
  EXPECT_EQ(res->status, 200);
  auto parsed = rpc::parse_exposition(res->body);
  EXPECT_TRUE(parsed.ok()) << (parsed ? "" : parsed.error().message);
  return parsed ? *parsed : std::vector<rpc::Sample>{};
}

double metric(const std::vector<rpc::Sample>& s, const std::string& name, std::map<std::string, std::string> labels = {}) {
  for (const auto& x : s)
    if (x.name == name && x.labels == labels) return x.value;
  return 0;  // a counter not yet incremented is absent
}

template <class Pred>
bool poll_metrics(int port, Pred pred, std::chrono::milliseconds timeout = 15s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < end) {
    if (pred(scrape(port))) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

std::vector<int32_t> generate_ids(const std::string& dir, const std::string& name, std::vector<std::string> extra) {
  const std::string ids = dir + "/" + name + ".ids";
  std::vector<std::string> argv = {TANDEM_MPIEXEC, "-n", "2", "--oversubscribe", "--bind-to", "none", tandem_bin(), "generate",
                                   "--model", testdata_model("stories260K.gguf"), "--draft",
                                   testdata_model("llama2xs-tinystories-280K.gguf"), "--draft-tp", "1", "--speculation",
                                   "pearl", "--ids-out", ids};
  argv.insert(argv.end(), extra.begin(), extra.end());
  const int rc = run(argv, dir + "/" + name + ".log", 120s);
  EXPECT_EQ(rc, 0) << read_text(dir + "/" + name + ".log");
  return read_ids(ids);
}

class E2eHttp : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerConfig c;
    c.model = testdata_model("stories260K.gguf");
    c.draft = testdata_model("llama2xs-tinystories-280K.gguf");
    c.draft_tp = 1;
    c.speculation = "pearl";
    c.max_seqs = 8;
    c.http = true;
    c.extra = {"--chat-template", kChatTemplate};
    server_ = new Server(c, "http-pearl");
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(server_ && server_->up() && server_->http_port() > 0) << "the shared server did not start"; }
  static std::string url(const std::string& path) { return "http://127.0.0.1:" + std::to_string(server_->http_port()) + path; }
  static Server* server_;
};
Server* E2eHttp::server_ = nullptr;

}  // namespace

TEST_F(E2eHttp, OpenAiClientStreamsTheTokensOfTandemGenerate) {
  const std::string dir = fresh_dir("http-openai-vs-generate");
  const auto expected = generate_ids(dir, "completion", {"--prompt", "Once upon a time", "--max-tokens", "48", "--ignore-eos"});
  const json messages = json::array({json{{"role", "system"}, {"content", "Tell stories."}},
                                     json{{"role", "user"}, {"content", "A story about a cat"}}});
  write_file(dir + "/messages.json", messages.dump());
  const auto expected_chat = generate_ids(dir, "chat", {"--messages", dir + "/messages.json", "--chat-template", kChatTemplate,
                                                        "--max-tokens", "40", "--ignore-eos"});
  ASSERT_EQ(expected.size(), 48u);
  ASSERT_EQ(expected_chat.size(), 40u);
  const json completion = {{"model", "stories260K"}, {"prompt", "Once upon a time"}, {"max_tokens", 48},
                           {"ignore_eos", true}, {"return_token_ids", true}};
  const json chat = {{"model", "stories260K"}, {"messages", messages}, {"max_completion_tokens", 40},
                     {"ignore_eos", true}, {"return_token_ids", true}};
  const json results = node_client(dir, "node", url("/v1"),
                                   json::array({json{{"kind", "completion"}, {"stream", true}, {"body", completion}},
                                                json{{"kind", "completion"}, {"stream", false}, {"body", completion}},
                                                json{{"kind", "chat"}, {"stream", true}, {"body", chat}},
                                                json{{"kind", "chat"}, {"stream", false}, {"body", chat}}}));
  ASSERT_EQ(results.size(), 4u);
  for (int i = 0; i < 4; ++i) {
    const json& r = results[i];
    ASSERT_TRUE(r["error"].is_null()) << r.dump();
    EXPECT_EQ(r["token_ids"].get<std::vector<int32_t>>(), i < 2 ? expected : expected_chat) << "job " << i;
    EXPECT_EQ(r["finish_reason"], "length");
    ASSERT_TRUE(r["usage"].is_object()) << "job " << i;
    EXPECT_EQ(r["usage"]["completion_tokens"], i < 2 ? 48 : 40);
    EXPECT_GT(r["usage"]["prompt_tokens"].get<int>(), 0);
    EXPECT_EQ(r["usage"]["speculation"]["mode"], "pearl");
  }
  EXPECT_GT(results[0]["chunks"].get<int>(), 2);  // streamed in pieces, not one blob
  EXPECT_EQ(results[0]["text"], results[1]["text"]);
  EXPECT_EQ(results[2]["text"], results[3]["text"]);
  EXPECT_FALSE(results[0]["text"].get<std::string>().empty());
}

TEST_F(E2eHttp, SixteenConcurrentStreamsEachGetTheirSoloTokens) {
  const std::string dir = fresh_dir("http-16-streams");
  const auto prompts = rpc::builtin_prompts();
  json jobs = json::array();
  std::vector<std::vector<int32_t>> solo;
  for (int i = 0; i < 16; ++i) {
    json body = {{"prompt", prompts[i % prompts.size()] + (i >= 8 ? " and" : "")},
                 {"max_tokens", 20 + 3 * i},
                 {"ignore_eos", true},
                 {"return_token_ids", true}};
    if (i % 2) {
      body["temperature"] = 0.8;
      body["seed"] = 100 + i;
    }
    jobs.push_back({{"kind", "completion"}, {"stream", true}, {"body", body}});
    // Alone, one at a time, over gRPC: what each request must get whatever else runs beside it.
    v1::GenerateRequest r = text_request(body["prompt"], body["max_tokens"]);
    if (i % 2) {
      r.set_temperature(0.8f);
      r.set_seed(100 + i);
    }
    r.set_ignore_eos(true);
    rpc::GenerateResult g;
    ASSERT_TRUE(server_->client().generate(r, g, {}, 60s).ok());
    solo.push_back(g.ids);
  }
  const json results = node_client(dir, "node16", url("/v1"), jobs);
  ASSERT_EQ(results.size(), 16u);
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(results[i]["error"].is_null()) << results[i].dump();
    EXPECT_EQ(results[i]["token_ids"].get<std::vector<int32_t>>(), solo[i]) << "stream " << i;
  }
}

TEST_F(E2eHttp, SseFramingIsExactAndEndsWithDone) {
  const std::string dir = fresh_dir("http-sse");
  for (const char* path : {"/v1/completions", "/v1/chat/completions"}) {
    const bool chat = std::string(path).find("chat") != std::string::npos;
    json body = {{"max_tokens", 24}, {"stream", true}, {"stream_options", {{"include_usage", true}}}, {"ignore_eos", true}};
    if (chat) body["messages"] = json::array({json{{"role", "user"}, {"content", "Hi"}}});
    else body["prompt"] = "Once upon a time";
    auto r = curl(dir, chat ? "chat" : "completion", post(url(path), body));
    ASSERT_EQ(r.rc, 0);
    ASSERT_EQ(r.status, 200) << r.body;
    const std::string done = "data: [DONE]\n\n";
    ASSERT_GE(r.body.size(), done.size());
    EXPECT_EQ(r.body.substr(r.body.size() - done.size()), done);
    // Every event is exactly "data: <one-line JSON>\n\n".
    size_t pos = 0, events = 0;
    std::string text;
    bool saw_usage = false, saw_finish = false;
    while (pos < r.body.size()) {
      ASSERT_EQ(r.body.compare(pos, 6, "data: "), 0) << "at byte " << pos << ": " << r.body.substr(pos, 40);
      const size_t end = r.body.find("\n\n", pos);
      ASSERT_NE(end, std::string::npos);
      const std::string payload = r.body.substr(pos + 6, end - pos - 6);
      ASSERT_EQ(payload.find('\n'), std::string::npos);
      pos = end + 2;
      ++events;
      if (payload == "[DONE]") {
        EXPECT_EQ(pos, r.body.size()) << "bytes after [DONE]";
        break;
      }
      const json j = json::parse(payload);
      EXPECT_EQ(j["object"], chat ? "chat.completion.chunk" : "text_completion");
      EXPECT_TRUE(j["id"].get<std::string>().rfind(chat ? "chatcmpl-" : "cmpl-", 0) == 0);
      if (j["usage"].is_object()) {
        saw_usage = true;
        EXPECT_TRUE(j["choices"].empty());
        EXPECT_EQ(j["usage"]["completion_tokens"], 24);
        continue;
      }
      EXPECT_TRUE(j["usage"].is_null());  // include_usage: null until the last chunk
      const json& c = j["choices"][0];
      text += chat ? c["delta"].value("content", "") : c["text"].get<std::string>();
      if (!c["finish_reason"].is_null()) {
        saw_finish = true;
        EXPECT_EQ(c["finish_reason"], "length");
      }
    }
    EXPECT_TRUE(saw_usage);
    EXPECT_TRUE(saw_finish);
    EXPECT_GT(events, 3u);
    // The same request unstreamed gives the same text.
    body.erase("stream");
    body.erase("stream_options");
    auto whole = curl(dir, chat ? "chat-whole" : "completion-whole", post(url(path), body));
    ASSERT_EQ(whole.status, 200) << whole.body;
    const json w = json::parse(whole.body);
    EXPECT_EQ(chat ? w["choices"][0]["message"]["content"].get<std::string>() : w["choices"][0]["text"].get<std::string>(), text);
  }
}

TEST_F(E2eHttp, ErrorsHaveOpenAisShapeAndStatus) {
  const std::string dir = fresh_dir("http-errors");
  auto expect_error = [&](const std::string& name, const CurlResult& r, int status, const std::string& param) {
    EXPECT_EQ(r.status, status) << name << ": " << r.body;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << name << ": " << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    if (param.empty()) EXPECT_TRUE(j["error"]["param"].is_null()) << name;
    else EXPECT_EQ(j["error"]["param"], param) << name;
  };
  expect_error("bad json", curl(dir, "bad-json", {"-H", "Content-Type: application/json", "-d", "{oops", url("/v1/completions")}), 400, "");
  expect_error("temperature", curl(dir, "temp", post(url("/v1/completions"), {{"prompt", "x"}, {"temperature", "hot"}})), 400, "temperature");
  expect_error("top_p range", curl(dir, "top-p", post(url("/v1/completions"), {{"prompt", "x"}, {"top_p", 3}})), 400, "top_p");
  expect_error("max_tokens", curl(dir, "max-tokens", post(url("/v1/completions"), {{"prompt", "x"}, {"max_tokens", 100000}})), 400, "max_tokens");
  expect_error("n", curl(dir, "n", post(url("/v1/chat/completions"), {{"messages", json::array({json{{"role", "user"}, {"content", "x"}}})}, {"n", 3}})), 400, "n");
  expect_error("messages", curl(dir, "messages", post(url("/v1/chat/completions"), {{"prompt", "x"}})), 400, "messages");
  expect_error("model", curl(dir, "model", post(url("/v1/completions"), {{"prompt", "x"}, {"model", "gpt-4o"}})), 404, "model");
  expect_error("route", curl(dir, "route", {url("/v1/nothing-here")}), 404, "");
  auto models = curl(dir, "models", {url("/v1/models")});
  ASSERT_EQ(models.status, 200);
  const json m = json::parse(models.body);
  EXPECT_EQ(m["object"], "list");
  EXPECT_EQ(m["data"][0]["id"], "stories260K");
  EXPECT_EQ(curl(dir, "model-one", {url("/v1/models/stories260K")}).status, 200);
  expect_error("model one", curl(dir, "model-missing", {url("/v1/models/nope")}), 404, "model");
  auto health = curl(dir, "health", {url("/health")});
  EXPECT_EQ(health.status, 200);
  EXPECT_EQ(json::parse(health.body)["status"], "ok");
}

TEST_F(E2eHttp, MetricsParseAndCountersMove) {
  const std::string dir = fresh_dir("http-metrics");
  const int port = server_->http_port();
  const auto before = scrape(port);
  EXPECT_EQ(metric(before, "tandem_ready"), 1);
  auto r = curl(dir, "one", post(url("/v1/completions"), {{"prompt", "Once"}, {"max_tokens", 10}, {"ignore_eos", true}}));
  ASSERT_EQ(r.status, 200) << r.body;
  auto bad = curl(dir, "bad", post(url("/v1/completions"), {{"prompt", "x"}, {"temperature", -1}}));
  ASSERT_EQ(bad.status, 400);
  const auto after = scrape(port);
  const std::map<std::string, std::string> ok = {{"api", "http"}, {"outcome", "length"}}, invalid = {{"api", "http"}, {"outcome", "invalid"}};
  EXPECT_EQ(metric(after, "tandem_requests_total", ok), metric(before, "tandem_requests_total", ok) + 1);
  EXPECT_EQ(metric(after, "tandem_requests_total", invalid), metric(before, "tandem_requests_total", invalid) + 1);
  EXPECT_GE(metric(after, "tandem_generation_tokens_total"), metric(before, "tandem_generation_tokens_total") + 10);
  EXPECT_GT(metric(after, "tandem_prompt_tokens_total"), metric(before, "tandem_prompt_tokens_total"));
  EXPECT_EQ(metric(after, "tandem_time_to_first_token_seconds_count"), metric(before, "tandem_time_to_first_token_seconds_count") + 1);
  EXPECT_GT(metric(after, "tandem_target_step_seconds_count"), metric(before, "tandem_target_step_seconds_count"));
  EXPECT_GT(metric(after, "tandem_speculation_drafted_tokens_total", {{"mode", "pearl"}}), 0);
  EXPECT_EQ(metric(after, "tandem_kv_slots", {{"state", "free"}}) + metric(after, "tandem_kv_slots", {{"state", "used"}}), 8);
}

TEST_F(E2eHttp, ThousandRequestsAtConcurrency16NoneLostRssBounded) {
  const pid_t rank0 = server_->rank_pid(0);
  ASSERT_GT(rank0, 0);
  rpc::BenchOptions b;
  b.http_url = "http://127.0.0.1:" + std::to_string(server_->http_port());
  b.requests = 200;
  b.concurrency = 16;
  b.max_tokens = 4;
  b.prompts = rpc::builtin_prompts();
  auto warm = rpc::run_bench(b);
  ASSERT_TRUE(warm.ok()) << warm.error().message;
  ASSERT_EQ(warm->failed, 0);
  const long rss0 = rss_kib(rank0);
  b.requests = 1000;
  auto r = rpc::run_bench(b);
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->succeeded, 1000);
  EXPECT_EQ(r->failed, 0);
  for (const auto& [code, n] : r->errors) ADD_FAILURE() << n << " × " << code;
  EXPECT_EQ(r->completion_tokens, 4000);
  const long rss1 = rss_kib(rank0);
  // Growth over 1,000 requests stays under 32 MiB (a leak of one stream's state each would show).
  EXPECT_LT(rss1 - rss0, 32 * 1024) << "rank 0 RSS " << rss0 << " -> " << rss1 << " KiB";
  // Nothing is left holding a slot.
  EXPECT_TRUE(poll_metrics(server_->http_port(), [](const auto& s) { return metric(s, "tandem_active_sequences") == 0; }));
}

// A server that is slow enough to hold requests, with one slot, a queue of one, API keys, and a
// start-up delay: 503 while starting, 401 without the key, 429 when full, a disconnect frees the slot.
TEST(E2eHttpLimits, StartingKeysQueueFullAndDisconnect) {
  const std::string dir = fresh_dir("http-limits-files");
  const std::string key = "sk-test-5f3a9c";
  write_file(dir + "/keys", "# test keys\n" + key + "\nsecond-key\n");
  ServerConfig c;
  c.model = slow_model();
  c.max_seqs = 1;
  c.max_queue = 1;
  c.http = true;
  c.warmup = false;
  c.startup_delay = 4;
  c.wait_serving = false;
  c.client_security.api_key = key;
  c.extra = {"--api-key-file", dir + "/keys"};
  Server s(c, "http-limits");
  ASSERT_TRUE(s.up());
  const std::string base = "http://127.0.0.1:" + std::to_string(s.http_port());
  // Starting: /health and /v1 answer 503.
  auto h = curl(dir, "health-starting", {base + "/health"});
  EXPECT_EQ(h.status, 503) << h.body;
  EXPECT_EQ(json::parse(h.body)["status"], "starting");
  auto early = curl(dir, "early", post(base + "/v1/completions", {{"prompt", "x"}}, key));
  EXPECT_EQ(early.status, 503) << early.body;
  ASSERT_EQ(s.client().wait_until_serving(60s, 50ms), rpc::Health::Serving) << s.log();
  EXPECT_EQ(curl(dir, "health-up", {base + "/health"}).status, 200);
  // Keys: none, wrong, right; gRPC too.
  EXPECT_EQ(curl(dir, "no-key", post(base + "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}})).status, 401);
  EXPECT_EQ(curl(dir, "wrong-key", post(base + "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, "sk-wrong")).status, 401);
  EXPECT_EQ(curl(dir, "right-key", post(base + "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, key)).status, 200);
  EXPECT_EQ(curl(dir, "second-key", post(base + "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, "second-key")).status, 200);
  {
    rpc::Client anonymous(s.addr());
    v1::ServerInfo info;
    EXPECT_EQ(anonymous.server_info(info).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    rpc::ClientSecurity wrong;
    wrong.api_key = "sk-wrong";
    EXPECT_EQ(rpc::Client(s.addr(), wrong).server_info(info).error_code(), grpc::StatusCode::UNAUTHENTICATED);
    EXPECT_TRUE(s.client().server_info(info).ok());
  }
  // Full: one long stream holds the slot, one waits in the queue, the third gets 429.
  const json long_body = {{"prompt", "Once upon a time"}, {"max_tokens", 3000}, {"ignore_eos", true}, {"stream", true}};
  std::vector<std::string> hdr = {"-H", "Authorization: Bearer " + key};
  auto bg = [&](const std::string& name) {
    std::vector<std::string> argv = {TANDEM_CURL, "-sS", "-N", "-o", dir + "/" + name + ".body"};
    for (auto& a : post(base + "/v1/completions", long_body, key)) argv.push_back(a);
    return spawn(argv, dir + "/" + name + ".log");
  };
  const pid_t a = bg("holder");
  ASSERT_TRUE(poll_metrics(s.http_port(), [](const auto& m) { return metric(m, "tandem_active_sequences") == 1; }));
  const pid_t b = bg("queued");
  ASSERT_TRUE(poll_metrics(s.http_port(), [](const auto& m) { return metric(m, "tandem_queue_depth") == 1; }));
  auto full = curl(dir, "full", post(base + "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, key));
  EXPECT_EQ(full.status, 429) << full.body;
  EXPECT_EQ(json::parse(full.body, nullptr, false).value("error", json::object()).value("code", ""), "queue_full");
  // Both clients go away mid-stream: the slot and the queue empty, counted as cancelled.
  kill(a, SIGKILL);
  kill(b, SIGKILL);
  (void)wait_exit(a, 10s);
  (void)wait_exit(b, 10s);
  EXPECT_TRUE(poll_metrics(s.http_port(), [](const auto& m) {
    return metric(m, "tandem_active_sequences") == 0 && metric(m, "tandem_queue_depth") == 0 &&
           metric(m, "tandem_requests_total", {{"api", "http"}, {"outcome", "cancelled"}}) >= 2;
  })) << s.log();
  // And the freed slot serves the next request.
  EXPECT_EQ(curl(dir, "after", post(base + "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, key)).status, 200);
  // Keys never reach the log.
  EXPECT_EQ(s.log().find(key), std::string::npos);
  EXPECT_EQ(s.log().find("second-key"), std::string::npos);
}

TEST(E2eHttpTls, ClientsTrustingTheCaConnectOthersFail) {
  const std::string dir = fresh_dir("http-tls-files");
  const int rc = run({TANDEM_BASH, "-c",
                      "set -e; cd " + dir + "; "
                      "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=tandem-test-ca; "
                      "openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=localhost; "
                      "printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > san.ext; "
                      "openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 -extfile san.ext; "
                      "openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other-ca.pem -days 2 -subj /CN=someone-else"},
                     dir + "/openssl.log", 60s);
  ASSERT_EQ(rc, 0) << read_text(dir + "/openssl.log");
  const std::string key = "tls-test-key-77";
  write_file(dir + "/keys", key + "\n");
  ServerConfig c;
  c.model = testdata_model("stories260K.gguf");
  c.http = true;
  c.warmup = false;
  c.client_security.tls = true;
  c.client_security.ca_pem = read_text(dir + "/ca.pem");
  c.client_security.api_key = key;
  c.extra = {"--tls-cert", dir + "/server.pem", "--tls-key", dir + "/server.key", "--api-key-file", dir + "/keys"};
  Server s(c, "http-tls");
  ASSERT_TRUE(s.up());
  const std::string base = "https://127.0.0.1:" + std::to_string(s.http_port());
  // HTTPS: trusted with the CA; refused without it or with another CA.
  auto ok = curl(dir, "trusted", {"--cacert", dir + "/ca.pem", base + "/health"});
  EXPECT_EQ(ok.rc, 0);
  EXPECT_EQ(ok.status, 200);
  auto gen = curl(dir, "trusted-gen", {"--cacert", dir + "/ca.pem", "-H", "Authorization: Bearer " + key, "-H",
                                       "Content-Type: application/json", "-d", R"({"prompt":"Once","max_tokens":5})",
                                       base + "/v1/completions"});
  EXPECT_EQ(gen.status, 200) << gen.body;
  EXPECT_EQ(curl(dir, "untrusted", {base + "/health"}).rc, 60);  // curl: peer certificate cannot be authenticated
  EXPECT_EQ(curl(dir, "other-ca", {"--cacert", dir + "/other-ca.pem", base + "/health"}).rc, 60);
  EXPECT_NE(curl(dir, "plain", {"http://127.0.0.1:" + std::to_string(s.http_port()) + "/health"}).status, 200);
  auto nokey = curl(dir, "trusted-nokey", {"--cacert", dir + "/ca.pem", "-d", R"({"prompt":"x"})", base + "/v1/completions"});
  EXPECT_EQ(nokey.status, 401);
  // gRPC over TLS: the bundled client with --tls-ca and --api-key; without TLS it cannot talk.
  v1::ServerInfo info;
  EXPECT_TRUE(s.client().server_info(info).ok());
  rpc::ClientSecurity plain;
  plain.api_key = key;
  EXPECT_FALSE(rpc::Client(s.addr(), plain).server_info(info, 3s).ok());
  rpc::ClientSecurity other = c.client_security;
  other.ca_pem = read_text(dir + "/other-ca.pem");
  EXPECT_FALSE(rpc::Client(s.addr(), other).server_info(info, 3s).ok());
  const int cli = run({tandem_bin(), "client", "generate", "--addr", s.addr(), "--tls-ca", dir + "/ca.pem", "--api-key", key,
                       "--prompt", "Once", "--max-tokens", "5"},
                      dir + "/client.log", 60s);
  EXPECT_EQ(cli, 0) << read_text(dir + "/client.log");
  const int wrong = run({tandem_bin(), "client", "info", "--addr", s.addr(), "--tls-ca", dir + "/ca.pem", "--api-key", "nope"},
                        dir + "/client-wrong.log", 60s);
  EXPECT_NE(wrong, 0);
  EXPECT_NE(read_text(dir + "/client-wrong.log").find("UNAUTHENTICATED"), std::string::npos) << read_text(dir + "/client-wrong.log");
  EXPECT_EQ(s.log().find(key), std::string::npos);
}
