// The arithmetic of `tandem bench model-check`: errors, the worst rows, their reasons, and the
// verdict on --layout auto's pick.
#include <gtest/gtest.h>

#include "bench/model_check.h"

namespace tandem::bench {
namespace {

CheckRow row(const std::string& config, double pred, double meas, double lo, double hi) {
  CheckRow r;
  r.group = "decode", r.type = "q8_0", r.config = config, r.mode = "ar";
  r.predicted = pred, r.measured = meas, r.measured_min = lo, r.measured_max = hi, r.runs = 3;
  return r;
}

TEST(ModelCheck, ErrorIsRelativeToMeasured) {
  EXPECT_DOUBLE_EQ(error_pct(11, 10), 10.0);
  EXPECT_DOUBLE_EQ(error_pct(8, 10), -20.0);
  EXPECT_DOUBLE_EQ(error_pct(5, 0), 0.0);  // nothing measured: no error to report
}

TEST(ModelCheck, WorstRowsByAbsoluteError) {
  const std::vector<CheckRow> rows{row("a", 10, 10, 10, 10), row("b", 7, 10, 10, 10), row("c", 12, 10, 10, 10),
                                   row("d", 10.5, 10, 10, 10)};
  const auto w = worst_rows(rows, 3);
  ASSERT_EQ(w.size(), 3u);
  EXPECT_EQ(rows[w[0]].config, "b");  // −30%
  EXPECT_EQ(rows[w[1]].config, "c");  // +20%
  EXPECT_EQ(rows[w[2]].config, "d");  // +5%
  EXPECT_EQ(worst_rows(rows, 10).size(), 4u);
}

TEST(ModelCheck, ReasonsNameWhatTheRowKnows) {
  // Runs spread over 50% of the median against a 20% error: noise.
  CheckRow noisy = row("tp2", 12, 10, 7, 12);
  EXPECT_NE(error_reason(noisy).find("noise"), std::string::npos) << error_reason(noisy);
  // Tight runs: not noise; communication 1 ms of a 2 ms step is named.
  CheckRow comm = row("tp2", 13, 10, 9.9, 10.1);
  comm.step.weights = 1e-3, comm.step.allreduce = 1e-3;
  const std::string rc = error_reason(comm);
  EXPECT_EQ(rc.find("noise"), std::string::npos) << rc;
  EXPECT_NE(rc.find("communication is 50%"), std::string::npos) << rc;
  // Draft length off by more than one token.
  CheckRow sd = row("sd@0.035", 13, 10, 9.9, 10.1);
  sd.mode = "sd", sd.step.gamma = 6, sd.gamma_measured = 3.2, sd.step.weights = 1;
  EXPECT_NE(error_reason(sd).find("at γ = 6"), std::string::npos) << error_reason(sd);
  // Whole-decode streaming rate against the GEMV's.
  CheckRow w = row("tp1", 8, 10, 9.9, 10.1);
  w.step.weights = 1, w.weight_gbs_predicted = 10, w.weight_gbs_measured = 12.5;
  EXPECT_NE(error_reason(w).find("12.5 GB/s"), std::string::npos) << error_reason(w);
}

TEST(ModelCheck, LayoutVerdictWithinTolerance) {
  auto v = judge_layout(2, "q8_0", "tp2×pp1", {{"tp2×pp1", 19.2}, {"tp1×pp2", 20.0}}, 5.0);
  ASSERT_TRUE(v.ok()) << v.error().message;
  EXPECT_EQ(v->best, "tp1×pp2");
  EXPECT_NEAR(v->shortfall_pct, 4.0, 1e-9);
  EXPECT_TRUE(v->within);
  auto bad = judge_layout(2, "q8_0", "tp2×pp1", {{"tp2×pp1", 18.0}, {"tp1×pp2", 20.0}}, 5.0);
  ASSERT_TRUE(bad.ok());
  EXPECT_NEAR(bad->shortfall_pct, 10.0, 1e-9);
  EXPECT_FALSE(bad->within);
  auto best = judge_layout(1, "q8_0", "tp1×pp1", {{"tp1×pp1", 11.0}}, 5.0);
  ASSERT_TRUE(best.ok());
  EXPECT_EQ(best->shortfall_pct, 0.0);
  // A pick that was not measured cannot be judged.
  EXPECT_FALSE(judge_layout(2, "q8_0", "tp1×pp2", {{"tp2×pp1", 18.0}}, 5.0).ok());
  EXPECT_FALSE(judge_layout(2, "q8_0", "tp2×pp1", {}, 5.0).ok());
}

}  // namespace
}  // namespace tandem::bench
