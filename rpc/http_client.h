// A minimal OpenAI-API client over HTTP(S) for `tandem client bench --http` and the tests: one
// streamed completion, its server-sent events parsed as they arrive and timed like a gRPC stream
// (grpc_client.h's GenerateResult), token ids taken from tandem's `return_token_ids` extra.
#pragma once
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rpc/grpc_client.h"
#include "shard/result.h"

namespace tandem::rpc {

struct HttpEndpoint {
  std::string url;      // http://HOST:PORT or https://HOST:PORT
  std::string ca_path;  // https: the CA to trust (default: the system's)
  std::string api_key;  // sent as Authorization: Bearer
};

// Splits a server-sent-event byte stream into the payloads of its `data:` fields, one per event;
// bytes of an unfinished event stay in `buffer` for the next call.
std::vector<std::string> take_sse_events(std::string& buffer);

class HttpClient {
 public:
  explicit HttpClient(const HttpEndpoint& e);
  ~HttpClient();
  // POSTs `body` (stream forced on, usage and token ids asked for) to `path`, e.g.
  // "/v1/completions". Errors: the HTTP status and OpenAI error message, or the transport error.
  // `code` receives a short name for the failure ("HTTP 429", "connection") for reports.
  Status stream(const std::string& path, nlohmann::json body, GenerateResult& out, std::string* code = nullptr);
  // GET, body into `out`; the HTTP status, or an error when there was no response.
  Result<int> get(const std::string& path, std::string& out);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::rpc
