// What the engine asks a drafter for, and what comes back. The same messages serve a drafter on
// rank 0 (vanilla speculative decoding), an n-gram lookup, and a draft group on its own ranks
// (PEARL), where they travel over the `heads` communicator.
#pragma once
#include <cstdint>
#include <vector>

#include "decode/sampling.h"

namespace tandem {

struct DraftRequest {
  int32_t slot = 0;
  int64_t epoch = 0;     // bumps on every rejection; blocks of older epochs are stale
  int32_t base_len = 0;  // keep this prefix of the drafter's history of the sequence...
  std::vector<int32_t> append;  // ...then append these committed tokens...
  int32_t n_draft = 0;          // ...and draft this many tokens after them
  SamplingParams params;        // the drafter samples from q = sampling_distribution(its logits)
  bool release = false;         // the sequence ended: forget the slot
};

struct DraftBlock {
  int32_t slot = 0;
  int64_t epoch = 0;
  int32_t start_pos = 0;         // sequence position of tokens[0]
  std::vector<int32_t> tokens;
  std::vector<SparseDist> q;     // one per token for sampled requests; empty when greedy
  double seconds_per_token = 0;  // measured on the drafter (for the adaptive draft length)
  double idle_seconds = 0;       // drafter idle, waiting for requests, since its previous block
};

// Flat byte encodings for MPI (heads communicator).
std::vector<uint8_t> encode_request(const DraftRequest& r);
bool decode_request(const std::vector<uint8_t>& b, DraftRequest& r);
std::vector<uint8_t> encode_block(const DraftBlock& b);
bool decode_block(const std::vector<uint8_t>& b, DraftBlock& out);

}  // namespace tandem
