// The parallel layout of a job and the role each world rank plays in it. Pure arithmetic (no
// MPI), so every layout rule is unit-tested without mpirun.
//
// World ranks 0 .. T-1 are the target group (T = tp × pp, stage-major: rank = stage × tp + tp
// rank); ranks T .. T+D-1 are the draft group (D = draft_tp). Rank 0 is target stage 0, TP rank 0
// and the coordinator; rank T is the draft master.
#pragma once
#include <string>
#include <vector>

#include "shard/result.h"

namespace tandem {

struct Layout {
  int tp = 1;
  int pp = 1;
  std::vector<int> layer_split;  // layers per stage (empty: even split)
  int draft_tp = 0;              // ranks of the draft group (0: no draft ranks; < 0: infer from the world size)

  int target_ranks() const { return tp * pp; }
  int world_size() const { return tp * pp + draft_tp; }
  std::string describe() const;  // "tp2×pp1+draft1"
};

struct Role {
  int world_rank = 0;
  bool in_target = false;
  int stage = -1, tp_rank = -1;  // target coordinates
  bool in_draft = false;
  int draft_rank = -1;           // rank within the draft group
  bool coordinator() const { return world_rank == 0; }
  bool draft_master() const { return in_draft && draft_rank == 0; }
};

// Parses "a,b,c" (layers per stage).
Result<std::vector<int>> parse_layer_split(const std::string& s);
// Checks the layout against the world size; the message names both and how to fix it.
Status check_world_size(const Layout& l, int world_size);
Role role_of(const Layout& l, int world_rank);
int target_world_rank(const Layout& l, int stage, int tp_rank);

}  // namespace tandem
