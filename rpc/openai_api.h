// OpenAI's HTTP API as tandem speaks it: request bodies of /v1/completions and
// /v1/chat/completions -> tandem.v1 GenerateRequest (then validated by convert.h like a gRPC
// request), engine events -> response bodies and server-sent-event chunks, errors -> OpenAI's
// {"error": {...}} shape with the HTTP status. Pure functions over JSON: no server, no MPI.
//
// Supported: stream, stream_options.include_usage, max_tokens / max_completion_tokens,
// temperature, top_p, seed, stop, n = 1, logprobs / top_logprobs, echo (completions), user, tools
// and chat_template_kwargs (rendered by the chat template); tandem's own knobs keep tandem.v1's
// names: top_k, min_p, repetition_penalty, penalty_last_n, ignore_eos, stop_token_ids,
// speculation ("auto" | "off" | "sd" | "pearl"), draft_len, and return_token_ids (each choice
// then also carries "token_ids": the ids its text came from, as vLLM does). Unknown fields are ignored, as
// OpenAI-compatible servers do; fields whose meaning tandem cannot honour (n > 1, logit_bias,
// suffix, best_of > 1, a forced tool_choice, a JSON response_format) are refused naming the field.
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <string_view>

#include "decode/request.h"
#include "rpc/tandem.pb.h"
#include "shard/result.h"
#include "shard/tokenizer/tokenizer.h"

namespace tandem::rpc::openai {

enum class Endpoint { Completions, Chat };

struct ApiError {
  int status = 400;
  std::string message;
  std::string type = "invalid_request_error";
  std::string param;  // the offending field, "" -> null
  std::string code;   // "" -> null
};
// {"error": {"message", "type", "param", "code"}}
std::string error_body(const ApiError& e);
// A tandem Error (from convert.h or Engine::submit) -> status by its code (400 / 429 / 503 / 500)
// and the request field its message names, as `ep`'s clients call it.
ApiError api_error(const Error& e, Endpoint ep);
ApiError missing_key_error(bool key_given);
ApiError model_not_found(std::string_view asked, std::string_view served);

struct Request {
  Endpoint endpoint = Endpoint::Completions;
  v1::GenerateRequest gen;  // prompt (text, ids or chat) and every generation parameter
  std::string model;        // as sent; "" when absent
  bool stream = false, include_usage = false;
  bool logprobs = false;    // report per-token logprobs
  int top_logprobs = 0;     // and this many alternatives per position
  bool echo = false;        // completions: prepend the prompt text to the output
  std::string echo_text;
  std::string user;
  bool return_token_ids = false;  // tandem extra: each choice also carries the generated token ids
};
// Parses and type-checks a body. Ranges that tandem.v1 defines (temperature >= 0, …) are checked
// later by to_engine_request, whose errors api_error() maps.
std::optional<ApiError> parse_request(std::string_view body, Endpoint ep, Request& out);

// What every response of one request shares.
struct ResponseContext {
  std::string id;     // "cmpl-…" / "chatcmpl-…"
  std::string model;  // the served model's name
  int64_t created = 0;
  const Tokenizer* tok = nullptr;  // token texts of logprobs
};

// Per-stream state: where the next text starts (completions' text_offset).
struct StreamState {
  size_t text_offset = 0;
};

// "stop" | "length"; null for a request that did not finish normally.
nlohmann::json finish_reason_json(FinishReason r);
// {prompt_tokens, completion_tokens, total_tokens, speculation: {mode, drafted_tokens, accepted_tokens}}
nlohmann::json usage_json(const Usage& u);

// The stream's first chunk (chat: the assistant role; completions: the echoed prompt, if any);
// null when the endpoint sends none.
nlohmann::json first_chunk(const Request& r, const ResponseContext& c, StreamState& st);
// One engine event's text and logprobs as a chunk (null when it carries neither); a final event's
// finish reason goes in a chunk of its own (finish_chunk), then usage (usage_chunk) when asked.
nlohmann::json event_chunk(const Request& r, const ResponseContext& c, const GenerationEvent& e, StreamState& st);
nlohmann::json finish_chunk(const Request& r, const ResponseContext& c, FinishReason reason);
nlohmann::json usage_chunk(const Request& r, const ResponseContext& c, const Usage& u);

// The whole non-streamed response from every event of the request (the last one final).
nlohmann::json full_response(const Request& r, const ResponseContext& c, const std::vector<GenerationEvent>& events);

// Server-sent-event framing: "data: <json>\n\n"; the stream ends with kDone.
std::string sse_data(const nlohmann::json& j);
inline constexpr std::string_view kDone = "data: [DONE]\n\n";
// JSON text, invalid UTF-8 replaced (token pieces may split a character).
std::string dump(const nlohmann::json& j);

}  // namespace tandem::rpc::openai
