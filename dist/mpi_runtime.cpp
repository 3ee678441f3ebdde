#include "dist/mpi_runtime.h"

#include <memory>
#include <string>
#include <vector>

#include "shard/log.h"

namespace tandem {

MpiRuntime::~MpiRuntime() {
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

Result<std::unique_ptr<MpiRuntime>> mpi_start(int* argc, char*** argv) {
  int provided = 0;
  if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
    return make_error("MPI_Init_thread failed");
  auto rt = std::make_unique<MpiRuntime>();
  MPI_Comm_rank(MPI_COMM_WORLD, &rt->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &rt->size);
  init_logging(rt->rank);
  if (provided < MPI_THREAD_FUNNELED) {
    return make_error("the MPI library provides thread level {} but tandem needs MPI_THREAD_FUNNELED", provided);
  }
  return rt;
}

void mpi_abort_job(const std::string& why, int code) {
  spdlog::critical("aborting the job: {}", why);
  spdlog::default_logger()->flush();
  MPI_Abort(MPI_COMM_WORLD, code);
  std::abort();
}

Status agree(MPI_Comm comm, const Status& local) {
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);
  int bad = local.ok() ? size : rank;  // lowest failing rank wins
  int first = size;
  MPI_Allreduce(&bad, &first, 1, MPI_INT, MPI_MIN, comm);
  if (first == size) return ok_status();
  std::string msg = local.ok() ? std::string() : local.error().message;
  int len = static_cast<int>(msg.size());
  MPI_Bcast(&len, 1, MPI_INT, first, comm);
  msg.resize(len);
  MPI_Bcast(msg.data(), len, MPI_CHAR, first, comm);
  if (rank == first) return local.error();
  return make_error("rank {}: {}", first, msg);
}

}  // namespace tandem
