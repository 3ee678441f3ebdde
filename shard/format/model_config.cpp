#include "shard/format/model_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace tandem {
namespace {

// Ceilings far above any real LLaMA-family model: a value beyond them is a corrupt or foreign file,
// and rejecting it here keeps later size arithmetic (bytes per tensor, KV cache) far from overflow.
constexpr int kMaxVocab = 1 << 22;
constexpr int kMaxDim = 1 << 16;
constexpr int kMaxFfn = 1 << 18;
constexpr int kMaxLayers = 1024;
constexpr int kMaxHeads = 1024;
constexpr int kMaxHeadDim = 1024;
constexpr int kMaxCtx = 1 << 24;

// A double from the file as a float; values beyond float range become NaN, which every caller's
// range check rejects (a plain cast would be undefined behaviour).
float to_float(double x) {
  return std::abs(x) <= std::numeric_limits<float>::max() ? static_cast<float>(x)
                                                          : std::numeric_limits<float>::quiet_NaN();
}

Status read_rope_scaling(const GgufFile& f, const std::string& p, ModelConfig& c) {
  auto& rs = c.rope_scaling;
  if (auto v = f.get_float(p + "rope.scaling.factor")) rs.factor = to_float(*v);
  if (auto v = f.get_int(p + "rope.scaling.original_context_length")) {
    if (*v <= 0 || *v > kMaxCtx)
      return make_error("{}: {}rope.scaling.original_context_length = {} is out of range", f.path, p, *v);
    rs.original_ctx = static_cast<int>(*v);
  }
  if (auto v = f.get_float(p + "rope.scaling.low_freq_factor")) rs.low_freq_factor = to_float(*v);
  if (auto v = f.get_float(p + "rope.scaling.high_freq_factor")) rs.high_freq_factor = to_float(*v);

  std::string type = f.get_string(p + "rope.scaling.type").value_or("");
  if (type.empty()) {
    if (auto lin = f.get_float(p + "rope.scale_linear")) {  // the key before rope.scaling.* existed
      type = "linear";
      rs.factor = to_float(*lin);
    } else if (f.find(p + "rope.scaling.factor") && f.find(p + "rope.scaling.low_freq_factor")) {
      type = "llama3";
    } else {
      type = "none";
    }
  }
  if (!(rs.factor > 0 && std::isfinite(rs.factor)))
    return make_error("{}: rope scaling factor {} must be positive", f.path, rs.factor);

  if (type == "none") {
    rs.kind = RopeScaling::Kind::None;
  } else if (type == "linear") {
    rs.kind = rs.factor == 1.0f ? RopeScaling::Kind::None : RopeScaling::Kind::Linear;
  } else if (type == "llama3") {
    rs.kind = RopeScaling::Kind::Llama3;
    if (!(rs.high_freq_factor > rs.low_freq_factor && rs.low_freq_factor > 0) || rs.original_ctx <= 0)
      return make_error("{}: llama3 rope scaling needs 0 < low_freq_factor < high_freq_factor and a positive "
                        "original context length (got {}, {}, {})",
                        f.path, rs.low_freq_factor, rs.high_freq_factor, rs.original_ctx);
  } else {
    return make_error("{}: rope scaling type '{}' is not supported (tandem supports none, linear, llama3)", f.path,
                      type);
  }
  return ok_status();
}

}  // namespace

const ArchInfo& arch_of(const ModelConfig& c) {
  const ArchInfo* a = find_arch(c.arch);
  return a ? *a : supported_archs().front();
}

Result<ModelConfig> config_from_gguf(const GgufFile& f) {
  ModelConfig c;
  auto arch = f.get_string("general.architecture");
  if (!arch) return make_error("{}: missing general.architecture", f.path);
  const ArchInfo* family = find_arch(*arch);
  if (!family)
    return make_error("{}: architecture '{}' is not supported (tandem runs: {})", f.path, *arch,
                      supported_arch_list());
  c.arch = std::string(family->name);
  c.name = f.get_string("general.name").value_or("");
  const std::string p = c.arch + ".";

  // Every integer key goes through here so a negative or absurd value is named, not truncated.
  auto get_dim = [&](const std::string& key, std::optional<int64_t> fallback, int64_t max) -> Result<int> {
    auto v = f.get_int(p + key);
    if (!v) {
      if (f.find(p + key)) return make_error("{}: {}{} is not an integer", f.path, p, key);
      if (!fallback) return make_error("{}: missing {}{}", f.path, p, key);
      v = fallback;
    }
    if (*v <= 0 || *v > max) return make_error("{}: {}{} = {} is out of range (1..{})", f.path, p, key, *v, max);
    return static_cast<int>(*v);
  };
#define TANDEM_GET(field, key, fallback, max)      \
  do {                                             \
    auto _v = get_dim(key, fallback, max);         \
    if (!_v) return _v.error();                    \
    c.field = *_v;                                 \
  } while (0)

  TANDEM_GET(dim, "embedding_length", std::nullopt, kMaxDim);
  TANDEM_GET(n_layers, "block_count", std::nullopt, kMaxLayers);
  TANDEM_GET(ffn_dim, "feed_forward_length", std::nullopt, kMaxFfn);
  TANDEM_GET(n_heads, "attention.head_count", std::nullopt, kMaxHeads);
  TANDEM_GET(n_kv_heads, "attention.head_count_kv", c.n_heads, kMaxHeads);
  TANDEM_GET(ctx_len, "context_length", std::nullopt, kMaxCtx);

  if (f.find(p + "attention.key_length")) {
    TANDEM_GET(head_dim, "attention.key_length", std::nullopt, kMaxHeadDim);
    if (auto vl = f.get_int(p + "attention.value_length"); vl && *vl != c.head_dim)
      return make_error("{}: attention.value_length {} differs from key_length {} (not supported)", f.path, *vl,
                        c.head_dim);
  } else {
    if (c.dim % c.n_heads != 0)
      return make_error("{}: embedding_length {} is not divisible by head_count {}", f.path, c.dim, c.n_heads);
    c.head_dim = c.dim / c.n_heads;
  }
  TANDEM_GET(rope_dim, "rope.dimension_count", c.head_dim, kMaxHeadDim);

  std::optional<int64_t> vocab_fallback;
  if (const auto* tok = f.find("tokenizer.ggml.tokens"); tok && tok->as_array())
    vocab_fallback = static_cast<int64_t>(tok->as_array()->items.size());
  else if (const auto* emb = f.find_tensor(kTokenEmbd); emb && emb->ne.size() == 2)
    vocab_fallback = emb->ne[1];
  TANDEM_GET(n_vocab, "vocab_size", vocab_fallback, kMaxVocab);
#undef TANDEM_GET

  if (const auto* v = f.find(p + "rope.freq_base")) {
    auto x = v->as_float();
    if (!x) return make_error("{}: {}rope.freq_base is not a number", f.path, p);
    c.rope_theta = to_float(*x);
  }
  if (const auto* v = f.find(p + "attention.layer_norm_rms_epsilon")) {
    auto x = v->as_float();
    if (!x) return make_error("{}: {}attention.layer_norm_rms_epsilon is not a number", f.path, p);
    c.rms_eps = to_float(*x);
  }
  TANDEM_TRY(read_rope_scaling(f, p, c));
  c.tied_output = f.find_tensor(kOutput) == nullptr;
  TANDEM_TRY(validate_config(c, f.path));
  return c;
}

Status validate_config(const ModelConfig& c, const std::string& path) {
  if (!find_arch(c.arch))
    return make_error("{}: architecture '{}' is not supported (tandem runs: {})", path, c.arch, supported_arch_list());
  auto range = [&](const char* what, int64_t v, int64_t lo, int64_t hi) -> Status {
    if (v < lo || v > hi) return make_error("{}: {} = {} is out of range ({}..{})", path, what, v, lo, hi);
    return ok_status();
  };
  TANDEM_TRY(range("vocabulary size", c.n_vocab, 1, kMaxVocab));
  TANDEM_TRY(range("embedding length", c.dim, 1, kMaxDim));
  TANDEM_TRY(range("block count", c.n_layers, 1, kMaxLayers));
  TANDEM_TRY(range("head count", c.n_heads, 1, kMaxHeads));
  TANDEM_TRY(range("KV head count", c.n_kv_heads, 1, c.n_heads));
  TANDEM_TRY(range("head dimension", c.head_dim, 2, kMaxHeadDim));
  TANDEM_TRY(range("feed-forward length", c.ffn_dim, 1, kMaxFfn));
  TANDEM_TRY(range("context length", c.ctx_len, 1, kMaxCtx));
  TANDEM_TRY(range("rope dimension", c.rope_dim, 2, c.head_dim));
  if (c.n_heads % c.n_kv_heads != 0)
    return make_error("{}: head count {} is not a multiple of the KV head count {}", path, c.n_heads, c.n_kv_heads);
  if (c.head_dim % 2 != 0 || c.rope_dim % 2 != 0)
    return make_error("{}: head dimension {} and rope dimension {} must be even (RoPE rotates pairs)", path,
                      c.head_dim, c.rope_dim);
  if (static_cast<int64_t>(c.n_heads) * c.head_dim > int64_t{4} * c.dim)
    return make_error("{}: {} heads of dimension {} do not fit an embedding length of {}", path, c.n_heads,
                      c.head_dim, c.dim);
  if (!(c.rope_theta > 0 && std::isfinite(c.rope_theta)))
    return make_error("{}: rope frequency base {} must be positive", path, c.rope_theta);
  if (!(c.rms_eps > 0 && c.rms_eps < 1))
    return make_error("{}: RMSNorm epsilon {} must be in (0, 1)", path, c.rms_eps);
  return ok_status();
}

}  // namespace tandem
