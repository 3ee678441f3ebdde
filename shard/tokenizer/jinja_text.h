// Python's str operations on UTF-8 text, by code point as Python counts them (len, indexing,
// slicing, strip/split/case). Invalid UTF-8 bytes survive a round trip (Python's surrogateescape).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tandem::jinja {

std::u32string decode_utf8(std::string_view s);
std::string encode_utf8(std::u32string_view s);
size_t codepoint_count(std::string_view s);

bool py_isspace(char32_t c);
// str.isprintable() of one code point: Python's separators and format characters are not, glibc's
// tables decide the rest (what repr() escapes).
bool py_isprintable(char32_t c);  // str.isspace(): Unicode White_Space plus the separators Python adds
// str.strip/lstrip/rstrip(chars): chars absent strips whitespace.
std::string py_strip(std::string_view s, const std::optional<std::string>& chars, bool left, bool right);
// str.split(sep, maxsplit) / str.rsplit: sep absent splits on whitespace runs and drops empties.
std::vector<std::string> py_split(std::string_view s, const std::optional<std::string>& sep, int64_t maxsplit,
                                  bool from_right = false);
std::vector<std::string> py_splitlines(std::string_view s, bool keepends = false);
std::string py_replace(std::string_view s, std::string_view from, std::string_view to, int64_t count = -1);
int64_t py_count(std::string_view s, std::string_view sub);
int64_t py_find(std::string_view s, std::string_view sub, bool from_right = false);  // in code points

std::string py_upper(std::string_view s);
std::string py_lower(std::string_view s);
std::string py_capitalize(std::string_view s);  // str.capitalize()
std::string py_title(std::string_view s);       // str.title()
std::string jinja_title(std::string_view s);    // the |title filter (words split at whitespace, - ( { [ <)
bool py_islower(std::string_view s);
bool py_isupper(std::string_view s);

}  // namespace tandem::jinja
