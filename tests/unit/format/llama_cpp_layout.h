// GGUF files laid out exactly as llama.cpp's convert_hf_to_gguf.py writes a Qwen2 or Qwen3
// checkpoint (at a small shape, with random weights), written independently of tandem's synth:
// the keys TextModel.set_gguf_parameters writes (conversion/base.py) — no vocab_size and no
// rope.dimension_count, key_length/value_length only where config.json has head_dim (Qwen3) —
// the tensor names gguf-py's TensorNameMap gives the HF names, q/k/v biases (Qwen2's
// q_proj/k_proj/v_proj have bias=True), q_norm/k_norm (Qwen3), no output.weight when
// tie_word_embeddings, 2-D weights as F16 and 1-D ones as F32 (--outtype f16), and a gpt2-style
// tokenizer with tokenizer.ggml.pre and a chat template.
#pragma once
#include <string>
#include <vector>

#include "shard/result.h"

namespace tandem::test {

struct LlamaCppLayout {
  std::string arch = "qwen2";  // "qwen2" | "qwen3"
  int dim = 64, layers = 2, heads = 4, kv_heads = 2, head_dim = 0, ffn = 128;  // head_dim 0: dim / heads
  bool tied = true;
  float rope_theta = 1000000.0f, rms_eps = 1e-6f;
  std::string pre = "qwen2";  // tokenizer.ggml.pre
  // Tensors to leave out or add (by name, with shape), for the refusal tests.
  std::vector<std::string> drop;
  std::vector<std::pair<std::string, std::vector<int64_t>>> extra;
  std::string tag;  // distinguishes variants in the file name
};

// Writes (once per options) into TANDEM_TEST_WORK and returns the path.
Result<std::string> write_llama_cpp_layout(const LlamaCppLayout& o);

}  // namespace tandem::test
