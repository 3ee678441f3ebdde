// Synthetic models of any family of the architecture table (llama, qwen2 with its q/k/v biases,
// qwen3 with its q/k norms; tied or untied head): deterministic pseudo-random weights at any shape
// and weight type, with a real tokenizer copied from a vocabulary GGUF, for tests and benchmarks
// at sizes no real test model has. Optionally a draft model: the target's first layers with the same embeddings, head
// and vocabulary, so the pair agrees at a rate `residual_scale` controls.
#pragma once
#include <cstdint>
#include <string>

#include "shard/format/model_config.h"
#include "shard/result.h"
#include "shard/kernels/weight_type.h"

namespace tandem {

// Measured with the default (TinyLlama) shape, Q4_0, a 1-layer draft, teacher-forced over 128
// positions: residual scale 0 / 0.05 / 0.1 / 0.2 / 1 give greedy agreement 1.00 / 0.73 / 0.52 /
// 0.22 / 0.01 and sampled acceptance (sum of min(p, q)) 1.00 / 0.79 / 0.59 / 0.30 / 0.01. The
// default sits where real draft/target pairs do (the stories260K/llama2xs pair agrees ~75%).
inline constexpr float kDefaultResidualScale = 0.05f;

struct SynthOptions {
  std::string out;                        // target GGUF path
  std::string vocab_from;                 // any GGUF with tokenizer.* keys
  std::string arch = "llama";             // general.architecture: an entry of arch.h's table
  WeightType type = WeightType::F32;      // every 2-D weight; norms and biases stay f32
  // TinyLlama-1.1B's shape by default.
  int dim = 2048, n_layers = 22, n_heads = 32, n_kv_heads = 4, ffn_dim = 5632, ctx_len = 2048;
  int head_dim = 0;                       // 0: dim / n_heads (Qwen3 decouples them)
  bool tied = false;                      // no output.weight: the head is token_embd
  uint64_t seed = 1;
  // Multiplies the residual-branch outputs (attn_output, ffn_down) of layers >= draft_layers: 0
  // makes the deep layers no-ops (the draft predicts the target exactly), larger values move the
  // target away from its shallow prefix.
  float residual_scale = kDefaultResidualScale;
  std::string draft_out;                  // also write a draft GGUF when not empty
  int draft_layers = 1;
  int threads = 0;                        // generator threads; 0 = hardware concurrency
};

// The config the options describe (vocabulary size from the vocabulary file), validated.
Result<ModelConfig> synth_config(const SynthOptions& o, int n_vocab);

// Writes o.out (and o.draft_out). Same options => byte-identical files, whatever `threads` is:
// every element is a pure function of (seed, tensor name, element index).
Status write_synth_model(const SynthOptions& o);

}  // namespace tandem
