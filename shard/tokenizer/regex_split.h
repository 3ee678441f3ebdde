// Pre-tokenization: split text into pieces with a Unicode-aware regex (PCRE2, UTF + UCP), the way
// llama.cpp's unicode_regex_split does — every match is a piece and so is every run of text
// between matches, so the pieces always concatenate back to the input.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "shard/result.h"

namespace tandem {

class RegexSplitter {
 public:
  // Patterns are applied in turn, each one splitting the pieces the previous one produced.
  static Result<RegexSplitter> compile(const std::vector<std::string>& patterns);

  // Thread-safe; invalid UTF-8 never matches, so it ends up in the between-matches pieces.
  std::vector<std::string_view> split(std::string_view text) const;

 private:
  struct Compiled;
  std::vector<std::shared_ptr<const Compiled>> regexes_;
};

}  // namespace tandem
