#include "bench/bench_report.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <ctime>
#include <fstream>

#include "shard/kernels/cpu_features.h"
#include "shard/log.h"

namespace tandem::bench {

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

namespace {
std::string cell(const Json& v) {
  if (v.is_null()) return "-";
  if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
  if (v.is_number()) {
    const double d = v.get<double>();
    return std::abs(d) < 1 && d != 0 ? fmt::format("{:.3f}", d) : fmt::format("{:.2f}", d);
  }
  if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
  if (v.is_string()) return v.get<std::string>();
  return v.dump();
}
}  // namespace

void print_table(const std::vector<Json>& rows, const std::vector<std::pair<std::string, std::string>>& cols) {
  std::vector<size_t> w;
  for (const auto& [k, h] : cols) {
    size_t m = h.size();
    for (const auto& r : rows) m = std::max(m, cell(r.contains(k) ? r[k] : Json()).size());
    w.push_back(m);
  }
  std::string line = "|", sep = "|";
  for (size_t i = 0; i < cols.size(); ++i) {
    line += fmt::format(" {:<{}} |", cols[i].second, w[i]);
    sep += std::string(w[i] + 2, '-') + "|";
  }
  fmt::print("{}\n{}\n", line, sep);
  for (const auto& r : rows) {
    line = "|";
    for (size_t i = 0; i < cols.size(); ++i)
      line += fmt::format(" {:>{}} |", cell(r.contains(cols[i].first) ? r[cols[i].first] : Json()), w[i]);
    fmt::print("{}\n", line);
  }
  std::fflush(stdout);
}

Json machine_info() {
  Json m;
  std::ifstream cpu("/proc/cpuinfo");
  std::string l;
  while (std::getline(cpu, l))
    if (l.rfind("model name", 0) == 0) {
      m["cpu"] = l.substr(l.find(':') + 2);
      break;
    }
  m["cores"] = sysconf(_SC_NPROCESSORS_ONLN);
  m["memory_gib"] = static_cast<double>(sysconf(_SC_PHYS_PAGES)) * sysconf(_SC_PAGE_SIZE) / 1073741824.0;
  m["kernels"] = kernel_level_name();
  char date[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%d %H:%M UTC", std::gmtime(&t));
  m["date"] = date;
  return m;
}

bool write_json(const std::string& path, const std::string& name, const std::vector<Json>& rows, const Json& extra) {
  if (path.empty()) return true;
  Json j;
  j["benchmark"] = name;
  j["machine"] = machine_info();
  j["results"] = rows;
  if (!extra.is_null())
    for (auto& [k, v] : extra.items()) j[k] = v;
  std::ofstream f(path);
  if (!f) {
    spdlog::error("--json {}: cannot write", path);
    return false;
  }
  f << j.dump(2) << "\n";
  spdlog::info("wrote {}", path);
  return true;
}

void plot_json(const std::string& script, const std::string& json_path) {
  const char* py = "/usr/bin/python3";  // Debian's, with python3-matplotlib
  if (std::system(fmt::format("{} -c 'import matplotlib' >/dev/null 2>&1", py).c_str()) != 0) {
    spdlog::info("no python3-matplotlib: skipping the charts of {} (bench/{})", json_path, script);
    return;
  }
  const std::string cmd = fmt::format("{} '{}/{}' '{}'", py, TANDEM_BENCH_DIR, script, json_path);
  spdlog::info("charts: {}", cmd);
  if (std::system(cmd.c_str()) != 0) spdlog::warn("the charts failed: {}", cmd);
}

}  // namespace tandem::bench
