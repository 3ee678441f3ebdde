// PLACEHOLDER until implemented.
#include "launch/commands.h"
#include "shard/log.h"

namespace tandem::cli {
void add_client_commands(CLI::App& parent) {
  auto* c = parent.add_subcommand("client", "(not implemented yet)");
  c->callback([] { spdlog::error("'client' is not implemented yet"); fail(2); });
}
}  // namespace tandem::cli
