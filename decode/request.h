// A generation request as the engine sees it, and the channel its results stream back through.
// Producers (gRPC threads, `tandem generate`) and the engine thread meet only here: a request is
// pushed into the engine's queue; events come back through a RequestStream, which is thread-safe.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "decode/sampling.h"
#include "decode/stop_conditions.h"

namespace tandem {

enum class SpecMode { Auto, Off, Sd, Pearl };

const char* spec_mode_name(SpecMode m);
std::optional<SpecMode> parse_spec_mode(const std::string& s);  // auto|off|sd|pearl

struct GenerationRequest {
  std::string id;
  std::vector<int32_t> prompt;  // token ids, BOS included when wanted
  SamplingParams sampling;
  StopParams stop;
  SpecMode speculation = SpecMode::Auto;
  int draft_len = 0;  // 0: the server's setting
  bool logprobs = false;
  int top_logprobs = 0;  // also report the n most likely tokens at each position (implies logprobs)
};

struct Usage {
  int prompt_tokens = 0;
  int completion_tokens = 0;
  int drafted = 0;   // draft tokens checked against the target (those after a rejection are not)
  int accepted = 0;  // of those, accepted
  double ttft_ms = 0;
  double total_ms = 0;
  SpecMode mode = SpecMode::Off;  // the mode the request was decoded in (never Auto)
};

struct TokenLogprob {
  int32_t id = 0;
  float logprob = 0;
};

// One message of the stream: newly committed tokens and the text they completed; the last one
// carries the finish reason and usage.
struct GenerationEvent {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;  // per id, when requested
  std::vector<std::vector<TokenLogprob>> top_logprobs;  // per id, the top_logprobs most likely, when requested
  std::string text;
  bool final = false;
  FinishReason reason = FinishReason::kNone;
  std::string error;  // reason == kError
  Usage usage;
};

class RequestStream {
 public:
  // Consumer side. Blocks up to `timeout`; nullopt when nothing arrived in time.
  std::optional<GenerationEvent> next(std::chrono::milliseconds timeout);
  // Consumer side: stop this request; the engine frees its slot at its next step.
  void cancel() { cancelled_.store(true); }
  bool cancelled() const { return cancelled_.load(); }

  // Engine side.
  void push(GenerationEvent e);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<GenerationEvent> q_;
  std::atomic<bool> cancelled_{false};
};

}  // namespace tandem
