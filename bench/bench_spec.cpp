// `tandem bench spec`: what each speculation mode buys. On a TinyLlama-1.1B-shape synthetic
// target with a 1-layer synthetic draft (~10× cheaper per token), at several residual scales
// (acceptance ~0.6 / 0.8 / 0.9), one invocation measures: AR with the target on rank 0; vanilla
// SD with draft and target on rank 0; PEARL with the target on rank 0 and the draft on rank 1;
// at equal hardware (both ranks for the target, tp=2) AR and SD; and what --speculation auto
// picks for each layout. Plus the n-gram drafter on a repetitive prompt with a real model.
#include <fmt/format.h>

#include "bench/bench_commands.h"
#include "bench/bench_driver.h"
#include "bench/bench_models.h"
#include "bench/bench_report.h"
#include "shard/log.h"

namespace tandem::bench {
namespace {

struct SpecOptions {
  SynthOptions shape;
  std::string type = "q8_0", scales = "0.08,0.035,0.015", work_dir = "bench-models", json, ngram_model;
  int reps = 3, gen_tokens = 64, draft_layers = 1;
  bool auto_rows = true, plot = true;
};

int run_spec(SpecOptions& o) {
  auto wt = parse_weight_type(o.type);
  if (!wt) {
    spdlog::error("--type: unknown weight type '{}'", o.type);
    return 2;
  }
  std::vector<Json> all;
  const std::string g = std::to_string(o.gen_tokens);
  for (const auto& sc : split_list(o.scales)) {
    SynthOptions so = o.shape;
    so.type = *wt;
    so.residual_scale = std::stof(sc);
    so.draft_layers = o.draft_layers;
    auto bm = ensure_synth(so, o.work_dir, true);
    if (!bm) {
      spdlog::error("{}", bm.error().message);
      return 1;
    }
    auto args = [&](std::vector<std::string> extra) {
      std::vector<std::string> a{"--model", bm->target, "--gen-tokens", g, "--threads", "1"};
      a.insert(a.end(), extra.begin(), extra.end());
      return a;
    };
    const Json tag{{"residual_scale", so.residual_scale}, {"weight_type", o.type}};
    std::vector<Config> cfgs{
        {"AR, target on rank 0", args({"--speculation", "off"}), tag},
        {"SD, draft + target on rank 0", args({"--draft", bm->draft, "--speculation", "sd"}), tag},
        {"PEARL, target rank 0 + draft rank 1", args({"--draft", bm->draft, "--draft-tp", "1", "--speculation", "pearl"}), tag},
        {"AR, target tp=2 (ranks 0-1)", args({"--tp", "2", "--speculation", "off"}), tag},
        {"SD, target tp=2 + draft on rank 0", args({"--tp", "2", "--draft", bm->draft, "--speculation", "sd"}), tag},
    };
    if (o.auto_rows) {
      cfgs.push_back({"auto, target rank 0 + draft rank 1", args({"--draft", bm->draft, "--draft-tp", "1", "--speculation", "auto"}), tag});
      cfgs.push_back({"auto, target tp=2 + draft on rank 0", args({"--tp", "2", "--draft", bm->draft, "--speculation", "auto"}), tag});
    }
    auto rows = run_interleaved(cfgs, o.reps);
    if (!rows) {
      spdlog::error("{}", rows.error().message);
      return 1;
    }
    const double ar = (*rows)[0]["decode_tok_s"], sd = (*rows)[1]["decode_tok_s"];
    for (auto& r : *rows) {
      r["speedup_vs_ar"] = r["decode_tok_s"].get<double>() / ar;
      r["speedup_vs_sd"] = r["decode_tok_s"].get<double>() / sd;
      all.push_back(r);
    }
  }
  if (!o.ngram_model.empty()) {
    // A prompt whose continuation repeats it: what prompt lookup is for.
    const std::string prompt =
        "Once upon a time, there was a little girl named Lily. She loved to play outside in the park. "
        "Once upon a time, there was a little girl named Lily. She loved to play";
    auto args = [&](std::vector<std::string> extra) {
      std::vector<std::string> a{"--model", o.ngram_model, "--gen-tokens", g, "--threads", "1", "--prompt", prompt};
      a.insert(a.end(), extra.begin(), extra.end());
      return a;
    };
    const Json tag{{"model", o.ngram_model}, {"weight_type", "f32"}};
    auto rows = run_interleaved({{"AR (n-gram baseline)", args({"--speculation", "off"}), tag},
                                 {"SD with n-gram drafter", args({"--draft", "ngram", "--speculation", "sd"}), tag}},
                                o.reps);
    if (!rows) {
      spdlog::error("{}", rows.error().message);
      return 1;
    }
    const double ar = (*rows)[0]["decode_tok_s"];
    for (auto& r : *rows) {
      r["speedup_vs_ar"] = r["decode_tok_s"].get<double>() / ar;
      all.push_back(r);
    }
  }
  print_table(all, {{"residual_scale", "scale"}, {"config", "configuration"}, {"decode_tok_s", "tok/s"},
                    {"speedup_vs_ar", "× AR"}, {"speedup_vs_sd", "× SD"}, {"acceptance", "acceptance"},
                    {"mean_accepted", "accepted/block"}, {"draft_len", "γ"}, {"auto_mode", "auto picked"},
                    {"wait_for_draft_pct", "target waits %"}});
  if (!write_json(o.json, "spec", all)) return 1;
  if (!o.json.empty() && o.plot) plot_json("plot_bench_spec.py", o.json);  // PNG + SVG next to the JSON
  return 0;
}

}  // namespace

void add_bench_spec(CLI::App& bench) {
  auto o = std::make_shared<SpecOptions>();
  auto* c = bench.add_subcommand("spec", "Speculation modes (AR, SD, PEARL, auto) at several acceptance levels");
  c->add_option("--type", o->type, "Weight type of the synthetic target and draft");
  c->add_option("--scales", o->scales, "Residual scales (lower: the draft agrees more), comma-separated");
  c->add_option("--draft-layers", o->draft_layers, "Layers of the synthetic draft");
  add_shape_options(*c, o->shape);
  c->add_option("--gen-tokens", o->gen_tokens, "Tokens generated per run");
  c->add_option("--reps", o->reps, "Repetitions (interleaved; medians)");
  c->add_option("--ngram-model", o->ngram_model, "Also measure the n-gram drafter with this (real) model");
  c->add_flag("!--no-auto", o->auto_rows, "Skip the --speculation auto rows");
  c->add_option("--work-dir", o->work_dir, "Where synthetic models are written and reused");
  c->add_option("--json", o->json, "Also write the results as JSON (and the chart next to it when matplotlib is present)");
  c->add_flag("!--no-plot", o->plot, "Do not draw the chart");
  c->callback([o] {
    const int rc = run_spec(*o);
    if (rc) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tandem::bench
