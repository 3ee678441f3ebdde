// How many tokens to draft per block (γ), adapted online.
//
// PEARL runs drafter and target at the same time, so the best γ makes both sides finish
// together: γ = (target verify-step time) / (draft time per token). Vanilla SD runs them one
// after the other: γ maximises expected tokens per unit time, (1 - α^(γ+1)) / (1 - α) tokens
// for γ·t_draft + t_target seconds, with α the measured acceptance. Times are tracked per batch
// size (a batch of sequences makes the target step slower and shifts the optimum).
#pragma once
#include <vector>

namespace tandem {

class DraftLength {
 public:
  DraftLength(int fixed, int max_len, int max_batch);
  int pearl(int batch) const;
  int sd(int batch) const;
  void record_target_step(int batch, double seconds);
  void record_draft_token(double seconds);
  void record_acceptance(int tested, int accepted);
  double acceptance() const { return alpha_; }
  double target_step(int batch) const;
  double draft_token() const { return t_draft_; }

 private:
  int fixed_, max_len_;
  std::vector<double> t_target_;  // EMA per batch size (0 = unknown)
  double t_draft_ = 0, alpha_ = 0.7;
};

}  // namespace tandem
