// PLACEHOLDER until implemented.
#include "bench/bench_commands.h"

#include "shard/log.h"

namespace tandem::bench {
void add_bench_commands(CLI::App& app) {
  auto* c = app.add_subcommand("bench", "(not implemented yet)");
  c->callback([] { spdlog::error("'bench' is not implemented yet"); throw CLI::RuntimeError(2); });
}
}  // namespace tandem::bench
