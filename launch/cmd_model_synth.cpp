// PLACEHOLDER until implemented.
#include "launch/commands.h"
#include "shard/log.h"

namespace tandem::cli {
void add_model_synth(CLI::App& parent) {
  auto* c = parent.add_subcommand("synth", "(not implemented yet)");
  c->callback([] { spdlog::error("'synth' is not implemented yet"); fail(2); });
}
}  // namespace tandem::cli
