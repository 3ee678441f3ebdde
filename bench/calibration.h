// Calibration: the constants the cost model needs, measured on this machine and kept as JSON
// (profile.json), so `tandem plan` predicts from figures this machine produced.
//
// Measured here: the read bandwidth per thread count; per weight type the step time T(rows)
// of one representative matrix (2048 × 5632, TinyLlama's FFN, rotated over copies larger than
// the L3 so weights come from DRAM as in decode) and the GEMV bandwidth over a whole layer's
// matrix shapes (q, k, v, o, gate, up, down: decode streams all of them, not only the FFN's);
// attention's cost per cached position. The links between ranks (allreduce, send, broadcast)
// are fitted separately (the command measures them when run on 2 MPI ranks — over shared memory,
// or TCP when the ranks are on two emulated hosts) or taken from flags. The engine's per-step
// overhead (sampling, scheduling, verification) is measured through the engine by
// `tandem bench model-check` (a tiny synthetic model whose weights cost next to nothing).
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <vector>

#include "bench/cost_model.h"
#include "shard/kernels/matmul.h"
#include "shard/kernels/thread_pool.h"
#include "shard/result.h"

namespace tandem::bench {

struct Profile {
  nlohmann::json machine;                       // cpu, cores, memory, kernels, date
  std::vector<std::pair<int, double>> read_GBps;  // threads → GB/s
  // Two ranks of one thread streaming at once, summed (measured under 2 MPI ranks; 0: not).
  double ranks_read_GBps = 0;
  double ranks_gemv_GBps = 0;  // the same with a tp2 layer's q8_0 GEMVs (what decode does)
  // The samples behind the two medians (model-check adds its probes between repetitions).
  std::vector<double> ranks_read_samples, ranks_gemv_samples;
  // Per type: layer_gemv_GBps samples taken beside model-check's runs (the calibration's first).
  std::map<std::string, std::vector<double>> layer_gemv_samples;
  // Per type: T(rows)/T(1), and T(1) as GB/s of the matrix's bytes.
  std::map<std::string, std::vector<std::pair<int, double>>> compute;
  std::map<std::string, double> gemv_GBps;
  // Per type: GEMV bandwidth over one layer's matrix shapes in decode order (0/absent: not measured).
  std::map<std::string, double> layer_gemv_GBps;
  std::map<std::string, std::vector<std::pair<int, double>>> layer_compute;  // T(rows)/T(1) of the layer
  // Attention of one query row: seconds for (context positions) with one KV head shared by
  // attention_n_q query heads of attention_head_dim (F16 cache, scores + softmax + values).
  std::vector<std::pair<int, double>> attention;
  int attention_n_q = 8, attention_head_dim = 64;
  double attention_s_per_pos = 0;  // slope of the fit: seconds per position (per KV head)
  Link intra;                 // allreduce between two ranks of this host
  std::optional<Link> p2p, bcast;  // send / broadcast between two ranks (when measured)
  // The engine's per-step overhead: s per step + s per extra sequence in the step (model-check).
  double step_overhead_s = 0, seq_overhead_s = 0;
  std::string overhead_source;
  // A pipeline hand-over beyond the send itself: the waiting stage's wake-up (the engine's polite
  // wait sleeps after 5 ms of spinning) and its interference, per hop (2 ranks: measured).
  std::optional<double> hop_overhead_s;
  std::string link_source;    // "measured (mpi, 2 ranks)" or "assumed (flags)"
  double memory_GiB = 0;
  int cores = 1;
};

struct CalibrateOptions {
  std::vector<WeightType> types{WeightType::Q4_0, WeightType::Q8_0, WeightType::Q4_K, WeightType::F16};
  std::vector<int> rows{1, 2, 4, 8, 16, 32, 64};  // starts at 1 (the ratios' base)
  int threads = 1;       // per rank, as the engine's benchmarks run
  int reps = 5;          // medians of this many passes over the copies
  size_t stream_MiB = 96;  // copies of each matrix: 3 × the 32 MiB L3
  std::vector<int> attention_ctx{64, 256, 1024, 4096};  // context lengths for attention's cost
};

// Decode work for the two-rank measurements: one-row q8_0 GEMV passes over copies of a set of
// matrix shapes (rows × cols, in order; default one 5632 × 2048 FFN matrix), past the L3.
class GemvLoad {
 public:
  explicit GemvLoad(size_t MiB, std::vector<std::pair<int64_t, int64_t>> shapes = {{5632, 2048}});
  void run(ThreadPool& pool);  // one pass over every copy
  size_t bytes() const { return bytes_; }
 private:
  std::vector<PackedMatrix> copies_;
  std::vector<float> x_, y_;
  size_t bytes_ = 0;
};

// What one rank of a tp2 TinyLlama layer streams: q, k, v, o, gate, up, down split as
// shard_ranges splits them (heads and FFN rows halved; o and down by their input columns).
std::vector<std::pair<int64_t, int64_t>> tp2_layer_shapes();

// One rank's GEMV bandwidth at one row over one layer's shapes (the figure measure_profile keeps
// as layer_gemv_GBps), median of `reps` passes: model-check samples it again between repetitions.
double layer_gemv_gbs(WeightType t, int threads, int reps, size_t stream_MiB = 96);

// Measures bandwidth (1 and 2 threads) and the compute profile; takes a few tens of seconds.
Profile measure_profile(const CalibrateOptions& o);

// Least-squares fit of time = latency + bytes / bandwidth over (bytes, seconds) samples.
Link fit_link(const std::vector<std::pair<double, double>>& samples);
// Ordinary least squares y = a + b·x: {a, b}.
std::pair<double, double> fit_line(const std::vector<std::pair<double, double>>& samples);
// The engine's per-step overhead from probe runs: (sequences per step, seconds per step beyond
// what the cost model charges without overhead) → {per step, per extra sequence}, each ≥ 0.
std::pair<double, double> fit_step_overhead(const std::vector<std::pair<int, double>>& seqs_excess_s);

nlohmann::json to_json(const Profile& p);
Result<Profile> profile_from_json(const nlohmann::json& j, const std::string& path);
Result<Profile> load_profile(const std::string& path);

// This machine as a one-node cluster of `ranks` ranks: a rank alone gets the 1-thread bandwidth,
// the node's ranks together the best multi-thread figure.
ClusterSpec cluster_from_profile(const Profile& p, int ranks, const std::string& source);

// A cluster file: {"name", "nodes", "ranks_per_node", "rank_read_gbs", "node_read_gbs",
// "rank_memory_gib", "intra": {"latency_us", "gbs"}, "inter": {...}, "step_overhead_us",
// "compute": {"q4_k": [[1,1.0],[8,1.6]], ...} or "profile": "profile.json" for this machine's}.
Result<ClusterSpec> load_cluster(const std::string& path);

}  // namespace tandem::bench
