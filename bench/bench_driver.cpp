#include "bench/bench_driver.h"

#include <fmt/format.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <map>

#include "shard/log.h"

namespace tandem::bench {

namespace {

std::string quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

std::string bin_dir() {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/self/exe", ec).parent_path().string();
}

Result<Json> run_config(const Config& c, int timeout_s) {
  const std::string dir = bin_dir();
  std::string cmd = fmt::format("TANDEM_BIN={} timeout {} ", quote(dir + "/tandem"), timeout_s);
  if (!c.hosts_cluster.empty())
    cmd += fmt::format("{} --name {} run -- {} --hostfile {} bench run", quote(dir + "/tandem-hosts"), c.hosts_cluster,
                       quote(dir + "/tandem-mpirun"), quote("/run/tandem-hosts/" + c.hosts_cluster + "/hostfile"));
  else
    cmd += fmt::format("{} bench run", quote(dir + "/tandem-mpirun"));
  for (const auto& a : c.args) cmd += " " + quote(a);
  cmd += " 2>&1";
  spdlog::info("[{}] {}", c.name, cmd);
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return make_error("cannot start: {}", cmd);
  std::string out, line;
  std::array<char, 4096> buf;
  Json result;
  while (fgets(buf.data(), buf.size(), p)) {
    line = buf.data();
    out += line;
    if (line.rfind("BENCH_JSON ", 0) == 0) result = Json::parse(line.substr(11), nullptr, false);
  }
  const int rc = pclose(p);
  if (rc != 0 || result.is_null() || result.is_discarded())
    return make_error("configuration '{}' failed (exit {}):\n{}", c.name, rc, out.size() > 4000 ? out.substr(out.size() - 4000) : out);
  for (auto& [k, v] : c.tags.items()) result[k] = v;
  result["config"] = c.name;
  return result;
}

Result<std::vector<Json>> run_interleaved(const std::vector<Config>& configs, int reps,
                                          const std::function<Status(int rep)>& after_rep) {
  std::vector<std::vector<Json>> runs(configs.size());
  for (int r = 0; r < reps; ++r) {
    for (size_t i = 0; i < configs.size(); ++i) {
      spdlog::info("repetition {}/{}, configuration {}/{}: {}", r + 1, reps, i + 1, configs.size(), configs[i].name);
      auto j = run_config(configs[i]);
      if (!j) return j.error();
      spdlog::info("  -> decode {:.2f} tok/s", (*j)["decode_tok_s"].get<double>());
      runs[i].push_back(std::move(*j));
    }
    if (after_rep)
      if (auto st = after_rep(r); !st) return st.error();
  }
  std::vector<Json> rows;
  for (auto& rs : runs) {
    Json row = rs.front();
    for (auto& [k, v] : row.items()) {
      if (!v.is_number_float()) continue;
      std::vector<double> xs;
      for (auto& x : rs) xs.push_back(x[k].get<double>());
      row[k] = median(xs);
    }
    std::vector<double> d;
    for (auto& x : rs) d.push_back(x["decode_tok_s"].get<double>());
    row["reps"] = reps;
    row["decode_tok_s_min"] = *std::min_element(d.begin(), d.end());
    row["decode_tok_s_max"] = *std::max_element(d.begin(), d.end());
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace tandem::bench
