// `tandem bench scaling`: what each rank buys. Decode tokens/s of one sequence with tp=1 and
// tp=2 (one thread per rank), one rank with two threads (the same hardware without MPI), and 8
// concurrent sequences with pp=1 vs pp=2; each against the read bandwidth of the cores it uses.
// With --hosts 2, tp2, pp2 and PEARL (target on host 0, draft on host 1) also run across 2
// emulated hosts (launch/tandem-hosts: TCP between network namespaces, one cluster per
// --link-gbit rate, all interleaved with the one-host rows, PEARL over shared memory included).
// Every row reports each pipeline stage's busy share and busy time per step (dist/model_group.h);
// --pipeline-detail adds what bounds pp2: pp1 at 1, 2 and 4 sequences (T(rows) of the whole
// model), pp2 with 1 and 4 micro-batches, and pp2 with an even layer split, and the same two cores
// on 8 sequences without a pipeline (one rank with 2 threads; tp2).
#include <algorithm>

#include "bench/bench_commands.h"
#include "bench/bench_driver.h"
#include "bench/bench_models.h"
#include "bench/bench_report.h"
#include "bench/emulated_hosts.h"
#include "shard/log.h"
#include "shard/kernels/read_bandwidth.h"

namespace tandem::bench {
namespace {

struct ScalingOptions {
  SynthOptions shape;
  std::string types = "q8_0,q4_0", work_dir = "bench-models", json, model, draft;
  bool pipeline_detail = false, plot = true;
  int reps = 3, gen_tokens = 48, seqs = 8;
  int hosts = 0;
  std::string links = "unshaped";
};

int run_scaling(ScalingOptions& o) {
  ThreadPool p1(1), p2(2);
  const double bw1 = measure_read_bandwidth_gbs(p1), bw2 = measure_read_bandwidth_gbs(p2);
  spdlog::info("read bandwidth: {:.1f} GB/s with 1 thread, {:.1f} GB/s with 2", bw1, bw2);
  EmulatedHosts clusters("tbs");  // one cluster per link rate, removed when the benchmark ends
  if (o.hosts >= 2)
    if (auto st = clusters.make(o.hosts, split_list(o.links)); !st) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
  std::vector<Json> all;
  for (const auto& t : split_list(o.types)) {
    std::string model = o.model, draft = o.draft;
    if (model.empty()) {
      SynthOptions so = o.shape;
      auto wt = parse_weight_type(t);
      if (!wt) {
        spdlog::error("--types: unknown weight type '{}'", t);
        return 2;
      }
      so.type = *wt;
      auto bm = ensure_synth(so, o.work_dir, o.hosts >= 2);  // the draft for PEARL across hosts
      if (!bm) {
        spdlog::error("{}", bm.error().message);
        return 1;
      }
      model = bm->target;
      draft = bm->draft;
    }
    const std::string g = std::to_string(o.gen_tokens), n = std::to_string(o.seqs);
    auto base = [&](std::vector<std::string> extra) {
      std::vector<std::string> a{"--model", model, "--gen-tokens", g, "--speculation", "off"};
      a.insert(a.end(), extra.begin(), extra.end());
      return a;
    };
    std::vector<Config> cfgs{
        {"tp1 (1 rank, 1 thread)", base({"--threads", "1"}), {{"weight_type", t}, {"mem_bw_gb_s", bw1}}},
        {"tp2 (2 ranks, 1 thread each)", base({"--tp", "2", "--threads", "1"}), {{"weight_type", t}, {"mem_bw_gb_s", bw2}}},
        {"tp1 (1 rank, 2 threads)", base({"--threads", "2"}), {{"weight_type", t}, {"mem_bw_gb_s", bw2}}},
        {"pp1 × " + n + " seqs (1 rank)", base({"--threads", "1", "--seqs", n}), {{"weight_type", t}, {"mem_bw_gb_s", bw1}}},
        {"pp2 × " + n + " seqs (2 ranks)", base({"--pp", "2", "--threads", "1", "--seqs", n}), {{"weight_type", t}, {"mem_bw_gb_s", bw2}}},
    };
    if (o.pipeline_detail) {
      for (const char* k : {"1", "2", "4"})
        cfgs.push_back({fmt::format("pp1 × {} seqs (1 rank)", k), base({"--threads", "1", "--seqs", k}),
                        {{"weight_type", t}, {"mem_bw_gb_s", bw1}}});
      for (const char* m : {"1", "4"})
        cfgs.push_back({fmt::format("pp2 × {} seqs, {} micro-batch{}", n, m, m[0] == '1' ? "" : "es"),
                        base({"--pp", "2", "--threads", "1", "--seqs", n, "--micro-batches", m}), {{"weight_type", t}, {"mem_bw_gb_s", bw2}}});
      // The same two cores for 8 sequences without a pipeline: one rank with both threads (the
      // weights read once per round at two cores' bandwidth), and tp2.
      cfgs.push_back({"pp1 × " + n + " seqs (1 rank, 2 threads)", base({"--threads", "2", "--seqs", n}), {{"weight_type", t}, {"mem_bw_gb_s", bw2}}});
      cfgs.push_back({"tp2 × " + n + " seqs (2 ranks)", base({"--tp", "2", "--threads", "1", "--seqs", n}), {{"weight_type", t}, {"mem_bw_gb_s", bw2}}});
      if (o.shape.n_layers >= 2 && o.model.empty()) {
        const std::string even = fmt::format("{},{}", (o.shape.n_layers + 1) / 2, o.shape.n_layers / 2);
        cfgs.push_back({"pp2 × " + n + " seqs, even split " + even, base({"--pp", "2", "--threads", "1", "--seqs", n, "--layer-split", even}),
                        {{"weight_type", t}, {"mem_bw_gb_s", bw2}}});
      }
    }
    // PEARL: target on rank 0, draft on rank 1 (across hosts: the draft's own host).
    auto pearl = [&] {
      return std::vector<std::string>{"--model", model, "--gen-tokens", g, "--threads", "1", "--draft", draft, "--draft-tp", "1", "--speculation", "pearl"};
    };
    if (!clusters.made().empty() && !draft.empty())
      cfgs.push_back({"PEARL, draft on rank 1 (shared memory)", pearl(), {{"weight_type", t}, {"mem_bw_gb_s", bw2}}});
    for (const auto& [name, link] : clusters.made()) {
      const std::string at = fmt::format(", 2 hosts, {} link)", link == "unshaped" ? link : link + " Gbit/s");
      cfgs.push_back({"tp2 (TCP" + at, base({"--tp", "2", "--threads", "1"}), {{"weight_type", t}, {"mem_bw_gb_s", bw2}, {"link", link}}, name});
      cfgs.push_back({"pp2 × " + n + " seqs (TCP" + at, base({"--pp", "2", "--threads", "1", "--seqs", n}),
                      {{"weight_type", t}, {"mem_bw_gb_s", bw2}, {"link", link}}, name});
      if (!draft.empty())
        cfgs.push_back({"PEARL, draft on host 1 (TCP" + at, pearl(), {{"weight_type", t}, {"mem_bw_gb_s", bw2}, {"link", link}}, name});
    }
    auto rows = run_interleaved(cfgs, o.reps);
    if (!rows) {
      spdlog::error("{}", rows.error().message);
      return 1;
    }
    const double tp1 = (*rows)[0]["decode_tok_s"], pp1 = (*rows)[3]["decode_tok_s"];
    double pearl_shm = 0;
    for (const auto& r : *rows)
      if (r["config"].get<std::string>().rfind("PEARL, draft on rank 1", 0) == 0) pearl_shm = r["decode_tok_s"];
    // Bytes one token streams through the whole model (tp1 holds all of it on rank 0).
    const double model_bytes = (*rows)[0]["target_weight_bytes_per_token_rank0"].get<double>();
    for (size_t k = 0; k < rows->size(); ++k) {
      Json& r = (*rows)[k];
      const std::string name = r["config"].get<std::string>();
      const bool pipeline = name.rfind("pp", 0) == 0 || name.find(" seqs") != std::string::npos;
      // What the slowest stage allows: rows per step over its busy time per step (every round
      // each stage runs all its micro-batches); decode_tok_s / this = the pipeline's efficiency.
      if (r.contains("busy_ms_per_step_s1")) {
        const double slowest = std::max(r["busy_ms_per_step_s0"].get<double>(), r["busy_ms_per_step_s1"].get<double>());
        r["stage_bound_tok_s"] = 1e3 * r["rows_per_step_s0"].get<double>() / std::max(1e-9, slowest);
        r["pipeline_eff_pct"] = 100.0 * r["decode_tok_s"].get<double>() / r["stage_bound_tok_s"].get<double>();
      }
      r["speedup"] = r["decode_tok_s"].get<double>() / (pipeline ? pp1 : tp1);
      if (name.rfind("PEARL", 0) == 0 && pearl_shm > 0) r["vs_pearl_shm"] = r["decode_tok_s"].get<double>() / pearl_shm;
      if (!pipeline && name.rfind("PEARL", 0) != 0) {  // one sequence: every token streams the model once
        r["weight_gb_s"] = model_bytes * r["decode_tok_s"].get<double>() / 1e9;
        r["roofline_pct"] = 100.0 * r["weight_gb_s"].get<double>() / r["mem_bw_gb_s"].get<double>();
      }
      all.push_back(r);
    }
  }
  print_table(all, {{"weight_type", "type"}, {"config", "configuration"}, {"decode_tok_s", "decode tok/s"},
                    {"speedup", "× vs 1 rank"}, {"weight_gb_s", "weights GB/s"}, {"mem_bw_gb_s", "read BW GB/s"},
                    {"roofline_pct", "% of BW"}, {"comm_pct", "comm %"}, {"vs_pearl_shm", "× PEARL shm"},
                    {"rows_per_step_s0", "rows/step"}, {"busy_ms_per_step_s0", "s0 ms/step"}, {"busy_ms_per_step_s1", "s1 ms/step"},
                    {"busy_pct_s0", "s0 busy %"}, {"busy_pct_s1", "s1 busy %"}, {"engine_pct", "rank 0 engine %"},
                    {"stage_bound_tok_s", "stage bound tok/s"}, {"pipeline_eff_pct", "% of bound"}});
  Json extra;
  extra["mem_bw_gb_s_1thread"] = bw1;
  extra["mem_bw_gb_s_2threads"] = bw2;
  if (!write_json(o.json, "scaling", all, extra)) return 1;
  if (!o.json.empty() && o.plot) plot_json("plot_bench_scaling.py", o.json);  // PNG + SVG next to the JSON
  return 0;
}

}  // namespace

void add_bench_scaling(CLI::App& bench) {
  auto o = std::make_shared<ScalingOptions>();
  auto* c = bench.add_subcommand("scaling", "Strong scaling: tp=1 vs tp=2, and pp=1 vs pp=2 with concurrent sequences");
  c->add_option("--model,-m", o->model, "Model (default: synthetic TinyLlama-1.1B shape per --types)");
  c->add_option("--types", o->types, "Weight types, comma-separated");
  c->add_option("--draft", o->draft, "Draft model for the PEARL rows with --hosts (default: the synthetic target's draft)");
  c->add_flag("--pipeline-detail", o->pipeline_detail,
              "Also pp1 at 1/2/4 sequences, pp2 with 1 and 4 micro-batches and with an even layer split (what bounds pp2)");
  add_shape_options(*c, o->shape);
  c->add_option("--seqs", o->seqs, "Concurrent sequences for the pipeline comparison");
  c->add_option("--gen-tokens", o->gen_tokens, "Tokens generated per sequence");
  c->add_option("--reps", o->reps, "Repetitions (interleaved; medians)");
  c->add_option("--work-dir", o->work_dir, "Where synthetic models are written and reused");
  c->add_option("--json", o->json, "Also write the results as JSON (and the chart next to it when matplotlib is present)");
  c->add_flag("!--no-plot", o->plot, "Do not draw the chart");
  c->add_option("--hosts", o->hosts,
                "Also run tp2 and pp2 across this many emulated hosts (launch/tandem-hosts; root; 0: none)")
      ->check(CLI::IsMember({0, 2}));
  c->add_option("--link-gbit", o->links, "Link rates between the emulated hosts, comma-separated: Gbit/s or 'unshaped'")
      ->capture_default_str();
  c->callback([o] {
    const int rc = run_scaling(*o);
    if (rc) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tandem::bench
