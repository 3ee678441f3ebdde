// PLACEHOLDER until implemented.
#include "launch/commands.h"
#include "shard/log.h"

namespace tandem::cli {
void add_generate_command(CLI::App& parent) {
  auto* c = parent.add_subcommand("generate", "(not implemented yet)");
  c->callback([] { spdlog::error("'generate' is not implemented yet"); fail(2); });
}
}  // namespace tandem::cli
