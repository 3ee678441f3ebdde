// A model group: the ranks that together hold one model (the target: tp × pp; the draft: tp × 1).
// The group's master (its stage-0, TP-rank-0 member) submits steps; every member executes them
// in order; the last stage's TP-rank-0 member returns results to the master. With pp > 1 several
// steps can be in flight, so all stages work at once (micro-batches).
#pragma once
#include <mpi.h>

#include <deque>
#include <memory>
#include <optional>

#include "dist/mpi_collectives.h"
#include "dist/step.h"
#include "shard/model/kv_cache.h"
#include "shard/model/forward.h"
#include "shard/model/shard_model.h"
#include "shard/kernels/thread_pool.h"

namespace tandem {

struct GroupPlace {
  MPI_Comm p2p = MPI_COMM_NULL;  // all group members, ranked stage-major
  MPI_Comm tp = MPI_COMM_NULL;   // this member's stage
  int tp_size = 1, pp = 1;
  int stage = 0, tp_rank = 0;
  bool master() const { return stage == 0 && tp_rank == 0; }
};

struct StepResult {
  int64_t id = 0;
  LogitsMode mode = LogitsMode::None;
  int n_rows = 0;
  int n_vocab = 0;
  std::vector<int32_t> argmax;  // Argmax: one id per output row
  std::vector<float> logits;    // Full: n_rows × n_vocab
};

// One member's time, cumulative since it started (differences of two snapshots give a window).
// busy = compute_seconds; wait_in = idle, waiting for work: a worker for the next step (descriptor
// and activations from the previous stage), the master for results from the last stage; send =
// blocked completing sends. What the master spends outside these is the engine's own work
// (planning, sampling, detokenizing): wall - compute - wait_in - send.
struct GroupStats {
  int64_t steps = 0;           // forward steps executed
  int64_t rows = 0;            // activation rows over those steps
  double compute_seconds = 0;  // inside forward_stage (collectives included)
  double comm_seconds = 0;     // collectives + pipeline transfers
  double wait_in_seconds = 0;
  double send_seconds = 0;
  double wall_seconds = 0;     // MPI_Wtime() when the snapshot was taken
  // The same for decode steps only (no prompt chunk): T(rows) of this member's stage.
  int64_t decode_steps = 0, decode_rows = 0;
  double decode_compute_seconds = 0;
  int stage = 0, tp_rank = 0;
};

class ModelGroup {
 public:
  ModelGroup(GroupPlace place, ShardModel model, KvCache kv, int threads);
  ModelGroup(const ModelGroup&) = delete;
  ModelGroup& operator=(const ModelGroup&) = delete;

  // Master only. Validates, sends the step to the group, runs stage 0; returns the step id.
  // A step that fails validation is an error and reaches no other rank.
  Result<int64_t> submit(Step step);
  // Master only: results of Forward steps with logits, in submission order.
  bool has_pending() const { return !inflight_.empty(); }
  StepResult wait_result();
  std::optional<StepResult> poll_result();
  // Master only: convenience for one synchronous step.
  Result<StepResult> run(Step step);
  void truncate(int slot, int length);  // O(1) on every member (KV rollback / free)
  void shutdown();                       // every member's serve() returns

  // Workers: execute steps until Shutdown.
  void serve();

  const ShardModel& model() const { return model_; }
  const KvCache& kv() const { return kv_; }
  const GroupPlace& place() const { return place_; }
  GroupStats stats() const;
  // Master only: every member's stats (index = rank in the group, stage-major), taken after all
  // steps submitted so far have run on that member. Blocks until every member has answered.
  std::vector<GroupStats> member_stats();
  // The same without blocking (serve's metrics): ask once, then poll between steps; the answer
  // comes when the request has travelled down the pipeline behind the steps before it.
  void request_member_stats();
  std::optional<std::vector<GroupStats>> poll_member_stats();
  ThreadPool& pool() { return *pool_; }

 private:
  void execute(const Step& s, std::vector<float>& hidden);
  void pass_down(const Step& s, const std::vector<int32_t>& desc, std::vector<float>&& hidden);
  void finish_head(const Step& s, std::vector<float>& local_logits);
  StepResult receive_result();
  void reap_sends(bool all);
  void report_stats();

  GroupPlace place_;
  ShardModel model_;
  KvCache kv_;
  std::unique_ptr<ThreadPool> pool_;
  MpiCollectives coll_;
  ForwardScratch scratch_;
  std::vector<float> logits_local_;
  std::vector<int> vocab_counts_;
  int64_t next_id_ = 1;
  std::deque<int64_t> inflight_;       // Forward steps awaiting results (master)
  std::deque<StepResult> local_done_;  // results produced on the master itself (pp == 1)
  struct PendingSend {
    std::vector<int32_t> desc;
    std::vector<float> hidden;
    MPI_Request req[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
  };
  std::deque<std::unique_ptr<PendingSend>> sends_;
  GroupStats stats_;
  double p2p_seconds_ = 0;
  double wait_in_seconds_ = 0, send_seconds_ = 0;
  bool stats_pending_ = false;
  int stats_left_ = 0;
  std::vector<GroupStats> stats_reply_;
};

}  // namespace tandem
