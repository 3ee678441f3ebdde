#include "bench/calibration.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <fstream>
#include <random>

#include "bench/bench_report.h"
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

}  // namespace

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
    spdlog::info("{}: GEMV {:.1f} GB/s, T(rows)/T(1){}", tn, p.gemv_GBps[tn], txt);
  }
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
  j["intra"] = {{"latency_us", p.intra.latency_s * 1e6}, {"gbs", p.intra.bandwidth_Bps / 1e9}, {"source", p.link_source}};
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
  c.rank_memory_GiB = p.memory_GiB > 0 ? p.memory_GiB / c.ranks_per_node : 16;
  c.intra = c.inter = p.intra;
  c.compute = p.compute;
  for (const auto& [t, g] : p.gemv_GBps)
    if (g > 0) c.kernel_efficiency[t] = std::min(1.0, g / c.rank_read_GBps);
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
