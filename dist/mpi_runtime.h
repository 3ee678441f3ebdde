// The MPI runtime: the only global state tandem has. Initialised by the subcommands that run a
// model (generate, serve, bench); finalised on every exit path by the Runtime's destructor.
#pragma once
#include <mpi.h>

#include "shard/result.h"

namespace tandem {

struct MpiRuntime {
  int rank = 0;
  int size = 1;
  MpiRuntime() = default;
  MpiRuntime(const MpiRuntime&) = delete;
  MpiRuntime& operator=(const MpiRuntime&) = delete;
  ~MpiRuntime();  // MPI_Finalize (after a barrier-free shutdown: callers agree on SHUTDOWN first)
};

// MPI_Init_thread (FUNNELED: only the engine thread calls MPI; gRPC and kernel threads never do),
// then re-initialises logging with the world rank.
Result<std::unique_ptr<MpiRuntime>> mpi_start(int* argc, char*** argv);

// Ends the whole job from any rank with a message (a fatal error one rank cannot recover from,
// e.g. a shard that fails to load while the others wait): every rank exits, none hangs.
[[noreturn]] void mpi_abort_job(const std::string& why, int code = 1);

// Agree on success across `comm`: every rank passes its local status; all get the first error
// (by rank) so each rank can print the same clear message and exit non-zero together.
Status agree(MPI_Comm comm, const Status& local);

}  // namespace tandem
