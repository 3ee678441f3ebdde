#include "dist/cluster.h"

#include <mpi.h>
#include <unistd.h>

#include <charconv>
#include <cstdlib>
#include <cstdio>
#include <filesystem>

#include "dist/mpi_runtime.h"
#include "dist/shard_stream.h"
#include "shard/log.h"

namespace tandem {

Result<DraftSpec> parse_draft_spec(const std::string& s) {
  DraftSpec d;
  if (s.empty() || s == "none") return d;
  if (s == "ngram") {
    d.kind = DraftSpec::Kind::Ngram;
    return d;
  }
  if (s.rfind("layers:", 0) == 0) {
    const std::string n = s.substr(7);
    auto [p, ec] = std::from_chars(n.data(), n.data() + n.size(), d.layers);
    if (ec != std::errc() || p != n.data() + n.size() || d.layers < 1)
      return make_error("--draft '{}': expected layers:K with K >= 1", s);
    d.kind = DraftSpec::Kind::Layers;
    return d;
  }
  d.kind = DraftSpec::Kind::Model;
  d.path = s;
  return d;
}

Status check_same_vocab(const ModelFile& t, const ModelFile& d) {
  if (t.vocab.tokens.size() != d.vocab.tokens.size())
    return make_error("draft {} has {} tokens but the target {} has {}: a drafter must share the target's vocabulary",
                      d.path, d.vocab.tokens.size(), t.path, t.vocab.tokens.size());
  for (size_t i = 0; i < t.vocab.tokens.size(); ++i)
    if (t.vocab.tokens[i] != d.vocab.tokens[i])
      return make_error("draft {} and target {} differ at token {} ('{}' vs '{}'): a drafter must share the target's "
                        "vocabulary", d.path, t.path, i, d.vocab.tokens[i], t.vocab.tokens[i]);
  return ok_status();
}

namespace {

Result<std::unique_ptr<ModelGroup>> load_group(const char* what, const ModelFile& f, const ShardSpec& spec,
                                               GroupPlace place, const ClusterOptions& o, int ctx) {
  spdlog::info("loading {} layers [{}, {}) tp {}/{} of {}", what, spec.layer_begin,
               spec.layer_end < 0 ? f.config.n_layers : spec.layer_end, spec.tp_rank, spec.tp_size, f.path);
  auto m = load_shard(f, spec);
  if (!m) return m.error();
  KvCacheConfig kc;
  kc.n_layers = m->ranges.n_layers();
  kc.n_kv_heads = m->ranges.n_kv_heads();
  kc.head_dim = f.config.head_dim;
  kc.max_seqs = o.max_seqs;
  kc.ctx = ctx;
  kc.type = o.kv_type;
  auto kv = make_kv_cache(kc);
  if (!kv) return kv.error();
  spdlog::info("shard loaded: {:.1f} MiB ({} bytes) read of a {:.1f} MiB model; {:.1f} MiB streamed per token; KV cache "
               "{:.1f} MiB ({} slots × {} positions)", m->bytes_loaded / 1048576.0, m->bytes_loaded, f.weight_bytes() / 1048576.0,
               m->bytes_per_token / 1048576.0, kv->bytes / 1048576.0, o.max_seqs, ctx);
  return std::make_unique<ModelGroup>(place, std::move(*m), std::move(*kv), o.threads);
}

// The shard of the target this rank holds, and the draft's (on the draft ranks, or on rank 0 with
// a local drafter): one place, for loading and for asking what a host without the file needs.
ShardSpec target_shard_spec(const Cluster& c, const std::vector<std::pair<int, int>>& stages) {
  const Layout& l = c.opts.layout;
  ShardSpec s;
  s.tp_rank = c.role.tp_rank;
  s.tp_size = l.tp;
  s.layer_begin = stages[c.role.stage].first;
  s.layer_end = stages[c.role.stage].second;
  s.has_embedding = c.role.stage == 0;
  s.has_head = c.role.stage == l.pp - 1;
  return s;
}

ShardSpec draft_shard_spec(const Cluster& c) {
  ShardSpec s;
  s.tp_rank = c.role.in_draft ? c.role.draft_rank : 0;
  s.tp_size = c.role.in_draft ? c.opts.layout.draft_tp : 1;
  if (c.draft_spec.kind == DraftSpec::Kind::Layers) s.layer_end = c.draft_spec.layers;
  return s;
}

// --layer-split as given; else, with pp > 1, stages balanced by the bytes a decode step streams
// (the head and final norm on the last stage), so that no stage waits on a heavier neighbour.
std::vector<int> stage_split(const ClusterOptions& o, const ModelFile& f) {
  if (!o.layout.layer_split.empty() || o.layout.pp < 2) return o.layout.layer_split;
  const int n = f.config.n_layers;
  std::vector<double> layers(std::max(0, n), 0.0);
  double head = 0;
  for (const auto& t : f.tensors) {
    if (t.name.rfind("blk.", 0) == 0) {
      const int l = std::atoi(t.name.c_str() + 4);
      if (l >= 0 && l < n) layers[l] += static_cast<double>(t.nbytes);
    } else if (t.name.rfind("output", 0) == 0) {  // output.weight (or the tied alias), output_norm
      head += static_cast<double>(t.nbytes);
    }
  }
  return balanced_layer_split(layers, o.layout.pp, head);
}

bool holds_draft(const Cluster& c) {
  const bool model_draft = c.draft_spec.kind == DraftSpec::Kind::Model || c.draft_spec.kind == DraftSpec::Kind::Layers;
  return model_draft && (c.role.in_draft || (c.role.coordinator() && !c.remote_draft()));
}

Result<std::vector<ByteRange>> target_file_needs(const Cluster& c, const ModelFile& f) {
  std::vector<ByteRange> all;
  if (c.role.in_target) {
    auto stages = pipeline_stages(f.config.n_layers, c.opts.layout.pp, stage_split(c.opts, f));
    if (!stages) return make_error("{}: {}", c.opts.model, stages.error().message);
    auto r = shard_file_ranges(f, target_shard_spec(c, *stages));
    if (!r) return r.error();
    all.insert(all.end(), r->begin(), r->end());
  }
  if (holds_draft(c) && c.draft_spec.kind == DraftSpec::Kind::Layers) {
    auto r = shard_file_ranges(f, draft_shard_spec(c));
    if (!r) return r.error();
    all.insert(all.end(), r->begin(), r->end());
  }
  return merge_ranges(std::move(all));
}

Result<ModelFile> open_local(const LocalModel& lm, const char* flag, const std::string& tokenizer = "") {
  std::error_code ec;
  if (!std::filesystem::exists(lm.path, ec))  // nor could rank 0 send it: it lacks the file too
    return make_error("{}: the file does not exist: {}", flag, lm.path);
  auto f = open_model(lm.path, tokenizer);
  if (lm.temporary) {  // mapped now: the name can go
    std::filesystem::remove(lm.path, ec);
    std::filesystem::remove(lm.path + ".ranges", ec);
  }
  return f;
}

// Collective: every rank gets (or is sent) what it needs of the target and draft files, then opens
// them. A failure here is local and agreed on by the caller, as any other load error.
Status load_local(Cluster& c) {
  const ClusterOptions& o = c.opts;
  const Layout& l = o.layout;
  auto lt = ensure_local_model(o.model, true, [&](const ModelFile& f) { return target_file_needs(c, f); },
                               o.model_cache, "model");
  const bool wants_draft_file = c.draft_spec.kind == DraftSpec::Kind::Model && holds_draft(c);
  Result<LocalModel> ld = LocalModel{c.draft_spec.path};
  if (c.draft_spec.kind == DraftSpec::Kind::Model)
    ld = ensure_local_model(c.draft_spec.path, wants_draft_file,
                            [&](const ModelFile& f) { return shard_file_ranges(f, draft_shard_spec(c)); }, o.model_cache,
                            "draft");
  if (!lt) return lt.error();
  if (!ld) return ld.error();
  auto tf = open_local(*lt, "--model", o.tokenizer);
  if (!tf) return tf.error();
  tf->path = o.model;  // messages and ModelInfo name the file as given, wherever its bytes came from
  c.target_file = std::move(*tf);
  c.ctx = o.ctx > 0 ? o.ctx : c.target_file.config.ctx_len;
  if (c.ctx <= 0) return make_error("{}: the model has no context length; pass --ctx-size", o.model);
  const int n_layers = c.target_file.config.n_layers;
  auto stages = pipeline_stages(n_layers, l.pp, stage_split(o, c.target_file));
  if (!stages) return make_error("{}: {}", o.model, stages.error().message);
  if (l.pp > 1 && c.role.coordinator()) {
    std::string desc;
    for (const auto& [b, e] : *stages) desc += fmt::format("{}{}", desc.empty() ? "" : ",", e - b);
    spdlog::info("pipeline stages: {} layers{}", desc, l.layer_split.empty() ? " (balanced by bytes, head on the last stage)" : "");
  }

  std::optional<ModelFile> draft_file;
  if (wants_draft_file) {
    auto df = open_local(*ld, "--draft");
    if (!df) return df.error();
    df->path = c.draft_spec.path;
    TANDEM_TRY(check_same_vocab(c.target_file, *df));
    draft_file = std::move(*df);
  }
  if (c.draft_spec.kind == DraftSpec::Kind::Layers && c.draft_spec.layers >= n_layers)
    return make_error("--draft layers:{} must use fewer layers than the target's {}", c.draft_spec.layers, n_layers);

  if (c.role.in_target) {
    const ShardSpec s = target_shard_spec(c, *stages);
    GroupPlace p{c.comms.target, c.comms.tp, l.tp, l.pp, c.role.stage, c.role.tp_rank};
    auto g = load_group("target", c.target_file, s, p, o, c.ctx);
    if (!g) return g.error();
    c.target = std::move(*g);
  }
  if (holds_draft(c)) {
    const ModelFile& f = draft_file ? *draft_file : c.target_file;
    const ShardSpec s = draft_shard_spec(c);
    GroupPlace p = c.role.in_draft ? GroupPlace{c.comms.draft, c.comms.tp, l.draft_tp, 1, 0, c.role.draft_rank}
                                   : GroupPlace{MPI_COMM_SELF, MPI_COMM_SELF, 1, 1, 0, 0};
    auto g = load_group("draft", f, s, p, o, c.ctx);
    if (!g) return g.error();
    c.draft = std::move(*g);
  }
  return ok_status();
}

// Every rank's host name, in world-rank order (fixed-size records: one Allgather, no size exchange).
std::vector<std::string> gather_host_names(int world_size) {
  constexpr int kLen = 64;
  char mine[kLen] = {};
  if (gethostname(mine, kLen - 1) != 0) std::snprintf(mine, kLen, "?");
  std::vector<char> all(static_cast<size_t>(kLen) * world_size);
  MPI_Allgather(mine, kLen, MPI_CHAR, all.data(), kLen, MPI_CHAR, MPI_COMM_WORLD);
  std::vector<std::string> out;
  for (int r = 0; r < world_size; ++r) out.emplace_back(all.data() + static_cast<size_t>(r) * kLen);
  return out;
}

}  // namespace

Result<std::unique_ptr<Cluster>> start_cluster(const ClusterOptions& given, int world_rank, int world_size) {
  auto ds = parse_draft_spec(given.draft);
  if (!ds) return ds.error();
  // No --draft-tp: the ranks beyond the target's go to the draft group when there is a draft model
  // to run there (`mpirun -n 3 … --tp 2 --draft d.gguf` puts the draft on rank 2).
  ClusterOptions o = given;
  if (o.layout.draft_tp < 0) {
    const bool runs_remotely = ds->kind != DraftSpec::Kind::None && ds->kind != DraftSpec::Kind::Ngram;
    o.layout.draft_tp = runs_remotely ? std::max(0, world_size - o.layout.tp * o.layout.pp) : 0;
    if (o.layout.draft_tp > 0 && world_rank == 0)
      spdlog::info("--draft-tp {} (the job's {} ranks beyond tp {} × pp {})", o.layout.draft_tp, o.layout.draft_tp,
                   o.layout.tp, o.layout.pp);
  }
  // Every rank computes the same verdict on the layout, so each can fail alone without a hang.
  TANDEM_TRY(check_world_size(o.layout, world_size));
  if (o.layout.draft_tp > 0 && (ds->kind == DraftSpec::Kind::None || ds->kind == DraftSpec::Kind::Ngram))
    return make_error("--draft-tp {} asks for draft ranks, but --draft '{}' has no model to run there (give a draft "
                      "model or layers:K, or drop --draft-tp)", o.layout.draft_tp, o.draft);
  if (o.max_seqs < 1) return make_error("--max-seqs must be at least 1");

  auto c = std::make_unique<Cluster>();
  c->opts = o;
  c->draft_spec = *ds;
  c->role = role_of(o.layout, world_rank);
  make_communicators(o.layout, c->role, c->comms);
  c->hosts = gather_host_names(world_size);
  if (world_rank == 0) {
    std::string map;
    for (int r = 0; r < world_size; ++r) map += fmt::format("{}{} on {}", r ? ", " : "", r, c->hosts[r]);
    spdlog::info("ranks: {}", map);
  }
  Status local = load_local(*c);
  TANDEM_TRY(agree(MPI_COMM_WORLD, local));
  return c;
}

}  // namespace tandem
