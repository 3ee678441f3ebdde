// A cumulative-bucket histogram of seconds, the shape Prometheus exposes (`le` buckets, sum,
// count). Plain data: whoever owns one guards it; copies are snapshots.
#pragma once
#include <cstdint>
#include <vector>

namespace tandem {

struct Histogram {
  std::vector<double> bounds;   // upper bounds, increasing; +Inf is implicit
  std::vector<int64_t> counts;  // per bucket (not cumulative), bounds.size() + 1 entries
  double sum = 0;
  int64_t count = 0;

  explicit Histogram(std::vector<double> b = {}) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double v) {
    size_t i = 0;
    while (i < bounds.size() && v > bounds[i]) ++i;
    ++counts[i];
    sum += v;
    ++count;
  }
};

// 1 ms .. 60 s, roughly ×2.5 apart: covers a decode step on a tiny model up to a long prefill.
inline std::vector<double> latency_buckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
}

}  // namespace tandem
