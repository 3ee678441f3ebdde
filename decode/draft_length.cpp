#include "decode/draft_length.h"

#include <algorithm>
#include <cmath>

namespace tandem {
namespace {
constexpr double kEma = 0.2;
constexpr int kMaxRows = 256;
double ema(double old, double x) { return old <= 0 ? x : (1 - kEma) * old + kEma * x; }
}  // namespace

DraftLength::DraftLength(int fixed, int max_len) : fixed_(fixed), max_len_(std::max(1, max_len)), t_rows_(kMaxRows + 1, 0.0) {}

void DraftLength::record_target_step(int rows, double s) {
  rows = std::clamp(rows, 1, kMaxRows);
  t_rows_[rows] = ema(t_rows_[rows], s);
}

void DraftLength::record_draft_token(double s) {
  if (s > 0) t_draft_ = ema(t_draft_, s);
}

void DraftLength::record_acceptance(int tested, int accepted) {
  if (tested > 0) alpha_ = ema(alpha_, static_cast<double>(accepted) / tested);
}

double DraftLength::target_step(int rows) const {
  // Least-squares line through the measured row counts; one measured point gives a flat model.
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (int r = 1; r <= kMaxRows; ++r) {
    if (t_rows_[r] <= 0) continue;
    n += 1;
    sx += r;
    sy += t_rows_[r];
    sxx += double(r) * r;
    sxy += r * t_rows_[r];
  }
  if (n == 0) return 0;
  double b = 0;
  if (n > 1 && sxx * n - sx * sx > 0) b = std::max(0.0, (n * sxy - sx * sy) / (n * sxx - sx * sx));
  const double a = (sy - b * sx) / n;
  return std::max(1e-6, a + b * rows);
}

int DraftLength::choose(bool parallel, int extra_rows) const {
  if (fixed_ > 0) return fixed_;
  if (target_step(1) <= 0 || t_draft_ <= 0) return 4;  // no measurements yet
  const double a = std::clamp(alpha_, 0.01, 0.99);
  int best = 1;
  double best_rate = 0;
  for (int g = 1; g <= max_len_; ++g) {
    const double rate = parallel ? ((1 - std::pow(a, g)) / (1 - a)) / std::max(target_step(g + extra_rows), g * t_draft_)
                                 : ((1 - std::pow(a, g + 1)) / (1 - a)) / (g * t_draft_ + target_step(g + 1 + extra_rows));
    if (rate > best_rate) {
      best_rate = rate;
      best = g;
    }
  }
  // Explore: one block in eight drafts one token more or less than the model's optimum.
  const unsigned k = picks_++ % 16;
  if (k == 5) best = std::min(max_len_, best + 1);
  if (k == 13) best = std::max(1, best - 1);
  return best;
}

int DraftLength::pearl(int extra_rows) const { return choose(true, extra_rows); }
int DraftLength::sd(int extra_rows) const { return choose(false, extra_rows); }

}  // namespace tandem
