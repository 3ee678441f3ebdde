// Jinja source -> tokens, with Jinja's whitespace rules: `{%-`/`-%}` strip all whitespace on that
// side, `{%+`/`+%}` keep it, and (as transformers configures Jinja) trim_blocks drops the first
// newline after a block or comment tag and lstrip_blocks drops the spaces and tabs before one at
// the start of a line. Newlines are normalised to "\n" and one trailing newline is dropped, as
// Jinja does; token positions are byte offsets into that normalised source.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::jinja {

struct Token {
  enum class Kind { Text, VarBegin, VarEnd, BlockBegin, BlockEnd, Name, String, Int, Float, Op, End };
  Kind kind;
  std::string text;  // Text: the data; Name/Op: as written; String: the decoded value
  int64_t ival = 0;
  double fval = 0;
  size_t pos = 0;
};

struct LexOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
};

// Jinja's newline normalisation (\r\n and \r -> \n, one trailing newline dropped).
std::string normalize_source(std::string_view source);
// Throws TemplateError (with the position) on an unterminated tag, comment or string, or a
// character Jinja does not accept inside a tag.
std::vector<Token> lex(const std::string& normalized_source, const LexOptions& options = {});

}  // namespace tandem::jinja
