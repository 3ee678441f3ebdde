// Waiting on an MPI request without burning a core forever: spin (lowest latency while steps
// come back to back), then sleep with growing pauses (an idle server costs almost nothing).
#pragma once
#include <mpi.h>

namespace tandem {

void wait_polite(MPI_Request* req, MPI_Status* status = MPI_STATUS_IGNORE);
// Blocks until a message from `source` with `tag` can be received; fills `status`.
void probe_polite(int source, int tag, MPI_Comm comm, MPI_Status* status);

}  // namespace tandem
