#include "tests/mpi/chi_square.h"

#include <fmt/format.h>

#include <cmath>

namespace tandem::mpitest {
namespace {

// Regularized lower incomplete gamma P(a, x) by its power series (converges fast for x < a + 1).
double gamma_p_series(double a, double x) {
  double term = 1.0 / a, sum = term;
  for (int n = 1; n < 10000; ++n) {
    term *= x / (a + n);
    sum += term;
    if (std::fabs(term) < std::fabs(sum) * 1e-15) break;
  }
  return sum * std::exp(-x + a * std::log(x) - std::lgamma(a));
}

// Regularized upper incomplete gamma Q(a, x) by its continued fraction, evaluated with the
// modified Lentz method (converges fast for x >= a + 1).
double gamma_q_fraction(double a, double x) {
  constexpr double kTiny = 1e-300;
  double b = x + 1.0 - a, c = 1.0 / kTiny, d = 1.0 / b, h = d;
  for (int i = 1; i < 10000; ++i) {
    const double an = -i * (i - a);
    b += 2.0;
    d = an * d + b;
    if (std::fabs(d) < kTiny) d = kTiny;
    c = b + an / c;
    if (std::fabs(c) < kTiny) c = kTiny;
    d = 1.0 / d;
    const double delta = d * c;
    h *= delta;
    if (std::fabs(delta - 1.0) < 1e-15) break;
  }
  return h * std::exp(-x + a * std::log(x) - std::lgamma(a));
}

}  // namespace

double chi_square_survival(double x, int df) {
  if (df <= 0) return 1.0;
  if (x <= 0) return 1.0;
  const double a = 0.5 * df, y = 0.5 * x;
  return y < a + 1.0 ? 1.0 - gamma_p_series(a, y) : gamma_q_fraction(a, y);
}

ChiSquare chi_square_fit(const std::map<int32_t, int64_t>& observed, const SparseDist& expected, double min_expected) {
  ChiSquare r;
  for (const auto& [tok, k] : observed) {
    r.n += k;
    if (expected.prob(tok) <= 0) r.impossible += k;
  }
  if (r.impossible > 0 || r.n == 0) {
    r.p_value = r.n == 0 ? 1.0 : 0.0;
    return r;
  }
  double rest_expected = 0, rest_observed = 0, total_p = 0;
  int cells = 0;
  for (size_t i = 0; i < expected.size(); ++i) total_p += expected.probs[i];
  for (size_t i = 0; i < expected.size(); ++i) {
    const double e = r.n * expected.probs[i] / total_p;
    const auto it = observed.find(expected.ids[i]);
    const double o = it == observed.end() ? 0.0 : static_cast<double>(it->second);
    if (e < min_expected) {
      rest_expected += e;
      rest_observed += o;
      continue;
    }
    r.statistic += (o - e) * (o - e) / e;
    ++cells;
  }
  if (rest_expected > 0) {
    r.statistic += (rest_observed - rest_expected) * (rest_observed - rest_expected) / rest_expected;
    ++cells;
  }
  r.df = cells - 1;
  r.p_value = chi_square_survival(r.statistic, r.df);
  return r;
}

std::string ChiSquare::describe() const {
  if (impossible > 0)
    return fmt::format("{} of {} observations fall outside the distribution's support", impossible, n);
  return fmt::format("chi2 {:.1f}, df {}, p {:.3g} (n {})", statistic, df, p_value, n);
}

}  // namespace tandem::mpitest
