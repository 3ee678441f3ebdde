// `tandem bench decode|scaling|spec`: readable tables on stdout, the same figures as JSON with --json.
#pragma once
#include <CLI/CLI.hpp>

namespace tandem::bench {
void add_bench_commands(CLI::App& app);
// `tandem plan`: layouts ranked by the cost model (bench/cost_model.h).
void add_plan_command(CLI::App& app);
}
