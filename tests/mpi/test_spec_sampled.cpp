// Speculation is lossless (sampled): at temperature 1, and again with top_p 0.9, thousands of
// short requests with different seeds (batched eight at a time) through vanilla SD (drafter on
// rank 0) and PEARL (drafter on its own rank) must produce tokens distributed exactly as the
// target samples them. The target's exact distribution comes from its own logits (one forward,
// the same sampling_distribution the engine uses); the empirical distributions of the first
// token, and of the second token after the most frequent first token, are compared with it by a
// chi-square test at significance 1e-3 (fixed seeds: the outcome is reproducible).
//
// The test has teeth: the same runs with a deliberately wrong verification rule (resampling
// from p instead of the residual after a rejection; accepting the draft's argmax untested) must
// be rejected at the same significance. The synthetic pair's draft differs noticeably from its
// target (acceptance ~0.6), so a wrong rule moves the distribution by a detectable amount. The
// same for qwen2 and qwen3 pairs.
#include <algorithm>
#include <cstdio>
#include <map>

#include "tests/mpi/chi_square.h"
#include "tests/mpi/mpi_support.h"

namespace tandem::mpitest {
namespace {

using SpecSampled_np1 = MpiTest<1>;
using SpecSampled_np2 = MpiTest<2>;

constexpr double kAlpha = 1e-3;
constexpr int kRequests = 4000;

// llama; or qwen2 / qwen3 of the same shape (qwen3 with 4 heads of 64 on the 128-wide model).
SynthFiles sampled_pair(const std::string& arch = "llama") {
  SynthShape s;
  s.arch = arch;
  if (arch == "qwen3") s.head_dim = 64;
  s.dim = 128, s.layers = 3, s.heads = 4, s.kv_heads = 2, s.ffn = 256, s.ctx = 64;
  s.residual_scale = 0.25f;
  s.draft_layers = 1;
  s.seed = 7;
  return synth_model(s, WeightType::F32);
}

// The target's exact sampling distribution after `tokens`.
SparseDist target_distribution(Cluster& c, const std::vector<int32_t>& tokens, const SamplingParams& sp) {
  Step st;
  st.logits = LogitsMode::Full;
  st.chunks.push_back({0, 0, false, tokens});
  auto r = c.target->run(st);
  SparseDist d;
  EXPECT_TRUE(r.ok()) << (r ? "" : r.error().message);
  if (r) sampling_distribution(r->logits, sp, d);
  return d;
}

struct Variant {
  const char* name;
  float top_p;
  VerifyRule rule;
};

void sampled_job(const ClusterOptions& o, SpecMode mode) {
  const Variant variants[] = {
      {"temperature 1", 1.0f, VerifyRule::kLossless},
      {"temperature 1, top_p 0.9", 0.9f, VerifyRule::kLossless},
      {"WRONG rule: no residual", 1.0f, VerifyRule::kWrongNoResidual},
      {"WRONG rule: greedy draft accepted untested", 1.0f, VerifyRule::kWrongAlwaysAcceptGreedyDraft},
  };
  const std::vector<int32_t> prompt{1, 400, 301, 287, 460};
  run_job(o, [&](Cluster& c) {
    auto tok = Tokenizer::create(c.target_file.vocab);
    ASSERT_TRUE(tok.ok());
    for (size_t vi = 0; vi < std::size(variants); ++vi) {
      const Variant& v = variants[vi];
      const bool lossless = v.rule == VerifyRule::kLossless;
      SCOPED_TRACE(fmt::format("{} {}", spec_mode_name(mode), v.name));
      EngineOptions eo;
      eo.max_queue = kRequests;
      eo.verify_rule = v.rule;
      std::vector<GenerationRequest> reqs;
      for (int i = 0; i < kRequests; ++i) {
        GenerationRequest r = greedy_request(prompt, 2, mode, 2);
        r.sampling.temperature = 1.0f;
        r.sampling.top_p = v.top_p;
        r.sampling.seed = 1000003ull * (vi + 1) + i;
        reqs.push_back(std::move(r));
      }
      std::vector<Outcome> out;
      {
        Engine e(c, *tok, eo);
        out = generate_all(e, reqs);
      }
      std::map<int32_t, int64_t> first;
      int64_t drafted = 0, accepted = 0;
      for (const auto& x : out) {
        ASSERT_EQ(x.ids.size(), 2u);
        ++first[x.ids[0]];
        drafted += x.usage.drafted;
        accepted += x.usage.accepted;
      }
      const int32_t top =
          std::max_element(first.begin(), first.end(), [](auto& a, auto& b) { return a.second < b.second; })->first;
      std::map<int32_t, int64_t> second;
      for (const auto& x : out)
        if (x.ids[0] == top) ++second[x.ids[1]];
      std::vector<int32_t> after = prompt;
      after.push_back(top);
      const SparseDist p1 = target_distribution(c, prompt, reqs[0].sampling);
      const SparseDist p2 = target_distribution(c, after, reqs[0].sampling);
      const ChiSquare f1 = chi_square_fit(first, p1), f2 = chi_square_fit(second, p2);
      const double acc = drafted ? double(accepted) / drafted : 0.0;
      std::printf("[ sampled  ] %s, %s: acceptance %.3f (%lld drafted); first token: %s; second token after %d: %s\n",
                  spec_mode_name(mode), v.name, acc, static_cast<long long>(drafted), f1.describe().c_str(), top,
                  f2.describe().c_str());
      EXPECT_GT(drafted, kRequests / 2) << "the drafter was hardly used";
      if (lossless) {
        EXPECT_GE(acc, 0.4);
        EXPECT_LE(acc, 0.85);
        EXPECT_GE(f1.p_value, kAlpha) << "first token: " << f1.describe();
        EXPECT_GE(f2.p_value, kAlpha) << "second token: " << f2.describe();
      } else {
        // In SD the first token is never speculated (it comes from the prefill), so the wrong
        // rule shows in the second; in PEARL the draft ranks prefill too and both are drafted.
        EXPECT_LT(std::min(f1.p_value, f2.p_value), kAlpha)
            << "the wrong rule was not detected: first token " << f1.describe() << "; second " << f2.describe();
      }
    }
  });
}

TEST_F(SpecSampled_np1, VanillaSd) {
  const SynthFiles f = sampled_pair();
  ClusterOptions o = cluster_options(f.target, 1, 1, f.draft, 0, /*max_seqs=*/8, /*ctx=*/64);
  sampled_job(o, SpecMode::Sd);
}

TEST_F(SpecSampled_np1, QwenSd) {
  for (const char* arch : {"qwen2", "qwen3"}) {
    SCOPED_TRACE(arch);
    const SynthFiles f = sampled_pair(arch);
    sampled_job(cluster_options(f.target, 1, 1, f.draft, 0, /*max_seqs=*/8, /*ctx=*/64), SpecMode::Sd);
  }
}

TEST_F(SpecSampled_np2, QwenPearl) {
  for (const char* arch : {"qwen2", "qwen3"}) {
    SCOPED_TRACE(arch);
    const SynthFiles f = sampled_pair(arch);
    sampled_job(cluster_options(f.target, 1, 1, f.draft, 1, /*max_seqs=*/8, /*ctx=*/64), SpecMode::Pearl);
  }
}

TEST_F(SpecSampled_np2, Pearl) {
  const SynthFiles f = sampled_pair();
  ClusterOptions o = cluster_options(f.target, 1, 1, f.draft, 1, /*max_seqs=*/8, /*ctx=*/64);
  sampled_job(o, SpecMode::Pearl);
}

}  // namespace
}  // namespace tandem::mpitest
