// The step descriptor a group's master sends before every operation: workers loop on it. It is
// a flat int32 array so one message carries it (and it travels down the pipeline with the
// activations, so every stage applies steps in the master's order).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

#include "shard/model/forward.h"

namespace tandem {

// Stats: every member reports its GroupStats to the master (ordered after every earlier step).
enum class StepOp : int32_t { Forward = 1, Truncate = 2, Shutdown = 3, Stats = 4 };
// What the last stage returns for a Forward: nothing, per-row argmax (a max-loc reduction across
// the vocab-parallel head: greedy needs no more), or full logits gathered to the master.
enum class LogitsMode : int32_t { None = 0, Argmax = 1, Full = 2 };

struct StepChunk {
  int32_t slot = 0;
  int32_t pos0 = 0;  // Truncate: the new length
  bool all_logits = false;
  std::vector<int32_t> tokens;
};

struct Step {
  StepOp op = StepOp::Forward;
  LogitsMode logits = LogitsMode::Argmax;
  int64_t id = 0;  // sequence number, assigned by the master
  std::vector<StepChunk> chunks;
};

std::vector<int32_t> encode_step(const Step& s);
// Validates sizes as it decodes (a truncated buffer is an error, not a crash).
Result<Step> decode_step(std::span<const int32_t> buf);
std::vector<SeqChunk> seq_chunks(const Step& s);  // views into s.chunks[i].tokens
int step_rows(const Step& s);                     // tokens across chunks
int step_out_rows(const Step& s);                 // rows that produce logits

}  // namespace tandem
