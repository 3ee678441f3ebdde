// `tandem model info`: what a model file holds (family, tokenizer, chat template, weight types as
// llama.cpp names them, tensors) and what serving it costs in memory.
#include <fmt/format.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "launch/commands.h"
#include "shard/format/file_type.h"
#include "shard/format/model_file.h"
#include "shard/log.h"
#include "shard/tokenizer/tokenizer.h"

namespace tandem::cli {
namespace {

using json = nlohmann::ordered_json;  // keeps metadata and fields in file order

constexpr size_t kMaxArrayItems = 8;  // arrays (vocabularies) are abbreviated to their head

json value_json(const GgufValue& v) {
  if (const auto* a = v.as_array()) {
    json items = json::array();
    for (size_t i = 0; i < a->items.size() && i < kMaxArrayItems; ++i) items.push_back(value_json(a->items[i]));
    return json{{"type", "array"}, {"elem_type", gguf_type_name(a->elem)}, {"length", a->items.size()},
                {"head", std::move(items)}};
  }
  if (const auto* s = v.as_string()) return *s;
  if (const auto* b = std::get_if<bool>(&v.v)) return *b;
  if (const auto* d = std::get_if<double>(&v.v)) return *d;
  if (const auto* u = std::get_if<uint64_t>(&v.v)) return *u;
  if (const auto* i = std::get_if<int64_t>(&v.v)) return *i;
  return nullptr;
}

std::string rope_scaling_name(const RopeScaling& r) {
  switch (r.kind) {
    case RopeScaling::Kind::None: return "none";
    case RopeScaling::Kind::Linear: return fmt::format("linear x{}", r.factor);
    case RopeScaling::Kind::Llama3:
      return fmt::format("llama3 x{} (low {}, high {}, original ctx {})", r.factor, r.low_freq_factor,
                         r.high_freq_factor, r.original_ctx);
  }
  return "?";
}

std::string shape_str(const std::vector<int64_t>& ne) {
  std::string s;
  for (size_t i = 0; i < ne.size(); ++i) s += (i ? " x " : "") + std::to_string(ne[i]);
  return s;
}

std::string human_bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30)) return fmt::format("{:.2f} GiB", b / double(uint64_t{1} << 30));
  if (b >= (uint64_t{1} << 20)) return fmt::format("{:.2f} MiB", b / double(uint64_t{1} << 20));
  if (b >= 1024) return fmt::format("{:.2f} KiB", b / 1024.0);
  return fmt::format("{} B", b);
}

// What of its family's optional pieces a model has (arch.h).
struct FamilyFacts {
  const ArchInfo* arch = nullptr;
  int layers_with_bias = 0;  // layers with a q, k or v bias
  bool qk_norm = false;
  bool tied = false;

  std::string bias_text(int n_layers) const {
    if (layers_with_bias == 0) return "no";
    if (layers_with_bias == n_layers) return "yes";
    return fmt::format("in {} of {} layers", layers_with_bias, n_layers);
  }
};

FamilyFacts family_facts(const ModelFile& m) {
  FamilyFacts f;
  f.arch = &arch_of(m.config);
  f.qk_norm = f.arch->qk_norm;
  f.tied = m.config.tied_output;
  for (int l = 0; l < m.config.n_layers; ++l)
    for (const char* w : {"attn_q", "attn_k", "attn_v"})
      if (m.find(tensor_bias_layer(l, w))) {
        ++f.layers_with_bias;
        break;
      }
  return f;
}

// tokenizer.chat_template and the named ones (tokenizer.chat_template.<name>, e.g. tool_use).
struct Templates {
  const std::string* main = nullptr;
  std::vector<std::pair<std::string, size_t>> named;  // name, chars
};
Templates chat_templates(const ModelFile& m) {
  Templates t;
  if (!m.gguf) return t;
  const std::string prefix = "tokenizer.chat_template.";
  for (const auto& [k, v] : m.gguf->metadata) {
    const std::string* s = v.as_string();
    if (!s) continue;
    if (k == "tokenizer.chat_template") t.main = s;
    else if (k.rfind(prefix, 0) == 0) t.named.emplace_back(k.substr(prefix.size()), s->size());
  }
  return t;
}

struct InfoArgs {
  std::string path, tokenizer, kv_type = "f16";
  bool json = false;
  int ctx = 0, seqs = 1;
};

// A GGUF with no tensors is a vocabulary (llama.cpp's ggml-vocab-*.gguf, `model import-tokenizer`):
// its tokenizer, as the tokenizer reads it. False when `path` is something else.
bool vocabulary_info(const InfoArgs& a) {
  auto f = open_gguf(a.path);
  if (!f || !f->tensors.empty()) return false;
  auto v = vocab_from_gguf(*f);
  auto tok = v ? Tokenizer::create(std::move(*v)) : Result<Tokenizer>(v.error());
  if (!tok) {
    spdlog::error("model info: {}: {}", a.path, tok.error().message);
    fail(1);
  }
  const Vocab& voc = tok->vocab();
  auto text = [&](int32_t id) { return id >= 0 ? voc.tokens[static_cast<size_t>(id)] : std::string(); };
  const std::string* tmpl = f->find("tokenizer.chat_template") ? f->find("tokenizer.chat_template")->as_string() : nullptr;
  const char* kind = voc.kind == TokenizerKind::Spm ? "spm" : "bpe";
  if (a.json) {
    json j = {{"path", a.path}, {"format", "gguf vocabulary"},
              {"tokenizer", {{"kind", kind}, {"n_tokens", voc.tokens.size()}, {"n_merges", voc.merges.size()},
                             {"bos", voc.bos}, {"eos", voc.eos}, {"add_bos", voc.add_bos},
                             {"pre", voc.kind == TokenizerKind::Bpe ? json(voc.pre) : json(nullptr)}}},
              {"chat_template", {{"present", tmpl != nullptr}, {"chars", tmpl ? tmpl->size() : 0}}}};
    fmt::print("{}\n", j.dump(2, ' ', false, json::error_handler_t::replace));
    return true;
  }
  fmt::print("file: {} (GGUF v{} vocabulary, no weights)\n", a.path, f->version);
  fmt::print("  tokenizer {}: {} tokens, {} merges, bos {} '{}'{}, eos {} '{}', pre-tokenizer {}\n", kind,
             voc.tokens.size(), voc.merges.size(), voc.bos, text(voc.bos), voc.add_bos ? " (added)" : "", voc.eos,
             text(voc.eos), voc.kind == TokenizerKind::Bpe ? "'" + (voc.pre.empty() ? std::string("default") : voc.pre) + "'" : std::string("none"));
  fmt::print("  chat template: {}\n", tmpl ? fmt::format("yes ({} chars)", tmpl->size()) : "no");
  return true;
}

void run_info(const InfoArgs& a) {
  if (vocabulary_info(a)) return;
  auto m = open_model(a.path, a.tokenizer);
  if (!m) {
    spdlog::error("model info: {}", m.error().message);
    fail(1);
  }
  const ModelConfig& c = m->config;
  const int ctx = a.ctx > 0 ? a.ctx : c.ctx_len;
  const uint64_t kv_elem = a.kv_type == "f32" ? 4 : 2;
  const uint64_t kv_bytes = uint64_t{2} * c.n_layers * uint64_t(ctx) * uint64_t(c.kv_dim()) * kv_elem * uint64_t(a.seqs);

  // A tied head aliases token_embd: listed, but stored (and counted) once.
  const TensorRef* embd = m->find(kTokenEmbd);
  auto tied = [&](const TensorRef& t) { return t.name == kOutput && c.tied_output && embd && t.data == embd->data; };
  std::map<std::string, std::pair<uint64_t, int>> by_type;
  for (const auto& t : m->tensors) {
    if (tied(t)) continue;
    auto& e = by_type[std::string(name(t.type))];
    e.first += t.nbytes;
    e.second += 1;
  }
  const uint64_t weights = m->weight_bytes();
  const Vocab& v = m->vocab;
  const char* tok_kind = v.kind == TokenizerKind::Spm ? "spm" : "bpe";
  const FamilyFacts fam = family_facts(*m);
  const std::optional<std::string> pre = m->gguf ? m->gguf->get_string("tokenizer.ggml.pre") : std::nullopt;
  const Templates tmpl = chat_templates(*m);
  const FileType ft = file_type_of(*m);
  const std::map<std::string, int> type_counts = tensor_type_counts(*m);

  if (a.json) {
    json j;
    j["path"] = m->path;
    j["format"] = m->format;
    j["file_bytes"] = m->map->size;
    json md = json::object();
    if (m->gguf) {
      j["gguf_version"] = m->gguf->version;
      for (const auto& [k, val] : m->gguf->metadata) md[k] = json{{"type", gguf_type_name(val.type)}, {"value", value_json(val)}};
    }
    j["metadata"] = std::move(md);
    j["config"] = {{"arch", c.arch},         {"name", c.name},           {"n_vocab", c.n_vocab},
                   {"dim", c.dim},           {"n_layers", c.n_layers},   {"n_heads", c.n_heads},
                   {"n_kv_heads", c.n_kv_heads}, {"head_dim", c.head_dim}, {"ffn_dim", c.ffn_dim},
                   {"ctx_len", c.ctx_len},   {"rope_dim", c.rope_dim},   {"rope_theta", c.rope_theta},
                   {"rms_eps", c.rms_eps},   {"rope_scaling", rope_scaling_name(c.rope_scaling)},
                   {"tied_output", c.tied_output}};
    j["architecture"] = {{"name", fam.arch->name},
                         {"rope", rope_style_name(fam.arch->rope)},
                         {"qkv_bias", fam.layers_with_bias > 0},
                         {"qkv_bias_layers", fam.layers_with_bias},
                         {"qk_norm", fam.qk_norm},
                         {"tied_head", fam.tied}};
    j["tokenizer"] = {{"kind", tok_kind}, {"n_tokens", v.tokens.size()}, {"bos", v.bos}, {"eos", v.eos},
                      {"pre", pre ? json(*pre) : json(nullptr)}};
    json named = json::object();
    for (const auto& [n, chars] : tmpl.named) named[n] = chars;
    j["chat_template"] = {{"present", tmpl.main != nullptr}, {"chars", tmpl.main ? tmpl.main->size() : 0},
                          {"named", std::move(named)}};
    j["file_type"] = {{"id", ft.id},       {"name", ft.name},       {"enum", ft.enum_name},
                      {"description", ft.description}, {"guessed", ft.guessed}};
    j["tensor_types"] = type_counts;
    json ts = json::array();
    for (const auto& t : m->tensors) {
      json e = {{"name", t.name}, {"type", name(t.type)}, {"shape", t.ne}, {"bytes", t.nbytes}};
      if (tied(t)) e["tied_to"] = kTokenEmbd;
      ts.push_back(std::move(e));
    }
    j["tensors"] = std::move(ts);
    json bt = json::object();
    for (const auto& [type, e] : by_type) bt[type] = {{"bytes", e.first}, {"tensors", e.second}};
    j["bytes_by_type"] = std::move(bt);
    j["weight_bytes"] = weights;
    j["kv_cache"] = {{"ctx", ctx}, {"seqs", a.seqs}, {"type", a.kv_type}, {"bytes", kv_bytes}};
    j["total_bytes"] = weights + kv_bytes;
    // Token texts need not be valid UTF-8: replace bad bytes rather than throw.
    fmt::print("{}\n", j.dump(2, ' ', false, json::error_handler_t::replace));
    return;
  }

  fmt::print("file: {} ({}{}, {})\n", m->path, m->format, m->gguf ? fmt::format(" v{}", m->gguf->version) : "",
             human_bytes(m->map->size));
  if (m->gguf) {
    fmt::print("\nmetadata ({} keys):\n", m->gguf->metadata.size());
    for (const auto& [k, val] : m->gguf->metadata)
      fmt::print("  {:<44} {:<7} {}\n", k, gguf_type_name(val.type), format_value(val, kMaxArrayItems));
  } else {
    fmt::print("\nmetadata: none (llama2.c checkpoint: the header gives the shape, run.c's defaults the rest)\n");
  }
  fmt::print("\nconfig:\n");
  fmt::print("  arch {}  name '{}'\n", c.arch, c.name);
  fmt::print("  vocab {}  dim {}  layers {}  heads {}  kv heads {}  head dim {}  ffn {}\n", c.n_vocab, c.dim,
             c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim);
  fmt::print("  context {}  rope dim {}  rope theta {}  rope scaling {}  rms eps {}  tied head {}\n", c.ctx_len,
             c.rope_dim, c.rope_theta, rope_scaling_name(c.rope_scaling), c.rms_eps, c.tied_output ? "yes" : "no");
  fmt::print("  architecture {}: RoPE {}, q/k/v biases {}, q/k norms {}, head {}\n", fam.arch->name,
             rope_style_name(fam.arch->rope), fam.bias_text(c.n_layers), fam.qk_norm ? "yes" : "no",
             fam.tied ? "tied to token_embd" : "untied (output.weight)");
  fmt::print("  tokenizer {}: {} tokens, bos {}, eos {}, pre-tokenizer {}\n", tok_kind, v.tokens.size(), v.bos, v.eos,
             pre ? "'" + *pre + "'" : std::string("none"));
  std::string named;
  for (const auto& [n, chars] : tmpl.named) named += fmt::format(", '{}' ({} chars)", n, chars);
  fmt::print("  chat template: {}{}\n", tmpl.main ? fmt::format("yes ({} chars)", tmpl.main->size()) : "no", named);
  std::string counts;
  for (const auto& [type, n] : type_counts) counts += fmt::format("{}{} {}", counts.empty() ? "" : ", ", type, n);
  fmt::print("  file type: {} ({} = {}, \"{}\"); tensors: {}\n", ft.name, ft.enum_name, ft.id, ft.description,
             counts);
  fmt::print("\ntensors ({}):\n", m->tensors.size());
  fmt::print("  {:<32} {:<6} {:<16} {:>14}\n", "name", "type", "shape", "bytes");
  for (const auto& t : m->tensors)
    fmt::print("  {:<32} {:<6} {:<16} {:>14}{}\n", t.name, name(t.type), shape_str(t.ne), t.nbytes,
               tied(t) ? "  (tied: token_embd.weight, not stored)" : "");
  fmt::print("\nbytes by weight type:\n");
  for (const auto& [type, e] : by_type)
    fmt::print("  {:<6} {:>14}  ({}, {} tensors)\n", type, e.first, human_bytes(e.first), e.second);
  fmt::print("\ntotal weight bytes: {} ({})\n", weights, human_bytes(weights));
  fmt::print("KV cache (ctx {} x {} seq(s), {}): 2 x {} layers x {} x {} kv dim x {} B x {} = {} ({})\n", ctx, a.seqs,
             a.kv_type, c.n_layers, ctx, c.kv_dim(), kv_elem, a.seqs, kv_bytes, human_bytes(kv_bytes));
  fmt::print("total (weights + KV cache): {} ({})\n", weights + kv_bytes, human_bytes(weights + kv_bytes));
}

}  // namespace

void add_model_info(CLI::App& parent) {
  auto a = std::make_shared<InfoArgs>();
  auto* c = parent.add_subcommand(
      "info",
      "Show a model's family (architecture and its optional pieces), tokenizer and pre-tokenizer, chat template, file "
      "type and tensors per type as llama.cpp names them, metadata, config, tensors and memory needs (GGUF or "
      "llama2.c)");
  c->add_option("file", a->path, "Model file (GGUF or llama2.c checkpoint)")->required();
  c->add_flag("--json", a->json, "Print one JSON object instead of text");
  c->add_option("--ctx", a->ctx, "Context length for the KV cache estimate (default: the model's)")
      ->check(CLI::PositiveNumber);
  c->add_option("--seqs", a->seqs, "Concurrent sequences for the KV cache estimate")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  c->add_option("--kv-type", a->kv_type, "KV cache element type")->capture_default_str()->check(CLI::IsMember({"f16", "f32"}));
  c->add_option("--tokenizer", a->tokenizer,
                "Tokenizer for a llama2.c checkpoint (default: tok<vocab>.bin or tokenizer.bin beside it)");
  c->callback([a] { run_info(*a); });
}

}  // namespace tandem::cli
