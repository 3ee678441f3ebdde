#include "rpc/client_bench.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <numeric>
#include <thread>

#include "rpc/convert.h"
#include "rpc/http_client.h"

namespace tandem::rpc {

LatencyStats summarize(std::vector<double> v) {
  LatencyStats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    const double x = p * static_cast<double>(v.size() - 1);
    const size_t i = static_cast<size_t>(x);
    const double f = x - static_cast<double>(i);
    return i + 1 < v.size() ? v[i] * (1 - f) + v[i + 1] * f : v[i];
  };
  s.n = static_cast<int>(v.size());
  s.mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  s.min = v.front();
  s.max = v.back();
  s.p50 = pct(0.50);
  s.p90 = pct(0.90);
  s.p99 = pct(0.99);
  return s;
}

void add_sample(BenchReport& r, const GenerateResult& g, std::vector<double>& ttft, std::vector<double>& tpot,
                std::vector<double>& itl, std::vector<double>& e2e) {
  const int n = static_cast<int>(g.ids.size());
  r.completion_tokens += n;
  if (g.has_final) {
    r.prompt_tokens += g.final.usage().prompt_tokens();
    r.drafted += g.final.usage().drafted_tokens();
    r.accepted += g.final.usage().accepted_tokens();
  }
  e2e.push_back(g.total_ms);
  if (n == 0) return;
  ttft.push_back(g.ttft_ms);
  if (n > 1) tpot.push_back((g.total_ms - g.ttft_ms) / (n - 1));
  for (size_t i = 1; i < g.arrivals.size(); ++i) {
    const auto [t, k] = g.arrivals[i];
    const double gap = t - g.arrivals[i - 1].first;
    for (int j = 0; j < k; ++j) itl.push_back(gap / k);
  }
}

std::vector<std::string> builtin_prompts() {
  // Short to long, in the register of the small TinyStories models the tests and demo use.
  return {
      "Once upon a time",
      "Lily and Ben went to the park",
      "The little dog was sad because",
      "Tom had a red ball. He liked to",
      "One day, a girl named Sue found a big box in the garden. She opened it and",
      "There was a small bird who lived in a tall tree. Every morning the bird sang a happy song. One day",
      "Mom said, \"Do not touch the hot stove.\" But the boy was curious, so",
      "The sun was shining and the children were playing outside. Suddenly, a loud noise came from the "
      "forest. Everyone stopped and looked at the trees. A big bear walked out and",
  };
}

Result<std::vector<std::string>> read_prompts_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) return make_error("--prompts-file {}: cannot open", path);
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    std::string p;
    for (size_t i = 0; i < line.size(); ++i) {
      if (line[i] == '\\' && i + 1 < line.size() && line[i + 1] == 'n') {
        p += '\n';
        ++i;
      } else {
        p += line[i];
      }
    }
    out.push_back(std::move(p));
  }
  if (out.empty()) return make_error("--prompts-file {}: no prompts in it (one per line)", path);
  return out;
}

Result<BenchReport> run_bench(const BenchOptions& o) {
  if (o.requests < 1) return make_error("--requests must be at least 1 (got {})", o.requests);
  if (o.concurrency < 1) return make_error("--concurrency must be at least 1 (got {})", o.concurrency);
  if (o.prompts.empty()) return make_error("no prompts to send");
  const bool http = !o.http_url.empty();
  const HttpEndpoint endpoint{o.http_url, o.http_ca_path, o.security.api_key};
  Client client(http ? std::string("127.0.0.1:1") : o.addr, o.security);
  // Fail fast with a clear message when there is nothing to talk to (or the key is refused).
  if (http) {
    std::string body;
    auto st = HttpClient(endpoint).get("/v1/models", body);
    if (!st) return make_error("{}: {}", o.http_url, st.error().message);
    if (*st != 200) return make_error("{}: GET /v1/models answered HTTP {}: {}", o.http_url, *st, body);
  } else {
    v1::ServerInfo info;
    if (auto st = client.server_info(info, std::chrono::seconds(10)); !st.ok())
      return make_error("{}: {} ({})", o.addr, st.error_message(), code_name(st.error_code()));
  }

  BenchReport r;
  r.requests = o.requests;
  std::vector<double> ttft, tpot, itl, e2e, queue;
  std::mutex mu;
  std::atomic<int> next{0};
  auto http_worker = [&] {
    HttpClient hc(endpoint);  // one connection per worker: httplib clients are not shared between threads
    while (true) {
      const int i = next++;
      if (i >= o.requests) return;
      nlohmann::json body = {{"prompt", o.prompts[static_cast<size_t>(i) % o.prompts.size()]},
                             {"max_tokens", o.max_tokens},
                             {"temperature", o.temperature},
                             {"seed", o.seed + static_cast<uint64_t>(i)},
                             {"ignore_eos", o.ignore_eos},
                             {"speculation", spec_mode_name(from_proto(o.speculation))}};
      GenerateResult g;
      std::string code;
      const Status st = hc.stream("/v1/completions", body, g, &code);
      std::lock_guard lk(mu);
      if (!st) {
        ++r.failed;
        ++r.errors[code.empty() ? "error" : code];
        continue;
      }
      ++r.succeeded;
      add_sample(r, g, ttft, tpot, itl, e2e);
    }
  };
  auto worker = [&] {
    while (true) {
      const int i = next++;
      if (i >= o.requests) return;
      v1::GenerateRequest req;
      req.set_request_id(fmt::format("bench-{}", i));
      req.set_text(o.prompts[static_cast<size_t>(i) % o.prompts.size()]);
      req.set_max_tokens(o.max_tokens);
      req.set_temperature(o.temperature);
      req.set_seed(o.seed + static_cast<uint64_t>(i));
      req.set_ignore_eos(o.ignore_eos);
      req.set_speculation(o.speculation);
      GenerateResult g;
      const grpc::Status st = client.generate(req, g, {}, std::chrono::seconds(o.timeout_s));
      std::lock_guard lk(mu);
      if (!st.ok() || !g.has_final || g.final.finish_reason() == v1::FINISH_REASON_ERROR) {
        ++r.failed;
        ++r.errors[st.ok() ? "FINISH_REASON_ERROR" : code_name(st.error_code())];
        continue;
      }
      ++r.succeeded;
      add_sample(r, g, ttft, tpot, itl, e2e);
      queue.push_back(g.final.usage().queue_ms());
    }
  };
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < std::min(o.concurrency, o.requests); ++c) {
    if (http) threads.emplace_back(http_worker);
    else threads.emplace_back(worker);
  }
  for (auto& t : threads) t.join();
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.output_tok_s = r.completion_tokens / std::max(1e-9, r.wall_s);
  r.requests_per_s = r.succeeded / std::max(1e-9, r.wall_s);
  r.ttft_ms = summarize(ttft);
  r.tpot_ms = summarize(tpot);
  r.itl_ms = summarize(itl);
  r.e2e_ms = summarize(e2e);
  r.queue_ms = summarize(queue);
  return r;
}

void print_report(const BenchReport& r, const BenchOptions& o, std::FILE* out) {
  fmt::print(out, "requests {} (ok {}, failed {}) at concurrency {}, max_tokens {}, {} prompts, over {}\n", r.requests,
             r.succeeded, r.failed, o.concurrency, o.max_tokens, o.prompts.size(),
             o.http_url.empty() ? "gRPC " + o.addr : "HTTP " + o.http_url);
  for (const auto& [code, n] : r.errors) fmt::print(out, "  errors: {} × {}\n", n, code);
  fmt::print(out, "wall {:.2f} s; output {} tokens, {:.1f} tok/s; {:.2f} requests/s; prompt tokens {}\n", r.wall_s,
             r.completion_tokens, r.output_tok_s, r.requests_per_s, r.prompt_tokens);
  if (r.drafted > 0)
    fmt::print(out, "speculation: {} draft tokens checked, {} accepted ({:.3f})\n", r.drafted, r.accepted,
               double(r.accepted) / r.drafted);
  fmt::print(out, "{:<14} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n", "latency (ms)", "mean", "p50", "p90", "p99", "min", "max");
  auto row = [&](const char* name, const LatencyStats& s) {
    fmt::print(out, "{:<14} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.3f} {:>9.3f}\n", name, s.mean, s.p50, s.p90, s.p99,
               s.min, s.max);
  };
  row("TTFT", r.ttft_ms);
  row("TPOT", r.tpot_ms);
  row("ITL", r.itl_ms);
  row("E2E", r.e2e_ms);
  row("queue (server)", r.queue_ms);
}

nlohmann::json to_json(const BenchReport& r, const BenchOptions& o) {
  auto stats = [](const LatencyStats& s) {
    return nlohmann::json{{"n", s.n}, {"mean", s.mean}, {"min", s.min}, {"p50", s.p50},
                          {"p90", s.p90}, {"p99", s.p99}, {"max", s.max}};
  };
  nlohmann::json errors = nlohmann::json::object();
  for (const auto& [code, n] : r.errors) errors[code] = n;
  return {
      {"addr", o.http_url.empty() ? o.addr : o.http_url},
      {"api", o.http_url.empty() ? "grpc" : "http"},
      {"requests", r.requests},
      {"succeeded", r.succeeded},
      {"failed", r.failed},
      {"errors", errors},
      {"concurrency", o.concurrency},
      {"max_tokens", o.max_tokens},
      {"temperature", o.temperature},
      {"mode", v1::Speculation_Name(o.speculation)},
      {"prompts", o.prompts.size()},
      {"prompt_tokens", r.prompt_tokens},
      {"completion_tokens", r.completion_tokens},
      {"drafted", r.drafted},
      {"accepted", r.accepted},
      {"acceptance", r.drafted ? double(r.accepted) / r.drafted : 0.0},
      {"wall_s", r.wall_s},
      {"decode_tok_s", r.output_tok_s},
      {"requests_per_s", r.requests_per_s},
      {"ttft_ms", stats(r.ttft_ms)},
      {"tpot_ms", stats(r.tpot_ms)},
      {"itl_ms", stats(r.itl_ms)},
      {"e2e_ms", stats(r.e2e_ms)},
      {"queue_ms", stats(r.queue_ms)},
  };
}

}  // namespace tandem::rpc
