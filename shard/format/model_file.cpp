#include "shard/format/model_file.h"

#include <fmt/format.h>

#include <cstring>
#include <filesystem>
#include <set>
#include <unordered_set>

#include "shard/format/llama2c_checkpoint.h"

namespace tandem {
namespace {

constexpr uint8_t kGgufMagic[4] = {'G', 'G', 'U', 'F'};

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
  return s + "]";
}

// "token_embd, output_norm, output?, blk.N.{attn_q, attn_q.bias?, ...}" (? = optional).
std::string describe_tensors(const std::vector<TensorSpec>& specs) {
  std::string model, layer;
  for (const TensorSpec& t : specs) {
    if (t.layer > 0) break;
    std::string item = fmt::format("{}{}{}", t.what, t.bias ? ".bias" : "", t.required ? "" : "?");
    std::string& list = t.layer < 0 ? model : layer;
    list += (list.empty() ? "" : ", ") + item;
  }
  return fmt::format("{}, blk.N.{{{}}}", model, layer);
}

// Every tensor the architecture table lists for the config: the required ones exist, every one
// present has the shape the config implies, and the file holds nothing else (a tensor tandem
// would not read means the file computes something tandem does not: an error, as in llama.cpp).
Status check_tensors(const ModelFile& m) {
  const ModelConfig& c = m.config;
  const std::vector<TensorSpec> specs = model_tensors(c);
  std::unordered_set<std::string_view> known;
  for (const TensorSpec& t : specs) {
    known.insert(t.name);
    if (!t.required && !m.find(t.name)) continue;
    auto r = m.require(t.name, t.cols, t.rows);
    if (!r) return r.error();
  }
  for (const TensorRef& t : m.tensors)
    if (!known.contains(t.name))
      return make_error("{}: tensor '{}' is not part of a '{}' model as tandem runs it (it has {}; ? = optional)",
                        m.path, t.name, c.arch, describe_tensors(specs));
  return ok_status();
}

Status check_vocab(const ModelFile& m, const std::string& vocab_source) {
  const size_t n = m.vocab.tokens.size();
  if (n != static_cast<size_t>(m.config.n_vocab))
    return make_error("{}: vocabulary size mismatch: the tokenizer ({}) has {} tokens, the model's embedding has {} rows",
                      m.path, vocab_source, n, m.config.n_vocab);
  return ok_status();
}

Result<ModelFile> open_gguf_model(std::shared_ptr<const MappedFile> map) {
  auto g = parse_gguf(map);
  if (!g) return g.error();
  ModelFile m;
  m.path = map->path;
  m.format = "gguf";
  m.map = map;
  auto cfg = config_from_gguf(*g);
  if (!cfg) return cfg.error();
  m.config = std::move(*cfg);
  for (const auto& ti : g->tensors)
    m.tensors.push_back(TensorRef{ti.name, ti.type, ti.ne, g->tensor_data(ti), ti.nbytes});
  if (m.config.tied_output) {
    if (const TensorRef* e = m.find(kTokenEmbd)) {
      TensorRef head = *e;
      head.name = kOutput;
      m.tensors.push_back(std::move(head));
    }
  }
  // The vocabulary size comes from llama.vocab_size or the token list; an embedding of another
  // height is the classic mismatch, worth naming as such rather than as a shape error.
  if (const TensorRef* e = m.find(kTokenEmbd); e && e->ne.size() >= 2 && e->ne[1] != m.config.n_vocab) {
    const bool from_key = g->find(m.config.arch + ".vocab_size") != nullptr;
    return make_error("{}: vocabulary size mismatch: {} gives {} tokens, {} has {} rows", m.path,
                      from_key ? m.config.arch + ".vocab_size" : std::string("tokenizer.ggml.tokens"),
                      m.config.n_vocab, kTokenEmbd, e->ne[1]);
  }
  TANDEM_TRY(check_tensors(m));
  auto vocab = vocab_from_gguf(*g);
  if (!vocab) return vocab.error();
  m.vocab = std::move(*vocab);
  TANDEM_TRY(check_vocab(m, "tokenizer.ggml.tokens"));
  m.gguf = std::move(*g);
  return m;
}

Result<std::string> find_llama2c_tokenizer(const std::string& model_path, int n_vocab) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(model_path).parent_path();
  std::vector<fs::path> candidates = {dir / ("tok" + std::to_string(n_vocab) + ".bin"), dir / "tokenizer.bin"};
  for (const auto& p : candidates) {
    std::error_code ec;
    if (fs::is_regular_file(p, ec)) return p.string();
  }
  return make_error("{}: a llama2.c checkpoint needs its tokenizer: none was given and neither {} nor {} exists",
                    model_path, candidates[0].string(), candidates[1].string());
}

Result<ModelFile> open_llama2c_model(std::shared_ptr<const MappedFile> map, const std::string& tokenizer_path) {
  auto ck = read_llama2c(*map);
  if (!ck) return ck.error();
  ModelFile m;
  m.path = map->path;
  m.format = "llama2c";
  m.map = map;
  m.config = std::move(ck->config);
  m.tensors = std::move(ck->tensors);
  TANDEM_TRY(check_tensors(m));
  std::string tok = tokenizer_path;
  if (tok.empty()) {
    auto found = find_llama2c_tokenizer(m.path, m.config.n_vocab);
    if (!found) return found.error();
    tok = std::move(*found);
  }
  auto vocab = vocab_from_llama2c(tok);
  if (!vocab) return vocab.error();
  m.vocab = std::move(*vocab);
  TANDEM_TRY(check_vocab(m, tok));
  return m;
}

}  // namespace

const TensorRef* ModelFile::find(std::string_view name) const {
  for (const auto& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

Result<const TensorRef*> ModelFile::require(std::string_view name, int64_t cols, int64_t rows) const {
  const TensorRef* t = find(name);
  if (!t) return make_error("{}: missing tensor '{}'", path, name);
  if (cols < 0 && rows < 0) return t;
  int64_t trailing = 1;  // dimensions beyond the second must be 1 for a matrix or vector
  for (size_t i = 2; i < t->ne.size(); ++i) trailing *= t->ne[i];
  const bool ok = (cols < 0 || t->cols() == cols) && (rows < 0 || t->rows() == rows) && trailing == 1;
  if (!ok)
    return make_error("{}: tensor '{}' has shape {}, the model config implies [{}, {}]", path, name,
                      shape_str(t->ne), cols < 0 ? std::string("*") : std::to_string(cols),
                      rows < 0 ? std::string("*") : std::to_string(rows));
  return t;
}

bool ModelFile::is_tied_alias(const TensorRef& t) const {
  if (t.name != kOutput || !config.tied_output) return false;
  const TensorRef* e = find(kTokenEmbd);
  return e && e->data == t.data;
}

uint64_t ModelFile::weight_bytes() const {
  // A tied head aliases token_embd's bytes: count what is stored, once.
  std::set<const uint8_t*> seen;
  uint64_t total = 0;
  for (const auto& t : tensors)
    if (seen.insert(t.data).second) total += t.nbytes;
  return total;
}

Result<ModelFile> open_model(const std::string& path, const std::string& tokenizer_path) {
  auto map = map_file(path);
  if (!map) return map.error();
  const auto& m = **map;
  if (m.size >= 4 && std::memcmp(m.data, kGgufMagic, 4) == 0) return open_gguf_model(*map);
  return open_llama2c_model(*map, tokenizer_path);
}

}  // namespace tandem
