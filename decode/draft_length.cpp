#include "decode/draft_length.h"

#include <algorithm>
#include <cmath>

namespace tandem {
namespace {
constexpr double kEma = 0.2;
double ema(double old, double x) { return old <= 0 ? x : (1 - kEma) * old + kEma * x; }
}  // namespace

DraftLength::DraftLength(int fixed, int max_len, int max_batch)
    : fixed_(fixed), max_len_(std::max(1, max_len)), t_target_(std::max(1, max_batch) + 1, 0.0) {}

double DraftLength::target_step(int batch) const {
  batch = std::clamp(batch, 1, static_cast<int>(t_target_.size()) - 1);
  if (t_target_[batch] > 0) return t_target_[batch];
  for (int b = batch; b >= 1; --b)
    if (t_target_[b] > 0) return t_target_[b];
  for (double t : t_target_)
    if (t > 0) return t;
  return 0;
}

int DraftLength::pearl(int batch) const {
  if (fixed_ > 0) return fixed_;
  const double tt = target_step(batch);
  if (tt <= 0 || t_draft_ <= 0) return 4;
  return std::clamp(static_cast<int>(std::lround(tt / t_draft_)), 1, max_len_);
}

int DraftLength::sd(int batch) const {
  if (fixed_ > 0) return fixed_;
  const double tt = target_step(batch);
  if (tt <= 0 || t_draft_ <= 0) return 4;
  const double a = std::clamp(alpha_, 0.01, 0.99);
  int best = 1;
  double best_rate = 0;
  for (int g = 1; g <= max_len_; ++g) {
    const double tokens = (1 - std::pow(a, g + 1)) / (1 - a);
    const double rate = tokens / (g * t_draft_ + tt);
    if (rate > best_rate) {
      best_rate = rate;
      best = g;
    }
  }
  return best;
}

void DraftLength::record_target_step(int batch, double s) {
  batch = std::clamp(batch, 1, static_cast<int>(t_target_.size()) - 1);
  t_target_[batch] = ema(t_target_[batch], s);
}

void DraftLength::record_draft_token(double s) {
  if (s > 0) t_draft_ = ema(t_draft_, s);
}

void DraftLength::record_acceptance(int tested, int accepted) {
  if (tested > 0) alpha_ = ema(alpha_, static_cast<double>(accepted) / tested);
}

}  // namespace tandem
