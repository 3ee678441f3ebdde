#include "decode/ngram_drafter.h"

#include <algorithm>

namespace tandem {

std::vector<int32_t> ngram_draft(std::span<const int32_t> hist, int n_draft, const NgramOptions& o) {
  const int len = static_cast<int>(hist.size());
  for (int n = std::min(o.max_n, len - 1); n >= o.min_n; --n) {
    const auto key = hist.subspan(len - n);
    // Most recent earlier occurrence: its continuation is the likeliest to recur.
    for (int i = len - n - 1; i >= 0; --i) {
      if (!std::equal(key.begin(), key.end(), hist.begin() + i)) continue;
      const int from = i + n;
      const int take = std::min(n_draft, len - from);
      if (take <= 0) continue;
      return std::vector<int32_t>(hist.begin() + from, hist.begin() + from + take);
    }
  }
  return {};
}

}  // namespace tandem
