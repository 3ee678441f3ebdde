// Reproducible N(0, 1) test data, shared by the kernel and quantization tests.
#pragma once
#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

namespace tandem::test {

inline std::vector<float> gaussian(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace tandem::test
