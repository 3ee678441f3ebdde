// `tandem client bench`: N Generate calls (or, with --http, streamed /v1/completions requests) at
// concurrency C against a running server, and the
// latency figures serving is judged by. Definitions (all client-side, per request):
//   TTFT  time from sending the request to the first message carrying tokens;
//   TPOT  (end-to-end − TTFT) / (completion tokens − 1), the mean time per output token after
//         the first;
//   ITL   gaps between successive token-carrying messages; a message carrying k tokens (a
//         speculative block) counts as k intervals of gap / k;
//   E2E   time from sending the request to the end of the stream.
// Throughput is completion tokens of all successful requests / wall time of the whole run.
#pragma once
#include <nlohmann/json.hpp>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "rpc/grpc_client.h"
#include "shard/result.h"

namespace tandem::rpc {

struct BenchOptions {
  std::string addr = "127.0.0.1:50051";
  int requests = 32;
  int concurrency = 4;
  std::vector<std::string> prompts;  // used round-robin
  int max_tokens = 64;
  float temperature = 0;
  uint64_t seed = 0;           // request i uses seed + i
  v1::Speculation speculation = v1::SPECULATION_AUTO;
  bool ignore_eos = true;      // every request generates max_tokens, so runs compare
  int timeout_s = 300;         // per request
  ClientSecurity security;     // gRPC: TLS and API key
  // Non-empty: drive the OpenAI HTTP API at this base URL (POST /v1/completions, streamed)
  // instead of gRPC at `addr`; the same prompts, parameters and figures.
  std::string http_url;
  std::string http_ca_path;
};

struct LatencyStats {
  int n = 0;
  double mean = 0, min = 0, p50 = 0, p90 = 0, p99 = 0, max = 0;
};
// Percentiles by linear interpolation between closest ranks; all zero for an empty sample.
LatencyStats summarize(std::vector<double> samples);

struct BenchReport {
  int requests = 0, succeeded = 0, failed = 0;
  std::map<std::string, int> errors;  // status code name -> count
  int64_t prompt_tokens = 0, completion_tokens = 0, drafted = 0, accepted = 0;
  double wall_s = 0, output_tok_s = 0, requests_per_s = 0;
  LatencyStats ttft_ms, tpot_ms, itl_ms, e2e_ms, queue_ms;
};

// Per-request timing -> the report's latency samples (the definitions above).
void add_sample(BenchReport& r, const GenerateResult& g, std::vector<double>& ttft, std::vector<double>& tpot,
                std::vector<double>& itl, std::vector<double>& e2e);

std::vector<std::string> builtin_prompts();
// One prompt per line; empty lines skipped; "\n" inside a line stands for a newline.
Result<std::vector<std::string>> read_prompts_file(const std::string& path);

Result<BenchReport> run_bench(const BenchOptions& o);
void print_report(const BenchReport& r, const BenchOptions& o, std::FILE* out);
nlohmann::json to_json(const BenchReport& r, const BenchOptions& o);

}  // namespace tandem::rpc
