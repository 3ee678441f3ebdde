// Subcommand registration: each `add_*` creates its CLI11 subcommand under `parent` with its
// flags, help text and the callback that runs it. A callback reports failure by throwing
// CLI::RuntimeError(exit_code) after logging the reason.
#pragma once
#include <CLI/CLI.hpp>

namespace tandem::cli {

void add_model_commands(CLI::App& app);  // model synth|info|quantize|tokenize|detokenize|chat|import-tokenizer
void add_model_synth(CLI::App& model);
void add_model_info(CLI::App& model);
void add_model_quantize(CLI::App& model);
void add_model_tokenize(CLI::App& model);  // tokenize and detokenize
void add_model_chat(CLI::App& model);
void add_model_import_tokenizer(CLI::App& model);

void add_generate_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_client_commands(CLI::App& app);

// Throws CLI::RuntimeError(code) — the uniform way a subcommand exits non-zero.
[[noreturn]] void fail(int code = 1);

}  // namespace tandem::cli
