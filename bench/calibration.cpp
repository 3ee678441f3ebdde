#include "bench/calibration.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <random>

#include "bench/bench_report.h"
#include "shard/kernels/attention.h"
#include "shard/kernels/matmul.h"
#include "shard/kernels/quant.h"
#include "shard/kernels/read_bandwidth.h"

namespace tandem::bench {
namespace {

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// One ggml-layout matrix of the type from normal floats (quantize_row gives valid blocks).
std::vector<uint8_t> make_rows(WeightType t, int64_t rows, int64_t cols) {
  std::mt19937 rng(7);
  std::normal_distribution<float> d(0.f, 0.02f);
  std::vector<float> f(static_cast<size_t>(cols));
  const size_t rb = row_bytes(t, cols);
  std::vector<uint8_t> out(rb * rows);
  for (int64_t r = 0; r < rows; ++r) {
    for (auto& v : f) v = d(rng);
    quantize_row(t, f.data(), out.data() + r * rb, cols);
  }
  return out;
}

// One layer's matrices of TinyLlama's shape in decode order (q, k, v, o, gate, up, down), copies
// rotated past the L3 as in measure_profile: the GEMV bandwidth at one row and T(rows)/T(1) of
// the whole set (medians of `reps` rounds over every row count).
struct LayerFit {
  double gbs = 0;
  std::vector<std::pair<int, double>> profile;
};
LayerFit layer_gemv(WeightType t, ThreadPool& pool, size_t stream_MiB, int reps, const std::vector<int>& row_counts) {
  constexpr int64_t kDim = 2048, kKv = 256, kFfn = 5632;
  const std::pair<int64_t, int64_t> shapes[] = {{kDim, kDim}, {kKv, kDim}, {kKv, kDim}, {kDim, kDim},
                                                {kFfn, kDim}, {kFfn, kDim}, {kDim, kFfn}};
  std::vector<PackedMatrix> mats;
  size_t bytes = 0;
  while (bytes < (stream_MiB << 20))
    for (auto [rows, cols] : shapes) {
      const auto src = make_rows(t, rows, cols);
      mats.push_back(pack_matrix(t, rows, cols, src.data(), row_bytes(t, cols)));
      bytes += mats.back().bytes;
    }
  const int max_rows = *std::max_element(row_counts.begin(), row_counts.end());
  std::vector<float> x(static_cast<size_t>(kFfn) * max_rows, 0.5f), y(static_cast<size_t>(kFfn) * max_rows);
  for (const auto& m : mats) matmul(m, x.data(), 1, y.data(), m.rows, pool);
  std::map<int, std::vector<double>> per;
  for (int r = 0; r < reps; ++r)
    for (int rows : row_counts) {
      const double a = now_s();
      for (const auto& m : mats) matmul(m, x.data(), rows, y.data(), m.rows, pool);
      per[rows].push_back(now_s() - a);
    }
  LayerFit f;
  const double t1 = median(per[row_counts.front()]);
  f.gbs = bytes / t1 / 1e9;
  for (int rows : row_counts) f.profile.emplace_back(rows, median(per[rows]) / t1);
  return f;
}

// Attention of one query row over `ctx` positions: n_q heads sharing one F16 KV head (scores,
// softmax, values), as a decode step does per layer and KV head; seconds, median of passes over
// enough independent caches that they do not all sit in the L2.
double attention_s(int n_q, int head_dim, int ctx, int reps) {
  const size_t row = static_cast<size_t>(head_dim) * 2;  // F16
  const int copies = std::max(1, static_cast<int>((size_t{16} << 20) / (row * ctx * 2)));
  std::vector<std::vector<uint8_t>> k(copies, std::vector<uint8_t>(row * ctx)), v = k;
  std::vector<float> f(static_cast<size_t>(head_dim) * ctx, 0.01f);
  for (int c = 0; c < copies; ++c) {
    f32_to_kv(f.data(), k[c].data(), static_cast<int64_t>(f.size()), WeightType::F16);
    f32_to_kv(f.data(), v[c].data(), static_cast<int64_t>(f.size()), WeightType::F16);
  }
  std::vector<float> q(static_cast<size_t>(n_q) * head_dim, 0.1f), sc(static_cast<size_t>(n_q) * ctx),
      out(static_cast<size_t>(n_q) * head_dim);
  std::vector<double> ts;
  for (int r = 0; r <= reps; ++r) {
    const double a = now_s();
    for (int c = 0; c < copies; ++c) {
      attn_scores(q.data(), n_q, head_dim, k[c].data(), row, WeightType::F16, ctx, sc.data());
      for (int h = 0; h < n_q; ++h) {  // softmax per head, as the engine's
        float* s = sc.data() + static_cast<size_t>(h) * ctx;
        const float mx = *std::max_element(s, s + ctx);
        float sum = 0;
        for (int j = 0; j < ctx; ++j) sum += (s[j] = std::exp(s[j] - mx));
        for (int j = 0; j < ctx; ++j) s[j] /= sum;
      }
      std::fill(out.begin(), out.end(), 0.f);
      attn_values(sc.data(), n_q, ctx, v[c].data(), row, WeightType::F16, head_dim, out.data());
    }
    if (r > 0) ts.push_back((now_s() - a) / copies);  // the first pass warms up
  }
  return median(ts);
}

}  // namespace

double layer_gemv_gbs(WeightType t, int threads, int reps, size_t stream_MiB) {
  ThreadPool pool(threads);
  return layer_gemv(t, pool, stream_MiB, reps, {1}).gbs;
}

GemvLoad::GemvLoad(size_t MiB, std::vector<std::pair<int64_t, int64_t>> shapes) {
  int64_t max_rows = 1, max_cols = 1;
  for (auto [r, c] : shapes) max_rows = std::max(max_rows, r), max_cols = std::max(max_cols, c);
  x_.assign(static_cast<size_t>(max_cols), 0.5f);
  y_.assign(static_cast<size_t>(max_rows), 0.f);
  std::vector<std::vector<uint8_t>> src;
  for (auto [r, c] : shapes) src.push_back(make_rows(WeightType::Q8_0, r, c));
  size_t bytes = 0;
  while (bytes < (MiB << 20))
    for (size_t i = 0; i < shapes.size(); ++i) {
      const auto [r, c] = shapes[i];
      copies_.push_back(pack_matrix(WeightType::Q8_0, r, c, src[i].data(), row_bytes(WeightType::Q8_0, c)));
      bytes += copies_.back().bytes;
    }
  bytes_ = bytes;
}

void GemvLoad::run(ThreadPool& pool) {
  for (const auto& c : copies_) matmul(c, x_.data(), 1, y_.data(), c.rows, pool);
}

std::vector<std::pair<int64_t, int64_t>> tp2_layer_shapes() {
  constexpr int64_t kDim = 2048, kKv = 256, kFfn = 5632;
  return {{kDim / 2, kDim}, {kKv / 2, kDim}, {kKv / 2, kDim}, {kDim, kDim / 2},
          {kFfn / 2, kDim}, {kFfn / 2, kDim}, {kDim, kFfn / 2}};
}

Profile measure_profile(const CalibrateOptions& o) {
  Profile p;
  p.machine = machine_info();
  p.cores = p.machine.value("cores", 1);
  p.memory_GiB = p.machine.value("memory_gib", 0.0);
  for (int th : {1, 2}) {
    ThreadPool pool(th);
    const double gbs = measure_read_bandwidth_gbs(pool, size_t{256} << 20, 3);
    p.read_GBps.emplace_back(th, gbs);
    spdlog::info("read bandwidth, {} thread(s): {:.1f} GB/s", th, gbs);
  }
  ThreadPool pool(o.threads);
  constexpr int64_t kOut = 5632, kIn = 2048;  // ffn_up of TinyLlama: rows × cols
  for (WeightType t : o.types) {
    const auto src = make_rows(t, kOut, kIn);
    const size_t rb = row_bytes(t, kIn);
    std::vector<PackedMatrix> copies{pack_matrix(t, kOut, kIn, src.data(), rb)};
    const size_t n = std::max<size_t>(1, (o.stream_MiB << 20) / copies[0].bytes + 1);
    while (copies.size() < n) copies.push_back(pack_matrix(t, kOut, kIn, src.data(), rb));
    const int max_rows = *std::max_element(o.rows.begin(), o.rows.end());
    std::vector<float> x(static_cast<size_t>(max_rows * kIn)), y(static_cast<size_t>(max_rows * kOut));
    std::mt19937 rng(3);
    std::normal_distribution<float> d(0.f, 1.f);
    for (auto& v : x) v = d(rng);
    // Rounds over all row counts, medians per row count: the machine's drift hits every row
    // count alike instead of skewing the ratio T(rows)/T(1).
    for (const auto& c : copies) matmul(c, x.data(), 1, y.data(), kOut, pool);  // warm-up pass
    std::map<int, std::vector<double>> per;
    for (int rep = 0; rep < o.reps; ++rep)
      for (int rows : o.rows) {
        const double a = now_s();
        for (const auto& c : copies) matmul(c, x.data(), rows, y.data(), kOut, pool);
        per[rows].push_back((now_s() - a) / copies.size());
      }
    const double t1 = median(per[o.rows.front()]);
    std::vector<std::pair<int, double>> prof;
    for (int rows : o.rows) prof.emplace_back(rows, t1 > 0 ? median(per[rows]) / t1 : 1.0);
    const std::string tn(name(t));
    p.compute[tn] = prof;
    p.gemv_GBps[tn] = t1 > 0 ? copies[0].bytes / t1 / 1e9 : 0;
    std::string txt;
    for (auto [r, f] : prof) txt += fmt::format(" {}:{:.2f}", r, f);
    // The whole layer, three times the passes: its rate sets every prediction's weight time.
    const LayerFit lf = layer_gemv(t, pool, o.stream_MiB, 3 * o.reps, o.rows);
    p.layer_gemv_GBps[tn] = lf.gbs;
    p.layer_compute[tn] = lf.profile;
    std::string ltxt;
    for (auto [r, f] : lf.profile) ltxt += fmt::format(" {}:{:.2f}", r, f);
    spdlog::info("{}: GEMV {:.1f} GB/s, T(rows)/T(1){}; one layer's shapes: {:.1f} GB/s, T(rows)/T(1){}", tn,
                 p.gemv_GBps[tn], txt, lf.gbs, ltxt);
  }
  std::vector<std::pair<double, double>> pts;
  for (int ctx : o.attention_ctx) {
    const double t = attention_s(p.attention_n_q, p.attention_head_dim, ctx, o.reps);
    p.attention.emplace_back(ctx, t);
    pts.emplace_back(ctx, t);
  }
  if (pts.size() >= 2) p.attention_s_per_pos = std::max(0.0, fit_line(pts).second);
  spdlog::info("attention ({} query heads of {} per KV head): {:.2f} ns per position", p.attention_n_q,
               p.attention_head_dim, p.attention_s_per_pos * 1e9);
  return p;
}

Link fit_link(const std::vector<std::pair<double, double>>& s) {
  // Least squares on relative error (weights 1/t²): unweighted, the megabyte messages would fix
  // the intercept and the latency that decode's small messages pay would come out near zero.
  double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : s) {
    const double w = y > 0 ? 1.0 / (y * y) : 0.0;
    sw += w, sx += w * x, sy += w * y, sxx += w * x * x, sxy += w * x * y;
  }
  const double den = sw * sxx - sx * sx;
  const double slope = den != 0 ? (sw * sxy - sx * sy) / den : 0;
  const double icept = sw > 0 ? (sy - slope * sx) / sw : 0;
  Link l;
  l.latency_s = std::max(0.0, icept);
  l.bandwidth_Bps = slope > 0 ? 1.0 / slope : 1e12;
  return l;
}

std::pair<double, double> fit_line(const std::vector<std::pair<double, double>>& s) {
  double n = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
  for (auto [x, y] : s) n += 1, sx += x, sy += y, sxx += x * x, sxy += x * y;
  const double den = n * sxx - sx * sx;
  const double b = den != 0 ? (n * sxy - sx * sy) / den : 0;
  return {n > 0 ? (sy - b * sx) / n : 0, b};
}

std::pair<double, double> fit_step_overhead(const std::vector<std::pair<int, double>>& s) {
  std::vector<std::pair<double, double>> pts;
  for (auto [n, e] : s) pts.emplace_back(n - 1.0, e);
  if (pts.empty()) return {0, 0};
  bool one_x = true;
  for (const auto& p : pts) one_x = one_x && p.first == pts.front().first;
  if (one_x) {  // one sequence count: the mean is the per-step figure
    double m = 0;
    for (const auto& p : pts) m += p.second;
    return {std::max(0.0, m / pts.size()), 0};
  }
  auto [a, b] = fit_line(pts);
  return {std::max(0.0, a), std::max(0.0, b)};
}

nlohmann::json to_json(const Profile& p) {
  Json j;
  j["machine"] = p.machine;
  j["read_gbs"] = Json::array();
  for (auto [t, g] : p.read_GBps) j["read_gbs"].push_back({{"threads", t}, {"gbs", g}});
  for (const auto& [t, v] : p.compute) {
    Json a = Json::array();
    for (auto [r, f] : v) a.push_back({r, f});
    j["compute"][t] = a;
    j["gemv_gbs"][t] = p.gemv_GBps.at(t);
  }
  for (const auto& [t, g] : p.layer_gemv_GBps) j["layer_gemv_gbs"][t] = g;
  for (const auto& [t, v] : p.layer_compute) {
    Json a = Json::array();
    for (auto [r, f] : v) a.push_back({r, f});
    j["layer_compute"][t] = a;
  }
  j["intra"] = {{"latency_us", p.intra.latency_s * 1e6}, {"gbs", p.intra.bandwidth_Bps / 1e9}, {"source", p.link_source}};
  if (p.p2p) j["p2p"] = {{"latency_us", p.p2p->latency_s * 1e6}, {"gbs", p.p2p->bandwidth_Bps / 1e9}};
  if (p.bcast) j["bcast"] = {{"latency_us", p.bcast->latency_s * 1e6}, {"gbs", p.bcast->bandwidth_Bps / 1e9}};
  if (!p.attention.empty()) {
    Json a = Json::array();
    for (auto [c, t] : p.attention) a.push_back({c, t});
    j["attention"] = {{"n_q", p.attention_n_q}, {"head_dim", p.attention_head_dim}, {"kv", "f16"},
                      {"points_ctx_s", a}, {"ns_per_position", p.attention_s_per_pos * 1e9}};
  }
  if (p.ranks_read_GBps > 0) j["read_gbs_2ranks"] = p.ranks_read_GBps;
  if (p.ranks_gemv_GBps > 0) j["gemv_gbs_2ranks"] = p.ranks_gemv_GBps;
  if (!p.ranks_read_samples.empty()) j["read_gbs_2ranks_samples"] = p.ranks_read_samples;
  if (!p.ranks_gemv_samples.empty()) j["gemv_gbs_2ranks_samples"] = p.ranks_gemv_samples;
  for (const auto& [t, v] : p.layer_gemv_samples) j["layer_gemv_gbs_samples"][t] = v;
  if (p.hop_overhead_s) j["hop_overhead_us"] = *p.hop_overhead_s * 1e6;
  if (!p.overhead_source.empty())
    j["engine_overhead"] = {{"step_us", p.step_overhead_s * 1e6}, {"seq_us", p.seq_overhead_s * 1e6},
                            {"source", p.overhead_source}};
  return j;
}

Result<Profile> profile_from_json(const nlohmann::json& j, const std::string& path) {
  Profile p;
  try {
    p.machine = j.at("machine");
    p.cores = p.machine.value("cores", 1);
    p.memory_GiB = p.machine.value("memory_gib", 0.0);
    for (const auto& r : j.at("read_gbs")) p.read_GBps.emplace_back(r.at("threads").get<int>(), r.at("gbs").get<double>());
    if (p.read_GBps.empty()) return make_error("{}: \"read_gbs\" is empty", path);
    for (const auto& [t, v] : j.at("compute").items()) {
      if (!parse_weight_type(t)) return make_error("{}: \"compute\" names an unknown weight type '{}'", path, t);
      for (const auto& e : v) p.compute[t].emplace_back(e.at(0).get<int>(), e.at(1).get<double>());
    }
    if (j.contains("gemv_gbs"))
      for (const auto& [t, v] : j["gemv_gbs"].items()) p.gemv_GBps[t] = v.get<double>();
    const auto& l = j.at("intra");
    p.intra = Link{l.at("latency_us").get<double>() * 1e-6, l.at("gbs").get<double>() * 1e9};
    p.link_source = l.value("source", "");
    auto link = [&](const char* k) -> std::optional<Link> {
      if (!j.contains(k)) return std::nullopt;
      return Link{j[k].at("latency_us").get<double>() * 1e-6, j[k].at("gbs").get<double>() * 1e9};
    };
    p.p2p = link("p2p");
    p.bcast = link("bcast");
    if (j.contains("layer_compute"))
      for (const auto& [t, v] : j["layer_compute"].items())
        for (const auto& e : v) p.layer_compute[t].emplace_back(e.at(0).get<int>(), e.at(1).get<double>());
    if (j.contains("layer_gemv_gbs"))
      for (const auto& [t, v] : j["layer_gemv_gbs"].items()) p.layer_gemv_GBps[t] = v.get<double>();
    if (j.contains("attention")) {
      const auto& a = j["attention"];
      p.attention_n_q = a.at("n_q").get<int>();
      p.attention_head_dim = a.at("head_dim").get<int>();
      p.attention_s_per_pos = a.at("ns_per_position").get<double>() * 1e-9;
      for (const auto& e : a.at("points_ctx_s")) p.attention.emplace_back(e.at(0).get<int>(), e.at(1).get<double>());
    }
    p.ranks_read_GBps = j.value("read_gbs_2ranks", 0.0);
    p.ranks_gemv_GBps = j.value("gemv_gbs_2ranks", 0.0);
    if (j.contains("read_gbs_2ranks_samples")) p.ranks_read_samples = j["read_gbs_2ranks_samples"].get<std::vector<double>>();
    if (j.contains("gemv_gbs_2ranks_samples")) p.ranks_gemv_samples = j["gemv_gbs_2ranks_samples"].get<std::vector<double>>();
    if (j.contains("layer_gemv_gbs_samples"))
      for (const auto& [t, v] : j["layer_gemv_gbs_samples"].items()) p.layer_gemv_samples[t] = v.get<std::vector<double>>();
    if (j.contains("hop_overhead_us")) p.hop_overhead_s = j["hop_overhead_us"].get<double>() * 1e-6;
    if (j.contains("engine_overhead")) {
      const auto& e = j["engine_overhead"];
      p.step_overhead_s = e.at("step_us").get<double>() * 1e-6;
      p.seq_overhead_s = e.value("seq_us", 0.0) * 1e-6;
      p.overhead_source = e.value("source", "");
    }
  } catch (const nlohmann::json::exception& e) {
    return make_error("{}: not a calibration profile ({})", path, e.what());
  }
  return p;
}

Result<Profile> load_profile(const std::string& path) {
  std::ifstream f(path);
  if (!f) return make_error("--profile {}: cannot open", path);
  Json j = Json::parse(f, nullptr, false);
  if (j.is_discarded()) return make_error("--profile {}: not valid JSON", path);
  return profile_from_json(j, path);
}

ClusterSpec cluster_from_profile(const Profile& p, int ranks, const std::string& source) {
  ClusterSpec c;
  c.name = "this machine";
  c.nodes = 1;
  c.ranks_per_node = std::max(1, ranks);
  c.rank_read_GBps = p.read_GBps.front().second;
  c.node_read_GBps = c.rank_read_GBps;
  for (auto [t, g] : p.read_GBps) c.node_read_GBps = std::max(c.node_read_GBps, g);
  // The ranks' own figure when measured: what ranks of one thread each get together (one
  // process's two threads can see less or more than two processes do).
  if (p.ranks_read_GBps > 0) c.node_read_GBps = std::max(c.rank_read_GBps, p.ranks_read_GBps);
  // Better still, what two ranks' GEMVs stream together: the node's bandwidth as decode uses it.
  if (p.ranks_gemv_GBps > 0) c.node_read_GBps = std::max(c.rank_read_GBps, p.ranks_gemv_GBps);
  c.rank_memory_GiB = p.memory_GiB > 0 ? p.memory_GiB / c.ranks_per_node : 16;
  c.intra = c.inter = p.intra;
  c.p2p = p.p2p;
  c.bcast = p.bcast;
  c.compute = p.compute;
  for (const auto& [t, v] : p.layer_compute)  // a whole layer's T(rows)/T(1), when calibrated
    if (!v.empty()) c.compute[t] = v;
  // The GEMV's share of the bandwidth: over a whole layer's shapes when measured (decode streams
  // all of them), else the one FFN matrix.
  for (const auto& [t, g] : p.gemv_GBps)
    if (g > 0) c.kernel_efficiency[t] = std::min(1.0, g / c.rank_read_GBps);
  for (const auto& [t, g] : p.layer_gemv_GBps)
    if (g > 0) c.kernel_efficiency[t] = std::min(1.0, g / c.rank_read_GBps);
  c.attention_s_per_pos = p.attention_s_per_pos;
  c.attention_ref = double(p.attention_n_q) * p.attention_head_dim;
  c.step_overhead_s = p.step_overhead_s;
  c.hop_overhead_s = p.hop_overhead_s.value_or(0.0);
  c.seq_overhead_s = p.seq_overhead_s;
  c.source = fmt::format("{} ({}, {})", source, p.machine.value("cpu", "?"), p.machine.value("date", "?"));
  return c;
}

Result<ClusterSpec> load_cluster(const std::string& path) {
  std::ifstream f(path);
  if (!f) return make_error("--cluster {}: cannot open", path);
  Json j = Json::parse(f, nullptr, false);
  if (j.is_discarded()) return make_error("--cluster {}: not valid JSON", path);
  ClusterSpec c;
  try {
    c.name = j.value("name", path);
    c.nodes = j.at("nodes").get<int>();
    c.ranks_per_node = j.value("ranks_per_node", 1);
    c.rank_read_GBps = j.at("rank_read_gbs").get<double>();
    c.node_read_GBps = j.value("node_read_gbs", c.rank_read_GBps * c.ranks_per_node);
    c.rank_memory_GiB = j.at("rank_memory_gib").get<double>();
    auto link = [&](const char* k) {
      const auto& l = j.at(k);
      return Link{l.at("latency_us").get<double>() * 1e-6, l.at("gbs").get<double>() * 1e9};
    };
    c.intra = link("intra");
    c.inter = j.contains("inter") ? link("inter") : c.intra;
    c.step_overhead_s = j.value("step_overhead_us", 0.0) * 1e-6;
    if (j.contains("profile")) {
      auto p = load_profile(j["profile"].get<std::string>());
      if (!p) return make_error("--cluster {}: \"profile\": {}", path, p.error().message);
      c.compute = p->compute;
    }
    if (j.contains("compute"))
      for (const auto& [t, v] : j["compute"].items()) {
        if (!parse_weight_type(t)) return make_error("--cluster {}: \"compute\" names an unknown weight type '{}'", path, t);
        c.compute[t].clear();
        for (const auto& e : v) c.compute[t].emplace_back(e.at(0).get<int>(), e.at(1).get<double>());
      }
  } catch (const nlohmann::json::exception& e) {
    return make_error("--cluster {}: missing or mistyped field ({})", path, e.what());
  }
  if (c.nodes < 1 || c.ranks_per_node < 1 || c.rank_read_GBps <= 0 || c.node_read_GBps <= 0 || c.rank_memory_GiB <= 0 ||
      c.intra.bandwidth_Bps <= 0 || c.inter.bandwidth_Bps <= 0)
    return make_error("--cluster {}: nodes, ranks_per_node, bandwidths and memory must be positive", path);
  c.source = "cluster file " + path;
  return c;
}

}  // namespace tandem::bench
