// `tandem bench decode|scaling|spec`: readable tables on stdout, the same figures as JSON with --json.
#pragma once
#include <CLI/CLI.hpp>

namespace tandem::bench {
void add_bench_commands(CLI::App& app);
}
