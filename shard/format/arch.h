// The model families tandem runs, named and read as llama.cpp names and reads them:
// general.architecture (llama-arch.cpp), the `<arch>.*` hyperparameter keys (the same key names
// for every family here), the tensor names llama.cpp's converter writes (gguf-py TENSOR_NAMES),
// which of them each family's loader takes (src/models/<arch>.cpp) and how RoPE pairs dimensions
// (llama_model_rope_type). Another family is an entry in the table (arch.cpp) plus whatever it
// computes that is new.
//
// Every family here: token_embd, output_norm, an optional output head (absent = tied to
// token_embd), per layer attn_norm, attn_q/k/v (each with an optional bias, applied when present,
// as llama.cpp's create_tensor_qkv does for all of them), attn_output, ffn_norm and the SwiGLU
// ffn_gate/up/down. A tensor the family does not have makes the file an error (llama.cpp refuses
// it too: "wrong number of tensors"), never a silently different model.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

struct ModelConfig;  // shard/format/model_config.h

// Which dimensions of a head RoPE rotates together.
enum class RopeStyle : uint8_t {
  Adjacent,  // (2i, 2i+1): llama.cpp's LLAMA_ROPE_TYPE_NORM (its llama converter permutes q/k to it)
  Neox,      // (i, i + rope_dim/2): LLAMA_ROPE_TYPE_NEOX, HF's rotate_half on q/k as trained
};
std::string_view rope_style_name(RopeStyle s);  // "norm" | "neox", as llama.cpp prints rope type

struct ArchInfo {
  std::string_view name;  // general.architecture, also the prefix of the family's keys
  RopeStyle rope;
  bool qkv_bias;    // the family's checkpoints carry q/k/v biases (the converter writes them, synth too)
  bool qk_norm;     // attn_q_norm / attn_k_norm (head_dim each, required): RMSNorm of every q and k head before RoPE
  bool rope_freqs;  // rope_freqs.weight (Llama 3.1 frequency factors) is read when present
};

std::span<const ArchInfo> supported_archs();
const ArchInfo* find_arch(std::string_view name);  // nullptr when tandem does not run it
std::string supported_arch_list();                 // "llama, mistral, qwen2, qwen3"

// Tensor names as llama.cpp's converter writes them.
inline constexpr const char* kTokenEmbd = "token_embd.weight";
inline constexpr const char* kOutputNorm = "output_norm.weight";
inline constexpr const char* kOutput = "output.weight";
inline constexpr const char* kRopeFreqs = "rope_freqs.weight";
std::string tensor_name_layer(int layer, const char* what);  // "blk.<layer>.<what>.weight"
std::string tensor_bias_layer(int layer, const char* what);  // "blk.<layer>.<what>.bias"

// One tensor a model of some config may hold, with the shape the config implies.
struct TensorSpec {
  std::string name;
  std::string_view what;  // "attn_q", "ffn_norm", "token_embd", ...; with `bias`, the layer it biases
  int layer = -1;         // -1 for the model-level tensors
  bool bias = false;
  int64_t cols = 0, rows = 1;  // ggml ne[0], ne[1]; rows 1 for vectors
  bool matrix = false;         // a 2-D weight (stored quantized); else a norm, bias or factor vector
  bool required = true;
};

// Every tensor a model of `c`'s family and shape may hold, required and optional (the output
// head, biases, rope_freqs), model-level ones first, then layer by layer. `c.arch` must be in the
// table.
std::vector<TensorSpec> model_tensors(const ModelConfig& c);

}  // namespace tandem
