// Communicators of a layout, from MPI_Comm_split: `target` (all target ranks), `tp` (one per
// pipeline stage), `draft` (the draft group), `heads` ({rank 0, draft master}: drafts/verdicts).
#pragma once
#include <mpi.h>

#include "dist/layout.h"

namespace tandem {

struct Communicators {
  MPI_Comm target = MPI_COMM_NULL;  // target ranks; rank in it == world rank
  MPI_Comm tp = MPI_COMM_NULL;      // this rank's stage (target) or the draft group (draft)
  MPI_Comm draft = MPI_COMM_NULL;   // draft ranks; rank in it == draft_rank
  MPI_Comm heads = MPI_COMM_NULL;   // rank 0 -> 0, draft master -> 1
  Communicators() = default;
  Communicators(const Communicators&) = delete;
  Communicators& operator=(const Communicators&) = delete;
  ~Communicators();
};

// Collective over MPI_COMM_WORLD.
void make_communicators(const Layout& l, const Role& r, Communicators& out);

}  // namespace tandem
