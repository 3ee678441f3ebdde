// The drafting side: keeps each slot's history in the draft model, applies requests (rollback
// to base_len, append committed tokens) and drafts all active requests together, one token per
// batched draft step. Runs on rank 0 (vanilla SD) or on the draft group's master (PEARL).
#pragma once
#include <map>
#include <vector>

#include "decode/draft_protocol.h"
#include "dist/model_group.h"

namespace tandem {

class DraftService {
 public:
  explicit DraftService(ModelGroup& group);
  // Starts (or, for a slot already drafting, replaces) a request.
  void post(const DraftRequest& r);
  bool busy() const { return !active_.empty(); }
  // One batched draft step; returns the blocks it completed.
  std::vector<DraftBlock> step();

 private:
  struct Slot {
    std::vector<int32_t> hist;  // the sequence as the drafter sees it
    int kv_len = 0;             // positions of hist in the draft model's KV cache
  };
  struct Active {
    DraftRequest req;
    DraftBlock block;
    int remaining = 0;
    double seconds = 0;
  };
  ModelGroup& g_;
  std::vector<Slot> slots_;
  std::map<int, Active> active_;
  std::vector<float> row_;
};

}  // namespace tandem
