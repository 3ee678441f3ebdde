// What the MPI tests share: a fixture that makes every test collective (all ranks enter it, a
// failure on any rank fails it on rank 0, the world size it needs is part of the suite's type),
// synthetic models generated once per build, and jobs — a Cluster on every rank, rank 0 driving
// it (an Engine or the bare ModelGroup), the other ranks serving until rank 0 shuts them down.
#pragma once
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "decode/engine.h"
#include "dist/cluster.h"
#include "shard/kernels/weight_type.h"

namespace tandem::mpitest {

int world_rank();
int world_size();
inline bool is_root() { return world_rank() == 0; }

// Base of every MPI test. A suite that needs N ranks is `using Suite_npN = MpiTest<N>;` and is
// launched by ctest under `mpirun -n N`; under another world size it is skipped on every rank.
class MpiTestBase : public ::testing::Test {
 protected:
  explicit MpiTestBase(int ranks) : ranks_(ranks) {}
  void SetUp() override;
  void TearDown() override;  // collective: rank 0 fails when any rank failed

 private:
  int ranks_;
};
template <int N>
class MpiTest : public MpiTestBase {
 protected:
  MpiTest() : MpiTestBase(N) {}
};

// Barrier that sleeps instead of spinning, so a rank doing real work (rank 0 writing a model)
// keeps its core on an oversubscribed machine.
void polite_barrier();

// Synthetic models (shard/synth.h), generated on rank 0 into TANDEM_TEST_WORK the first time a
// test asks and reused afterwards; the file name encodes every option, so a changed shape is a
// new file. Collective.
struct SynthShape {
  std::string arch = "llama";  // a family of shard/format/arch.h
  bool tied = false;           // head tied to token_embd
  int head_dim = 0;            // 0: dim / heads
  int dim = 256, layers = 4, heads = 8, kv_heads = 4, ffn = 512, ctx = 512;
  float residual_scale = 0.05f;
  int draft_layers = 0;  // > 0: also write a draft with this many layers
  uint64_t seed = 1;
};
struct SynthFiles {
  std::string target, draft;
};
SynthFiles synth_model(const SynthShape& s, WeightType t);

// The real pair of test models: stories260K (target) and llama2xs-tinystories-280K (its draft).
std::string real_target();
std::string real_draft();
std::vector<int32_t> real_greedy_ids();  // stories260K.greedy.ids

ClusterOptions cluster_options(const std::string& model, int tp, int pp, const std::string& draft = "",
                               int draft_tp = 0, int max_seqs = 4, int ctx = 512);

// Collective: every rank starts the cluster and runs `every_rank` (collective checks across the
// world, e.g. of what each rank loaded); then rank 0 runs `drive` and shuts every group down
// (whatever `drive` did, including returning early on a failed ASSERT) while the others serve.
void run_job(const ClusterOptions& o, const std::function<void(Cluster&)>& drive,
             const std::function<void(Cluster&)>& every_rank = {});
// The same with an Engine (and the target's tokenizer) built on rank 0 for `drive`.
void run_engine_job(const ClusterOptions& o, const EngineOptions& eo,
                    const std::function<void(Engine&, Cluster&)>& drive);

// What one request produced.
struct Outcome {
  std::vector<int32_t> ids;
  std::string text;
  FinishReason reason = FinishReason::kNone;
  std::string error;
  Usage usage;
};
// Submits every request, serves until idle, returns the outcomes in request order. A request the
// engine refuses, or a stream that never ends, fails the test.
std::vector<Outcome> generate_all(Engine& e, const std::vector<GenerationRequest>& reqs);
Outcome generate_one(Engine& e, const GenerationRequest& r);

GenerationRequest greedy_request(std::vector<int32_t> prompt, int max_tokens, SpecMode mode, int draft_len = 0);

// `n` varied prompts: story openings, repetitive text (which the n-gram drafter can exploit),
// lists and random token strings, 1 to ~60 tokens, BOS first.
std::vector<std::vector<int32_t>> varied_prompts(const Tokenizer& tok, int n);

std::string describe(const std::vector<int32_t>& ids);  // "1 2 3" for failure messages

}  // namespace tandem::mpitest
