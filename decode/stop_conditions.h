// When generation stops and which text may be streamed: max tokens, stop strings (which may span
// several tokens and are never emitted), stop token ids, and end-of-generation tokens.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "shard/result.h"

namespace tandem {

enum class FinishReason {
  kNone,       // still generating
  kLength,     // max_tokens reached
  kStop,       // a stop string or a stop token id
  kEos,        // an end-of-generation token (unless ignore_eos)
  kCancelled,  // set by the engine (client went away), never by StopState
  kError,      // set by the engine, never by StopState
};

// "none", "length", "stop", "eos", "cancelled", "error".
std::string_view to_string(FinishReason reason);

struct StopParams {
  int max_tokens = 0;                   // generated tokens, stop token included; 0 = no limit
  std::vector<std::string> stop;        // non-empty, valid UTF-8
  std::vector<int32_t> stop_token_ids;  // finish as kStop; the token's text is not emitted
  bool ignore_eos = false;              // treat end-of-generation tokens as ordinary text
};

// Clear messages for a negative max_tokens, an empty or non-UTF-8 stop string, a negative id.
Status validate(const StopParams& params);

struct StopUpdate {
  std::string text;                         // safe to stream now
  FinishReason finish = FinishReason::kNone;
  bool finished() const { return finish != FinishReason::kNone; }
};

// Fed one generated token at a time. Text that could be the beginning of a stop string is held
// back until it cannot be; a completed stop string ends generation and neither it nor anything
// after it is emitted. Checks per token, in order: stop token id, end-of-generation, stop string
// (the earliest-starting one completed by this token), max_tokens. A finishing update carries all
// text still held (a partial stop string that never completed is ordinary text).
class StopState {
 public:
  explicit StopState(StopParams params);

  // `piece`: the token's decoded text, complete UTF-8 (from the streaming detokenizer).
  // After the finishing update, further calls return {"", reason} and count nothing.
  StopUpdate push(int32_t id, bool is_eog, std::string_view piece);
  // Flushes held text when generation ends for another reason (cancelled, context full); the
  // engine records that reason itself (reason() is unchanged).
  std::string finish();

  bool finished() const { return reason_ != FinishReason::kNone; }
  FinishReason reason() const { return reason_; }
  int n_tokens() const { return n_tokens_; }

 private:
  StopParams params_;
  std::string held_;
  int n_tokens_ = 0;
  FinishReason reason_ = FinishReason::kNone;
};

}  // namespace tandem
