// UTF-8 helpers for the tokenizers and streaming detokenization. Invalid input is never an error:
// tokenizers must accept arbitrary bytes, and text shown to a client gets U+FFFD instead.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tandem {

// Length of the sequence a lead byte announces (1 for ASCII, continuation and invalid bytes), the
// way SentencePiece/llama.cpp split text into symbols.
inline size_t utf8_lead_len(uint8_t b) { return b < 0xC0 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : b < 0xF8 ? 4 : 1; }

void append_utf8(std::string& out, uint32_t cp);

// Length of the well-formed sequence starting at s[i] (1..4), 0 if the bytes there are ill-formed,
// or -1 if they are a valid but incomplete prefix that runs into the end of `s`.
int utf8_sequence_at(std::string_view s, size_t i);

// Copies the complete part of `s` to `out`, each ill-formed subsequence replaced by U+FFFD (one per
// maximal subpart, as Unicode recommends). Returns how many trailing bytes were left out because
// they are an incomplete but still valid prefix (0..3); with `flush` those become U+FFFD too.
size_t utf8_sanitize(std::string_view s, std::string& out, bool flush);

bool utf8_valid(std::string_view s);

}  // namespace tandem
