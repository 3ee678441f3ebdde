// Tokenizer vocabulary as stored in GGUF (`tokenizer.ggml.*`) or llama2.c's tokenizer.bin.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "shard/format/gguf_reader.h"
#include "shard/result.h"

namespace tandem {

enum class TokenizerKind { Spm, Bpe };  // tokenizer.ggml.model = "llama" | "gpt2"

// Values of tokenizer.ggml.token_type.
enum class TokenType : int32_t { Normal = 1, Unknown = 2, Control = 3, UserDefined = 4, Unused = 5, Byte = 6 };

struct Vocab {
  TokenizerKind kind = TokenizerKind::Spm;
  std::string pre;                  // tokenizer.ggml.pre (BPE pre-tokenizer name), may be empty
  std::vector<std::string> tokens;  // token text as stored (SPM: "▁" for space; BPE: byte-level unicode)
  std::vector<float> scores;        // SPM merge scores (empty for BPE)
  std::vector<int32_t> types;       // TokenType per token
  std::vector<std::string> merges;  // BPE merges "a b", by rank
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;
  bool add_bos = true;
  // The file said (tokenizer.ggml.add_bos_token / bos_token_id). When it did not, a BPE
  // vocabulary gets its pre-tokenizer's defaults as llama.cpp sets them by tokenizer.ggml.pre
  // (LLaMA 3 and Tekken add a BOS, ChatGLM has none): Tokenizer::create applies them.
  bool add_bos_from_file = false;
  bool bos_from_file = false;
  bool add_eos = false;
  bool add_space_prefix = true;  // SPM: prepend "▁" to the text
};

Result<Vocab> vocab_from_gguf(const GgufFile& f);
// llama2.c tokenizer.bin: int32 max_token_length, then per token: f32 score, int32 len, bytes.
Result<Vocab> vocab_from_llama2c(const std::string& path);
// Either of the above, told apart by the GGUF magic.
Result<Vocab> load_vocab(const std::string& path);

}  // namespace tandem
