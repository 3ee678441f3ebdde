#include "shard/tokenizer/regex_split.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "shard/tokenizer/utf8.h"

namespace tandem {

struct RegexSplitter::Compiled {
  pcre2_code* code = nullptr;
  ~Compiled() { pcre2_code_free(code); }
};

namespace {

struct MatchData {
  pcre2_match_data* md;
  explicit MatchData(const pcre2_code* code) : md(pcre2_match_data_create_from_pattern(code, nullptr)) {}
  ~MatchData() { pcre2_match_data_free(md); }
  MatchData(const MatchData&) = delete;
  MatchData& operator=(const MatchData&) = delete;
};

void split_one(const pcre2_code* code, std::string_view text, std::vector<std::string_view>& out) {
  MatchData m(code);
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t gap_start = 0, pos = 0;
  while (pos < text.size()) {
    // The whole text stays the subject so that lookarounds see the neighbours of `pos`.
    const int rc = pcre2_match(code, subject, text.size(), pos, 0, m.md, nullptr);
    if (rc < 0) break;  // PCRE2_ERROR_NOMATCH, or a resource limit: the rest is one piece
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(m.md);
    size_t begin = ov[0], end = ov[1];
    if (end == begin) {  // no pattern here matches empty, but never loop on one that does
      if (begin >= text.size()) break;
      pos = begin + utf8_lead_len(static_cast<uint8_t>(text[begin]));
      continue;
    }
    if (begin > gap_start) out.push_back(text.substr(gap_start, begin - gap_start));
    out.push_back(text.substr(begin, end - begin));
    gap_start = pos = end;
  }
  if (gap_start < text.size()) out.push_back(text.substr(gap_start));
}

}  // namespace

Result<RegexSplitter> RegexSplitter::compile(const std::vector<std::string>& patterns) {
  RegexSplitter s;
  for (const auto& p : patterns) {
    int err = 0;
    PCRE2_SIZE err_off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(p.data()), p.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &err_off, nullptr);
    if (!code) {
      PCRE2_UCHAR msg[256];
      pcre2_get_error_message(err, msg, sizeof msg);
      return make_error("pre-tokenizer regex /{}/ does not compile at offset {}: {}", p, err_off,
                        reinterpret_cast<const char*>(msg));
    }
    auto c = std::make_shared<Compiled>();
    c->code = code;
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // best effort: without JIT the interpreter runs
    s.regexes_.push_back(std::move(c));
  }
  return s;
}

std::vector<std::string_view> RegexSplitter::split(std::string_view text) const {
  std::vector<std::string_view> pieces{text};
  if (text.empty()) return {};
  for (const auto& r : regexes_) {
    std::vector<std::string_view> next;
    next.reserve(pieces.size() * 2);
    for (auto piece : pieces) split_one(r->code, piece, next);
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace tandem
