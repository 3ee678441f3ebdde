// What a rank other than rank 0 does for the whole job: serve its target stage, or run the draft
// group (its master talks to rank 0), until rank 0 shuts the job down.
#pragma once
#include "dist/cluster.h"

namespace tandem {
void run_worker_rank(Cluster& c);
}
