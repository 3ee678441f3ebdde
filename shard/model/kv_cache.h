// KV cache for one rank: `max_seqs` slots × `ctx` positions × the rank's layers and KV heads.
// Layout [layer][slot][kv_head][pos][head_dim] keeps one head's history contiguous, so attention
// streams it. A slot's length is just a number: truncation (speculative rollback) is O(1).
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "shard/result.h"
#include "shard/kernels/weight_type.h"

namespace tandem {

struct KvCacheConfig {
  int n_layers = 0;    // layers on this rank
  int n_kv_heads = 0;  // KV heads on this rank
  int head_dim = 0;
  int max_seqs = 1;
  int ctx = 0;
  WeightType type = WeightType::F16;  // F16 or F32
};

struct KvCache {
  KvCacheConfig cfg;
  std::vector<int> length;  // committed positions per slot
  std::shared_ptr<uint8_t> data;
  size_t bytes = 0;
  size_t elem_bytes = 2;

  size_t head_stride() const { return static_cast<size_t>(cfg.ctx) * cfg.head_dim * elem_bytes; }  // bytes
  size_t row_stride() const { return static_cast<size_t>(cfg.head_dim) * elem_bytes; }             // bytes per position
  // K (which = 0) or V (which = 1) history of one head: ctx rows of head_dim elements.
  uint8_t* head(int which, int layer, int slot, int kv_head) const {
    const size_t idx = ((static_cast<size_t>(which) * cfg.n_layers + layer) * cfg.max_seqs + slot) * cfg.n_kv_heads + kv_head;
    return data.get() + idx * head_stride();
  }
};

// Bytes a cache of this shape needs (UINT64_MAX when that does not fit 64 bits).
uint64_t kv_cache_bytes(const KvCacheConfig& c);
// Allocates (touching no pages yet); a size the machine cannot hold is a clear error.
Result<KvCache> make_kv_cache(const KvCacheConfig& c);

}  // namespace tandem
