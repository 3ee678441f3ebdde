// Text <-> token ids for SentencePiece-style (scores + byte fallback) and GPT-2 byte-level BPE
// vocabularies, matching llama.cpp's tokenization exactly.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shard/result.h"
#include "shard/format/vocab.h"

namespace tandem {

struct TokenizerImpl;

class Tokenizer {
 public:
  static Result<Tokenizer> create(Vocab vocab);

  // add_special: prepend BOS when the vocabulary asks for it (add_bos) and append EOS likewise.
  // parse_special: recognise control/user-defined token texts (e.g. "<s>") inside `text`.
  std::vector<int32_t> encode(std::string_view text, bool add_special = true, bool parse_special = false) const;
  // The pieces a BPE vocabulary's pre-tokenizer cuts `text` into (raw bytes, before the byte-level
  // spelling and the merges; special-token texts are not cut out first); SPM: the text whole.
  std::vector<std::string> pre_tokenize(std::string_view text) const;
  // Raw bytes of one token (byte tokens -> their byte, "▁" -> ' ', byte-level BPE -> bytes);
  // control tokens (BOS/EOS...) give "" unless `render_special`; an invalid id gives "".
  std::string token_bytes(int32_t id, bool render_special = false) const;
  // Concatenated bytes. SPM drops one leading space from the first token that yields text (the
  // space the encoder prefixed, right after BOS if there is one), as SentencePiece does, so
  // decode(encode(s)) == s. Not applied: llama.cpp's lossy GPT-2 "clean up spaces" (" ?" -> "?").
  std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

  const Vocab& vocab() const;
  int32_t n_vocab() const;
  int32_t bos() const;
  int32_t eos() const;
  bool is_eog(int32_t id) const;  // end of generation: EOS (and EOT-like tokens the vocab marks)
  bool valid(int32_t id) const { return id >= 0 && id < n_vocab(); }

 private:
  std::shared_ptr<const TokenizerImpl> impl_;
};

// Streaming detokenization: text is released only as complete UTF-8 sequences, so a client never
// sees a broken character when a multi-byte character spans several tokens.
class StreamDecoder {
 public:
  // first_is_after_bos: the first pushed token starts the text, so its prefix space is dropped as
  // in decode(); false for a continuation of text already shown.
  explicit StreamDecoder(const Tokenizer& tok, bool first_is_after_bos = true);
  std::string push(int32_t id);  // newly complete text (may be empty); bytes that can never form
                                 // a character come out as U+FFFD at once
  std::string finish();          // whatever is held back (an incomplete character -> U+FFFD)

 private:
  const Tokenizer* tok_;
  std::string pending_;
  bool at_start_;
};

}  // namespace tandem
