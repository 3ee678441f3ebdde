#include "rpc/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <thread>

#include "rpc/convert.h"
#include "rpc/grpc_server.h"
#include "rpc/openai_api.h"
#include "shard/log.h"

namespace tandem::rpc {
namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
constexpr auto kPoll = std::chrono::milliseconds(50);

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

void send_error(httplib::Response& res, const openai::ApiError& e) {
  res.status = e.status;
  if (e.status == 401) res.set_header("WWW-Authenticate", "Bearer");
  res.set_content(openai::error_body(e), "application/json");
}

Outcome outcome_of_status(int status) {
  switch (status) {
    case 401: return Outcome::Unauthenticated;
    case 404: return Outcome::NotFound;
    case 429: return Outcome::QueueFull;
    case 503: return Outcome::Unavailable;
    case 400: return Outcome::Invalid;
    default: return Outcome::Error;
  }
}

// A request the engine failed or cancelled (shutdown): the error the client gets instead of a choice.
openai::ApiError engine_end_error(const GenerationEvent& final_event, int status) {
  openai::ApiError e;
  e.status = status;
  e.type = "server_error";
  e.message = final_event.error.empty() ? "the request was cancelled" : final_event.error;
  return e;
}

struct Listener {
  std::unique_ptr<httplib::Server> server;
  std::thread thread;
  int port = 0;
};

}  // namespace

struct HttpServer {
  HttpOptions o;
  Metrics* metrics = nullptr;
  std::atomic<Engine*> engine{nullptr};
  const Cluster* cluster = nullptr;  // written before engine is published
  ChatSetup chat;                    // likewise
  std::atomic<ServeState> state{ServeState::Starting};
  std::atomic<int64_t> next_id{0};
  int64_t started_unix = 0;
  Listener api, metrics_only;

  Engine* live() const { return engine.load(std::memory_order_acquire); }

  void reject(httplib::Response& res, const openai::ApiError& e) {
    metrics->record({"http", outcome_of_status(e.status)});
    spdlog::debug("HTTP request rejected ({}): {}", e.status, e.message);
    send_error(res, e);
  }

  std::optional<openai::ApiError> unavailable() const {
    const ServeState st = state.load();
    if (st == ServeState::Serving && live()) return std::nullopt;
    openai::ApiError e;
    e.status = 503;
    e.type = "server_error";
    e.code = "unavailable";
    e.message = st == ServeState::Draining
                    ? "the server is shutting down (draining); retry on another server"
                    : "the server is starting (loading the model on every rank, or warming up); retry when /health is 200";
    return e;
  }

  void generate(const httplib::Request& req, httplib::Response& res, openai::Endpoint ep);
  void models(const httplib::Request& req, httplib::Response& res, const std::string* id);
  void health(httplib::Response& res);
  void metrics_page(httplib::Response& res) {
    Engine* e = live();
    std::optional<EngineInfo> info;
    if (e) info = e->info();
    res.set_content(metrics->render(info ? &*info : nullptr, state.load() == ServeState::Serving),
                    "text/plain; version=0.0.4; charset=utf-8");
  }
};

namespace {

// Everything one request's stream needs, shared by the content provider and its releaser.
struct StreamJob {
  HttpServer* server = nullptr;
  openai::Request req;
  openai::ResponseContext ctx;
  openai::StreamState st;
  std::shared_ptr<RequestStream> stream;
  Clock::time_point arrival;
  double ttft_s = -1;
  bool started = false, finished = false;
  FinishReason reason = FinishReason::kNone;
  Usage usage;
};

void finish_record(HttpServer& s, const StreamJob& j, bool client_gone) {
  RequestRecord r;
  r.api = "http";
  r.outcome = client_gone && !j.finished ? Outcome::Cancelled : outcome_of(j.reason);
  r.ttft_s = j.ttft_s;
  r.total_s = seconds_since(j.arrival);
  r.usage = j.usage;
  s.metrics->record(r);
}

}  // namespace

void HttpServer::generate(const httplib::Request& hreq, httplib::Response& res, openai::Endpoint ep) {
  const auto arrival = Clock::now();
  if (auto e = unavailable()) return reject(res, *e);
  Engine* e = live();
  auto job = std::make_shared<StreamJob>();
  job->server = this;
  job->arrival = arrival;
  if (auto err = openai::parse_request(hreq.body, ep, job->req)) return reject(res, *err);
  if (!job->req.model.empty() && job->req.model != o.served_model)
    return reject(res, openai::model_not_found(job->req.model, o.served_model));
  auto greq = to_engine_request(job->req.gen, e->tokenizer(), e->ctx(), chat);
  if (!greq) return reject(res, openai::api_error(greq.error(), ep));
  const int64_t n = ++next_id;
  job->ctx.id = fmt::format("{}-{:x}{:04x}", ep == openai::Endpoint::Chat ? "chatcmpl" : "cmpl", started_unix, n);
  job->ctx.model = o.served_model;
  job->ctx.created = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  job->ctx.tok = &e->tokenizer();
  greq->id = job->ctx.id;
  auto stream = e->submit(std::move(*greq));
  if (!stream) return reject(res, openai::api_error(stream.error(), ep));
  job->stream = *stream;
  spdlog::debug("HTTP {} {}: admitted{}", hreq.path, job->ctx.id, job->req.stream ? " (streaming)" : "");

  if (!job->req.stream) {
    metrics->stream_opened("http");
    std::vector<GenerationEvent> events;
    while (true) {
      auto ev = job->stream->next(kPoll);
      if (!ev) continue;
      if (job->ttft_s < 0 && !ev->ids.empty()) job->ttft_s = seconds_since(arrival);
      const bool final = ev->final;
      events.push_back(std::move(*ev));
      if (final) break;
    }
    metrics->stream_closed("http");
    const GenerationEvent& last = events.back();
    job->finished = true;
    job->reason = last.reason;
    job->usage = last.usage;
    finish_record(*this, *job, false);
    if (last.reason == FinishReason::kError || last.reason == FinishReason::kCancelled)
      return send_error(res, engine_end_error(last, last.reason == FinishReason::kCancelled ? 503 : 500));
    res.set_content(openai::dump(openai::full_response(job->req, job->ctx, events)), "application/json");
    return;
  }

  metrics->stream_opened("http");
  res.set_header("Cache-Control", "no-cache");
  res.set_header("X-Accel-Buffering", "no");
  res.set_chunked_content_provider(
      "text/event-stream",
      [job](size_t, httplib::DataSink& sink) {
        auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
        if (!job->started) {
          job->started = true;
          json first = openai::first_chunk(job->req, job->ctx, job->st);
          if (!first.is_null() && !write(openai::sse_data(first))) return false;
        }
        auto ev = job->stream->next(kPoll);
        if (!ev) return true;  // called again: the engine had nothing yet
        if (job->ttft_s < 0 && !ev->ids.empty()) job->ttft_s = seconds_since(job->arrival);
        json chunk = openai::event_chunk(job->req, job->ctx, *ev, job->st);
        if (!chunk.is_null() && !write(openai::sse_data(chunk))) return false;
        if (!ev->final) return true;
        job->finished = true;
        job->reason = ev->reason;
        job->usage = ev->usage;
        bool ok = true;
        if (ev->reason == FinishReason::kError || ev->reason == FinishReason::kCancelled) {
          ok = write("data: " + openai::error_body(engine_end_error(*ev, 500)) + "\n\n");
        } else {
          ok = write(openai::sse_data(openai::finish_chunk(job->req, job->ctx, ev->reason)));
          if (ok && job->req.include_usage) ok = write(openai::sse_data(openai::usage_chunk(job->req, job->ctx, ev->usage)));
        }
        if (ok) ok = write(std::string(openai::kDone));
        if (ok) sink.done();
        return ok;
      },
      [job](bool success) {
        HttpServer& s = *job->server;
        s.metrics->stream_closed("http");
        if (!job->finished) {  // the client went away (or the server is stopping): free the slot
          job->stream->cancel();
          spdlog::debug("HTTP {}: client went away mid-stream; slot freed at the next step", job->ctx.id);
        }
        finish_record(s, *job, !success);
      });
}

void HttpServer::models(const httplib::Request&, httplib::Response& res, const std::string* id) {
  Engine* e = live();
  json m = {{"id", o.served_model}, {"object", "model"}, {"created", started_unix}, {"owned_by", "tandem"}};
  if (e) {
    m["max_model_len"] = e->ctx();
    m["architecture"] = cluster->target_file.config.arch;
  }
  if (id) {
    if (*id != o.served_model) return reject(res, openai::model_not_found(*id, o.served_model));
    res.set_content(openai::dump(m), "application/json");
    return;
  }
  res.set_content(openai::dump(json{{"object", "list"}, {"data", json::array({m})}}), "application/json");
}

void HttpServer::health(httplib::Response& res) {
  const ServeState st = state.load();
  const bool up = st == ServeState::Serving && live();
  res.status = up ? 200 : 503;
  res.set_content(openai::dump(json{{"status", up ? "ok" : st == ServeState::Draining ? "draining" : "starting"}}),
                  "application/json");
}

namespace {

Result<Listener> listen_on(const std::string& addr, const HttpOptions& o, const char* what) {
  TANDEM_TRY(check_listen_address(addr, what));
  Listener l;
  if (o.tls.enabled()) {
    l.server = std::make_unique<httplib::SSLServer>(o.tls.cert_path.c_str(), o.tls.key_path.c_str(),
                                                    o.tls.client_ca_path.empty() ? nullptr : o.tls.client_ca_path.c_str());
    if (!l.server->is_valid())
      return make_error("{}: cannot use --tls-cert {} / --tls-key {}{}: the certificate and key do not load or do not match",
                        what, o.tls.cert_path, o.tls.key_path,
                        o.tls.client_ca_path.empty() ? "" : " / --tls-client-ca " + o.tls.client_ca_path);
  } else {
    l.server = std::make_unique<httplib::Server>();
  }
  const size_t colon = addr.rfind(':');
  std::string host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[') host = host.substr(1, host.size() - 2);
  const int port = std::stoi(addr.substr(colon + 1));
  const int threads = std::max(8, o.threads);
  l.server->new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  l.server->set_keep_alive_timeout(5);
  l.server->set_read_timeout(30);
  l.server->set_write_timeout(30);
  l.server->set_payload_max_length(o.max_body_bytes);
  l.server->set_tcp_nodelay(true);
  if (port == 0) {
    l.port = l.server->bind_to_any_port(host);
    if (l.port <= 0) l.port = 0;
  } else {
    l.port = l.server->bind_to_port(host, port) ? port : 0;
  }
  if (l.port == 0)
    return make_error("{} {}: cannot listen there (address in use, or not an address of this machine)", what, addr);
  return l;
}

void serve_in_thread(Listener& l) {
  l.thread = std::thread([srv = l.server.get()] { srv->listen_after_bind(); });
}

}  // namespace

Result<std::shared_ptr<HttpServer>> start_http_server(const HttpOptions& o, Metrics& metrics) {
  auto s = std::make_shared<HttpServer>();
  s->o = o;
  s->metrics = &metrics;
  s->started_unix = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  auto api = listen_on(o.listen, o, "--http-listen");
  if (!api) return api.error();
  s->api = std::move(*api);
  HttpServer* raw = s.get();
  httplib::Server& srv = *s->api.server;
  srv.set_pre_routing_handler([raw](const httplib::Request& req, httplib::Response& res) {
    if (!raw->o.keys.enabled() || req.path.rfind("/v1/", 0) != 0) return httplib::Server::HandlerResponse::Unhandled;
    const std::string authorization = req.get_header_value("Authorization");  // bearer_token() views it
    const auto bearer = bearer_token(authorization);
    if (bearer && key_accepted(raw->o.keys, *bearer)) return httplib::Server::HandlerResponse::Unhandled;
    raw->reject(res, openai::missing_key_error(req.has_header("Authorization")));
    return httplib::Server::HandlerResponse::Handled;
  });
  srv.Post("/v1/completions", [raw](const httplib::Request& q, httplib::Response& r) {
    raw->generate(q, r, openai::Endpoint::Completions);
  });
  srv.Post("/v1/chat/completions", [raw](const httplib::Request& q, httplib::Response& r) {
    raw->generate(q, r, openai::Endpoint::Chat);
  });
  srv.Get("/v1/models", [raw](const httplib::Request& q, httplib::Response& r) { raw->models(q, r, nullptr); });
  srv.Get(R"(/v1/models/(.+))", [raw](const httplib::Request& q, httplib::Response& r) {
    const std::string id = q.matches[1];
    raw->models(q, r, &id);
  });
  srv.Get("/health", [raw](const httplib::Request&, httplib::Response& r) { raw->health(r); });
  srv.Get("/metrics", [raw](const httplib::Request&, httplib::Response& r) { raw->metrics_page(r); });
  srv.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    openai::ApiError e;
    e.status = res.status;
    e.message = res.status == 404   ? fmt::format("no such endpoint: {} {}", req.method, req.path)
                : res.status == 413 ? "the request body is too large"
                                    : fmt::format("HTTP {}", res.status);
    if (res.status == 404) e.code = "not_found";
    send_error(res, e);
    return httplib::Server::HandlerResponse::Handled;
  }));
  srv.set_exception_handler([](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "unknown error";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& ex) {
      what = ex.what();
    } catch (...) {
    }
    spdlog::error("HTTP {} {}: internal error: {}", req.method, req.path, what);
    openai::ApiError e;
    e.status = 500;
    e.type = "server_error";
    e.message = "internal error: " + what;
    send_error(res, e);
  });
  if (!o.metrics_listen.empty()) {
    HttpOptions mo = o;
    mo.threads = 4;
    auto m = listen_on(o.metrics_listen, mo, "--metrics-listen");
    if (!m) {
      s->api.server->stop();
      return m.error();
    }
    s->metrics_only = std::move(*m);
    s->metrics_only.server->Get("/metrics", [raw](const httplib::Request&, httplib::Response& r) { raw->metrics_page(r); });
    serve_in_thread(s->metrics_only);
  }
  serve_in_thread(s->api);
  spdlog::info("HTTP: OpenAI-compatible API on {}://{} (port {}){}{}; /health 503 until every rank is loaded and "
               "warmed up", o.tls.enabled() ? "https" : "http", o.listen, s->api.port,
               o.keys.enabled() ? fmt::format(", {} API key(s)", o.keys.digests.size()) : "",
               o.metrics_listen.empty() ? "" : fmt::format(", metrics on {} (port {})", o.metrics_listen, s->metrics_only.port));
  if (auto w = exposure_warning("HTTP", o.listen, o.tls.enabled(), o.keys.enabled()); !w.empty()) spdlog::warn("{}", w);
  return s;
}

int http_port(const HttpServer& s) { return s.api.port; }
int metrics_port(const HttpServer& s) { return s.metrics_only.port; }

void attach(HttpServer& s, Engine& engine, const Cluster& cluster, ChatSetup chat) {
  s.cluster = &cluster;
  s.chat = std::move(chat);
  s.engine.store(&engine, std::memory_order_release);
}

void set_state(HttpServer& s, ServeState st) { s.state.store(st); }

void shutdown(HttpServer& s) {
  for (Listener* l : {&s.api, &s.metrics_only}) {
    if (!l->server) continue;
    l->server->stop();
    if (l->thread.joinable()) l->thread.join();
  }
}

std::string default_model_name(const std::string& model_path) {
  std::filesystem::path p(model_path);
  std::string stem = p.filename().string();
  for (const char* ext : {".gguf", ".bin"})
    if (stem.size() > std::strlen(ext) && stem.compare(stem.size() - std::strlen(ext), std::string::npos, ext) == 0) {
      stem.resize(stem.size() - std::strlen(ext));
      break;
    }
  return stem.empty() ? "model" : stem;
}

}  // namespace tandem::rpc
