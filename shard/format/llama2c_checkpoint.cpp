#include "shard/format/llama2c_checkpoint.h"

#include <cstring>
#include <filesystem>
#include <unordered_map>

namespace tandem {
namespace {

constexpr size_t kHeaderBytes = 7 * sizeof(int32_t);
constexpr uint32_t kVersionedMagic = 0x616b3432;  // "ak42": llama2.c's export.py version >= 1

}  // namespace

Result<Llama2cCheckpoint> read_llama2c(const MappedFile& map) {
  const std::string& path = map.path;
  if (map.size < kHeaderBytes)
    return make_error("{}: truncated llama2.c checkpoint: {} bytes, the header alone needs {}", path, map.size,
                      kHeaderBytes);
  int32_t h[7];
  std::memcpy(h, map.data, sizeof(h));
  if (static_cast<uint32_t>(h[0]) == kVersionedMagic)
    return make_error("{}: llama2.c export version {} (\"ak42\" header) is not supported; export with "
                      "--version 0 (legacy f32) or convert to GGUF",
                      path, h[1]);
  const int32_t dim = h[0], hidden = h[1], n_layers = h[2], n_heads = h[3], n_kv_heads = h[4], seq_len = h[6];
  const int32_t vocab_signed = h[5];
  if (dim <= 0 || hidden <= 0 || n_layers <= 0 || n_heads <= 0 || n_kv_heads <= 0 || vocab_signed == 0 ||
      vocab_signed == INT32_MIN || seq_len <= 0)
    return make_error("{}: not a GGUF file, and not a valid llama2.c checkpoint: header (dim {}, hidden_dim {}, "
                      "layers {}, heads {}, kv_heads {}, vocab {}, seq_len {}) has non-positive sizes",
                      path, dim, hidden, n_layers, n_heads, n_kv_heads, vocab_signed, seq_len);

  Llama2cCheckpoint ck;
  ModelConfig& c = ck.config;
  c.arch = "llama";
  c.name = std::filesystem::path(path).stem().string();
  c.dim = dim;
  c.ffn_dim = hidden;
  c.n_layers = n_layers;
  c.n_heads = n_heads;
  c.n_kv_heads = n_kv_heads;
  c.n_vocab = vocab_signed < 0 ? -vocab_signed : vocab_signed;
  c.ctx_len = seq_len;
  ck.shared_classifier = vocab_signed > 0;
  c.tied_output = ck.shared_classifier;
  if (dim % n_heads != 0)
    return make_error("{}: llama2.c header: dim {} is not divisible by n_heads {}", path, dim, n_heads);
  c.head_dim = dim / n_heads;
  c.rope_dim = c.head_dim;
  if (auto st = validate_config(c, path); !st)
    return make_error("{} (read as a llama2.c checkpoint header: the file has no GGUF magic)", st.error().message);

  // validate_config bounds every factor, so these products cannot overflow 64 bits.
  const uint64_t d = dim, f = hidden, L = n_layers, V = c.n_vocab, kv = uint64_t(n_kv_heads) * c.head_dim;
  struct Part {
    const char* what;  // GGUF tensor stem ("" for a global tensor)
    uint64_t cols, rows;
    bool per_layer;
  };
  // karpathy's order; ne[0] (cols) is PyTorch's in_features.
  const Part parts[] = {
      {"token_embd", d, V, false},  {"attn_norm", d, 1, true},   {"attn_q", d, d, true},
      {"attn_k", d, kv, true},      {"attn_v", d, kv, true},     {"attn_output", d, d, true},
      {"ffn_norm", d, 1, true},     {"ffn_gate", d, f, true},    {"ffn_down", f, d, true},
      {"ffn_up", d, f, true},       {"output_norm", d, 1, false},
  };
  uint64_t weight_floats = 0;
  for (const auto& p : parts) weight_floats += p.cols * p.rows * (p.per_layer ? L : 1);
  const uint64_t freq_floats = uint64_t(seq_len) * (c.head_dim / 2) * 2;
  const uint64_t cls_floats = ck.shared_classifier ? 0 : V * d;
  const uint64_t base = kHeaderBytes + (weight_floats + cls_floats) * 4;
  if (map.size == base + freq_floats * 4) {
    ck.has_freq_cis = true;
  } else if (map.size == base) {
    ck.has_freq_cis = false;
  } else {
    const char* kind = map.size < base                     ? "truncated llama2.c checkpoint"
                       : map.size > base + freq_floats * 4 ? "llama2.c checkpoint has trailing bytes"
                                                           : "llama2.c checkpoint is truncated or does not match its header";
    return make_error("{}: {}: the header (dim {}, hidden_dim {}, layers {}, heads {}, kv_heads {}, vocab {}{}, "
                      "seq_len {}) implies {} bytes ({} with the freq_cis tables), the file has {}",
                      path, kind, dim, hidden, n_layers, n_heads, n_kv_heads, c.n_vocab,
                      ck.shared_classifier ? "" : " + classifier", seq_len, base, base + freq_floats * 4, map.size);
  }

  const uint8_t* p = map.data + kHeaderBytes;
  auto add = [&](std::string name, uint64_t cols, uint64_t rows) {
    TensorRef t;
    t.name = std::move(name);
    t.type = WeightType::F32;
    t.ne = rows == 1 ? std::vector<int64_t>{int64_t(cols)} : std::vector<int64_t>{int64_t(cols), int64_t(rows)};
    t.data = p;
    t.nbytes = cols * rows * 4;
    p += t.nbytes;
    ck.tensors.push_back(std::move(t));
  };
  for (const auto& part : parts) {
    if (!part.per_layer) {
      add(std::string(part.what) + ".weight", part.cols, part.rows);
      continue;
    }
    for (int l = 0; l < n_layers; ++l) add(tensor_name_layer(l, part.what), part.cols, part.rows);
  }
  if (ck.has_freq_cis) p += freq_floats * 4;
  if (ck.shared_classifier) {
    TensorRef head = ck.tensors.front();  // token_embd
    head.name = kOutput;
    ck.tensors.push_back(std::move(head));
  } else {
    add(kOutput, d, V);
  }

  // llama.cpp's converter order (globals, then layer by layer), so a conversion lists tensors as
  // llama.cpp's would.
  std::vector<std::string> order = {kTokenEmbd, kOutputNorm, kOutput};
  for (int l = 0; l < n_layers; ++l)
    for (const char* what : {"attn_q", "attn_k", "attn_v", "attn_output", "attn_norm", "ffn_gate", "ffn_down",
                             "ffn_up", "ffn_norm"})
      order.push_back(tensor_name_layer(l, what));
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < ck.tensors.size(); ++i) index.emplace(ck.tensors[i].name, i);
  std::vector<TensorRef> sorted;
  sorted.reserve(order.size());
  for (const auto& name : order) sorted.push_back(std::move(ck.tensors[index.at(name)]));
  ck.tensors = std::move(sorted);
  return ck;
}

}  // namespace tandem
