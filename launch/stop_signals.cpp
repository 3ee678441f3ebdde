#include "launch/stop_signals.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tandem::cli {
namespace {

// A signal handler can reach nothing but globals; this is the write end of the live
// StopSignals' pipe (at most one exists: `tandem serve` creates it once).
volatile sig_atomic_t g_write_fd = -1;
constexpr unsigned char kClosed = 0;

void on_signal(int signo) {
  const int saved = errno;
  const int fd = g_write_fd;
  if (fd >= 0) {
    const unsigned char b = static_cast<unsigned char>(signo);
    [[maybe_unused]] auto n = ::write(fd, &b, 1);
  }
  errno = saved;
}

sigset_t stop_set() {
  sigset_t s;
  sigemptyset(&s);
  for (int sig : kStopSignals) sigaddset(&s, sig);
  return s;
}

}  // namespace

const char* signal_name(int signo) {
  switch (signo) {
    case SIGINT: return "SIGINT";
    case SIGTERM: return "SIGTERM";
    case SIGUSR1: return "SIGUSR1";
    default: return "signal";
  }
}

StopSignals::StopSignals() {
  static_assert(SIGINT == 2 && SIGTERM == 15 && SIGUSR1 == 10);
  if (::pipe2(pipe_, O_CLOEXEC | O_NONBLOCK) != 0) pipe_[0] = pipe_[1] = -1;
  g_write_fd = pipe_[1];
  const sigset_t s = stop_set();
  pthread_sigmask(SIG_BLOCK, &s, nullptr);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  for (int sig : kStopSignals) sigaction(sig, &sa, nullptr);
}

StopSignals::~StopSignals() {
  // Ignored, not the default action: mpirun forwards a signal to every rank, and a rank released
  // by rank 0's shutdown message may get its copy only now; the job is ending cleanly anyway.
  ignore();
  g_write_fd = -1;
  for (int fd : pipe_)
    if (fd >= 0) ::close(fd);
}

void StopSignals::ignore() {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = SIG_IGN;
  for (int sig : kStopSignals) sigaction(sig, &sa, nullptr);
}

StopSignals::Event StopSignals::wait(std::optional<std::chrono::milliseconds> timeout) {
  if (!unblocked_) {
    const sigset_t s = stop_set();
    pthread_sigmask(SIG_UNBLOCK, &s, nullptr);
    unblocked_ = true;
  }
  if (pipe_[0] < 0) return {Wake::Closed};
  const auto deadline = std::chrono::steady_clock::now() + timeout.value_or(std::chrono::milliseconds(0));
  while (true) {
    int ms = -1;
    if (timeout) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) return {Wake::Timeout};
      ms = static_cast<int>(std::min<long long>(left.count(), 1 << 30));
    }
    pollfd p{pipe_[0], POLLIN, 0};
    const int r = ::poll(&p, 1, ms);
    if (r < 0 && errno == EINTR) continue;  // the handler ran on this thread; the byte is in the pipe
    if (r <= 0) continue;                   // timeout is rechecked at the top
    unsigned char b = 0;
    const ssize_t n = ::read(pipe_[0], &b, 1);
    if (n != 1) continue;
    if (b == kClosed) {
      // Leave the marker for later calls.
      [[maybe_unused]] auto w = ::write(pipe_[1], &kClosed, 1);
      return {Wake::Closed};
    }
    return {Wake::Signal, b};
  }
}

void StopSignals::close() {
  if (pipe_[1] >= 0) [[maybe_unused]] auto w = ::write(pipe_[1], &kClosed, 1);
}

}  // namespace tandem::cli
