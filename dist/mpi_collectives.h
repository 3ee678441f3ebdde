// Collectives over a stage's TP communicator (see shard/collectives.h for the contract).
#pragma once
#include <mpi.h>

#include <vector>

#include "shard/model/collectives.h"

namespace tandem {

struct MpiCollectives final : Collectives {
  explicit MpiCollectives(MPI_Comm tp);
  int tp_rank() const override { return rank_; }
  int tp_size() const override { return size_; }
  void allreduce_sum(float* data, int64_t n) override;
  void gather_vocab(const float* local, int rows, std::span<const int> counts, float* out) override;
  void argmax_rows(std::span<float> max_vals, std::span<int32_t> max_idx) override;
  double comm_seconds = 0;  // time spent inside collectives (for comm_pct)

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  std::vector<float> buf_;
  std::vector<std::pair<float, int>> pairs_;
};

}  // namespace tandem
