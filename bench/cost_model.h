// The cost model: predicted decode speed, batch throughput, time to first token and memory of a
// model on a cluster in a given layout and speculation mode. Plain data and free functions, no
// MPI, no clocks — every constant comes from a calibration profile or a cluster file, so the same
// arithmetic plans for this machine and projects to machines that are not here.
//
// A decode step is memory-bound: each rank streams its weight slice at the lower of its share of
// the read bandwidth and the rate its GEMV reaches alone (kernel_efficiency × the bandwidth of
// one rank), times T(rows)/T(1) for a step over several rows (the compute profile). Around that:
// attention (its KV reads, or its calibrated cost per position when that is larger), two
// allreduces per layer and a step broadcast (TP), stage-to-stage sends (PP), the engine's
// per-step and per-sequence overhead, and for speculation the expected tokens per block (1-α^(γ+1))/(1-α)
// (SD), or PEARL's two kinds of round as the engine runs them (predict() has the chain).
#pragma once
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "dist/layout.h"
#include "shard/format/model_config.h"
#include "shard/kernels/weight_type.h"
#include "shard/result.h"

namespace tandem::bench {

struct ModelShape {
  std::string name;
  int n_layers = 0, dim = 0, n_heads = 0, n_kv_heads = 0, head_dim = 0, ffn_dim = 0, n_vocab = 0;
  WeightType type = WeightType::Q8_0;  // every matrix (the synthetic models' convention)

  double bytes_per_weight() const;
  double layer_weight_bytes() const;  // q, k, v, o, gate, up, down
  double head_bytes() const;          // output head (streamed every step)
  double embedding_bytes() const;     // token embedding (held, one row read per token)
  double kv_bytes_per_position_layer() const;  // K + V, f16
};

// The named shapes (tinyllama-1.1b, llama-2-7b, llama-2-13b, llama-3-8b, llama-3-70b, qwen2.5-72b).
Result<ModelShape> named_shape(const std::string& name, WeightType type);
std::vector<std::string> shape_names();
ModelShape shape_from_config(const ModelConfig& c, WeightType type);

struct Link {
  double latency_s = 0;        // per message
  double bandwidth_Bps = 1e9;  // bytes per second
  double time(double bytes) const { return latency_s + bytes / bandwidth_Bps; }
};

struct ClusterSpec {
  std::string name = "cluster";
  int nodes = 1;
  int ranks_per_node = 1;
  double rank_read_GBps = 25;   // one rank alone
  double node_read_GBps = 25;   // all ranks of a node together (they share it)
  double rank_memory_GiB = 16;  // usable per rank
  Link intra, inter;            // within a node, between nodes
  // T(rows)/T(1) per weight type name ("q4_k"), at increasing row counts; 1 at rows = 1.
  std::map<std::string, std::vector<std::pair<int, double>>> compute;
  // Per weight type, the share of one rank's read bandwidth its GEMV streams at alone (calibrated;
  // default 1); ranks sharing a node stream at the lower of this and their bandwidth share.
  std::map<std::string, double> kernel_efficiency;
  double step_overhead_s = 0;   // per engine step (sampling, scheduling, verification)
  double seq_overhead_s = 0;    // per step, per sequence beyond the first (sampling, bookkeeping)
  // Per step of a TP group: rank 0 broadcasts the step's descriptor (absent: not charged).
  std::optional<Link> bcast;
  std::optional<Link> p2p;      // stage-to-stage sends (absent: the allreduce link)
  // Per hop of one sequence through the stages in turn: the idle stage's wake-up beyond the send.
  double hop_overhead_s = 0;
  // Attention compute per cached position per KV head, at attention_ref = n_q × head_dim query
  // values per KV head (scaled by the model's); 0: attention is its KV bytes at read bandwidth.
  double attention_s_per_pos = 0;
  double attention_ref = 512;
  std::string source;           // where the constants came from (profile file, machine, date)

  int world() const { return nodes * ranks_per_node; }
};

// T(rows)/T(1) for the type: linear in log2(rows) between measured points, linear in rows beyond.
double compute_factor(const ClusterSpec& c, WeightType t, double rows);

enum class Mode { AR, SD, PEARL };
const char* mode_name(Mode m);

struct Query {
  Layout layout;        // tp × pp (+ draft_tp ranks for PEARL)
  Mode mode = Mode::AR;
  double acceptance = 0.8;    // α, per drafted token
  int gamma = 0;              // draft length; 0 = the best for the model (adaptive draft length)
  int gamma_max = 16;
  double draft_fraction = 0.1;  // draft weight bytes / target weight bytes
  int draft_layers = 22;        // draft depth: its TP group allreduces twice per layer (of dim floats)
  int context = 512;          // positions in the KV cache during decode
  int batch = 8;              // B for the throughput figure
  int prompt = 512;           // P for TTFT
  int prefill_chunk = 512;    // prompt rows per step (the engine's default)
  int max_seqs = 8;           // KV slots held per rank
};

struct Breakdown {  // seconds per target step of one sequence (AR: per token)
  double weights = 0, attention = 0, allreduce = 0, p2p = 0, overhead = 0;
  double bubble_fraction = 0;  // share of rank-time idle in single-sequence pipelining
  double draft = 0;            // draft time per block (SD: in turn; PEARL: beside the target's step)
  double pearl_hidden = 0;     // PEARL: draft time hidden behind the target's step, per round (expected)
  double tokens_per_block = 1; // expected tokens per block (SD) or per round (PEARL: both kinds of round)
  int gamma = 0;
};

struct Prediction {
  double decode_tok_s = 0;      // one sequence
  double throughput_tok_s = 0;  // B sequences (AR, micro-batched across stages)
  double ttft_s = 0;            // prompt of P tokens
  double memory_per_rank_GiB = 0;  // the heaviest rank
  double rank_read_GBps = 0;    // per-rank bandwidth used (node share applied)
  Breakdown step;
};

// Throughput and a token's trip through a pipeline of stage times (seconds) with `micro` micro-
// batches in flight and `hop` seconds per stage-to-stage send: returns seconds per cycle.
double pipeline_cycle(const std::vector<double>& stage_s, double hop_s, int micro);

// Expected tokens per speculative block: (1-α^(γ+1))/(1-α) (γ+1 when α = 1).
double expected_tokens(double alpha, int gamma);

// The launcher's own checks (shard_ranges, pipeline_stages: same messages), the cluster's rank
// count, draft ranks only for PEARL, and memory per rank. (plan_layouts lists only layouts of the
// job's world size, which check_world_size then accepts.)
Status check_feasible(const ModelShape& m, const ClusterSpec& c, const Query& q);
Result<Prediction> predict(const ModelShape& m, const ClusterSpec& c, const Query& q);

struct Ranked {
  Query query;
  Prediction pred;
};
// Every feasible layout for `world` ranks in `mode` (PEARL: 1, 2, 4, ... draft ranks), best decode
// first; the refused ones with their reasons in `refused` when given.
std::vector<Ranked> plan_layouts(const ModelShape& m, const ClusterSpec& c, const Query& base, int world,
                                 std::vector<std::pair<std::string, std::string>>* refused = nullptr);

}  // namespace tandem::bench
