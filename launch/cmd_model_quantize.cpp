// PLACEHOLDER until implemented.
#include "launch/commands.h"
#include "shard/log.h"

namespace tandem::cli {
void add_model_quantize(CLI::App& parent) {
  auto* c = parent.add_subcommand("quantize", "(not implemented yet)");
  c->callback([] { spdlog::error("'quantize' is not implemented yet"); fail(2); });
}
}  // namespace tandem::cli
