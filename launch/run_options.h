// Flags shared by the subcommands that run a model (generate, serve, bench): model and layout,
// drafter and speculation, and for `generate` the sampling of its one request.
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "decode/engine.h"
#include "dist/cluster.h"

namespace tandem::cli {

struct RunOptions {
  std::string model, tokenizer, draft, speculation = "auto", draft_len = "auto", layer_split, kv_type = "f16";
  std::string model_cache;
  int tp = 1, pp = 1, draft_tp = -1, threads = 1, max_seqs = 1, ctx = 0, max_queue = 64, prefill_chunk = 512, micro_batches = 0;
  // Sampling and stopping (generate's request; serve takes them per request).
  int max_tokens = 128, top_k = 0, penalty_last_n = 64;
  float temperature = 0, top_p = 1, min_p = 0, repeat_penalty = 1, presence_penalty = 0, frequency_penalty = 0;
  uint64_t seed = 0;
  std::vector<std::string> stop;
  std::vector<int32_t> stop_ids;
  bool ignore_eos = false;

  Result<ClusterOptions> cluster() const;
  EngineOptions engine() const;
  Result<GenerationRequest> request() const;
};

// server: the serving flags (--max-seqs, --max-queue) and no per-request sampling flags.
void add_run_options(CLI::App& cmd, RunOptions& o, bool server);
void print_counters(const EngineInfo& info, const Usage& u);

}  // namespace tandem::cli
