// Synthetic models for the benchmarks, written once into a work directory and reused (the file
// name encodes shape, type, seed and residual scale, so a cached file is always the right one).
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "shard/result.h"
#include "shard/format/synth.h"

namespace tandem::bench {

struct BenchModel {
  std::string target, draft;  // draft empty unless requested
};

// TinyLlama-1.1B's shape unless the options say otherwise. `with_draft` also writes the
// matching shallow draft (o.draft_layers).
Result<BenchModel> ensure_synth(SynthOptions o, const std::string& work_dir, bool with_draft);
// --dim/--layers/--heads/--kv-heads/--ffn on a benchmark subcommand, into o.
void add_shape_options(CLI::App& c, SynthOptions& o);
// "a,b,c" -> {"a", "b", "c"} (empty items dropped).
std::vector<std::string> split_list(const std::string& s);

// The vocabulary synthetic models copy: $TANDEM_VOCAB, else the restored llama-spm vocabulary of
// this build tree, else the shared test data's (which may be damaged).
std::string default_vocab();

}  // namespace tandem::bench
