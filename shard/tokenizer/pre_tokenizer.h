// BPE pre-tokenizers: what every `tokenizer.ggml.pre` value means, as llama.cpp defines it — the
// regex sequence its llm_tokenizer_bpe splits text with (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_*)
// and the flags its vocabulary loader sets for the name (ignore_merges, a default BOS). One table
// (pre_tokenizer.cpp) holds all of it, plus the `tokenizer.json` pre_tokenizer each one comes from,
// so an imported Hugging Face tokenizer is recognised by its Split regexes.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "shard/result.h"

namespace tandem {

struct PreTokenizerSpec {
  std::vector<std::string_view> names;    // tokenizer.ggml.pre values; names[0] is the canonical one
  std::vector<std::string_view> regexes;  // llama.cpp's regex_exprs, applied in turn (RegexSplitter)
  // The same split as tokenizer.json writes it: its Split regexes (and Digits / ByteLevel
  // use_regex spelled as their regexes, see hf_pre_tokenizer_patterns), in order; empty when
  // llama.cpp's expressions are an approximation nobody's tokenizer.json spells the same way.
  std::vector<std::string_view> hf_patterns;
  bool ignore_merges = false;  // a pre-tokenized word that is itself a token is taken whole
  bool add_bos = false;        // llama.cpp's add_bos default for the name (the GGUF key overrides)
  bool no_bos = false;         // llama.cpp's BOS id default is "none" (the GGUF key overrides)
};

// The spec for a tokenizer.ggml.pre value; "" (no key) is llama.cpp's "default". An unknown name
// (or one llama.cpp handles with a hand-written splitter tandem lacks) is an error naming it and
// listing the supported values — never a fallback.
Result<const PreTokenizerSpec*> find_pre_tokenizer(std::string_view name);
// The table itself, one entry per distinct split.
const std::vector<PreTokenizerSpec>& pre_tokenizer_table();
// Every supported tokenizer.ggml.pre value, in table order.
std::vector<std::string> supported_pre_tokenizers();
// "default, llama-bpe (llama3, llama-v3, ...), qwen2 (...), ..." for messages and --help.
std::string supported_pre_tokenizers_text();
// The canonical name whose hf_patterns equal `patterns`, or "" when none does.
std::string_view pre_tokenizer_for_hf_patterns(const std::vector<std::string>& patterns);

// Regexes tokenizer.json pre-tokenizers stand for: ByteLevel with use_regex is GPT-2's expression,
// Digits with individual_digits is one digit at a time.
inline constexpr std::string_view kHfByteLevelRegex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
inline constexpr std::string_view kHfDigitsRegex = R"(\p{N})";

}  // namespace tandem
