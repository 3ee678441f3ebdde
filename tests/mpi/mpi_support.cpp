#include "tests/mpi/mpi_support.h"

#include <mpi.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "decode/worker_rank.h"
#include "dist/polite_wait.h"
#include "shard/format/synth.h"
#include "shard/tokenizer/tokenizer.h"

namespace fs = std::filesystem;

namespace tandem::mpitest {

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

void MpiTestBase::SetUp() {
  if (world_size() != ranks_)
    GTEST_SKIP() << "needs mpirun -n " << ranks_ << " (this job has " << world_size() << " ranks)";
}

void MpiTestBase::TearDown() {
  // Every rank runs every test in the same order, so this reduction pairs up across ranks.
  int bad = HasFailure() ? 1 : 0, any = 0;
  MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (any && !bad && is_root()) ADD_FAILURE() << "the test failed on another rank (see its output above)";
}

void polite_barrier() {
  MPI_Request r;
  MPI_Ibarrier(MPI_COMM_WORLD, &r);
  wait_polite(&r);
}

std::string real_target() { return std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf"; }
std::string real_draft() { return std::string(TANDEM_TESTDATA) + "/models/llama2xs-tinystories-280K.gguf"; }

std::vector<int32_t> real_greedy_ids() {
  std::ifstream in(std::string(TANDEM_TESTDATA) + "/models/stories260K.greedy.ids");
  std::vector<int32_t> ids;
  int32_t t;
  while (in >> t) ids.push_back(t);
  return ids;
}

SynthFiles synth_model(const SynthShape& s, WeightType t) {
  const std::string stem =
      fmt::format("{}/mpi_synth_{}{}_d{}_l{}_h{}_kv{}_hd{}_f{}_c{}_r{:.3f}_s{}_{}", TANDEM_TEST_WORK, s.arch,
                  s.tied ? "_tied" : "", s.dim, s.layers, s.heads, s.kv_heads, s.head_dim, s.ffn, s.ctx, s.residual_scale,
                  s.seed, name(t));
  SynthFiles f;
  f.target = stem + ".gguf";
  if (s.draft_layers > 0) f.draft = fmt::format("{}_draft{}.gguf", stem, s.draft_layers);
  int ok = 1;
  if (is_root()) {
    const bool have = fs::exists(f.target) && (f.draft.empty() || fs::exists(f.draft));
    if (!have) {
      // Written under private names and renamed into place: concurrent test jobs (ctest -j) may
      // generate the same model, and a reader must never see half a file.
      const std::string tmp = fmt::format(".tmp{}", static_cast<long>(getpid()));
      SynthOptions o;
      o.out = f.target + tmp;
      o.vocab_from = real_target();
      o.type = t;
      o.arch = s.arch;
      o.tied = s.tied;
      o.head_dim = s.head_dim;
      o.dim = s.dim;
      o.n_layers = s.layers;
      o.n_heads = s.heads;
      o.n_kv_heads = s.kv_heads;
      o.ffn_dim = s.ffn;
      o.ctx_len = s.ctx;
      o.seed = s.seed;
      o.residual_scale = s.residual_scale;
      o.draft_layers = s.draft_layers > 0 ? s.draft_layers : 1;
      if (!f.draft.empty()) o.draft_out = f.draft + tmp;
      auto st = write_synth_model(o);
      if (!st) {
        ADD_FAILURE() << "synth " << f.target << ": " << st.error().message;
        ok = 0;
      } else {
        if (!f.draft.empty()) fs::rename(o.draft_out, f.draft);
        fs::rename(o.out, f.target);
      }
    }
  }
  polite_barrier();
  MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
  if (!ok) f = {};
  return f;
}

ClusterOptions cluster_options(const std::string& model, int tp, int pp, const std::string& draft, int draft_tp,
                               int max_seqs, int ctx) {
  ClusterOptions o;
  o.layout.tp = tp;
  o.layout.pp = pp;
  o.layout.draft_tp = draft_tp;
  o.model = model;
  o.draft = draft;
  o.threads = 1;  // ranks share 2 cores; more threads per rank only adds contention
  o.max_seqs = max_seqs;
  o.ctx = ctx;
  return o;
}

void run_job(const ClusterOptions& o, const std::function<void(Cluster&)>& drive,
             const std::function<void(Cluster&)>& every_rank) {
  auto c = start_cluster(o, world_rank(), world_size());
  if (!c) {
    ADD_FAILURE() << "start_cluster " << o.layout.describe() << " " << o.model << ": " << c.error().message;
    return;
  }
  Cluster& cl = **c;
  if (every_rank) every_rank(cl);
  if (!cl.role.coordinator()) {
    run_worker_rank(cl);
    return;
  }
  drive(cl);
  // Draft first: its master may still be sending blocks rank 0 must drain.
  if (cl.remote_draft()) remote_channel(cl.comms.heads)->shutdown();
  cl.target->shutdown();
}

void run_engine_job(const ClusterOptions& o, const EngineOptions& eo,
                    const std::function<void(Engine&, Cluster&)>& drive) {
  run_job(o, [&](Cluster& c) {
    auto tok = Tokenizer::create(c.target_file.vocab);
    ASSERT_TRUE(tok.ok()) << tok.error().message;
    Engine engine(c, *tok, eo);
    drive(engine, c);
  });
}

std::vector<Outcome> generate_all(Engine& e, const std::vector<GenerationRequest>& reqs) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<Outcome> out(reqs.size());
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto s = e.submit(reqs[i]);
    EXPECT_TRUE(s.ok()) << "request " << i << " refused: " << s.error().message;
    streams.push_back(s.ok() ? *s : nullptr);
  }
  auto st = e.run_until_idle();
  EXPECT_TRUE(st.ok()) << st.error().message;
  for (size_t i = 0; i < reqs.size(); ++i) {
    if (!streams[i]) continue;
    bool done = false;
    // Everything was pushed before run_until_idle returned; the timeout only guards a bug.
    while (auto ev = streams[i]->next(std::chrono::milliseconds(done ? 0 : 1000))) {
      out[i].ids.insert(out[i].ids.end(), ev->ids.begin(), ev->ids.end());
      out[i].text += ev->text;
      if (ev->final) {
        out[i].reason = ev->reason;
        out[i].error = ev->error;
        out[i].usage = ev->usage;
        done = true;
        break;
      }
    }
    EXPECT_TRUE(done) << "request " << i << " (" << reqs[i].id << ") never finished";
  }
  return out;
}

Outcome generate_one(Engine& e, const GenerationRequest& r) { return generate_all(e, {r})[0]; }

GenerationRequest greedy_request(std::vector<int32_t> prompt, int max_tokens, SpecMode mode, int draft_len) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.stop.max_tokens = max_tokens;
  r.stop.ignore_eos = true;
  r.speculation = mode;
  r.draft_len = draft_len;
  return r;
}

std::vector<std::vector<int32_t>> varied_prompts(const Tokenizer& tok, int n) {
  static const char* kTexts[] = {
      "",
      "Once upon a time",
      "Lily",
      "The cat sat on the mat. The cat sat on the mat. The cat sat on the",
      "Tom and Sam went to the park. They played with a ball.",
      "one two three four five six seven eight nine ten",
      "She said, \"Can I have the red ball, please?\" Her mom said, \"Yes",
      "a b c d e f g h i j k l m n o p",
      "The sun was hot. The sun was hot. The sun was hot.",
      "Once upon a time, there was a little dog named Max. Max liked to run and jump in the big green "
      "field behind his house. One day, Max saw a",
      "Why?",
      "Ben had a toy car. He loved his toy car very much. Every day he played with",
  };
  std::vector<std::vector<int32_t>> out;
  uint64_t x = 0x9E3779B97F4A7C15ull;
  auto next = [&] {  // splitmix64: fixed across platforms and standard libraries
    uint64_t z = (x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  };
  const int n_text = static_cast<int>(std::size(kTexts));
  for (int i = 0; i < n; ++i) {
    if (i < n_text) {
      out.push_back(tok.encode(kTexts[i], true));
      continue;
    }
    // Random ordinary tokens (past the control and byte tokens), 2..48 of them after BOS.
    std::vector<int32_t> p{tok.bos()};
    const int len = 2 + static_cast<int>(next() % 47);
    for (int k = 0; k < len; ++k) p.push_back(259 + static_cast<int32_t>(next() % (tok.n_vocab() - 259)));
    out.push_back(std::move(p));
  }
  return out;
}

std::string describe(const std::vector<int32_t>& ids) {
  std::ostringstream s;
  for (size_t i = 0; i < ids.size(); ++i) s << (i ? " " : "") << ids[i];
  return s.str();
}

}  // namespace tandem::mpitest
