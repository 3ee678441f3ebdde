// Test helpers shared by the forward-pass tests: small synthetic models written once into
// TANDEM_TEST_WORK (a file written with the same options is reused, so a test run after the first
// costs nothing), and a one-rank engine (shard + KV cache + pool) to drive forward_stage.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "shard/model/collectives.h"
#include "shard/format/gguf_reader.h"
#include "shard/model/kv_cache.h"
#include "shard/model/forward.h"
#include "shard/format/model_file.h"
#include "shard/result.h"
#include "shard/model/shard_model.h"
#include "shard/format/synth.h"
#include "shard/kernels/thread_pool.h"

namespace tandem::test {

// The real stories260K model (F32, 512-token vocabulary): also the vocabulary of every synthetic
// model here, which keeps the head small.
std::string stories_gguf();
// The 200 tokens stories260K generates greedily after BOS (the golden reference).
std::vector<int32_t> stories_greedy_ids();

// Options for a small synthetic model over the stories260K vocabulary; `out` is left empty
// (synth_model names the file from the options).
SynthOptions small_synth(WeightType t, int dim, int n_layers, int n_heads, int n_kv_heads, int ffn_dim,
                         uint64_t seed = 1, const std::string& arch = "llama");

// Path of the model these options describe, written on first use. The file name encodes every
// option that changes the bytes; writing goes through a temporary file and a rename, so tests
// running in parallel processes never see a half-written model.
Result<std::string> synth_model(SynthOptions o);

// `src` converted to `t` for every matrix whose rows hold whole blocks of `t`; the others are kept
// as F32 (as llama.cpp falls back when a row cannot be quantized). Written once, like synth_model.
// Returns the path and how many matrices were converted.
struct Converted {
  std::string path;
  int converted = 0, kept_f32 = 0;
};
Result<Converted> converted_model(const std::string& src, WeightType t);

// `src` with some metadata keys replaced or added (tensors copied byte for byte), e.g. another
// RoPE base or a partial rotary dimension for a synthetic model. `tag` names the variant (the
// file is written once per tag).
Result<std::string> with_metadata(const std::string& src, const std::string& tag,
                                  const std::vector<std::pair<std::string, GgufValue>>& overrides);

// One rank holding the whole model (or the slice `spec` describes), with its own KV cache.
struct Engine {
  ShardModel model;
  KvCache kv;
  std::unique_ptr<ThreadPool> pool;
  LocalCollectives coll;
  ForwardScratch scratch;
  std::vector<float> hidden, logits;

  // Runs one batch; logits of output row i are row(i).
  Status run(std::span<const SeqChunk> batch);
  Status run(const SeqChunk& c) { return run(std::span<const SeqChunk>(&c, 1)); }
  std::span<const float> row(int i) const;
  int vocab() const { return model.ranges.n_vocab(); }
};

Result<std::unique_ptr<Engine>> make_engine(const ModelFile& f, int max_seqs, int ctx, int threads,
                                            WeightType kv_type = WeightType::F16, const ShardSpec& spec = {});

// `n` token ids in [3, n_vocab) (no BOS/EOS/control ids), a pure function of `seed`.
std::vector<int32_t> test_tokens(int n, uint64_t seed, int n_vocab);

// Index of the largest value, ties to the lowest index (as the engine's greedy sampler).
int argmax(std::span<const float> v);

// Index of the first output row of each chunk of a batch (chunks give one row, or one per token).
std::vector<int> first_out_rows(std::span<const SeqChunk> batch);

}  // namespace tandem::test
