// How many tokens to draft per block (γ), adapted online.
//
// The target's step time is modelled as T(rows) = a + b·rows, fitted to measured steps (on a GPU
// b ≈ 0; on a CPU every verified row costs compute, so long blocks are not free). With α the
// measured per-token acceptance and t the drafter's time per token:
//  * vanilla SD runs drafter and target one after the other: γ maximises
//    E[tokens] / (γ·t + T(γ+1)), E[tokens] = (1 − α^(γ+1)) / (1 − α);
//  * PEARL runs them at once, so a block costs max(T(γ), γ·t) and yields (1 − α^γ)/(1 − α)
//    tokens in steady post-verify (the next block's first token is checked against this block's
//    last row). With b = 0 this gives the PEARL paper's rule γ ≈ T/t.
// `extra_rows`: rows other sequences add to the same step. Every few blocks γ is moved one step
// off the optimum, so the fit sees more than the row count it keeps choosing.
#pragma once
#include <vector>

namespace tandem {

class DraftLength {
 public:
  DraftLength(int fixed, int max_len);
  int pearl(int extra_rows = 0) const;
  int sd(int extra_rows = 0) const;
  void record_target_step(int rows, double seconds);
  void record_draft_token(double seconds);
  void record_acceptance(int tested, int accepted);
  double acceptance() const { return alpha_; }
  double draft_token() const { return t_draft_; }
  double target_step(int rows) const;  // the fitted model; 0 until a step was measured

 private:
  int choose(bool parallel, int extra_rows) const;
  int fixed_, max_len_;
  mutable unsigned picks_ = 0;  // for the periodic exploration
  std::vector<double> t_rows_;  // EMA of step time by row count (index = rows, capped)
  double t_draft_ = 0, alpha_ = 0.7;
};

}  // namespace tandem
