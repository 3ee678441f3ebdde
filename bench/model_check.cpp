#include "bench/model_check.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <numeric>

namespace tandem::bench {

double error_pct(double predicted, double measured) {
  return measured != 0 ? 100.0 * (predicted - measured) / measured : 0.0;
}

std::vector<size_t> worst_rows(const std::vector<CheckRow>& rows, size_t n) {
  std::vector<size_t> idx(rows.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
    return std::abs(error_pct(rows[a].predicted, rows[a].measured)) >
           std::abs(error_pct(rows[b].predicted, rows[b].measured));
  });
  idx.resize(std::min(n, idx.size()));
  return idx;
}

std::string error_reason(const CheckRow& r) {
  const double err = error_pct(r.predicted, r.measured);
  std::vector<std::string> why;
  // Noise first: when the runs disagree by more than the error, nothing else can be concluded.
  const double spread = r.measured > 0 ? 100.0 * (r.measured_max - r.measured_min) / r.measured : 0;
  if (r.runs > 1 && spread >= std::abs(err))
    why.push_back(fmt::format("noise: its {} runs spread over {:.0f}% of the median ({:.2f}–{:.2f}), more than the error",
                              r.runs, spread, r.measured_min, r.measured_max));
  const Breakdown& b = r.step;
  const double parts = b.weights + b.attention + b.allreduce + b.p2p + b.overhead;
  if (parts > 0) {
    const double comm = 100.0 * (b.allreduce + b.p2p) / parts, over = 100.0 * b.overhead / parts;
    if (comm >= 20)
      why.push_back(fmt::format("communication is {:.0f}% of the predicted step (allreduce {:.2f} ms, sends {:.2f} ms): "
                                "the link fit's small-message latency decides it",
                                comm, b.allreduce * 1e3, b.p2p * 1e3));
    if (over >= 20) why.push_back(fmt::format("engine overhead is {:.0f}% of the predicted step", over));
  }
  if (r.mode == "sd" || r.mode == "pearl") {
    if (r.gamma_measured > 0 && std::abs(r.gamma_measured - b.gamma) >= 1)
      why.push_back(fmt::format("draft length: predicted at γ = {} against the engine's mean {:.1f}", b.gamma,
                                r.gamma_measured));
    if (r.mode == "pearl" && err > 0)
      why.push_back("PEARL's overlap: the model lets every round's drafting run beside the target's step, sharing "
                    "the node's bandwidth only while both stream");
  }
  if (r.weight_gbs_measured > 0 && r.weight_gbs_predicted > 0 &&
      std::abs(r.weight_gbs_measured - r.weight_gbs_predicted) / r.weight_gbs_predicted > 0.1)
    why.push_back(fmt::format("weights: the whole decode streamed {:.1f} GB/s against the {:.1f} GB/s the calibrated "
                              "GEMV predicts",
                              r.weight_gbs_measured, r.weight_gbs_predicted));
  if (r.group == "batch" && why.empty())
    why.push_back("batch: T(rows)/T(1) of the calibration matrix stands for every matrix of the step");
  if (why.empty()) why.push_back(err > 0 ? "the model is optimistic; no single part explains it"
                                         : "the model is pessimistic; no single part explains it");
  std::string s;
  for (const auto& w : why) s += (s.empty() ? "" : "; ") + w;
  return s;
}

Result<LayoutVerdict> judge_layout(int world, const std::string& type, const std::string& picked,
                                   const std::vector<std::pair<std::string, double>>& measured, double tolerance_pct) {
  if (measured.empty()) return make_error("world {}: no measured layouts to judge the pick against", world);
  LayoutVerdict v;
  v.world = world, v.type = type, v.picked = picked;
  bool found = false;
  for (const auto& [l, t] : measured) {
    if (t > v.best_measured) v.best = l, v.best_measured = t;
    if (l == picked) v.picked_measured = t, found = true;
  }
  if (!found) return make_error("world {}: the planner picked {}, which was not measured", world, picked);
  v.shortfall_pct = v.best_measured > 0 ? 100.0 * (v.best_measured - v.picked_measured) / v.best_measured : 0;
  v.tolerance_pct = tolerance_pct;
  v.within = v.shortfall_pct <= tolerance_pct;
  return v;
}

nlohmann::json to_json(const CheckRow& r) {
  nlohmann::json j{{"group", r.group},
                   {"type", r.type},
                   {"config", r.config},
                   {"layout", r.layout},
                   {"mode", r.mode},
                   {"metric", r.metric},
                   {"predicted", r.predicted},
                   {"measured", r.measured},
                   {"measured_min", r.measured_min},
                   {"measured_max", r.measured_max},
                   {"error_pct", error_pct(r.predicted, r.measured)},
                   {"runs", r.runs},
                   {"predicted_parts_ms",
                    {{"weights", r.step.weights * 1e3},
                     {"attention", r.step.attention * 1e3},
                     {"allreduce", r.step.allreduce * 1e3},
                     {"p2p", r.step.p2p * 1e3},
                     {"overhead", r.step.overhead * 1e3},
                     {"draft", r.step.draft * 1e3}}}};
  if (r.mode == "sd" || r.mode == "pearl") {
    j["acceptance"] = r.acceptance;
    j["draft_len"] = {{"measured", r.gamma_measured}, {"predicted", r.step.gamma}, {"adaptive", r.adaptive_gamma}};
    j["predicted_adaptive_gamma"] = r.predicted_adaptive;
  }
  if (r.weight_gbs_measured > 0)
    j["weight_gbs"] = {{"measured", r.weight_gbs_measured}, {"predicted", r.weight_gbs_predicted}};
  if (!r.reason.empty()) j["reason"] = r.reason;
  return j;
}

nlohmann::json to_json(const LayoutVerdict& v) {
  return {{"world", v.world},          {"type", v.type},
          {"picked", v.picked},        {"picked_measured_tok_s", v.picked_measured},
          {"best_measured", v.best},   {"best_measured_tok_s", v.best_measured},
          {"shortfall_pct", v.shortfall_pct}, {"tolerance_pct", v.tolerance_pct}, {"within", v.within}};
}

}  // namespace tandem::bench
