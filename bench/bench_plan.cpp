// `tandem bench calibrate` (this machine's constants → profile.json), `tandem plan` (every
// feasible layout ranked by the cost model) and `tandem bench project` (strong scaling on a
// stated node type, as JSON for bench/plot_scaling.py).
#include <mpi.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <thread>

#include "bench/bench_commands.h"
#include "bench/bench_models.h"
#include "bench/bench_report.h"
#include "bench/calibration.h"
#include "bench/cost_model.h"
#include "dist/mpi_runtime.h"
#include "dist/polite_wait.h"
#include "shard/kernels/read_bandwidth.h"
#include "shard/format/gguf_reader.h"
#include "shard/format/model_config.h"

namespace tandem::bench {
namespace {

struct CalOpts {
  std::string out = "profile.json", types = "q4_0,q8_0,q4_k,f16";
  int threads = 1, reps = 5;
  double link_latency_us = 10, link_gbs = 5;
  bool plot = true, ranks_only = false;
};

struct Links {
  Link allreduce, send, bcast;
};

// Allreduce, one-way send and broadcast between ranks 0 and 1, each fitted as latency + bytes /
// bandwidth.
Links measure_links(int rank) {
  std::vector<std::pair<double, double>> ar, p2p, bc;
  for (int bytes : {8, 1024, 8192, 65536, 262144, 1048576}) {
    const int n = bytes / 4 > 0 ? bytes / 4 : 1;
    std::vector<float> a(n, 1.f), b(n);
    const int iters = bytes >= 262144 ? 50 : 300;
    for (int warm = 0; warm < 2; ++warm) {
      MPI_Barrier(MPI_COMM_WORLD);
      const double t0 = MPI_Wtime();
      for (int i = 0; i < iters; ++i) MPI_Allreduce(a.data(), b.data(), n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
      const double t_ar = (MPI_Wtime() - t0) / iters;
      MPI_Barrier(MPI_COMM_WORLD);
      const double t1 = MPI_Wtime();
      for (int i = 0; i < iters; ++i) {
        if (rank == 0) {
          MPI_Send(a.data(), n, MPI_FLOAT, 1, 7, MPI_COMM_WORLD);
          MPI_Recv(b.data(), n, MPI_FLOAT, 1, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
        } else if (rank == 1) {
          MPI_Recv(b.data(), n, MPI_FLOAT, 0, 7, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          MPI_Send(a.data(), n, MPI_FLOAT, 0, 7, MPI_COMM_WORLD);
        }
      }
      const double t_pp = (MPI_Wtime() - t1) / iters / 2;
      // Broadcast from rank 0, timed until the receiver has it: a barrier-free ping (rank 1
      // replies with a 1-int send) would add a send; instead time iters broadcasts followed by one
      // barrier and charge the barrier's own cost measured just before.
      MPI_Barrier(MPI_COMM_WORLD);
      const double tb0 = MPI_Wtime();
      for (int i = 0; i < iters; ++i) MPI_Barrier(MPI_COMM_WORLD);
      const double t_barrier = (MPI_Wtime() - tb0) / iters;
      MPI_Barrier(MPI_COMM_WORLD);
      const double t2 = MPI_Wtime();
      for (int i = 0; i < iters; ++i) {
        MPI_Bcast(a.data(), n, MPI_FLOAT, 0, MPI_COMM_WORLD);
        MPI_Barrier(MPI_COMM_WORLD);
      }
      const double t_bc = std::max(1e-9, (MPI_Wtime() - t2) / iters - t_barrier);
      if (warm) ar.emplace_back(n * 4.0, t_ar), p2p.emplace_back(n * 4.0, t_pp), bc.emplace_back(n * 4.0, t_bc);
    }
  }
  return {fit_link(ar), fit_link(p2p), fit_link(bc)};
}

// Pipeline hand-over, as one sequence crosses two stages: ranks 0 and 1 take turns doing a
// stage's GEMV work (~10 ms, past the 5 ms the engine's polite wait spins before sleeping) and
// wake each other through that wait. Each round times both ranks' work inside it (rank 1 sends
// its time as the wake-up message), so per hop (round − the two works) / 2 compares times
// taken in the same round, not against works timed alone minutes apart; median of the rounds.
// Returned on rank 0.
double measure_hop_overhead(int rank) {
  ThreadPool pool(1);
  GemvLoad load(192);
  load.run(pool);  // page in and warm
  load.run(pool);
  constexpr int kRounds = 31;
  std::vector<double> hops, rounds, works;
  int token = 0;
  double w1 = 0;
  MPI_Request req;
  MPI_Barrier(MPI_COMM_WORLD);
  for (int i = 0; i < kRounds; ++i) {
    if (rank == 0) {
      const double t0 = MPI_Wtime();
      load.run(pool);
      const double w0 = MPI_Wtime() - t0;
      MPI_Send(&token, 1, MPI_INT, 1, 7303, MPI_COMM_WORLD);
      MPI_Irecv(&w1, 1, MPI_DOUBLE, 1, 7304, MPI_COMM_WORLD, &req);
      wait_polite(&req);
      const double round = MPI_Wtime() - t0;
      if (i > 0) hops.push_back((round - w0 - w1) / 2), rounds.push_back(round), works.push_back(w0 + w1);
    } else if (rank == 1) {
      MPI_Irecv(&token, 1, MPI_INT, 0, 7303, MPI_COMM_WORLD, &req);
      wait_polite(&req);
      const double t0 = MPI_Wtime();
      load.run(pool);
      w1 = MPI_Wtime() - t0;
      MPI_Send(&w1, 1, MPI_DOUBLE, 0, 7304, MPI_COMM_WORLD);
    }
  }
  if (rank != 0) return 0;
  const double hop = std::max(0.0, median(hops));
  std::vector<double> sorted = hops;
  std::sort(sorted.begin(), sorted.end());
  auto quantile = [&](double q) { return sorted[static_cast<size_t>(q * (sorted.size() - 1))]; };
  spdlog::info("pipeline hand-over: {} rounds, both stages' work {:.2f} ms, round {:.2f} ms (medians): {:.0f} µs per "
               "hop (median; quartiles {:.0f}…{:.0f} µs)",
               hops.size(), median(works) * 1e3, median(rounds) * 1e3, hop * 1e6, quantile(0.25) * 1e6,
               quantile(0.75) * 1e6);
  return hop;
}

// The node's bandwidth as two ranks of one thread each see it while both stream at once (the
// engine's tp2/pp2/PEARL layouts), GB/s over both ranks: plain reads (summed), and each rank's
// half of a tp2 TinyLlama layer's GEMVs — both ranks' bytes over the slower rank's time, since a
// tp2 step waits for both at every allreduce. Nine interleaved samples of each, medians: one
// busy moment of a shared machine moves a median of nine little. Returned on rank 0.
struct RanksBandwidth {
  std::vector<double> reads, gemvs;  // GB/s samples (rank 0)
};
RanksBandwidth measure_ranks_bandwidth(int rank) {
  ThreadPool pool(1);
  GemvLoad load(128, tp2_layer_shapes());
  load.run(pool);
  load.run(pool);
  std::vector<double> reads, gemvs;
  for (int rep = 0; rep < 9; ++rep) {
    MPI_Barrier(MPI_COMM_WORLD);
    double gbs = measure_read_bandwidth_gbs(pool, size_t{256} << 20, 2), total = 0;
    MPI_Reduce(&gbs, &total, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
    reads.push_back(total);
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = MPI_Wtime();
    for (int i = 0; i < 2; ++i) load.run(pool);
    double dt = MPI_Wtime() - t0, slowest = 0;
    MPI_Reduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
    gemvs.push_back(2.0 * 2.0 * load.bytes() / std::max(1e-9, slowest) / 1e9);
  }
  if (rank == 0)
    spdlog::info("2 ranks × 1 thread streaming at once (medians of 9): reads {:.1f} GB/s ({:.1f}…{:.1f}), tp2 layer "
                 "GEMVs {:.1f} GB/s ({:.1f}…{:.1f})",
                 median(reads), *std::min_element(reads.begin(), reads.end()),
                 *std::max_element(reads.begin(), reads.end()), median(gemvs),
                 *std::min_element(gemvs.begin(), gemvs.end()), *std::max_element(gemvs.begin(), gemvs.end()));
  return {reads, gemvs};
}

int run_calibrate(const CalOpts& o) {
  auto rt = mpi_start(nullptr, nullptr);
  if (!rt) {
    spdlog::error("{}", rt.error().message);
    return 1;
  }
  const int rank = (*rt)->rank, size = (*rt)->size;
  Link ar{o.link_latency_us * 1e-6, o.link_gbs * 1e9}, p2p = ar, bc = ar;
  double hop = 0;
  RanksBandwidth ranks;
  std::string source = "assumed (--link-latency-us/--link-gbs; run under `mpirun -n 2` to measure)";
  if (o.ranks_only && size != 2) {
    spdlog::error("--ranks-only measures two ranks streaming at once: run it under `mpirun -n 2` (got {} rank(s))", size);
    return 2;
  }
  if (size >= 2) {
    if (size > 2) {
      spdlog::error("calibrate measures the link between 2 ranks: run it on 1 or 2 (got {})", size);
      return 2;
    }
    if (o.ranks_only) {  // model-check's probe between repetitions: the 2-rank figures alone
      const RanksBandwidth b = measure_ranks_bandwidth(rank);
      if (rank != 0) {  // asleep while rank 0 streams alone
        int done = 0;
        MPI_Request req;
        MPI_Irecv(&done, 1, MPI_INT, 0, 9, MPI_COMM_WORLD, &req);
        wait_polite(&req);
        return 0;
      }
      // And one rank's GEMV over a layer's shapes per type, alone: it drifts over minutes too.
      Json lj = Json::object();
      for (const auto& t : split_list(o.types)) {
        auto wt = parse_weight_type(t);
        if (!wt) {
          spdlog::error("--types: unknown weight type '{}'", t);
          return 2;
        }
        lj[t] = layer_gemv_gbs(*wt, o.threads, 3 * o.reps);
        spdlog::info("{}: one layer's shapes, 1 rank alone: {:.1f} GB/s", t, lj[t].get<double>());
      }
      int done = 1;
      MPI_Send(&done, 1, MPI_INT, 1, 9, MPI_COMM_WORLD);
      std::ofstream f(o.out);
      f << Json{{"read_gbs_2ranks_samples", b.reads}, {"gemv_gbs_2ranks_samples", b.gemvs}, {"layer_gemv_gbs", lj},
                {"date", machine_info().value("date", "")}}
               .dump(2)
        << "\n";
      if (!f) {
        spdlog::error("--out {}: cannot write", o.out);
        return 1;
      }
      std::printf("wrote %s\n", o.out.c_str());
      return 0;
    }
    const Links l = measure_links(rank);
    ar = l.allreduce, p2p = l.send, bc = l.bcast;
    hop = measure_hop_overhead(rank);
    ranks = measure_ranks_bandwidth(rank);
    // Ranks 0 and 1 may share a host (shared memory) or not (the network): the profile says which.
    char host[64] = {}, peer[64] = {};
    gethostname(host, sizeof host - 1);
    if (rank == 0) MPI_Recv(peer, 64, MPI_CHAR, 1, 7201, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
    if (rank == 1) MPI_Send(host, 64, MPI_CHAR, 0, 7201, MPI_COMM_WORLD);
    source = rank != 0 || std::string(host) == peer
                 ? "measured (MPI, 2 ranks on one host: shared memory)"
                 : fmt::format("measured (MPI, 2 ranks on hosts {} and {}: the network)", host, peer);
    if (rank != 0) {  // the others sleep while rank 0 measures compute alone
      int done = 0;
      MPI_Request req;
      MPI_Irecv(&done, 1, MPI_INT, 0, 9, MPI_COMM_WORLD, &req);
      wait_polite(&req);
      return 0;
    }
  }
  CalibrateOptions co;
  co.threads = o.threads;
  co.reps = o.reps;
  co.types.clear();
  for (const auto& t : split_list(o.types)) {
    auto wt = parse_weight_type(t);
    if (!wt) {
      spdlog::error("--types: unknown weight type '{}'", t);
      return 2;
    }
    co.types.push_back(*wt);
  }
  Profile p = measure_profile(co);
  p.intra = ar;
  p.link_source = source;
  if (size >= 2) p.p2p = p2p, p.bcast = bc, p.hop_overhead_s = std::max(0.0, hop - p2p.time(8));
  if (!ranks.gemvs.empty()) {
    p.ranks_read_samples = ranks.reads, p.ranks_gemv_samples = ranks.gemvs;
    p.ranks_read_GBps = median(ranks.reads), p.ranks_gemv_GBps = median(ranks.gemvs);
  }
  Json j = to_json(p);
  j["threads_per_rank"] = o.threads;
  spdlog::info("link ({}): allreduce {:.1f} µs + bytes / {:.2f} GB/s; send {:.1f} µs + bytes / {:.2f} GB/s; "
               "broadcast {:.1f} µs + bytes / {:.2f} GB/s",
               source, ar.latency_s * 1e6, ar.bandwidth_Bps / 1e9, p2p.latency_s * 1e6, p2p.bandwidth_Bps / 1e9,
               bc.latency_s * 1e6, bc.bandwidth_Bps / 1e9);
  for (int r = 1; r < size; ++r) {
    int done = 1;
    MPI_Send(&done, 1, MPI_INT, r, 9, MPI_COMM_WORLD);
  }
  std::ofstream f(o.out);
  if (!f) {
    spdlog::error("--out {}: cannot write", o.out);
    return 1;
  }
  f << j.dump(2) << "\n";
  f.close();
  std::printf("wrote %s\n", o.out.c_str());
  if (o.plot) plot_json("plot_profile.py", o.out);
  return 0;
}

struct PlanOpts {
  std::string model, shape, cluster, profile, speculation = "off", type, json;
  int world = 0, ctx = 512, batch = 8, prompt = 512, max_seqs = 8;
  double acceptance = 0.8, draft_fraction = 0.1;
  int draft_layers = 22;
};

Result<ModelShape> shape_of(const PlanOpts& o) {
  std::optional<WeightType> t;
  if (!o.type.empty()) {
    t = parse_weight_type(o.type);
    if (!t) return make_error("--type '{}': unknown weight type", o.type);
  }
  if (!o.shape.empty()) return named_shape(o.shape, t.value_or(WeightType::Q4_K));
  auto g = open_gguf(o.model);
  if (!g) return g.error();
  auto c = config_from_gguf(*g);
  if (!c) return c.error();
  if (!t) {  // the file's own type: that of its largest matrix class (the FFN)
    const auto* w = g->find_tensor("blk.0.ffn_down.weight");
    t = w ? w->type : WeightType::F32;
  }
  return shape_from_config(*c, *t);
}

Result<ClusterSpec> cluster_of(const PlanOpts& o, int world) {
  if (!o.cluster.empty()) return load_cluster(o.cluster);
  Profile p;
  std::string src;
  if (!o.profile.empty()) {
    auto lp = load_profile(o.profile);
    if (!lp) return lp.error();
    p = *lp;
    src = "profile " + o.profile;
  } else {
    spdlog::info("no --cluster or --profile: calibrating this machine (save it with `tandem bench calibrate`)");
    CalibrateOptions co;
    co.reps = 3;
    p = measure_profile(co);
    p.intra = Link{10e-6, 5e9};
    src = "calibrated now (links assumed 10 µs + bytes / 5 GB/s)";
  }
  return cluster_from_profile(p, std::max(world, p.cores), src);
}

std::vector<Mode> modes_of(const std::string& s) {
  if (s == "sd") return {Mode::SD};
  if (s == "pearl") return {Mode::PEARL};
  if (s == "auto") return {Mode::AR, Mode::SD, Mode::PEARL};
  return {Mode::AR};
}

Json row_json(const Ranked& r) {
  const auto& p = r.pred;
  return Json{{"layout", r.query.layout.describe()},
              {"mode", mode_name(r.query.mode)},
              {"decode_tok_s", p.decode_tok_s},
              {"throughput_tok_s", p.throughput_tok_s},
              {"batch", r.query.batch},
              {"ttft_ms", p.ttft_s * 1e3},
              {"memory_per_rank_gib", p.memory_per_rank_GiB},
              {"rank_read_gbs", p.rank_read_GBps},
              {"draft_len", p.step.gamma},
              {"tokens_per_block", p.step.tokens_per_block},
              {"weights_ms", p.step.weights * 1e3},
              {"attention_ms", p.step.attention * 1e3},
              {"allreduce_ms", p.step.allreduce * 1e3},
              {"p2p_ms", p.step.p2p * 1e3},
              {"bubble_pct", p.step.bubble_fraction * 100},
              {"draft_ms", p.step.draft * 1e3},
              {"pearl_hidden_ms", p.step.pearl_hidden * 1e3}};
}

// Why the best beats the runner-up: the step component that differs most, in their own terms.
std::string why_best(const std::vector<Ranked>& v) {
  if (v.empty()) return "no feasible layout";
  const auto& a = v[0];
  if (v.size() == 1) return fmt::format("{} is the only feasible layout", a.query.layout.describe());
  const auto& b = v[1];
  const Breakdown &x = a.pred.step, &y = b.pred.step;
  struct Part { const char* what; double a, b; };
  const Part parts[] = {{"weight streaming", x.weights, y.weights}, {"attention (KV reads)", x.attention, y.attention},
                        {"allreduces", x.allreduce, y.allreduce},     {"stage-to-stage sends", x.p2p, y.p2p},
                        {"drafting", x.draft - x.pearl_hidden, y.draft - y.pearl_hidden}};
  // The component in which the winner saves the most per step; a speculative winner that pays
  // more per step wins by the tokens each step yields.
  const Part* big = nullptr;
  for (const auto& p : parts)
    if (p.b - p.a > 0 && (!big || p.b - p.a > big->b - big->a)) big = &p;
  std::string s = fmt::format("{} {} wins with {:.1f} tok/s, {:.2f}× {} {}", a.query.layout.describe(),
                              mode_name(a.query.mode), a.pred.decode_tok_s, a.pred.decode_tok_s / b.pred.decode_tok_s,
                              b.query.layout.describe(), mode_name(b.query.mode));
  if (big && a.query.mode == b.query.mode)
    s += fmt::format(": its {}: {:.2f} ms per step against {:.2f} ms", big->what, big->a * 1e3, big->b * 1e3);
  else if (x.tokens_per_block != y.tokens_per_block)
    s += fmt::format(": {:.2f} tokens per target step against {:.2f}", x.tokens_per_block, y.tokens_per_block);
  else if (big)
    s += fmt::format(": its {}: {:.2f} ms per step against {:.2f} ms", big->what, big->a * 1e3, big->b * 1e3);
  if (a.query.mode != Mode::AR && a.query.mode == b.query.mode)
    s += fmt::format("; {:.2f} tokens per block at γ = {}", x.tokens_per_block, x.gamma);
  if (x.bubble_fraction > 0.01) s += fmt::format("; pipeline bubbles idle {:.0f}% of its rank-time", x.bubble_fraction * 100);
  return s;
}

int run_plan(const PlanOpts& o) {
  if (o.model.empty() == o.shape.empty()) {
    spdlog::error("give exactly one of --model FILE or --shape NAME (shapes: {})", fmt::join(shape_names(), ", "));
    return 2;
  }
  auto m = shape_of(o);
  if (!m) {
    spdlog::error("{}", m.error().message);
    return 2;
  }
  auto c = cluster_of(o, o.world);
  if (!c) {
    spdlog::error("{}", c.error().message);
    return 2;
  }
  const int world = o.world > 0 ? o.world : c->world();
  if (world > c->world()) {
    spdlog::error("--world {}: the cluster '{}' has {} ranks ({} nodes × {} ranks)", world, c->name, c->world(),
                  c->nodes, c->ranks_per_node);
    return 2;
  }
  Query base;
  base.acceptance = o.acceptance, base.draft_fraction = o.draft_fraction, base.context = o.ctx;
  base.batch = o.batch, base.prompt = o.prompt, base.max_seqs = o.max_seqs, base.draft_layers = o.draft_layers;
  std::vector<Ranked> all;
  std::vector<std::pair<std::string, std::string>> refused;
  for (Mode md : modes_of(o.speculation)) {
    base.mode = md;
    auto v = plan_layouts(*m, *c, base, world, &refused);
    all.insert(all.end(), v.begin(), v.end());
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Ranked& a, const Ranked& b) { return a.pred.decode_tok_s > b.pred.decode_tok_s; });
  std::printf("plan: %s (%s, %.2f GiB of weights) on %d ranks of '%s' [%s]\n", m->name.c_str(),
              std::string(name(m->type)).c_str(),
              (m->n_layers * m->layer_weight_bytes() + m->head_bytes() + m->embedding_bytes()) / 1073741824.0, world,
              c->name.c_str(), c->source.c_str());
  std::vector<Json> rows;
  for (const auto& r : all) rows.push_back(row_json(r));
  print_table(rows, {{"layout", "layout"}, {"mode", "mode"}, {"decode_tok_s", "decode tok/s"},
                     {"throughput_tok_s", fmt::format("tok/s @B={}", o.batch)}, {"ttft_ms", "TTFT ms"},
                     {"memory_per_rank_gib", "GiB/rank"}, {"weights_ms", "weights ms"}, {"attention_ms", "attn ms"},
                     {"allreduce_ms", "allreduce ms"}, {"p2p_ms", "p2p ms"}, {"bubble_pct", "bubble %"},
                     {"draft_len", "γ"}});
  for (const auto& [l, why] : refused) std::printf("refused %s: %s\n", l.c_str(), why.c_str());
  const std::string reason = why_best(all);
  std::printf("best: %s\n", reason.c_str());
  if (!o.json.empty()) {
    Json extra{{"model", m->name}, {"weight_type", std::string(name(m->type))}, {"world", world},
               {"cluster", c->name}, {"constants", c->source}, {"best_reason", reason}};
    for (const auto& [l, why] : refused) extra["refused"].push_back({{"layout", l}, {"reason", why}});
    if (!write_json(o.json, "plan", rows, extra)) return 1;
  }
  return all.empty() ? 1 : 0;
}

// --- strong-scaling projection ---------------------------------------------------------------

struct ProjectOpts {
  std::string profile, json = "scaling-projection.json";
  double node_gbs = 100, node_mem_gib = 256, acceptance = 0.8, draft_fraction = 0.1;
  int cores = 32, max_nodes = 64, ctx = 512;
  bool plot = true;
};

int run_project(const ProjectOpts& o) {
  auto p = load_profile(o.profile);
  if (!p) {
    spdlog::error("{}", p.error().message);
    return 2;
  }
  // The node's compute profile: this machine's T(rows)/T(1) measures compute per byte of one
  // core; a node with `cores` cores streaming node_gbs has cores/node_gbs of it per byte, so the
  // compute-bound excess over 1 shrinks by that ratio.
  const double here = p->read_GBps.front().second;  // one core
  const double scale = (here / 1.0) / (o.node_gbs / o.cores);
  std::map<std::string, std::vector<std::pair<int, double>>> compute;
  auto measured = p->compute;
  for (const auto& [t, v] : p->layer_compute)  // a whole layer's, when calibrated
    if (!v.empty()) measured[t] = v;
  for (const auto& [t, v] : measured)
    for (auto [r, f] : v) compute[t].emplace_back(r, 1.0 + std::max(0.0, f - 1.0) / scale);
  struct Net { const char* name; Link link; };
  // Assumed figures for MPI over TCP (not measured here): latency of a small message, line rate.
  const Net nets[] = {{"25GbE", Link{25e-6, 25e9 / 8 * 0.9}}, {"100GbE", Link{15e-6, 100e9 / 8 * 0.9}}};
  Json out;
  out["benchmark"] = "scaling-projection";
  out["prediction"] = true;
  out["node"] = {{"cores", o.cores}, {"read_gbs", o.node_gbs}, {"memory_gib", o.node_mem_gib}, {"ranks_per_node", 1},
                 {"compute_profile", fmt::format("from {} scaled by {:.2f}", o.profile, scale)}};
  out["calibration"] = {{"profile", o.profile}, {"machine", p->machine}};
  out["acceptance"] = o.acceptance;
  out["draft_fraction"] = o.draft_fraction;
  out["nets"] = Json::array();
  for (const auto& n : nets)
    out["nets"].push_back({{"name", n.name}, {"latency_us", n.link.latency_s * 1e6}, {"gbs", n.link.bandwidth_Bps / 1e9}});
  std::vector<Json> rows;
  for (const char* shape : {"llama-2-7b", "llama-3-70b"})
    for (WeightType t : {WeightType::Q4_K, WeightType::Q8_0}) {
      auto m = named_shape(shape, t);
      for (const auto& net : nets)
        for (int nodes = 1; nodes <= o.max_nodes; nodes *= 2) {
          ClusterSpec c;
          c.name = fmt::format("{}×({} cores, {} GB/s, {})", nodes, o.cores, o.node_gbs, net.name);
          c.nodes = nodes, c.ranks_per_node = 1;
          c.rank_read_GBps = c.node_read_GBps = o.node_gbs;
          c.rank_memory_GiB = o.node_mem_gib;
          c.intra = Link{1e-6, 50e9};
          c.inter = net.link;
          c.compute = compute;
          for (const auto& [tn, g] : p->gemv_GBps) c.kernel_efficiency[tn] = std::min(1.0, g / here);
          for (const auto& [tn, g] : p->layer_gemv_GBps)  // a whole layer's shapes, when calibrated
            if (g > 0) c.kernel_efficiency[tn] = std::min(1.0, g / here);
          // Engine overhead is per-step CPU work, carried over as measured here; attention's
          // compute per position is this machine's one-core figure spread over the node's cores.
          c.step_overhead_s = p->step_overhead_s, c.seq_overhead_s = p->seq_overhead_s;
          c.attention_s_per_pos = p->attention_s_per_pos / o.cores;
          c.attention_ref = double(p->attention_n_q) * p->attention_head_dim;
          for (Mode md : {Mode::AR, Mode::SD, Mode::PEARL}) {
            Query q;
            q.mode = md, q.acceptance = o.acceptance, q.draft_fraction = o.draft_fraction, q.context = o.ctx;
            // The best layout on up to `nodes` nodes (a layout need not use every node: PEARL's
            // draft group and the head-count divisors leave some idle).
            std::vector<Ranked> v;
            for (int w = 1; w <= nodes; ++w) {
              auto vw = plan_layouts(*m, c, q, w);
              v.insert(v.end(), vw.begin(), vw.end());
            }
            std::stable_sort(v.begin(), v.end(), [](const Ranked& a, const Ranked& b) {
              return a.pred.decode_tok_s > b.pred.decode_tok_s;
            });
            Json r{{"model", shape}, {"weight_type", std::string(name(t))}, {"net", net.name}, {"nodes", nodes},
                   {"mode", mode_name(md)}};
            if (v.empty()) {
              r["feasible"] = false;
            } else {
              r["feasible"] = true;
              r["layout"] = v[0].query.layout.describe();
              r["nodes_used"] = v[0].query.layout.world_size();
              r["decode_tok_s"] = v[0].pred.decode_tok_s;
              r["throughput_tok_s"] = v[0].pred.throughput_tok_s;
              r["draft_len"] = v[0].pred.step.gamma;
              r["memory_per_rank_gib"] = v[0].pred.memory_per_rank_GiB;
            }
            rows.push_back(r);
          }
        }
    }
  out["results"] = rows;
  std::ofstream f(o.json);
  if (!f) {
    spdlog::error("--json {}: cannot write", o.json);
    return 1;
  }
  f << out.dump(2) << "\n";
  // A compact table: best layout per mode, per model/type/net, at each node count.
  std::vector<Json> table;
  for (const auto& r : rows)
    if (r["feasible"].get<bool>())
      table.push_back({{"model", r["model"]}, {"weight_type", r["weight_type"]}, {"net", r["net"]}, {"nodes", r["nodes"]},
                       {"mode", r["mode"]}, {"layout", r["layout"]}, {"decode_tok_s", r["decode_tok_s"]}});
  print_table(table, {{"model", "model"}, {"weight_type", "type"}, {"net", "net"}, {"nodes", "nodes"}, {"mode", "mode"},
                      {"layout", "best layout"}, {"decode_tok_s", "decode tok/s (predicted)"}});
  f.close();
  std::printf("wrote %s (predictions)\n", o.json.c_str());
  if (o.plot) plot_json("plot_scaling.py", o.json);
  return 0;
}

}  // namespace

void add_bench_calibrate(CLI::App& bench) {
  auto o = std::make_shared<CalOpts>();
  auto* c = bench.add_subcommand(
      "calibrate",
      "Measure this machine's cost-model constants (read bandwidth at 1 and 2 threads, T(rows)/T(1) per weight type, "
      "and under `mpirun -n 2` allreduce/send latency and bandwidth) into a profile for `tandem plan`");
  c->add_option("--out,-o", o->out, "Profile JSON to write")->capture_default_str();
  c->add_option("--types", o->types, "Weight types to profile")->capture_default_str();
  c->add_option("--threads,-t", o->threads, "Compute threads per rank")->check(CLI::Range(1, 256))->capture_default_str();
  c->add_option("--reps", o->reps, "Passes per row count (median)")->check(CLI::Range(1, 100))->capture_default_str();
  c->add_option("--link-latency-us", o->link_latency_us, "Link latency when not measured (1 rank)")->capture_default_str();
  c->add_option("--link-gbs", o->link_gbs, "Link bandwidth GB/s when not measured (1 rank)")->capture_default_str();
  c->add_flag("!--no-plot", o->plot, "Do not chart T(rows)/T(1) next to the profile");
  c->add_flag("--ranks-only", o->ranks_only,
              "Under `mpirun -n 2`: only the two ranks' bandwidth while both stream, and rank 0's GEMV over one "
              "layer's shapes per --types (samples as JSON; model-check takes it between repetitions)");
  c->callback([o] {
    if (const int rc = run_calibrate(*o)) throw CLI::RuntimeError(rc);
  });

  auto po = std::make_shared<ProjectOpts>();
  auto* p = bench.add_subcommand("project",
                                 "Predicted strong scaling (cost model): llama-2-7b and llama-3-70b at q4_k and q8_0 "
                                 "on 1..N nodes of a stated node type, 25GbE and 100GbE, best layout per mode");
  p->add_option("--profile", po->profile, "Calibration profile (tandem bench calibrate)")->required()->check(CLI::ExistingFile);
  p->add_option("--json", po->json, "Output JSON")->capture_default_str();
  p->add_option("--node-gbs", po->node_gbs, "Read bandwidth of one node, GB/s")->capture_default_str();
  p->add_option("--cores", po->cores, "Cores per node")->capture_default_str();
  p->add_option("--node-memory-gib", po->node_mem_gib, "Memory per node, GiB")->capture_default_str();
  p->add_option("--max-nodes", po->max_nodes, "Largest node count (powers of two from 1)")->capture_default_str();
  p->add_option("--acceptance", po->acceptance, "Draft acceptance rate α")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  p->add_option("--draft-fraction", po->draft_fraction, "Draft bytes / target bytes")->capture_default_str();
  p->add_option("--ctx", po->ctx, "Cached positions during decode")->capture_default_str();
  p->add_flag("!--no-plot", po->plot, "Do not chart the projection next to its JSON");
  p->callback([po] {
    if (const int rc = run_project(*po)) throw CLI::RuntimeError(rc);
  });
}

void add_plan_command(CLI::App& app) {
  auto o = std::make_shared<PlanOpts>();
  auto* c = app.add_subcommand("plan",
                               "Rank every feasible layout (tp × pp, + a draft rank for PEARL) by predicted decode tok/s "
                               "from the cost model, for a cluster file or this machine's calibration");
  c->add_option("--model,-m", o->model, "GGUF model (its shape and weight type)")->check(CLI::ExistingFile);
  c->add_option("--shape", o->shape, "Named shape: " + fmt::format("{}", fmt::join(shape_names(), ", ")));
  c->add_option("--type", o->type, "Weight type (q4_k, q8_0, ...; default: the file's, or q4_k for --shape)");
  c->add_option("--cluster", o->cluster, "Cluster JSON (nodes, ranks_per_node, rank_read_gbs, node_read_gbs, "
                                         "rank_memory_gib, intra/inter {latency_us, gbs}, compute or profile)");
  c->add_option("--profile", o->profile, "Calibration profile for this machine (default: calibrate now)");
  c->add_option("--world,-n", o->world, "Ranks of the job (default: the cluster's)")->check(CLI::Range(1, 1 << 16));
  c->add_option("--speculation", o->speculation, "off | sd | pearl | auto (all modes ranked together)")
      ->check(CLI::IsMember({"off", "sd", "pearl", "auto"}))
      ->capture_default_str();
  c->add_option("--acceptance", o->acceptance, "Draft acceptance rate α")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--draft-fraction", o->draft_fraction, "Draft weight bytes / target weight bytes")->capture_default_str();
  c->add_option("--draft-layers", o->draft_layers, "Draft depth (its TP allreduces)")->capture_default_str();
  c->add_option("--ctx", o->ctx, "Cached positions during decode")->capture_default_str();
  c->add_option("--batch", o->batch, "Concurrent sequences for the throughput column")->capture_default_str();
  c->add_option("--prompt", o->prompt, "Prompt tokens for TTFT")->capture_default_str();
  c->add_option("--max-seqs", o->max_seqs, "KV slots per rank (memory)")->capture_default_str();
  c->add_option("--json", o->json, "Write one object per layout (layout, decode_tok_s, ...)");
  c->callback([o] {
    if (const int rc = run_plan(*o)) throw CLI::RuntimeError(rc);
  });
}

}  // namespace tandem::bench
