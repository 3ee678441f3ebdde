// Prometheus metrics of a tandem server, in the text exposition format (version 0.0.4).
//
// Two sources: the front ends record each request as it ends (outcome, client-visible latency,
// speculation counters), and the engine's live counters are read at scrape time. Names follow
// Prometheus conventions: `tandem_` prefix, `_total` counters, base units (`_seconds`).
// Thread-safe; no MPI: scrapes are answered by HTTP threads.
#pragma once
#include <map>
#include <mutex>
#include <string>
#include <string_view>

#include "decode/engine.h"
#include "decode/histogram.h"

namespace tandem::rpc {

// How a request ended, as the `outcome` label says it.
enum class Outcome { Stop, Length, Cancelled, Error, Invalid, Unauthenticated, QueueFull, Unavailable, NotFound };
const char* outcome_name(Outcome o);
Outcome outcome_of(FinishReason r);  // kEos/kStop -> Stop, kLength -> Length, ...

// One finished request as its front end saw it (times in seconds from its arrival).
struct RequestRecord {
  std::string api;  // "grpc" | "http"
  Outcome outcome = Outcome::Stop;
  double ttft_s = -1;   // first token; < 0 when none came
  double total_s = 0;
  Usage usage;
};

class Metrics {
 public:
  Metrics();
  void record(const RequestRecord& r);
  void stream_opened(std::string_view api);
  void stream_closed(std::string_view api);

  // The whole exposition. `engine` null while the server is starting (engine gauges are then 0).
  std::string render(const EngineInfo* engine, bool serving) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, std::string>, int64_t> requests_;  // (api, outcome)
  std::map<std::string, int64_t> open_streams_;
  Histogram ttft_, tpot_, e2e_;
  std::map<std::string, int64_t> drafted_, accepted_;  // by mode
  int64_t http_prompt_tokens_ = 0;
};

// --- the exposition format, for the writer above and for tests that parse it back ---
struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};
// Parses the text format (HELP/TYPE lines checked for shape, samples with labels and escapes);
// errors name the line.
Result<std::vector<Sample>> parse_exposition(std::string_view text);

}  // namespace tandem::rpc
