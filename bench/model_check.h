// The arithmetic of `tandem bench model-check` apart from its measurements: predicted against
// measured per configuration, the error, the worst rows and a reason for each, and whether the
// planner's layout (what `tandem-mpirun --layout auto` runs) is within a tolerance of the best
// measured one. No MPI, no clocks: the measuring command feeds it.
#pragma once
#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "bench/cost_model.h"

namespace tandem::bench {

struct CheckRow {
  std::string group;   // decode | batch | speculation | hosts
  std::string type;    // weight type name
  std::string config;  // row label (tp1, pp2x8, sd@0.035, tp2 TCP 1 Gbit/s, ...)
  std::string layout, mode, metric;  // metric: decode_tok_s or throughput_tok_s
  double predicted = 0, measured = 0, measured_min = 0, measured_max = 0;
  int runs = 0;
  double acceptance = 0;  // measured (the prediction's input) for SD/PEARL
  double gamma_measured = 0;
  Breakdown step;         // the prediction's parts (seconds per step of one sequence)
  double step_s = 0;      // predicted seconds per step (1 / decode for AR)
  double weight_gbs_predicted = 0, weight_gbs_measured = 0;  // one sequence, AR: bytes × tok/s
  // SD/PEARL: the prediction at the model's own best draft length (the row's is at the measured γ).
  double predicted_adaptive = 0;
  int adaptive_gamma = 0;
  std::string reason;     // filled for rows outside the tolerance
};

double error_pct(double predicted, double measured);  // 100 (p − m) / m; 0 when m is 0
// Indices of the n rows of largest |error|, largest first.
std::vector<size_t> worst_rows(const std::vector<CheckRow>& rows, size_t n);
// Why a row is off, from what the row knows: the spread of its runs, the share of the predicted
// step that is communication or engine overhead, the draft length, the weight-streaming rate.
std::string error_reason(const CheckRow& r);

struct LayoutVerdict {
  int world = 0;
  std::string type, picked, best;  // planner's layout, best measured layout
  double picked_measured = 0, best_measured = 0;
  double shortfall_pct = 0;        // 100 (best − picked) / best
  double tolerance_pct = 0;
  bool within = false;             // shortfall ≤ tolerance
};
// measured: (layout, tok/s) of every layout of this world size that was run; the pick must be
// among them (an error otherwise: the check would be vacuous).
Result<LayoutVerdict> judge_layout(int world, const std::string& type, const std::string& picked,
                                   const std::vector<std::pair<std::string, double>>& measured, double tolerance_pct);

nlohmann::json to_json(const CheckRow& r);
nlohmann::json to_json(const LayoutVerdict& v);

}  // namespace tandem::bench
