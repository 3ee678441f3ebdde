// Hyperparameters of a LLaMA-family decoder, read from a GGUF's `<arch>.*` keys (the family is
// general.architecture, one of the table in arch.h) or a llama2.c header.
#pragma once
#include <cstdint>
#include <string>

#include "shard/format/arch.h"
#include "shard/format/gguf_reader.h"
#include "shard/result.h"

namespace tandem {

struct RopeScaling {
  enum class Kind { None, Linear, Llama3 } kind = Kind::None;
  float factor = 1.0f;            // linear: positions are divided by factor
  float low_freq_factor = 1.0f;   // llama3
  float high_freq_factor = 4.0f;  // llama3
  int original_ctx = 8192;        // llama3: original training context
};

struct ModelConfig {
  std::string arch = "llama";  // an entry of the architecture table (arch.h)
  std::string name;
  int n_vocab = 0;
  int dim = 0;         // embedding length
  int n_layers = 0;    // block count
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;    // dim / n_heads unless the file says otherwise
  int ffn_dim = 0;     // feed-forward length
  int ctx_len = 0;     // training context length
  int rope_dim = 0;    // rotated dimensions per head (== head_dim for LLaMA)
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  RopeScaling rope_scaling;
  bool tied_output = false;  // no `output.weight`: the head reuses token_embd

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
};

// Reads and validates the `<arch>.*` keys of a supported architecture (an unknown one is an error
// naming it and the supported list). Shapes are checked for consistency.
Result<ModelConfig> config_from_gguf(const GgufFile& f);
Status validate_config(const ModelConfig& c, const std::string& path);

// The table entry of c.arch (validate_config guarantees there is one).
const ArchInfo& arch_of(const ModelConfig& c);

}  // namespace tandem
