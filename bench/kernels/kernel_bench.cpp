// Kernel micro-benchmarks at TinyLlama-1.1B shapes. Each GEMV rotates over enough copies of its
// matrix to exceed the L3 cache, so it measures DRAM streaming like a real decode step. After the
// Google Benchmark output, a summary relates every GEMV to the read bandwidth measured in the
// same run and every 64-row GEMM to the 1-row GEMV.
//
//   tandem_kernel_bench [--benchmark_filter=REGEX] [--benchmark_repetitions=N] ...
//   tandem_kernel_bench --roofline[=TYPE] [--rounds=N]   (interleaved GB/s table, medians)
//   tandem_kernel_bench --rows-curve[=TYPE] [--rounds=N] [--threads=1|2]   (T(r)/T(1), r = 2..64)
//   tandem_kernel_bench --gemm[=TYPE] [--rounds=N] [--threads=1|2]   (prompt GEMM GMAC/s vs the core's peak)
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "bench/kernels/instruction_peak.h"
#include "shard/kernels/attention.h"
#include "shard/kernels/cpu_features.h"
#include "shard/kernels/matmul.h"
#include "shard/kernels/read_bandwidth.h"
#include "shard/kernels/quant.h"
#include "shard/kernels/thread_pool.h"

using namespace tandem;

namespace {

constexpr size_t kStreamTarget = size_t{256} << 20;  // 8× the 32 MiB L3: no reuse from the last level cache

ThreadPool& pool(int threads) {
  static ThreadPool p1(1), p2(2);
  return threads == 1 ? p1 : p2;
}

// Random but valid ggml rows: random quants, small positive scales, finite floats.
std::vector<uint8_t> random_rows(WeightType t, int64_t rows, int64_t cols) {
  const size_t rb = row_bytes(t, cols);
  std::vector<uint8_t> buf(rb * rows);
  std::mt19937_64 rng(42);
  for (size_t i = 0; i + 8 <= buf.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(buf.data() + i, &v, 8);
  }
  const uint16_t small = fp32_to_fp16(0.01f);
  const size_t bb = info(t).block_bytes;
  for (size_t off = 0; off < buf.size(); off += (t == WeightType::F32 ? 4 : bb)) {
    uint8_t* b = buf.data() + off;
    switch (t) {
      case WeightType::F32: {
        const float f = static_cast<float>(static_cast<int8_t>(b[0])) * 1e-3f;
        std::memcpy(b, &f, 4);
        break;
      }
      case WeightType::F16: std::memcpy(b, &small, 2), b[0] ^= b[1]; break;
      case WeightType::BF16: b[1] = 0x3C; break;  // |x| in [2^-7, 2^-6)
      case WeightType::Q8_0:
      case WeightType::Q4_0:
      case WeightType::Q5_0: std::memcpy(b, &small, 2); break;
      case WeightType::Q4_K:
      case WeightType::Q5_K: std::memcpy(b, &small, 2), std::memcpy(b + 2, &small, 2); break;
      case WeightType::Q6_K: std::memcpy(b + 208, &small, 2); break;
      default: break;
    }
  }
  return buf;
}

struct Matrices {
  WeightType t{};
  int64_t rows = 0, cols = 0;
  std::vector<PackedMatrix> copies;
};

// One set alive at a time (registration keeps benchmarks of one matrix together).
const Matrices& matrices(WeightType t, int64_t rows, int64_t cols) {
  static Matrices m;
  if (m.t == t && m.rows == rows && m.cols == cols && !m.copies.empty()) return m;
  m.copies.clear();
  m.t = t, m.rows = rows, m.cols = cols;
  const auto src = random_rows(t, rows, cols);
  const size_t rb = row_bytes(t, cols);
  m.copies.push_back(pack_matrix(t, rows, cols, src.data(), rb));
  const size_t n = std::max<size_t>(1, (kStreamTarget + m.copies[0].bytes - 1) / m.copies[0].bytes);
  while (m.copies.size() < n) m.copies.push_back(pack_matrix(t, rows, cols, src.data(), rb));
  return m;
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

void BM_membw(benchmark::State& st) {
  const int threads = static_cast<int>(st.range(0));
  double sum = 0;
  for (auto _ : st) sum += measure_read_bandwidth_gbs(pool(threads), size_t{256} << 20, 1);
  st.counters["GB/s"] = sum / static_cast<double>(st.iterations());
}

void BM_matmul(benchmark::State& st, WeightType t, int64_t rows, int64_t cols) {
  const int64_t n_rows = st.range(0);
  const int threads = static_cast<int>(st.range(1));
  const auto& m = matrices(t, rows, cols);
  const auto x = random_floats(n_rows * cols, 1);
  std::vector<float> y(n_rows * rows);
  size_t i = 0;
  for (auto _ : st) {
    matmul(m.copies[i++ % m.copies.size()], x.data(), n_rows, y.data(), rows, pool(threads));
    benchmark::DoNotOptimize(y.data());
  }
  const double it = static_cast<double>(st.iterations());
  st.counters["GB/s"] = benchmark::Counter(static_cast<double>(m.copies[0].bytes) * it / 1e9, benchmark::Counter::kIsRate);
  st.counters["rows/s"] = benchmark::Counter(static_cast<double>(n_rows) * it, benchmark::Counter::kIsRate);
}

// The alternative the engine could use for batches: OpenBLAS sgemm on F32 weights — the whole
// matrix at once for F32, dequantised tile by tile (256 rows, so a tile stays in L2) otherwise. Same operands and output as
// BM_matmul with n_rows rows, one thread.
void BM_sgemm(benchmark::State& st, WeightType t, int64_t rows, int64_t cols) {
  const int64_t n_rows = st.range(0);
  openblas_set_num_threads(1);
  const auto src = random_rows(t, rows, cols);
  const size_t rb = row_bytes(t, cols);
  constexpr int64_t kTile = 256;
  std::vector<float> tile(static_cast<size_t>(kTile * cols));
  const auto x = random_floats(n_rows * cols, 1);
  std::vector<float> y(n_rows * rows);
  for (auto _ : st) {
    // F32 needs no conversion: one sgemm over the whole matrix, OpenBLAS's best case.
    const int64_t step = t == WeightType::F32 ? rows : kTile;
    for (int64_t r0 = 0; r0 < rows; r0 += step) {
      const int64_t n = std::min(step, rows - r0);
      const float* w = tile.data();
      if (t == WeightType::F32) w = reinterpret_cast<const float*>(src.data() + r0 * rb);
      else
        for (int64_t r = 0; r < n; ++r) dequantize_row(t, src.data() + (r0 + r) * rb, tile.data() + r * cols, cols);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(n_rows), static_cast<int>(n),
                  static_cast<int>(cols), 1.f, x.data(), static_cast<int>(cols), w, static_cast<int>(cols), 0.f,
                  y.data() + r0, static_cast<int>(rows));
    }
    benchmark::DoNotOptimize(y.data());
  }
}

// Attention over a cache of n_pos positions for one query row: 32 query heads, 4 KV heads of 64
// (TinyLlama), F16 cache; scores for all heads then the weighted value sum, as a layer does.
// Arg 1 = 1: rotate over enough caches (one per layer, as a decode step does) to exceed the L3, so
// K/V stream from DRAM as they do in a real decode at long context.
void BM_attention(benchmark::State& st) {
  const int64_t n_pos = st.range(0);
  const bool dram = st.range(1) != 0;
  const int n_q = 8, head_dim = 64, n_kv = 4;
  const size_t stride = static_cast<size_t>(head_dim) * 2;  // [kv_head][pos][dim] f16, as KvCache stores it
  const size_t n = static_cast<size_t>(n_pos) * n_kv * head_dim;  // elements of one K (or V) cache
  const size_t copies = dram ? std::max<size_t>(1, (kStreamTarget / 4 + 4 * n - 1) / (4 * n)) : 1;
  std::vector<uint16_t> kv(2 * n * copies);
  const auto kf = random_floats(2 * n, 3);
  for (size_t c = 0; c < copies; ++c) f32_to_kv(kf.data(), kv.data() + 2 * n * c, static_cast<int64_t>(2 * n), WeightType::F16);
  const auto q = random_floats(n_q * head_dim, 5);
  std::vector<float> scores(n_q * n_pos), out(n_q * head_dim);
  size_t it = 0;
  for (auto _ : st) {
    const uint16_t* k = kv.data() + 2 * n * (it++ % copies);
    const uint16_t* v = k + n;
    for (int h = 0; h < n_kv; ++h) {
      const auto* kb = reinterpret_cast<const uint8_t*>(k + static_cast<size_t>(h) * n_pos * head_dim);
      const auto* vb = reinterpret_cast<const uint8_t*>(v + static_cast<size_t>(h) * n_pos * head_dim);
      attn_scores(q.data(), n_q, head_dim, kb, stride, WeightType::F16, n_pos, scores.data());
      std::fill(out.begin(), out.end(), 0.f);
      attn_values(scores.data(), n_q, n_pos, vb, stride, WeightType::F16, head_dim, out.data());
    }
    benchmark::DoNotOptimize(out.data());
  }
  st.counters["KV GB/s"] = benchmark::Counter(2.0 * static_cast<double>(n) * 2 * static_cast<double>(st.iterations()) / 1e9,
                                              benchmark::Counter::kIsRate);
}

// One empty parallel region: the fixed cost every matmul pays for using the pool.
void BM_pool_dispatch(benchmark::State& st) {
  ThreadPool& p = pool(static_cast<int>(st.range(0)));
  std::vector<int64_t> sink(16 * 8);
  for (auto _ : st) p.run([&](int t, int) { sink[t * 8]++; });
  benchmark::DoNotOptimize(sink.data());
}

struct Shape {
  const char* name;
  int64_t rows, cols;
};
constexpr Shape kShapes[] = {{"attn_qo", 2048, 2048}, {"attn_kv", 256, 2048}, {"ffn_up", 5632, 2048},
                             {"ffn_down", 2048, 5632}, {"head", 32000, 2048}};
constexpr WeightType kTypes[] = {WeightType::Q4_0, WeightType::Q8_0, WeightType::Q5_0, WeightType::Q4_K,
                                 WeightType::Q5_K, WeightType::Q6_K, WeightType::F16,  WeightType::BF16,
                                 WeightType::F32};

std::string key(WeightType t, const Shape& s) { return std::string(name(t)) + "/" + s.name; }

// Collects per-benchmark times (medians when repeated) for the summary.
class Collector : public benchmark::ConsoleReporter {
 public:
  struct Row {
    double real_ns = 0, gbs = 0;
  };
  std::map<std::string, Row> rows;
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const auto& r : runs) {
      const bool agg = r.run_type == Run::RT_Aggregate;
      if (agg && r.aggregate_name != "median") continue;
      std::string n = r.benchmark_name();
      if (agg) n = n.substr(0, n.rfind('_'));
      else if (rows.count(n) && r.repetitions > 1) continue;  // the median arrives later
      Row row;
      row.real_ns = r.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(r.time_unit) * 1e9;
      if (auto it = r.counters.find("GB/s"); it != r.counters.end()) row.gbs = it->second.value;
      rows[n] = row;
    }
  }
};

void print_summary(const Collector& c) {
  auto get = [&](const std::string& n) -> const Collector::Row* {
    auto it = c.rows.find(n);
    return it == c.rows.end() ? nullptr : &it->second;
  };
  const auto* bw1 = get("membw/1/iterations:3/real_time");
  const auto* bw2 = get("membw/2/iterations:3/real_time");
  std::printf("\nkernel level: %s\n", kernel_level_name().c_str());
  if (bw1) std::printf("read bandwidth: 1 thread %.1f GB/s", bw1->gbs);
  if (bw2) std::printf(", 2 threads %.1f GB/s", bw2->gbs);
  std::printf("\n\n%-16s %9s %7s %9s %7s %7s %9s\n", "matrix", "1t GB/s", "%bw1", "2t GB/s", "%bw2", "2t/1t",
              "t64/t1");
  for (WeightType t : kTypes)
    for (const auto& s : kShapes) {
      const std::string base = "matmul/" + key(t, s);
      const auto* g1 = get(base + "/1/1/real_time");
      const auto* g2 = get(base + "/1/2/real_time");
      const auto* m64 = get(base + "/64/1/real_time");
      if (!g1) continue;
      std::printf("%-16s %9.1f %6.0f%% ", key(t, s).c_str(), g1->gbs, bw1 ? 100 * g1->gbs / bw1->gbs : 0.0);
      if (g2)
        std::printf("%9.1f %6.0f%% %7.2f ", g2->gbs, bw2 ? 100 * g2->gbs / bw2->gbs : 0.0, g1->real_ns / g2->real_ns);
      else
        std::printf("%9s %7s %7s ", "-", "-", "-");
      if (m64) std::printf("%9.2f", m64->real_ns / g1->real_ns);
      std::printf("\n");
    }
  std::printf("\n64-row batch, 1 thread: own GEMM vs OpenBLAS sgemm (on dequantised 256-row tiles)\n");
  for (WeightType t : kTypes)
    for (const auto& s : kShapes) {
      const auto* own = get("matmul/" + key(t, s) + "/64/1/real_time");
      const auto* blas = get("sgemm/" + key(t, s) + "/64/real_time");
      if (!own || !blas) continue;
      std::printf("%-16s own %9.1f us   sgemm %9.1f us   sgemm/own %5.2f\n", key(t, s).c_str(), own->real_ns / 1e3,
                  blas->real_ns / 1e3, blas->real_ns / own->real_ns);
    }
  // One TinyLlama decode step on one thread: per layer q, k, v, o, gate, up, down GEMVs, plus
  // the head; attention at 2048 positions costs 22 × (one layer of the attention benchmark).
  const auto* a0 = get("attention/16/0/real_time");
  const auto* a2k = get("attention/2048/1/real_time");
  for (WeightType t : kTypes) {
    auto t1 = [&](const char* shape) -> double {
      const auto* r = get("matmul/" + std::string(name(t)) + "/" + shape + "/1/1/real_time");
      return r ? r->real_ns : -1;
    };
    const double qo = t1("attn_qo"), kv = t1("attn_kv"), up = t1("ffn_up"), down = t1("ffn_down"), head = t1("head");
    if (qo < 0 || kv < 0 || up < 0 || down < 0 || head < 0 || !a0 || !a2k) continue;
    const double weights = 22 * (2 * qo + 2 * kv + 2 * up + down) + head;
    std::printf("%s decode step (1 thread): weights %.2f ms, attention at 16 / 2048 positions %.2f / %.2f ms "
                "(+%.0f%% at 2048 vs 16)\n",
                std::string(name(t)).c_str(), weights / 1e6, 22 * a0->real_ns / 1e6, 22 * a2k->real_ns / 1e6,
                100 * 22 * (a2k->real_ns - a0->real_ns) / (weights + 22 * a0->real_ns));
  }
}

// --- interleaved roofline table (--roofline) -------------------------------------------------------
// The machine is shared and its speed drifts, so every quantity of a row (read bandwidth with 1
// and 2 threads, GEMV with 1 and 2 threads, 64-row GEMM) is measured in alternation, several
// rounds, and the table shows medians.

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// Mean seconds per call over at least `min_s` seconds, rotating over the copies.
double seconds_per_call(const Matrices& m, int64_t n_rows, int threads, double min_s) {
  const auto x = random_floats(static_cast<size_t>(n_rows * m.cols), 1);
  std::vector<float> y(static_cast<size_t>(n_rows * m.rows));
  const auto t0 = std::chrono::steady_clock::now();
  size_t calls = 0;
  double elapsed = 0;
  do {
    matmul(m.copies[calls % m.copies.size()], x.data(), n_rows, y.data(), m.rows, pool(threads));
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (elapsed < min_s || calls < 3);
  benchmark::DoNotOptimize(y.data());
  return elapsed / static_cast<double>(calls);
}

void roofline(const std::string& type_filter, int rounds) {
  std::printf("kernel level: %s; medians of %d interleaved rounds; GEMV GB/s = packed weight bytes / time\n\n",
              kernel_level_name().c_str(), rounds);
  std::printf("%-16s %7s %7s %8s %6s %8s %6s %6s %8s %8s\n", "matrix", "bw1", "bw2", "1t GB/s", "%bw1", "2t GB/s",
              "%bw2", "2t/1t", "t1 us", "t64/t1");
  for (WeightType t : kTypes) {
    if (!type_filter.empty() && type_filter != name(t)) continue;
    for (const auto& s : kShapes) {
      const auto& m = matrices(t, s.rows, s.cols);
      const double bytes = static_cast<double>(m.copies[0].bytes);
      std::vector<double> bw1, bw2, g1, g2, r12, g64;
      for (int r = 0; r < rounds; ++r) {
        bw1.push_back(measure_read_bandwidth_gbs(pool(1), size_t{256} << 20, 1));
        const double a = seconds_per_call(m, 1, 1, 0.02);
        bw2.push_back(measure_read_bandwidth_gbs(pool(2), size_t{256} << 20, 1));
        const double b = seconds_per_call(m, 1, 2, 0.02);
        g1.push_back(bytes / a / 1e9), g2.push_back(bytes / b / 1e9), r12.push_back(a / b);
        if (r < 3) g64.push_back(seconds_per_call(m, 64, 1, 0.05) / a);
      }
      const double b1 = median(bw1), b2 = median(bw2), G1 = median(g1), G2 = median(g2);
      std::printf("%-16s %7.1f %7.1f %8.1f %5.0f%% %8.1f %5.0f%% %6.2f %8.1f %8.2f\n", key(t, s).c_str(), b1, b2, G1,
                  100 * G1 / b1, G2, 100 * G2 / b2, median(r12), bytes / G1 / 1e3, median(g64));
      std::fflush(stdout);
    }
  }
}

// --- T(rows)/T(1) curve (--rows-curve) -------------------------------------------------------------
// What speculation and batching pay for a block of r rows: the time of an r-row call relative to
// the 1-row call on the same matrix, next to the GEMV's share of the read bandwidth (the bound a
// bandwidth-limited kernel would give: T(r)/T(1) = 1). Interleaved rounds, medians.
void rows_curve(const std::string& type_filter, int rounds, int threads) {
  constexpr int64_t kRows[] = {2, 4, 8, 16, 64};
  std::printf("kernel level: %s; %d thread(s); medians of %d interleaved rounds\n\n", kernel_level_name().c_str(),
              threads, rounds);
  std::printf("%-16s %7s %8s %6s", "matrix", "bw GB/s", "t1 us", "%bw");
  for (int64_t r : kRows) std::printf(" %7s", ("T" + std::to_string(r) + "/T1").c_str());
  std::printf("\n");
  for (WeightType t : kTypes) {
    if (!type_filter.empty() && type_filter != name(t)) continue;
    for (const auto& s : kShapes) {
      const auto& m = matrices(t, s.rows, s.cols);
      const double bytes = static_cast<double>(m.copies[0].bytes);
      std::vector<double> bw, t1;
      std::vector<std::vector<double>> ratio(std::size(kRows));
      for (int r = 0; r < rounds; ++r) {
        bw.push_back(measure_read_bandwidth_gbs(pool(threads), size_t{256} << 20, 1));
        const double a = seconds_per_call(m, 1, threads, 0.02);
        t1.push_back(a);
        for (size_t i = 0; i < std::size(kRows); ++i)
          ratio[i].push_back(seconds_per_call(m, kRows[i], threads, kRows[i] >= 64 ? 0.05 : 0.02) / a);
      }
      const double b = median(bw), a = median(t1);
      std::printf("%-16s %7.1f %8.1f %5.0f%%", key(t, s).c_str(), b, a * 1e6, 100 * bytes / a / 1e9 / b);
      for (auto& v : ratio) std::printf(" %7.2f", median(v));
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}

// --- prompt GEMM against the instruction peak (--gemm) ---------------------------------------------
// Prompt processing is compute-bound: 64–512 rows reuse every weight block many times. The rate is
// multiply-adds per second (rows × matrix rows × cols / time) next to the peak of the instruction
// sequence the kernels use (int8 dot for quantized weights, f32 FMA for float weights), measured
// on this core just before; with 2 threads the peak is taken as twice one thread's.
void gemm_rates(const std::string& type_filter, int rounds, int threads) {
  constexpr int64_t kRows[] = {64, 128, 512};
  constexpr Shape kGemmShapes[] = {{"attn_qo", 2048, 2048}, {"ffn_up", 5632, 2048}, {"ffn_down", 2048, 5632}};
  const bench::PeakRate i8 = bench::int8_peak(), f32 = bench::fma_peak();
  std::printf("kernel level: %s; %d thread(s); medians of %d interleaved rounds\n", kernel_level_name().c_str(), threads,
              rounds);
  std::printf("peak per thread: int8 %.1f GMAC/s (%s), f32 %.1f GMAC/s (%s)\n\n", i8.gmacs, i8.sequence.c_str(), f32.gmacs,
              f32.sequence.c_str());
  std::printf("%-16s", "matrix");
  for (int64_t r : kRows) std::printf(" %9s %6s", (std::to_string(r) + " GMAC/s").c_str(), "%peak");
  std::printf("\n");
  for (WeightType t : kTypes) {
    if (!type_filter.empty() && type_filter != name(t)) continue;
    const double peak = threads * ((t == WeightType::F32 || t == WeightType::F16 || t == WeightType::BF16) ? f32.gmacs : i8.gmacs);
    for (const auto& s : kGemmShapes) {
      const auto& m = matrices(t, s.rows, s.cols);
      std::vector<std::vector<double>> rate(std::size(kRows));
      for (int r = 0; r < rounds; ++r)
        for (size_t i = 0; i < std::size(kRows); ++i) {
          const double sec = seconds_per_call(m, kRows[i], threads, 0.05);
          rate[i].push_back(static_cast<double>(kRows[i] * s.rows * s.cols) / sec / 1e9);
        }
      std::printf("%-16s", key(t, s).c_str());
      for (auto& v : rate) {
        const double g = median(v);
        std::printf(" %9.1f %5.0f%%", g, peak > 0 ? 100 * g / peak : 0.0);
      }
      std::printf("\n");
      std::fflush(stdout);
    }
  }
}

// The value of `--NAME=N` among the arguments, else `fallback`.
int int_option(int argc, char** argv, const std::string& name, int fallback) {
  const std::string prefix = "--" + name + "=";
  for (int j = 1; j < argc; ++j)
    if (std::string(argv[j]).rfind(prefix, 0) == 0) return std::atoi(argv[j] + prefix.size());
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  // --rows-curve / --gemm / --roofline[=TYPE]: that interleaved table only (no Google Benchmark run).
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto type_of = [&](const std::string& mode) { return a.size() > mode.size() + 1 ? a.substr(mode.size() + 1) : ""; };
    const int threads = int_option(argc, argv, "threads", 1) == 2 ? 2 : 1;
    if (a.rfind("--rows-curve", 0) == 0) {
      rows_curve(type_of("--rows-curve"), std::max(1, int_option(argc, argv, "rounds", 5)), threads);
      return 0;
    }
    if (a.rfind("--gemm", 0) == 0) {
      gemm_rates(type_of("--gemm"), std::max(1, int_option(argc, argv, "rounds", 3)), threads);
      return 0;
    }
    if (a.rfind("--roofline", 0) == 0) {
      roofline(type_of("--roofline"), std::max(1, int_option(argc, argv, "rounds", 7)));
      return 0;
    }
  }
  benchmark::RegisterBenchmark("membw", BM_membw)->Arg(1)->Arg(2)->UseRealTime()->Iterations(3);
  for (WeightType t : kTypes)
    for (const auto& s : kShapes) {
      auto* b = benchmark::RegisterBenchmark(("matmul/" + key(t, s)).c_str(), BM_matmul, t, s.rows, s.cols);
      b->Args({1, 1})->Args({1, 2})->Args({64, 1})->UseRealTime()->Unit(benchmark::kMicrosecond);
      if (s.rows == 2048 && s.cols == 2048) b->Args({8, 1})->Args({64, 2});
      if (s.rows == 2048 && (s.cols == 2048 || s.cols == 5632))
        benchmark::RegisterBenchmark(("sgemm/" + key(t, s)).c_str(), BM_sgemm, t, s.rows, s.cols)
            ->Arg(64)->UseRealTime()->Unit(benchmark::kMicrosecond);
    }
  benchmark::RegisterBenchmark("pool_dispatch", BM_pool_dispatch)->Arg(2)->UseRealTime();
  benchmark::RegisterBenchmark("attention", BM_attention)
      ->Args({16, 0})->Args({512, 0})->Args({2048, 0})->Args({2048, 1})->UseRealTime()->Unit(benchmark::kMicrosecond);
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  Collector c;
  benchmark::RunSpecifiedBenchmarks(&c);
  print_summary(c);
  benchmark::Shutdown();
  return 0;
}
