// Pearson's chi-square goodness-of-fit test of observed token counts against a model's exact
// distribution, for the statistical speculation tests.
#pragma once
#include <cstdint>
#include <map>
#include <string>

#include "decode/sampling.h"

namespace tandem::mpitest {

struct ChiSquare {
  double statistic = 0;
  int df = 0;
  double p_value = 1;      // P(X >= statistic) for X ~ chi-square(df)
  int64_t impossible = 0;  // observations of tokens the distribution gives probability 0
  int64_t n = 0;
  std::string describe() const;
};

// Cells are the tokens whose expected count is at least `min_expected`, plus one cell merging all
// the others (so the chi-square approximation holds). A token outside the support of `expected`
// that was observed makes the fit impossible: p_value 0.
ChiSquare chi_square_fit(const std::map<int32_t, int64_t>& observed, const SparseDist& expected,
                         double min_expected = 5.0);

// P(X >= x) for X ~ chi-square(df): the regularized upper incomplete gamma Q(df/2, x/2).
double chi_square_survival(double x, int df);

}  // namespace tandem::mpitest
