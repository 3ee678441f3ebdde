#include "launch/run_options.h"

#include <fmt/format.h>

#include "shard/log.h"

namespace tandem::cli {

void add_run_options(CLI::App& c, RunOptions& o, bool server) {
  // Not checked for existence here: a rank on a host without the file is sent its shard by rank 0.
  c.add_option("--model,-m", o.model, "Target model (GGUF, or llama2.c checkpoint)")->required();
  c.add_option("--model-cache", o.model_cache,
               "On hosts without the model (or draft) file: keep the shard rank 0 sends in this directory, and reuse "
               "it next time once its bytes are checked against rank 0's (default: a temporary copy)");
  c.add_option("--tokenizer", o.tokenizer, "tokenizer.bin for a llama2.c checkpoint (default: beside it)");
  c.add_option("--threads,-t", o.threads, "Compute threads per rank")->check(CLI::Range(1, 256));
  c.add_option("--tp", o.tp, "Tensor-parallel ranks of the target (any divisor of the head count)")->check(CLI::Range(1, 1024));
  c.add_option("--pp", o.pp, "Pipeline stages of the target")->check(CLI::Range(1, 1024));
  c.add_option("--layer-split", o.layer_split, "Layers per pipeline stage, e.g. 10,12 (default: even)");
  c.add_option("--draft", o.draft, "Drafter: a draft model file, 'ngram' (prompt lookup) or 'layers:K' (the target's first K layers)");
  c.add_option("--draft-tp", o.draft_tp,
               "Ranks of the draft group (0: the drafter runs on rank 0; default: the ranks the job has beyond tp × pp, "
               "when --draft names a model or layers:K)")
      ->check(CLI::Range(0, 1024));
  c.add_option("--speculation", o.speculation, "off | sd (draft then verify) | pearl (draft ranks run in parallel) | auto (fastest, profiled at start-up)")
      ->check(CLI::IsMember({"off", "sd", "pearl", "auto"}));
  c.add_option("--draft-len", o.draft_len, "Draft tokens per block: auto (adaptive) or N");
  c.add_option("--ctx-size", o.ctx, "Context positions per sequence (default: the model's)")->check(CLI::Range(0, 1 << 24));
  c.add_option("--kv-type", o.kv_type, "KV cache element type")->check(CLI::IsMember({"f16", "f32"}));
  c.add_option("--prefill-chunk", o.prefill_chunk, "Prompt tokens per step over all sequences")->check(CLI::Range(1, 1 << 20));
  c.add_option("--micro-batches", o.micro_batches, "Micro-batches of the running sequences kept in flight (0: one per pipeline stage)")
      ->check(CLI::Range(0, 64));
  if (server) {
    c.add_option("--max-seqs", o.max_seqs, "Sequences decoded together (KV slots)")->check(CLI::Range(1, 4096));
    c.add_option("--max-queue", o.max_queue, "Requests waiting for a slot before RESOURCE_EXHAUSTED")->check(CLI::Range(0, 1 << 20));
    return;
  }
  c.add_option("--max-tokens,-n", o.max_tokens, "Tokens to generate")->check(CLI::Range(1, 1 << 24));
  c.add_option("--temperature", o.temperature, "Sampling temperature (0: greedy)");
  c.add_option("--top-k", o.top_k, "Keep the k most likely tokens (0: off)");
  c.add_option("--top-p", o.top_p, "Nucleus sampling mass (1: off)");
  c.add_option("--min-p", o.min_p, "Drop tokens below min-p × the top probability (0: off)");
  c.add_option("--repeat-penalty", o.repeat_penalty, "Repetition penalty over the last --penalty-last-n tokens (1: off)");
  c.add_option("--presence-penalty", o.presence_penalty, "Presence penalty (0: off)");
  c.add_option("--frequency-penalty", o.frequency_penalty, "Frequency penalty (0: off)");
  c.add_option("--penalty-last-n", o.penalty_last_n, "Window of the penalties (-1: all)");
  c.add_option("--seed", o.seed, "Seed of every random draw (results do not depend on layout or batching)");
  c.add_option("--stop", o.stop, "Stop string (repeatable); not included in the output");
  c.add_option("--stop-id", o.stop_ids, "Stop token id (repeatable)");
  c.add_flag("--ignore-eos", o.ignore_eos, "Keep generating after end-of-generation tokens");
}

Result<ClusterOptions> RunOptions::cluster() const {
  ClusterOptions c;
  c.layout.tp = tp;
  c.layout.pp = pp;
  c.layout.draft_tp = draft_tp;
  auto ls = parse_layer_split(layer_split);
  if (!ls) return ls.error();
  c.layout.layer_split = *ls;
  c.model = model;
  c.model_cache = model_cache;
  c.tokenizer = tokenizer;
  c.draft = draft;
  c.threads = threads;
  c.max_seqs = max_seqs;
  c.ctx = ctx;
  c.kv_type = kv_type == "f32" ? WeightType::F32 : WeightType::F16;
  if (draft_len != "auto") {
    try {
      if (std::stoi(draft_len) < 1) throw std::invalid_argument("");
    } catch (...) {
      return make_error("--draft-len must be 'auto' or a positive integer (got '{}')", draft_len);
    }
  }
  return c;
}

EngineOptions RunOptions::engine() const {
  EngineOptions e;
  e.max_queue = max_queue;
  e.speculation = *parse_spec_mode(speculation);
  e.draft_len = draft_len == "auto" ? 0 : std::stoi(draft_len);
  e.max_draft_len = std::max(16, e.draft_len);
  e.prefill_chunk = prefill_chunk;
  e.micro_batches = micro_batches;
  return e;
}

Result<GenerationRequest> RunOptions::request() const {
  GenerationRequest r;
  r.sampling.temperature = temperature;
  r.sampling.top_k = top_k;
  r.sampling.top_p = top_p;
  r.sampling.min_p = min_p;
  r.sampling.repetition_penalty = repeat_penalty;
  r.sampling.presence_penalty = presence_penalty;
  r.sampling.frequency_penalty = frequency_penalty;
  r.sampling.penalty_last_n = penalty_last_n;
  r.sampling.seed = seed;
  TANDEM_TRY(validate(r.sampling));
  r.stop.max_tokens = max_tokens;
  r.stop.stop = stop;
  r.stop.stop_token_ids = stop_ids;
  r.stop.ignore_eos = ignore_eos;
  TANDEM_TRY(validate(r.stop));
  r.speculation = *parse_spec_mode(speculation);
  return r;
}

void print_counters(const EngineInfo& i, const Usage& u) {
  std::string per_pos;
  for (size_t k = 0; k < i.tested_at.size(); ++k)
    if (i.tested_at[k] > 0) per_pos += fmt::format(" {}:{:.2f}", k, double(i.accepted_at[k]) / i.tested_at[k]);
  spdlog::info("speculation: {} draft tokens checked, {} accepted (acceptance {:.3f}); {} blocks, mean draft length "
               "{:.2f}, mean accepted per block {:.2f}; target steps {} ({:.1f} ms busy); mutual waiting: target waited {:.1f} ms for "
               "drafts, drafter idle {:.1f} ms; auto -> {} ({})",
               u.drafted, u.accepted, u.drafted ? double(u.accepted) / u.drafted : 0.0, i.blocks,
               i.blocks ? double(i.drafted_tokens) / i.blocks : 0.0, i.blocks ? double(i.accepted) / i.blocks : 0.0,
               i.target_steps, i.target_busy_s * 1e3, i.wait_for_draft_s * 1e3, i.draft_idle_s * 1e3,
               spec_mode_name(i.auto_mode), i.auto_reason);
  if (!per_pos.empty()) spdlog::info("acceptance by position in block (0 = checked against the previous step):{}", per_pos);
}

}  // namespace tandem::cli
