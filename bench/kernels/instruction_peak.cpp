#include "bench/kernels/instruction_peak.h"

#include <immintrin.h>

#include <algorithm>
#include <chrono>

#include "shard/kernels/cpu_features.h"

namespace tandem::bench {
namespace {

// The timed loops are inline assembly: with intrinsics the compiler hoists the loop-invariant
// multiplies out of the loop or keeps the accumulators in memory, and the probe then measures that.
constexpr long kIters = 5'000'000;

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// 8 independent accumulator chains per iteration: more than latency × issue width on current cores.
#define TANDEM_8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
// Times kIters runs of the asm statement ASM and returns GMAC/s for MACS multiply-adds per run.
// A macro, not a function taking a lambda: the lambda would not carry the target attribute, and
// the vector operands of the asm must live in registers of the probe's own instruction set.
#define TANDEM_TIME_GMACS(MACS, ASM)                                      \
  do {                                                                   \
    const auto t0 = std::chrono::steady_clock::now();                    \
    for (long i = 0; i < kIters; ++i) ASM;                               \
    return (MACS) * static_cast<double>(kIters) / seconds_since(t0) / 1e9; \
  } while (0)
// The operand lists of the eight accumulators, for the register class C ("v" or "x").
#define TANDEM_ACC8(C)                                                                                      \
  [c0] "+" C(c0), [c1] "+" C(c1), [c2] "+" C(c2), [c3] "+" C(c3), [c4] "+" C(c4), [c5] "+" C(c5), [c6] "+" C(c6), \
      [c7] "+" C(c7)

__attribute__((target("avx512f,avx512bw,avx512vnni"))) double vnni_gmacs() {
  __m512i a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
#define DECL(i) __m512i c##i = _mm512_setzero_si512();
  TANDEM_8(DECL)
#undef DECL
#define INS(i) "vpdpbusd %[b], %[a], %[c" #i "]\n\t"
  TANDEM_TIME_GMACS(64.0 * 8, asm volatile(TANDEM_8(INS) : TANDEM_ACC8("v") : [a] "v"(a), [b] "v"(b)));
#undef INS
}

__attribute__((target("avx2,fma"))) double avx2_int8_gmacs() {
  __m256i a = _mm256_set1_epi8(3), b = _mm256_set1_epi8(5), ones = _mm256_set1_epi16(1);
#define DECL(i) __m256i c##i = _mm256_setzero_si256();
  TANDEM_8(DECL)
#undef DECL
  __m256i t0r, t1r, t2r, t3r;
  // The kernels' exact int8 dot: u8×s8 pairs to int16 (vpmaddubsw), pairs to int32 (vpmaddwd
  // with ones), accumulate (vpaddd): 32 multiply-adds per sequence; chains i and i+4 share a temporary.
#define INS(i, t)                                \
  "vpmaddubsw %[b], %[a], %[t" #t "]\n\t"        \
  "vpmaddwd %[ones], %[t" #t "], %[t" #t "]\n\t" \
  "vpaddd %[t" #t "], %[c" #i "], %[c" #i "]\n\t"
  TANDEM_TIME_GMACS(32.0 * 8, asm volatile(INS(0, 0) INS(1, 1) INS(2, 2) INS(3, 3) INS(4, 0) INS(5, 1) INS(6, 2) INS(7, 3)
                                           : TANDEM_ACC8("x"), [t0] "=&x"(t0r), [t1] "=&x"(t1r), [t2] "=&x"(t2r),
                                             [t3] "=&x"(t3r)
                                           : [a] "x"(a), [b] "x"(b), [ones] "x"(ones)));
#undef INS
}

__attribute__((target("avx512f"))) double avx512_fma_gmacs() {
  __m512 a = _mm512_set1_ps(1.f), b = _mm512_set1_ps(1e-7f);
#define DECL(i) __m512 c##i = _mm512_setzero_ps();
  TANDEM_8(DECL)
#undef DECL
#define INS(i) "vfmadd231ps %[b], %[a], %[c" #i "]\n\t"
  TANDEM_TIME_GMACS(16.0 * 8, asm volatile(TANDEM_8(INS) : TANDEM_ACC8("v") : [a] "v"(a), [b] "v"(b)));
#undef INS
}

__attribute__((target("avx2,fma"))) double avx2_fma_gmacs() {
  __m256 a = _mm256_set1_ps(1.f), b = _mm256_set1_ps(1e-7f);
#define DECL(i) __m256 c##i = _mm256_setzero_ps();
  TANDEM_8(DECL)
#undef DECL
#define INS(i) "vfmadd231ps %[b], %[a], %[c" #i "]\n\t"
  TANDEM_TIME_GMACS(8.0 * 8, asm volatile(TANDEM_8(INS) : TANDEM_ACC8("x") : [a] "x"(a), [b] "x"(b)));
#undef INS
}

#undef TANDEM_8
#undef TANDEM_TIME_GMACS
#undef TANDEM_ACC8

// A peak is what the core can do: interference from other work only slows a probe, so the best
// of a few runs is the estimate.
double best_of(double (*probe)()) {
  double best = 0;
  for (int i = 0; i < 5; ++i) best = std::max(best, probe());
  return best;
}

}  // namespace

PeakRate int8_peak() {
  const std::string level = kernel_level_name();
  if (level == "avx512-vnni") return {"vpdpbusd zmm", best_of(vnni_gmacs)};
  if (level.rfind("avx", 0) == 0) return {"vpmaddubsw + vpmaddwd + vpaddd ymm", best_of(avx2_int8_gmacs)};
  return {"scalar (not probed)", 0};
}

PeakRate fma_peak() {
  const std::string level = kernel_level_name();
  if (level.rfind("avx512", 0) == 0) return {"vfmadd231ps zmm", best_of(avx512_fma_gmacs)};
  if (level.rfind("avx", 0) == 0) return {"vfmadd231ps ymm", best_of(avx2_fma_gmacs)};
  return {"scalar (not probed)", 0};
}

}  // namespace tandem::bench
