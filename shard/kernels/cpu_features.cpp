#include "shard/kernels/cpu_features.h"

#include <cstdlib>
#include <string>

namespace tandem {

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
    __builtin_cpu_init();
    c.avx2 = __builtin_cpu_supports("avx2");
    c.fma = __builtin_cpu_supports("fma");
    c.f16c = c.avx2;  // every AVX2 CPU tandem targets has F16C; checked by the kernels' own test
    c.avx512f = __builtin_cpu_supports("avx512f");
    c.avx512bw = __builtin_cpu_supports("avx512bw");
    c.avx512vl = __builtin_cpu_supports("avx512vl");
    c.avx512vnni = __builtin_cpu_supports("avx512vnni");
    c.avx512bf16 = __builtin_cpu_supports("avx512bf16");
    // $TANDEM_KERNELS caps the level, so tests can compare every path on one machine.
    if (const char* cap = std::getenv("TANDEM_KERNELS")) {
      const std::string s = cap;
      if (s == "scalar" || s == "avx2") {
        c.avx512f = c.avx512bw = c.avx512vl = c.avx512vnni = c.avx512bf16 = false;
      }
      if (s == "scalar") c.avx2 = c.fma = c.f16c = false;
    }
    return c;
  }();
  return f;
}

std::string kernel_level_name() {
  const auto& f = cpu_features();
  if (f.avx512()) return f.avx512vnni ? "avx512-vnni" : "avx512";
  if (f.avx2 && f.fma) return "avx2";
  return "scalar";
}

}  // namespace tandem
