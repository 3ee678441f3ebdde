// Start-up of a tandem job on every rank: check the layout against the world, build the
// communicators, and load each rank's shard of the target (and of the drafter). Load errors are
// agreed on across the world, so a missing file on one rank is the same clear error on every
// rank and a non-zero exit everywhere, never a hang.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "dist/communicators.h"
#include "dist/layout.h"
#include "dist/model_group.h"
#include "shard/format/model_file.h"

namespace tandem {

struct DraftSpec {
  enum class Kind { None, Model, Ngram, Layers } kind = Kind::None;
  std::string path;  // Model
  int layers = 0;    // Layers: the target's first K layers + its head
};
// "" | "ngram" | "layers:K" | a model file path.
Result<DraftSpec> parse_draft_spec(const std::string& s);

struct ClusterOptions {
  Layout layout;
  std::string model;
  std::string tokenizer;  // llama2.c checkpoints only
  std::string draft;      // see parse_draft_spec
  int threads = 1;
  int max_seqs = 1;
  int ctx = 0;  // 0: the model's training context
  WeightType kv_type = WeightType::F16;
  std::string model_cache;  // where a host without the model keeps the shard it was sent ("" = nowhere)
};

struct Cluster {
  ClusterOptions opts;
  Role role;
  Communicators comms;
  DraftSpec draft_spec;
  ModelFile target_file;               // every rank maps it; only its shard is read
  std::unique_ptr<ModelGroup> target;  // on target ranks
  // The draft model group: on the draft ranks (draft_tp > 0), or on rank 0 alone when the
  // drafter shares rank 0 with the target (vanilla speculative decoding).
  std::unique_ptr<ModelGroup> draft;
  bool remote_draft() const { return opts.layout.draft_tp > 0; }
  int ctx = 0;
  std::vector<std::string> hosts;  // host name of every world rank (gathered at start-up)
};

Result<std::unique_ptr<Cluster>> start_cluster(const ClusterOptions& o, int world_rank, int world_size);

// Draft and target must share the vocabulary token for token.
Status check_same_vocab(const ModelFile& target, const ModelFile& draft);

}  // namespace tandem
