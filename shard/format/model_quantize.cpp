#include "shard/format/model_quantize.h"

#include <algorithm>
#include <chrono>
#include <thread>

#include "shard/format/gguf_writer.h"
#include "shard/log.h"
#include "shard/kernels/quant.h"
#include "shard/kernels/thread_pool.h"

namespace tandem {
namespace {

GgufValue u32(int64_t v) { return gguf_u32(static_cast<uint32_t>(v)); }

}  // namespace

uint32_t llama_file_type(WeightType t) {
  // llama_ftype: ALL_F32 = 0, MOSTLY_F16 = 1, MOSTLY_Q4_0 = 2, MOSTLY_Q8_0 = 7, MOSTLY_Q4_K_S = 14,
  // MOSTLY_Q5_0 = 8, MOSTLY_Q5_K_S = 16, MOSTLY_Q6_K = 18, MOSTLY_BF16 = 32. Uniform Q4_K / Q5_K
  // match Q4_K_S / Q5_K_S most closely (the _M mixes keep some tensors at Q6_K).
  switch (t) {
    case WeightType::F32: return 0;
    case WeightType::F16: return 1;
    case WeightType::Q4_0: return 2;
    case WeightType::Q8_0: return 7;
    case WeightType::Q5_0: return 8;
    case WeightType::Q4_K: return 14;
    case WeightType::Q5_K: return 16;
    case WeightType::Q6_K: return 18;
    case WeightType::BF16: return 32;
    case WeightType::Q8_K: break;
  }
  return 0;
}

GgufMetadata model_metadata(const ModelConfig& c, WeightType t) {
  const std::string p = c.arch + ".";  // every family of the table uses the same key names
  GgufMetadata md = {
      {"general.architecture", gguf_str(c.arch)},
      {"general.name", gguf_str(c.name.empty() ? c.arch : c.name)},
      {"general.file_type", gguf_u32(llama_file_type(t))},
      {"general.quantization_version", gguf_u32(2)},
      {p + "vocab_size", u32(c.n_vocab)},
      {p + "context_length", u32(c.ctx_len)},
      {p + "embedding_length", u32(c.dim)},
      {p + "block_count", u32(c.n_layers)},
      {p + "feed_forward_length", u32(c.ffn_dim)},
      {p + "rope.dimension_count", u32(c.rope_dim)},
      {p + "attention.head_count", u32(c.n_heads)},
      {p + "attention.head_count_kv", u32(c.n_kv_heads)},
      {p + "attention.layer_norm_rms_epsilon", gguf_f32(c.rms_eps)},
      {p + "rope.freq_base", gguf_f32(c.rope_theta)},
  };
  if (c.n_heads * c.head_dim != c.dim) {
    md.emplace_back(p + "attention.key_length", u32(c.head_dim));
    md.emplace_back(p + "attention.value_length", u32(c.head_dim));
  }
  const auto& rs = c.rope_scaling;
  if (rs.kind == RopeScaling::Kind::Linear) {
    md.emplace_back(p + "rope.scaling.type", gguf_str("linear"));
    md.emplace_back(p + "rope.scaling.factor", gguf_f32(rs.factor));
  } else if (rs.kind == RopeScaling::Kind::Llama3) {
    md.emplace_back(p + "rope.scaling.type", gguf_str("llama3"));
    md.emplace_back(p + "rope.scaling.factor", gguf_f32(rs.factor));
    md.emplace_back(p + "rope.scaling.low_freq_factor", gguf_f32(rs.low_freq_factor));
    md.emplace_back(p + "rope.scaling.high_freq_factor", gguf_f32(rs.high_freq_factor));
    md.emplace_back(p + "rope.scaling.original_context_length", u32(rs.original_ctx));
  }
  return md;
}

GgufMetadata vocab_metadata(const Vocab& v) {
  GgufMetadata md = {{"tokenizer.ggml.model", gguf_str(v.kind == TokenizerKind::Spm ? "llama" : "gpt2")}};
  if (!v.pre.empty()) md.emplace_back("tokenizer.ggml.pre", gguf_str(v.pre));
  md.emplace_back("tokenizer.ggml.tokens", gguf_str_array(v.tokens));
  if (!v.scores.empty()) md.emplace_back("tokenizer.ggml.scores", gguf_f32_array(v.scores));
  if (!v.types.empty()) md.emplace_back("tokenizer.ggml.token_type", gguf_i32_array(v.types));
  if (!v.merges.empty()) md.emplace_back("tokenizer.ggml.merges", gguf_str_array(v.merges));
  auto id = [&](const char* key, int32_t value) {
    if (value >= 0) md.emplace_back(key, u32(value));
  };
  id("tokenizer.ggml.bos_token_id", v.bos);
  id("tokenizer.ggml.eos_token_id", v.eos);
  id("tokenizer.ggml.unknown_token_id", v.unk);
  id("tokenizer.ggml.padding_token_id", v.pad);
  // A BPE vocabulary that left add_bos to its pre-tokenizer's default keeps leaving it.
  if (v.kind == TokenizerKind::Spm || v.add_bos_from_file || v.add_bos)
    md.emplace_back("tokenizer.ggml.add_bos_token", gguf_bool(v.add_bos));
  md.emplace_back("tokenizer.ggml.add_eos_token", gguf_bool(v.add_eos));
  if (v.kind == TokenizerKind::Spm) md.emplace_back("tokenizer.ggml.add_space_prefix", gguf_bool(v.add_space_prefix));
  return md;
}

WeightType matrix_type_for(WeightType requested, int64_t cols) {
  if (cols % info(requested).block_elems == 0) return requested;
  // K-quants need 256-element rows; the 32-element formats keep most of their size benefit.
  // (llama.cpp takes q5_1 for q5_k; tandem has no q5_1, and q5_0 is the same size class.)
  if (cols % 32 == 0) switch (requested) {
      case WeightType::Q4_K: return WeightType::Q4_0;
      case WeightType::Q5_K: return WeightType::Q5_0;
      case WeightType::Q6_K: return WeightType::Q8_0;
      default: break;
    }
  return WeightType::F16;
}

Status quantize_model(const ModelFile& in, const std::string& out, WeightType type, int threads) {
  GgufMetadata md;
  if (in.gguf) {
    md = in.gguf->metadata;
    auto set = [&](const std::string& key, GgufValue v) {
      for (auto& [k, old] : md)
        if (k == key) {
          old = std::move(v);
          return;
        }
      md.emplace_back(key, std::move(v));
    };
    set("general.file_type", gguf_u32(llama_file_type(type)));
    set("general.quantization_version", gguf_u32(2));
  } else {
    md = model_metadata(in.config, type);
    for (auto& kv : vocab_metadata(in.vocab)) md.push_back(std::move(kv));
  }

  const auto& ti = info(type);
  std::vector<const TensorRef*> srcs;
  std::vector<WeightType> dst_types;
  uint64_t total = 0;
  int fallbacks = 0;
  for (const auto& t : in.tensors) {
    if (in.is_tied_alias(t)) continue;
    const WeightType dst = t.ne.size() >= 2 ? matrix_type_for(type, t.cols()) : WeightType::F32;
    if (dst != type && t.ne.size() >= 2) {
      // As llama.cpp does: rows that cannot hold whole blocks of the requested type get the
      // nearest type whose blocks fit, and the conversion says so.
      spdlog::info("quantize: tensor '{}' has rows of {} elements, not a multiple of the {} block size {}: using {}",
                   t.name, t.cols(), ti.name, ti.block_elems, name(dst));
      ++fallbacks;
    }
    srcs.push_back(&t);
    dst_types.push_back(dst);
    total += t.nbytes;
  }

  const int n_threads = threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  ThreadPool pool(n_threads);
  uint64_t done = 0;
  int next_decile = 1;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<TensorToWrite> tensors;
  for (size_t i = 0; i < srcs.size(); ++i) {
    const TensorRef* src = srcs[i];
    const WeightType dst_type = dst_types[i];
    TensorToWrite t{src->name, dst_type, src->ne, {}};
    t.fill = [src, dst_type, &pool, &done, &next_decile, total, t0, &out](uint8_t* dst) {
      const int64_t cols = src->cols();
      int64_t rows = 1;
      for (size_t i = 1; i < src->ne.size(); ++i) rows *= src->ne[i];
      const size_t src_rb = row_bytes(src->type, cols), dst_rb = row_bytes(dst_type, cols);
      pool.parallel_for(rows, 1, [&](int64_t r0, int64_t r1) {
        if (src->type == dst_type) {  // nothing to convert: exact copy
          std::copy(src->data + r0 * src_rb, src->data + r1 * src_rb, dst + r0 * dst_rb);
          return;
        }
        std::vector<float> row(cols);
        for (int64_t r = r0; r < r1; ++r) {
          dequantize_row(src->type, src->data + r * src_rb, row.data(), cols);
          quantize_row(dst_type, row.data(), dst + r * dst_rb, cols);
        }
      });
      done += src->nbytes;
      const int decile = total > 0 ? static_cast<int>(done * 10 / total) : 10;
      if (total >= (uint64_t{64} << 20) && decile >= next_decile) {
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        spdlog::info("quantize {}: {}% ({:.1f} s)", out, decile * 10, s);
        next_decile = decile + 1;
      }
    };
    tensors.push_back(std::move(t));
  }
  spdlog::info("quantize: {} ({}) -> {} ({} for {} of {} tensors; norms f32{})", in.path, in.format, out, ti.name,
               tensors.size() - fallbacks, tensors.size(), fallbacks ? fmt::format("; {} fell back", fallbacks) : "");
  return write_gguf(out, md, tensors);
}

}  // namespace tandem
