// The strong-scaling and speculation benchmarks compare layouts with different rank counts in
// one invocation: each configuration runs as its own MPI job (`tandem-mpirun bench run …`) and
// reports one JSON line; configurations are interleaved repetition by repetition.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "bench/bench_report.h"
#include "shard/result.h"

namespace tandem::bench {

struct Config {
  std::string name;               // row label
  std::vector<std::string> args;  // after `bench run`
  Json tags;                      // merged into the row
  // Across emulated hosts: the cluster (`tandem-hosts --name`) the job runs in; "" = this host.
  std::string hosts_cluster;
};

// The directory of the running tandem binary (tandem-mpirun and tandem-hosts live beside it).
std::string bin_dir();

// Runs one configuration; returns its BENCH_JSON object.
Result<Json> run_config(const Config& c, int timeout_s = 900);
// Runs every configuration `reps` times, interleaved; per configuration the median of each
// numeric field (the first repetition's other fields), with "reps" and the spread of decode_tok_s.
// `after_rep` (when given) runs after each repetition, e.g. a calibration probe taken beside the runs.
Result<std::vector<Json>> run_interleaved(const std::vector<Config>& configs, int reps,
                                          const std::function<Status(int rep)>& after_rep = {});

}  // namespace tandem::bench
