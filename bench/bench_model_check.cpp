// `tandem bench model-check`: the cost model against every configuration this machine can run.
// Calibrates first (or takes --profile), measures the engine's per-step overhead on a tiny model,
// then runs each configuration through `tandem bench run` under MPI (bench_driver; all of them
// interleaved, --runs times, medians) and prints predicted vs measured with the error, the worst
// three with a reason, and whether the planner's layout for each world size (what
// `tandem-mpirun --layout auto` runs) is within 5% of the best measured one.
#include <fmt/format.h>

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <set>

#include "bench/bench_commands.h"
#include "bench/bench_driver.h"
#include "bench/bench_models.h"
#include "bench/bench_report.h"
#include "bench/calibration.h"
#include "bench/cost_model.h"
#include "bench/emulated_hosts.h"
#include "bench/model_check.h"
#include "shard/format/gguf_reader.h"
#include "shard/format/model_config.h"
#include "shard/log.h"

namespace tandem::bench {
namespace {

namespace fs = std::filesystem;

struct McOptions {
  SynthOptions shape;
  std::string profile, repredict, json, types = "q8_0,q4_0", spec_type = "q8_0", scales = "0.08,0.035,0.015",
                           work_dir = "bench-models", hosts = "auto", links = "unshaped,10,1",
                           groups = "decode,batch,speculation,hosts";
  int runs = 3, gen_tokens = 64, prompt_tokens = 32;
  bool plot = true;
};

const std::set<std::string> kGroups{"decode", "batch", "speculation", "hosts"};

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

Status run_shell(const std::string& cmd) {
  spdlog::info("$ {}", cmd);
  const int rc = std::system(cmd.c_str());
  if (rc != 0) return make_error("command failed (status {}): {}", rc, cmd);
  return ok_status();
}

std::string mpirun_prefix(int n) {
  return fmt::format("mpirun -n {}{} --bind-to none --oversubscribe", n, geteuid() == 0 ? " --allow-run-as-root" : "");
}

Result<ModelShape> shape_of_file(const std::string& path) {
  auto g = open_gguf(path);
  if (!g) return g.error();
  auto c = config_from_gguf(*g);
  if (!c) return c.error();
  const auto* w = g->find_tensor("blk.0.ffn_down.weight");
  return shape_from_config(*c, w ? w->type : WeightType::F32);
}

// One configuration: how it is run, and the query that predicts it.
struct Case {
  Config run;
  CheckRow row;
  ModelShape shape;
  Query q;
  ClusterSpec cluster;
};

struct Validated {
  std::vector<WeightType> types;
  std::optional<WeightType> spec_type;
  std::vector<float> scales;
  std::vector<std::string> links;
  std::set<std::string> groups;
  int hosts = 0;  // 0 none, 2, -1 try
};

Result<Validated> validate(const McOptions& o) {
  Validated v;
  for (const auto& t : split_list(o.types)) {
    auto wt = parse_weight_type(t);
    if (!wt) return make_error("--types: unknown weight type '{}'", t);
    v.types.push_back(*wt);
  }
  if (v.types.empty()) return make_error("--types: give at least one weight type");
  auto st = parse_weight_type(o.spec_type);
  if (!st) return make_error("--spec-type: unknown weight type '{}'", o.spec_type);
  v.spec_type = st;
  for (const auto& s : split_list(o.scales)) {
    char* end = nullptr;
    const float f = std::strtof(s.c_str(), &end);
    if (end == s.c_str() || *end != 0 || f < 0) return make_error("--scales: '{}' is not a non-negative number", s);
    v.scales.push_back(f);
  }
  for (const auto& g : split_list(o.groups)) {
    if (!kGroups.count(g)) return make_error("--groups: unknown group '{}' (known: decode, batch, speculation, hosts)", g);
    v.groups.insert(g);
  }
  if (v.groups.empty()) return make_error("--groups: give at least one group");
  v.links = split_list(o.links);
  for (const auto& l : v.links)
    if (!valid_link(l)) return make_error("--link-gbit: '{}' is neither a rate in Gbit/s nor 'unshaped'", l);
  if (o.hosts == "auto") v.hosts = -1;
  else if (o.hosts == "0" || o.hosts == "off") v.hosts = 0;
  else if (o.hosts == "2") v.hosts = 2;
  else return make_error("--hosts: '{}' must be auto, 0 (off) or 2", o.hosts);
  if (!v.groups.count("hosts")) v.hosts = 0;
  if (v.hosts != 0 && v.links.empty()) return make_error("--link-gbit: give at least one link rate");
  if (!o.profile.empty() && !fs::exists(o.profile)) return make_error("--profile {}: no such file", o.profile);
  if (!o.repredict.empty() && !fs::exists(o.repredict)) return make_error("--repredict {}: no such file", o.repredict);
  if (!o.repredict.empty() && !o.profile.empty()) return make_error("--repredict takes the profile of its own run; drop --profile");
  return v;
}

// The engine's per-step overhead: a model whose weights cost next to nothing (dim 64, one
// layer), 1 and 8 sequences; what the measured step exceeds the overhead-free prediction by.
Status measure_overhead(const McOptions& o, Profile& p) {
  SynthOptions so = o.shape;
  so.dim = 64, so.n_layers = 1, so.n_heads = 2, so.n_kv_heads = 1, so.ffn_dim = 128, so.head_dim = 0;
  so.type = WeightType::Q8_0;
  auto bm = ensure_synth(so, o.work_dir, false);
  if (!bm) return bm.error();
  auto shape = shape_of_file(bm->target);
  if (!shape) return shape.error();
  const std::string g = std::to_string(o.gen_tokens), pt = std::to_string(o.prompt_tokens);
  std::vector<Config> cfgs;
  for (int seqs : {1, 8})
    cfgs.push_back({fmt::format("overhead probe, {} seq", seqs),
                    {"--model", bm->target, "--threads", "1", "--speculation", "off", "--gen-tokens", g,
                     "--prompt-tokens", pt, "--seqs", std::to_string(seqs)},
                    {{"seqs", seqs}}});
  auto rows = run_interleaved(cfgs, o.runs);
  if (!rows) return rows.error();
  Profile np = p;
  np.step_overhead_s = np.seq_overhead_s = 0;
  const ClusterSpec c = cluster_from_profile(np, 2, "probe");
  std::vector<std::pair<int, double>> excess;
  double probe_step_s = 0;
  for (const auto& r : *rows) {
    const int seqs = r["seqs"].get<int>();
    Query q;
    q.layout = Layout{1, 1, {}, 0};
    q.batch = seqs, q.context = o.prompt_tokens + o.gen_tokens / 2, q.max_seqs = 8;
    auto pr = predict(*shape, c, q);
    if (!pr) return pr.error();
    const double measured = seqs / r["decode_tok_s"].get<double>();
    const double model = seqs / (seqs == 1 ? pr->decode_tok_s : pr->throughput_tok_s);
    excess.emplace_back(seqs, measured - model);
    if (seqs == 1) probe_step_s = measured;
    spdlog::info("overhead probe, {} seq(s): {:.3f} ms per step measured, {:.3f} ms predicted without overhead", seqs,
                 measured * 1e3, model * 1e3);
  }
  std::tie(p.step_overhead_s, p.seq_overhead_s) = fit_step_overhead(excess);
  // The probe's weights (mostly its 32000-row head) sit in the cache, where the model's DRAM
  // bandwidth overstates their cost: the per-step figure can come out 0; the probe's whole step
  // (an upper bound of the overhead) is kept beside it.
  p.overhead_source = fmt::format("tandem bench run on a dim-64 1-layer q8_0 model (vocab {}), 1 and 8 sequences, "
                                  "median of {} runs, minus the model's weight and attention time; the probe's whole "
                                  "step (upper bound of the per-step overhead): {:.1f} µs",
                                  shape->n_vocab, o.runs, probe_step_s * 1e6);
  spdlog::info("engine overhead: {:.1f} µs per step + {:.1f} µs per extra sequence", p.step_overhead_s * 1e6,
               p.seq_overhead_s * 1e6);
  return ok_status();
}

void write_profile(const Profile& p, const std::string& path, const Json& extra = {}) {
  Json j = to_json(p);
  for (auto& [k, v] : extra.items()) j[k] = v;
  std::ofstream(path) << j.dump(2) << "\n";
}

int run_model_check(McOptions& o) {
  auto v = validate(o);
  if (!v) {
    spdlog::error("{}", v.error().message);
    return 2;
  }
  std::error_code ec;
  fs::create_directories(o.work_dir, ec);
  const std::string stem = o.json.empty() ? o.work_dir + "/model-check"
                                          : (o.json.size() > 5 && o.json.ends_with(".json") ? o.json.substr(0, o.json.size() - 5) : o.json);
  if (!o.json.empty()) fs::create_directories(fs::path(o.json).parent_path().empty() ? "." : fs::path(o.json).parent_path(), ec);
  const std::string bin = bin_dir() + "/tandem";

  // --repredict: the measurements, profile and link fits of an earlier run; nothing is run.
  Json old;
  if (!o.repredict.empty()) {
    std::ifstream f(o.repredict);
    old = Json::parse(f, nullptr, false);
    if (old.is_discarded() || !old.contains("results") || !old.contains("profile"))
      return spdlog::error("--repredict {}: not a model-check JSON", o.repredict), 2;
    o.runs = old.value("runs", o.runs);
    o.gen_tokens = old.value("gen_tokens", o.gen_tokens);
    o.prompt_tokens = old.value("prompt_tokens", o.prompt_tokens);
  }
  // 1. Calibration (this machine, two ranks over shared memory), then the engine's overhead.
  std::string profile_path = !old.is_null() ? old.value("profile_file", o.repredict) : o.profile;
  Result<Profile> prof = make_error("unset");
  if (!old.is_null()) {
    prof = profile_from_json(old["profile"], o.repredict);
  } else {
   if (profile_path.empty()) {
    profile_path = stem + "-profile.json";
    std::string types;
    std::set<std::string> seen;
    for (auto t : v->types) seen.insert(std::string(name(t)));
    seen.insert(std::string(name(*v->spec_type)));
    for (const auto& t : seen) types += (types.empty() ? "" : ",") + t;
    spdlog::info("calibrating (2 ranks): {}", profile_path);
    if (auto st = run_shell(fmt::format("{} {} bench calibrate --out {} --types {} >&2", mpirun_prefix(2), quote(bin),
                                        quote(profile_path), types));
        !st) {
      spdlog::error("{}", st.error().message);
      return 1;
    }
  }
   prof = load_profile(profile_path);
  }
  if (!prof) {
    spdlog::error("{}", prof.error().message);
    return 1;
  }
  Profile p = *prof;
  if (p.overhead_source.empty() && old.is_null()) {
    if (auto st = measure_overhead(o, p); !st) {
      spdlog::error("engine overhead probe: {}", st.error().message);
      return 1;
    }
    if (o.profile.empty()) write_profile(p, profile_path);  // a given profile is not rewritten
  }
  const ClusterSpec here = cluster_from_profile(p, std::max(2, p.cores), "profile " + profile_path);

  // 2. Emulated hosts and their TCP link fits.
  EmulatedHosts hosts("tmc");
  std::vector<std::pair<std::string, Profile>> tcp;  // (link, its calibration)
  if (!old.is_null()) {
    if (old.contains("tcp_profiles"))
      for (const auto& [link, j] : old["tcp_profiles"].items()) {
        auto tp = profile_from_json(j, o.repredict);
        if (!tp) return spdlog::error("{}", tp.error().message), 1;
        tcp.emplace_back(link, *tp);
      }
    else if (old.contains("tcp_links"))  // the first runs kept only the allreduce fit
      for (const auto& [link, j] : old["tcp_links"].items()) {
        Profile tp = p;
        tp.intra = Link{j["allreduce"]["latency_us"].get<double>() * 1e-6, j["allreduce"]["gbs"].get<double>() * 1e9};
        tp.p2p = tp.bcast = tp.intra;
        tcp.emplace_back(link, tp);
      }
  } else if (v->hosts != 0) {
    if (auto st = hosts.make(2, v->links); !st) {
      if (v->hosts == 2) {
        spdlog::error("{}", st.error().message);
        return 1;
      }
      spdlog::warn("--hosts auto: no emulated hosts here, skipping the TCP rows ({})", st.error().message);
    }
    for (const auto& [cname, link] : hosts.made()) {
      const std::string out = fmt::format("{}-tcp-{}.json", stem, link);
      if (auto st = run_shell(fmt::format("'{}/tandem-hosts' --name {} run -- {} --hostfile {} {} bench calibrate "
                                          "--types q8_0 --reps 1 --no-plot --out {} >&2",
                                          bin_dir(), cname, mpirun_prefix(2), quote(EmulatedHosts::hostfile(cname)),
                                          quote(bin), quote(out)));
          !st) {
        spdlog::error("TCP calibration: {}", st.error().message);
        return 1;
      }
      auto tp = load_profile(out);
      if (!tp) {
        spdlog::error("{}", tp.error().message);
        return 1;
      }
      spdlog::info("link {}: allreduce {:.1f} µs + bytes / {:.2f} GB/s ({})", link, tp->intra.latency_s * 1e6,
                   tp->intra.bandwidth_Bps / 1e9, tp->link_source);
      tcp.emplace_back(link, *tp);
    }
  }

  // 3. The configurations.
  const std::string G = std::to_string(o.gen_tokens), P = std::to_string(o.prompt_tokens);
  const int ctx = o.prompt_tokens + o.gen_tokens / 2;
  std::vector<Case> cases;
  auto add = [&](const std::string& group, const std::string& type, const std::string& label, const std::string& model,
                 const ModelShape& m, std::vector<std::string> extra, Layout l, Mode mode, int batch,
                 const ClusterSpec& c, const std::string& hosts_cluster = "") {
    Case k;
    k.run.name = fmt::format("{} {}", type, label);
    k.run.args = {"--model", model, "--threads", "1", "--gen-tokens", G, "--prompt-tokens", P};
    k.run.args.insert(k.run.args.end(), extra.begin(), extra.end());
    k.run.tags = {{"check_type", type}, {"check_label", label}};
    k.run.hosts_cluster = hosts_cluster;
    k.row.group = group, k.row.type = type, k.row.config = label, k.row.layout = l.describe(), k.row.mode = mode_name(mode);
    k.row.metric = batch > 1 ? "throughput_tok_s" : "decode_tok_s";
    k.shape = m;
    k.q.layout = l, k.q.mode = mode, k.q.batch = batch, k.q.context = ctx, k.q.max_seqs = std::max(8, batch);
    k.q.prompt = o.prompt_tokens;
    k.cluster = c;
    cases.push_back(std::move(k));
  };
  std::map<std::string, std::pair<std::string, ModelShape>> models;  // type → (file, shape)
  for (WeightType t : v->types) {
    const std::string tn(name(t));
    SynthOptions so = o.shape;
    so.type = t;
    auto bm = ensure_synth(so, o.work_dir, false);
    if (!bm) {
      spdlog::error("{}", bm.error().message);
      return 1;
    }
    auto m = shape_of_file(bm->target);
    if (!m) {
      spdlog::error("{}", m.error().message);
      return 1;
    }
    models[tn] = {bm->target, *m};
    if (v->groups.count("decode")) {
      add("decode", tn, "tp1", bm->target, *m, {"--speculation", "off"}, {1, 1, {}, 0}, Mode::AR, 1, here);
      add("decode", tn, "tp2", bm->target, *m, {"--speculation", "off", "--tp", "2"}, {2, 1, {}, 0}, Mode::AR, 1, here);
      add("decode", tn, "pp2", bm->target, *m, {"--speculation", "off", "--pp", "2"}, {1, 2, {}, 0}, Mode::AR, 1, here);
    }
    if (v->groups.count("batch")) {
      for (int b : {4, 8})
        add("batch", tn, fmt::format("pp1x{}", b), bm->target, *m, {"--speculation", "off", "--seqs", std::to_string(b)},
            {1, 1, {}, 0}, Mode::AR, b, here);
      add("batch", tn, "pp2x8", bm->target, *m, {"--speculation", "off", "--pp", "2", "--seqs", "8"}, {1, 2, {}, 0},
          Mode::AR, 8, here);
    }
  }
  const std::string st_name(name(*v->spec_type));
  if (v->groups.count("speculation"))
    for (float sc : v->scales) {
      SynthOptions so = o.shape;
      so.type = *v->spec_type;
      so.residual_scale = sc;
      so.draft_layers = 1;
      auto bm = ensure_synth(so, o.work_dir, true);
      if (!bm) {
        spdlog::error("{}", bm.error().message);
        return 1;
      }
      auto m = shape_of_file(bm->target);
      auto d = shape_of_file(bm->draft);
      if (!m || !d) {
        spdlog::error("{}", (!m ? m.error() : d.error()).message);
        return 1;
      }
      const std::string s = fmt::format("{:g}", sc);
      for (Mode md : {Mode::AR, Mode::SD, Mode::PEARL}) {
        std::vector<std::string> extra{"--speculation", md == Mode::AR ? "off" : mode_name(md)};
        if (md != Mode::AR) extra.insert(extra.end(), {"--draft", bm->draft});
        if (md == Mode::PEARL) extra.insert(extra.end(), {"--draft-tp", "1"});
        add("speculation", st_name, fmt::format("{}@{}", mode_name(md), s), bm->target, *m, extra,
            {1, 1, {}, md == Mode::PEARL ? 1 : 0}, md, 1, here);
        cases.back().q.draft_fraction = (d->n_layers * d->layer_weight_bytes() + d->head_bytes()) /
                                        (m->n_layers * m->layer_weight_bytes() + m->head_bytes());
        cases.back().q.draft_layers = d->n_layers;
        cases.back().run.tags["residual_scale"] = sc;
      }
    }
  for (size_t i = 0; i < tcp.size(); ++i) {
    const auto& [link, tp] = tcp[i];
    ClusterSpec c = here;
    c.intra = c.inter = tp.intra;  // the emulated hosts share this machine's memory, not its links
    c.p2p = tp.p2p, c.bcast = tp.bcast;
    const auto it = models.count(st_name) ? models.find(st_name) : models.begin();
    const std::string label = fmt::format("tp2 TCP {}", link == "unshaped" ? link : link + " Gbit/s");
    add("hosts", it->first, label, it->second.first, it->second.second, {"--speculation", "off", "--tp", "2"},
        {2, 1, {}, 0}, Mode::AR, 1, c, i < hosts.made().size() ? hosts.made()[i].first : "");
  }
  if (cases.empty()) {
    spdlog::error("no configurations to run (--groups {})", o.groups);
    return 2;
  }

  std::vector<Config> cfgs;
  for (const auto& k : cases) cfgs.push_back(k.run);
  spdlog::info("model-check: {} configurations × {} runs, interleaved", cfgs.size(), o.runs);
  Result<std::vector<Json>> measured = std::vector<Json>{};
  if (old.is_null()) {
    // The node's bandwidth while two ranks stream decides every 2-rank row, and on a shared
    // machine it moves over minutes: after each repetition it is sampled again beside the runs,
    // and the rows are predicted from the median of every sample (the calibration's and these).
    std::string probe_types;
    for (const auto& [t, g] : p.layer_gemv_GBps) {
      probe_types += (probe_types.empty() ? "" : ",") + t;
      p.layer_gemv_samples[t] = {g};  // the calibration's own, first
    }
    auto probe = [&](int rep) -> Status {
      const std::string out = fmt::format("{}-ranks-rep{}.json", stem, rep + 1);
      TANDEM_TRY(run_shell(fmt::format("{} {} bench calibrate --ranks-only --types {} --out {} >&2", mpirun_prefix(2),
                                       quote(bin), probe_types, quote(out))));
      std::ifstream f(out);
      const Json j = Json::parse(f, nullptr, false);
      if (j.is_discarded() || !j.contains("gemv_gbs_2ranks_samples"))
        return make_error("{}: not the output of bench calibrate --ranks-only", out);
      for (double x : j["read_gbs_2ranks_samples"].get<std::vector<double>>()) p.ranks_read_samples.push_back(x);
      for (double x : j["gemv_gbs_2ranks_samples"].get<std::vector<double>>()) p.ranks_gemv_samples.push_back(x);
      if (j.contains("layer_gemv_gbs"))
        for (const auto& [t, g] : j["layer_gemv_gbs"].items()) p.layer_gemv_samples[t].push_back(g.get<double>());
      return ok_status();
    };
    bool two_ranks = false;
    for (const auto& k : cases) two_ranks = two_ranks || k.q.layout.world_size() > 1;
    measured = run_interleaved(cfgs, o.runs, two_ranks || !probe_types.empty() ? std::function<Status(int)>(probe) : nullptr);
    if (measured) {
      // One rank's layer GEMV: the median of the calibration's and the probes' (1 + runs samples).
      for (const auto& [t, v] : p.layer_gemv_samples)
        if (v.size() > 1) {
          spdlog::info("{}: one layer's GEMV {:.1f} GB/s at calibration, {:.1f} GB/s over {} samples (median)", t,
                       p.layer_gemv_GBps[t], median(v), v.size());
          p.layer_gemv_GBps[t] = median(v);
        }
      const auto eff = cluster_from_profile(p, std::max(2, p.cores), "").kernel_efficiency;
      for (auto& k : cases) k.cluster.kernel_efficiency = eff;
    }
    if (measured && !p.ranks_gemv_samples.empty()) {
      const double before = p.ranks_gemv_GBps;
      p.ranks_gemv_GBps = median(p.ranks_gemv_samples);
      if (!p.ranks_read_samples.empty()) p.ranks_read_GBps = median(p.ranks_read_samples);
      const double node = cluster_from_profile(p, std::max(2, p.cores), "").node_read_GBps;
      for (auto& k : cases) k.cluster.node_read_GBps = node;
      spdlog::info("2 ranks' tp2 GEMVs: {:.1f} GB/s at calibration, {:.1f} GB/s over all {} samples (median)", before,
                   p.ranks_gemv_GBps, p.ranks_gemv_samples.size());
    }
  } else {  // the earlier run's medians, matched by type and configuration
    for (const auto& k : cases) {
      const Json* hit = nullptr;
      for (const auto& r : old["results"])
        if (r.value("type", "") == k.row.type && r.value("config", "") == k.row.config) hit = &r;
      if (!hit) return spdlog::error("--repredict: {} {} was not measured in {}", k.row.type, k.row.config, o.repredict), 1;
      if (hit->contains("measured_raw")) {
        measured->push_back((*hit)["measured_raw"]);
        continue;
      }
      Json m{{"decode_tok_s", (*hit)["measured"]}, {"decode_tok_s_min", (*hit)["measured_min"]},
             {"decode_tok_s_max", (*hit)["measured_max"]}, {"acceptance", hit->value("acceptance", 0.0)}};
      if (hit->contains("draft_len")) m["draft_len"] = (*hit)["draft_len"]["measured"];
      if (hit->contains("weight_gbs"))
        m["target_weight_bytes_per_token_rank0"] =
            (*hit)["weight_gbs"]["measured"].get<double>() * 1e9 / (*hit)["measured"].get<double>();
      measured->push_back(m);
    }
  }
  if (!measured) {
    spdlog::error("{}", measured.error().message);
    return 1;
  }

  // 4. Predictions with what the runs measured as inputs (acceptance for SD/PEARL).
  std::vector<CheckRow> rows;
  for (size_t i = 0; i < cases.size(); ++i) {
    Case& k = cases[i];
    const Json& m = (*measured)[i];
    CheckRow r = k.row;
    r.measured = m["decode_tok_s"].get<double>();
    r.measured_min = m["decode_tok_s_min"].get<double>();
    r.measured_max = m["decode_tok_s_max"].get<double>();
    r.runs = o.runs;
    if (k.q.mode != Mode::AR) {
      r.acceptance = m.value("acceptance", 0.0);
      r.gamma_measured = m.value("draft_len", 0.0);
      k.q.acceptance = r.acceptance;
    }
    // SD/PEARL: the model's own best γ (what the planner assumes), and — the row's prediction —
    // at the engine's measured mean draft length: the round-time model checked apart from the
    // engine's draft-length policy.
    double adaptive = 0;
    int adaptive_gamma = 0;
    if (k.q.mode != Mode::AR) {
      auto pa = predict(k.shape, k.cluster, k.q);
      if (pa) adaptive = pa->decode_tok_s, adaptive_gamma = pa->step.gamma;
      if (r.gamma_measured > 0) k.q.gamma = std::max(1, static_cast<int>(std::lround(r.gamma_measured)));
    }
    auto pr = predict(k.shape, k.cluster, k.q);
    if (!pr) {
      spdlog::error("{}: {}", k.run.name, pr.error().message);
      return 1;
    }
    r.predicted = k.q.batch > 1 ? pr->throughput_tok_s : pr->decode_tok_s;
    r.step = pr->step;
    r.predicted_adaptive = adaptive, r.adaptive_gamma = adaptive_gamma;
    r.step_s = 1.0 / pr->decode_tok_s;
    if (k.q.mode == Mode::AR && k.q.batch == 1 && k.q.layout.world_size() == 1 && pr->step.weights > 0) {
      const double bytes = k.shape.n_layers * k.shape.layer_weight_bytes() + k.shape.head_bytes();
      r.weight_gbs_predicted = bytes / pr->step.weights / 1e9;
      r.weight_gbs_measured = m.value("target_weight_bytes_per_token_rank0", 0.0) * r.measured / 1e9;
    }
    if (std::abs(error_pct(r.predicted, r.measured)) > 15) r.reason = error_reason(r);
    rows.push_back(std::move(r));
  }
  const auto worst = worst_rows(rows, 3);
  for (size_t w : worst)
    if (rows[w].reason.empty()) rows[w].reason = error_reason(rows[w]);

  // 5. --layout auto: the planner's pick per world size against the best measured layout.
  std::vector<LayoutVerdict> verdicts;
  if (v->groups.count("decode"))
    for (const auto& [tn, fm] : models)
      for (int world : {1, 2}) {
        Query q;
        q.mode = Mode::AR, q.context = ctx, q.prompt = o.prompt_tokens;
        const ClusterSpec c = cluster_from_profile(p, std::max(world, p.cores), "profile " + profile_path);
        const auto plan = plan_layouts(fm.second, c, q, world);
        if (plan.empty()) continue;
        std::vector<std::pair<std::string, double>> got;
        for (const auto& r : rows)
          if (r.group == "decode" && r.type == tn &&
              ((world == 1 && r.config == "tp1") || (world == 2 && (r.config == "tp2" || r.config == "pp2"))))
            got.emplace_back(r.layout, r.measured);
        auto vd = judge_layout(world, tn, plan.front().query.layout.describe(), got, 5.0);
        if (!vd) {
          spdlog::warn("{}", vd.error().message);
          continue;
        }
        verdicts.push_back(*vd);
      }

  // 6. Report.
  std::vector<Json> out;
  for (const auto& r : rows) {
    Json j = to_json(r);
    j["measured_raw"] = (*measured)[&r - rows.data()];
    j["range"] = fmt::format("{:.2f}–{:.2f}", r.measured_min, r.measured_max);
    j["within_15pct"] = std::abs(error_pct(r.predicted, r.measured)) <= 15 ? "yes" : "no";
    out.push_back(j);
  }
  print_table(out, {{"group", "group"}, {"type", "type"}, {"config", "configuration"}, {"layout", "layout"},
                    {"metric", "metric"}, {"predicted", "predicted"}, {"measured", "measured (median)"},
                    {"error_pct", "error %"}, {"range", "measured range"}, {"acceptance", "α"},
                    {"within_15pct", "±15%"}});
  int within = 0;
  for (const auto& r : rows) within += std::abs(error_pct(r.predicted, r.measured)) <= 15;
  std::printf("\n%d of %zu configurations within ±15%% (median of %d runs)\n", within, rows.size(), o.runs);
  std::printf("worst three:\n");
  std::vector<Json> wj;
  for (size_t w : worst) {
    std::printf("  %s %s: %+.1f%% — %s\n", rows[w].type.c_str(), rows[w].config.c_str(),
                error_pct(rows[w].predicted, rows[w].measured), rows[w].reason.c_str());
    wj.push_back({{"type", rows[w].type}, {"config", rows[w].config},
                  {"error_pct", error_pct(rows[w].predicted, rows[w].measured)}, {"reason", rows[w].reason}});
  }
  std::vector<Json> vj;
  for (const auto& vd : verdicts) vj.push_back(to_json(vd));
  if (!vj.empty()) {
    std::printf("\n--layout auto (the planner's pick vs the best measured layout, AR, one sequence):\n");
    print_table(vj, {{"type", "type"}, {"world", "ranks"}, {"picked", "planner picks"},
                     {"picked_measured_tok_s", "its tok/s"}, {"best_measured", "best measured"},
                     {"best_measured_tok_s", "best tok/s"}, {"shortfall_pct", "shortfall %"}, {"within", "within 5%"}});
  }
  if (!o.json.empty()) {
    Json extra{{"profile_file", profile_path}, {"profile", to_json(p)}, {"runs", o.runs}, {"worst", wj},
               {"layout_auto", vj}, {"within_15pct", within}, {"configurations", rows.size()},
               {"gen_tokens", o.gen_tokens}, {"prompt_tokens", o.prompt_tokens}, {"context", ctx}};
    for (const auto& [link, tp] : tcp) extra["tcp_profiles"][link] = to_json(tp);
    if (!old.is_null()) extra["repredicted_from"] = o.repredict;
    for (const auto& [link, tp] : tcp)
      extra["tcp_links"][link] = {{"allreduce", {{"latency_us", tp.intra.latency_s * 1e6}, {"gbs", tp.intra.bandwidth_Bps / 1e9}}},
                                  {"source", tp.link_source}};
    if (!write_json(o.json, "model-check", out, extra)) return 1;
    std::printf("wrote %s\n", o.json.c_str());
    std::fflush(stdout);
    if (o.plot) plot_json("plot_model_check.py", o.json);
  }
  return 0;
}

}  // namespace

void add_bench_model_check(CLI::App& bench) {
  auto o = std::make_shared<McOptions>();
  auto* c = bench.add_subcommand(
      "model-check",
      "The cost model against every configuration measurable here: calibrate (or --profile), then tp1/tp2/pp2 decode, "
      "batch 4/8 with pp1/pp2, AR/SD/PEARL at several acceptance levels, tp2 across 2 emulated hosts per link rate; "
      "predicted vs measured, the worst three with a reason, and --layout auto's pick per world size");
  c->add_option("--profile", o->profile, "Calibration profile to predict from (default: calibrate now)");
  c->add_option("--repredict", o->repredict,
                 "Predict again from an earlier run's JSON (its measurements, profile and link fits; runs nothing)");
  c->add_option("--runs", o->runs, "Runs of every configuration (interleaved; medians)")
      ->check(CLI::Range(1, 50))
      ->capture_default_str();
  c->add_option("--json", o->json, "Write the results as JSON (and the charts next to it when matplotlib is present)");
  c->add_option("--types", o->types, "Weight types of the synthetic TinyLlama-shape target")->capture_default_str();
  c->add_option("--spec-type", o->spec_type, "Weight type of the speculation and emulated-host rows")->capture_default_str();
  c->add_option("--scales", o->scales, "Residual scales of the speculation rows (acceptance levels; lower: higher α)")
      ->capture_default_str();
  c->add_option("--groups", o->groups, "Which groups to run: decode, batch, speculation, hosts")->capture_default_str();
  c->add_option("--hosts", o->hosts, "Emulated-host rows: auto (when root and namespaces work), 0 (off) or 2")
      ->capture_default_str();
  c->add_option("--link-gbit", o->links, "Link rates between the emulated hosts: Gbit/s or 'unshaped'")->capture_default_str();
  c->add_option("--gen-tokens", o->gen_tokens, "Tokens generated per sequence")->check(CLI::Range(4, 1 << 14))->capture_default_str();
  c->add_option("--prompt-tokens", o->prompt_tokens, "Random prompt length")->check(CLI::Range(1, 1 << 14))->capture_default_str();
  c->add_option("--work-dir", o->work_dir, "Where synthetic models (and a default profile) are written and reused")
      ->capture_default_str();
  c->add_flag("!--no-plot", o->plot, "Do not draw the charts");
  add_shape_options(*c, o->shape);
  c->callback([o] {
    if (const int rc = run_model_check(*o)) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tandem::bench
