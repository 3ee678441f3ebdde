#include "decode/draft_service.h"

#include <mpi.h>

#include <algorithm>

#include "decode/philox.h"

namespace tandem {

DraftService::DraftService(ModelGroup& group) : g_(group), slots_(group.kv().cfg.max_seqs) {}

void DraftService::post(const DraftRequest& r) {
  if (r.slot < 0 || r.slot >= static_cast<int>(slots_.size())) return;
  Slot& s = slots_[r.slot];
  active_.erase(r.slot);
  if (r.release) {
    s = Slot{};
    return;
  }
  const size_t keep = std::min<size_t>(std::max(r.base_len, 0), s.hist.size());
  s.hist.resize(keep);
  s.hist.insert(s.hist.end(), r.append.begin(), r.append.end());
  s.kv_len = std::min<int>(s.kv_len, static_cast<int>(keep));
  const int ctx = g_.kv().cfg.ctx;
  // The drafter must see at least one unprocessed token to produce the next distribution.
  if (s.hist.empty()) return;
  if (s.kv_len >= static_cast<int>(s.hist.size())) s.kv_len = static_cast<int>(s.hist.size()) - 1;
  Active a;
  a.req = r;
  a.req.append.clear();
  a.remaining = std::max(0, std::min(r.n_draft, ctx - static_cast<int>(s.hist.size())));
  a.block.slot = r.slot;
  a.block.epoch = r.epoch;
  a.block.start_pos = static_cast<int>(s.hist.size());
  active_[r.slot] = std::move(a);
}

std::vector<DraftBlock> DraftService::step() {
  std::vector<DraftBlock> done;
  // Requests with nothing (left) to draft complete at once.
  for (auto it = active_.begin(); it != active_.end();) {
    if (it->second.remaining == 0) {
      done.push_back(std::move(it->second.block));
      it = active_.erase(it);
    } else {
      ++it;
    }
  }
  if (active_.empty()) return done;

  Step st;
  st.op = StepOp::Forward;
  bool full = false;
  for (auto& [slot, a] : active_) {
    const Slot& s = slots_[slot];
    StepChunk c;
    c.slot = slot;
    c.pos0 = s.kv_len;
    c.tokens.assign(s.hist.begin() + s.kv_len, s.hist.end());
    st.chunks.push_back(std::move(c));
    const auto& p = a.req.params;
    full = full || !is_greedy(p) || p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  }
  st.logits = full ? LogitsMode::Full : LogitsMode::Argmax;
  const double t0 = MPI_Wtime();
  auto res = g_.run(std::move(st));
  const double dt = MPI_Wtime() - t0;
  if (!res) {
    // A request the draft model cannot take (e.g. context overflow): finish what we have.
    for (auto& [slot, a] : active_) done.push_back(std::move(a.block));
    active_.clear();
    return done;
  }
  int row = 0;
  for (auto it = active_.begin(); it != active_.end(); ++row) {
    Active& a = it->second;
    Slot& s = slots_[it->first];
    const int pos = static_cast<int>(s.hist.size());
    int32_t tok;
    if (res->mode == LogitsMode::Argmax) {
      tok = res->argmax[row];
    } else {
      const float* lg = res->logits.data() + static_cast<size_t>(row) * res->n_vocab;
      row_.assign(lg, lg + res->n_vocab);
      apply_penalties(row_, s.hist, a.req.params);
      if (is_greedy(a.req.params)) {
        tok = argmax(row_);
      } else {
        SparseDist q;
        sampling_distribution(row_, a.req.params, q);
        tok = sample(q, uniform(a.req.params.seed, pos, Purpose::kDraft));
        a.block.q.push_back(std::move(q));
      }
    }
    s.kv_len = pos;
    s.hist.push_back(tok);
    a.block.tokens.push_back(tok);
    a.seconds += dt;
    if (--a.remaining == 0) {
      a.block.seconds_per_token = a.seconds / static_cast<double>(a.block.tokens.size());
      done.push_back(std::move(a.block));
      it = active_.erase(it);
    } else {
      ++it;
    }
  }
  return done;
}

}  // namespace tandem
