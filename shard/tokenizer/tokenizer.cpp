// Tokenizer set-up, special-token partitioning and detokenization; the SPM and BPE algorithms
// themselves are in tokenizer_spm.cpp and tokenizer_bpe.cpp.
#include "shard/tokenizer/tokenizer.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "shard/tokenizer/pre_tokenizer.h"
#include "shard/tokenizer/tokenizer_internal.h"

namespace tandem {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

bool has_type(const TokenizerImpl& t, int32_t id, TokenType type) { return t.vocab.types[id] == static_cast<int32_t>(type); }

int hex_value(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

std::string normal_piece(const TokenizerImpl& t, const std::string& text) {
  if (t.vocab.kind == TokenizerKind::Bpe) return bpe_token_bytes(text);
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kSpace.size(), kSpace) == 0) {
      out += ' ';
      i += kSpace.size();
    } else {
      out += text[i++];
    }
  }
  return out;
}

// What a token contributes to decoded text, as llama.cpp's token_to_piece with special = false:
// control and unknown tokens nothing, user-defined tokens their text verbatim.
std::string piece_of(const TokenizerImpl& t, int32_t id) {
  const std::string& text = t.vocab.tokens[id];
  switch (static_cast<TokenType>(t.vocab.types[id])) {
    case TokenType::Normal: return normal_piece(t, text);
    case TokenType::UserDefined: return text;
    case TokenType::Byte:
      if (text.size() == 6 && text.compare(0, 3, "<0x") == 0)
        return std::string(1, static_cast<char>(hex_value(text[3]) * 16 + hex_value(text[4])));
      return normal_piece(t, text);
    default: return {};  // Control, Unknown, Unused and undefined types
  }
}

// Ids llama.cpp treats as end of generation besides EOS, recognised by their text.
bool eot_like(const std::string& text) {
  for (const char* s : {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>",
                        "<|end_of_text|>"})
    if (text == s) return true;
  return false;
}

Status check_id(int32_t id, const char* what, size_t n) {
  if (id < -1 || id >= static_cast<int64_t>(n))
    return make_error("tokenizer: {} token id {} is outside the vocabulary of {} tokens", what, id, n);
  return ok_status();
}

struct Fragment {
  int32_t token;        // >= 0: a special token; -1: raw text
  size_t offset, size;  // raw text
};

// Cuts the raw-text fragments at every occurrence of the special tokens, longest token first, the
// way llama.cpp's tokenizer_st_partition does. User-defined tokens are always recognised; control
// and unknown tokens only when `parse_special`.
std::vector<Fragment> partition(const TokenizerImpl& t, std::string_view text, bool parse_special) {
  std::vector<Fragment> frags;
  if (text.empty()) return frags;
  frags.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (int32_t id : t.specials) {
    if (!parse_special && !has_type(t, id, TokenType::UserDefined)) continue;
    const std::string& s = t.vocab.tokens[id];
    next.clear();
    for (const Fragment& f : frags) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      size_t pos = f.offset;
      const size_t end = f.offset + f.size;
      while (pos < end) {
        const size_t m = text.substr(0, end).find(s, pos);
        if (m == std::string_view::npos) break;
        if (m > pos) next.push_back({-1, pos, m - pos});
        next.push_back({id, 0, 0});
        pos = m + s.size();
      }
      if (pos < end) next.push_back({-1, pos, end - pos});
    }
    frags.swap(next);
  }
  return frags;
}

}  // namespace

Result<Tokenizer> Tokenizer::create(Vocab vocab) {
  auto impl = std::make_shared<TokenizerImpl>();
  TokenizerImpl& t = *impl;
  const size_t n = vocab.tokens.size();
  if (n == 0) return make_error("tokenizer: the vocabulary is empty");
  if (n > 0x7FFFFFFF) return make_error("tokenizer: the vocabulary has too many tokens ({})", n);
  if (vocab.types.empty()) vocab.types.assign(n, static_cast<int32_t>(TokenType::Normal));
  if (vocab.types.size() != n)
    return make_error("tokenizer: {} token types for {} tokens: one type per token is needed", vocab.types.size(), n);
  if (vocab.kind == TokenizerKind::Spm) {
    if (vocab.scores.empty()) vocab.scores.assign(n, 0.0f);
    if (vocab.scores.size() != n)
      return make_error("tokenizer: {} scores for {} tokens: a SentencePiece vocabulary needs one score per token",
                        vocab.scores.size(), n);
    // A NaN would break the merge queue's ordering; it ranks below every real score instead.
    for (float& s : vocab.scores)
      if (std::isnan(s)) s = -std::numeric_limits<float>::infinity();
  }
  if (vocab.kind == TokenizerKind::Bpe) {
    // llama.cpp's defaults for the pre-tokenizer's name, where the file does not say otherwise.
    auto pre = find_pre_tokenizer(vocab.pre);
    if (!pre) return make_error("tokenizer: {}", pre.error().message);
    if (!vocab.bos_from_file && (*pre)->no_bos) vocab.bos = -1;
    if (!vocab.add_bos_from_file && (*pre)->add_bos) vocab.add_bos = true;
  }
  TANDEM_TRY(check_id(vocab.bos, "BOS", n));
  TANDEM_TRY(check_id(vocab.eos, "EOS", n));
  TANDEM_TRY(check_id(vocab.unk, "unknown", n));
  TANDEM_TRY(check_id(vocab.pad, "padding", n));
  if (vocab.add_bos && vocab.bos < 0) return make_error("tokenizer: the vocabulary asks for a BOS token but has none");
  if (vocab.add_eos && vocab.eos < 0) return make_error("tokenizer: the vocabulary asks for an EOS token but has none");
  t.vocab = std::move(vocab);
  const Vocab& v = t.vocab;

  t.token_id.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (v.tokens[i].empty()) continue;  // can never be produced from text
    auto [it, inserted] = t.token_id.emplace(v.tokens[i], static_cast<int32_t>(i));
    if (!inserted)
      return make_error("tokenizer: token text '{}' appears twice in the vocabulary (ids {} and {})", v.tokens[i],
                        it->second, i);
  }

  t.pieces.resize(n);
  t.eog.assign(n, false);
  for (size_t i = 0; i < n; ++i) {
    const auto id = static_cast<int32_t>(i);
    t.pieces[i] = piece_of(t, id);
    const bool special = has_type(t, id, TokenType::Control) || has_type(t, id, TokenType::UserDefined) ||
                         has_type(t, id, TokenType::Unknown);
    if (special && !v.tokens[i].empty()) t.specials.push_back(id);
    if (has_type(t, id, TokenType::Control) && eot_like(v.tokens[i])) t.eog[i] = true;
  }
  if (v.eos >= 0) t.eog[v.eos] = true;
  std::stable_sort(t.specials.begin(), t.specials.end(),
                   [&](int32_t a, int32_t b) { return v.tokens[a].size() > v.tokens[b].size(); });

  t.byte_token.fill(-1);
  if (v.kind == TokenizerKind::Spm) {
    for (int b = 0; b < 256; ++b) {
      int32_t id = t.find(fmt::format("<0x{:02X}>", b));
      if (id < 0) id = t.find(std::string(1, static_cast<char>(b)));
      t.byte_token[b] = id;
    }
  } else {
    TANDEM_TRY(bpe_init(t));
  }

  Tokenizer tok;
  tok.impl_ = std::move(impl);
  return tok;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special, bool parse_special) const {
  const TokenizerImpl& t = *impl_;
  const Vocab& v = t.vocab;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_special && v.add_bos) out.push_back(v.bos);
  // SPM puts a space in front of the text and of every stretch that follows a special token.
  bool after_special = true;
  for (const Fragment& f : partition(t, text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
      continue;
    }
    const std::string_view s = text.substr(f.offset, f.size);
    if (v.kind == TokenizerKind::Spm)
      spm_encode(t, s, v.add_space_prefix && after_special, out);
    else
      bpe_encode(t, s, out);
    after_special = false;
  }
  if (add_special && v.add_eos) out.push_back(v.eos);
  return out;
}

std::vector<std::string> Tokenizer::pre_tokenize(std::string_view text) const {
  std::vector<std::string> out;
  if (impl_->vocab.kind != TokenizerKind::Bpe) {
    if (!text.empty()) out.emplace_back(text);
    return out;
  }
  for (std::string_view p : impl_->pretokenizer->split(text)) out.emplace_back(p);
  return out;
}

std::string Tokenizer::token_bytes(int32_t id, bool render_special) const {
  if (!valid(id)) return {};
  const TokenizerImpl& t = *impl_;
  if (render_special && (has_type(t, id, TokenType::Control) || has_type(t, id, TokenType::Unknown)))
    return t.vocab.tokens[id];
  return t.pieces[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
  std::string out;
  bool strip = impl_->vocab.kind == TokenizerKind::Spm && impl_->vocab.add_space_prefix;
  for (int32_t id : ids) {
    std::string piece = token_bytes(id, render_special);
    if (piece.empty()) continue;
    // Undo the encoder's space prefix once, on the first token that produces text.
    if (strip && piece[0] == ' ') piece.erase(0, 1);
    strip = false;
    out += piece;
  }
  return out;
}

const Vocab& Tokenizer::vocab() const { return impl_->vocab; }
int32_t Tokenizer::n_vocab() const { return static_cast<int32_t>(impl_->vocab.tokens.size()); }
int32_t Tokenizer::bos() const { return impl_->vocab.bos; }
int32_t Tokenizer::eos() const { return impl_->vocab.eos; }
bool Tokenizer::is_eog(int32_t id) const { return valid(id) && impl_->eog[id]; }

}  // namespace tandem
