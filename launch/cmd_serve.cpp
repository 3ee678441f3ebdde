// PLACEHOLDER until implemented.
#include "launch/commands.h"
#include "shard/log.h"

namespace tandem::cli {
void add_serve_command(CLI::App& parent) {
  auto* c = parent.add_subcommand("serve", "(not implemented yet)");
  c->callback([] { spdlog::error("'serve' is not implemented yet"); fail(2); });
}
}  // namespace tandem::cli
