#include "tests/unit/format/llama_cpp_layout.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "shard/format/gguf_writer.h"
#include "shard/kernels/quant.h"

namespace tandem::test {
namespace {

// Qwen2.5's chat template, abridged (only its presence and text matter here).
constexpr const char* kChatTemplate =
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

struct Tensor {
  std::string name;
  std::vector<int64_t> ne;
  float mean, stddev;
};

// A deterministic approximately-normal value per (tensor, index).
float value(uint64_t key, uint64_t i, float mean, float stddev) {
  uint64_t z = key * 0x9e3779b97f4a7c15ull + i * 0xbf58476d1ce4e5b9ull + 1;
  float s = 0;
  for (int k = 0; k < 4; ++k) {
    z ^= z >> 31, z *= 0x94d049bb133111ebull, z ^= z >> 29;
    s += static_cast<float>(z >> 40) / static_cast<float>(1ull << 24);
  }
  return mean + stddev * (s - 2.0f) * 1.7320508f;
}

}  // namespace

Result<std::string> write_llama_cpp_layout(const LlamaCppLayout& o) {
  const bool qwen3 = o.arch == "qwen3";
  const int hd = o.head_dim > 0 ? o.head_dim : o.dim / o.heads;
  const int64_t d = o.dim, q = int64_t{o.heads} * hd, kv = int64_t{o.kv_heads} * hd, f = o.ffn;
  const std::string path =
      fmt::format("{}/lcpp_{}_{}_d{}_l{}_h{}_kv{}_hd{}_f{}_{}_{}_{}_{}.gguf", TANDEM_TEST_WORK, o.arch, o.tag, o.dim,
                  o.layers, o.heads, o.kv_heads, o.head_dim, o.ffn, o.tied ? "tied" : "untied", o.rope_theta,
                  o.rms_eps, o.pre);
  if (std::filesystem::exists(path)) return path;

  auto vocab = open_gguf(std::string(TANDEM_VOCAB_DIR) + "/ggml-vocab-gpt-2.gguf");
  if (!vocab) return vocab.error();
  const int64_t V = static_cast<int64_t>(vocab->get_strings("tokenizer.ggml.tokens").size());

  // TextModel.set_gguf_parameters for Qwen2ForCausalLM / Qwen3ForCausalLM config.json keys.
  const std::string p = o.arch + ".";
  std::vector<std::pair<std::string, GgufValue>> md = {
      {"general.architecture", gguf_str(o.arch)},
      {"general.type", gguf_str("model")},
      {"general.name", gguf_str(qwen3 ? "Qwen3 Tiny" : "Qwen2.5 Tiny Instruct")},
      {"general.size_label", gguf_str("tiny")},
      {p + "block_count", gguf_u32(o.layers)},
      {p + "context_length", gguf_u32(32768)},
      {p + "embedding_length", gguf_u32(o.dim)},
      {p + "feed_forward_length", gguf_u32(o.ffn)},
      {p + "attention.head_count", gguf_u32(o.heads)},
      {p + "attention.head_count_kv", gguf_u32(o.kv_heads)},
      {p + "rope.freq_base", gguf_f32(o.rope_theta)},
      {p + "attention.layer_norm_rms_epsilon", gguf_f32(o.rms_eps)},
  };
  if (qwen3) {  // config.json has head_dim
    md.emplace_back(p + "attention.key_length", gguf_u32(hd));
    md.emplace_back(p + "attention.value_length", gguf_u32(hd));
  }
  md.emplace_back("general.file_type", gguf_u32(1));  // LLAMA_FTYPE_MOSTLY_F16
  md.emplace_back("general.quantization_version", gguf_u32(2));
  for (const auto& [k, v] : vocab->metadata)
    if (k.rfind("tokenizer.", 0) == 0 && k != "tokenizer.ggml.pre") md.emplace_back(k, v);
  md.emplace_back("tokenizer.ggml.pre", gguf_str(o.pre));
  md.emplace_back("tokenizer.chat_template", gguf_str(kChatTemplate));

  // HF tensor order (safetensors keys sorted), under the names gguf-py maps them to.
  const float emb_std = 0.3f;
  std::vector<Tensor> ts;
  if (!o.tied) ts.push_back({"output.weight", {d, V}, 0.0f, 5.0f / std::sqrt(float(d))});  // lm_head.weight
  ts.push_back({"token_embd.weight", {d, V}, 0.0f, o.tied ? 5.0f / std::sqrt(float(d)) : emb_std});
  for (int l = 0; l < o.layers; ++l) {
    auto n = [&](const char* what, const char* kind) { return fmt::format("blk.{}.{}.{}", l, what, kind); };
    const float wd = 1.0f / std::sqrt(float(d)), wf = 1.0f / std::sqrt(float(f)), wq = 1.0f / std::sqrt(float(q));
    ts.push_back({n("attn_norm", "weight"), {d}, 1.0f, 0.05f});          // input_layernorm
    ts.push_back({n("ffn_down", "weight"), {f, d}, 0.0f, wf});           // mlp.down_proj
    ts.push_back({n("ffn_gate", "weight"), {d, f}, 0.0f, wd});           // mlp.gate_proj
    ts.push_back({n("ffn_up", "weight"), {d, f}, 0.0f, wd});             // mlp.up_proj
    ts.push_back({n("ffn_norm", "weight"), {d}, 1.0f, 0.05f});           // post_attention_layernorm
    if (!qwen3) ts.push_back({n("attn_k", "bias"), {kv}, 0.0f, 0.3f});   // self_attn.k_proj.bias
    ts.push_back({n("attn_k", "weight"), {d, kv}, 0.0f, wd});            // self_attn.k_proj.weight
    if (qwen3) ts.push_back({n("attn_k_norm", "weight"), {hd}, 1.0f, 0.2f});  // self_attn.k_norm
    ts.push_back({n("attn_output", "weight"), {q, d}, 0.0f, wq});        // self_attn.o_proj
    if (!qwen3) ts.push_back({n("attn_q", "bias"), {q}, 0.0f, 0.3f});
    ts.push_back({n("attn_q", "weight"), {d, q}, 0.0f, wd});
    if (qwen3) ts.push_back({n("attn_q_norm", "weight"), {hd}, 1.0f, 0.2f});
    if (!qwen3) ts.push_back({n("attn_v", "bias"), {kv}, 0.0f, 0.3f});
    ts.push_back({n("attn_v", "weight"), {d, kv}, 0.0f, wd});
  }
  ts.push_back({"output_norm.weight", {d}, 1.0f, 0.05f});  // model.norm
  std::erase_if(ts, [&](const Tensor& t) { return std::find(o.drop.begin(), o.drop.end(), t.name) != o.drop.end(); });
  for (const auto& [name, ne] : o.extra) ts.push_back({name, ne, 0.0f, 0.1f});

  std::vector<TensorToWrite> out;
  uint64_t key = 0;
  for (const Tensor& t : ts) {
    const WeightType type = t.ne.size() >= 2 ? WeightType::F16 : WeightType::F32;
    out.push_back({t.name, type, t.ne, [t, type, k = ++key](uint8_t* dst) {
                     const int64_t cols = t.ne[0], rows = t.ne.size() > 1 ? t.ne[1] : 1;
                     std::vector<float> row(cols);
                     for (int64_t r = 0; r < rows; ++r) {
                       for (int64_t i = 0; i < cols; ++i) row[i] = value(k, r * cols + i, t.mean, t.stddev);
                       quantize_row(type, row.data(), dst + r * row_bytes(type, cols), cols);
                     }
                   }});
  }
  const std::string tmp = fmt::format("{}.tmp{}", path, getpid());
  auto st = write_gguf(tmp, md, out);
  if (!st) return st.error();
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error("cannot rename {} to {}: {}", tmp, path, ec.message());
  return path;
}

}  // namespace tandem::test
