// Rollback consistency. With a draft that often disagrees with its target (residual scale 0.2:
// greedy agreement ~0.6) and fixed draft lengths 4, 5 and 6, draft blocks are rejected at every
// position, including the first; each rejection rolls both KV caches back, and every token
// generated afterwards must still equal plain decoding. Stop token ids, stop strings and
// end-of-sequence tokens that land inside a draft block must end the request exactly where plain
// decoding ends it (same ids, same text, same reason), and the slots those requests free mid-block
// serve the requests queued behind them (and continuations of the stopped ones) correctly. The
// engine's per-position counters must show the rejections did happen at every position.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "shard/format/gguf_writer.h"
#include "tests/mpi/mpi_support.h"

namespace tandem::mpitest {
namespace {

using Rollback_np1 = MpiTest<1>;
using Rollback_np2 = MpiTest<2>;

constexpr int kDraftLen = 5;

SynthFiles rollback_pair() {
  SynthShape s;
  s.dim = 256, s.layers = 4, s.heads = 8, s.kv_heads = 4, s.ffn = 512, s.ctx = 512;
  s.residual_scale = 0.2f;
  s.draft_layers = 1;
  s.seed = 3;
  return synth_model(s, WeightType::Q8_0);
}

void expect_same(const std::vector<Outcome>& got, const std::vector<Outcome>& ar, const std::string& what) {
  ASSERT_EQ(got.size(), ar.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].ids, ar[i].ids) << what << ", request " << i;
    EXPECT_EQ(got[i].text, ar[i].text) << what << ", request " << i;
    EXPECT_EQ(got[i].reason, ar[i].reason)
        << what << ", request " << i << ": " << to_string(got[i].reason) << " vs " << to_string(ar[i].reason);
  }
}

std::vector<Outcome> run_as(Engine& e, std::vector<GenerationRequest> reqs, SpecMode m, int draft_len) {
  for (auto& r : reqs) {
    r.speculation = m;
    r.draft_len = draft_len;
  }
  return generate_all(e, reqs);
}

// Requests that stop inside the output plain decoding produces for them: on a token id (the
// k-th generated token), on a stop string cut from the generated text, and — for models that
// produce one — on the end-of-sequence token; queued behind each other in one batch.
std::vector<GenerationRequest> stopping_requests(const std::vector<GenerationRequest>& base,
                                                 const std::vector<Outcome>& ar) {
  std::vector<GenerationRequest> out;
  for (size_t i = 0; i < base.size(); ++i) {
    const auto& ids = ar[i].ids;
    const std::string& text = ar[i].text;
    GenerationRequest by_id = base[i];
    by_id.stop.stop_token_ids = {ids[3 + i % (ids.size() - 4)]};
    out.push_back(by_id);
    if (text.size() > 12) {
      GenerationRequest by_text = base[i];
      // Three bytes from a varying offset, widened to whole UTF-8 characters.
      auto continuation = [&](size_t k) {
        return k < text.size() && (static_cast<unsigned char>(text[k]) & 0xC0) == 0x80;
      };
      size_t at = 4 + i % (text.size() - 8), end = at + 3;
      while (at > 0 && continuation(at)) --at;
      while (continuation(end)) ++end;
      by_text.stop.stop = {text.substr(at, end - at)};
      out.push_back(by_text);
    }
    GenerationRequest eos = base[i];
    eos.stop.ignore_eos = false;
    out.push_back(eos);
  }
  return out;
}

void rollback_job(const ClusterOptions& o, SpecMode mode, const std::string& what) {
  EngineOptions eo;
  eo.max_queue = 1000;
  eo.draft_len = kDraftLen;
  run_engine_job(o, eo, [&](Engine& e, Cluster&) {
    const auto prompts = varied_prompts(e.tokenizer(), 24);
    std::vector<GenerationRequest> base;
    for (size_t i = 0; i < prompts.size(); ++i) base.push_back(greedy_request(prompts[i], 48, SpecMode::Off));
    const auto ar = generate_all(e, base);

    // Rejections everywhere; whatever follows a rollback must still be the target's output.
    const EngineInfo before = e.info();
    for (int dl : {4, 5, 6}) expect_same(run_as(e, base, mode, dl), ar, fmt::format("{} draft_len {}", what, dl));
    // The engine-wide fixed length (request draft_len 0) sizes the blocks the counters below see.
    expect_same(run_as(e, base, mode, 0), ar, what + " draft_len (engine) 5");
    const EngineInfo after = e.info();
    std::string per_pos;
    for (int k = mode == SpecMode::Pearl ? 0 : 1; k <= kDraftLen; ++k) {
      const int64_t tested = after.tested_at[k] - before.tested_at[k],
                    acc = after.accepted_at[k] - before.accepted_at[k];
      per_pos += fmt::format(" {}:{}/{}", k, acc, tested);
      EXPECT_GT(tested - acc, 0) << what << ": no rejection at block position " << k;
      EXPECT_GT(acc, 0) << what << ": no acceptance at block position " << k;
    }
    std::printf("[ rollback ] %s: accepted/tested by block position (0 = pre-verify):%s\n", what.c_str(),
                per_pos.c_str());

    // Stops inside blocks, and the slots they free reused at once.
    const auto stops = stopping_requests(base, ar);
    const auto stop_ar = run_as(e, stops, SpecMode::Off, 0);
    int by_reason[8] = {};
    for (const auto& x : stop_ar) ++by_reason[static_cast<int>(x.reason)];
    EXPECT_GT(by_reason[static_cast<int>(FinishReason::kStop)], static_cast<int>(base.size()))
        << "the stop requests should mostly stop";
    for (int dl : {4, 6})
      expect_same(run_as(e, stops, mode, dl), stop_ar, fmt::format("{} stops, draft_len {}", what, dl));

    // Continuations of the stopped requests: prompt + what they produced, 16 more tokens.
    std::vector<GenerationRequest> cont;
    for (size_t i = 0; i < stops.size(); ++i) {
      GenerationRequest r = greedy_request(stops[i].prompt, 16, SpecMode::Off);
      r.prompt.insert(r.prompt.end(), stop_ar[i].ids.begin(), stop_ar[i].ids.end());
      cont.push_back(r);
    }
    const auto cont_ar = run_as(e, cont, SpecMode::Off, 0);
    expect_same(run_as(e, cont, mode, 5), cont_ar, what + " continuations");
  });
}

// stories260K never emits its EOS (its stories end with BOS), so end-of-sequence inside a block
// needs a copy of it whose vocabulary names "." the end-of-sequence token: its generations then
// end at the first full stop, at any position of a draft block. Written once by rank 0.
std::string eos_at_full_stop_model() {
  const std::string out = std::string(TANDEM_TEST_WORK) + "/mpi_stories260K_eos_full_stop.gguf";
  int ok = 1;
  if (is_root() && !std::filesystem::exists(out)) {
    auto src = open_gguf(real_target());
    EXPECT_TRUE(src.ok()) << src.error().message;
    const auto tokens = src ? src->get_strings("tokenizer.ggml.tokens") : std::vector<std::string>{};
    const auto stop = std::find(tokens.begin(), tokens.end(), ".");
    EXPECT_NE(stop, tokens.end()) << "no '.' token in " << real_target();
    if (!src || stop == tokens.end()) {
      ok = 0;
    } else {
      auto md = src->metadata;
      for (auto& [k, v] : md)
        if (k == "tokenizer.ggml.eos_token_id") v = gguf_u32(static_cast<uint32_t>(stop - tokens.begin()));
      std::vector<TensorToWrite> ts;
      for (const auto& t : src->tensors) {
        const uint8_t* data = src->tensor_data(t);
        const uint64_t n = t.nbytes;
        ts.push_back({t.name, t.type, t.ne, [data, n](uint8_t* dst) { std::memcpy(dst, data, n); }});
      }
      const std::string tmp = out + ".tmp" + std::to_string(getpid());
      auto st = write_gguf(tmp, md, ts);
      EXPECT_TRUE(st.ok()) << st.error().message;
      ok = st.ok();
      if (ok) std::filesystem::rename(tmp, out);
    }
  }
  polite_barrier();
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return ok ? out : "";
}

// End-of-sequence inside a block: the real pair, with "." as the target's EOS.
void eos_job(const ClusterOptions& o, SpecMode mode) {
  EngineOptions eo;
  eo.max_queue = 1000;
  run_engine_job(o, eo, [&](Engine& e, Cluster&) {
    const auto prompts = varied_prompts(e.tokenizer(), 24);
    std::vector<GenerationRequest> reqs;
    for (const auto& p : prompts) {
      GenerationRequest r = greedy_request(p, 160, SpecMode::Off);
      r.stop.ignore_eos = false;
      reqs.push_back(r);
    }
    const auto ar = generate_all(e, reqs);
    int eos = 0;
    for (const auto& x : ar) eos += x.reason == FinishReason::kEos;
    EXPECT_GE(eos, 12) << "too few generations end on EOS to test it";
    for (int dl : {3, 6}) expect_same(run_as(e, reqs, mode, dl), ar, fmt::format("EOS, draft_len {}", dl));
    std::printf("[ rollback ] real pair %s: %d of %zu generations end on EOS, identical to plain decoding\n",
                spec_mode_name(mode), eos, ar.size());
  });
}

TEST_F(Rollback_np1, VanillaSd) {
  const SynthFiles f = rollback_pair();
  rollback_job(cluster_options(f.target, 1, 1, f.draft), SpecMode::Sd, "sd");
}
TEST_F(Rollback_np1, EosInsideBlockSd) {
  const std::string target = eos_at_full_stop_model();
  ASSERT_FALSE(target.empty());
  eos_job(cluster_options(target, 1, 1, real_draft()), SpecMode::Sd);
}

TEST_F(Rollback_np2, Pearl) {
  const SynthFiles f = rollback_pair();
  rollback_job(cluster_options(f.target, 1, 1, f.draft, 1), SpecMode::Pearl, "pearl");
}
TEST_F(Rollback_np2, EosInsideBlockPearl) {
  const std::string target = eos_at_full_stop_model();
  ASSERT_FALSE(target.empty());
  eos_job(cluster_options(target, 1, 1, real_draft(), 1), SpecMode::Pearl);
}

}  // namespace
}  // namespace tandem::mpitest
