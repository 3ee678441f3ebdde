// Clusters of emulated hosts (launch/tandem-hosts: network namespaces joined by TCP, one cluster
// per link rate) for the benchmarks that run configurations across hosts; removed again when the
// object goes. Needs root and network namespaces; `make` says so when they are missing.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "shard/result.h"

namespace tandem::bench {

class EmulatedHosts {
 public:
  explicit EmulatedHosts(std::string prefix) : prefix_(std::move(prefix)) {}
  ~EmulatedHosts();
  EmulatedHosts(const EmulatedHosts&) = delete;
  EmulatedHosts& operator=(const EmulatedHosts&) = delete;

  // One cluster of n hosts per link ("unshaped" or a rate in Gbit/s), named prefix0, prefix1, ...
  Status make(int n, const std::vector<std::string>& links);
  const std::vector<std::pair<std::string, std::string>>& made() const { return made_; }  // (name, link)
  static std::string hostfile(const std::string& name) { return "/run/tandem-hosts/" + name + "/hostfile"; }

 private:
  std::string prefix_;
  std::vector<std::pair<std::string, std::string>> made_;
};

// "unshaped" or a positive decimal rate: the values `--link-gbit` takes.
bool valid_link(const std::string& link);

}  // namespace tandem::bench
