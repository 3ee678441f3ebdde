#include "decode/engine.h"

#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <optional>

#include "decode/philox.h"
#include "decode/spec_verify.h"
#include "shard/log.h"

namespace tandem {

struct Engine::Row {
  bool greedy = true;
  int32_t top = 0;
  SparseDist dist;             // sampled: the target distribution at this position
  std::vector<float> logits;   // kept only for logprobs
};

struct Engine::Seq {
  GenerationRequest req;
  std::shared_ptr<RequestStream> stream;
  int slot = 0, group = 0;
  SpecMode mode = SpecMode::Off;
  std::vector<int32_t> tokens;  // prompt + committed output
  int n_prompt = 0;
  int target_kv = 0;            // tokens[0, target_kv) are in the target's KV cache
  std::optional<Row> pending;   // the target distribution for position tokens.size()
  struct Drafted {
    int32_t tok;
    SparseDist q;
  };
  std::deque<Drafted> drafts;     // proposals for positions tokens.size() + i
  std::vector<Drafted> verifying;  // drafts inside the in-flight target step
  int64_t epoch = 0, outstanding_epoch = -1;  // a draft request of this epoch is in progress
  std::vector<int32_t> draft_view;             // the drafter's copy of the sequence
  bool in_flight = false;
  int chunk_pos0 = 0, chunk_committed = 0;
  bool chunk_all = false;
  std::optional<StreamDecoder> dec;
  std::optional<StopState> stop;
  GenerationEvent out;
  Usage usage;
  double t_start = 0;
  bool finished = false;
  bool outstanding() const { return outstanding_epoch == epoch; }
};

namespace {
double now() { return MPI_Wtime(); }
}  // namespace

Engine::Engine(Cluster& cluster, Tokenizer tok, EngineOptions o)
    : cluster_(cluster),
      target_(*cluster.target),
      tok_(std::move(tok)),
      o_(o),
      gamma_(o.draft_len, o.max_draft_len) {
  const int max_seqs = cluster.opts.max_seqs;
  slots_.resize(max_seqs);
  groups_.resize(o.micro_batches > 0 ? o.micro_batches : cluster.opts.layout.pp);
  info_.max_seqs = max_seqs;
  info_.tested_at.assign(o_.max_draft_len + 1, 0);
  info_.accepted_at.assign(o_.max_draft_len + 1, 0);
  switch (cluster.draft_spec.kind) {
    case DraftSpec::Kind::None: break;
    case DraftSpec::Kind::Ngram: drafter_ = ngram_channel(max_seqs); break;
    case DraftSpec::Kind::Model:
    case DraftSpec::Kind::Layers:
      drafter_ = cluster.remote_draft() ? remote_channel(cluster.comms.heads) : local_model_channel(*cluster.draft);
      break;
  }
  auto_mode_ = !drafter_ ? SpecMode::Off : drafter_->parallel() ? SpecMode::Pearl : SpecMode::Sd;
  info_.auto_mode = auto_mode_;
  info_.auto_reason = drafter_ ? "default for this drafter (no start-up profile yet)" : "no drafter";
}

Engine::~Engine() = default;

SpecMode Engine::resolve_mode(SpecMode m) const {
  if (m == SpecMode::Auto) m = o_.speculation == SpecMode::Auto ? auto_mode_ : o_.speculation;
  if (m == SpecMode::Auto) m = auto_mode_;
  return m;
}

Result<std::shared_ptr<RequestStream>> Engine::submit(GenerationRequest r) {
  const int ctx = cluster_.ctx;
  if (r.prompt.empty()) return make_error(ErrorCode::InvalidArgument, "the prompt is empty");
  for (int32_t t : r.prompt)
    if (!tok_.valid(t)) return make_error(ErrorCode::InvalidArgument, "token id {} is outside the vocabulary [0, {})", t, tok_.n_vocab());
  if (r.stop.max_tokens < 1) return make_error(ErrorCode::InvalidArgument, "max_tokens must be at least 1 (got {})", r.stop.max_tokens);
  if (static_cast<int64_t>(r.prompt.size()) + r.stop.max_tokens > ctx)
    return make_error(ErrorCode::InvalidArgument, "prompt ({} tokens) + max_tokens ({}) exceeds the context size {}",
                      r.prompt.size(), r.stop.max_tokens, ctx);
  if (auto st = validate(r.sampling); !st) return make_error(ErrorCode::InvalidArgument, "{}", st.error().message);
  for (int32_t t : r.stop.stop_token_ids)
    if (!tok_.valid(t)) return make_error(ErrorCode::InvalidArgument, "stop token id {} is outside the vocabulary", t);
  const SpecMode m = r.speculation == SpecMode::Auto ? SpecMode::Auto : r.speculation;
  if ((m == SpecMode::Sd || m == SpecMode::Pearl) && !drafter_)
    return make_error(ErrorCode::InvalidArgument, "speculation '{}' needs a drafter, and this server was started without --draft",
                      spec_mode_name(m));
  if (m == SpecMode::Pearl && !drafter_->parallel())
    return make_error(ErrorCode::InvalidArgument, "speculation 'pearl' needs the drafter on its own ranks (--draft-tp >= 1); "
                      "this server's drafter is the {}", drafter_->name());
  if (r.draft_len < 0 || r.draft_len > o_.max_draft_len)
    return make_error(ErrorCode::InvalidArgument, "draft_len must be in [0, {}] (got {})", o_.max_draft_len, r.draft_len);
  auto stream = std::make_shared<RequestStream>();
  {
    std::lock_guard lk(mu_);
    // Checked under the lock stop() takes: nothing enters the queue after the loop may have seen
    // it empty for the last time.
    if (stopping_) return make_error(ErrorCode::Unavailable, "the server is shutting down");
    if (static_cast<int>(queue_.size()) >= o_.max_queue)
      return make_error(ErrorCode::ResourceExhausted, "the request queue is full ({} waiting); retry later", queue_.size());
    queue_.push_back({std::move(r), stream});
    info_.queued = static_cast<int>(queue_.size());
  }
  cv_.notify_one();
  return stream;
}

void Engine::stop(bool drain) {
  {
    std::lock_guard lk(mu_);
    drain_ = drain;
    stopping_ = true;
    info_.draining = true;
    info_.ready = false;
  }
  cv_.notify_all();
}

EngineInfo Engine::info() const {
  std::lock_guard lk(mu_);
  return info_;
}

bool Engine::wants_full(const Seq& s) const {
  const auto& p = s.req.sampling;
  return !is_greedy(p) || s.req.logprobs || p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f ||
         p.frequency_penalty != 0.0f;
}

void Engine::admit() {
  std::deque<Pending> fresh;
  {
    std::lock_guard lk(mu_);
    for (int slot = 0; slot < static_cast<int>(slots_.size()) && !queue_.empty(); ++slot) {
      if (slots_[slot]) continue;
      auto s = std::make_unique<Seq>();
      s->req = std::move(queue_.front().req);
      s->stream = std::move(queue_.front().stream);
      queue_.pop_front();
      s->slot = slot;
      slots_[slot] = std::move(s);
      ++info_.admitted;
    }
    info_.queued = static_cast<int>(queue_.size());
  }
  std::vector<int> load(groups_.size(), 0);
  for (auto& sp : slots_)
    if (sp && sp->dec) ++load[sp->group];
  int64_t prompt_tokens = 0;
  for (auto& sp : slots_) {
    if (!sp || sp->dec) continue;
    Seq& s = *sp;
    prompt_tokens += static_cast<int64_t>(s.req.prompt.size());
    s.group = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    ++load[s.group];
    s.mode = resolve_mode(s.req.speculation);
    if (!drafter_ || (s.mode == SpecMode::Pearl && !drafter_->parallel())) s.mode = drafter_ ? SpecMode::Sd : SpecMode::Off;
    s.tokens = s.req.prompt;
    s.n_prompt = static_cast<int>(s.tokens.size());
    s.dec.emplace(tok_, s.tokens.size() == 1 && s.tokens[0] == tok_.bos());
    s.stop.emplace(s.req.stop);
    s.t_start = now();
    s.usage.prompt_tokens = s.n_prompt;
    s.usage.mode = s.mode;
    s.epoch = next_epoch_++;  // engine-wide: a late block for a slot's previous owner is never taken
    spdlog::debug("request {} admitted to slot {} ({} prompt tokens, {})", s.req.id, s.slot, s.n_prompt, spec_mode_name(s.mode));
  }
  if (prompt_tokens) {
    std::lock_guard lk(mu_);
    info_.prompt_tokens += prompt_tokens;
  }
}

void Engine::finish(Seq& s, FinishReason reason, const std::string& error) {
  if (s.finished) return;
  s.finished = true;
  // Text still held back (a stop-string prefix, an incomplete UTF-8 tail) is released unless a
  // stop condition ended the stream, or the client is gone.
  if (reason == FinishReason::kLength || reason == FinishReason::kEos) s.out.text += s.stop->finish() + s.dec->finish();
  s.out.final = true;
  s.out.reason = reason;
  s.out.error = error;
  s.usage.total_ms = (now() - s.t_start) * 1e3;
  s.out.usage = s.usage;
  s.drafts.clear();
  std::lock_guard lk(mu_);
  if (reason == FinishReason::kCancelled) ++info_.cancelled;
  else if (reason == FinishReason::kError) ++info_.failed;
  else ++info_.completed;
}

void Engine::flush(Seq& s) {
  if (s.out.ids.empty() && s.out.text.empty() && !s.out.final) return;
  s.stream->push(std::move(s.out));
  s.out = GenerationEvent{};
}

void Engine::reap() {
  // Requests cancelled while still queued leave the queue now; when stopping without draining,
  // everything queued ends CANCELLED. Each gets its final message.
  std::vector<std::shared_ptr<RequestStream>> dropped;
  {
    std::lock_guard lk(mu_);
    const bool cancel_all = stopping_ && !drain_;
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (cancel_all || it->stream->cancelled()) {
        dropped.push_back(std::move(it->stream));
        it = queue_.erase(it);
        ++info_.cancelled;
      } else {
        ++it;
      }
    }
    info_.queued = static_cast<int>(queue_.size());
  }
  for (auto& st : dropped) {
    GenerationEvent e;
    e.final = true;
    e.reason = FinishReason::kCancelled;
    if (stopping_) e.error = "the server is shutting down";
    st->push(std::move(e));
  }
  // A finished sequence gives its slot back before its final message goes out, so a client that
  // sees the end of its stream also sees the slot free.
  std::vector<Seq*> to_flush;
  std::vector<std::unique_ptr<Seq>> released;
  for (auto& sp : slots_) {
    if (!sp) continue;
    Seq& s = *sp;
    if (!s.finished && s.stream->cancelled()) finish(s, FinishReason::kCancelled);
    if (!s.finished && stopping_ && !drain_) finish(s, FinishReason::kCancelled, "the server is shutting down");
    if (s.finished && !s.in_flight) {
      if (drafter_) {
        DraftRequest r;
        r.slot = s.slot;
        r.release = true;
        drafter_->post(r);
      }
      spdlog::debug("request {} done: {} tokens in {:.1f} ms", s.req.id, s.usage.completion_tokens, s.usage.total_ms);
      released.push_back(std::move(sp));  // the slot's KV is simply overwritten by its next owner
    } else {
      to_flush.push_back(&s);
    }
  }
  {
    std::lock_guard lk(mu_);
    info_.active = static_cast<int>(std::count_if(slots_.begin(), slots_.end(), [](auto& p) { return p != nullptr; }));
  }
  for (auto& s : released) flush(*s);
  for (Seq* s : to_flush) flush(*s);
}

void Engine::commit(Seq& s, int32_t tok, const Row* row) {
  if (s.finished) return;
  const int pos = static_cast<int>(s.tokens.size());
  s.tokens.push_back(tok);
  if (s.usage.completion_tokens++ == 0) s.usage.ttft_ms = (now() - s.t_start) * 1e3;
  s.out.ids.push_back(tok);
  if (s.req.logprobs) s.out.logprobs.push_back(row && !row->logits.empty() ? logprob(row->logits, tok) : 0.0f);
  if (s.req.top_logprobs > 0) {
    auto& top = s.out.top_logprobs.emplace_back();
    if (row && !row->logits.empty())
      for (auto [id, lp] : top_logprobs(row->logits, s.req.top_logprobs)) top.push_back({id, lp});
  }
  {
    std::lock_guard lk(mu_);
    ++info_.tokens_generated;
  }
  const StopUpdate u = s.stop->push(tok, tok_.is_eog(tok), s.dec->push(tok));
  s.out.text += u.text;
  if (u.finished()) finish(s, u.finish);
  else if (pos + 1 >= cluster_.ctx) finish(s, FinishReason::kLength);
}

Engine::Row Engine::make_row(Seq& s, const StepResult& r, int row, int pos) {
  Row out;
  if (r.mode == LogitsMode::Argmax) {
    out.greedy = true;
    out.top = r.argmax[row];
    return out;
  }
  const float* lg = r.logits.data() + static_cast<size_t>(row) * r.n_vocab;
  std::vector<float> logits(lg, lg + r.n_vocab);
  apply_penalties(logits, std::span<const int32_t>(s.tokens.data(), static_cast<size_t>(pos)), s.req.sampling);
  out.greedy = is_greedy(s.req.sampling);
  if (out.greedy) out.top = argmax(logits);
  else sampling_distribution(logits, s.req.sampling, out.dist);
  if (s.req.logprobs) out.logits = std::move(logits);
  return out;
}

int32_t Engine::sample_row(Seq& s, const Row& row, int pos) {
  if (row.greedy) return row.top;
  return sample(row.dist, uniform(s.req.sampling.seed, pos, Purpose::kSample));
}

bool Engine::verify(Seq& s, const Row& row, int32_t x, const SparseDist* q, int pos, int32_t& out) {
  if (row.greedy) {
    out = row.top;
    return x == row.top;
  }
  static const SparseDist kEmpty;
  const SparseDist* p = &row.dist;
  auto v = verify_draft(std::span<const SparseDist>(p, 1), std::span<const SparseDist>(q ? q : &kEmpty, 1),
                        std::span<const int32_t>(&x, 1), s.req.sampling.seed, pos, false, o_.verify_rule);
  if (!v || v->n_accepted == 1) {
    out = x;
    return v.ok();
  }
  out = v->next_token;
  return false;
}

void Engine::advance(Seq& s) {
  while (!s.finished && s.pending) {
    const int pos = static_cast<int>(s.tokens.size());
    if (!s.drafts.empty()) {
      Seq::Drafted d = std::move(s.drafts.front());
      s.drafts.pop_front();
      int32_t tok;
      const bool ok = verify(s, *s.pending, d.tok, d.q.empty() ? nullptr : &d.q, pos, tok);
      ++s.usage.drafted;
      s.usage.accepted += ok;
      {
        std::lock_guard lk(mu_);
        ++info_.drafted;
        info_.accepted += ok;
        ++info_.tested_at[0];
        info_.accepted_at[0] += ok;
      }
      gamma_.record_acceptance(1, ok);
      Row row = std::move(*s.pending);
      s.pending.reset();
      if (!ok) {
        s.drafts.clear();
        s.epoch = next_epoch_++;
      }
      commit(s, tok, &row);
    } else if (s.mode == SpecMode::Off || !drafter_ || !s.outstanding()) {
      Row row = std::move(*s.pending);
      s.pending.reset();
      commit(s, sample_row(s, row, pos), &row);
    } else {
      return;  // PEARL: the next draft block will be checked against this distribution
    }
  }
}

void Engine::post_draft(Seq& s, int n) {
  DraftRequest r;
  r.slot = s.slot;
  r.epoch = s.epoch;
  // Draft after the drafts still waiting for verification (post-verify), else after the commit;
  // the drafter keeps the longest prefix its copy shares with that view and rolls back the rest.
  std::vector<int32_t> view = s.tokens;
  for (const auto& d : s.verifying) view.push_back(d.tok);
  for (const auto& d : s.drafts) view.push_back(d.tok);
  size_t common = 0;
  while (common < s.draft_view.size() && common < view.size() && s.draft_view[common] == view[common]) ++common;
  r.base_len = static_cast<int>(common);
  r.append.assign(view.begin() + common, view.end());
  const int remaining = s.req.stop.max_tokens - s.usage.completion_tokens - static_cast<int>(view.size() - s.tokens.size());
  r.n_draft = std::max(0, std::min({n, remaining, cluster_.ctx - static_cast<int>(view.size()) - 1}));
  r.params = s.req.sampling;
  spdlog::debug("draft request slot {}: {} tokens (alpha {:.2f}, draft {:.2f} ms/token, target T(1) {:.1f} ms, T({}) {:.1f} ms)",
                s.slot, r.n_draft, gamma_.acceptance(), gamma_.draft_token() * 1e3, gamma_.target_step(1) * 1e3, n + 1,
                gamma_.target_step(n + 1) * 1e3);
  s.draft_view = std::move(view);
  s.outstanding_epoch = s.epoch;
  {
    std::lock_guard lk(mu_);
    info_.draft_len = r.n_draft;
  }
  drafter_->post(r);
}

void Engine::deliver(DraftBlock b) {
  if (b.idle_seconds > 0) {
    std::lock_guard lk(mu_);
    info_.draft_idle_s += b.idle_seconds;
  }
  if (b.slot < 0 || b.slot >= static_cast<int>(slots_.size()) || !slots_[b.slot]) return;
  Seq& s = *slots_[b.slot];
  if (b.epoch != s.epoch || !s.outstanding() || s.finished) return;  // stale: a rejection came first
  s.outstanding_epoch = -1;
  gamma_.record_draft_token(b.seconds_per_token);
  {
    std::lock_guard lk(mu_);
    ++info_.blocks;
    info_.drafted_tokens += static_cast<int64_t>(b.tokens.size());
  }
  if (b.start_pos != static_cast<int>(s.draft_view.size())) return;
  for (size_t i = 0; i < b.tokens.size(); ++i) {
    s.draft_view.push_back(b.tokens[i]);
    s.drafts.push_back({b.tokens[i], i < b.q.size() ? std::move(b.q[i]) : SparseDist{}});
  }
}

bool Engine::plan(Seq& s, StepChunk& c, int& prefill_budget) {
  advance(s);
  if (s.finished || s.pending) return false;
  const int unproc = static_cast<int>(s.tokens.size()) - s.target_kv;
  // Rows the other sequences of this step already add (they share its cost).
  const int batch = std::max(0, groups_[s.group].rows_planned);
  c.slot = s.slot;
  c.pos0 = s.target_kv;
  if (unproc > 1) {  // prompt prefill, in bounded chunks
    if (prefill_budget <= 0) return false;
    const int n = std::min(unproc, prefill_budget);
    prefill_budget -= n;
    c.tokens.assign(s.tokens.begin() + s.target_kv, s.tokens.begin() + s.target_kv + n);
    c.all_logits = false;
    // PEARL: the draft ranks prefill the prompt while the target does.
    if (s.mode == SpecMode::Pearl && !s.outstanding() && n == unproc) post_draft(s, gamma_.pearl(batch));
  } else {
    if (s.mode == SpecMode::Sd && s.drafts.empty()) {
      if (!s.outstanding()) post_draft(s, s.req.draft_len > 0 ? s.req.draft_len : gamma_.sd(batch));
      const double t0 = now();
      while (s.outstanding()) deliver(drafter_->wait());
      std::lock_guard lk(mu_);
      info_.wait_for_draft_s += now() - t0;
    }
    if (s.mode == SpecMode::Pearl && !s.outstanding())
      post_draft(s, s.req.draft_len > 0 ? s.req.draft_len : gamma_.pearl(batch));  // pre- or post-verify
    // Never verify past the context.
    while (!s.drafts.empty() && c.pos0 + 1 + static_cast<int>(s.drafts.size()) > cluster_.ctx) s.drafts.pop_back();
    c.tokens.assign(1, s.tokens.back());
    for (auto& d : s.drafts) c.tokens.push_back(d.tok);
    s.verifying.assign(std::make_move_iterator(s.drafts.begin()), std::make_move_iterator(s.drafts.end()));
    s.drafts.clear();
    c.all_logits = !s.verifying.empty();
  }
  s.in_flight = true;
  s.chunk_pos0 = c.pos0;
  s.chunk_committed = static_cast<int>(c.tokens.size() - s.verifying.size());
  s.chunk_all = c.all_logits;
  return true;
}

void Engine::plan_step(int g) {
  GroupState& gs = groups_[g];
  Step st;
  st.op = StepOp::Forward;
  bool full = false;
  int budget = o_.prefill_chunk;
  gs.slots.clear();
  gs.rows_planned = 0;
  gs.has_prefill = false;
  for (auto& sp : slots_) {
    if (!sp || sp->group != g || sp->in_flight || sp->finished) continue;
    StepChunk c;
    if (!plan(*sp, c, budget)) continue;
    full = full || wants_full(*sp);
    gs.rows_planned += static_cast<int>(c.tokens.size());
    gs.has_prefill = gs.has_prefill || (!c.all_logits && c.tokens.size() > 1);
    gs.slots.push_back(sp->slot);
    st.chunks.push_back(std::move(c));
  }
  if (st.chunks.empty()) return;
  st.logits = full ? LogitsMode::Full : LogitsMode::Argmax;
  gs.rows = step_rows(st);
  gs.t_submit = now();
  auto id = target_.submit(std::move(st));
  if (!id) {
    // Validation failed (a bug or an impossible request): fail those requests, keep serving.
    spdlog::error("target step rejected: {}", id.error().message);
    for (int slot : gs.slots) {
      slots_[slot]->in_flight = false;
      finish(*slots_[slot], FinishReason::kError, id.error().message);
    }
    gs.slots.clear();
    return;
  }
  gs.in_flight = true;
  flight_order_.push_back(g);
}

void Engine::process(const StepResult& r, int g) {
  GroupState& gs = groups_[g];
  gs.in_flight = false;
  const double dt = now() - gs.t_submit;
  // Decode and verification steps only: prefill chunks would teach the draft-length model the
  // cost of prompt processing instead of the cost of verifying a block.
  if (!gs.has_prefill) gamma_.record_target_step(gs.rows, dt);
  {
    std::lock_guard lk(mu_);
    ++info_.target_steps;
    info_.target_busy_s += dt;
    info_.step_seconds.observe(dt);
  }
  int row = 0;
  for (int slot : gs.slots) {
    Seq& s = *slots_[slot];
    s.in_flight = false;
    const int n_rows = s.chunk_all ? s.chunk_committed + static_cast<int>(s.verifying.size()) : 1;
    const int first = row;
    row += n_rows;
    const int committed_end = s.chunk_pos0 + s.chunk_committed;
    s.target_kv = committed_end;
    if (s.finished) {
      s.verifying.clear();
      continue;
    }
    if (committed_end < static_cast<int>(s.tokens.size())) continue;  // a prompt chunk: more to prefill
    // Row for the position after the last committed token, then one per draft under test.
    int r0 = first + (s.chunk_all ? s.chunk_committed - 1 : 0);
    int tested = 0, accepted = 0;
    bool rejected = false;
    for (auto& d : s.verifying) {
      const int pos = static_cast<int>(s.tokens.size());
      Row prow = make_row(s, r, r0++, pos);
      int32_t tok;
      const bool ok = verify(s, prow, d.tok, d.q.empty() ? nullptr : &d.q, pos, tok);
      ++tested;
      {
        std::lock_guard lk(mu_);
        const size_t at = std::min<size_t>(accepted + 1, info_.tested_at.size() - 1);
        ++info_.tested_at[at];
        info_.accepted_at[at] += ok;
      }
      // Counted before the commit: a commit that ends the request snapshots its usage.
      ++s.usage.drafted;
      s.usage.accepted += ok;
      commit(s, tok, &prow);
      if (!ok) {
        rejected = true;
        break;
      }
      ++accepted;
      ++s.target_kv;
      if (s.finished) break;
    }
    {
      std::lock_guard lk(mu_);
      info_.drafted += tested;
      info_.accepted += accepted;
    }
    gamma_.record_acceptance(tested, accepted);
    s.verifying.clear();
    if (rejected) {
      s.drafts.clear();
      s.epoch = next_epoch_++;  // drafts made after the rejected token are now stale
      continue;
    }
    if (s.finished) continue;
    s.pending = make_row(s, r, r0, static_cast<int>(s.tokens.size()));
    advance(s);
  }
}

Status Engine::loop(bool until_idle) {
  while (true) {
    admit();
    reap();
    if (o_.stage_stats_seconds > 0) {
      if (auto v = target_.poll_member_stats()) {
        std::lock_guard lk(mu_);
        info_.stages = std::move(*v);
      } else if (now() - last_stage_stats_ >= o_.stage_stats_seconds) {
        target_.request_member_stats();
        last_stage_stats_ = now();
      }
    }
    bool any_active = false, any_flight = false, waiting_draft = false;
    for (auto& sp : slots_)
      if (sp) {
        any_active = true;
        waiting_draft = waiting_draft || (sp->pending && sp->outstanding());
      }
    for (auto& g : groups_) any_flight = any_flight || g.in_flight;
    if (!any_active && !any_flight) {
      std::unique_lock lk(mu_);
      if (queue_.empty() && (stopping_ || until_idle)) return ok_status();
      cv_.wait_for(lk, std::chrono::milliseconds(100), [&] { return !queue_.empty() || stopping_; });
      continue;
    }
    if (drafter_)
      while (auto b = drafter_->poll()) deliver(std::move(*b));
    for (int g = 0; g < static_cast<int>(groups_.size()); ++g)
      if (!groups_[g].in_flight) plan_step(g);
    // Results come back in submission order: the oldest in-flight group first.
    if (!flight_order_.empty()) {
      StepResult r = target_.wait_result();
      const int g = flight_order_.front();
      flight_order_.pop_front();
      process(r, g);
      continue;
    }
    waiting_draft = false;
    for (auto& sp : slots_)
      if (sp && !sp->finished && sp->outstanding() && (sp->pending || sp->drafts.empty())) waiting_draft = true;
    if (waiting_draft && drafter_) {
      const double t0 = now();
      deliver(drafter_->wait());
      std::lock_guard lk(mu_);
      info_.wait_for_draft_s += now() - t0;
    }
  }
}

Status Engine::run_until_idle() { return loop(true); }

void Engine::mark_ready() {
  std::lock_guard lk(mu_);
  info_.ready = true;
}

Status Engine::run() {
  mark_ready();
  return loop(false);
}

void Engine::shutdown_groups() {
  if (drafter_) drafter_->shutdown();
  target_.shutdown();
}

Status Engine::warmup() {
  // One short greedy generation per available mode, interleaved twice; the fastest serves --speculation auto.
  std::vector<SpecMode> modes{SpecMode::Off};
  if (drafter_) modes.push_back(drafter_->parallel() ? SpecMode::Pearl : SpecMode::Sd);
  if (drafter_ && drafter_->parallel()) modes.push_back(SpecMode::Sd);
  std::vector<double> best(modes.size(), 0);
  std::vector<int32_t> prompt{tok_.bos() >= 0 ? tok_.bos() : 0};
  const int n = std::min(32, cluster_.ctx - 2);
  for (int rep = 0; rep < 2; ++rep) {
    for (size_t i = 0; i < modes.size(); ++i) {
      GenerationRequest r;
      r.id = "warmup";
      r.prompt = prompt;
      r.stop.max_tokens = n;
      r.stop.ignore_eos = true;
      r.speculation = modes[i];
      auto st = submit(r);
      if (!st) return st.error();
      const double t0 = now();
      TANDEM_TRY(run_until_idle());
      const double tps = n / std::max(1e-9, now() - t0);
      best[i] = std::max(best[i], tps);
    }
  }
  size_t win = 0;
  std::string why;
  for (size_t i = 0; i < modes.size(); ++i) {
    if (best[i] > best[win]) win = i;
    why += fmt::format("{}{} {:.1f} tok/s", i ? ", " : "", spec_mode_name(modes[i]), best[i]);
  }
  auto_mode_ = modes[win];
  std::lock_guard lk(mu_);
  EngineInfo fresh;
  fresh.max_seqs = info_.max_seqs;
  info_ = std::move(fresh);
  info_.tested_at.assign(o_.max_draft_len + 1, 0);
  info_.accepted_at.assign(o_.max_draft_len + 1, 0);
  info_.auto_mode = auto_mode_;
  info_.auto_reason = fmt::format("start-up profile (greedy, {} tokens): {}", n, why);
  spdlog::info("speculation auto -> {}: {}", spec_mode_name(auto_mode_), info_.auto_reason);
  return ok_status();
}

}  // namespace tandem
