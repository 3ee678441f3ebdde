#include "dist/polite_wait.h"

#include <sched.h>

#include <chrono>
#include <thread>

namespace tandem {
namespace {

// Spin this long before sleeping: longer than the gap between consecutive decode steps.
constexpr double kSpinSeconds = 0.005;

template <class Poll>
void wait_until(Poll poll) {
  const double t0 = MPI_Wtime();
  int sleep_us = 20;
  while (!poll()) {
    if (MPI_Wtime() - t0 < kSpinSeconds) {
      // Free on a quiet core (nothing else is runnable); on an oversubscribed one it lets the
      // rank that has work run instead of this one spinning.
      sched_yield();
      continue;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(sleep_us));
    sleep_us = sleep_us < 1000 ? sleep_us * 2 : 1000;
  }
}

}  // namespace

void wait_polite(MPI_Request* req, MPI_Status* status) {
  wait_until([&] {
    int done = 0;
    MPI_Test(req, &done, status);
    return done != 0;
  });
}

void probe_polite(int source, int tag, MPI_Comm comm, MPI_Status* status) {
  wait_until([&] {
    int flag = 0;
    MPI_Iprobe(source, tag, comm, &flag, status);
    return flag != 0;
  });
}

}  // namespace tandem
