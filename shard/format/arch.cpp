#include "shard/format/arch.h"

#include <fmt/format.h>

#include "shard/format/model_config.h"

namespace tandem {
namespace {

// What llama.cpp reads for each family: the RoPE pairing is llama_model_rope_type's (llama:
// NORM; qwen2, qwen3: NEOX); q/k norms are what src/models/qwen3.cpp creates as required;
// rope_freqs only the llama loader creates (the qwen loaders would refuse the file). q/k/v
// biases are optional everywhere; `qkv_bias` says the family's checkpoints have them (Qwen2's
// q/k/v projections are trained with biases, Llama's and Qwen3's without).
constexpr ArchInfo kArchs[] = {
    // name     rope                 qkv_bias qk_norm rope_freqs
    {"llama", RopeStyle::Adjacent, false, false, true},
    // llama.cpp's converter writes Mistral checkpoints as "llama"; a file that says "mistral"
    // has the same layout and keys.
    {"mistral", RopeStyle::Adjacent, false, false, true},
    {"qwen2", RopeStyle::Neox, true, false, false},
    {"qwen3", RopeStyle::Neox, false, true, false},
};

}  // namespace

std::string_view rope_style_name(RopeStyle s) { return s == RopeStyle::Neox ? "neox" : "norm"; }

std::span<const ArchInfo> supported_archs() { return kArchs; }

const ArchInfo* find_arch(std::string_view name) {
  for (const ArchInfo& a : kArchs)
    if (a.name == name) return &a;
  return nullptr;
}

std::string supported_arch_list() {
  std::string s;
  for (const ArchInfo& a : kArchs) s += fmt::format("{}{}", s.empty() ? "" : ", ", a.name);
  return s;
}

std::string tensor_name_layer(int layer, const char* what) { return fmt::format("blk.{}.{}.weight", layer, what); }
std::string tensor_bias_layer(int layer, const char* what) { return fmt::format("blk.{}.{}.bias", layer, what); }

std::vector<TensorSpec> model_tensors(const ModelConfig& c) {
  const ArchInfo* a = find_arch(c.arch);
  const int64_t d = c.dim, q = c.q_dim(), kv = c.kv_dim(), f = c.ffn_dim, V = c.n_vocab, hd = c.head_dim;
  std::vector<TensorSpec> v;
  v.push_back({kTokenEmbd, "token_embd", -1, false, d, V, true, true});
  v.push_back({kOutputNorm, "output_norm", -1, false, d, 1, false, true});
  v.push_back({kOutput, "output", -1, false, d, V, true, false});  // absent: tied to token_embd
  if (a && a->rope_freqs) v.push_back({kRopeFreqs, "rope_freqs", -1, false, c.rope_dim / 2, 1, false, false});
  for (int l = 0; l < c.n_layers; ++l) {
    auto matrix = [&](const char* what, int64_t cols, int64_t rows) {
      v.push_back({tensor_name_layer(l, what), what, l, false, cols, rows, true, true});
    };
    auto vec = [&](const char* what, int64_t n, bool required) {
      v.push_back({tensor_name_layer(l, what), what, l, false, n, 1, false, required});
    };
    auto bias = [&](const char* what, int64_t n) {
      v.push_back({tensor_bias_layer(l, what), what, l, true, n, 1, false, false});
    };
    matrix("attn_q", d, q);
    bias("attn_q", q);
    matrix("attn_k", d, kv);
    bias("attn_k", kv);
    matrix("attn_v", d, kv);
    bias("attn_v", kv);
    matrix("attn_output", q, d);
    if (a && a->qk_norm) {
      vec("attn_q_norm", hd, true);
      vec("attn_k_norm", hd, true);
    }
    vec("attn_norm", d, true);
    matrix("ffn_gate", d, f);
    matrix("ffn_down", f, d);
    matrix("ffn_up", d, f);
    vec("ffn_norm", d, true);
  }
  return v;
}

}  // namespace tandem
