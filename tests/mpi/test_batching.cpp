// Concurrency and batching invariance at the engine level: 16 requests with different prompts and
// lengths through one Engine with four KV slots — so they queue, join the running batch
// mid-flight and leave it at different steps — each produce exactly what the same request
// produces alone. Plain decoding is checked greedy and sampled (every uniform is keyed by the
// request's seed and position, and the kernels are batch-invariant, so a sampled request does
// not depend on its neighbours either); PEARL greedy. With pp 2 the batch is also split into
// micro-batches that are in flight together, also with more (or fewer) micro-batches than stages.
#include <cstdio>

#include "tests/mpi/mpi_support.h"

namespace tandem::mpitest {
namespace {

using Batching_np1 = MpiTest<1>;
using Batching_np2 = MpiTest<2>;
using Batching_np3 = MpiTest<3>;

SynthFiles batching_pair() {
  SynthShape s;
  s.dim = 256, s.layers = 4, s.heads = 8, s.kv_heads = 4, s.ffn = 512, s.ctx = 512;
  s.residual_scale = 0.1f;
  s.draft_layers = 1;
  s.seed = 5;
  return synth_model(s, WeightType::Q4_0);
}

// 16 requests: varied prompts, 6 to 66 new tokens; `sampled` makes every other one sample.
std::vector<GenerationRequest> sixteen(const Tokenizer& tok, SpecMode mode, bool sampled) {
  const auto prompts = varied_prompts(tok, 16);
  std::vector<GenerationRequest> reqs;
  for (int i = 0; i < 16; ++i) {
    GenerationRequest r = greedy_request(prompts[i], 6 + (i * 37) % 61, mode);
    r.id = fmt::format("req{}", i);
    if (sampled && i % 2 == 1) {
      r.sampling.temperature = 0.8f;
      r.sampling.top_k = 40;
      r.sampling.top_p = 0.95f;
      r.sampling.seed = 77 + i;
    }
    reqs.push_back(r);
  }
  return reqs;
}

void check_invariance(Engine& e, const std::vector<GenerationRequest>& reqs, const std::string& what) {
  std::vector<Outcome> alone;
  for (const auto& r : reqs) alone.push_back(generate_one(e, r));
  const auto together = generate_all(e, reqs);
  int tokens = 0;
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(together[i].ids, alone[i].ids) << what << ", " << reqs[i].id;
    EXPECT_EQ(together[i].text, alone[i].text) << what << ", " << reqs[i].id;
    EXPECT_EQ(together[i].reason, alone[i].reason) << what << ", " << reqs[i].id;
    EXPECT_EQ(static_cast<int>(alone[i].ids.size()), reqs[i].stop.max_tokens) << what << ", " << reqs[i].id;
    tokens += static_cast<int>(together[i].ids.size());
  }
  std::printf("[ batching ] %s: 16 requests (%d tokens) through 4 slots == each alone\n", what.c_str(), tokens);
}

void batching_job(const ClusterOptions& o, const std::vector<std::pair<SpecMode, bool>>& runs,
                  const std::string& what, int micro_batches = 0) {
  EngineOptions eo;
  eo.max_queue = 100;
  eo.micro_batches = micro_batches;
  run_engine_job(o, eo, [&](Engine& e, Cluster&) {
    for (const auto& [mode, sampled] : runs)
      check_invariance(
          e, sixteen(e.tokenizer(), mode, sampled),
          fmt::format("{} {}{}", what, spec_mode_name(mode), sampled ? " (greedy + sampled)" : " (greedy)"));
  });
}

TEST_F(Batching_np1, Autoregressive) {
  const SynthFiles f = batching_pair();
  batching_job(cluster_options(f.target, 1, 1, "", 0, 4), {{SpecMode::Off, true}}, "tp1");
}

TEST_F(Batching_np2, AutoregressiveTp2) {
  const SynthFiles f = batching_pair();
  batching_job(cluster_options(f.target, 2, 1, "", 0, 4), {{SpecMode::Off, true}}, "tp2");
}
TEST_F(Batching_np2, Pearl) {
  const SynthFiles f = batching_pair();
  batching_job(cluster_options(f.target, 1, 1, f.draft, 1, 4), {{SpecMode::Off, true}, {SpecMode::Pearl, false}},
               "tp1 + draft rank");
}

// Other micro-batch counts than one per stage: 1 (the stages take turns), 3 (uneven micro-batches
// of the 4 slots, more steps in flight than stages), 4 (one sequence each): the same tokens.
TEST_F(Batching_np2, Pp2MicroBatches) {
  const SynthFiles f = batching_pair();
  for (int m : {1, 3, 4})
    batching_job(cluster_options(f.target, 1, 2, "", 0, 4), {{SpecMode::Off, true}},
                 fmt::format("pp2, {} micro-batches", m), m);
}

TEST_F(Batching_np3, PearlPp2) {
  const SynthFiles f = batching_pair();
  batching_job(cluster_options(f.target, 1, 2, f.draft, 1, 4), {{SpecMode::Off, true}, {SpecMode::Pearl, false}},
               "pp2 + draft rank");
}

}  // namespace
}  // namespace tandem::mpitest
