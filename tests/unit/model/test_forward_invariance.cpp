// Invariances the engine relies on, checked bit for bit: a sequence's logits do not depend on the
// rest of its batch, on the thread count, on how its prompt is cut into chunks, or on what its KV
// slot held before (rollback and slot reuse). Speculative verification, continuous batching and
// greedy equivalence of SD/PEARL with plain decoding all assume them. For llama, and for the qwen
// families (biases, q/k norms, NeoX RoPE) in the last test.
#include <gtest/gtest.h>

#include <fmt/format.h>

#include <map>

#include "tests/unit/model/synth_fixture.h"

using namespace tandem;
using namespace tandem::test;

namespace {

// Rows of logits, copied out of the engine.
using Rows = std::vector<std::vector<float>>;

std::vector<float> copy(std::span<const float> s) { return {s.begin(), s.end()}; }

// A llama model of weight type t; for "qwen2" the same shape with q/k/v biases, for "qwen3" with
// q/k norms and 8 heads of 64 (q 512 wide on a 256-wide model).
std::string model_for(WeightType t, const std::string& arch = "llama") {
  SynthOptions o = small_synth(t, 256, 3, 8, 2, 512, 1, arch);
  if (arch == "qwen3") o.head_dim = 64;
  auto p = synth_model(o);
  EXPECT_TRUE(p.ok()) << (p.ok() ? "" : p.error().message);
  return p.ok() ? *p : "";
}

// The chunks of sequence S, decided as the run goes (decode tokens are its own greedy choices).
// Step 0 is a prefill of `prompt`; then `n_decode` greedy steps, with step `verify_at` a
// verification block of 3 tokens (greedy token + two fixed ids) whose every row has logits.
struct SeqScript {
  std::vector<int32_t> prompt;
  int n_decode = 8;
  int verify_at = 4;

  int steps() const { return 1 + n_decode; }
  // Tokens and all_logits of step k, given the last logits row of step k-1.
  std::pair<std::vector<int32_t>, bool> chunk(int k, std::span<const float> last) const {
    if (k == 0) return {prompt, false};
    const int32_t g = argmax(last);
    if (k == verify_at) return {{g, 17, 301}, true};
    return {{g}, false};
  }
};

// S alone in a one-slot cache: every logits row of every step, in order.
Rows run_solo(const ModelFile& f, const SeqScript& s, int threads, int slot = 0, int max_seqs = 1) {
  Rows out;
  auto e = make_engine(f, max_seqs, 128, threads);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  if (!e.ok()) return out;
  int pos = 0;
  std::vector<float> last;
  for (int k = 0; k < s.steps(); ++k) {
    auto [toks, all] = s.chunk(k, last);
    const SeqChunk c{slot, pos, toks, all};
    auto st = (*e)->run(c);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    if (!st.ok()) return out;
    const int n_out = all ? static_cast<int>(toks.size()) : 1;
    for (int i = 0; i < n_out; ++i) out.push_back(copy((*e)->row(i)));
    last = out.back();
    pos += static_cast<int>(toks.size());
  }
  return out;
}

// S in slot 2 of a 4-slot cache, every step batched with up to three other sequences that are at
// other positions and do other things: prefill chunks, decode rows, verification blocks, or sit
// out. S's place in the batch moves from step to step.
Rows run_batched(const ModelFile& f, const SeqScript& s, int threads) {
  Rows out;
  auto e = make_engine(f, 4, 128, threads);
  EXPECT_TRUE(e.ok()) << (e.ok() ? "" : e.error().message);
  if (!e.ok()) return out;
  const int others[3] = {0, 1, 3};
  std::map<int, int> pos;  // slot -> next position
  int s_pos = 0;
  std::vector<float> last;
  for (int k = 0; k < s.steps(); ++k) {
    std::vector<std::vector<int32_t>> toks;  // owns every chunk's tokens for this step
    std::vector<SeqChunk> batch;
    toks.reserve(4);
    for (int j = 0; j < 3; ++j) {
      const int mode = (k + 2 * j) % 4;
      if (mode == 3) continue;  // this one sits the step out
      const int n = mode == 0 ? 1 : mode == 1 ? 2 + (k + j) % 4 : 7 + j;
      toks.push_back(test_tokens(n, 100 * k + j, f.config.n_vocab));
      batch.push_back(SeqChunk{others[j], pos[others[j]], toks.back(), mode == 1});
      pos[others[j]] += n;
    }
    auto [st_toks, all] = s.chunk(k, last);
    toks.push_back(st_toks);
    const int at = k % (static_cast<int>(batch.size()) + 1);
    batch.insert(batch.begin() + at, SeqChunk{2, s_pos, toks.back(), all});
    auto st = (*e)->run(batch);
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    if (!st.ok()) return out;
    const int first = first_out_rows(batch)[at];
    const int n_out = all ? static_cast<int>(st_toks.size()) : 1;
    for (int i = 0; i < n_out; ++i) out.push_back(copy((*e)->row(first + i)));
    last = out.back();
    s_pos += static_cast<int>(st_toks.size());
  }
  return out;
}

std::vector<int> greedy_of(const Rows& r) {
  std::vector<int> g;
  for (const auto& row : r) g.push_back(argmax(row));
  return g;
}

}  // namespace

TEST(ForwardInv, BatchedSequenceMatchesSoloBitwiseEveryType) {
  SeqScript s;
  s.prompt = test_tokens(13, 5, 512);
  for (WeightType t : kModelWeightTypes) {
    SCOPED_TRACE(name(t));
    auto f = open_model(model_for(t));
    ASSERT_TRUE(f.ok()) << f.error().message;
    const Rows solo = run_solo(*f, s, 2);
    ASSERT_EQ(solo.size(), static_cast<size_t>(s.steps() + 2));  // the verification block gives 3 rows
    const Rows batched = run_batched(*f, s, 2);
    ASSERT_EQ(batched.size(), solo.size());
    for (size_t i = 0; i < solo.size(); ++i) EXPECT_EQ(batched[i], solo[i]) << "logits row " << i;
    EXPECT_EQ(greedy_of(batched), greedy_of(solo));
    // Another slot of a larger cache changes nothing either.
    EXPECT_EQ(run_solo(*f, s, 2, 3, 4), solo);
  }
}

TEST(ForwardInv, ThreadCountDoesNotChangeLogits) {
  SeqScript s;
  s.prompt = test_tokens(11, 6, 512);
  s.n_decode = 5;
  s.verify_at = 2;
  for (WeightType t : kModelWeightTypes) {
    SCOPED_TRACE(name(t));
    auto f = open_model(model_for(t));
    ASSERT_TRUE(f.ok()) << f.error().message;
    const Rows one = run_solo(*f, s, 1);
    ASSERT_FALSE(one.empty());
    EXPECT_EQ(run_solo(*f, s, 2), one);
    EXPECT_EQ(run_solo(*f, s, 3), one);
    EXPECT_EQ(run_batched(*f, s, 3), one);
  }
}

namespace {

// Prefills `prompt` in chunks of `chunk` tokens (0 = all at once), then decodes `n_decode` greedy
// tokens; returns the last prefill row and every decode row.
Rows prefill_then_decode(const ModelFile& f, const std::vector<int32_t>& prompt, int chunk, int n_decode) {
  Rows out;
  auto e = make_engine(f, 1, 128, 2);
  EXPECT_TRUE(e.ok());
  if (!e.ok()) return out;
  const int n = static_cast<int>(prompt.size()), step = chunk > 0 ? chunk : n;
  for (int p = 0; p < n; p += step) {
    const int len = std::min(step, n - p);
    auto st = (*e)->run(SeqChunk{0, p, std::span<const int32_t>(prompt).subspan(p, len), false});
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    if (!st.ok()) return out;
  }
  EXPECT_EQ((*e)->kv.length[0], n);
  out.push_back(copy((*e)->row(0)));
  for (int i = 0; i < n_decode; ++i) {
    const int32_t tok = argmax(out.back());
    EXPECT_TRUE((*e)->run(SeqChunk{0, n + i, std::span<const int32_t>(&tok, 1), false}).ok());
    out.push_back(copy((*e)->row(0)));
  }
  return out;
}

}  // namespace

TEST(ForwardInv, PrefillAtOnceEqualsTokenByTokenAndChunksOfThree) {
  const auto prompt = test_tokens(19, 8, 512);
  for (WeightType t : kModelWeightTypes) {
    SCOPED_TRACE(name(t));
    auto f = open_model(model_for(t));
    ASSERT_TRUE(f.ok()) << f.error().message;
    const Rows whole = prefill_then_decode(*f, prompt, 0, 6);
    ASSERT_EQ(whole.size(), 7u);
    const Rows single = prefill_then_decode(*f, prompt, 1, 6);
    const Rows threes = prefill_then_decode(*f, prompt, 3, 6);
    EXPECT_EQ(single, whole);
    EXPECT_EQ(threes, whole);
    EXPECT_EQ(greedy_of(single), greedy_of(whole));
  }
}

namespace {

// Prompt, then the given decode tokens one at a time; returns the engine (state) after them.
std::unique_ptr<Engine> run_tokens(const ModelFile& f, const std::vector<int32_t>& prompt,
                                   const std::vector<int32_t>& decode) {
  auto e = make_engine(f, 1, 128, 2);
  EXPECT_TRUE(e.ok());
  if (!e.ok()) return nullptr;
  EXPECT_TRUE((*e)->run(SeqChunk{0, 0, prompt, false}).ok());
  int pos = static_cast<int>(prompt.size());
  for (int32_t t : decode) EXPECT_TRUE((*e)->run(SeqChunk{0, pos++, std::span<const int32_t>(&t, 1), false}).ok());
  return std::move(*e);
}

// Feeds `first` at the slot's current length, then greedy steps; every row.
Rows continue_from(Engine& e, int32_t first, int n_greedy) {
  Rows out;
  int32_t tok = first;
  for (int i = 0; i <= n_greedy; ++i) {
    const int pos = e.kv.length[0];
    auto st = e.run(SeqChunk{0, pos, std::span<const int32_t>(&tok, 1), false});
    EXPECT_TRUE(st.ok()) << (st.ok() ? "" : st.error().message);
    if (!st.ok()) break;
    out.push_back(copy(e.row(0)));
    tok = argmax(out.back());
  }
  return out;
}

}  // namespace

// Decode 10 tokens, roll back 4 and take another path: the result equals a run that stopped
// after 6 and took that path directly, whether the rollback sets the length or re-runs from an
// earlier pos0 (overwriting positions the cache still holds).
TEST(ForwardInv, RollbackEqualsNeverHavingGoneFurther) {
  for (WeightType t : {WeightType::F32, WeightType::Q8_0, WeightType::Q4_K}) {
    SCOPED_TRACE(name(t));
    auto f = open_model(model_for(t));
    ASSERT_TRUE(f.ok()) << f.error().message;
    const auto prompt = test_tokens(9, 21, 512);
    // The greedy continuation, 10 tokens.
    std::vector<int32_t> greedy;
    {
      auto e = run_tokens(*f, prompt, {});
      ASSERT_TRUE(e);
      int32_t tok = argmax(e->row(0));
      for (int i = 0; i < 10; ++i) {
        greedy.push_back(tok);
        ASSERT_TRUE(e->run(SeqChunk{0, 9 + i, std::span<const int32_t>(&tok, 1), false}).ok());
        tok = argmax(e->row(0));
      }
    }
    const std::vector<int32_t> kept(greedy.begin(), greedy.begin() + 6);
    const int32_t other = greedy[6] == 42 ? 43 : 42;  // a different token at the first rolled-back position

    auto never = run_tokens(*f, prompt, kept);
    ASSERT_EQ(never->kv.length[0], 15);
    const Rows want = continue_from(*never, other, 5);

    auto truncated = run_tokens(*f, prompt, greedy);
    ASSERT_EQ(truncated->kv.length[0], 19);
    truncated->kv.length[0] = 15;  // what the engine's TRUNCATE does
    EXPECT_EQ(continue_from(*truncated, other, 5), want);

    // Without touching the length: a chunk at pos0 15 < 19 overwrites and sets the length.
    auto rerun = run_tokens(*f, prompt, greedy);
    ASSERT_TRUE(rerun->run(SeqChunk{0, 15, std::span<const int32_t>(&other, 1), false}).ok());
    EXPECT_EQ(rerun->kv.length[0], 16);
    Rows rest = {copy(rerun->row(0))};
    const Rows more = continue_from(*rerun, argmax(rest[0]), 4);
    rest.insert(rest.end(), more.begin(), more.end());
    EXPECT_EQ(rest, want);
  }
}

// A slot that held a longer sequence, freed (length 0) and reused by another sequence while a
// neighbour keeps decoding, gives the newcomer exactly its solo results: stale K/V beyond the
// length is never read.
TEST(ForwardInv, FreedSlotReusedGivesSoloResults) {
  for (WeightType t : {WeightType::F16, WeightType::Q4_0, WeightType::Q6_K}) {
    SCOPED_TRACE(name(t));
    auto f = open_model(model_for(t));
    ASSERT_TRUE(f.ok()) << f.error().message;
    SeqScript y;
    y.prompt = test_tokens(7, 31, 512);
    y.n_decode = 6;
    y.verify_at = 3;
    const Rows solo = run_solo(*f, y, 2);

    auto e = make_engine(*f, 2, 128, 2);
    ASSERT_TRUE(e.ok()) << e.error().message;
    const auto x = test_tokens(25, 32, 512), w = test_tokens(6, 33, 512);
    const SeqChunk first[] = {{0, 0, w, false}, {1, 0, x, false}};
    ASSERT_TRUE((*e)->run(first).ok());
    int w_pos = 6;
    for (int i = 0; i < 5; ++i) {  // both decode: slot 1 fills positions up to 30
      const int32_t tw = argmax((*e)->row(0)), tx = argmax((*e)->row(1));
      const SeqChunk b[] = {{0, w_pos++, std::span<const int32_t>(&tw, 1), false},
                            {1, 25 + i, std::span<const int32_t>(&tx, 1), false}};
      ASSERT_TRUE((*e)->run(b).ok());
    }
    ASSERT_EQ((*e)->kv.length[1], 30);
    (*e)->kv.length[1] = 0;  // FREE

    Rows got;
    std::vector<float> last;
    int y_pos = 0;
    int32_t tw = argmax((*e)->row(0));
    for (int k = 0; k < y.steps(); ++k) {
      auto [toks, all] = y.chunk(k, last);
      const SeqChunk b[] = {{1, y_pos, toks, all}, {0, w_pos, std::span<const int32_t>(&tw, 1), false}};
      ASSERT_TRUE((*e)->run(b).ok());
      const int n_out = all ? static_cast<int>(toks.size()) : 1;
      for (int i = 0; i < n_out; ++i) got.push_back(copy((*e)->row(i)));
      last = got.back();
      tw = argmax((*e)->row(n_out));
      y_pos += static_cast<int>(toks.size());
      ++w_pos;
    }
    EXPECT_EQ(got, solo);
  }
}

// The qwen families' pieces (per-row biases, per-head q/k norms, NeoX RoPE) are row-local too:
// batching, thread count, prefill chunking and rollback change no bit of their logits either.
TEST(ForwardInv, QwenFamiliesKeepEveryInvariance) {
  SeqScript s;
  s.prompt = test_tokens(13, 5, 512);
  const auto prompt = test_tokens(19, 8, 512);
  for (const char* arch : {"qwen2", "qwen3"})
    for (WeightType t : {WeightType::F32, WeightType::Q4_0, WeightType::Q6_K}) {
      SCOPED_TRACE(fmt::format("{} {}", arch, name(t)));
      auto f = open_model(model_for(t, arch));
      ASSERT_TRUE(f.ok()) << f.error().message;
      ASSERT_EQ(f->config.arch, arch);
      const Rows solo = run_solo(*f, s, 2);
      ASSERT_EQ(solo.size(), static_cast<size_t>(s.steps() + 2));
      EXPECT_EQ(run_batched(*f, s, 2), solo);
      EXPECT_EQ(run_solo(*f, s, 1), solo);
      EXPECT_EQ(run_batched(*f, s, 3), solo);
      EXPECT_EQ(run_solo(*f, s, 2, 3, 4), solo);

      const Rows whole = prefill_then_decode(*f, prompt, 0, 6);
      ASSERT_EQ(whole.size(), 7u);
      EXPECT_EQ(prefill_then_decode(*f, prompt, 1, 6), whole);
      EXPECT_EQ(prefill_then_decode(*f, prompt, 3, 6), whole);

      // Rollback: 8 greedy tokens, back to 4, another token: as if never gone further.
      std::vector<int32_t> greedy;
      {
        auto e = run_tokens(*f, prompt, {});
        ASSERT_TRUE(e);
        int32_t tok = argmax(e->row(0));
        for (int i = 0; i < 8; ++i) {
          greedy.push_back(tok);
          ASSERT_TRUE(e->run(SeqChunk{0, 19 + i, std::span<const int32_t>(&tok, 1), false}).ok());
          tok = argmax(e->row(0));
        }
      }
      const int32_t other = greedy[4] == 42 ? 43 : 42;
      auto never = run_tokens(*f, prompt, std::vector<int32_t>(greedy.begin(), greedy.begin() + 4));
      const Rows want = continue_from(*never, other, 4);
      auto rolled = run_tokens(*f, prompt, greedy);
      rolled->kv.length[0] = 23;
      EXPECT_EQ(continue_from(*rolled, other, 4), want);
    }
}
