#include "tests/unit/model/synth_fixture.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>

#include "shard/format/gguf_writer.h"
#include "shard/format/model_quantize.h"
#include "shard/kernels/quant.h"

namespace tandem::test {
namespace {

// Bumped when a helper changes what it writes, so files from an older build are not reused.
constexpr int kFixtureVersion = 1;

std::string work_path(const std::string& name) { return std::string(TANDEM_TEST_WORK) + "/" + name; }

// Writes `path` through `write(tmp)` and a rename unless it already exists.
Status write_once(const std::string& path, const std::function<Status(const std::string&)>& write) {
  if (std::filesystem::exists(path)) return ok_status();
  const std::string tmp = fmt::format("{}.tmp{}", path, getpid());
  auto st = write(tmp);
  if (!st) {
    std::filesystem::remove(tmp);
    return st.error();
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return make_error("cannot rename {} to {}: {}", tmp, path, ec.message());
  return ok_status();
}

}  // namespace

std::string stories_gguf() { return std::string(TANDEM_TESTDATA) + "/models/stories260K.gguf"; }

std::vector<int32_t> stories_greedy_ids() {
  std::ifstream f(std::string(TANDEM_TESTDATA) + "/models/stories260K.greedy.ids");
  std::vector<int32_t> v;
  for (int32_t x; f >> x;) v.push_back(x);
  return v;
}

SynthOptions small_synth(WeightType t, int dim, int n_layers, int n_heads, int n_kv_heads, int ffn_dim, uint64_t seed,
                         const std::string& arch) {
  SynthOptions o;
  o.arch = arch;
  o.vocab_from = stories_gguf();
  o.type = t;
  o.dim = dim;
  o.n_layers = n_layers;
  o.n_heads = n_heads;
  o.n_kv_heads = n_kv_heads;
  o.ffn_dim = ffn_dim;
  o.ctx_len = 256;
  o.seed = seed;
  o.threads = 2;
  // Deep layers at full strength: the tests want every layer to matter, not a draft pair.
  o.residual_scale = 1.0f;
  return o;
}

Result<std::string> synth_model(SynthOptions o) {
  const std::string vocab = std::filesystem::path(o.vocab_from).stem().string();
  o.out = work_path(fmt::format("fx{}_{}{}_{}_d{}_l{}_h{}_kv{}_hd{}_f{}_c{}_s{}_r{}_dl{}_{}.gguf", kFixtureVersion, o.arch,
                                o.tied ? "_tied" : "", name(o.type), o.dim, o.n_layers, o.n_heads, o.n_kv_heads,
                                o.head_dim, o.ffn_dim, o.ctx_len, o.seed, o.residual_scale, o.draft_layers, vocab));
  o.draft_out.clear();
  const std::string path = o.out;
  TANDEM_TRY(write_once(path, [&](const std::string& tmp) {
    SynthOptions w = o;
    w.out = tmp;
    return write_synth_model(w);
  }));
  return path;
}

Result<Converted> converted_model(const std::string& src, WeightType t) {
  auto in = open_model(src);
  if (!in) return in.error();
  if (!in->gguf) return make_error("{}: converted_model reads GGUF inputs only", src);
  Converted r;
  r.path = work_path(fmt::format("fx{}_conv_{}_{}.gguf", kFixtureVersion, std::filesystem::path(src).stem().string(),
                                 name(t)));
  const int64_t block = info(t).block_elems;
  std::vector<TensorToWrite> tensors;
  for (const TensorRef& src_t : in->tensors) {
    // A tied head is listed as an alias of token_embd: writing it would untie the head.
    if (in->is_tied_alias(src_t)) continue;
    const bool convert = src_t.ne.size() >= 2 && src_t.cols() % block == 0;
    if (src_t.ne.size() >= 2) ++(convert ? r.converted : r.kept_f32);
    const WeightType dst = convert ? t : WeightType::F32;
    const TensorRef* s = &src_t;
    tensors.push_back({s->name, dst, s->ne, [s, dst](uint8_t* out) {
                         int64_t rows = 1;
                         for (size_t i = 1; i < s->ne.size(); ++i) rows *= s->ne[i];
                         std::vector<float> row(s->cols());
                         for (int64_t i = 0; i < rows; ++i) {
                           dequantize_row(s->type, s->row(i), row.data(), s->cols());
                           quantize_row(dst, row.data(), out + i * row_bytes(dst, s->cols()), s->cols());
                         }
                       }});
  }
  auto md = in->gguf->metadata;
  for (auto& [k, v] : md)
    if (k == "general.file_type") v = gguf_u32(llama_file_type(t));
  TANDEM_TRY(write_once(r.path, [&](const std::string& tmp) { return write_gguf(tmp, md, tensors); }));
  return r;
}

Result<std::string> with_metadata(const std::string& src, const std::string& tag,
                                  const std::vector<std::pair<std::string, GgufValue>>& overrides) {
  auto g = open_gguf(src);
  if (!g) return g.error();
  const std::string path =
      work_path(fmt::format("fx{}_meta_{}_{}.gguf", kFixtureVersion, tag, std::filesystem::path(src).stem().string()));
  auto md = g->metadata;
  for (const auto& [key, value] : overrides) {
    auto it = std::find_if(md.begin(), md.end(), [&](const auto& kv) { return kv.first == key; });
    if (it != md.end())
      it->second = value;
    else
      md.emplace_back(key, value);
  }
  std::vector<TensorToWrite> tensors;
  for (const GgufTensorInfo& t : g->tensors) {
    const uint8_t* data = g->tensor_data(t);
    const uint64_t n = t.nbytes;
    tensors.push_back({t.name, t.type, t.ne, [data, n](uint8_t* out) { std::copy(data, data + n, out); }});
  }
  TANDEM_TRY(write_once(path, [&](const std::string& tmp) { return write_gguf(tmp, md, tensors); }));
  return path;
}

Status Engine::run(std::span<const SeqChunk> batch) {
  return forward_stage(model, kv, batch, coll, *pool, scratch, hidden, &logits);
}

std::span<const float> Engine::row(int i) const {
  const size_t v = static_cast<size_t>(vocab());
  return std::span<const float>(logits).subspan(static_cast<size_t>(i) * v, v);
}

Result<std::unique_ptr<Engine>> make_engine(const ModelFile& f, int max_seqs, int ctx, int threads,
                                            WeightType kv_type, const ShardSpec& spec) {
  auto e = std::make_unique<Engine>();
  auto m = load_shard(f, spec);
  if (!m) return m.error();
  e->model = std::move(*m);
  auto kv = make_kv_cache(KvCacheConfig{e->model.ranges.n_layers(), e->model.ranges.n_kv_heads(), f.config.head_dim,
                                        max_seqs, ctx, kv_type});
  if (!kv) return kv.error();
  e->kv = std::move(*kv);
  e->pool = std::make_unique<ThreadPool>(threads);
  return e;
}

std::vector<int32_t> test_tokens(int n, uint64_t seed, int n_vocab) {
  std::vector<int32_t> t(n);
  uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
  for (auto& id : t) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;  // an LCG is plenty for picking ids
    id = 3 + static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(n_vocab - 3));
  }
  return t;
}

int argmax(std::span<const float> v) {
  int best = 0;
  for (int i = 1; i < static_cast<int>(v.size()); ++i)
    if (v[i] > v[best]) best = i;
  return best;
}

std::vector<int> first_out_rows(std::span<const SeqChunk> batch) {
  std::vector<int> first;
  int row = 0;
  for (const auto& c : batch) {
    first.push_back(row);
    row += c.all_logits ? static_cast<int>(c.tokens.size()) : 1;
  }
  return first;
}

}  // namespace tandem::test
