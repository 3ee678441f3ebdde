// llama2.c checkpoints (karpathy's legacy "version 0" export, f32): a header of seven int32
// (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative vocab_size
// means an untied classifier follows the weights), then every weight as f32, each kind for all
// layers in turn: token_embedding_table, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final,
// then (in files from export.py) the freq_cis real/imag tables of seq_len * head_size / 2 floats
// each, then wcls when untied.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "shard/format/mapped_file.h"
#include "shard/format/model_config.h"
#include "shard/format/model_file.h"
#include "shard/result.h"

namespace tandem {

struct Llama2cCheckpoint {
  ModelConfig config;   // arch "llama", name = file stem, theta 10000, eps 1e-5 (what run.c uses)
  bool has_freq_cis = false;     // the legacy RoPE tables are present (and ignored)
  bool shared_classifier = true;  // output.weight is token_embd (config.tied_output)
  // Tensors under their GGUF names in ggml dimension order (ne[0] = input dimension), pointing
  // into the map; a shared classifier appears as `output.weight` aliasing token_embd's bytes.
  std::vector<TensorRef> tensors;
};

// Parses and checks a mapped checkpoint: the header must describe a consistent shape, and the
// file size must be exactly what it implies (with or without freq_cis tables / classifier).
Result<Llama2cCheckpoint> read_llama2c(const MappedFile& map);

}  // namespace tandem
