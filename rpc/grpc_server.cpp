#include "rpc/grpc_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <atomic>
#include <charconv>

#include "rpc/convert.h"
#include "rpc/tandem.grpc.pb.h"
#include "shard/log.h"
#include "shard/tokenizer/utf8.h"

#ifndef TANDEM_VERSION
#define TANDEM_VERSION "unknown"
#endif

namespace tandem::rpc {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kPoll = std::chrono::milliseconds(50);  // how quickly a vanished client is noticed

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

std::string sanitized(std::string_view s) {
  std::string out;
  utf8_sanitize(s, out, /*flush=*/true);
  return out;
}

class TandemService final : public v1::Tandem::Service {
 public:
  explicit TandemService(const ServerOptions& o) : o_(o), t0_(Clock::now()) {}

  void attach(Engine& e, const Cluster& c, ChatSetup chat) {
    cluster_ = &c;
    chat_ = std::move(chat);
    engine_.store(&e, std::memory_order_release);
  }

  grpc::Status Generate(grpc::ServerContext* ctx, const v1::GenerateRequest* in,
                        grpc::ServerWriter<v1::GenerateResponse>* out) override {
    const auto t_arrival = Clock::now();
    if (!authorized(ctx)) return unauthenticated();
    Engine* e = engine();
    if (!e) return starting();
    auto req = to_engine_request(*in, e->tokenizer(), e->ctx(), chat_);
    if (!req) return reject(req.error());
    if (req->id.empty()) req->id = fmt::format("rpc-{}", ++next_id_);
    const std::string id = req->id;
    auto stream = e->submit(std::move(*req));
    if (!stream) return reject(stream.error());
    StreamCount open(streams_, o_.metrics);
    RequestRecord rec;
    rec.api = "grpc";
    auto done = [&](Outcome outcome) {
      rec.outcome = outcome;
      rec.total_s = ms_since(t_arrival) / 1e3;
      if (o_.metrics) o_.metrics->record(rec);
    };
    v1::GenerateResponse msg;
    while (true) {
      auto ev = (*stream)->next(kPoll);
      if (!ev) {
        if (ctx->IsCancelled()) {  // cancelled by the client, deadline passed, or connection lost
          (*stream)->cancel();
          spdlog::debug("request {}: client cancelled or went away; slot freed at the next step", id);
          done(Outcome::Cancelled);
          return {grpc::StatusCode::CANCELLED, "cancelled by the client"};
        }
        continue;
      }
      if (rec.ttft_s < 0 && !ev->ids.empty()) rec.ttft_s = ms_since(t_arrival) / 1e3;
      to_proto(*ev, msg);
      if (ev->final) {
        // The engine times from admission; the wait for a slot is the rest of the wall time.
        msg.mutable_final()->mutable_usage()->set_queue_ms(std::max(0.0, ms_since(t_arrival) - ev->usage.total_ms));
        rec.usage = ev->usage;
      }
      if (!out->Write(msg)) {
        (*stream)->cancel();
        spdlog::debug("request {}: write failed (client gone); slot freed at the next step", id);
        done(Outcome::Cancelled);
        return {grpc::StatusCode::CANCELLED, "the client went away"};
      }
      if (ev->final) {
        done(outcome_of(ev->reason));
        return grpc::Status::OK;
      }
    }
  }

  grpc::Status Tokenize(grpc::ServerContext* ctx, const v1::TokenizeRequest* in, v1::TokenizeResponse* out) override {
    if (!authorized(ctx)) return unauthenticated();
    Engine* e = engine();
    if (!e) return starting();
    const Tokenizer& tok = e->tokenizer();
    const auto ids = tok.encode(in->text(), in->has_add_bos() ? in->add_bos() : true, in->parse_special());
    for (int32_t id : ids) {
      out->add_ids(id);
      out->add_pieces(sanitized(tok.token_bytes(id, /*render_special=*/true)));
    }
    return grpc::Status::OK;
  }

  grpc::Status Detokenize(grpc::ServerContext* ctx, const v1::DetokenizeRequest* in, v1::DetokenizeResponse* out) override {
    if (!authorized(ctx)) return unauthenticated();
    Engine* e = engine();
    if (!e) return starting();
    const Tokenizer& tok = e->tokenizer();
    std::vector<int32_t> ids(in->ids().begin(), in->ids().end());
    for (size_t i = 0; i < ids.size(); ++i)
      if (!tok.valid(ids[i]))
        return reject(make_error(ErrorCode::InvalidArgument, "ids[{}] = {} is not in the vocabulary [0, {})", i, ids[i],
                                 tok.n_vocab()));
    out->set_text(sanitized(tok.decode(ids, in->render_special())));
    return grpc::Status::OK;
  }

  grpc::Status RenderChat(grpc::ServerContext* ctx, const v1::ChatPrompt* in, v1::RenderChatResponse* out) override {
    if (!authorized(ctx)) return unauthenticated();
    Engine* e = engine();
    if (!e) return starting();
    auto text = render_chat_prompt(*in, chat_);
    if (!text) return reject(text.error());
    for (int32_t id : encode_chat_prompt(e->tokenizer(), *text)) out->add_ids(id);
    out->set_text(sanitized(*text));
    return grpc::Status::OK;
  }

  grpc::Status GetModelInfo(grpc::ServerContext* ctx, const v1::GetModelInfoRequest*, v1::ModelInfo* out) override {
    if (!authorized(ctx)) return unauthenticated();
    Engine* e = engine();
    if (!e) return starting();
    to_proto(*cluster_, e->tokenizer(), *out);
    return grpc::Status::OK;
  }

  grpc::Status GetServerInfo(grpc::ServerContext* ctx, const v1::GetServerInfoRequest*, v1::ServerInfo* out) override {
    if (!authorized(ctx)) return unauthenticated();
    out->set_version(TANDEM_VERSION);
    out->set_api_version("tandem.v1");
    out->set_uptime_s(ms_since(t0_) / 1e3);
    out->set_max_queue(o_.max_queue);
    out->set_streams(streams_.load());
    out->mutable_speculation()->set_configured(to_proto(o_.configured_speculation));
    Engine* e = engine();
    if (e) {
      to_proto(e->info(), *out);
      to_proto(cluster_->opts.layout, cluster_->target_file.config.n_layers, *out->mutable_layout());
      for (int r = 0; r < out->layout().ranks_size() && r < static_cast<int>(cluster_->hosts.size()); ++r)
        out->mutable_layout()->mutable_ranks(r)->set_host(cluster_->hosts[r]);
    }
    auto* c = out->mutable_counters();
    c->set_rejected_invalid(rejected_invalid_.load());
    c->set_rejected_queue_full(rejected_full_.load());
    c->set_rejected_unavailable(rejected_unavailable_.load());
    return grpc::Status::OK;
  }

 private:
  struct StreamCount {
    std::atomic<int>& n;
    Metrics* m;
    StreamCount(std::atomic<int>& c, Metrics* metrics) : n(c), m(metrics) {
      ++n;
      if (m) m->stream_opened("grpc");
    }
    ~StreamCount() {
      --n;
      if (m) m->stream_closed("grpc");
    }
  };

  bool authorized(grpc::ServerContext* ctx) const {
    if (!o_.keys.enabled()) return true;
    const auto& md = ctx->client_metadata();
    auto it = md.find("authorization");
    if (it == md.end()) return false;
    const auto token = bearer_token(std::string_view(it->second.data(), it->second.size()));
    return token && key_accepted(o_.keys, *token);
  }

  grpc::Status unauthenticated() {
    if (o_.metrics) o_.metrics->record({"grpc", Outcome::Unauthenticated});
    return {grpc::StatusCode::UNAUTHENTICATED,
            "missing or incorrect API key: send the metadata 'authorization: Bearer <key>' (tandem client --api-key)"};
  }

  Engine* engine() const { return engine_.load(std::memory_order_acquire); }

  grpc::Status starting() {
    ++rejected_unavailable_;
    if (o_.metrics) o_.metrics->record({"grpc", Outcome::Unavailable});
    return {grpc::StatusCode::UNAVAILABLE,
            "the server is starting (loading the model on every rank, or warming up); retry when health reports SERVING"};
  }

  grpc::Status reject(const Error& err) {
    Outcome outcome = Outcome::Error;
    switch (err.code) {
      case ErrorCode::InvalidArgument: ++rejected_invalid_; outcome = Outcome::Invalid; break;
      case ErrorCode::ResourceExhausted: ++rejected_full_; outcome = Outcome::QueueFull; break;
      case ErrorCode::Unavailable: ++rejected_unavailable_; outcome = Outcome::Unavailable; break;
      case ErrorCode::Internal: break;
    }
    if (o_.metrics) o_.metrics->record({"grpc", outcome});
    spdlog::debug("request rejected: {}", err.message);
    return to_grpc_status(err);
  }

  ServerOptions o_;
  Clock::time_point t0_;
  const Cluster* cluster_ = nullptr;  // written before engine_ is published
  ChatSetup chat_;                    // likewise
  std::atomic<Engine*> engine_{nullptr};
  std::atomic<int> streams_{0};
  std::atomic<int64_t> rejected_invalid_{0}, rejected_full_{0}, rejected_unavailable_{0}, next_id_{0};
};

}  // namespace

struct GrpcServer {
  explicit GrpcServer(const ServerOptions& o) : service(o) {}
  TandemService service;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
};

Status check_listen_address(const std::string& a, std::string_view flag) {
  const size_t colon = a.rfind(':');
  int port = -1;
  if (colon == std::string::npos || colon == 0)
    return make_error("{} '{}': expected HOST:PORT, e.g. 127.0.0.1:50051 or 0.0.0.0:0", flag, a);
  auto [p, ec] = std::from_chars(a.data() + colon + 1, a.data() + a.size(), port);
  if (ec != std::errc() || p != a.data() + a.size() || port < 0 || port > 65535)
    return make_error("{} '{}': the port must be a number in [0, 65535] (0: any free port)", flag, a);
  return ok_status();
}

Result<std::shared_ptr<GrpcServer>> start_server(const ServerOptions& o) {
  TANDEM_TRY(check_listen_address(o.listen));
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  auto s = std::make_shared<GrpcServer>(o);
  grpc::ServerBuilder b;
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (o.tls.enabled()) {
    grpc::SslServerCredentialsOptions ssl(o.tls.client_ca_pem.empty()
                                              ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                              : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    ssl.pem_root_certs = o.tls.client_ca_pem;
    ssl.pem_key_cert_pairs.push_back({o.tls.key_pem, o.tls.cert_pem});
    creds = grpc::SslServerCredentials(ssl);
  }
  b.AddListeningPort(o.listen, creds, &s->port);
  b.RegisterService(&s->service);
  // Every open call holds a thread; past the limit gRPC answers RESOURCE_EXHAUSTED itself.
  grpc::ResourceQuota quota("tandem");
  quota.SetMaxThreads(std::max(16, o.max_threads));
  b.SetResourceQuota(quota);
  s->server = b.BuildAndStart();
  if (!s->server || s->port == 0)
    return make_error("--listen {}: cannot listen there (address in use, or not an address of this machine)", o.listen);
  // The default health service starts out SERVING; nothing is served until attach + warm-up.
  set_serving(*s, false);
  spdlog::info("gRPC: listening on {} (port {}{}{}); health NOT_SERVING until every rank is loaded and warmed up",
               o.listen, s->port, o.tls.enabled() ? (o.tls.client_ca_pem.empty() ? ", TLS" : ", mutual TLS") : ", plaintext",
               o.keys.enabled() ? fmt::format(", {} API key(s)", o.keys.digests.size()) : "");
  if (auto w = exposure_warning("gRPC", o.listen, o.tls.enabled(), o.keys.enabled()); !w.empty()) spdlog::warn("{}", w);
  return s;
}

int bound_port(const GrpcServer& s) { return s.port; }

void attach(GrpcServer& s, Engine& engine, const Cluster& cluster, ChatSetup chat) {
  s.service.attach(engine, cluster, std::move(chat));
}

void set_serving(GrpcServer& s, bool serving) {
  if (auto* h = s.server->GetHealthCheckService()) {
    h->SetServingStatus(serving);
    h->SetServingStatus(v1::Tandem::service_full_name(), serving);
  }
}

void shutdown(GrpcServer& s, std::chrono::milliseconds grace) {
  if (!s.server) return;
  s.server->Shutdown(std::chrono::system_clock::now() + grace);
  s.server->Wait();
  s.server.reset();
}

}  // namespace tandem::rpc
