#include "shard/tokenizer/jinja_text.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>

#include "shard/tokenizer/jinja_value.h"

namespace tandem::jinja {
namespace {

// Invalid bytes decode to U+DC80..U+DCFF and encode back to the byte (surrogateescape).
constexpr char32_t kEscapeBase = 0xDC00;

// Case mapping needs Unicode tables: glibc's C.UTF-8 locale has them (created once, read-only).
locale_t utf8_locale() {
  static const locale_t loc = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(0));
    if (!l) l = newlocale(LC_CTYPE_MASK, "C.utf8", static_cast<locale_t>(0));
    return l;
  }();
  return loc;
}

char32_t to_upper_simple(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') ? c - 32 : c;
  locale_t l = utf8_locale();
  return l ? static_cast<char32_t>(towupper_l(static_cast<wint_t>(c), l)) : c;
}
char32_t to_lower_simple(char32_t c) {
  if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
  locale_t l = utf8_locale();
  return l ? static_cast<char32_t>(towlower_l(static_cast<wint_t>(c), l)) : c;
}
bool is_upper(char32_t c) {
  if (c < 0x80) return c >= 'A' && c <= 'Z';
  locale_t l = utf8_locale();
  return l && iswupper_l(static_cast<wint_t>(c), l);
}
bool is_lower(char32_t c) {
  if (c < 0x80) return c >= 'a' && c <= 'z';
  locale_t l = utf8_locale();
  return l && iswlower_l(static_cast<wint_t>(c), l);
}
bool is_cased(char32_t c) { return is_upper(c) || is_lower(c); }

// Python maps a few characters to several (SpecialCasing.txt); the common ones are handled, the
// rest refused rather than mapped differently from Python.
void append_upper(std::u32string& out, char32_t c) {
  if (c == 0xDF) {  // ß
    out += U"SS";
    return;
  }
  if (c == 0x149 || c == 0x1F0 || c == 0x390 || c == 0x3B0 || c == 0x587 || (c >= 0x1E96 && c <= 0x1E9A) ||
      (c >= 0x1F50 && c <= 0x1F56) || (c >= 0x1F80 && c <= 0x1FFC) || (c >= 0xFB00 && c <= 0xFB17))
    throw TemplateError("upper-casing U+" + [&] {
      char buf[8];
      snprintf(buf, sizeof buf, "%04X", unsigned(c));
      return std::string(buf);
    }() + " (a one-to-many case mapping) is not supported");
  out += to_upper_simple(c);
}
// Lower-casing u[i]; Python's Final_Sigma rule needs the neighbours (Σ at the end of a word -> ς).
void append_lower(std::u32string& out, const std::u32string& u, size_t i) {
  const char32_t c = u[i];
  if (c == 0x130) {  // İ -> i + combining dot above
    out += U"i\u0307";
    return;
  }
  if (c == 0x3A3) {
    const bool after_cased = i > 0 && is_cased(u[i - 1]);
    const bool before_cased = i + 1 < u.size() && is_cased(u[i + 1]);
    out += (after_cased && !before_cased) ? char32_t(0x3C2) : char32_t(0x3C3);
    return;
  }
  out += to_lower_simple(c);
}

}  // namespace

std::u32string decode_utf8(std::string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const auto b = static_cast<uint8_t>(s[i]);
    size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 0;
    char32_t cp = len == 1 ? b : len == 2 ? (b & 0x1F) : len == 3 ? (b & 0x0F) : (b & 0x07);
    bool ok = len > 0 && i + len <= s.size();
    for (size_t k = 1; ok && k < len; ++k) {
      const auto c = static_cast<uint8_t>(s[i + k]);
      if ((c >> 6) != 2) ok = false;
      cp = (cp << 6) | (c & 0x3F);
    }
    if (ok) {  // reject overlong forms, surrogates and values past U+10FFFF
      static constexpr char32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= kMin[len] && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    }
    if (!ok) {
      out.push_back(kEscapeBase + b);
      ++i;
      continue;
    }
    out.push_back(cp);
    i += len;
  }
  return out;
}

std::string encode_utf8(std::u32string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char32_t c : s) {
    if (c >= kEscapeBase + 0x80 && c <= kEscapeBase + 0xFF) {
      out.push_back(static_cast<char>(c - kEscapeBase));
    } else if (c < 0x80) {
      out.push_back(static_cast<char>(c));
    } else if (c < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (c >> 6)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else if (c < 0x10000) {
      if (c >= 0xD800 && c <= 0xDFFF) throw TemplateError("a lone surrogate cannot be encoded as UTF-8");
      out.push_back(static_cast<char>(0xE0 | (c >> 12)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (c >> 18)));
      out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
    }
  }
  return out;
}

size_t codepoint_count(std::string_view s) {
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<uint8_t>(c) < 0x80; })) return s.size();
  return decode_utf8(s).size();
}

bool py_isprintable(char32_t c) {
  if (c < 0x80) return c >= 0x20 && c < 0x7F;
  if (c < 0xA1 || c == 0xAD || c == 0x61C || (c >= 0x600 && c <= 0x605) || c == 0x6DD || c == 0x70F || c == 0x1680 ||
      c == 0x180E || (c >= 0x2000 && c <= 0x200F) || (c >= 0x2028 && c <= 0x202F) || (c >= 0x205F && c <= 0x206F) ||
      c == 0x3000 || (c >= 0xD800 && c <= 0xF8FF) || c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFB))
    return false;
  locale_t l = utf8_locale();
  return l ? iswprint_l(static_cast<wint_t>(c), l) != 0 : true;
}

bool py_isspace(char32_t c) {
  return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right) {
  if (!chars) {  // fast path for ASCII ends
    const std::u32string u = decode_utf8(s);
    size_t b = 0, e = u.size();
    if (left)
      while (b < e && py_isspace(u[b])) ++b;
    if (right)
      while (e > b && py_isspace(u[e - 1])) --e;
    return encode_utf8(std::u32string_view(u).substr(b, e - b));
  }
  const std::u32string u = decode_utf8(s), set = decode_utf8(*chars);
  auto in_set = [&](char32_t c) { return set.find(c) != std::u32string::npos; };
  size_t b = 0, e = u.size();
  if (left)
    while (b < e && in_set(u[b])) ++b;
  if (right)
    while (e > b && in_set(u[e - 1])) --e;
  return encode_utf8(std::u32string_view(u).substr(b, e - b));
}

std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right) {
  std::vector<std::string> out;
  if (sep) {
    if (sep->empty()) throw TemplateError("split(): empty separator");
    if (!from_right) {
      size_t start = 0;
      while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
        const size_t p = s.find(*sep, start);
        if (p == std::string_view::npos) break;
        out.emplace_back(s.substr(start, p - start));
        start = p + sep->size();
      }
      out.emplace_back(s.substr(start));
    } else {
      size_t end = s.size();
      std::vector<std::string> rev;
      while (maxsplit < 0 || static_cast<int64_t>(rev.size()) < maxsplit) {
        if (end < sep->size()) break;
        const size_t p = s.rfind(*sep, end - sep->size());
        if (p == std::string_view::npos) break;
        rev.emplace_back(s.substr(p + sep->size(), end - p - sep->size()));
        end = p;
      }
      rev.emplace_back(s.substr(0, end));
      out.assign(rev.rbegin(), rev.rend());
    }
    return out;
  }
  const std::u32string u = decode_utf8(s);
  if (!from_right) {
    size_t i = 0;
    while (i < u.size()) {
      while (i < u.size() && py_isspace(u[i])) ++i;
      if (i == u.size()) break;
      if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
        size_t e = u.size();
        while (e > i && py_isspace(u[e - 1])) --e;
        out.push_back(encode_utf8(std::u32string_view(u).substr(i, e - i)));
        break;
      }
      size_t j = i;
      while (j < u.size() && !py_isspace(u[j])) ++j;
      out.push_back(encode_utf8(std::u32string_view(u).substr(i, j - i)));
      i = j;
    }
    return out;
  }
  std::vector<std::string> rev;
  size_t i = u.size();
  while (i > 0) {
    while (i > 0 && py_isspace(u[i - 1])) --i;
    if (i == 0) break;
    if (maxsplit >= 0 && static_cast<int64_t>(rev.size()) == maxsplit) {
      size_t b = 0;
      while (b < i && py_isspace(u[b])) ++b;
      rev.push_back(encode_utf8(std::u32string_view(u).substr(b, i - b)));
      break;
    }
    size_t j = i;
    while (j > 0 && !py_isspace(u[j - 1])) --j;
    rev.push_back(encode_utf8(std::u32string_view(u).substr(j, i - j)));
    i = j;
  }
  out.assign(rev.rbegin(), rev.rend());
  return out;
}

std::vector<std::string> py_splitlines(std::string_view s, bool keepends) {
  const std::u32string u = decode_utf8(s);
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i < u.size(); ++i) {
    const char32_t c = u[i];
    const bool brk = c == '\n' || c == '\r' || c == 0x0B || c == 0x0C || c == 0x1C || c == 0x1D || c == 0x1E ||
                     c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    size_t end = i + 1;
    if (c == '\r' && i + 1 < u.size() && u[i + 1] == '\n') end = i + 2;
    out.push_back(encode_utf8(std::u32string_view(u).substr(start, (keepends ? end : i) - start)));
    start = end;
    i = end - 1;
  }
  if (start < u.size()) out.push_back(encode_utf8(std::u32string_view(u).substr(start)));
  return out;
}

std::string py_replace(std::string_view s, std::string_view from, std::string_view to, int64_t count) {
  std::string out;
  if (from.empty()) {  // Python inserts `to` between every code point (and at both ends)
    const std::u32string u = decode_utf8(s);
    int64_t done = 0;
    for (size_t i = 0; i <= u.size(); ++i) {
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < u.size()) out += encode_utf8(std::u32string_view(&u[i], 1));
    }
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t p = s.find(from, start);
    if (p == std::string_view::npos) break;
    out.append(s.substr(start, p - start));
    out.append(to);
    start = p + from.size();
    ++done;
  }
  out.append(s.substr(start));
  return out;
}

int64_t py_count(std::string_view s, std::string_view sub) {
  if (sub.empty()) return static_cast<int64_t>(codepoint_count(s)) + 1;
  int64_t n = 0;
  for (size_t p = s.find(sub); p != std::string_view::npos; p = s.find(sub, p + sub.size())) ++n;
  return n;
}

int64_t py_find(std::string_view s, std::string_view sub, bool from_right) {
  const size_t p = from_right ? s.rfind(sub) : s.find(sub);
  if (p == std::string_view::npos) return -1;
  return static_cast<int64_t>(codepoint_count(s.substr(0, p)));
}

std::string py_upper(std::string_view s) {
  std::u32string out;
  for (char32_t c : decode_utf8(s)) append_upper(out, c);
  return encode_utf8(out);
}

std::string py_lower(std::string_view s) {
  const std::u32string u = decode_utf8(s);
  std::u32string out;
  for (size_t i = 0; i < u.size(); ++i) append_lower(out, u, i);
  return encode_utf8(out);
}

std::string py_capitalize(std::string_view s) {
  const std::u32string u = decode_utf8(s);
  std::u32string out;
  for (size_t i = 0; i < u.size(); ++i) {
    if (i == 0)
      append_upper(out, u[i]);
    else
      append_lower(out, u, i);
  }
  return encode_utf8(out);
}

std::string py_title(std::string_view s) {
  const std::u32string u = decode_utf8(s);
  std::u32string out;
  bool prev_cased = false;
  for (size_t i = 0; i < u.size(); ++i) {
    if (prev_cased)
      append_lower(out, u, i);
    else
      append_upper(out, u[i]);
    prev_cased = is_cased(u[i]);
  }
  return encode_utf8(out);
}

std::string jinja_title(std::string_view s) {
  // re.split(r"([-\s({\[<]+)", s): words and the separator runs between them, each item gets its
  // first code point upper-cased and the rest lower-cased.
  const std::u32string u = decode_utf8(s);
  auto is_sep = [](char32_t c) { return c == '-' || c == '(' || c == '{' || c == '[' || c == '<' || py_isspace(c); };
  std::u32string out;
  size_t i = 0;
  while (i < u.size()) {
    const bool sep = is_sep(u[i]);
    size_t j = i;
    while (j < u.size() && is_sep(u[j]) == sep) ++j;
    append_upper(out, u[i]);
    for (size_t k = i + 1; k < j; ++k) append_lower(out, u, k);
    i = j;
  }
  return encode_utf8(out);
}

bool py_islower(std::string_view s) {
  bool any = false;
  for (char32_t c : decode_utf8(s)) {
    if (is_upper(c)) return false;
    any = any || is_lower(c);
  }
  return any;
}

bool py_isupper(std::string_view s) {
  bool any = false;
  for (char32_t c : decode_utf8(s)) {
    if (is_lower(c)) return false;
    any = any || is_upper(c);
  }
  return any;
}

}  // namespace tandem::jinja
