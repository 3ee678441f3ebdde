// `tandem serve`: the MPI job as a gRPC server. Rank 0 runs the gRPC front end (threads) and the
// engine loop (main thread, the only one that calls MPI); the other ranks serve their target
// stage or the draft group until rank 0 shuts the job down.
//
// Shutdown: SIGINT, SIGTERM or SIGUSR1 on rank 0 drains — health NOT_SERVING, new requests get
// UNAVAILABLE, in-flight requests finish; after --drain-timeout (or a second signal) the rest end
// CANCELLED with a final message. Then the engine loop returns, gRPC stops, the worker ranks are
// released and every rank exits 0. Worker ranks ignore these signals and wait for rank 0. Note:
// mpirun itself turns SIGINT/SIGTERM into a kill of the whole job (exit status 1, SIGKILL after a
// second); `tandem-mpirun serve` forwards them to the ranks as SIGUSR1 instead, so stopping it
// with SIGINT/SIGTERM is clean. With a bare mpirun, signal rank 0 (or send SIGUSR1 to mpirun).
#include <fmt/format.h>

#include <algorithm>
#include <csignal>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <thread>

#include "decode/engine.h"
#include "decode/worker_rank.h"
#include "dist/mpi_runtime.h"
#include "launch/commands.h"
#include "launch/run_options.h"
#include "launch/stop_signals.h"
#include "rpc/grpc_server.h"
#include "rpc/http_server.h"
#include "rpc/metrics.h"
#include "rpc/security.h"
#include "shard/log.h"
#include "shard/tokenizer/chat_template.h"

namespace tandem::cli {
namespace {

struct ServeOptions {
  RunOptions run;
  std::string listen = "127.0.0.1:50051", port_file, chat_template;
  std::string http_listen, http_port_file, metrics_listen, served_model_name;
  std::string tls_cert, tls_key, tls_client_ca, api_key_file;
  bool warmup = true;
  double drain_timeout = 30, startup_delay = 0;
};

// Stop requests can arrive before the engine exists (during load or warm-up); they are kept and
// applied once it does. Level 1 drains, level 2 cancels what is in flight.
struct Stopper {
  std::mutex mu;
  Engine* engine = nullptr;
  int level = 0;
  void request(int lvl) {
    std::lock_guard lk(mu);
    level = std::max(level, lvl);
    apply();
  }
  void attach(Engine* e) {
    std::lock_guard lk(mu);
    engine = e;
    apply();
  }
  int requested() {
    std::lock_guard lk(mu);
    return level;
  }
  void apply() {
    if (engine && level > 0) engine->stop(/*drain=*/level == 1);
  }
};

Status write_port_file(const std::string& path, int port) {
  // Written whole then renamed, so a reader polling for the file never sees it half-written.
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::trunc);
    if (!f) return make_error("--port-file {}: cannot write {}", path, tmp);
    f << port << "\n";
    if (!f.flush()) return make_error("--port-file {}: cannot write {}", path, tmp);
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error("--port-file {}: {}", path, ec.message());
  return ok_status();
}

int serve(ServeOptions& o) {
  for (const auto& [flag, addr] : {std::pair{"--listen", o.listen}, {"--http-listen", o.http_listen}, {"--metrics-listen", o.metrics_listen}}) {
    if (addr.empty() && std::string_view(flag) != "--listen") continue;
    if (auto st = rpc::check_listen_address(addr, flag); !st) {  // before loading anything, on every rank
      spdlog::error("{}", st.error().message);
      return 2;
    }
  }
  StopSignals signals;  // first: every thread started from here on inherits the blocked mask
  auto rt = mpi_start(nullptr, nullptr);
  if (!rt) {
    spdlog::error("{}", rt.error().message);
    return 1;
  }
  const int rank = (*rt)->rank;
  auto copts = o.run.cluster();
  if (!copts) {  // the same flags on every rank: every rank stops here
    spdlog::error("{}", copts.error().message);
    return 2;
  }
  if (rank != 0) signals.ignore();  // workers wait for rank 0's shutdown message

  // Rank 0: the servers come up before the model loads, so health says NOT_SERVING meanwhile.
  std::shared_ptr<rpc::GrpcServer> server;
  std::shared_ptr<rpc::HttpServer> http;
  rpc::Metrics metrics;
  std::string startup_error;
  Stopper stopper;
  std::thread watcher;
  if (rank == 0) {
    std::signal(SIGPIPE, SIG_IGN);  // a client that vanishes mid-write is an error value, not a signal
    rpc::ServerOptions so;
    so.listen = o.listen;
    so.configured_speculation = *parse_spec_mode(o.run.speculation);
    so.max_queue = o.run.max_queue;
    so.max_threads = 2 * (o.run.max_seqs + o.run.max_queue) + 32;
    so.metrics = &metrics;
    auto tls = rpc::load_tls(o.tls_cert, o.tls_key, o.tls_client_ca);
    Result<rpc::ApiKeys> keys = rpc::ApiKeys{};
    if (!o.api_key_file.empty()) keys = rpc::load_api_keys(o.api_key_file);
    if (!tls) {
      startup_error = tls.error().message;
    } else if (!keys) {
      startup_error = keys.error().message;
    } else {
      so.tls = *tls;
      so.keys = *keys;
      if (keys->enabled()) spdlog::info("API keys: {} loaded from {}", keys->digests.size(), o.api_key_file);
      auto s = rpc::start_server(so);
      if (!s) {
        startup_error = s.error().message;
      } else {
        server = *s;
        if (!o.port_file.empty())
          if (auto st = write_port_file(o.port_file, rpc::bound_port(*server)); !st) startup_error = st.error().message;
      }
    }
    if (startup_error.empty() && !o.http_listen.empty()) {
      rpc::HttpOptions ho;
      ho.listen = o.http_listen;
      ho.metrics_listen = o.metrics_listen;
      ho.served_model = o.served_model_name.empty() ? rpc::default_model_name(o.run.model) : o.served_model_name;
      ho.threads = so.max_threads;
      ho.tls = so.tls;
      ho.keys = so.keys;
      auto h = rpc::start_http_server(ho, metrics);
      if (!h) {
        startup_error = h.error().message;
      } else {
        http = *h;
        if (!o.http_port_file.empty())
          if (auto st = write_port_file(o.http_port_file, rpc::http_port(*http)); !st) startup_error = st.error().message;
      }
    }
    watcher = std::thread([&] {
      auto ev = signals.wait(std::nullopt);
      if (ev.wake != StopSignals::Wake::Signal) return;
      spdlog::info("{}: draining — new requests get UNAVAILABLE, in-flight requests finish (up to {} s; a second "
                   "signal cancels them now)", signal_name(ev.signo), o.drain_timeout);
      if (server) rpc::set_serving(*server, false);
      if (http) rpc::set_state(*http, rpc::ServeState::Draining);
      stopper.request(1);
      ev = signals.wait(std::chrono::milliseconds(static_cast<int64_t>(o.drain_timeout * 1e3)));
      if (ev.wake == StopSignals::Wake::Closed) return;
      if (ev.wake == StopSignals::Wake::Signal)
        spdlog::warn("{} again: cancelling the requests still in flight", signal_name(ev.signo));
      else
        spdlog::warn("drain timeout ({} s) passed: cancelling the requests still in flight", o.drain_timeout);
      stopper.request(2);
    });
  }
  auto finish_rank0 = [&](int rc) {
    if (http) rpc::shutdown(*http);
    if (server) rpc::shutdown(*server, std::chrono::seconds(5));
    signals.close();
    if (watcher.joinable()) watcher.join();
    return rc;
  };

  auto cluster = start_cluster(*copts, rank, (*rt)->size);
  if (!cluster) {
    spdlog::error("{}", cluster.error().message);
    return rank == 0 ? finish_rank0(1) : 1;
  }
  Cluster& c = **cluster;
  if (!c.role.coordinator()) {
    run_worker_rank(c);
    return 0;
  }
  auto tok = Tokenizer::create(c.target_file.vocab);
  if (!tok) startup_error = fmt::format("{}: {}", o.run.model, tok.error().message);
  ChatSetup chat;
  if (auto cs = chat_setup(c.target_file, o.chat_template); !cs) {
    startup_error = cs.error().message;
  } else {
    chat = std::move(*cs);
    if (chat.tmpl)
      spdlog::info("chat prompts: rendered with {} ({} bytes)",
                   o.chat_template.empty() ? "the model's tokenizer.chat_template" : o.chat_template,
                   chat.tmpl->source().size());
    else
      spdlog::warn("chat prompts will be refused: {}", chat.unavailable);
  }
  if (!startup_error.empty()) {
    spdlog::error("{}", startup_error);
    c.target->shutdown();  // release the other ranks: they exit too
    if (c.remote_draft()) remote_channel(c.comms.heads)->shutdown();
    return finish_rank0(1);
  }
  EngineOptions eo = o.run.engine();
  eo.stage_stats_seconds = 5;  // per-member busy/wait for the metrics: one small message per member
  Engine engine(c, *tok, eo);
  if (o.warmup && stopper.requested() == 0) {
    spdlog::info("warming up{}", engine.has_drafter() ? " (and profiling the speculation modes for 'auto')" : "");
    if (auto st = engine.warmup(); !st) spdlog::warn("warm-up failed: {}", st.error().message);
  }
  for (auto t0 = std::chrono::steady_clock::now();
       stopper.requested() == 0 && std::chrono::steady_clock::now() - t0 < std::chrono::duration<double>(o.startup_delay);)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  if (http) rpc::attach(*http, engine, c, chat);
  rpc::attach(*server, engine, c, std::move(chat));
  stopper.attach(&engine);  // a signal that came during start-up stops the engine now
  if (stopper.requested() == 0) {
    engine.mark_ready();
    rpc::set_serving(*server, true);
    if (http) rpc::set_state(*http, rpc::ServeState::Serving);
    spdlog::info("serving tandem.v1 on {} (port {}): layout {}, {} slots, queue {}, speculation {}", o.listen,
                 rpc::bound_port(*server), c.opts.layout.describe(), c.opts.max_seqs, o.run.max_queue,
                 o.run.speculation);
  }
  auto st = engine.run();
  rpc::set_serving(*server, false);
  if (http) rpc::set_state(*http, rpc::ServeState::Draining);
  const EngineInfo info = engine.info();
  stopper.attach(nullptr);
  const int rc = finish_rank0(st ? 0 : 1);
  engine.shutdown_groups();
  if (!st) spdlog::error("engine: {}", st.error().message);
  spdlog::info("stopped: {} requests completed, {} cancelled, {} failed; {} tokens generated", info.completed,
               info.cancelled, info.failed, info.tokens_generated);
  return rc;
}

}  // namespace

void add_serve_command(CLI::App& app) {
  auto o = std::make_shared<ServeOptions>();
  o->run.max_seqs = 8;
  auto* c = app.add_subcommand("serve", "Serve a model over gRPC (tandem.v1) from an MPI job; rank 0 listens");
  c->add_option("--listen", o->listen, "HOST:PORT to listen on (port 0: any free port)")->capture_default_str();
  c->add_option("--port-file", o->port_file, "Write the bound gRPC port to this file once listening");
  c->add_option("--http-listen", o->http_listen,
                "Also serve the OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, /v1/models, "
                "/health, /metrics) on HOST:PORT, e.g. 127.0.0.1:8080 (port 0: any free port)");
  c->add_option("--http-port-file", o->http_port_file, "Write the bound HTTP port to this file once listening");
  c->add_option("--metrics-listen", o->metrics_listen, "Also serve /metrics (Prometheus) alone on HOST:PORT")
      ->needs("--http-listen");
  c->add_option("--served-model-name", o->served_model_name,
                "The model's name in the HTTP API (default: the model file's name without .gguf/.bin)");
  c->add_option("--tls-cert", o->tls_cert, "PEM certificate (chain): serve gRPC and HTTP over TLS")->check(CLI::ExistingFile);
  c->add_option("--tls-key", o->tls_key, "PEM private key of --tls-cert")->check(CLI::ExistingFile);
  c->add_option("--tls-client-ca", o->tls_client_ca,
                "PEM CA certificate(s): require client certificates signed by it (mutual TLS)")
      ->check(CLI::ExistingFile);
  c->add_option("--api-key-file", o->api_key_file,
                "File of accepted API keys, one per line: gRPC calls need 'authorization: Bearer <key>' metadata, "
                "HTTP /v1 requests the 'Authorization: Bearer <key>' header (keys are never logged)")
      ->check(CLI::ExistingFile);
  c->add_flag("--warmup,!--no-warmup", o->warmup,
              "Warm up (and profile the speculation modes for 'auto') before reporting SERVING (default: on)");
  c->add_option("--drain-timeout", o->drain_timeout,
                "Seconds in-flight requests may take to finish after a stop signal before they are cancelled")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  c->add_option("--startup-delay", o->startup_delay,
                "Seconds to stay NOT_SERVING after warm-up (e.g. to let probes observe the transition)")
      ->check(CLI::Range(0.0, 3600.0));
  c->add_option("--chat-template", o->chat_template,
                "Jinja chat template file for chat prompts, instead of the model's tokenizer.chat_template")
      ->check(CLI::ExistingFile);
  add_run_options(*c, o->run, /*server=*/true);
  if (auto* seqs = c->get_option_no_throw("--max-seqs")) seqs->capture_default_str();
  c->callback([o] {
    const int rc = serve(*o);
    if (rc != 0) fail(rc);
  });
}

}  // namespace tandem::cli
