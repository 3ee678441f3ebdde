#include "shard/tokenizer/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>
#include <set>

#include "shard/tokenizer/jinja_text.h"

namespace tandem::jinja {
namespace {

using Opt = std::optional<Value>;

constexpr int64_t kMaxRange = 100000;          // Jinja's sandbox refuses larger ranges
constexpr size_t kMaxString = 64u << 20;       // results of * and joins

[[noreturn]] void type_error(const std::string& m) { throw TemplateError(m); }

void require_defined(const Value& v) {
  if (v.is_undefined()) throw TemplateError(v.undefined_message());
}

// Python's argument binding for a builtin with the given parameter names.
std::vector<Opt> bind(Args& a, const std::string& fname, std::initializer_list<const char*> names) {
  std::vector<Opt> out(names.size());
  const std::vector<const char*> n(names);
  if (a.positional.size() > n.size())
    type_error(fname + "() takes at most " + std::to_string(n.size()) + " argument(s) (" +
               std::to_string(a.positional.size()) + " given)");
  for (size_t i = 0; i < a.positional.size(); ++i) out[i] = a.positional[i];
  for (auto& [k, v] : a.keyword) {
    size_t idx = n.size();
    for (size_t i = 0; i < n.size(); ++i)
      if (k == n[i]) idx = i;
    if (idx == n.size()) type_error(fname + "() got an unexpected keyword argument '" + k + "'");
    if (out[idx]) type_error(fname + "() got multiple values for argument '" + k + "'");
    out[idx] = v;
  }
  return out;
}

void no_args(Args& a, const std::string& fname) { bind(a, fname, {}); }

std::optional<std::string> opt_string(const Opt& o) {
  if (!o || o->is_none()) return std::nullopt;
  if (!o->is_string()) type_error("expected a string argument, got " + type_name(*o));
  return o->as_string();
}

int64_t as_index(const Value& v, const std::string& what) {
  if (v.is_int() || v.is_bool()) return v.as_int();
  type_error(what + " must be an integer, not " + type_name(v));
}

bool flag(const Opt& o, bool def) { return o ? truthy(*o) : def; }

Value generator(std::vector<Value> items) { return Value::array(std::move(items), false, "generator"); }

// Jinja's make_attrgetter: "a.b.0" -> getitem per dotted part (integers as indexes).
Value attr_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    const bool digits = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    v = get_item(v, digits ? Value::integer(std::stoll(part)) : Value::string(part));
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Value sort_key(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::string(py_lower(v.as_string()));
  return v;
}

// a op b on int64, refusing overflow (Python's ints are unbounded; a wrapped result would be wrong).
template <class Op>
int64_t checked(Op op, int64_t a, int64_t b) {
  int64_t r = 0;
  if (op(a, b, &r)) type_error("integer overflow: integers beyond 64 bits are not supported by tandem");
  return r;
}
bool add_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_add_overflow(a, b, r); }
bool sub_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_sub_overflow(a, b, r); }
bool mul_ovf(int64_t a, int64_t b, int64_t* r) { return __builtin_mul_overflow(a, b, r); }

int64_t py_floordiv(int64_t a, int64_t b) {
  if (b == 0) type_error("integer division or modulo by zero");
  if (a == INT64_MIN && b == -1) type_error("integer overflow: integers beyond 64 bits are not supported by tandem");
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

int64_t py_mod(int64_t a, int64_t b) {
  if (b == 0) type_error("integer division or modulo by zero");
  if (b == -1) return 0;
  int64_t r = a % b;
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

double py_fmod(double a, double b) {
  if (b == 0) type_error("float modulo");
  double r = std::fmod(a, b);
  if (r != 0 && ((r < 0) != (b < 0))) r += b;
  return r;
}

std::string repeat(const std::string& s, int64_t n) {
  if (n <= 0) return "";
  if (s.size() * static_cast<size_t>(n) > kMaxString) type_error("string repetition result is too large");
  std::string out;
  for (int64_t i = 0; i < n; ++i) out += s;
  return out;
}

// printf-style `fmt % args` (Python's %-formatting; also the |format filter).
std::string percent_format(const std::string& fmt, const Value& args) {
  std::vector<Value> pos;
  const ObjectData* mapping = nullptr;
  if (args.is_array() && args.array().tuple)
    pos = args.items();
  else if (args.is_dict())
    mapping = &args.object();
  else
    pos = {args};
  size_t next = 0;
  std::string out;
  for (size_t i = 0; i < fmt.size(); ++i) {
    if (fmt[i] != '%') {
      out += fmt[i];
      continue;
    }
    if (++i >= fmt.size()) type_error("incomplete format");
    if (fmt[i] == '%') {
      out += '%';
      continue;
    }
    const Value* arg = nullptr;
    if (fmt[i] == '(') {
      const size_t close = fmt.find(')', i);
      if (close == std::string::npos || !mapping) type_error("format requires a mapping");
      arg = mapping->find(fmt.substr(i + 1, close - i - 1));
      if (!arg) type_error("format key '" + fmt.substr(i + 1, close - i - 1) + "' is missing");
      i = close + 1;
    }
    std::string spec = "%";
    while (i < fmt.size() && std::string("-+ #0").find(fmt[i]) != std::string::npos) spec += fmt[i++];
    while (i < fmt.size() && isdigit(static_cast<unsigned char>(fmt[i]))) spec += fmt[i++];
    if (i < fmt.size() && fmt[i] == '.') {
      spec += fmt[i++];
      while (i < fmt.size() && isdigit(static_cast<unsigned char>(fmt[i]))) spec += fmt[i++];
    }
    if (i >= fmt.size()) type_error("incomplete format");
    const char conv = fmt[i];
    if (!arg) {
      if (next >= pos.size()) type_error("not enough arguments for format string");
      arg = &pos[next++];
    }
    char buf[512];
    switch (conv) {
      case 's':
      case 'r': {
        const std::string s = conv == 's' ? to_str(*arg) : to_repr(*arg);
        if (spec == "%") {
          out += s;
        } else {  // width/precision on text: pad by code points as Python does
          std::u32string u = decode_utf8(s);
          const size_t dot = spec.find('.');
          if (dot != std::string::npos) u = u.substr(0, std::stoul("0" + spec.substr(dot + 1)));
          const std::string w = spec.substr(1, dot == std::string::npos ? std::string::npos : dot - 1);
          const bool left = w.find('-') != std::string::npos;
          std::string digits;
          for (char c : w)
            if (isdigit(static_cast<unsigned char>(c))) digits += c;
          const size_t width = digits.empty() ? 0 : std::stoul(digits);
          std::string t = encode_utf8(u);
          const std::string pad(width > u.size() ? width - u.size() : 0, ' ');
          out += left ? t + pad : pad + t;
        }
        break;
      }
      case 'd':
      case 'i':
      case 'x':
      case 'X':
      case 'o': {
        if (!arg->is_number()) type_error("%" + std::string(1, conv) + " format: a number is required, not " + type_name(*arg));
        const long long v = arg->is_float() ? static_cast<long long>(arg->as_double()) : arg->as_int();
        snprintf(buf, sizeof buf, (spec + "ll" + (conv == 'i' ? 'd' : conv)).c_str(), v);
        out += buf;
        break;
      }
      case 'f':
      case 'F':
      case 'e':
      case 'E':
      case 'g':
      case 'G': {
        if (!arg->is_number()) type_error("%" + std::string(1, conv) + " format: a real number is required, not " + type_name(*arg));
        snprintf(buf, sizeof buf, (spec + conv).c_str(), arg->as_double());
        out += buf;
        break;
      }
      default: type_error("unsupported format character '" + std::string(1, conv) + "'");
    }
  }
  if (!mapping && next < pos.size())
    type_error("not all arguments converted during string formatting");
  return out;
}

// str.format: {} {0} {name}, !r/!s; a format spec is refused rather than guessed.
std::string brace_format(const std::string& fmt, Args& a) {
  std::string out;
  size_t auto_idx = 0;
  for (size_t i = 0; i < fmt.size(); ++i) {
    const char c = fmt[i];
    if (c == '{' && i + 1 < fmt.size() && fmt[i + 1] == '{') {
      out += '{';
      ++i;
      continue;
    }
    if (c == '}' && i + 1 < fmt.size() && fmt[i + 1] == '}') {
      out += '}';
      ++i;
      continue;
    }
    if (c == '}') type_error("single '}' encountered in format string");
    if (c != '{') {
      out += c;
      continue;
    }
    const size_t close = fmt.find('}', i);
    if (close == std::string::npos) type_error("single '{' encountered in format string");
    std::string field = fmt.substr(i + 1, close - i - 1);
    i = close;
    char conv = 0;
    if (const size_t bang = field.find('!'); bang != std::string::npos) {
      conv = bang + 1 < field.size() ? field[bang + 1] : 0;
      field = field.substr(0, bang);
    }
    if (field.find(':') != std::string::npos) type_error("format specs in str.format are not supported");
    const Value* v = nullptr;
    if (field.empty()) {
      if (auto_idx >= a.positional.size()) type_error("Replacement index " + std::to_string(auto_idx) + " out of range");
      v = &a.positional[auto_idx++];
    } else if (std::all_of(field.begin(), field.end(), [](char d) { return isdigit(static_cast<unsigned char>(d)); })) {
      const size_t k = std::stoul(field);
      if (k >= a.positional.size()) type_error("Replacement index " + field + " out of range");
      v = &a.positional[k];
    } else {
      for (auto& [k, val] : a.keyword)
        if (k == field) v = &val;
      if (!v) type_error("format key '" + field + "' is missing");
    }
    out += conv == 'r' ? to_repr(*v) : to_str(*v);
  }
  return out;
}

std::string join_strings(const std::vector<Value>& items, const std::string& sep, bool strict) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i].is_markup()) type_error("joining Markup (from |safe or |escape) is not supported by tandem");
    if (strict && !items[i].is_string())
      type_error("sequence item " + std::to_string(i) + ": expected str instance, " + type_name(items[i]) + " found");
    if (i) out += sep;
    out += to_str(items[i]);
    if (out.size() > kMaxString) type_error("join result is too large");
  }
  return out;
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return 0;
    case Value::Kind::String: return static_cast<int64_t>(codepoint_count(v.as_string()));
    case Value::Kind::Array:
      if (v.array().view == "generator") type_error("object of type 'generator' has no len()");
      return static_cast<int64_t>(v.items().size());
    case Value::Kind::Object:
      if (v.is_namespace()) type_error("object of type 'Namespace' has no len()");
      return static_cast<int64_t>(v.object().items.size());
    default: type_error("object of type '" + type_name(v) + "' has no len()");
  }
}

std::optional<double> parse_float(std::string s) {
  s = py_strip(s, std::nullopt, true, true);
  std::string t;
  for (char c : s)
    if (c != '_') t += c;
  if (t.empty()) return std::nullopt;
  std::string low = py_lower(t);
  if (low == "inf" || low == "+inf" || low == "infinity" || low == "+infinity") return INFINITY;
  if (low == "-inf" || low == "-infinity") return -INFINITY;
  if (low == "nan" || low == "+nan" || low == "-nan") return NAN;
  size_t used = 0;
  try {
    const double d = std::stod(t, &used);
    if (used != t.size() || low.find('x') != std::string::npos) return std::nullopt;
    return d;
  } catch (...) {
    return std::nullopt;
  }
}

std::optional<int64_t> parse_int(std::string s, int base) {
  s = py_strip(s, std::nullopt, true, true);
  std::string t;
  for (char c : s)
    if (c != '_') t += c;
  if (t.empty()) return std::nullopt;
  size_t used = 0;
  try {
    const long long v = std::stoll(t, &used, base);
    if (used != t.size()) return std::nullopt;
    return v;
  } catch (...) {
    return std::nullopt;
  }
}

bool test_by_name(const std::string& name, const Value& v, std::vector<Value> extra) {
  Args a;
  a.positional = std::move(extra);
  return call_test(name, v, a);
}

// select/reject and selectattr/rejectattr.
Value select(const Value& seq, Args& a, bool keep, bool by_attr, const std::string& fname) {
  std::vector<Value> rest = a.positional;
  if (!a.keyword.empty()) type_error(fname + "() takes no keyword arguments");
  std::string attr;
  if (by_attr) {
    if (rest.empty() || !rest[0].is_string()) type_error(fname + "() needs the attribute name");
    attr = rest[0].as_string();
    rest.erase(rest.begin());
  }
  std::string test;
  if (!rest.empty()) {
    if (!rest[0].is_string()) type_error(fname + "(): the test name must be a string");
    test = rest[0].as_string();
    if (!test_known(test)) type_error("no test named '" + test + "'");
    rest.erase(rest.begin());
  }
  std::vector<Value> out;
  for (const Value& item : iterate(seq)) {
    const Value probe = by_attr ? attr_path(item, attr) : item;
    const bool ok = test.empty() ? truthy(probe) : test_by_name(test, probe, rest);
    if (ok == keep) out.push_back(item);
  }
  return generator(std::move(out));
}

Value minmax(const Value& seq, Args& a, bool want_max, const std::string& fname) {
  auto p = bind(a, fname, {"case_sensitive", "attribute"});
  const bool cs = flag(p[0], false);
  const auto attr = opt_string(p[1]);
  const std::vector<Value> items = iterate(seq);
  if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
  size_t best = 0;
  for (size_t i = 1; i < items.size(); ++i) {
    const Value ki = sort_key(attr ? attr_path(items[i], *attr) : items[i], cs);
    const Value kb = sort_key(attr ? attr_path(items[best], *attr) : items[best], cs);
    if (want_max ? less(kb, ki) : less(ki, kb)) best = i;
  }
  return items[best];
}

Value to_float(const Value& v, double def) {
  if (v.is_number()) return Value::number(v.as_double());
  if (v.is_string()) {
    if (auto d = parse_float(v.as_string())) return Value::number(*d);
  }
  return Value::number(def);
}

// Python's round(x, n) for floats: correctly rounded, ties to even (glibc's printf does the same).
Value py_round(const Value& v, int64_t precision) {
  if (!v.is_float()) {
    if (precision >= 0) return Value::integer(v.as_int());
    type_error("rounding integers to negative precision is not supported");
  }
  const double d = v.as_double();
  if (!std::isfinite(d)) return v;
  if (precision == 0) return Value::number(std::nearbyint(d));
  if (precision < 0 || precision > 300) type_error("round(): precision out of the supported range");
  char buf[512];
  snprintf(buf, sizeof buf, "%.*f", static_cast<int>(precision), d);
  return Value::number(std::strtod(buf, nullptr));
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string pad_center(const std::string& s, int64_t width) {
  const auto n = static_cast<int64_t>(codepoint_count(s));
  if (width <= n) return s;
  const int64_t marg = width - n;
  const int64_t left = marg / 2 + (marg & width & 1);
  return std::string(static_cast<size_t>(left), ' ') + s + std::string(static_cast<size_t>(marg - left), ' ');
}

Value str_method(const std::string& s, const std::string& name, Args& a) {
  const std::string f = "str." + name;
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto p = bind(a, f, {"chars"});
    return Value::string(py_strip(s, opt_string(p[0]), name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    auto p = bind(a, f, {"sep", "maxsplit"});
    const int64_t maxsplit = p[1] ? as_index(*p[1], "maxsplit") : -1;
    std::vector<Value> out;
    for (auto& part : py_split(s, opt_string(p[0]), maxsplit, name == "rsplit")) out.push_back(Value::string(part));
    return Value::array(std::move(out));
  }
  if (name == "splitlines") {
    auto p = bind(a, f, {"keepends"});
    std::vector<Value> out;
    for (auto& part : py_splitlines(s, flag(p[0], false))) out.push_back(Value::string(part));
    return Value::array(std::move(out));
  }
  if (name == "startswith" || name == "endswith") {
    auto p = bind(a, f, {"prefix", "start", "end"});
    if (!p[0]) type_error(f + "() takes at least 1 argument (0 given)");
    if (p[1] || p[2]) type_error(f + "() with start/end is not supported by tandem");
    std::vector<Value> cands = p[0]->is_array() && p[0]->array().tuple ? p[0]->items() : std::vector<Value>{*p[0]};
    for (const Value& c : cands) {
      if (!c.is_string()) type_error(f + " first arg must be str or a tuple of str, not " + type_name(c));
      const std::string& x = c.as_string();
      const bool hit = name == "startswith" ? s.compare(0, x.size(), x) == 0
                                            : s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
      if (hit) return Value::boolean(true);
    }
    return Value::boolean(false);
  }
  if (name == "replace") {
    auto p = bind(a, f, {"old", "new", "count"});
    if (!p[0] || !p[1] || !p[0]->is_string() || !p[1]->is_string()) type_error(f + "() needs two strings");
    return Value::string(py_replace(s, p[0]->as_string(), p[1]->as_string(), p[2] ? as_index(*p[2], "count") : -1));
  }
  if (name == "upper" || name == "lower" || name == "title" || name == "capitalize") {
    no_args(a, f);
    return Value::string(name == "upper"   ? py_upper(s)
                         : name == "lower" ? py_lower(s)
                         : name == "title" ? py_title(s)
                                           : py_capitalize(s));
  }
  if (name == "find" || name == "rfind" || name == "index" || name == "rindex" || name == "count") {
    auto p = bind(a, f, {"sub", "start", "end"});
    if (!p[0] || !p[0]->is_string()) type_error(f + "() needs a string argument");
    if (p[1] || p[2]) type_error(f + "() with start/end is not supported by tandem");
    if (name == "count") return Value::integer(py_count(s, p[0]->as_string()));
    const int64_t r = py_find(s, p[0]->as_string(), name[0] == 'r');
    if (r < 0 && name.find("index") != std::string::npos) type_error("substring not found");
    return Value::integer(r);
  }
  if (name == "join") {
    auto p = bind(a, f, {"iterable"});
    if (!p[0]) type_error(f + "() takes exactly one argument");
    return Value::string(join_strings(iterate(*p[0]), s, true));
  }
  if (name == "format") return Value::string(brace_format(s, a));
  if (name == "removeprefix" || name == "removesuffix") {
    auto p = bind(a, f, {"affix"});
    if (!p[0] || !p[0]->is_string()) type_error(f + "() needs a string argument");
    const std::string& x = p[0]->as_string();
    if (name == "removeprefix") return Value::string(s.compare(0, x.size(), x) == 0 ? s.substr(x.size()) : s);
    const bool ends = s.size() >= x.size() && s.compare(s.size() - x.size(), x.size(), x) == 0;
    return Value::string(ends && !x.empty() ? s.substr(0, s.size() - x.size()) : s);
  }
  if (name == "isspace" || name == "isdigit" || name == "isalpha" || name == "isalnum" || name == "islower" ||
      name == "isupper") {
    no_args(a, f);
    const std::u32string u = decode_utf8(s);
    if (name == "islower") return Value::boolean(py_islower(s));
    if (name == "isupper") return Value::boolean(py_isupper(s));
    if (u.empty()) return Value::boolean(false);
    for (char32_t c : u) {
      if (c >= 0x80 && name != "isspace") type_error(f + "() on non-ASCII text is not supported by tandem");
      const bool ok = name == "isspace"   ? py_isspace(c)
                      : name == "isdigit" ? (c >= '0' && c <= '9')
                      : name == "isalpha" ? isalpha(static_cast<int>(c)) != 0
                                          : isalnum(static_cast<int>(c)) != 0;
      if (!ok) return Value::boolean(false);
    }
    return Value::boolean(true);
  }
  if (name == "partition" || name == "rpartition") {
    auto p = bind(a, f, {"sep"});
    if (!p[0] || !p[0]->is_string() || p[0]->as_string().empty()) type_error(f + "() needs a non-empty separator");
    const std::string& sep = p[0]->as_string();
    const size_t at = name == "partition" ? s.find(sep) : s.rfind(sep);
    if (at == std::string::npos)
      return name == "partition"
                 ? Value::array({Value::string(s), Value::string(""), Value::string("")}, true)
                 : Value::array({Value::string(""), Value::string(""), Value::string(s)}, true);
    return Value::array({Value::string(s.substr(0, at)), Value::string(sep), Value::string(s.substr(at + sep.size()))},
                        true);
  }
  if (name == "center" || name == "ljust" || name == "rjust") {
    auto p = bind(a, f, {"width", "fillchar"});
    if (!p[0]) type_error(f + "() takes at least 1 argument");
    if (p[1]) type_error(f + "() with a fill character is not supported by tandem");
    const int64_t w = as_index(*p[0], "width");
    if (name == "center") return Value::string(pad_center(s, w));
    const auto n = static_cast<int64_t>(codepoint_count(s));
    const std::string pad(w > n ? static_cast<size_t>(w - n) : 0, ' ');
    return Value::string(name == "ljust" ? s + pad : pad + s);
  }
  type_error("str." + name + "() is not supported by tandem's Jinja subset");
}

const std::set<std::string>& str_methods() {
  static const std::set<std::string> m = {
      "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs", "find", "format", "format_map",
      "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit", "isidentifier", "islower", "isnumeric",
      "isprintable", "isspace", "istitle", "isupper", "join", "ljust", "lower", "lstrip", "maketrans", "partition",
      "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust", "rpartition", "rsplit", "rstrip", "split",
      "splitlines", "startswith", "strip", "swapcase", "title", "translate", "upper", "zfill"};
  return m;
}

Value bound(const Value& self, const std::string& type, const std::string& name) {
  return Value::callable(type + "." + name, [self, type, name](Args& a) -> Value {
    if (type == "str") return str_method(self.as_string(), name, a);
    if (type == "dict") {
      const ObjectData& o = self.object();
      if (name == "items" || name == "keys" || name == "values") {
        no_args(a, "dict." + name);
        std::vector<Value> out;
        for (const auto& [k, v] : o.items)
          out.push_back(name == "items"  ? Value::array({Value::string(k), v}, true)
                        : name == "keys" ? Value::string(k)
                                         : v);
        return Value::array(std::move(out), false, "dict_" + name);
      }
      if (name == "get") {
        auto p = bind(a, "dict.get", {"key", "default"});
        if (!p[0]) type_error("dict.get() takes at least 1 argument");
        const Value* v = p[0]->is_string() ? o.find(p[0]->as_string()) : nullptr;
        return v ? *v : (p[1] ? *p[1] : Value::none());
      }
      if (name == "copy") {
        no_args(a, "dict.copy");
        ObjectData c = o;
        c.is_namespace = false;
        return Value::object(std::move(c));
      }
    }
    if (type == "list" || type == "tuple") {
      if (name == "count" || name == "index") {
        auto p = bind(a, type + "." + name, {"value"});
        if (!p[0]) type_error(type + "." + name + "() takes exactly one argument");
        int64_t n = 0;
        for (size_t i = 0; i < self.items().size(); ++i) {
          if (!equals(self.items()[i], *p[0])) continue;
          if (name == "index") return Value::integer(static_cast<int64_t>(i));
          ++n;
        }
        if (name == "index") type_error(to_repr(*p[0]) + " is not in " + type);
        return Value::integer(n);
      }
      if (name == "copy") {
        no_args(a, "list.copy");
        return Value::array(self.items());
      }
    }
    type_error(type + "." + name + "() is not supported by tandem's Jinja subset");
  });
}

// The sandbox's verdict on a method that would modify its object.
Value unsafe(const std::string& type, const std::string& name) {
  return Value::undefined("access to attribute '" + name + "' of '" + type +
                          "' object is unsafe (templates render in an immutable sandbox, as in transformers)");
}

std::string object_desc(const Value& v) {
  if (v.is_none()) return "None";
  return type_name(v) + " object";
}

Value no_attribute(const Value& obj, const std::string& name) {
  return Value::undefined("'" + object_desc(obj) + "' has no attribute '" + name + "'");
}

}  // namespace

Value get_attr(const Value& obj, const std::string& name) {
  require_defined(obj);
  switch (obj.kind()) {
    case Value::Kind::String:
      if (str_methods().count(name)) return bound(obj, "str", name);
      return no_attribute(obj, name);
    case Value::Kind::Object: {
      if (obj.is_namespace()) {
        const Value* v = obj.object().find(name);
        return v ? *v : Value::undefined("'Namespace' object has no attribute '" + name + "'");
      }
      static const std::set<std::string> safe = {"items", "keys", "values", "get", "copy", "fromkeys"};
      static const std::set<std::string> mutating = {"clear", "pop", "popitem", "setdefault", "update"};
      if (safe.count(name)) return bound(obj, "dict", name);
      if (mutating.count(name)) return unsafe("dict", name);
      const Value* v = obj.object().find(name);
      return v ? *v : no_attribute(obj, name);
    }
    case Value::Kind::Array: {
      const std::string type = obj.array().tuple ? "tuple" : "list";
      if (!obj.array().view.empty()) return no_attribute(obj, name);
      static const std::set<std::string> safe = {"count", "index", "copy"};
      static const std::set<std::string> mutating = {"append", "clear", "extend", "insert", "pop", "remove",
                                                     "reverse", "sort"};
      if (safe.count(name) && (type == "list" || name != "copy")) return bound(obj, type, name);
      if (mutating.count(name) && type == "list") return unsafe("list", name);
      return no_attribute(obj, name);
    }
    default: return no_attribute(obj, name);
  }
}

Value get_item(const Value& obj, const Value& key) {
  require_defined(obj);
  if ((obj.is_array() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    if (obj.is_array() && !obj.array().view.empty() && obj.array().view != "range")
      type_error("'" + obj.array().view + "' object is not subscriptable");
    int64_t i = key.as_int();
    if (obj.is_array()) {
      const auto n = static_cast<int64_t>(obj.items().size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) return Value::undefined(type_name(obj) + " object has no element " + std::to_string(key.as_int()));
      return obj.items()[static_cast<size_t>(i)];
    }
    const std::u32string u = decode_utf8(obj.as_string());
    const auto n = static_cast<int64_t>(u.size());
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined("str object has no element " + std::to_string(key.as_int()));
    return Value::string(encode_utf8(std::u32string_view(&u[static_cast<size_t>(i)], 1)));
  }
  if (obj.is_dict() && key.is_string()) {
    if (const Value* v = obj.object().find(key.as_string())) return *v;
  }
  if (key.is_string()) return get_attr(obj, key.as_string());
  return Value::undefined("'" + object_desc(obj) + "' has no element " + to_repr(key));
}

Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step) {
  require_defined(obj);
  auto part = [](const Value* v) -> std::optional<int64_t> {
    if (!v || v->is_none()) return std::nullopt;
    return as_index(*v, "slice indices");
  };
  const bool is_str = obj.is_string();
  if (!is_str && !(obj.is_array() && (obj.array().view.empty() || obj.array().view == "range")))
    return Value::undefined("'" + object_desc(obj) + "' cannot be sliced");
  const std::u32string u = is_str ? decode_utf8(obj.as_string()) : std::u32string();
  const int64_t n = is_str ? static_cast<int64_t>(u.size()) : static_cast<int64_t>(obj.items().size());
  const int64_t st = part(step).value_or(1);
  if (st == 0) type_error("slice step cannot be zero");
  // Python's slice.indices()
  const int64_t lower = st < 0 ? -1 : 0, upper = st < 0 ? n - 1 : n;
  auto clamp = [&](std::optional<int64_t> v, int64_t def) {
    if (!v) return def;
    int64_t x = *v;
    if (x < 0) {
      x += n;
      if (x < lower) x = lower;
    } else if (x > upper) {
      x = upper;
    }
    return x;
  };
  const int64_t b = clamp(part(start), st < 0 ? upper : lower);
  const int64_t e = clamp(part(stop), st < 0 ? lower : upper);
  std::u32string su;
  std::vector<Value> items;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) {
    if (is_str)
      su.push_back(u[static_cast<size_t>(i)]);
    else
      items.push_back(obj.items()[static_cast<size_t>(i)]);
  }
  if (is_str) return Value::string(encode_utf8(su));
  return Value::array(std::move(items), obj.array().tuple);
}

std::vector<Value> iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::Undefined: return {};
    case Value::Kind::Array: return v.items();
    case Value::Kind::Object: {
      if (v.is_namespace()) type_error("'Namespace' object is not iterable");
      std::vector<Value> keys;
      for (const auto& kv : v.object().items) keys.push_back(Value::string(kv.first));
      return keys;
    }
    case Value::Kind::String: {
      std::vector<Value> out;
      for (char32_t c : decode_utf8(v.as_string())) out.push_back(Value::string(encode_utf8(std::u32string_view(&c, 1))));
      return out;
    }
    default: type_error("'" + type_name(v) + "' object is not iterable");
  }
}

bool contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::Undefined: return false;
    case Value::Kind::String:
      if (!item.is_string())
        type_error("'in <string>' requires string as left operand, not " + type_name(item));
      return container.as_string().find(item.as_string()) != std::string::npos;
    case Value::Kind::Array:
      for (const Value& x : container.items())
        if (equals(x, item)) return true;
      return false;
    case Value::Kind::Object:
      if (container.is_namespace()) type_error("argument of type 'Namespace' is not iterable");
      return item.is_string() && container.object().find(item.as_string()) != nullptr;
    default: type_error("argument of type '" + type_name(container) + "' is not iterable");
  }
}

Value unary_op(const std::string& op, const Value& a) {
  require_defined(a);
  if (!a.is_number()) type_error("bad operand type for unary " + op + ": '" + type_name(a) + "'");
  if (op == "+") return a.is_float() ? a : Value::integer(a.as_int());
  if (a.is_float()) return Value::number(-a.as_double());
  if (a.as_int() == INT64_MIN) type_error("integer overflow: integers beyond 64 bits are not supported by tandem");
  return Value::integer(-a.as_int());
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::string(to_str(a) + to_str(b));
  require_defined(a);
  require_defined(b);
  auto unsupported = [&]() -> Value {
    type_error("unsupported operand type(s) for " + op + ": '" + type_name(a) + "' and '" + type_name(b) + "'");
  };
  const bool ints = (a.is_int() || a.is_bool()) && (b.is_int() || b.is_bool());
  const bool nums = a.is_number() && b.is_number();
  if (op == "+") {
    if (ints) return Value::integer(checked(add_ovf, a.as_int(), b.as_int()));
    if (nums) return Value::number(a.as_double() + b.as_double());
    if (a.is_string() && b.is_string()) {
      if (a.is_markup() || b.is_markup())
        type_error("adding Markup (from |safe or |escape) to text is not supported by tandem");
      return Value::string(a.as_string() + b.as_string());
    }
    if (a.is_array() && b.is_array() && a.array().tuple == b.array().tuple && a.array().view.empty() &&
        b.array().view.empty()) {
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return Value::array(std::move(items), a.array().tuple);
    }
    return unsupported();
  }
  if (op == "-") {
    if (ints) return Value::integer(checked(sub_ovf, a.as_int(), b.as_int()));
    if (nums) return Value::number(a.as_double() - b.as_double());
    return unsupported();
  }
  if (op == "*") {
    if (ints) return Value::integer(checked(mul_ovf, a.as_int(), b.as_int()));
    if (nums) return Value::number(a.as_double() * b.as_double());
    const Value* seq = a.is_string() || a.is_array() ? &a : &b;
    const Value* cnt = seq == &a ? &b : &a;
    if (!(cnt->is_int() || cnt->is_bool())) return unsupported();
    if (seq->is_string()) return Value::string(repeat(seq->as_string(), cnt->as_int()));
    if (seq->is_array() && seq->array().view.empty()) {
      std::vector<Value> items;
      if (cnt->as_int() > 0 && seq->items().size() * static_cast<size_t>(cnt->as_int()) > kMaxString)
        type_error("list repetition result is too large");
      for (int64_t i = 0; i < cnt->as_int(); ++i) items.insert(items.end(), seq->items().begin(), seq->items().end());
      return Value::array(std::move(items), seq->array().tuple);
    }
    return unsupported();
  }
  if (op == "/") {
    if (!nums) return unsupported();
    if (b.as_double() == 0) type_error("division by zero");
    return Value::number(a.as_double() / b.as_double());
  }
  if (op == "//") {
    if (ints) return Value::integer(py_floordiv(a.as_int(), b.as_int()));
    if (!nums) return unsupported();
    if (b.as_double() == 0) type_error("float floor division by zero");
    return Value::number(std::floor(a.as_double() / b.as_double()));
  }
  if (op == "%") {
    if (ints) return Value::integer(py_mod(a.as_int(), b.as_int()));
    if (nums) return Value::number(py_fmod(a.as_double(), b.as_double()));
    if (a.is_string()) {
      if (a.is_markup()) type_error("%-formatting Markup is not supported by tandem");
      return Value::string(percent_format(a.as_string(), b));
    }
    return unsupported();
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t base = a.as_int(), e = b.as_int(), acc = 1;
      while (e > 0) {
        if (e & 1) acc = checked(mul_ovf, acc, base);
        e >>= 1;
        if (e) base = checked(mul_ovf, base, base);
      }
      return Value::integer(acc);
    }
    if (nums) {
      if (a.as_double() == 0 && b.as_double() < 0) type_error("0.0 cannot be raised to a negative power");
      return Value::number(std::pow(a.as_double(), b.as_double()));
    }
    return unsupported();
  }
  type_error("unknown operator " + op);
}

// --- filters --------------------------------------------------------------------------------

namespace {

const std::set<std::string>& filter_names() {
  static const std::set<std::string> n = {
      "abs", "attr", "batch", "capitalize", "center", "count", "d", "default", "dictsort", "e", "escape",
      "filesizeformat", "first", "float", "forceescape", "format", "groupby", "indent", "int", "items", "join",
      "last", "length", "list", "lower", "map", "max", "min", "pprint", "random", "reject", "rejectattr", "replace",
      "reverse", "round", "safe", "select", "selectattr", "slice", "sort", "string", "striptags", "sum", "title",
      "tojson", "trim", "truncate", "unique", "upper", "urlencode", "urlize", "wordcount", "wordwrap", "xmlattr"};
  return n;
}

const std::set<std::string>& test_names() {
  static const std::set<std::string> n = {
      "boolean", "callable", "defined", "divisibleby", "eq", "equalto", "escaped", "even", "false", "filter",
      "float", "ge", "gt", "greaterthan", "in", "integer", "iterable", "le", "lessthan", "lower", "lt", "mapping",
      "ne", "none", "number", "odd", "sameas", "sequence", "string", "test", "true", "undefined", "upper", "==", "!=",
      "<", "<=", ">", ">="};
  return n;
}

Value items_filter(const Value& v) {
  if (v.is_undefined()) return generator({});
  if (!v.is_dict()) type_error("Can only get item pairs from a mapping.");
  std::vector<Value> out;
  for (const auto& [k, x] : v.object().items) out.push_back(Value::array({Value::string(k), x}, true));
  return generator(std::move(out));
}

Value tojson_filter(const Value& v, Args& a) {
  // transformers: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  auto p = bind(a, "tojson", {"ensure_ascii", "indent", "separators", "sort_keys"});
  JsonStyle st;
  st.ensure_ascii = flag(p[0], false);
  if (p[1] && !p[1]->is_none()) {
    st.indent = true;
    if (p[1]->is_string())
      st.indent_text = p[1]->as_string();
    else
      st.indent_text = std::string(static_cast<size_t>(std::max<int64_t>(0, as_index(*p[1], "indent"))), ' ');
  }
  if (p[2] && !p[2]->is_none()) {
    if (!p[2]->is_array() || p[2]->items().size() != 2 || !p[2]->items()[0].is_string() || !p[2]->items()[1].is_string())
      type_error("tojson(): separators must be an (item_separator, key_separator) pair of strings");
    st.custom_separators = true;
    st.item_sep = p[2]->items()[0].as_string();
    st.key_sep = p[2]->items()[1].as_string();
  }
  st.sort_keys = flag(p[3], false);
  return Value::string(to_json(v, st));
}

Value indent_filter(const Value& v, Args& a) {
  auto p = bind(a, "indent", {"width", "first", "blank"});
  std::string ind = "    ";
  if (p[0]) ind = p[0]->is_string() ? p[0]->as_string() : std::string(static_cast<size_t>(std::max<int64_t>(0, as_index(*p[0], "width"))), ' ');
  const bool first = flag(p[1], false), blank = flag(p[2], false);
  const std::string s = to_str(v) + "\n";
  const std::vector<std::string> lines = py_splitlines(s);
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + ind : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    if (lines.size() > 1) {
      rv += "\n";
      for (size_t i = 1; i < lines.size(); ++i) rv += (i > 1 ? "\n" : "") + (lines[i].empty() ? "" : ind) + lines[i];
    }
  }
  if (first) rv = ind + rv;
  return Value::string(rv);
}

Value sort_filter(const Value& v, Args& a) {
  auto p = bind(a, "sort", {"reverse", "case_sensitive", "attribute"});
  const bool rev = flag(p[0], false), cs = flag(p[1], false);
  const auto attr = opt_string(p[2]);
  std::vector<Value> items = iterate(v);
  std::vector<std::pair<Value, Value>> keyed;
  for (auto& x : items) keyed.emplace_back(sort_key(attr ? attr_path(x, *attr) : x, cs), x);
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& l, const auto& r) {
    return rev ? less(r.first, l.first) : less(l.first, r.first);
  });
  std::vector<Value> out;
  for (auto& kv : keyed) out.push_back(kv.second);
  return Value::array(std::move(out));
}

Value dictsort_filter(const Value& v, Args& a) {
  auto p = bind(a, "dictsort", {"case_sensitive", "by", "reverse"});
  const bool cs = flag(p[0], false), rev = flag(p[2], false);
  const std::string by = opt_string(p[1]).value_or("key");
  if (by != "key" && by != "value") type_error("You can only sort by either \"key\" or \"value\"");
  if (!v.is_dict()) type_error("dictsort needs a mapping, not " + type_name(v));
  std::vector<Value> pairs;
  for (const auto& [k, x] : v.object().items) pairs.push_back(Value::array({Value::string(k), x}, true));
  const size_t idx = by == "key" ? 0 : 1;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& l, const Value& r) {
    const Value kl = sort_key(l.items()[idx], cs), kr = sort_key(r.items()[idx], cs);
    return rev ? less(kr, kl) : less(kl, kr);
  });
  return Value::array(std::move(pairs));
}

Value map_filter(const Value& v, Args& a) {
  std::vector<Value> out;
  const Value* attr = nullptr;
  const Value* def = nullptr;
  for (auto& [k, x] : a.keyword) {
    if (k == "attribute")
      attr = &x;
    else if (k == "default")
      def = &x;
    else if (a.positional.empty())
      type_error("map() got an unexpected keyword argument '" + k + "'");
  }
  if (attr) {
    if (!attr->is_string()) type_error("map(attribute=...) needs a string");
    for (const Value& x : iterate(v)) {
      Value r = attr_path(x, attr->as_string());
      out.push_back(r.is_undefined() && def ? *def : r);
    }
    return generator(std::move(out));
  }
  if (a.positional.empty() || !a.positional[0].is_string()) type_error("map() needs a filter name or attribute=");
  const std::string f = a.positional[0].as_string();
  if (!filter_known(f)) type_error("no filter named '" + f + "'");
  for (const Value& x : iterate(v)) {
    Args fa;
    fa.positional.assign(a.positional.begin() + 1, a.positional.end());
    fa.keyword = a.keyword;
    out.push_back(call_filter(f, x, fa));
  }
  return generator(std::move(out));
}

}  // namespace

bool filter_known(std::string_view name) { return filter_names().count(std::string(name)) > 0; }
bool test_known(std::string_view name) { return test_names().count(std::string(name)) > 0; }

Value call_filter(const std::string& name, const Value& v, Args& a) {
  if (name == "tojson") return tojson_filter(v, a);
  if (name == "trim") {
    auto p = bind(a, name, {"chars"});
    return Value::string(py_strip(to_str(v), opt_string(p[0]), true, true));
  }
  if (name == "length" || name == "count") {
    no_args(a, name);
    return Value::integer(length_of(v));
  }
  if (name == "string") {
    no_args(a, name);
    return v.is_markup() ? v : Value::string(to_str(v));
  }
  if (name == "lower" || name == "upper" || name == "capitalize" || name == "title") {
    no_args(a, name);
    const std::string s = to_str(v);
    return Value::string(name == "lower"   ? py_lower(s)
                         : name == "upper" ? py_upper(s)
                         : name == "title" ? jinja_title(s)
                                           : py_capitalize(s));
  }
  if (name == "default" || name == "d") {
    auto p = bind(a, name, {"default_value", "boolean"});
    const bool boolean = flag(p[1], false);
    if (v.is_undefined() || (boolean && !truthy(v))) return p[0] ? *p[0] : Value::string("");
    return v;
  }
  if (name == "items") {
    no_args(a, name);
    return items_filter(v);
  }
  if (name == "list") {
    no_args(a, name);
    return Value::array(iterate(v));
  }
  if (name == "join") {
    auto p = bind(a, name, {"d", "attribute"});
    const std::string sep = p[0] ? to_str(*p[0]) : "";
    std::vector<Value> items = iterate(v);
    if (const auto attr = opt_string(p[1]))
      for (auto& x : items) x = attr_path(x, *attr);
    return Value::string(join_strings(items, sep, false));
  }
  if (name == "first") {
    no_args(a, name);
    const std::vector<Value> items = iterate(v);
    return items.empty() ? Value::undefined("No first item, sequence was empty.") : items.front();
  }
  if (name == "last") {
    no_args(a, name);
    if (v.is_array() && v.array().view == "generator") type_error("'generator' object is not reversible");
    const std::vector<Value> items = iterate(v);
    return items.empty() ? Value::undefined("No last item, sequence was empty.") : items.back();
  }
  if (name == "reverse") {
    no_args(a, name);
    if (v.is_string()) {
      std::u32string u = decode_utf8(v.as_string());
      std::reverse(u.begin(), u.end());
      return Value::string(encode_utf8(u));
    }
    std::vector<Value> items = iterate(v);
    std::reverse(items.begin(), items.end());
    return generator(std::move(items));
  }
  if (name == "replace") {
    auto p = bind(a, name, {"old", "new", "count"});
    if (!p[0] || !p[1]) type_error("replace() needs old and new");
    const int64_t count = p[2] && !p[2]->is_none() ? as_index(*p[2], "count") : -1;
    return Value::string(py_replace(to_str(v), to_str(*p[0]), to_str(*p[1]), count));
  }
  if (name == "int") {
    auto p = bind(a, name, {"default", "base"});
    const Value def = p[0] ? *p[0] : Value::integer(0);
    const int base = p[1] ? static_cast<int>(as_index(*p[1], "base")) : 10;
    if (v.is_number()) return Value::integer(v.is_float() ? static_cast<int64_t>(std::trunc(v.as_double())) : v.as_int());
    if (v.is_string()) {
      if (auto i = parse_int(v.as_string(), base)) return Value::integer(*i);
      if (auto d = parse_float(v.as_string()); d && std::isfinite(*d)) return Value::integer(static_cast<int64_t>(std::trunc(*d)));
    }
    return def;
  }
  if (name == "float") {
    auto p = bind(a, name, {"default"});
    if (p[0] && !v.is_number() && !(v.is_string() && parse_float(v.as_string()))) return *p[0];
    return to_float(v, 0.0);
  }
  if (name == "abs") {
    no_args(a, name);
    require_defined(v);
    if (!v.is_number()) type_error("bad operand type for abs(): '" + type_name(v) + "'");
    if (v.is_float()) return Value::number(std::fabs(v.as_double()));
    if (v.as_int() == INT64_MIN) type_error("integer overflow: integers beyond 64 bits are not supported by tandem");
    return Value::integer(std::llabs(v.as_int()));
  }
  if (name == "round") {
    auto p = bind(a, name, {"precision", "method"});
    const int64_t prec = p[0] ? as_index(*p[0], "precision") : 0;
    const std::string method = opt_string(p[1]).value_or("common");
    require_defined(v);
    if (!v.is_number()) type_error("round() needs a number, not " + type_name(v));
    if (method == "common") return py_round(v, prec);
    if (method != "floor" && method != "ceil") type_error("method must be common, ceil or floor");
    const double scale = std::pow(10.0, static_cast<double>(prec));
    const double x = v.as_double() * scale;
    return Value::number((method == "floor" ? std::floor(x) : std::ceil(x)) / scale);
  }
  if (name == "sum") {
    auto p = bind(a, name, {"attribute", "start"});
    Value acc = p[1] ? *p[1] : Value::integer(0);
    const auto attr = opt_string(p[0]);
    for (const Value& x : iterate(v)) acc = binary_op("+", acc, attr ? attr_path(x, *attr) : x);
    return acc;
  }
  if (name == "min" || name == "max") return minmax(v, a, name == "max", name);
  if (name == "sort") return sort_filter(v, a);
  if (name == "dictsort") return dictsort_filter(v, a);
  if (name == "unique") {
    auto p = bind(a, name, {"case_sensitive", "attribute"});
    const bool cs = flag(p[0], false);
    const auto attr = opt_string(p[1]);
    std::vector<Value> out, seen;
    for (const Value& x : iterate(v)) {
      const Value k = sort_key(attr ? attr_path(x, *attr) : x, cs);
      if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return equals(s, k); })) continue;
      seen.push_back(k);
      out.push_back(x);
    }
    return generator(std::move(out));
  }
  if (name == "map") return map_filter(v, a);
  if (name == "select" || name == "reject") return select(v, a, name == "select", false, name);
  if (name == "selectattr" || name == "rejectattr") return select(v, a, name == "selectattr", true, name);
  if (name == "attr") {
    auto p = bind(a, name, {"name"});
    if (!p[0] || !p[0]->is_string()) type_error("attr() needs an attribute name");
    // Python's getattr only: a dict's keys are items, not attributes.
    if (v.is_dict()) {
      const Value m = get_attr(v, p[0]->as_string());
      return m.is_callable() || (m.is_undefined() && m.undefined_message().find("unsafe") != std::string::npos)
                 ? m
                 : no_attribute(v, p[0]->as_string());
    }
    return get_attr(v, p[0]->as_string());
  }
  if (name == "indent") return indent_filter(v, a);
  if (name == "center") {
    auto p = bind(a, name, {"width"});
    return Value::string(pad_center(to_str(v), p[0] ? as_index(*p[0], "width") : 80));
  }
  if (name == "format") {
    if (!a.keyword.empty() && !a.positional.empty()) type_error("format() takes positional or keyword arguments, not both");
    if (!a.keyword.empty()) {
      ObjectData o;
      for (auto& [k, x] : a.keyword) o.set(k, x);
      return Value::string(percent_format(to_str(v), Value::object(std::move(o))));
    }
    return Value::string(percent_format(to_str(v), Value::array(a.positional, true)));
  }
  if (name == "batch") {
    auto p = bind(a, name, {"linecount", "fill_with"});
    if (!p[0]) type_error("batch() needs a line count");
    const int64_t n = as_index(*p[0], "linecount");
    if (n <= 0) type_error("batch(): line count must be positive");
    std::vector<Value> out, cur;
    for (const Value& x : iterate(v)) {
      cur.push_back(x);
      if (static_cast<int64_t>(cur.size()) == n) {
        out.push_back(Value::array(std::move(cur)));
        cur.clear();
      }
    }
    if (!cur.empty()) {
      if (p[1] && !p[1]->is_none())
        while (static_cast<int64_t>(cur.size()) < n) cur.push_back(*p[1]);
      out.push_back(Value::array(std::move(cur)));
    }
    return generator(std::move(out));
  }
  if (name == "slice") {
    auto p = bind(a, name, {"slices", "fill_with"});
    if (!p[0]) type_error("slice() needs the number of slices");
    const int64_t slices = as_index(*p[0], "slices");
    if (slices <= 0) type_error("slice(): the number of slices must be positive");
    const std::vector<Value> seq = iterate(v);
    const auto length = static_cast<int64_t>(seq.size());
    const int64_t per = length / slices, extra = length % slices;
    std::vector<Value> out;
    int64_t offset = 0;
    for (int64_t k = 0; k < slices; ++k) {  // Jinja's do_slice
      const int64_t start = offset + k * per;
      if (k < extra) ++offset;
      const int64_t end = offset + (k + 1) * per;
      std::vector<Value> part(seq.begin() + start, seq.begin() + end);
      if (p[1] && !p[1]->is_none() && k >= extra) part.push_back(*p[1]);
      out.push_back(Value::array(std::move(part)));
    }
    return generator(std::move(out));
  }
  if (name == "safe") {
    no_args(a, name);
    return Value::markup(to_str(v));
  }
  if (name == "e" || name == "escape") {
    no_args(a, name);
    return v.is_markup() ? v : Value::markup(html_escape(to_str(v)));
  }
  type_error("the filter '" + name + "' (a Jinja builtin) is not supported by tandem's Jinja subset");
}

bool call_test(const std::string& name, const Value& v, Args& a) {
  auto one = [&]() -> Value {
    auto p = bind(a, name, {"other"});
    if (!p[0]) type_error("the test '" + name + "' needs an argument");
    return *p[0];
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "string") return v.is_string();
  if (name == "number") return v.is_number();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable") return v.is_undefined() || v.is_string() || v.is_array() || v.is_dict();
  if (name == "sequence")
    return v.is_undefined() || v.is_string() || v.is_dict() || (v.is_array() && v.array().view != "generator");
  if (name == "callable") return v.is_callable();
  if (name == "escaped") return v.is_markup();
  if (name == "lower") return v.is_string() && py_islower(v.as_string());
  if (name == "upper") return v.is_string() && py_isupper(v.as_string());
  if (name == "odd" || name == "even") {
    require_defined(v);
    if (!(v.is_int() || v.is_bool())) type_error("the test '" + name + "' needs an integer, not " + type_name(v));
    return (py_mod(v.as_int(), 2) == 1) == (name == "odd");
  }
  if (name == "divisibleby") {
    const Value d = one();
    return equals(binary_op("%", v, d), Value::integer(0));
  }
  if (name == "eq" || name == "equalto" || name == "==") return equals(v, one());
  if (name == "ne" || name == "!=") return !equals(v, one());
  if (name == "lt" || name == "lessthan" || name == "<") return less(v, one());
  if (name == "gt" || name == "greaterthan" || name == ">") return less(one(), v);
  if (name == "le" || name == "<=") return !less(one(), v);
  if (name == "ge" || name == ">=") return !less(v, one());
  if (name == "in") return contains(one(), v);
  if (name == "filter") return v.is_string() && filter_known(v.as_string());
  if (name == "test") return v.is_string() && test_known(v.as_string());
  if (name == "sameas") {
    const Value o = one();
    if ((v.is_none() || v.is_bool()) || (o.is_none() || o.is_bool()))
      return v.kind() == o.kind() && (v.is_none() || v.as_bool() == o.as_bool());
    if (v.is_array() || v.is_object() || v.is_callable()) return v.same_object(o);
    type_error("'sameas' on " + type_name(v) + " values compares object identity, which tandem does not model");
  }
  type_error("the test '" + name + "' is not supported by tandem's Jinja subset");
}

void add_builtin_globals(ObjectData& g) {
  g.set("range", Value::callable("range", [](Args& a) -> Value {
          if (!a.keyword.empty()) type_error("range() takes no keyword arguments");
          std::vector<int64_t> n;
          for (const Value& x : a.positional) n.push_back(as_index(x, "range() arguments"));
          if (n.empty() || n.size() > 3) type_error("range expected 1 to 3 arguments");
          const int64_t start = n.size() == 1 ? 0 : n[0], stop = n.size() == 1 ? n[0] : n[1],
                        step = n.size() == 3 ? n[2] : 1;
          if (step == 0) type_error("range() arg 3 must not be zero");
          std::vector<Value> out;
          for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
            if (static_cast<int64_t>(out.size()) >= kMaxRange)
              type_error("Range too big. The sandbox blocks ranges larger than MAX_RANGE (100000).");
            out.push_back(Value::integer(i));
          }
          return Value::array(std::move(out), false, "range");
        }));
  g.set("dict", Value::callable("dict", [](Args& a) -> Value {
          ObjectData o;
          for (const Value& x : a.positional) {
            if (!x.is_dict()) type_error("dict() takes mappings and keyword arguments only in tandem");
            for (const auto& [k, v] : x.object().items) o.set(k, v);
          }
          for (auto& [k, v] : a.keyword) o.set(k, v);
          return Value::object(std::move(o));
        }));
  g.set("namespace", Value::callable("namespace", [](Args& a) -> Value {
          ObjectData o;
          o.is_namespace = true;
          for (const Value& x : a.positional) {
            if (!x.is_dict()) type_error("namespace() takes mappings and keyword arguments");
            for (const auto& [k, v] : x.object().items) o.set(k, v);
          }
          for (auto& [k, v] : a.keyword) o.set(k, v);
          return Value::object(std::move(o));
        }));
  for (const char* n : {"cycler", "joiner", "lipsum"}) {
    const std::string name = n;
    g.set(name, Value::callable(name, [name](Args&) -> Value {
            type_error("the global '" + name + "' is not supported by tandem's Jinja subset");
          }));
  }
}

}  // namespace tandem::jinja
