// A fixed pool of compute threads for one rank's kernels. The caller is thread 0. Workers spin
// briefly between parallel regions (a decode step has hundreds of short ones), then sleep.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>

namespace tandem {

struct ThreadPoolState;

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_; }
  // Runs fn(thread_index, n_threads) on every thread and returns when all are done.
  void run(const std::function<void(int, int)>& fn);
  // Splits [0, n) into contiguous ranges, one per thread, in multiples of `grain`.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  int n_;
  std::unique_ptr<ThreadPoolState> state_;
};

}  // namespace tandem
