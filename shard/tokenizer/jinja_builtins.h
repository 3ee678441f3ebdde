// Jinja's built-in filters, tests and globals, the str/dict/list methods templates call, and the
// attribute/item/iteration rules of Jinja's sandbox — each as Python and Jinja 3.1 define it.
// Names Jinja knows but tandem does not implement fail when used, naming the filter or method;
// `tojson` is the one transformers installs (json.dumps with ensure_ascii=False, keys unsorted).
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "shard/tokenizer/jinja_value.h"

namespace tandem::jinja {

bool filter_known(std::string_view name);
bool test_known(std::string_view name);
Value call_filter(const std::string& name, const Value& input, Args& args);
bool call_test(const std::string& name, const Value& input, Args& args);

// range, dict, namespace (and cycler/joiner/lipsum, which refuse).
void add_builtin_globals(ObjectData& globals);

// `obj.name`: a bound method of a str/dict/list, a dict key, a namespace attribute, or Undefined.
// Throws when obj is Undefined (Jinja's UndefinedError).
Value get_attr(const Value& obj, const std::string& name);
// `obj[key]`: item first, then (for a string key) attribute; out of range is Undefined.
Value get_item(const Value& obj, const Value& key);
// `obj[start:stop:step]` (null parts absent), Python's slice semantics on lists, tuples and str.
Value get_slice(const Value& obj, const Value* start, const Value* stop, const Value* step);
// What a for loop walks: list items, dict keys, the characters of a string; Undefined is empty.
std::vector<Value> iterate(const Value& v);
// `item in container`, Python's rules (substring for str, key for dict).
bool contains(const Value& container, const Value& item);
// Arithmetic and concatenation operators: + - * / // % ** ~.
Value binary_op(const std::string& op, const Value& a, const Value& b);
Value unary_op(const std::string& op, const Value& a);

}  // namespace tandem::jinja
