// Hyperparameters of a LLaMA-family decoder, read from GGUF `llama.*` keys or a llama2.c header.
#pragma once
#include <cstdint>
#include <string>

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
  std::string arch = "llama";
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

// Reads and validates `llama.*` keys (also accepts the other LLaMA-shaped architectures llama.cpp
// writes with the same tensor layout, e.g. "mistral"). Shapes are checked for consistency.
Result<ModelConfig> config_from_gguf(const GgufFile& f);
Status validate_config(const ModelConfig& c, const std::string& path);

// Tensor names as llama.cpp's converter writes them.
std::string tensor_name_layer(int layer, const char* what);  // "blk.<layer>.<what>.weight"
inline constexpr const char* kTokenEmbd = "token_embd.weight";
inline constexpr const char* kOutputNorm = "output_norm.weight";
inline constexpr const char* kOutput = "output.weight";

}  // namespace tandem
