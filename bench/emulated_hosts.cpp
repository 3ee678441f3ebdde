#include "bench/emulated_hosts.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>

#include "bench/bench_driver.h"
#include "shard/log.h"

namespace tandem::bench {

bool valid_link(const std::string& link) {
  if (link == "unshaped") return true;
  if (link.empty() || std::count(link.begin(), link.end(), '.') > 1) return false;
  if (!std::all_of(link.begin(), link.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.'; }))
    return false;
  return std::strtod(link.c_str(), nullptr) > 0;
}

EmulatedHosts::~EmulatedHosts() {
  for (const auto& [name, link] : made_) {
    const std::string cmd = fmt::format("'{}/tandem-hosts' --name {} destroy >/dev/null 2>&1", bin_dir(), name);
    if (std::system(cmd.c_str()) != 0) spdlog::warn("could not remove emulated hosts '{}'", name);
  }
}

Status EmulatedHosts::make(int n, const std::vector<std::string>& links) {
  for (size_t i = 0; i < links.size(); ++i) {
    const std::string name = fmt::format("{}{}", prefix_, i), link = links[i];
    if (!valid_link(link)) return make_error("--link-gbit: '{}' is neither a rate in Gbit/s nor 'unshaped'", link);
    const std::string cmd = fmt::format("'{}/tandem-hosts' --name {} create {}{} 2>&1", bin_dir(), name, n,
                                        link == "unshaped" ? "" : " --link-gbit " + link);
    spdlog::info("emulated hosts: {}", cmd);
    if (std::system(cmd.c_str()) != 0)
      return make_error("could not make {} emulated hosts (needs root and network namespaces): {}", n, cmd);
    made_.emplace_back(name, link);
  }
  return ok_status();
}

}  // namespace tandem::bench
