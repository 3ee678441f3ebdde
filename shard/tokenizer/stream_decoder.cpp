// StreamDecoder (declared in tokenizer.h): token-by-token detokenization that only ever releases
// well-formed UTF-8.
#include "shard/tokenizer/tokenizer.h"
#include "shard/tokenizer/utf8.h"

namespace tandem {

StreamDecoder::StreamDecoder(const Tokenizer& tok, bool first_is_after_bos)
    : tok_(&tok),
      at_start_(first_is_after_bos && tok.vocab().kind == TokenizerKind::Spm && tok.vocab().add_space_prefix) {}

std::string StreamDecoder::push(int32_t id) {
  std::string piece = tok_->token_bytes(id);
  if (piece.empty()) return {};
  // The first text after BOS carries the encoder's space prefix, as in Tokenizer::decode.
  if (at_start_ && piece[0] == ' ') piece.erase(0, 1);
  at_start_ = false;
  pending_ += piece;
  std::string out;
  const size_t held = utf8_sanitize(pending_, out, /*flush=*/false);
  pending_.erase(0, pending_.size() - held);
  return out;
}

std::string StreamDecoder::finish() {
  std::string out;
  utf8_sanitize(pending_, out, /*flush=*/true);
  pending_.clear();
  return out;
}

}  // namespace tandem
