#include "dist/communicators.h"

namespace tandem {

Communicators::~Communicators() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (finalized) return;
  for (MPI_Comm* c : {&target, &tp, &draft, &heads})
    if (*c != MPI_COMM_NULL) MPI_Comm_free(c);
}

void make_communicators(const Layout& l, const Role& r, Communicators& out) {
  MPI_Comm_split(MPI_COMM_WORLD, r.in_target ? 0 : MPI_UNDEFINED, r.world_rank, &out.target);
  MPI_Comm_split(MPI_COMM_WORLD, r.in_draft ? 0 : MPI_UNDEFINED, r.world_rank, &out.draft);
  // One TP communicator per target stage, and the draft group is its own TP group.
  const int tp_color = r.in_target ? r.stage : l.pp;
  MPI_Comm_split(MPI_COMM_WORLD, tp_color, r.world_rank, &out.tp);
  const bool head = r.coordinator() || r.draft_master();
  MPI_Comm_split(MPI_COMM_WORLD, head && l.draft_tp > 0 ? 0 : MPI_UNDEFINED, r.world_rank, &out.heads);
}

}  // namespace tandem
