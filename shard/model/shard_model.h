// One rank's slice of the model, packed for the kernels: its layers' column-parallel rows
// (q/k/v/gate/up, and the q/k/v biases of those rows), row-parallel columns (output/down), norms
// (the per-head q/k norms whole: every rank applies them to its own heads), and — on the first
// stage — the embedding table, on the last stage the output norm and a vocab slice of the head.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "shard/kernels/matmul.h"
#include "shard/format/model_file.h"
#include "shard/model/shard_spec.h"
#include "shard/kernels/thread_pool.h"

namespace tandem {

struct LayerWeights {
  std::vector<float> attn_norm, ffn_norm;  // dim
  PackedMatrix wq, wk, wv, wo;             // wq/wk/wv: local heads' rows; wo: their columns
  PackedMatrix w_gate, w_up, w_down;       // gate/up: local FFN rows; down: their columns
  std::vector<float> bq, bk, bv;           // biases of the local q/k/v rows; empty when the file has none
  std::vector<float> q_norm, k_norm;       // head_dim each (qk_norm families); empty otherwise
};

struct ShardModel {
  ModelConfig config;
  ShardSpec spec;
  ShardRanges ranges;
  std::vector<LayerWeights> layers;  // ranges.layer_begin .. layer_end
  TensorRef token_embd;              // raw rows, dequantized per lookup (first stage only)
  std::shared_ptr<const MappedFile> map;  // keeps token_embd readable
  std::vector<float> output_norm;
  PackedMatrix output;                // head rows [vocab_begin, vocab_end)
  std::vector<float> rope_inv_freq;   // rope_dim / 2 inverse frequencies, scaling applied
  RopeStyle rope_style = RopeStyle::Adjacent;  // the family's pairing (arch.h)
  uint64_t bytes_loaded = 0;          // bytes of the file this rank read for its shard
  uint64_t bytes_per_token = 0;       // weight bytes one decode step streams on this rank
};

// Reads only this rank's slice of `f`. A spec with the head on a prefix of the layers is a
// layer-skip self-drafter.
Result<ShardModel> load_shard(const ModelFile& f, const ShardSpec& spec);

// The bytes of the file a rank with `spec` reads, at load and at run time (its matrices' rows or
// columns, norms, biases, the whole token embedding when it embeds): sorted, merged ranges of file
// offsets. What a host without the file must be sent (dist/shard_stream.h).
struct ByteRange {
  uint64_t offset = 0, length = 0;
};
Result<std::vector<ByteRange>> shard_file_ranges(const ModelFile& f, const ShardSpec& spec);
std::vector<ByteRange> merge_ranges(std::vector<ByteRange> r);

// RoPE inverse frequencies for a config (linear / llama3 scaling; `freq_factors` from a
// `rope_freqs.weight` tensor when the file has one).
std::vector<float> rope_inverse_frequencies(const ModelConfig& c, const std::vector<float>& freq_factors = {});

}  // namespace tandem
