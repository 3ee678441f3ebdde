// What the forward pass needs from its tensor-parallel peers. `shard/` never sees MPI: dist/
// implements this with MPI communicators; LocalCollectives is the one-rank case (no-ops), so
// every layer runs and is tested without mpirun.
#pragma once
#include <cstdint>
#include <span>

namespace tandem {

struct Collectives {
  virtual ~Collectives() = default;
  virtual int tp_rank() const = 0;
  virtual int tp_size() const = 0;
  // Element-wise sum over the TP group, in place (the row-parallel reduction).
  virtual void allreduce_sum(float* data, int64_t n) = 0;
  // Vocab-parallel head, sampling: every rank holds rows × counts[rank] logits; TP rank 0 receives
  // rows × sum(counts), each row the concatenation in rank order. `out` is used on rank 0 only.
  virtual void gather_vocab(const float* local, int rows, std::span<const int> counts, float* out) = 0;
  // Vocab-parallel head, greedy: per row, the global maximum and its index (ties -> lowest
  // index), given each rank's local max and its already-global index; results on every rank.
  virtual void argmax_rows(std::span<float> max_vals, std::span<int32_t> max_idx) = 0;
};

struct LocalCollectives final : Collectives {
  int tp_rank() const override { return 0; }
  int tp_size() const override { return 1; }
  void allreduce_sum(float*, int64_t) override {}
  void gather_vocab(const float* local, int rows, std::span<const int> counts, float* out) override;
  void argmax_rows(std::span<float>, std::span<int32_t>) override {}
};

}  // namespace tandem
