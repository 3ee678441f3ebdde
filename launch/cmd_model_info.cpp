// PLACEHOLDER until implemented.
#include "launch/commands.h"
#include "shard/log.h"

namespace tandem::cli {
void add_model_info(CLI::App& parent) {
  auto* c = parent.add_subcommand("info", "(not implemented yet)");
  c->callback([] { spdlog::error("'info' is not implemented yet"); fail(2); });
}
}  // namespace tandem::cli
