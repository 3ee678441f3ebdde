// Which slice of the model one rank holds: its pipeline stage (a contiguous range of layers) and
// its tensor-parallel index within the stage (Megatron-style column/row split).
#pragma once
#include <string>
#include <vector>

#include "shard/format/model_config.h"
#include "shard/result.h"
#include "shard/kernels/weight_type.h"

namespace tandem {

struct ShardSpec {
  int tp_rank = 0;
  int tp_size = 1;
  int layer_begin = 0;
  int layer_end = -1;         // exclusive; -1 = all layers
  bool has_embedding = true;  // first stage: embeds token ids
  bool has_head = true;       // last stage (or a layer-skip drafter): output norm + vocab slice of the head
};

// The index ranges a TP rank owns, derived from the config and the weight types.
struct ShardRanges {
  int q_head_begin = 0, q_head_end = 0;    // query heads (whole heads)
  int kv_head_begin = 0, kv_head_end = 0;  // KV heads those query heads read (replicated when shared)
  int ffn_begin = 0, ffn_end = 0;          // FFN features, on block boundaries of ffn_down's type
  int vocab_begin = 0, vocab_end = 0;      // output-head rows
  int layer_begin = 0, layer_end = 0;

  int n_q_heads() const { return q_head_end - q_head_begin; }
  int n_kv_heads() const { return kv_head_end - kv_head_begin; }
  int n_ffn() const { return ffn_end - ffn_begin; }
  int n_vocab() const { return vocab_end - vocab_begin; }
  int n_layers() const { return layer_end - layer_begin; }
};

// Splits [0, n) into `parts` contiguous pieces whose boundaries are multiples of `unit`, as even
// as possible (earlier pieces take the remainder). Returns boundaries (parts + 1 entries), or an
// empty vector when some piece would be empty.
std::vector<int> split_even(int n, int parts, int unit);

// Checks the split is possible (tp divides the head count, row-parallel input slices fall on
// quantization-block boundaries, ...) and returns this rank's ranges. `attn_output_type` and
// `ffn_down_type` are the types of the row-parallel matrices (their blocks must not straddle).
Result<ShardRanges> shard_ranges(const ModelConfig& c, const ShardSpec& s, WeightType attn_output_type,
                                 WeightType ffn_down_type);

// Contiguous pipeline stages: `pp` ranges of layers, or the user's --layer-split sizes.
Result<std::vector<std::pair<int, int>>> pipeline_stages(int n_layers, int pp, const std::vector<int>& layer_split);

// Layers per stage (a --layer-split) balanced by what a decode step streams: `layer_bytes[i]` for
// layer i, plus `head_bytes` (final norm and output head) on the last stage. A bandwidth-bound
// stage takes time in proportion to its bytes, so an even split leaves the last stage slower by
// the head (TinyLlama-1.1B: 1.5 layers' worth). Minimises the largest stage; among equal maxima
// keeps the split closest to even. Empty when pp < 2 or pp exceeds the layers.
std::vector<int> balanced_layer_split(const std::vector<double>& layer_bytes, int pp, double head_bytes);

}  // namespace tandem
