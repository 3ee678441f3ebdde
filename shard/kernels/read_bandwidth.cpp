#include "shard/kernels/read_bandwidth.h"

#include <immintrin.h>
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <vector>

#include "shard/kernels/cpu_features.h"

// GCC 12 flags its own intrinsic headers (the _mm*_undefined_* idiom) in target("avx512f") code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace tandem {
namespace {

// Four independent accumulators so the loop is limited by loads, not by add latency.
__attribute__((target("avx512f"))) uint64_t sum_avx512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_add_epi64(a0, _mm512_load_si512(p + i));
    a1 = _mm512_add_epi64(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_add_epi64(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_add_epi64(a3, _mm512_load_si512(p + i + 192));
  }
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a0, a1), _mm512_add_epi64(a2, a3))));
}

__attribute__((target("avx2"))) uint64_t sum_avx2(const uint8_t* p, size_t n) {
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 128 <= n; i += 128) {
    a0 = _mm256_add_epi64(a0, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i)));
    a1 = _mm256_add_epi64(a1, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 32)));
    a2 = _mm256_add_epi64(a2, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 64)));
    a3 = _mm256_add_epi64(a3, _mm256_load_si256(reinterpret_cast<const __m256i*>(p + i + 96)));
  }
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), _mm256_add_epi64(_mm256_add_epi64(a0, a1), _mm256_add_epi64(a2, a3)));
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

uint64_t sum_scalar(const uint8_t* p, size_t n) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  for (size_t i = 0; i + 32 <= n; i += 32) {
    uint64_t v[4];
    std::memcpy(v, p + i, 32);
    a0 += v[0], a1 += v[1], a2 += v[2], a3 += v[3];
  }
  return a0 + a1 + a2 + a3;
}

}  // namespace

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes, int reps) {
  constexpr size_t kAlign = size_t{2} << 20;
  bytes = std::max(kAlign, (bytes + kAlign - 1) / kAlign * kAlign);
  reps = std::max(1, reps);
  std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(std::aligned_alloc(kAlign, bytes)), &std::free);
  if (!buf) throw std::bad_alloc();
  madvise(buf.get(), bytes, MADV_HUGEPAGE);

  const int nt = pool.size();
  // Slices are multiples of 256 bytes so every thread's loop covers its slice exactly.
  const size_t slice = bytes / nt / 256 * 256;
  // First touch by the thread that later reads the slice.
  pool.run([&](int t, int) { std::memset(buf.get() + t * slice, 1 + t, slice); });

  const auto& f = cpu_features();
  auto* sum = f.avx512f ? sum_avx512 : f.avx2 ? sum_avx2 : sum_scalar;
  std::vector<uint64_t> sink(static_cast<size_t>(nt) * 8);
  std::vector<double> rates;
  for (int rep = -1; rep < reps; ++rep) {  // rep -1 warms up (page tables, frequency)
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int t, int) { sink[t * 8] += sum(buf.get() + t * slice, slice); });
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    if (rep >= 0) rates.push_back(static_cast<double>(slice * nt) / dt.count() / 1e9);
  }
  // The sums must be observable, or the reads could be dropped.
  volatile uint64_t keep = 0;
  for (uint64_t v : sink) keep = keep + v;
  std::nth_element(rates.begin(), rates.begin() + rates.size() / 2, rates.end());
  return rates[rates.size() / 2];
}

}  // namespace tandem
