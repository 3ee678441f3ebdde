// ThreadPool: every thread runs each region once, parallel_for covers the range exactly with
// grain-aligned contiguous pieces, workers wake after sleeping, exceptions reach the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "shard/kernels/thread_pool.h"

using namespace tandem;

TEST(ThreadPool, RunCallsEveryThreadOnce) {
  for (int n : {1, 2, 3, 4}) {
    ThreadPool pool(n);
    EXPECT_EQ(pool.size(), n);
    for (int rep = 0; rep < 50; ++rep) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> bad_count{0};
      std::mutex mu;
      std::set<std::thread::id> ids;
      pool.run([&](int i, int nt) {
        if (nt != n) bad_count++;
        hits[i]++;
        std::lock_guard lock(mu);
        ids.insert(std::this_thread::get_id());
      });
      for (int i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "thread " << i;
      ASSERT_EQ(bad_count.load(), 0);
      ASSERT_EQ(static_cast<int>(ids.size()), n);  // distinct OS threads
      ASSERT_TRUE(ids.count(std::this_thread::get_id()));  // the caller is thread 0
    }
  }
}

TEST(ThreadPool, SingleThreadRunsInline) {
  ThreadPool pool(1);
  std::thread::id seen;
  pool.run([&](int i, int n) {
    EXPECT_EQ(i, 0);
    EXPECT_EQ(n, 1);
    seen = std::this_thread::get_id();
  });
  EXPECT_EQ(seen, std::this_thread::get_id());
  int64_t b = -1, e = -1;
  pool.parallel_for(10, 3, [&](int64_t x, int64_t y) { b = x, e = y; });
  EXPECT_EQ(b, 0);
  EXPECT_EQ(e, 10);
}

TEST(ThreadPool, ParallelForCoversRangeInGrainAlignedPieces) {
  for (int nt : {1, 2, 3})
    for (int64_t n : {0, 1, 5, 16, 17, 100, 1001})
      for (int64_t grain : {1, 4, 16, 200}) {
        ThreadPool pool(nt);
        std::vector<std::atomic<int>> covered(n);
        std::mutex mu;
        std::vector<std::pair<int64_t, int64_t>> pieces;
        pool.parallel_for(n, grain, [&](int64_t b, int64_t e) {
          for (int64_t i = b; i < e; ++i) covered[i]++;
          std::lock_guard lock(mu);
          pieces.emplace_back(b, e);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(covered[i].load(), 1) << n << " " << grain << " " << nt;
        ASSERT_LE(static_cast<int>(pieces.size()), nt);
        for (auto [b, e] : pieces) {
          ASSERT_LT(b, e);
          ASSERT_EQ(b % grain, 0);
          if (e != n) {
            ASSERT_EQ(e % grain, 0);
          }
        }
      }
}

// Many short regions back to back (the decode pattern) and regions after the workers went to sleep.
TEST(ThreadPool, ManyRegionsAndWakeAfterSleep) {
  ThreadPool pool(3);
  std::atomic<int64_t> total{0};
  for (int rep = 0; rep < 5000; ++rep) pool.run([&](int i, int) { total += i + 1; });
  EXPECT_EQ(total.load(), 5000 * 6);
  for (int rep = 0; rep < 3; ++rep) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // well past the spin time
    std::atomic<int> ran{0};
    pool.run([&](int, int) { ran++; });
    EXPECT_EQ(ran.load(), 3);
  }
}

TEST(ThreadPool, ExceptionsReachTheCaller) {
  ThreadPool pool(2);
  EXPECT_THROW(pool.run([](int i, int) {
    if (i == 1) throw std::runtime_error("worker failed");
  }),
               std::runtime_error);
  EXPECT_THROW(pool.run([](int i, int) {
    if (i == 0) throw std::runtime_error("caller failed");
  }),
               std::runtime_error);
  std::atomic<int> ran{0};
  pool.run([&](int, int) { ran++; });  // still usable
  EXPECT_EQ(ran.load(), 2);
}
