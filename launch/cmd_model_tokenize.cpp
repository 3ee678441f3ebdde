// PLACEHOLDER until implemented.
#include "launch/commands.h"
#include "shard/log.h"

namespace tandem::cli {
void add_model_tokenize(CLI::App& parent) {
  auto* c = parent.add_subcommand("tokenize", "(not implemented yet)");
  c->callback([] { spdlog::error("'tokenize' is not implemented yet"); fail(2); });
}
}  // namespace tandem::cli
