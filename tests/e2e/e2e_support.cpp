#include "e2e_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <sstream>

extern char** environ;

namespace tandem::e2e {
namespace fs = std::filesystem;

namespace {
// As root, Open MPI refuses to start without these; ctest sets them, a direct run gets them here.
[[maybe_unused]] const bool kRootEnv = setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0) == 0 &&
                                       setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0) == 0;
}  // namespace

std::string tandem_bin() { return TANDEM_BIN; }
std::string testdata_model(const std::string& name) { return std::string(TANDEM_TESTDATA) + "/models/" + name; }

std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::path(TANDEM_TEST_WORK) / "e2e" / name;
  std::error_code ec;
  fs::remove_all(d, ec);
  fs::create_directories(d);
  return d.string();
}

const std::string& slow_model() {
  static std::string path = [] {
    const fs::path dir = fs::path(TANDEM_TEST_WORK) / "e2e";
    fs::create_directories(dir);
    const fs::path out = dir / "slow-512x8.gguf";
    if (fs::exists(out)) return out.string();
    // Written under a unique name and renamed: tests running in parallel may both make it.
    const std::string tmp = out.string() + "." + std::to_string(getpid());
    const int rc = run({tandem_bin(), "model", "synth", "--out", tmp, "--dim", "512", "--layers", "8", "--heads", "8",
                        "--kv-heads", "4", "--ffn", "1536", "--ctx", "4096", "--vocab-from",
                        testdata_model("stories260K.gguf")},
                       tmp + ".log", 120s);
    EXPECT_EQ(rc, 0) << read_text(tmp + ".log");
    fs::rename(tmp, out);
    return out.string();
  }();
  return path;
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawnattr_t at;
  posix_spawnattr_init(&at);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setpgroup(&at, 0);  // own process group: a signal to it never reaches the test
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, args[0], &fa, &at, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  EXPECT_EQ(rc, 0) << "cannot start " << argv[0];
  return rc == 0 ? pid : -1;
}

std::optional<int> wait_exit(pid_t pid, std::chrono::milliseconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int st = 0;
    const pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() > end) return std::nullopt;
    std::this_thread::sleep_for(10ms);
  }
}

int run(const std::vector<std::string>& argv, const std::string& log, std::chrono::milliseconds timeout) {
  const pid_t pid = spawn(argv, log);
  if (pid < 0) return -1;
  if (auto rc = wait_exit(pid, timeout)) return *rc;
  for (pid_t d : descendants(pid)) kill(d, SIGKILL);
  kill(pid, SIGKILL);
  (void)wait_exit(pid, 10s);
  ADD_FAILURE() << argv[0] << " " << (argv.size() > 1 ? argv[1] : "") << " did not finish in time; killed";
  return -1;
}

namespace {
pid_t parent_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  const size_t close = s.rfind(')');  // the command name may contain spaces
  if (close == std::string::npos) return -1;
  std::istringstream in(s.substr(close + 2));
  char state;
  pid_t ppid = -1;
  in >> state >> ppid;
  return ppid;
}
}  // namespace

std::vector<pid_t> descendants(pid_t root) {
  std::vector<std::pair<pid_t, pid_t>> all;  // pid, parent
  if (DIR* d = opendir("/proc")) {
    while (dirent* e = readdir(d)) {
      char* end = nullptr;
      const long pid = std::strtol(e->d_name, &end, 10);
      if (*end == '\0' && pid > 0) all.emplace_back(static_cast<pid_t>(pid), parent_of(static_cast<pid_t>(pid)));
    }
    closedir(d);
  }
  std::vector<pid_t> out{root};
  for (size_t i = 0; i < out.size(); ++i)
    for (auto [p, pp] : all)
      if (pp == out[i]) out.push_back(p);
  out.erase(out.begin());
  return out;
}

int mpi_rank_of(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/environ", std::ios::binary);
  std::string var;
  while (std::getline(f, var, '\0'))
    if (var.rfind("OMPI_COMM_WORLD_RANK=", 0) == 0) return std::atoi(var.c_str() + 21);
  return -1;
}

long rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  return -1;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::vector<int32_t> read_ids(const std::string& path) {
  std::ifstream f(path);
  std::vector<int32_t> ids;
  int32_t x;
  while (f >> x) ids.push_back(x);
  return ids;
}

Server::Server(const ServerConfig& c, const std::string& name) {
  // ctest runs each test in its own process, two at a time: tests of one suite start servers of
  // the same name at once, so the directory (port files, log) is per process.
  const std::string dir = fresh_dir(name + "." + std::to_string(getpid()));
  dir_ = dir;
  log_ = dir + "/server.log";
  port_file_ = dir + "/port";
  const int ranks = 1 + c.draft_tp;
  std::vector<std::string> argv;
  if (c.wrapper) {
    argv = {TANDEM_MPIRUN_WRAPPER, "--mpirun-arg", "--oversubscribe", "serve"};
  } else {
    argv = {TANDEM_MPIEXEC, "-n", std::to_string(ranks), "--oversubscribe", "--bind-to", "none", tandem_bin(), "serve"};
  }
  argv.insert(argv.end(), {"--model", c.model, "--listen", "127.0.0.1:0", "--port-file", port_file_, "--max-seqs",
                           std::to_string(c.max_seqs), "--max-queue", std::to_string(c.max_queue), "--speculation", c.speculation, "--drain-timeout",
                           std::to_string(c.drain_timeout), "--startup-delay", std::to_string(c.startup_delay)});
  if (!c.draft.empty()) argv.insert(argv.end(), {"--draft", c.draft, "--draft-tp", std::to_string(c.draft_tp)});
  if (!c.warmup) argv.push_back("--no-warmup");
  const std::string http_port_file = dir + "/http.port";
  if (c.http) argv.insert(argv.end(), {"--http-listen", "127.0.0.1:0", "--http-port-file", http_port_file});
  argv.insert(argv.end(), c.extra.begin(), c.extra.end());
  pid_ = spawn(argv, log_);
  if (pid_ < 0) return;
  const auto end = std::chrono::steady_clock::now() + 60s;
  while (!fs::exists(port_file_) || (c.http && !fs::exists(http_port_file))) {
    if ((exit_ = wait_exit(pid_, 0ms))) {
      ADD_FAILURE() << "server " << name << " exited with " << *exit_ << " before listening:\n" << log();
      return;
    }
    if (std::chrono::steady_clock::now() > end) {
      ADD_FAILURE() << "server " << name << " wrote no port file within 60 s:\n" << log();
      return;
    }
    std::this_thread::sleep_for(20ms);
  }
  port_ = std::atoi(read_text(port_file_).c_str());
  if (c.http) http_port_ = std::atoi(read_text(http_port_file).c_str());
  client_ = std::make_unique<rpc::Client>(addr(), c.client_security);
  if (c.wait_serving) {
    const rpc::Health h = client_->wait_until_serving(60s, 50ms);
    if (h != rpc::Health::Serving) {
      ADD_FAILURE() << "server " << name << " not SERVING within 60 s (" << rpc::to_string(h) << "):\n" << log();
      port_ = 0;
    }
  }
}

pid_t Server::rank_pid(int rank) const {
  for (pid_t p : descendants(pid_))
    if (mpi_rank_of(p) == rank && read_text("/proc/" + std::to_string(p) + "/comm").rfind("tandem", 0) == 0) return p;
  return -1;
}

std::optional<int> Server::wait(std::chrono::milliseconds timeout) {
  if (!exit_ && pid_ > 0) exit_ = wait_exit(pid_, timeout);
  return exit_;
}

void Server::kill_all() {
  if (pid_ <= 0 || exit_) return;
  // mpirun puts every rank in its own process group: collect the whole tree before killing.
  auto tree = descendants(pid_);
  for (pid_t p : tree) kill(p, SIGKILL);
  kill(pid_, SIGKILL);
  exit_ = wait_exit(pid_, 10s);
}

Server::~Server() {
  if (pid_ > 0 && !exit_) {
    // A clean stop first (mpirun: kills the ranks; the wrapper: drains), then force.
    kill(pid_, SIGTERM);
    exit_ = wait_exit(pid_, 10s);
    kill_all();
  }
}

v1::ServerInfo server_info(rpc::Client& c) {
  v1::ServerInfo s;
  const grpc::Status st = c.server_info(s, 10s);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return s;
}

v1::GenerateRequest text_request(const std::string& prompt, int max_tokens, v1::Speculation mode) {
  v1::GenerateRequest r;
  r.set_text(prompt);
  r.set_max_tokens(max_tokens);
  r.set_speculation(mode);
  return r;
}

}  // namespace tandem::e2e
