// The engine on rank 0: a queue of requests fed by any thread, and a loop on the main thread
// that drives the target group (and the drafter) one ragged batch at a time.
//
// Continuous batching: requests join and leave the running batch at every step; prompts are
// prefilled in bounded chunks between decode steps; each sequence decodes in its own mode —
// plain autoregressive, vanilla speculative (draft, then verify), or PEARL (draft ranks and
// target ranks at once, with pre-verify and post-verify) — and all modes commit exactly the
// target model's tokens (lossless rule in decode/spec_verify.h). With pipeline parallelism the
// sequences form micro-batches (one per stage unless EngineOptions::micro_batches says
// otherwise), kept in flight together so every stage works.
#pragma once
#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "decode/draft_channel.h"
#include "decode/draft_length.h"
#include "decode/histogram.h"
#include "decode/request.h"
#include "decode/spec_verify.h"
#include "dist/cluster.h"
#include "shard/tokenizer/tokenizer.h"

namespace tandem {

struct EngineOptions {
  int max_queue = 64;           // requests waiting for a slot before RESOURCE_EXHAUSTED
  SpecMode speculation = SpecMode::Auto;
  int draft_len = 0;            // 0: adaptive
  int max_draft_len = 16;
  int prefill_chunk = 512;      // prompt tokens per step, over all sequences
  // Micro-batches the running sequences are dealt into, each a step of its own kept in flight
  // (0: one per pipeline stage). More than pp hides the master's per-result work and transfer
  // latency behind other micro-batches' compute, at the price of reading every stage's weights
  // once more per round.
  int micro_batches = 0;
  // Every this many seconds, ask the target's members for their busy/wait time (EngineInfo::
  // stages, serve's metrics); non-blocking. 0: never.
  double stage_stats_seconds = 0;
  VerifyRule verify_rule = VerifyRule::kLossless;  // tests only: a wrong rule shows the checks have teeth
};

struct EngineInfo {
  int max_seqs = 0, active = 0, queued = 0;
  int64_t admitted = 0, completed = 0, cancelled = 0, failed = 0;
  int64_t tokens_generated = 0, target_steps = 0;
  int64_t blocks = 0, drafted_tokens = 0;  // draft blocks used, and the tokens they proposed
  int64_t drafted = 0, accepted = 0;       // draft tokens checked by the target, and accepted
  double target_busy_s = 0;       // inside target steps
  double wait_for_draft_s = 0;    // target side idle, waiting for a draft block
  double draft_idle_s = 0;        // draft side idle, waiting for a request (draft ranks only)
  std::vector<int64_t> tested_at, accepted_at;  // per draft position in a block
  int draft_len = 0;              // tokens asked of the drafter by the latest draft request
  Histogram step_seconds{latency_buckets()};  // target steps, as rank 0 sees them (all ranks of the group)
  int64_t prompt_tokens = 0;      // prompt tokens of admitted requests
  std::vector<GroupStats> stages;  // every target member's cumulative time (stage_stats_seconds)
  SpecMode auto_mode = SpecMode::Off;
  std::string auto_reason;
  bool ready = false;
  bool draining = false;
};

class Engine {
 public:
  Engine(Cluster& cluster, Tokenizer tok, EngineOptions o);
  ~Engine();

  // Any thread; never touches MPI. Errors carry InvalidArgument / ResourceExhausted / Unavailable.
  Result<std::shared_ptr<RequestStream>> submit(GenerationRequest r);
  // Any thread: stop admitting; in-flight requests finish (drain) or end CANCELLED.
  void stop(bool drain);

  // Engine thread. Short generations in each available mode: warms caches and lets
  // --speculation auto pick the fastest mode for this layout (logged with the figures).
  Status warmup();
  // Any thread: info().ready from now on. The server calls it before it reports SERVING, so that
  // a client that saw SERVING never reads ready = false (run() sets it too, for other callers).
  void mark_ready();
  // Engine thread: serve until stop() and every admitted request has ended (drained, or
  // cancelled when stop(drain = false)). Then call shutdown_groups().
  Status run();
  // Engine thread: serve until nothing is queued or active (tandem generate, benchmarks).
  Status run_until_idle();
  // Engine thread, after run(): release the worker ranks.
  void shutdown_groups();

  EngineInfo info() const;
  const Tokenizer& tokenizer() const { return tok_; }
  const ModelConfig& config() const { return cluster_.target_file.config; }
  int ctx() const { return cluster_.ctx; }
  bool has_drafter() const { return drafter_ != nullptr; }
  bool drafter_parallel() const { return drafter_ && drafter_->parallel(); }

 private:
  struct Seq;
  struct Row;
  struct Pending {
    GenerationRequest req;
    std::shared_ptr<RequestStream> stream;
  };

  Status loop(bool until_idle);
  void admit();
  void reap();
  void plan_step(int group);
  bool plan(Seq& s, StepChunk& chunk, int& prefill_budget);
  void advance(Seq& s);
  void process(const StepResult& r, int group);
  void deliver(DraftBlock b);
  void post_draft(Seq& s, int n);
  void commit(Seq& s, int32_t tok, const Row* row);
  void finish(Seq& s, FinishReason reason, const std::string& error = {});
  void flush(Seq& s);
  Row make_row(Seq& s, const StepResult& r, int row, int pos);
  int32_t sample_row(Seq& s, const Row& row, int pos);
  bool verify(Seq& s, const Row& row, int32_t x, const SparseDist* q, int pos, int32_t& out);
  SpecMode resolve_mode(SpecMode m) const;
  bool wants_full(const Seq& s) const;

  Cluster& cluster_;
  ModelGroup& target_;
  Tokenizer tok_;
  EngineOptions o_;
  std::unique_ptr<DraftChannel> drafter_;
  DraftLength gamma_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> drain_{true};

  std::vector<std::unique_ptr<Seq>> slots_;  // by KV slot
  struct GroupState {
    bool in_flight = false;
    std::vector<int> slots;  // sequences in the submitted step, in chunk order
    double t_submit = 0;
    int rows = 0;
    int rows_planned = 0;  // while planning: rows of the sequences planned so far
    bool has_prefill = false;
  };
  std::vector<GroupState> groups_;
  std::deque<int> flight_order_;  // groups with a step in flight, oldest first
  EngineInfo info_;  // guarded by mu_ for readers
  SpecMode auto_mode_ = SpecMode::Off;
  int64_t next_epoch_ = 1;
  double last_stage_stats_ = 0;
};

}  // namespace tandem
