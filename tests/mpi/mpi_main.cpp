// The MPI test runner: every rank runs every selected test (the tests are collective); only rank 0
// prints GoogleTest's report, and the job's exit code is non-zero when any rank saw a failure.
#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>

#include "dist/mpi_runtime.h"
#include "shard/log.h"

namespace {

// Other ranks print only their failed assertions (GoogleTest's printer runs on rank 0 alone).
class FailurePrinter : public ::testing::EmptyTestEventListener {
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed()) spdlog::error("{}:{}: {}", r.file_name() ? r.file_name() : "?", r.line_number(), r.message());
  }
};

}  // namespace

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto rt = tandem::mpi_start(&argc, &argv);
  if (!rt) {
    spdlog::error("{}", rt.error().message);
    return 1;
  }
  // Start-up and shutdown of the many clusters the tests build would drown the report.
  if (!std::getenv("TANDEM_LOG_LEVEL")) tandem::init_logging((*rt)->rank, "warn");
  if ((*rt)->rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter);
  }
  int rc = RUN_ALL_TESTS();
  // A suite launched with the wrong rank count skips itself, and a mistyped filter selects
  // nothing: neither may pass as a green run.
  const auto* ut = ::testing::UnitTest::GetInstance();
  if (rc == 0 && ut->successful_test_count() == 0 && !GTEST_FLAG_GET(list_tests)) {
    if ((*rt)->rank == 0)
      spdlog::error("no test ran under {} ranks (a suite needs `mpirun -n N` with the N in its name, e.g. Foo_np2)",
                    (*rt)->size);
    rc = 1;
  }
  int worst = 0;
  MPI_Allreduce(&rc, &worst, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return worst;
}
