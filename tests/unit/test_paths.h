// Per-test file names: ctest runs the tests of one binary as separate processes in parallel
// (-j), so a scratch file a test writes must carry the test's own name.
#pragma once
#include <gtest/gtest.h>

#include <string>

namespace tandem::testing {

// "<stem>_<Suite>.<Test>" (parameterised names' '/' replaced), unique per test.
inline std::string per_test_name(const std::string& stem) {
  const auto* t = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string s = stem + "_" + (t ? std::string(t->test_suite_name()) + "." + t->name() : std::string("no_test"));
  for (char& c : s)
    if (c == '/') c = '_';
  return s;
}

}  // namespace tandem::testing
