// Internal to the tokenizer: the lookup tables Tokenizer::create builds once from a Vocab, shared
// (read-only, so thread-safe) by the SPM and BPE encoders.
#pragma once
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "shard/tokenizer/regex_split.h"
#include "shard/result.h"
#include "shard/format/vocab.h"

namespace tandem {

struct StringHash {
  using is_transparent = void;  // lets the maps be probed with string_views, without a copy
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using StringMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

struct TokenizerImpl {
  Vocab vocab;
  StringMap token_id;                 // token text -> id
  std::vector<std::string> pieces;    // bytes each token decodes to (control tokens: "")
  std::vector<int32_t> specials;      // control / user-defined / unknown ids, longest text first
  std::vector<bool> eog;              // end-of-generation ids
  std::array<int32_t, 256> byte_token{};  // SPM byte fallback: id of <0xXX> (or of the 1-byte token), -1 if none

  // BPE only.
  StringMap merge_rank;  // "left right" -> rank
  std::shared_ptr<const RegexSplitter> pretokenizer;
  bool ignore_merges = false;  // a pre-tokenized word that is itself a token is taken whole (LLaMA 3)

  int32_t find(std::string_view text) const {
    auto it = token_id.find(text);
    return it == token_id.end() ? -1 : it->second;
  }
};

// Appends the ids of one stretch of plain text (no special tokens in it).
void spm_encode(const TokenizerImpl& t, std::string_view text, bool space_prefix, std::vector<int32_t>& out);
void bpe_encode(const TokenizerImpl& t, std::string_view text, std::vector<int32_t>& out);

// BPE set-up: merge ranks and the pre-tokenizer named by vocab.pre.
Status bpe_init(TokenizerImpl& t);
// Bytes of a byte-level BPE token text (GPT-2's printable alphabet back to raw bytes).
std::string bpe_token_bytes(std::string_view text);

}  // namespace tandem
