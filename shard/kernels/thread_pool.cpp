#include "shard/kernels/thread_pool.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sched.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TANDEM_CPU_RELAX() _mm_pause()
#else
#define TANDEM_CPU_RELAX() ((void)0)
#endif

namespace tandem {

// One region at a time: the caller publishes `job` and bumps `generation`; each worker runs its
// share and bumps `done`. Workers spin on `generation` for `spin_ns` after a region (regions of a
// decode step come every few µs), then sleep on it (a futex, via atomic::wait) so an idle rank
// costs no CPU ($TANDEM_POOL_SPIN_US sets the spin time, default 200 µs). The caller only issues
// a wake-up system call when some worker is asleep.
struct ThreadPoolState {
  alignas(64) std::atomic<uint32_t> generation{0};
  alignas(64) std::atomic<int> done{0};
  alignas(64) std::atomic<int> sleeping{0};
  const std::function<void(int, int)>* job = nullptr;
  bool stop = false;
  int64_t spin_ns = 200'000;
  std::mutex error_mu;
  std::exception_ptr error;
  std::vector<std::thread> workers;
  // The CPU each pool thread last ran on (-1: unknown), see spread_out().
  std::unique_ptr<std::atomic<int>[]> cpu;
};

namespace {

// Spinning longer than this without progress yields the core: the thread we wait for may be
// queued on our own CPU (more threads than free cores, e.g. other ranks or a build).
constexpr std::chrono::nanoseconds kYieldAfter{5'000};

// Waits for the workers of the current region; yields the core once the wait gets long.
void wait_done(ThreadPoolState& s, int expected) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; s.done.load(std::memory_order_acquire) != expected; ++i) {
    TANDEM_CPU_RELAX();
    if ((i & 255) == 255 && std::chrono::steady_clock::now() - t0 > kYieldAfter) std::this_thread::yield();
  }
}

int current_cpu() {
#if defined(__linux__)
  return sched_getcpu();
#else
  return -1;
#endif
}

// A worker woken from its futex is often queued on the CPU of the thread that woke it (the
// caller), and as both then keep running (spinning) the scheduler may leave them sharing one
// CPU for many milliseconds while another CPU idles — halving a region's speed. So a woken
// worker that finds itself on a CPU another pool thread uses moves away by briefly excluding
// the pool's CPUs from its affinity mask (which migrates it at once), then restores the mask.
void spread_out(ThreadPoolState& s, int index, int n) {
#if defined(__linux__)
  const int here = current_cpu();
  cpu_set_t allowed;
  if (here < 0 || sched_getaffinity(0, sizeof allowed, &allowed) != 0) return;
  cpu_set_t free_cpus = allowed;
  bool clash = false;
  for (int j = 0; j < n; ++j) {
    const int c = j == index ? -1 : s.cpu[j].load(std::memory_order_relaxed);
    if (c < 0 || c >= CPU_SETSIZE) continue;
    clash |= c == here;
    CPU_CLR(c, &free_cpus);
  }
  if (clash && CPU_COUNT(&free_cpus) > 0 && sched_setaffinity(0, sizeof free_cpus, &free_cpus) == 0)
    sched_setaffinity(0, sizeof allowed, &allowed);
#endif
  s.cpu[index].store(current_cpu(), std::memory_order_relaxed);
}

void worker_loop(ThreadPoolState& s, int index, int n) {
  s.cpu[index].store(current_cpu(), std::memory_order_relaxed);
  uint32_t seen = 0;
  for (;;) {
    // Spin first: the next region usually starts within microseconds.
    uint32_t g = s.generation.load(std::memory_order_acquire);
    if (g == seen) {
      auto t0 = std::chrono::steady_clock::now();
      for (int i = 0;; ++i) {
        TANDEM_CPU_RELAX();
        g = s.generation.load(std::memory_order_acquire);
        if (g != seen) break;
        if ((i & 255) != 255) continue;
        const auto spent = std::chrono::steady_clock::now() - t0;
        if (spent > std::chrono::nanoseconds(s.spin_ns)) {
          s.sleeping.fetch_add(1, std::memory_order_seq_cst);
          s.generation.wait(seen, std::memory_order_seq_cst);
          s.sleeping.fetch_sub(1, std::memory_order_seq_cst);
          spread_out(s, index, n);
          t0 = std::chrono::steady_clock::now();
        } else if (spent > kYieldAfter) {
          // More threads than free cores (other ranks, compilers): let them run.
          std::this_thread::yield();
        }
      }
    }
    seen = g;
    if (s.stop) return;
    try {
      (*s.job)(index, n);
    } catch (...) {
      std::lock_guard lock(s.error_mu);
      if (!s.error) s.error = std::current_exception();
    }
    s.done.fetch_add(1, std::memory_order_acq_rel);
  }
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_(std::max(1, n_threads)), state_(std::make_unique<ThreadPoolState>()) {
  if (const char* e = std::getenv("TANDEM_POOL_SPIN_US")) state_->spin_ns = std::max(0L, std::atol(e)) * 1000;
  state_->cpu = std::make_unique<std::atomic<int>[]>(n_);
  for (int i = 0; i < n_; ++i) state_->cpu[i].store(-1);
  for (int i = 1; i < n_; ++i) state_->workers.emplace_back(worker_loop, std::ref(*state_), i, n_);
}

ThreadPool::~ThreadPool() {
  auto& s = *state_;
  s.stop = true;
  s.generation.fetch_add(1, std::memory_order_seq_cst);
  s.generation.notify_all();
  for (auto& t : s.workers) t.join();
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (n_ == 1) {
    fn(0, 1);
    return;
  }
  auto& s = *state_;
  s.job = &fn;
  s.done.store(0, std::memory_order_relaxed);
  const bool wake = s.sleeping.load(std::memory_order_seq_cst) > 0;
  if (wake) s.cpu[0].store(current_cpu(), std::memory_order_relaxed);  // for spread_out()
  s.generation.fetch_add(1, std::memory_order_seq_cst);
  if (wake || s.sleeping.load(std::memory_order_seq_cst) > 0) s.generation.notify_all();
  std::exception_ptr mine;
  try {
    fn(0, n_);
  } catch (...) {
    mine = std::current_exception();
  }
  wait_done(s, n_ - 1);
  s.job = nullptr;
  if (mine) std::rethrow_exception(mine);
  if (s.error) {
    std::exception_ptr e;
    std::swap(e, s.error);
    std::rethrow_exception(e);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t chunks = (n + grain - 1) / grain;
  if (n_ == 1 || chunks == 1) {
    fn(0, n);
    return;
  }
  run([&](int t, int nt) {
    // Thread t takes chunks [t*chunks/nt, (t+1)*chunks/nt): contiguous, sizes differ by at most one.
    const int64_t c0 = chunks * t / nt, c1 = chunks * (t + 1) / nt;
    const int64_t b = c0 * grain, e = std::min(n, c1 * grain);
    if (b < e) fn(b, e);
  });
}

}  // namespace tandem
