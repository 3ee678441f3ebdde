#include "dist/model_group.h"

#include <algorithm>
#include <cstring>

#include "dist/mpi_runtime.h"
#include "dist/polite_wait.h"
#include "shard/log.h"

namespace tandem {
namespace {

constexpr int kTagStep = 11;
constexpr int kTagHidden = 12;
constexpr int kTagResult = 13;
constexpr int kTagStats = 14;
constexpr size_t kMaxPendingSends = 16;

struct ResultHeader {
  int64_t id;
  int32_t mode, n_rows, n_vocab, pad;
};

}  // namespace

ModelGroup::ModelGroup(GroupPlace place, ShardModel model, KvCache kv, int threads)
    : place_(place),
      model_(std::move(model)),
      kv_(std::move(kv)),
      pool_(std::make_unique<ThreadPool>(threads)),
      coll_(place.tp) {
  const auto split = split_even(model_.config.n_vocab, place_.tp_size, 1);
  for (int r = 0; r < place_.tp_size; ++r) vocab_counts_.push_back(split[r + 1] - split[r]);
}

GroupStats ModelGroup::stats() const {
  GroupStats s = stats_;
  s.comm_seconds = coll_.comm_seconds + p2p_seconds_;
  s.wait_in_seconds = wait_in_seconds_;
  s.send_seconds = send_seconds_;
  s.wall_seconds = MPI_Wtime();
  s.stage = place_.stage;
  s.tp_rank = place_.tp_rank;
  return s;
}

namespace {
// GroupStats as plain doubles on the wire (the struct has ints too; keep the layout explicit).
std::vector<double> pack_stats(const GroupStats& g) {
  return {static_cast<double>(g.steps), static_cast<double>(g.rows), g.compute_seconds, g.comm_seconds,
          g.wait_in_seconds, g.send_seconds, g.wall_seconds, static_cast<double>(g.stage),
          static_cast<double>(g.tp_rank), static_cast<double>(g.decode_steps), static_cast<double>(g.decode_rows),
          g.decode_compute_seconds};
}
GroupStats unpack_stats(const std::vector<double>& v) {
  GroupStats g;
  g.steps = static_cast<int64_t>(v[0]);
  g.rows = static_cast<int64_t>(v[1]);
  g.compute_seconds = v[2];
  g.comm_seconds = v[3];
  g.wait_in_seconds = v[4];
  g.send_seconds = v[5];
  g.wall_seconds = v[6];
  g.stage = static_cast<int>(v[7]);
  g.tp_rank = static_cast<int>(v[8]);
  g.decode_steps = static_cast<int64_t>(v[9]);
  g.decode_rows = static_cast<int64_t>(v[10]);
  g.decode_compute_seconds = v[11];
  return g;
}
constexpr int kStatsDoubles = 12;
}  // namespace

void ModelGroup::report_stats() {
  const auto v = pack_stats(stats());
  MPI_Send(v.data(), kStatsDoubles, MPI_DOUBLE, 0, kTagStats, place_.p2p);
}

void ModelGroup::request_member_stats() {
  if (stats_pending_) return;
  Step s;
  s.op = StepOp::Stats;
  s.logits = LogitsMode::None;
  (void)submit(std::move(s));
  int n = 1;
  MPI_Comm_size(place_.p2p, &n);
  stats_reply_.assign(n, GroupStats{});
  stats_reply_[0] = stats();
  stats_left_ = n - 1;
  stats_pending_ = true;
}

std::optional<std::vector<GroupStats>> ModelGroup::poll_member_stats() {
  if (!stats_pending_) return std::nullopt;
  while (stats_left_ > 0) {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, kTagStats, place_.p2p, &flag, &st);
    if (!flag) return std::nullopt;
    std::vector<double> v(kStatsDoubles);
    MPI_Recv(v.data(), kStatsDoubles, MPI_DOUBLE, st.MPI_SOURCE, kTagStats, place_.p2p, MPI_STATUS_IGNORE);
    if (st.MPI_SOURCE > 0 && st.MPI_SOURCE < static_cast<int>(stats_reply_.size())) stats_reply_[st.MPI_SOURCE] = unpack_stats(v);
    --stats_left_;
  }
  stats_pending_ = false;
  return std::move(stats_reply_);
}

std::vector<GroupStats> ModelGroup::member_stats() {
  request_member_stats();
  while (true) {
    if (auto r = poll_member_stats()) return *r;
    MPI_Status st;
    probe_polite(MPI_ANY_SOURCE, kTagStats, place_.p2p, &st);
  }
}

void ModelGroup::reap_sends(bool all) {
  while (!sends_.empty()) {
    auto& p = *sends_.front();
    if (all || sends_.size() > kMaxPendingSends) {
      const double t0 = MPI_Wtime();
      MPI_Waitall(2, p.req, MPI_STATUSES_IGNORE);
      p2p_seconds_ += MPI_Wtime() - t0;
      send_seconds_ += MPI_Wtime() - t0;
    } else {
      int done = 0;
      MPI_Testall(2, p.req, &done, MPI_STATUSES_IGNORE);
      if (!done) return;
    }
    sends_.pop_front();
  }
}

void ModelGroup::finish_head(const Step& s, std::vector<float>& local) {
  const int n_out = step_out_rows(s);
  const int nv = model_.ranges.n_vocab();
  StepResult res;
  res.id = s.id;
  res.mode = s.logits;
  res.n_rows = n_out;
  res.n_vocab = model_.config.n_vocab;
  if (s.logits == LogitsMode::Argmax) {
    std::vector<float> mx(n_out);
    res.argmax.resize(n_out);
    for (int r = 0; r < n_out; ++r) {
      const float* row = local.data() + static_cast<size_t>(r) * nv;
      int best = 0;
      for (int j = 1; j < nv; ++j)
        if (row[j] > row[best]) best = j;  // strict: ties keep the lowest id
      mx[r] = row[best];
      res.argmax[r] = model_.ranges.vocab_begin + best;
    }
    coll_.argmax_rows(mx, res.argmax);
  } else {
    if (place_.tp_rank == 0) res.logits.resize(static_cast<size_t>(n_out) * res.n_vocab);
    coll_.gather_vocab(local.data(), n_out, vocab_counts_, res.logits.data());
  }
  if (place_.tp_rank != 0) return;
  if (place_.master()) {
    local_done_.push_back(std::move(res));
    return;
  }
  // Last stage -> master, without blocking this stage on the master being ready to receive.
  auto p = std::make_unique<PendingSend>();
  ResultHeader h{res.id, static_cast<int32_t>(res.mode), res.n_rows, res.n_vocab, 0};
  const size_t payload = res.mode == LogitsMode::Argmax ? res.argmax.size() * 4 : res.logits.size() * 4;
  p->hidden.resize((sizeof(h) + payload + 3) / 4);
  auto* bytes = reinterpret_cast<uint8_t*>(p->hidden.data());
  std::memcpy(bytes, &h, sizeof(h));
  std::memcpy(bytes + sizeof(h), res.mode == LogitsMode::Argmax ? static_cast<const void*>(res.argmax.data()) : res.logits.data(), payload);
  MPI_Isend(p->hidden.data(), static_cast<int>(sizeof(h) + payload), MPI_BYTE, 0, kTagResult, place_.p2p, &p->req[0]);
  sends_.push_back(std::move(p));
  reap_sends(false);
}

void ModelGroup::execute(const Step& s, std::vector<float>& hidden) {
  if (s.op == StepOp::Truncate) {
    for (const auto& c : s.chunks)
      if (c.slot >= 0 && c.slot < kv_.cfg.max_seqs) kv_.length[c.slot] = std::min(kv_.length[c.slot], c.pos0);
    return;
  }
  if (s.op != StepOp::Forward) return;
  const auto chunks = seq_chunks(s);
  const double t0 = MPI_Wtime();
  const bool head = model_.spec.has_head && s.logits != LogitsMode::None;
  auto st = forward_stage(model_, kv_, chunks, coll_, *pool_, scratch_, hidden, head ? &logits_local_ : nullptr);
  if (!st) mpi_abort_job("step " + std::to_string(s.id) + " failed on a group member: " + st.error().message);
  const double dt = MPI_Wtime() - t0;
  stats_.compute_seconds += dt;
  ++stats_.steps;
  stats_.rows += step_rows(s);
  // A prompt chunk: several tokens of which only the last gives logits.
  const bool prefill = std::any_of(s.chunks.begin(), s.chunks.end(), [](const StepChunk& c) { return !c.all_logits && c.tokens.size() > 1; });
  if (!prefill) {
    ++stats_.decode_steps;
    stats_.decode_rows += step_rows(s);
    stats_.decode_compute_seconds += dt;
  }
  if (head) finish_head(s, logits_local_);
}

void ModelGroup::pass_down(const Step& s, const std::vector<int32_t>& desc, std::vector<float>&& hidden) {
  const int next = (place_.stage + 1) * place_.tp_size + place_.tp_rank;
  auto p = std::make_unique<PendingSend>();
  p->desc = desc;
  MPI_Isend(p->desc.data(), static_cast<int>(p->desc.size()), MPI_INT32_T, next, kTagStep, place_.p2p, &p->req[0]);
  if (s.op == StepOp::Forward) {
    p->hidden = std::move(hidden);
    MPI_Isend(p->hidden.data(), static_cast<int>(p->hidden.size()), MPI_FLOAT, next, kTagHidden, place_.p2p, &p->req[1]);
  }
  sends_.push_back(std::move(p));
  reap_sends(false);
}

Result<int64_t> ModelGroup::submit(Step step) {
  step.id = next_id_++;
  if (step.op == StepOp::Forward) {
    const auto chunks = seq_chunks(step);
    TANDEM_TRY(check_batch(model_, kv_, chunks));
    if (chunks.empty()) return make_error("empty forward step");
  }
  const auto desc = encode_step(step);
  if (place_.tp_size > 1) {
    int len = static_cast<int>(desc.size());
    MPI_Request r;
    MPI_Ibcast(&len, 1, MPI_INT, 0, place_.tp, &r);
    MPI_Wait(&r, MPI_STATUS_IGNORE);
    MPI_Ibcast(const_cast<int32_t*>(desc.data()), len, MPI_INT32_T, 0, place_.tp, &r);
    MPI_Wait(&r, MPI_STATUS_IGNORE);
  }
  std::vector<float> hidden;
  const bool wants_result = step.op == StepOp::Forward && step.logits != LogitsMode::None;
  if (wants_result) inflight_.push_back(step.id);
  execute(step, hidden);
  if (place_.pp > 1) pass_down(step, desc, std::move(hidden));
  return step.id;
}

StepResult ModelGroup::receive_result() {
  const int last = (place_.pp - 1) * place_.tp_size;
  MPI_Status st;
  const double t0 = MPI_Wtime();
  probe_polite(last, kTagResult, place_.p2p, &st);
  int count = 0;
  MPI_Get_count(&st, MPI_BYTE, &count);
  std::vector<uint8_t> buf(count);
  MPI_Recv(buf.data(), count, MPI_BYTE, last, kTagResult, place_.p2p, MPI_STATUS_IGNORE);
  p2p_seconds_ += MPI_Wtime() - t0;
  wait_in_seconds_ += MPI_Wtime() - t0;
  ResultHeader h;
  std::memcpy(&h, buf.data(), sizeof(h));
  StepResult r;
  r.id = h.id;
  r.mode = static_cast<LogitsMode>(h.mode);
  r.n_rows = h.n_rows;
  r.n_vocab = h.n_vocab;
  const size_t payload = count - sizeof(h);
  if (r.mode == LogitsMode::Argmax) {
    r.argmax.resize(payload / 4);
    std::memcpy(r.argmax.data(), buf.data() + sizeof(h), payload);
  } else {
    r.logits.resize(payload / 4);
    std::memcpy(r.logits.data(), buf.data() + sizeof(h), payload);
  }
  return r;
}

StepResult ModelGroup::wait_result() {
  StepResult r;
  if (!local_done_.empty()) {
    r = std::move(local_done_.front());
    local_done_.pop_front();
  } else {
    r = receive_result();
  }
  if (inflight_.empty() || inflight_.front() != r.id)
    mpi_abort_job("pipeline returned step " + std::to_string(r.id) + " out of order");
  inflight_.pop_front();
  return r;
}

std::optional<StepResult> ModelGroup::poll_result() {
  if (inflight_.empty()) return std::nullopt;
  if (local_done_.empty()) {
    if (place_.pp == 1) return std::nullopt;
    int flag = 0;
    MPI_Iprobe((place_.pp - 1) * place_.tp_size, kTagResult, place_.p2p, &flag, MPI_STATUS_IGNORE);
    if (!flag) return std::nullopt;
  }
  return wait_result();
}

Result<StepResult> ModelGroup::run(Step step) {
  auto id = submit(std::move(step));
  if (!id) return id.error();
  while (true) {
    StepResult r = wait_result();
    if (r.id == *id) return r;
  }
}

void ModelGroup::truncate(int slot, int length) {
  Step s;
  s.op = StepOp::Truncate;
  s.logits = LogitsMode::None;
  StepChunk c;
  c.slot = slot;
  c.pos0 = length;
  s.chunks.push_back(c);
  (void)submit(std::move(s));
}

void ModelGroup::shutdown() {
  if (stats_pending_) (void)member_stats();  // no answer left unreceived
  Step s;
  s.op = StepOp::Shutdown;
  s.logits = LogitsMode::None;
  (void)submit(std::move(s));
  while (!inflight_.empty()) (void)wait_result();
  reap_sends(true);
}

void ModelGroup::serve() {
  const int prev = (place_.stage - 1) * place_.tp_size + place_.tp_rank;
  std::vector<int32_t> desc;
  std::vector<float> hidden;
  while (true) {
    const double t_wait = MPI_Wtime();
    if (place_.stage == 0) {
      int len = 0;
      MPI_Request r;
      MPI_Ibcast(&len, 1, MPI_INT, 0, place_.tp, &r);
      wait_polite(&r);
      desc.resize(len);
      MPI_Ibcast(desc.data(), len, MPI_INT32_T, 0, place_.tp, &r);
      MPI_Wait(&r, MPI_STATUS_IGNORE);
    } else {
      MPI_Status st;
      probe_polite(prev, kTagStep, place_.p2p, &st);
      int len = 0;
      MPI_Get_count(&st, MPI_INT32_T, &len);
      desc.resize(len);
      MPI_Recv(desc.data(), len, MPI_INT32_T, prev, kTagStep, place_.p2p, MPI_STATUS_IGNORE);
    }
    auto step = decode_step(desc);
    if (!step) mpi_abort_job("bad step descriptor: " + step.error().message);
    if (place_.stage > 0 && step->op == StepOp::Forward) {
      hidden.resize(static_cast<size_t>(step_rows(*step)) * model_.config.dim);
      const double t0 = MPI_Wtime();
      MPI_Recv(hidden.data(), static_cast<int>(hidden.size()), MPI_FLOAT, prev, kTagHidden, place_.p2p, MPI_STATUS_IGNORE);
      p2p_seconds_ += MPI_Wtime() - t0;
    }
    wait_in_seconds_ += MPI_Wtime() - t_wait;
    execute(*step, hidden);
    if (place_.stage + 1 < place_.pp) pass_down(*step, desc, std::move(hidden));
    if (step->op == StepOp::Stats) report_stats();
    hidden.clear();
    if (step->op == StepOp::Shutdown) break;
  }
  reap_sends(true);
}

}  // namespace tandem
