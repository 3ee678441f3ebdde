#include "shard/format/synth.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string_view>
#include <thread>
#include <vector>

#include "shard/format/gguf_writer.h"
#include "shard/log.h"
#include "shard/format/model_quantize.h"
#include "shard/kernels/quant.h"
#include "shard/kernels/thread_pool.h"

namespace tandem {
namespace {

// splitmix64's finaliser: a bijective mix good enough that consecutive counters give
// independent-looking outputs, so element i of a tensor is hash(key + i) — counter-based, hence
// independent of generation order and thread count.
inline uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

uint64_t tensor_key(uint64_t seed, std::string_view name) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 0x100000001b3ull;
  return mix64(seed ^ mix64(h));
}

// Approximately N(0, 1): the sum of four 16-bit uniforms from one hash (Irwin–Hall, n = 4),
// centred and scaled to unit variance. Cheap enough for a billion weights; bounded at ±3.46.
inline float gauss(uint64_t key, uint64_t i) {
  const uint64_t r = mix64(key + i);
  const float s = static_cast<float>((r & 0xffff) + ((r >> 16) & 0xffff) + ((r >> 32) & 0xffff) + (r >> 48));
  constexpr float kScale = 1.7320508f / 65536.0f;  // sqrt(3) / 2^16
  return (s + 2.0f - 2.0f * 65536.0f) * kScale;
}

struct SynthTensor {
  std::string name;
  WeightType type;
  std::vector<int64_t> ne;
  float mean, stddev;
};

// The weight distributions. Every matrix reads an RMS-normalised input (RMS ≈ 1), so a
// N(0, 1/fan_in) matrix gives outputs of unit scale at every depth; norms are ≈ 1. The head's
// scale sets the logits' spread s: for V Gaussian logits, s = 1.2·sqrt(2 ln V) puts the typical
// top-1 probability near 0.45 (10th–90th percentile ≈ 0.2–0.8) at any vocabulary size — peaked
// like a trained LM rather than uniform. The family's optional pieces: q/k/v biases of half the
// projections' scale (trained Qwen2 biases are of that order, some larger) and q/k norm weights
// spread well away from 1, as trained ones are, so that a misapplied one shows.
std::vector<SynthTensor> synth_tensors(const ModelConfig& c, WeightType t, int draft_layers, float residual_scale,
                                       bool tied) {
  const ArchInfo& arch = arch_of(c);
  const int64_t V = c.n_vocab;
  const float head_logit_std = 1.2f * std::sqrt(2.0f * std::log(static_cast<float>(std::max<int64_t>(V, 2))));
  auto inv_sqrt = [](int64_t n) { return 1.0f / std::sqrt(static_cast<float>(n)); };
  constexpr float kNormJitter = 0.02f, kQkNormJitter = 0.25f, kBiasStd = 0.5f;
  std::vector<SynthTensor> ts;
  for (const TensorSpec& spec : model_tensors(c)) {
    const float res = spec.layer >= draft_layers ? residual_scale : 1.0f;
    float mean = 0.0f, stddev = 0.0f;
    if (spec.bias) {
      if (!arch.qkv_bias) continue;
      stddev = kBiasStd;
    } else if (spec.matrix) {
      if (spec.what == "output" && tied) continue;
      // A tied head is token_embd itself: it gets the head's scale (the first norm makes the
      // embedding's scale irrelevant to layer 0, and it keeps the logits' spread the same).
      const bool head = spec.what == "output" || (spec.what == "token_embd" && tied);
      stddev = head ? head_logit_std * inv_sqrt(spec.cols) : spec.what == "token_embd" ? 1.0f : inv_sqrt(spec.cols);
      if (spec.what == "attn_output" || spec.what == "ffn_down") stddev *= res;
    } else if (spec.what == "attn_q_norm" || spec.what == "attn_k_norm") {
      mean = 1.0f, stddev = kQkNormJitter;
    } else if (spec.required) {  // attn_norm, ffn_norm, output_norm
      mean = 1.0f, stddev = kNormJitter;
    } else {
      continue;  // rope_freqs: none (plain RoPE)
    }
    const int64_t rows = spec.rows;
    ts.push_back({spec.name, spec.matrix ? t : WeightType::F32,
                  rows > 1 ? std::vector<int64_t>{spec.cols, rows} : std::vector<int64_t>{spec.cols}, mean, stddev});
  }
  return ts;
}

// Logs at every 10% of the bytes (only for models big enough for it to matter).
struct Progress {
  std::string what;
  uint64_t total = 0, done = 0;
  int next_decile = 1;
  std::chrono::steady_clock::time_point t0 = std::chrono::steady_clock::now();

  void add(uint64_t bytes) {
    done += bytes;
    if (total < (uint64_t{64} << 20)) return;
    const int decile = static_cast<int>(done * 10 / total);
    if (decile < next_decile) return;
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    spdlog::info("{}: {}% ({:.2f} / {:.2f} GB, {:.1f} s)", what, decile * 10, done / 1e9, total / 1e9, s);
    next_decile = decile + 1;
  }
};

GgufMetadata synth_metadata(const ModelConfig& c, const SynthOptions& o, const GgufFile& vocab) {
  GgufMetadata md = model_metadata(c, o.type);
  // Provenance: enough to regenerate the file.
  md.emplace_back("tandem.synth.seed", GgufValue{GgufType::U64, o.seed});
  md.emplace_back("tandem.synth.residual_scale", gguf_f32(o.residual_scale));
  md.emplace_back("tandem.synth.draft_layers", gguf_u32(static_cast<uint32_t>(o.draft_layers)));
  for (const auto& [k, v] : vocab.metadata)
    if (k.rfind("tokenizer.", 0) == 0) md.emplace_back(k, v);
  return md;
}

Status write_one(const std::string& path, const ModelConfig& c, const SynthOptions& o, const GgufFile& vocab,
                 ThreadPool& pool) {
  const auto specs = synth_tensors(c, o.type, o.draft_layers, o.residual_scale, o.tied);
  Progress progress{"synth " + path};
  for (const auto& s : specs) progress.total += row_bytes(s.type, s.ne[0]) * (s.ne.size() > 1 ? s.ne[1] : 1);

  std::vector<TensorToWrite> tensors;
  for (const auto& s : specs) {
    TensorToWrite t{s.name, s.type, s.ne, {}};
    t.fill = [&s, &o, &pool, &progress](uint8_t* dst) {
      const int64_t cols = s.ne[0], rows = s.ne.size() > 1 ? s.ne[1] : 1;
      const size_t rb = row_bytes(s.type, cols);
      const uint64_t key = tensor_key(o.seed, s.name);
      pool.parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
        std::vector<float> row(cols);
        for (int64_t r = r0; r < r1; ++r) {
          const uint64_t base = static_cast<uint64_t>(r) * cols;
          for (int64_t i = 0; i < cols; ++i) row[i] = s.mean + s.stddev * gauss(key, base + i);
          quantize_row(s.type, row.data(), dst + r * rb, cols);
        }
      });
      progress.add(rb * rows);
    };
    tensors.push_back(std::move(t));
  }
  spdlog::info("synth: writing {} ({}, {} layers, dim {}, ffn {}, heads {}/{} of {}, vocab {}, {}{}, {:.2f} GB)", path,
               c.arch, c.n_layers, c.dim, c.ffn_dim, c.n_heads, c.n_kv_heads, c.head_dim, c.n_vocab, name(o.type),
               o.tied ? ", tied head" : "", progress.total / 1e9);
  auto st = write_gguf(path, synth_metadata(c, o, vocab), tensors);
  if (!st) return make_error("synth: {}", st.error().message);
  return ok_status();
}

}  // namespace

Result<ModelConfig> synth_config(const SynthOptions& o, int n_vocab) {
  const ArchInfo* arch = find_arch(o.arch);
  if (!arch) return make_error("synth: --arch '{}' is not supported (supported: {})", o.arch, supported_arch_list());
  ModelConfig c;
  c.arch = std::string(arch->name);
  c.n_vocab = n_vocab;
  c.dim = o.dim;
  c.n_layers = o.n_layers;
  c.n_heads = o.n_heads;
  c.n_kv_heads = o.n_kv_heads;
  c.ffn_dim = o.ffn_dim;
  c.ctx_len = o.ctx_len;
  c.tied_output = o.tied;
  // The llama name stays what it always was, so existing files keep their bytes.
  c.name = o.arch == "llama" ? fmt::format("tandem-synth-{}x{}-{}", o.dim, o.n_layers, name(o.type))
                             : fmt::format("tandem-synth-{}-{}x{}-{}", o.arch, o.dim, o.n_layers, name(o.type));
  if (o.head_dim > 0) {
    c.head_dim = o.head_dim;  // written as <arch>.attention.key_length when heads × head_dim != dim
  } else {
    if (o.n_heads <= 0 || o.dim <= 0 || o.dim % o.n_heads != 0)
      return make_error("synth: --dim {} must be a positive multiple of --heads {} (or give --head-dim)", o.dim,
                        o.n_heads);
    c.head_dim = o.dim / o.n_heads;
  }
  c.rope_dim = c.head_dim;
  TANDEM_TRY(validate_config(c, "synth"));
  if (o.draft_layers < 1 || o.draft_layers > o.n_layers)
    return make_error("synth: --draft-layers {} must be between 1 and --layers {}", o.draft_layers, o.n_layers);
  if (!(o.residual_scale >= 0.0f && std::isfinite(o.residual_scale)))
    return make_error("synth: --residual-scale {} must be a finite number >= 0", o.residual_scale);
  // Every 2-D weight is stored in o.type, so each input dimension must hold whole blocks.
  const auto& ti = info(o.type);
  for (auto [flag, cols] : {std::pair{"--dim", c.dim}, std::pair{"--ffn", c.ffn_dim},
                            std::pair{"--heads x head dimension", c.q_dim()}})
    if (cols % ti.block_elems != 0)
      return make_error("synth: {} {} is not a multiple of {} (the {} block size): {} needs rows of whole blocks",
                        flag, cols, ti.block_elems, ti.name, ti.name);
  return c;
}

Status write_synth_model(const SynthOptions& o) {
  if (o.out.empty()) return make_error("synth: no output path given");
  if (o.draft_out == o.out) return make_error("synth: the draft and the target would both be written to {}", o.out);
  auto vocab = open_gguf(o.vocab_from);
  if (!vocab) return make_error("synth: vocabulary file: {}", vocab.error().message);
  const auto* tokens = vocab->find("tokenizer.ggml.tokens");
  if (!tokens || !tokens->as_array() || tokens->as_array()->items.empty())
    return make_error("synth: {} has no tokenizer.ggml.tokens: pass a GGUF that carries a tokenizer", o.vocab_from);
  auto cfg = synth_config(o, static_cast<int>(std::min<size_t>(tokens->as_array()->items.size(), INT32_MAX)));
  if (!cfg) return cfg.error();

  const int threads = o.threads > 0 ? o.threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(threads);
  TANDEM_TRY(write_one(o.out, *cfg, o, *vocab, pool));
  if (!o.draft_out.empty()) {
    // The target's first layers under the same names, hence the same bytes.
    ModelConfig dc = *cfg;
    dc.n_layers = o.draft_layers;
    dc.name = fmt::format("tandem-synth-{}x{}-{}-draft", o.dim, o.draft_layers, name(o.type));
    TANDEM_TRY(write_one(o.draft_out, dc, o, *vocab, pool));
  }
  return ok_status();
}

}  // namespace tandem
