#include "bench/bench_commands.h"

namespace tandem::bench {

void add_bench_decode(CLI::App& bench);
void add_bench_run(CLI::App& bench);
void add_bench_scaling(CLI::App& bench);
void add_bench_spec(CLI::App& bench);
void add_bench_calibrate(CLI::App& bench);  // also `bench project` (bench_plan.cpp)
void add_bench_model_check(CLI::App& bench);

void add_bench_commands(CLI::App& app) {
  auto* b = app.add_subcommand("bench", "Benchmarks: single-rank decode, strong scaling across ranks, speculation modes; calibration and projections of the cost model");
  b->require_subcommand(1);
  add_bench_decode(*b);
  add_bench_run(*b);
  add_bench_scaling(*b);
  add_bench_spec(*b);
  add_bench_calibrate(*b);
  add_bench_model_check(*b);
}

}  // namespace tandem::bench
