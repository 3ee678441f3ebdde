// Support for the end-to-end tests: child processes (spawned in their own process group, always
// reaped), `tandem serve` jobs under mpirun on a free port, and the files they leave.
#pragma once
#include <sys/types.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "rpc/grpc_client.h"

namespace tandem::e2e {

using namespace std::chrono_literals;

std::string tandem_bin();
std::string testdata_model(const std::string& name);  // ../shared/testdata/models/<name>
std::string fresh_dir(const std::string& name);        // <testwork>/e2e/<name>, emptied
// A synthetic model slow enough (~200 tok/s on one core) that a stream lasts seconds: made once
// with `tandem model synth` (vocabulary of stories260K, 4096 positions) and reused.
const std::string& slow_model();

// posix_spawn with default signal dispositions, stdin from /dev/null, stdout+stderr to `log`.
pid_t spawn(const std::vector<std::string>& argv, const std::string& log);
// Exit code (128 + signal when killed) once `pid` has ended, nullopt if it runs past `timeout`.
std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout);
// Runs to completion (killed after `timeout`); returns the exit code.
int run(const std::vector<std::string>& argv, const std::string& log, std::chrono::milliseconds timeout);
std::vector<pid_t> descendants(pid_t pid);
int mpi_rank_of(pid_t pid);    // OMPI_COMM_WORLD_RANK of a process, -1 if none
long rss_kib(pid_t pid);       // VmRSS, -1 if unreadable
std::string read_text(const std::string& path);
std::vector<int32_t> read_ids(const std::string& path);  // whitespace-separated ints

struct ServerConfig {
  std::string model;
  std::string draft;       // "" | file | "ngram" | "layers:K"
  int draft_tp = 0;
  std::string speculation = "auto";
  int max_seqs = 8;
  int max_queue = 64;
  bool warmup = true;
  double startup_delay = 0;
  double drain_timeout = 30;
  bool wrapper = false;    // launch through tandem-mpirun instead of mpirun
  bool wait_serving = true;
  bool http = false;                   // also serve the HTTP API (--http-listen 127.0.0.1:0)
  rpc::ClientSecurity client_security;  // how client() connects (a TLS server needs its CA)
  std::vector<std::string> extra;
};

class Server {
 public:
  // Starts the job and waits for its port file (and for SERVING unless !wait_serving); fails the
  // calling test (with the server log) if it does not come up within a minute.
  Server(const ServerConfig& c, const std::string& name);
  ~Server();  // kills whatever is left of the job
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  bool up() const { return port_ > 0; }
  std::string addr() const { return "127.0.0.1:" + std::to_string(port_); }
  int http_port() const { return http_port_; }  // 0 unless ServerConfig::http
  std::string dir() const { return dir_; }
  rpc::Client& client() { return *client_; }
  pid_t launcher() const { return pid_; }   // mpirun, or the tandem-mpirun script
  pid_t rank_pid(int rank) const;           // -1 if not found
  // Waits for the job to end; its exit code, or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  std::string log() const { return read_text(log_); }

 private:
  void kill_all();
  std::string log_, port_file_, dir_;
  pid_t pid_ = -1;
  int port_ = 0, http_port_ = 0;
  std::optional<int> exit_;
  std::unique_ptr<rpc::Client> client_;
};

// Server info, failing the test on an RPC error.
v1::ServerInfo server_info(rpc::Client& c);
// Polls GetServerInfo until `pred` holds (true) or `timeout` passes (false).
template <class Pred>
bool wait_for(rpc::Client& c, Pred pred, std::chrono::milliseconds timeout = 10s) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (true) {
    v1::ServerInfo s;
    if (c.server_info(s, 5s).ok() && pred(s)) return true;
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(20ms);
  }
}

v1::GenerateRequest text_request(const std::string& prompt, int max_tokens, v1::Speculation mode = v1::SPECULATION_AUTO);

}  // namespace tandem::e2e
