// The bundled client of tandem.v1 (what `tandem client` and the end-to-end tests use): a thin
// layer over the generated stubs that collects a Generate stream and measures its timing.
#pragma once
#include <grpcpp/channel.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rpc/health.grpc.pb.h"
#include "rpc/tandem.grpc.pb.h"

namespace tandem::rpc {

// A Generate stream as received.
struct GenerateResult {
  std::vector<int32_t> ids;
  std::vector<float> logprobs;
  std::string text;
  bool has_final = false;
  v1::Final final;
  // Client-side timing, milliseconds from the start of the call: first message with tokens, and
  // each message with tokens (with how many it carried), and the end of the stream.
  double ttft_ms = 0;
  std::vector<std::pair<double, int>> arrivals;
  double total_ms = 0;
};

enum class Health { Unknown, Serving, NotServing, ServiceUnknown, Unreachable };
const char* to_string(Health h);
// "INVALID_ARGUMENT", "UNAVAILABLE", ... (the names the gRPC documentation uses).
const char* code_name(grpc::StatusCode c);

// How the client proves who it talks to and who it is: TLS (trusting `ca_pem`, or the system's
// roots when empty; a client certificate for mutual TLS) and an API key sent as
// `authorization: Bearer <key>` metadata on every Tandem call.
struct ClientSecurity {
  bool tls = false;
  std::string ca_pem, cert_pem, key_pem;
  std::string api_key;
};

class Client {
 public:
  // `addr` HOST:PORT. Connects lazily (the first call waits for the connection up to its timeout).
  explicit Client(const std::string& addr, const ClientSecurity& sec = {});

  // Streams one generation. `on_message` (optional) sees each message as it arrives; returning
  // false cancels the call. timeout 0: none.
  grpc::Status generate(const v1::GenerateRequest& req, GenerateResult& out,
                        const std::function<bool(const v1::GenerateResponse&)>& on_message = {},
                        std::chrono::milliseconds timeout = std::chrono::milliseconds(0));
  grpc::Status tokenize(const v1::TokenizeRequest& req, v1::TokenizeResponse& out,
                        std::chrono::milliseconds timeout = std::chrono::seconds(30));
  grpc::Status detokenize(const v1::DetokenizeRequest& req, v1::DetokenizeResponse& out,
                          std::chrono::milliseconds timeout = std::chrono::seconds(30));
  grpc::Status render_chat(const v1::ChatPrompt& req, v1::RenderChatResponse& out,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30));
  grpc::Status model_info(v1::ModelInfo& out, std::chrono::milliseconds timeout = std::chrono::seconds(30));
  grpc::Status server_info(v1::ServerInfo& out, std::chrono::milliseconds timeout = std::chrono::seconds(30));

  // grpc.health.v1 Check of `service` ("" = the whole server). Unreachable when no connection.
  Health health(std::chrono::milliseconds timeout, const std::string& service = "");
  // Polls health until SERVING or `total` has passed; returns the last answer.
  Health wait_until_serving(std::chrono::milliseconds total, std::chrono::milliseconds interval = std::chrono::milliseconds(200));

 private:
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Tandem::Stub> stub_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
  std::string api_key_;
  void prepare(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) const;
};

}  // namespace tandem::rpc
