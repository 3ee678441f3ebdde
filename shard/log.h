// Logging through spdlog: one line per event, the MPI rank and the host name in every line
// ("[rank 1 on node7] [info] …"), on stderr
// (stdout carries generated text and machine-readable output).
#pragma once
#include <spdlog/spdlog.h>

#include <string_view>

namespace tandem {

// Installs the process-wide logger. `rank` < 0 means "not an MPI job yet" (shown as "-").
// Called again once the rank is known; the level comes from `level` or $TANDEM_LOG_LEVEL.
void init_logging(int rank, std::string_view level = "");

// The rank given to the last init_logging call (-1 before MPI is up).
int log_rank();

}  // namespace tandem
