// The OpenAI-compatible HTTP front end on rank 0 (cpp-httplib), beside gRPC and feeding the same
// engine queue: POST /v1/completions, POST /v1/chat/completions (JSON or server-sent events),
// GET /v1/models[/{id}], GET /health, GET /metrics (Prometheus; optionally on a port of its own).
//
// HTTP threads never call MPI: a request is validated (openai_api.h, then convert.h as for gRPC),
// submitted to Engine::submit(), and its RequestStream is read by the connection's thread. A
// client that goes away mid-stream is noticed at the next write and its request cancelled, which
// frees its slot at the engine's next step, as a gRPC cancel does.
//
// Health: /health answers 200 only while the server is SERVING (every rank loaded and warmed up),
// 503 while starting or draining; /v1 requests get 503 then. With API keys, /v1 requires
// `Authorization: Bearer <key>` (401 otherwise); /health and /metrics stay open to probes.
#pragma once
#include <memory>
#include <string>

#include "decode/engine.h"
#include "dist/cluster.h"
#include "rpc/metrics.h"
#include "rpc/security.h"
#include "shard/tokenizer/chat_template.h"

namespace tandem::rpc {

struct HttpOptions {
  std::string listen;          // HOST:PORT (port 0: any free port)
  std::string metrics_listen;  // "" = /metrics only on `listen`
  std::string served_model;    // the model's name in /v1/models and in responses
  int threads = 64;            // connection threads (each open stream or keep-alive connection holds one)
  size_t max_body_bytes = 8u << 20;
  TlsFiles tls;
  ApiKeys keys;
};

struct HttpServer;

Result<std::shared_ptr<HttpServer>> start_http_server(const HttpOptions& o, Metrics& metrics);
int http_port(const HttpServer& s);
int metrics_port(const HttpServer& s);  // 0 without --metrics-listen
void attach(HttpServer& s, Engine& engine, const Cluster& cluster, ChatSetup chat);
enum class ServeState { Starting, Serving, Draining };
void set_state(HttpServer& s, ServeState st);
// Stops listening and ends open connections (streams still open are cancelled).
void shutdown(HttpServer& s);

// The name a server reports for its model: --served-model-name, else the file name without .gguf/.bin.
std::string default_model_name(const std::string& model_path);

}  // namespace tandem::rpc
