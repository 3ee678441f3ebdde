#include "dist/mpi_collectives.h"

#include <cstring>

namespace tandem {

MpiCollectives::MpiCollectives(MPI_Comm tp) : comm_(tp) {
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
}

void MpiCollectives::allreduce_sum(float* data, int64_t n) {
  if (size_ == 1) return;
  const double t0 = MPI_Wtime();
  MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, comm_);
  comm_seconds += MPI_Wtime() - t0;
}

void MpiCollectives::gather_vocab(const float* local, int rows, std::span<const int> counts, float* out) {
  if (size_ == 1) {
    if (out != local) std::memcpy(out, local, sizeof(float) * static_cast<size_t>(rows) * counts[0]);
    return;
  }
  const double t0 = MPI_Wtime();
  std::vector<int> recv(size_), displ(size_);
  int total = 0;
  for (int r = 0; r < size_; ++r) {
    recv[r] = counts[r] * rows;
    displ[r] = total * rows;
    total += counts[r];
  }
  if (rank_ == 0) buf_.resize(static_cast<size_t>(total) * rows);
  MPI_Gatherv(local, counts[rank_] * rows, MPI_FLOAT, rank_ == 0 ? buf_.data() : nullptr, recv.data(), displ.data(),
              MPI_FLOAT, 0, comm_);
  if (rank_ == 0) {
    // Rank-major blocks -> row-major rows of the full vocabulary.
    int off = 0;
    for (int r = 0; r < size_; ++r) {
      for (int row = 0; row < rows; ++row)
        std::memcpy(out + static_cast<size_t>(row) * total + off, buf_.data() + displ[r] + static_cast<size_t>(row) * counts[r],
                    sizeof(float) * counts[r]);
      off += counts[r];
    }
  }
  comm_seconds += MPI_Wtime() - t0;
}

void MpiCollectives::argmax_rows(std::span<float> max_vals, std::span<int32_t> max_idx) {
  if (size_ == 1) return;
  const double t0 = MPI_Wtime();
  pairs_.resize(max_vals.size());
  for (size_t i = 0; i < max_vals.size(); ++i) pairs_[i] = {max_vals[i], max_idx[i]};
  // MAXLOC breaks ties towards the lower index: the distributed argmax equals the single-rank one.
  MPI_Allreduce(MPI_IN_PLACE, pairs_.data(), static_cast<int>(pairs_.size()), MPI_FLOAT_INT, MPI_MAXLOC, comm_);
  for (size_t i = 0; i < max_vals.size(); ++i) {
    max_vals[i] = pairs_[i].first;
    max_idx[i] = pairs_[i].second;
  }
  comm_seconds += MPI_Wtime() - t0;
}

}  // namespace tandem
