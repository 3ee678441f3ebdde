#include "shard/format/vocab.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>

namespace tandem {
namespace {

constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kScores = "tokenizer.ggml.scores";
constexpr const char* kTypes = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";

// The array under `key` if it holds elements of one of the accepted types.
Result<const GgufArray*> typed_array(const GgufFile& f, const char* key, std::initializer_list<GgufType> accepted) {
  const GgufValue* v = f.find(key);
  if (!v) return static_cast<const GgufArray*>(nullptr);
  const GgufArray* a = v->as_array();
  bool ok = a != nullptr;
  if (ok) {
    ok = false;
    for (GgufType t : accepted) ok = ok || a->elem == t;
  }
  if (!ok)
    return make_error("{}: {} has type {}{}, which is not a valid type for it", f.path, key, gguf_type_name(v->type),
                      a ? fmt::format(" of {}", gguf_type_name(a->elem)) : std::string());
  return a;
}

Status check_count(const GgufFile& f, const char* key, size_t n, size_t n_tokens) {
  if (n != n_tokens)
    return make_error("{}: {} has {} entries but {} has {}: the arrays must have one entry per token", f.path, key, n,
                      kTokens, n_tokens);
  return ok_status();
}

// A special-token id: absent keeps the default; 0xFFFFFFFF (how converters write "none") or a
// negative value means no such token; anything else must name a token.
Status read_token_id(const GgufFile& f, const std::string& key, size_t n_tokens, int32_t& id) {
  const GgufValue* v = f.find(key);
  if (!v) {
    if (id >= static_cast<int64_t>(n_tokens)) id = -1;  // a default the vocabulary is too small for
    return ok_status();
  }
  const auto i = v->as_int();
  if (!i || v->type == GgufType::BOOL) return make_error("{}: {} is a {}, not a token id", f.path, key, gguf_type_name(v->type));
  if (*i < 0 || *i == 0xFFFFFFFFll) {
    id = -1;
    return ok_status();
  }
  if (*i >= static_cast<int64_t>(n_tokens))
    return make_error("{}: {} = {} is outside the vocabulary of {} tokens", f.path, key, *i, n_tokens);
  id = static_cast<int32_t>(*i);
  return ok_status();
}

Status read_flag(const GgufFile& f, const std::string& key, bool& flag) {
  const GgufValue* v = f.find(key);
  if (!v) return ok_status();
  auto b = f.get_bool(key);
  if (!b) return make_error("{}: {} is a {}, not a boolean", f.path, key, gguf_type_name(v->type));
  flag = *b;
  return ok_status();
}

bool is_byte_token_text(const std::string& t) {
  auto hex = [](char c) { return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f'); };
  return t.size() == 6 && t.compare(0, 3, "<0x") == 0 && hex(t[3]) && hex(t[4]) && t[5] == '>';
}

}  // namespace

Result<Vocab> vocab_from_gguf(const GgufFile& f) {
  Vocab v;
  const auto model = f.get_string("tokenizer.ggml.model");
  if (!model) {
    if (f.find("tokenizer.ggml.model"))
      return make_error("{}: tokenizer.ggml.model is not a string", f.path);
    return make_error("{}: no tokenizer.ggml.model key: the file carries no tokenizer", f.path);
  }
  // Defaults are llama.cpp's for each tokenizer model; the file's keys override them.
  if (*model == "llama") {
    v.kind = TokenizerKind::Spm;
    v.bos = 1, v.eos = 2, v.unk = 0;
    v.add_bos = true, v.add_space_prefix = true;
  } else if (*model == "gpt2") {
    v.kind = TokenizerKind::Bpe;
    v.bos = 11, v.eos = 11, v.unk = -1;
    v.add_bos = false, v.add_space_prefix = false;
  } else {
    return make_error("{}: tokenizer.ggml.model '{}' is not supported (only 'llama' (SentencePiece) and 'gpt2' (BPE))",
                      f.path, *model);
  }
  if (f.find("tokenizer.ggml.pre")) {
    auto pre = f.get_string("tokenizer.ggml.pre");
    if (!pre) return make_error("{}: tokenizer.ggml.pre is not a string", f.path);
    v.pre = *pre;
  }

  auto tokens = typed_array(f, kTokens, {GgufType::STRING});
  if (!tokens) return tokens.error();
  if (!*tokens) return make_error("{}: no {} key: the file carries no vocabulary", f.path, kTokens);
  const GgufArray& ta = **tokens;
  if (ta.items.empty()) return make_error("{}: {} is empty", f.path, kTokens);
  if (ta.items.size() > 0x7FFFFFFF) return make_error("{}: {} has too many tokens", f.path, kTokens);
  const size_t n = ta.items.size();
  v.tokens.reserve(n);
  for (const auto& it : ta.items) {
    if (!it.as_string()) return make_error("{}: {} holds a non-string item", f.path, kTokens);
    v.tokens.push_back(*it.as_string());
  }

  auto scores = typed_array(f, kScores, {GgufType::F32, GgufType::I32});
  if (!scores) return scores.error();
  if (*scores) {
    TANDEM_TRY(check_count(f, kScores, (*scores)->items.size(), n));
    v.scores.reserve(n);
    for (const auto& it : (*scores)->items) v.scores.push_back(static_cast<float>(it.as_float().value_or(0.0)));
  } else if (v.kind == TokenizerKind::Spm) {
    v.scores.assign(n, 0.0f);
  }

  auto types = typed_array(f, kTypes, {GgufType::I32});
  if (!types) return types.error();
  if (*types) {
    TANDEM_TRY(check_count(f, kTypes, (*types)->items.size(), n));
    v.types.reserve(n);
    for (const auto& it : (*types)->items) v.types.push_back(static_cast<int32_t>(it.as_int().value_or(0)));
  } else {
    v.types.assign(n, static_cast<int32_t>(TokenType::Normal));
  }

  auto merges = typed_array(f, kMerges, {GgufType::STRING});
  if (!merges) return merges.error();
  if (*merges) {
    v.merges.reserve((*merges)->items.size());
    for (const auto& it : (*merges)->items) {
      if (!it.as_string()) return make_error("{}: {} holds a non-string item", f.path, kMerges);
      v.merges.push_back(*it.as_string());
    }
  }
  if (v.kind == TokenizerKind::Bpe && v.merges.empty())
    return make_error("{}: a 'gpt2' (BPE) tokenizer needs {} and the file has none", f.path, kMerges);

  TANDEM_TRY(read_token_id(f, "tokenizer.ggml.bos_token_id", n, v.bos));
  TANDEM_TRY(read_token_id(f, "tokenizer.ggml.eos_token_id", n, v.eos));
  TANDEM_TRY(read_token_id(f, "tokenizer.ggml.unknown_token_id", n, v.unk));
  TANDEM_TRY(read_token_id(f, "tokenizer.ggml.padding_token_id", n, v.pad));
  TANDEM_TRY(read_flag(f, "tokenizer.ggml.add_bos_token", v.add_bos));
  v.add_bos_from_file = f.find("tokenizer.ggml.add_bos_token") != nullptr;
  v.bos_from_file = f.find("tokenizer.ggml.bos_token_id") != nullptr;
  TANDEM_TRY(read_flag(f, "tokenizer.ggml.add_eos_token", v.add_eos));
  TANDEM_TRY(read_flag(f, "tokenizer.ggml.add_space_prefix", v.add_space_prefix));
  if (v.add_bos && v.bos < 0)
    return make_error("{}: tokenizer.ggml.add_bos_token is true but there is no BOS token", f.path);
  if (v.add_eos && v.eos < 0)
    return make_error("{}: tokenizer.ggml.add_eos_token is true but there is no EOS token", f.path);
  return v;
}

Result<Vocab> vocab_from_llama2c(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("{}: cannot open the tokenizer: {}", path, std::strerror(errno));
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return make_error("{}: read error", path);

  size_t pos = 0;
  auto read_i32 = [&](int32_t& x) {
    if (data.size() - pos < 4) return false;
    std::memcpy(&x, data.data() + pos, 4);
    pos += 4;
    return true;
  };
  int32_t max_len = 0;
  if (!read_i32(max_len) || max_len <= 0 || max_len > (1 << 16))
    return make_error("{}: not a llama2.c tokenizer: the header (max_token_length {}) is invalid", path, max_len);

  // Equivalent to what llama.cpp's llama2.c converter writes: llama2.c's exporter stored BOS/EOS as
  // "\n<s>\n"/"\n</s>\n" and spaces as ' ', so ids 0-2 get their SentencePiece names back and
  // spaces become "▁" again.
  Vocab v;
  v.kind = TokenizerKind::Spm;
  v.bos = 1, v.eos = 2, v.unk = 0, v.pad = -1;
  v.add_bos = true, v.add_eos = false, v.add_space_prefix = true;
  while (pos < data.size()) {
    const size_t id = v.tokens.size();
    float score = 0;
    int32_t len = 0;
    if (data.size() - pos < 8)
      return make_error("{}: truncated at token {} (offset {}): the record header needs 8 bytes, {} are left", path, id,
                        pos, data.size() - pos);
    std::memcpy(&score, data.data() + pos, 4);
    std::memcpy(&len, data.data() + pos + 4, 4);
    pos += 8;
    if (len < 0 || len > max_len)
      return make_error("{}: token {} (offset {}) has length {}, outside [0, max_token_length {}]", path, id, pos - 4,
                        len, max_len);
    if (data.size() - pos < static_cast<size_t>(len))
      return make_error("{}: truncated in token {}: {} bytes announced, {} left", path, id, len, data.size() - pos);
    std::string text = data.substr(pos, len);
    pos += len;

    TokenType type = TokenType::Normal;
    if (id == 0) {
      text = "<unk>", type = TokenType::Unknown;
    } else if (id == 1) {
      text = "<s>", type = TokenType::Control;
    } else if (id == 2) {
      text = "</s>", type = TokenType::Control;
    } else if (is_byte_token_text(text)) {
      type = TokenType::Byte;
    }
    std::string escaped;
    escaped.reserve(text.size());
    for (char c : text) escaped += c == ' ' ? std::string_view("\xE2\x96\x81") : std::string_view(&c, 1);
    v.tokens.push_back(std::move(escaped));
    v.scores.push_back(score);
    v.types.push_back(static_cast<int32_t>(type));
  }
  if (v.tokens.size() < 3) return make_error("{}: holds {} tokens; a llama2.c tokenizer has at least 3", path, v.tokens.size());
  return v;
}

Result<Vocab> load_vocab(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return make_error("{}: cannot open: {}", path, std::strerror(errno));
  char magic[4] = {};
  in.read(magic, 4);
  if (in.gcount() == 4 && std::memcmp(magic, "GGUF", 4) == 0) {
    auto f = open_gguf(path);
    if (!f) return f.error();
    return vocab_from_gguf(*f);
  }
  auto v = vocab_from_llama2c(path);
  if (!v) return make_error("{} (no GGUF magic, so it was read as a llama2.c tokenizer.bin)", v.error().message);
  return v;
}

}  // namespace tandem
