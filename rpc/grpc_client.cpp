#include "rpc/grpc_client.h"

#include <grpcpp/grpcpp.h>

#include <thread>

namespace tandem::rpc {
namespace {

using Clock = std::chrono::steady_clock;

void set_deadline(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  if (timeout.count() > 0) ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}

}  // namespace

const char* to_string(Health h) {
  switch (h) {
    case Health::Serving: return "SERVING";
    case Health::NotServing: return "NOT_SERVING";
    case Health::ServiceUnknown: return "SERVICE_UNKNOWN";
    case Health::Unreachable: return "UNREACHABLE";
    case Health::Unknown: break;
  }
  return "UNKNOWN";
}

const char* code_name(grpc::StatusCode c) {
  switch (c) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

namespace {

std::shared_ptr<grpc::ChannelCredentials> credentials(const ClientSecurity& sec) {
  if (!sec.tls) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions o;
  o.pem_root_certs = sec.ca_pem;  // empty: the system's roots
  o.pem_cert_chain = sec.cert_pem;
  o.pem_private_key = sec.key_pem;
  return grpc::SslCredentials(o);
}

}  // namespace

Client::Client(const std::string& addr, const ClientSecurity& sec)
    : channel_(grpc::CreateChannel(addr, credentials(sec))),
      stub_(v1::Tandem::NewStub(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)),
      api_key_(sec.api_key) {}

void Client::prepare(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) const {
  set_deadline(ctx, timeout);
  if (!api_key_.empty()) ctx.AddMetadata("authorization", "Bearer " + api_key_);
}

grpc::Status Client::generate(const v1::GenerateRequest& req, GenerateResult& out,
                              const std::function<bool(const v1::GenerateResponse&)>& on_message,
                              std::chrono::milliseconds timeout) {
  out = GenerateResult{};
  grpc::ClientContext ctx;
  prepare(ctx, timeout);
  const auto t0 = Clock::now();
  auto reader = stub_->Generate(&ctx, req);
  v1::GenerateResponse msg;
  bool cancelled = false;
  while (reader->Read(&msg)) {
    const double t = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
    if (msg.token_ids_size() > 0) {
      if (out.arrivals.empty()) out.ttft_ms = t;
      out.arrivals.emplace_back(t, msg.token_ids_size());
    }
    out.ids.insert(out.ids.end(), msg.token_ids().begin(), msg.token_ids().end());
    out.logprobs.insert(out.logprobs.end(), msg.logprobs().begin(), msg.logprobs().end());
    out.text += msg.text();
    if (msg.has_final()) {
      out.has_final = true;
      out.final = msg.final();
    }
    if (on_message && !on_message(msg) && !cancelled) {
      cancelled = true;
      ctx.TryCancel();
    }
  }
  out.total_ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  return reader->Finish();
}

grpc::Status Client::tokenize(const v1::TokenizeRequest& req, v1::TokenizeResponse& out, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  prepare(ctx, timeout);
  return stub_->Tokenize(&ctx, req, &out);
}

grpc::Status Client::render_chat(const v1::ChatPrompt& req, v1::RenderChatResponse& out,
                                 std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  prepare(ctx, timeout);
  return stub_->RenderChat(&ctx, req, &out);
}

grpc::Status Client::detokenize(const v1::DetokenizeRequest& req, v1::DetokenizeResponse& out,
                                std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  prepare(ctx, timeout);
  return stub_->Detokenize(&ctx, req, &out);
}

grpc::Status Client::model_info(v1::ModelInfo& out, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  prepare(ctx, timeout);
  return stub_->GetModelInfo(&ctx, v1::GetModelInfoRequest{}, &out);
}

grpc::Status Client::server_info(v1::ServerInfo& out, std::chrono::milliseconds timeout) {
  grpc::ClientContext ctx;
  prepare(ctx, timeout);
  return stub_->GetServerInfo(&ctx, v1::GetServerInfoRequest{}, &out);
}

Health Client::health(std::chrono::milliseconds timeout, const std::string& service) {
  grpc::ClientContext ctx;
  prepare(ctx, timeout);
  grpc::health::v1::HealthCheckRequest req;
  req.set_service(service);
  grpc::health::v1::HealthCheckResponse resp;
  const grpc::Status st = health_->Check(&ctx, req, &resp);
  if (st.error_code() == grpc::StatusCode::NOT_FOUND) return Health::ServiceUnknown;
  if (!st.ok()) return Health::Unreachable;
  switch (resp.status()) {
    case grpc::health::v1::HealthCheckResponse::SERVING: return Health::Serving;
    case grpc::health::v1::HealthCheckResponse::NOT_SERVING: return Health::NotServing;
    case grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN: return Health::ServiceUnknown;
    default: return Health::Unknown;
  }
}

Health Client::wait_until_serving(std::chrono::milliseconds total, std::chrono::milliseconds interval) {
  const auto end = Clock::now() + total;
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now());
    const Health h = health(std::max(std::chrono::milliseconds(100), std::min(left, std::chrono::milliseconds(2000))));
    if (h == Health::Serving || Clock::now() + interval >= end) return h;
    std::this_thread::sleep_for(interval);
  }
}

}  // namespace tandem::rpc
