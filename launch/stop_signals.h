// Shutdown requests by signal for `tandem serve`: SIGINT, SIGTERM and SIGUSR1.
//
// Why a handler and not only sigwait: threads that exist before main() (OpenBLAS's pool, created
// when the library loads) do not block the signals, and a process-directed signal with the
// default action delivered to one of them would kill the process. So the signals are blocked in
// the thread that creates this object (every thread started afterwards — MPI's, gRPC's, the
// engine's — inherits the mask), and a handler that only writes the signal number to a pipe
// catches whatever still lands elsewhere. wait() reads that pipe on a dedicated thread.
//
// SIGUSR1 is here because mpirun forwards it to every rank while it turns SIGINT/SIGTERM into a
// job kill with exit status 1 (see launch/tandem-mpirun, which maps them to SIGUSR1).
#pragma once
#include <chrono>
#include <optional>

namespace tandem::cli {

inline constexpr int kStopSignals[] = {2 /*SIGINT*/, 15 /*SIGTERM*/, 10 /*SIGUSR1*/};

class StopSignals {
 public:
  StopSignals();   // blocks the signals in this thread and installs the handler
  ~StopSignals();  // leaves the signals ignored: the process is about to exit
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  // On ranks that must not react themselves (they wait for rank 0's shutdown message).
  void ignore();

  enum class Wake { Signal, Timeout, Closed };
  struct Event {
    Wake wake;
    int signo = 0;
  };
  // Blocks until a signal arrives, `timeout` passes (nullopt: never), or close() is called.
  // Call from one dedicated thread (it unblocks the signals for itself so one is always deliverable).
  Event wait(std::optional<std::chrono::milliseconds> timeout);
  // Wakes wait() with Closed, now and on every later call.
  void close();

 private:
  int pipe_[2] = {-1, -1};
  bool unblocked_ = false;
};

const char* signal_name(int signo);

}  // namespace tandem::cli
