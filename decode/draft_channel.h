// The engine's side of a drafter: post requests, collect blocks. Three kinds: a draft model on
// this rank (synchronous, vanilla speculative decoding), n-gram lookup (synchronous, no model),
// and a draft group on other ranks (asynchronous: it drafts while the target computes — PEARL).
#pragma once
#include <mpi.h>

#include <memory>
#include <optional>

#include "decode/draft_protocol.h"
#include "decode/ngram_drafter.h"
#include "dist/model_group.h"

namespace tandem {

class DraftChannel {
 public:
  virtual ~DraftChannel() = default;
  virtual void post(const DraftRequest& r) = 0;
  virtual std::optional<DraftBlock> poll() = 0;  // a finished block, if one is ready
  virtual DraftBlock wait() = 0;                 // blocks; needs an outstanding request
  virtual bool parallel() const = 0;             // drafts while the target computes
  virtual const char* name() const = 0;
  virtual void shutdown() {}
};

std::unique_ptr<DraftChannel> local_model_channel(ModelGroup& draft);
std::unique_ptr<DraftChannel> ngram_channel(int max_seqs, NgramOptions o = {});
std::unique_ptr<DraftChannel> remote_channel(MPI_Comm heads);

// On the draft group's master: serve rank 0's requests over `heads` until shutdown, then shut
// the draft group down.
void run_draft_master(ModelGroup& draft, MPI_Comm heads);

}  // namespace tandem
