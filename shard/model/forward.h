// The forward pass of the supported families (arch.h) over one rank's shard, for one ragged
// batch: prefill chunks, decode rows, verification blocks and many sequences at once are the same
// call, and the weights are streamed once per call for all rows.
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "shard/model/collectives.h"
#include "shard/model/kv_cache.h"
#include "shard/model/shard_model.h"
#include "shard/kernels/thread_pool.h"

namespace tandem {

// `tokens` of one sequence (KV slot `slot`) at positions pos0, pos0+1, ...; pos0 may be below the
// slot's length (overwrite after rollback). Logits come for the last position, or every position
// when all_logits (verification of a draft block).
struct SeqChunk {
  int slot = 0;
  int pos0 = 0;
  std::span<const int32_t> tokens;
  bool all_logits = false;
};

// Row bookkeeping of a batch: rows are the chunks' tokens stacked in order.
struct BatchRows {
  int n_rows = 0;
  std::vector<int> slot, pos;  // per row
  std::vector<int> out_rows;   // rows that produce logits, in order
};
BatchRows batch_rows(std::span<const SeqChunk> batch);

// Rejects what would corrupt state: bad slot, a gap before pos0, overflow of the context, token
// ids outside the vocabulary (when the stage embeds).
Status check_batch(const ShardModel& m, const KvCache& kv, std::span<const SeqChunk> batch);

struct ForwardScratch {
  std::vector<float> xn, q, k, v, att, gate, up, sel;
  std::vector<std::vector<float>> scores;  // per thread
};

// Runs this rank's layers. `hidden` (n_rows × dim) is the input on a stage without the embedding
// and always the output. With the head, `logits` receives out_rows × (this rank's vocab slice).
// Sets kv.length[slot] = pos0 + tokens for every chunk.
Status forward_stage(const ShardModel& m, KvCache& kv, std::span<const SeqChunk> batch, Collectives& coll,
                     ThreadPool& pool, ForwardScratch& s, std::vector<float>& hidden, std::vector<float>* logits);

}  // namespace tandem
