// The gRPC front end on rank 0: tandem.v1.Tandem, the standard grpc.health.v1 service and server
// reflection, served by gRPC's synchronous server (one thread per open call). With API keys the
// Tandem RPCs answer UNAUTHENTICATED without a valid key; health and reflection stay open.
//
// gRPC threads never call MPI: Generate hands the request to Engine::submit() and reads the
// request's RequestStream; the engine loop runs on the main thread. The server starts before the
// model is loaded, so health answers NOT_SERVING (and the Tandem RPCs UNAVAILABLE) during load
// and warm-up; attach() makes the RPCs live, set_serving() flips the health status.
#pragma once
#include <chrono>
#include <memory>
#include <string>

#include "decode/engine.h"
#include "dist/cluster.h"
#include "rpc/metrics.h"
#include "rpc/security.h"
#include "shard/tokenizer/chat_template.h"

namespace tandem::rpc {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";  // HOST:PORT; port 0 picks a free port
  SpecMode configured_speculation = SpecMode::Auto;  // reported in ServerInfo
  int max_queue = 64;                                // reported in ServerInfo
  int max_threads = 256;  // gRPC handler threads (each open call holds one)
  TlsFiles tls;           // TLS (and mutual TLS with a client CA) when set
  ApiKeys keys;           // when set, Tandem RPCs need `authorization: Bearer <key>` metadata
  Metrics* metrics = nullptr;  // requests are recorded here when set
};

struct GrpcServer;  // opaque: the gRPC server and the service objects

// HOST:PORT with a port in [0, 65535]; the message names the flag. (Binding can still fail.)
Status check_listen_address(const std::string& listen, std::string_view flag = "--listen");
// Binds and starts. Errors (address in use, unparsable address) name the address.
Result<std::shared_ptr<GrpcServer>> start_server(const ServerOptions& o);
// The port actually bound (useful with port 0).
int bound_port(const GrpcServer& s);
// The engine and cluster are up: Tandem RPCs are served from now on. Both must outlive shutdown().
// `chat` renders the `chat` prompts of Generate and RenderChat (without a template they are refused).
void attach(GrpcServer& s, Engine& engine, const Cluster& cluster, ChatSetup chat = {});
// grpc.health.v1 status of the server ("") and of "tandem.v1.Tandem".
void set_serving(GrpcServer& s, bool serving);
// Stops accepting calls, waits up to `grace` for open calls to end, then cancels the rest.
void shutdown(GrpcServer& s, std::chrono::milliseconds grace);

}  // namespace tandem::rpc
