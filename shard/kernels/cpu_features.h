// Which SIMD paths this CPU can run; kernels dispatch on it once at start-up.
#pragma once
#include <string>

namespace tandem {

struct CpuFeatures {
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512vl = false, avx512vnni = false, avx512bf16 = false;
  bool avx512() const { return avx512f && avx512bw && avx512vl; }
};

const CpuFeatures& cpu_features();
// "avx512-vnni", "avx2", "scalar": the kernel level in use; $TANDEM_KERNELS=scalar|avx2|avx512 caps it.
std::string kernel_level_name();

}  // namespace tandem
