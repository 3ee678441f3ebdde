// tandem: one binary, CLI11 subcommands. MPI is initialised only by the subcommands that run a
// model across ranks (generate, serve, bench), so `tandem model ...` works without mpirun.
#include <CLI/CLI.hpp>

#include "bench/bench_commands.h"
#include "launch/commands.h"
#include "shard/log.h"

namespace tandem::cli {
void fail(int code) { throw CLI::RuntimeError(code); }

void add_model_commands(CLI::App& app) {
  auto* model = app.add_subcommand("model", "Inspect, create, convert and tokenize model files");
  model->require_subcommand(1);
  add_model_synth(*model);
  add_model_info(*model);
  add_model_quantize(*model);
  add_model_tokenize(*model);
  add_model_chat(*model);
  add_model_import_tokenizer(*model);
}
}  // namespace tandem::cli

int main(int argc, char** argv) {
  tandem::init_logging(-1);
  CLI::App app{"tandem: LLaMA-family inference across the ranks of an MPI job"};
  app.set_version_flag("--version", "tandem 0.1.0");
  app.require_subcommand(1);
  tandem::cli::add_model_commands(app);
  tandem::cli::add_generate_command(app);
  tandem::cli::add_serve_command(app);
  tandem::cli::add_client_commands(app);
  tandem::bench::add_bench_commands(app);
  tandem::bench::add_plan_command(app);
  CLI11_PARSE(app, argc, argv);
  return 0;
}
