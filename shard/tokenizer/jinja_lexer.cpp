#include "shard/tokenizer/jinja_lexer.h"

#include <cstring>

#include "shard/tokenizer/jinja_text.h"
#include "shard/tokenizer/jinja_value.h"

namespace tandem::jinja {
namespace {

// Length of the (Python \s) whitespace character at s[i], 0 if none.
size_t space_at(const std::string& s, size_t i) {
  if (i >= s.size()) return 0;
  const auto b = static_cast<uint8_t>(s[i]);
  if (b < 0x80) return py_isspace(b) ? 1 : 0;
  const size_t len = b >= 0xF0 ? 4 : b >= 0xE0 ? 3 : b >= 0xC0 ? 2 : 1;
  const std::u32string u = decode_utf8(std::string_view(s).substr(i, len));
  return u.size() == 1 && py_isspace(u[0]) ? len : 0;
}

size_t skip_spaces(const std::string& s, size_t i) {
  while (size_t n = space_at(s, i)) i += n;
  return i;
}

bool all_spaces(const std::string& s, size_t b, size_t e) {
  if (b >= e) return false;  // Jinja's `\s+` needs at least one
  while (b < e) {
    const size_t n = space_at(s, b);
    if (!n) return false;
    b += n;
  }
  return true;
}

std::string rstrip_spaces(const std::string& s) {
  const std::u32string u = decode_utf8(s);
  size_t e = u.size();
  while (e > 0 && py_isspace(u[e - 1])) --e;
  return encode_utf8(std::u32string_view(u).substr(0, e));
}

bool starts(const std::string& s, size_t i, const char* lit) { return s.compare(i, strlen(lit), lit) == 0; }

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The body of a string literal, decoded as Python's unicode-escape codec decodes it (what Jinja does).
std::string decode_string(const std::string& body, size_t pos) {
  std::u32string out;
  const std::u32string u = decode_utf8(body);
  for (size_t i = 0; i < u.size(); ++i) {
    if (u[i] != U'\\' || i + 1 >= u.size()) {
      out.push_back(u[i]);
      continue;
    }
    const char32_t c = u[++i];
    auto hex = [&](size_t n) {
      char32_t v = 0;
      for (size_t k = 0; k < n; ++k) {
        const int d = (i + 1 + k < u.size() && u[i + 1 + k] < 0x80) ? hex_digit(static_cast<char>(u[i + 1 + k])) : -1;
        if (d < 0) throw TemplateError("truncated \\" + std::string(1, static_cast<char>(c)) + " escape in a string", pos);
        v = v * 16 + static_cast<char32_t>(d);
      }
      i += n;
      return v;
    };
    switch (c) {
      case U'\n': break;  // line continuation
      case U'\\': out.push_back(U'\\'); break;
      case U'\'': out.push_back(U'\''); break;
      case U'"': out.push_back(U'"'); break;
      case U'a': out.push_back(7); break;
      case U'b': out.push_back(8); break;
      case U'f': out.push_back(12); break;
      case U'n': out.push_back(U'\n'); break;
      case U'r': out.push_back(U'\r'); break;
      case U't': out.push_back(U'\t'); break;
      case U'v': out.push_back(11); break;
      case U'x': out.push_back(hex(2)); break;
      case U'u': out.push_back(hex(4)); break;
      case U'U': {
        const char32_t v = hex(8);
        if (v > 0x10FFFF) throw TemplateError("\\U escape beyond U+10FFFF in a string", pos);
        out.push_back(v);
        break;
      }
      case U'N': throw TemplateError("\\N{...} escapes in strings are not supported", pos);
      default:
        if (c >= U'0' && c <= U'7') {  // up to three octal digits
          char32_t v = c - U'0';
          for (int k = 0; k < 2 && i + 1 < u.size() && u[i + 1] >= U'0' && u[i + 1] <= U'7'; ++k) v = v * 8 + (u[++i] - U'0');
          out.push_back(v);
        } else {  // unknown escapes stay as written
          out.push_back(U'\\');
          out.push_back(c);
        }
    }
  }
  return encode_utf8(out);
}

class Lexer {
 public:
  Lexer(const std::string& src, const LexOptions& o) : s_(src), o_(o) {}

  std::vector<Token> run() {
    size_t pos = 0;
    while (pos < s_.size()) {
      size_t t = pos;
      char kind = 0;
      for (;; ++t) {
        t = s_.find('{', t);
        if (t == std::string::npos || t + 1 >= s_.size()) break;
        const char n = s_[t + 1];
        if (n == '{' || n == '%' || n == '#') {
          kind = n;
          break;
        }
      }
      if (!kind) {
        push_text(s_.substr(pos), pos);
        break;
      }
      const char sign = (t + 2 < s_.size() && (s_[t + 2] == '-' || s_[t + 2] == '+')) ? s_[t + 2] : 0;
      std::string text = s_.substr(pos, t - pos);
      const size_t raw_end = kind == '%' ? raw_begin_end(t) : 0;
      if (sign == '-') {
        text = rstrip_spaces(text);
      } else if (sign != '+' && o_.lstrip_blocks && kind != '{') {
        text = lstrip_line(text);
      }
      push_text(text, pos);
      const size_t body = t + 2 + (sign ? 1 : 0);
      if (kind == '#') {
        pos = comment(body);
      } else if (raw_end) {
        pos = raw(raw_end);
      } else {
        pos = tag(t, body, kind == '{');
      }
    }
    out_.push_back(Token{Token::Kind::End, "", 0, 0, s_.size()});
    return std::move(out_);
  }

 private:
  void push_text(const std::string& text, size_t pos) {
    if (!text.empty()) out_.push_back(Token{Token::Kind::Text, text, 0, 0, pos});
  }

  // lstrip_blocks: drop the spaces before a block tag when only spaces precede it on its line.
  std::string lstrip_line(const std::string& text) const {
    const size_t nl = text.rfind('\n');
    const size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
    if ((l_pos > 0 || line_starting_) && all_spaces(text, l_pos, text.size())) return text.substr(0, l_pos);
    return text;
  }

  // End of `{% raw %}` (Jinja's `{%(-|+|)\s*raw\s*(-%}\s*|%})`) starting at t, or 0 if it is not one.
  size_t raw_begin_end(size_t t) const {
    size_t i = t + 2;
    if (i < s_.size() && (s_[i] == '-' || s_[i] == '+')) ++i;
    i = skip_spaces(s_, i);
    if (!starts(s_, i, "raw")) return 0;
    i = skip_spaces(s_, i + 3);
    if (starts(s_, i, "-%}")) return skip_spaces(s_, i + 3);
    if (starts(s_, i, "%}")) return i + 2;
    return 0;
  }

  size_t comment(size_t body) {
    const size_t e = s_.find("#}", body);
    if (e == std::string::npos) throw TemplateError("missing end of comment tag", body - 2);
    const char sign = (e > body && (s_[e - 1] == '-' || s_[e - 1] == '+')) ? s_[e - 1] : 0;
    return after_end(e + 2, sign, /*block_like=*/true);
  }

  // Position after a tag's closing characters: `-` eats the whitespace after it, a plain block end
  // eats one newline under trim_blocks. Also records whether the match ended a line.
  size_t after_end(size_t q, char sign, bool block_like) {
    if (sign == '-')
      q = skip_spaces(s_, q);
    else if (!sign && block_like && o_.trim_blocks && q < s_.size() && s_[q] == '\n')
      ++q;
    line_starting_ = q > 0 && s_[q - 1] == '\n';
    return q;
  }

  size_t raw(size_t body) {
    for (size_t k = s_.find("{%", body); k != std::string::npos; k = s_.find("{%", k + 1)) {
      size_t i = k + 2;
      const char sign = (i < s_.size() && (s_[i] == '-' || s_[i] == '+')) ? s_[i] : 0;
      if (sign) ++i;
      i = skip_spaces(s_, i);
      if (!starts(s_, i, "endraw")) continue;
      i = skip_spaces(s_, i + 6);
      char end_sign = 0;
      if (starts(s_, i, "+%}") || starts(s_, i, "-%}")) {
        end_sign = s_[i];
        i += 3;
      } else if (starts(s_, i, "%}")) {
        i += 2;
      } else {
        continue;
      }
      std::string text = s_.substr(body, k - body);
      if (sign == '-')
        text = rstrip_spaces(text);
      else if (sign != '+' && o_.lstrip_blocks)
        text = lstrip_line(text);
      push_text(text, body);
      return after_end(i, end_sign, true);
    }
    throw TemplateError("missing end of raw directive ({% endraw %})", body);
  }

  size_t tag(size_t t, size_t i, bool var) {
    out_.push_back(Token{var ? Token::Kind::VarBegin : Token::Kind::BlockBegin, var ? "{{" : "{%", 0, 0, t});
    std::string balance;
    while (true) {
      i = skip_spaces(s_, i);
      if (i >= s_.size())
        throw TemplateError(std::string("unexpected end of template: the ") + (var ? "{{ ... }}" : "{% ... %}") +
                                " tag opened here is not closed",
                            t);
      if (balance.empty()) {
        if (var) {
          if (starts(s_, i, "-}}") || starts(s_, i, "}}")) {
            const char sign = s_[i] == '-' ? '-' : 0;
            out_.push_back(Token{Token::Kind::VarEnd, "}}", 0, 0, i});
            return after_end(i + (sign ? 3 : 2), sign, false);
          }
        } else if (starts(s_, i, "-%}") || starts(s_, i, "+%}") || starts(s_, i, "%}")) {
          const char sign = s_[i] == '%' ? 0 : s_[i];
          out_.push_back(Token{Token::Kind::BlockEnd, "%}", 0, 0, i});
          return after_end(i + (sign ? 3 : 2), sign, true);
        }
      }
      i = token(i, balance);
    }
  }

  size_t token(size_t i, std::string& balance) {
    const char c = s_[i];
    if (c >= '0' && c <= '9') return number(i);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_') {
      size_t j = i + 1;
      while (j < s_.size() && (isalnum(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) ++j;
      out_.push_back(Token{Token::Kind::Name, s_.substr(i, j - i), 0, 0, i});
      return j;
    }
    if (c == '\'' || c == '"') {
      size_t j = i + 1;
      while (j < s_.size() && s_[j] != c) j += s_[j] == '\\' ? 2 : 1;
      if (j >= s_.size()) throw TemplateError("unterminated string literal", i);
      out_.push_back(Token{Token::Kind::String, decode_string(s_.substr(i + 1, j - i - 1), i), 0, 0, i});
      return j + 1;
    }
    static const char* const kOps[] = {"//", "**", "==", "!=", ">=", "<=", "+", "-", "/", "*", "%", "~", "[", "]",
                                       "(", ")", "{", "}", ">", "<", "=", ".", ":", "|", ",", ";"};
    for (const char* op : kOps) {
      if (!starts(s_, i, op)) continue;
      const std::string o = op;
      if (o == "(" || o == "[" || o == "{") balance.push_back(o == "(" ? ')' : o == "[" ? ']' : '}');
      if (o == ")" || o == "]" || o == "}") {
        if (balance.empty()) throw TemplateError("unexpected '" + o + "'", i);
        if (balance.back() != o[0])
          throw TemplateError("unexpected '" + o + "', expected '" + std::string(1, balance.back()) + "'", i);
        balance.pop_back();
      }
      out_.push_back(Token{Token::Kind::Op, o, 0, 0, i});
      return i + o.size();
    }
    const size_t n = std::max<size_t>(1, std::min<size_t>(4, s_.size() - i));
    throw TemplateError("unexpected character '" + s_.substr(i, c & 0x80 ? n : 1) + "' inside a tag", i);
  }

  size_t digits(size_t i, bool hex = false) const {
    while (i < s_.size() && (isdigit(static_cast<unsigned char>(s_[i])) || s_[i] == '_' ||
                             (hex && isxdigit(static_cast<unsigned char>(s_[i])))))
      ++i;
    return i;
  }

  size_t number(size_t i) {
    auto clean = [](std::string t) {
      std::string r;
      for (char ch : t)
        if (ch != '_') r.push_back(ch);
      return r;
    };
    if (s_[i] == '0' && i + 1 < s_.size() && strchr("bBoOxX", s_[i + 1]) && s_[i + 1] != 0) {
      const char p = static_cast<char>(tolower(static_cast<unsigned char>(s_[i + 1])));
      const size_t j = digits(i + 2, p == 'x');
      const std::string body = clean(s_.substr(i + 2, j - i - 2));
      if (body.empty()) throw TemplateError("invalid number literal", i);
      Token tk{Token::Kind::Int, s_.substr(i, j - i), 0, 0, i};
      try {
        tk.ival = std::stoll(body, nullptr, p == 'x' ? 16 : p == 'o' ? 8 : 2);
      } catch (...) {
        throw TemplateError("invalid or too large number literal", i);
      }
      out_.push_back(tk);
      return j;
    }
    size_t j = digits(i);
    bool is_float = false;
    const bool after_dot = i > 0 && s_[i - 1] == '.';  // Jinja: "(?<!\.)" — `x.0.1` is attribute access
    if (!after_dot && j + 1 < s_.size() && s_[j] == '.' && isdigit(static_cast<unsigned char>(s_[j + 1]))) {
      j = digits(j + 1);
      is_float = true;
    }
    if (!after_dot && j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
      size_t k = j + 1;
      if (k < s_.size() && (s_[k] == '+' || s_[k] == '-')) ++k;
      if (k < s_.size() && isdigit(static_cast<unsigned char>(s_[k]))) {
        j = digits(k);
        is_float = true;
      }
    }
    const std::string text = s_.substr(i, j - i);
    Token tk{is_float ? Token::Kind::Float : Token::Kind::Int, text, 0, 0, i};
    try {
      if (is_float)
        tk.fval = std::stod(clean(text));
      else
        tk.ival = std::stoll(clean(text));
    } catch (...) {
      throw TemplateError("number literal '" + text + "' is out of range", i);
    }
    out_.push_back(tk);
    return j;
  }

  const std::string& s_;
  const LexOptions& o_;
  std::vector<Token> out_;
  bool line_starting_ = true;
};

}  // namespace

std::string normalize_source(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

std::vector<Token> lex(const std::string& normalized_source, const LexOptions& options) {
  return Lexer(normalized_source, options).run();
}

}  // namespace tandem::jinja
