#include "decode/draft_channel.h"

#include <deque>

#include "decode/draft_service.h"
#include "dist/polite_wait.h"
#include "shard/log.h"

namespace tandem {
namespace {

constexpr int kTagDraftRequest = 21;
constexpr int kTagDraftBlock = 22;
constexpr int kShutdownSlot = -1;

class LocalModelChannel final : public DraftChannel {
 public:
  explicit LocalModelChannel(ModelGroup& g) : svc_(g) {}
  void post(const DraftRequest& r) override { svc_.post(r); }
  std::optional<DraftBlock> poll() override {
    if (ready_.empty() && svc_.busy()) return wait();
    if (ready_.empty()) return std::nullopt;
    DraftBlock b = std::move(ready_.front());
    ready_.pop_front();
    return b;
  }
  DraftBlock wait() override {
    while (ready_.empty() && svc_.busy())
      for (auto& b : svc_.step()) ready_.push_back(std::move(b));
    DraftBlock b = std::move(ready_.front());
    ready_.pop_front();
    return b;
  }
  bool parallel() const override { return false; }
  const char* name() const override { return "draft model (rank 0)"; }

 private:
  DraftService svc_;
  std::deque<DraftBlock> ready_;
};

class NgramChannel final : public DraftChannel {
 public:
  NgramChannel(int max_seqs, NgramOptions o) : hist_(max_seqs), o_(o) {}
  void post(const DraftRequest& r) override {
    if (r.slot < 0 || r.slot >= static_cast<int>(hist_.size())) return;
    auto& h = hist_[r.slot];
    if (r.release) {
      h.clear();
      return;
    }
    h.resize(std::min<size_t>(std::max(r.base_len, 0), h.size()));
    h.insert(h.end(), r.append.begin(), r.append.end());
    DraftBlock b;
    b.slot = r.slot;
    b.epoch = r.epoch;
    b.start_pos = static_cast<int>(h.size());
    b.tokens = ngram_draft(h, r.n_draft, o_);
    // The lookup proposes a token with certainty: q is one-hot, which keeps the accept rule exact.
    if (!is_greedy(r.params))
      for (int32_t t : b.tokens) b.q.push_back(SparseDist{{t}, {1.0f}});
    h.insert(h.end(), b.tokens.begin(), b.tokens.end());
    ready_.push_back(std::move(b));
  }
  std::optional<DraftBlock> poll() override {
    if (ready_.empty()) return std::nullopt;
    DraftBlock b = std::move(ready_.front());
    ready_.pop_front();
    return b;
  }
  DraftBlock wait() override { return *poll(); }
  bool parallel() const override { return false; }
  const char* name() const override { return "n-gram lookup"; }

 private:
  std::vector<std::vector<int32_t>> hist_;
  NgramOptions o_;
  std::deque<DraftBlock> ready_;
};

class RemoteChannel final : public DraftChannel {
 public:
  explicit RemoteChannel(MPI_Comm heads) : heads_(heads) {}
  ~RemoteChannel() override { reap(true); }
  void post(const DraftRequest& r) override {
    sends_.push_back(encode_request(r));
    reqs_.push_back(MPI_REQUEST_NULL);
    MPI_Isend(sends_.back().data(), static_cast<int>(sends_.back().size()), MPI_BYTE, 1, kTagDraftRequest, heads_,
              &reqs_.back());
    reap(false);
  }
  std::optional<DraftBlock> poll() override {
    int flag = 0;
    MPI_Status st;
    MPI_Iprobe(1, kTagDraftBlock, heads_, &flag, &st);
    if (!flag) return std::nullopt;
    return receive(st);
  }
  DraftBlock wait() override {
    MPI_Status st;
    probe_polite(1, kTagDraftBlock, heads_, &st);
    return receive(st);
  }
  bool parallel() const override { return true; }
  const char* name() const override { return "draft group (own ranks)"; }
  void shutdown() override {
    DraftRequest r;
    r.slot = kShutdownSlot;
    post(r);
    reap(true);
    // Drain blocks still in flight up to the master's acknowledgement, so its sends complete.
    while (wait().slot != kShutdownSlot) {
    }
  }

 private:
  DraftBlock receive(MPI_Status& st) {
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    std::vector<uint8_t> buf(n);
    MPI_Recv(buf.data(), n, MPI_BYTE, 1, kTagDraftBlock, heads_, MPI_STATUS_IGNORE);
    DraftBlock b;
    if (!decode_block(buf, b)) spdlog::error("malformed draft block ({} bytes) ignored", n);
    return b;
  }
  void reap(bool all) {
    while (!reqs_.empty()) {
      int done = 0;
      if (all) {
        MPI_Wait(&reqs_.front(), MPI_STATUS_IGNORE);
        done = 1;
      } else {
        MPI_Test(&reqs_.front(), &done, MPI_STATUS_IGNORE);
      }
      if (!done) return;
      reqs_.pop_front();
      sends_.pop_front();
    }
  }
  MPI_Comm heads_;
  std::deque<std::vector<uint8_t>> sends_;
  std::deque<MPI_Request> reqs_;
};

}  // namespace

std::unique_ptr<DraftChannel> local_model_channel(ModelGroup& draft) { return std::make_unique<LocalModelChannel>(draft); }
std::unique_ptr<DraftChannel> ngram_channel(int max_seqs, NgramOptions o) { return std::make_unique<NgramChannel>(max_seqs, o); }
std::unique_ptr<DraftChannel> remote_channel(MPI_Comm heads) { return std::make_unique<RemoteChannel>(heads); }

void run_draft_master(ModelGroup& draft, MPI_Comm heads) {
  DraftService svc(draft);
  std::deque<std::vector<uint8_t>> sends;
  std::deque<MPI_Request> reqs;
  bool stop = false;
  double idle = 0;  // waiting for rank 0 with nothing to draft: PEARL's "mutual waiting", draft side
  auto receive_one = [&](MPI_Status& st) {
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    std::vector<uint8_t> buf(n);
    MPI_Recv(buf.data(), n, MPI_BYTE, 0, kTagDraftRequest, heads, MPI_STATUS_IGNORE);
    DraftRequest r;
    if (!decode_request(buf, r)) {
      spdlog::error("malformed draft request ({} bytes) ignored", n);
      return;
    }
    if (r.slot == kShutdownSlot) stop = true;
    else svc.post(r);
  };
  while (!stop) {
    // Take every request that has arrived: a newer request for a slot replaces the one in
    // progress, so work on a block the target has already rejected stops at once.
    while (true) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(0, kTagDraftRequest, heads, &flag, &st);
      if (!flag) break;
      receive_one(st);
    }
    if (stop) break;
    if (!svc.busy()) {
      MPI_Status st;
      const double t0 = MPI_Wtime();
      probe_polite(0, kTagDraftRequest, heads, &st);
      idle += MPI_Wtime() - t0;
      receive_one(st);
      continue;
    }
    for (auto& b : svc.step()) {
      b.idle_seconds = idle;
      idle = 0;
      sends.push_back(encode_block(b));
      reqs.push_back(MPI_REQUEST_NULL);
      MPI_Isend(sends.back().data(), static_cast<int>(sends.back().size()), MPI_BYTE, 0, kTagDraftBlock, heads,
                &reqs.back());
    }
    while (!reqs.empty()) {
      int done = 0;
      MPI_Test(&reqs.front(), &done, MPI_STATUS_IGNORE);
      if (!done) break;
      reqs.pop_front();
      sends.pop_front();
    }
  }
  DraftBlock ack;
  ack.slot = kShutdownSlot;
  sends.push_back(encode_block(ack));
  reqs.push_back(MPI_REQUEST_NULL);
  MPI_Isend(sends.back().data(), static_cast<int>(sends.back().size()), MPI_BYTE, 0, kTagDraftBlock, heads, &reqs.back());
  for (auto& r : reqs) MPI_Wait(&r, MPI_STATUS_IGNORE);
  draft.shutdown();
}

}  // namespace tandem
