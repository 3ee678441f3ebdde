// `tandem bench run`: one configuration measured through the real engine, under whatever MPI
// layout it is launched with (the scaling/spec drivers start it with tandem-mpirun). N
// concurrent requests decode G tokens each after a P-token prompt; rank 0 prints one JSON line
// ("BENCH_JSON {...}") with aggregate decode tokens/s, prompt tokens/s, speculation figures and
// the share of target time spent in communication.
#include <fmt/format.h>
#include <mpi.h>

#include <random>

#include "bench/bench_commands.h"
#include "bench/bench_report.h"
#include "decode/engine.h"
#include "decode/worker_rank.h"
#include "dist/mpi_runtime.h"
#include "shard/log.h"

namespace tandem::bench {
namespace {

struct RunOpts {
  ClusterOptions cluster;
  std::string layer_split, speculation = "off", draft_len = "auto", prompt;
  int seqs = 1, prompt_tokens = 32, gen_tokens = 64, micro_batches = 0;
  float temperature = 0;
};

// Per target member over the measured window: where its time went (dist/model_group.h). Flat
// numeric fields per stage (TP rank 0 of each), so the drivers' medians cover them, plus the
// detail of every member under "members".
void add_stage_times(Json& j, const std::vector<GroupStats>& a, const std::vector<GroupStats>& b) {
  Json members = Json::array();
  for (size_t r = 0; r < a.size() && r < b.size(); ++r) {
    const double wall = std::max(1e-9, b[r].wall_seconds - a[r].wall_seconds);
    const double busy = b[r].compute_seconds - a[r].compute_seconds;
    const double wait = b[r].wait_in_seconds - a[r].wait_in_seconds;
    const double send = b[r].send_seconds - a[r].send_seconds;
    const double steps = static_cast<double>(b[r].steps - a[r].steps);
    const double rows = static_cast<double>(b[r].rows - a[r].rows);
    const double dsteps = static_cast<double>(b[r].decode_steps - a[r].decode_steps);
    const double drows = static_cast<double>(b[r].decode_rows - a[r].decode_rows);
    const double dbusy = b[r].decode_compute_seconds - a[r].decode_compute_seconds;
    Json m;
    m["rank"] = r;
    m["stage"] = b[r].stage;
    m["tp_rank"] = b[r].tp_rank;
    m["wall_s"] = wall;
    m["steps"] = steps;
    // Per decode step (prompt chunks left out): this stage's T(rows) at rows_per_step.
    m["decode_steps"] = dsteps;
    m["rows_per_step"] = dsteps > 0 ? drows / dsteps : 0.0;
    m["busy_ms_per_step"] = dsteps > 0 ? 1e3 * dbusy / dsteps : 0.0;
    m["all_rows_per_step"] = steps > 0 ? rows / steps : 0.0;
    m["busy_pct"] = 100.0 * busy / wall;
    m["wait_in_pct"] = 100.0 * wait / wall;
    m["send_pct"] = 100.0 * send / wall;
    m["other_pct"] = 100.0 * (wall - busy - wait - send) / wall;  // the master: the engine's own work
    if (b[r].tp_rank == 0) {
      const std::string s = std::to_string(b[r].stage);
      j["busy_pct_s" + s] = m["busy_pct"];
      j["wait_in_pct_s" + s] = m["wait_in_pct"];
      j["busy_ms_per_step_s" + s] = m["busy_ms_per_step"];
      j["rows_per_step_s" + s] = m["rows_per_step"];
      if (r == 0) j["engine_pct"] = m["other_pct"];
    }
    members.push_back(std::move(m));
  }
  j["members"] = std::move(members);
}

int run(RunOpts& o) {
  auto rt = mpi_start(nullptr, nullptr);
  if (!rt) {
    spdlog::error("{}", rt.error().message);
    return 1;
  }
  auto ls = parse_layer_split(o.layer_split);
  if (!ls) {
    spdlog::error("{}", ls.error().message);
    return 2;
  }
  o.cluster.layout.layer_split = *ls;
  o.cluster.max_seqs = std::max(o.cluster.max_seqs, o.seqs);
  auto cl = start_cluster(o.cluster, (*rt)->rank, (*rt)->size);
  if (!cl) {
    spdlog::error("{}", cl.error().message);
    return 1;
  }
  Cluster& c = **cl;
  if (!c.role.coordinator()) {
    run_worker_rank(c);
    return 0;
  }
  auto tok = Tokenizer::create(c.target_file.vocab);
  if (!tok) {
    spdlog::error("{}", tok.error().message);
    return 1;
  }
  EngineOptions eo;
  eo.speculation = *parse_spec_mode(o.speculation);
  eo.draft_len = o.draft_len == "auto" ? 0 : std::stoi(o.draft_len);
  eo.max_draft_len = std::max(16, eo.draft_len);
  eo.micro_batches = o.micro_batches;
  Engine engine(c, *tok, eo);
  // Warm caches and page in the weights; for auto, this is the start-up profile that picks the mode.
  if (eo.speculation == SpecMode::Auto) {
    if (auto st = engine.warmup(); !st) spdlog::warn("warm-up: {}", st.error().message);
  } else {
    GenerationRequest w;
    w.prompt = {tok->bos() >= 0 ? tok->bos() : 0};
    w.stop.max_tokens = 8;
    w.stop.ignore_eos = true;
    (void)engine.submit(w);
    (void)engine.run_until_idle();
  }
  const EngineInfo before = engine.info();
  const GroupStats gs0 = c.target->stats();
  const std::vector<GroupStats> ms0 = c.target->member_stats();

  std::mt19937 rng(42);
  std::vector<std::shared_ptr<RequestStream>> streams;
  const double t0 = MPI_Wtime();
  for (int i = 0; i < o.seqs; ++i) {
    GenerationRequest r;
    r.id = fmt::format("bench-{}", i);
    if (!o.prompt.empty()) {
      r.prompt = tok->encode(o.prompt, true);
    } else {
      r.prompt = {tok->bos() >= 0 ? tok->bos() : 0};
      while (static_cast<int>(r.prompt.size()) < o.prompt_tokens) r.prompt.push_back(static_cast<int32_t>(rng() % tok->n_vocab()));
    }
    r.stop.max_tokens = o.gen_tokens;
    r.stop.ignore_eos = true;
    r.sampling.temperature = o.temperature;
    r.sampling.seed = 1000 + i;
    auto s = engine.submit(r);
    if (!s) {
      spdlog::error("{}", s.error().message);
      engine.shutdown_groups();
      return 1;
    }
    streams.push_back(*s);
  }
  auto st = engine.run_until_idle();
  const double wall = MPI_Wtime() - t0;
  if (!st) spdlog::error("{}", st.error().message);
  int prompt = 0, completion = 0, drafted = 0, accepted = 0;
  double max_ttft = 0;
  for (auto& s : streams) {
    while (auto e = s->next(std::chrono::milliseconds(0))) {
      if (!e->final) continue;
      prompt += e->usage.prompt_tokens;
      completion += e->usage.completion_tokens;
      drafted += e->usage.drafted;
      accepted += e->usage.accepted;
      max_ttft = std::max(max_ttft, e->usage.ttft_ms / 1e3);
    }
  }
  const EngineInfo after = engine.info();
  const GroupStats gs1 = c.target->stats();
  const std::vector<GroupStats> ms1 = c.target->member_stats();
  const int64_t blocks = after.blocks - before.blocks;
  Json j;
  j["mode"] = o.speculation;
  if (eo.speculation == SpecMode::Auto) {
    j["auto_mode"] = spec_mode_name(after.auto_mode);
    j["auto_reason"] = after.auto_reason;
  }
  j["layout"] = c.opts.layout.describe();
  j["ranks"] = c.opts.layout.world_size();
  j["threads"] = c.opts.threads;
  j["seqs"] = o.seqs;
  j["micro_batches"] = o.micro_batches > 0 ? o.micro_batches : c.opts.layout.pp;
  j["prompt_tokens"] = prompt;
  j["completion_tokens"] = completion;
  j["wall_s"] = wall;
  j["prompt_tok_s"] = prompt / std::max(1e-9, max_ttft);
  j["decode_tok_s"] = (completion - o.seqs) / std::max(1e-9, wall - max_ttft);
  j["acceptance"] = drafted ? static_cast<double>(accepted) / drafted : 0.0;
  j["mean_accepted"] = blocks ? static_cast<double>(after.accepted - before.accepted) / blocks : 0.0;
  j["draft_len"] = blocks ? static_cast<double>(after.drafted_tokens - before.drafted_tokens) / blocks : 0.0;
  j["comm_pct"] = 100.0 * (gs1.comm_seconds - gs0.comm_seconds) / std::max(1e-9, wall);
  j["wait_for_draft_pct"] = 100.0 * (after.wait_for_draft_s - before.wait_for_draft_s) / std::max(1e-9, wall);
  j["target_weight_bytes_per_token_rank0"] = c.target->model().bytes_per_token;
  add_stage_times(j, ms0, ms1);
  engine.shutdown_groups();
  fmt::print("BENCH_JSON {}\n", j.dump());
  std::fflush(stdout);
  return st.ok() ? 0 : 1;
}

}  // namespace

void add_bench_run(CLI::App& bench) {
  auto o = std::make_shared<RunOpts>();
  auto* c = bench.add_subcommand("run", "Measure one configuration through the engine (launch under mpirun; used by scaling/spec)");
  c->add_option("--model,-m", o->cluster.model, "Target model")->required()->check(CLI::ExistingFile);
  c->add_option("--draft", o->cluster.draft, "Drafter: model file, ngram or layers:K");
  c->add_option("--tp", o->cluster.layout.tp, "Target tensor-parallel ranks");
  c->add_option("--pp", o->cluster.layout.pp, "Target pipeline stages");
  c->add_option("--layer-split", o->layer_split, "Layers per pipeline stage");
  c->add_option("--draft-tp", o->cluster.layout.draft_tp, "Draft group ranks (0: drafter on rank 0)");
  c->add_option("--threads,-t", o->cluster.threads, "Compute threads per rank");
  c->add_option("--speculation", o->speculation, "off | sd | pearl | auto")->check(CLI::IsMember({"off", "sd", "pearl", "auto"}));
  c->add_option("--draft-len", o->draft_len, "auto or N");
  c->add_option("--seqs", o->seqs, "Concurrent sequences")->check(CLI::Range(1, 1024));
  c->add_option("--micro-batches", o->micro_batches, "Micro-batches kept in flight (0: one per pipeline stage)")->check(CLI::Range(0, 64));
  c->add_option("--prompt", o->prompt, "Prompt text (default: random tokens)");
  c->add_option("--prompt-tokens", o->prompt_tokens, "Random prompt length")->check(CLI::Range(1, 1 << 16));
  c->add_option("--gen-tokens", o->gen_tokens, "Tokens generated per sequence")->check(CLI::Range(2, 1 << 16));
  c->add_option("--temperature", o->temperature, "Sampling temperature (0: greedy)");
  c->add_option("--ctx-size", o->cluster.ctx, "Context positions (default: the model's)");
  c->callback([o] {
    const int rc = run(*o);
    if (rc) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tandem::bench
