// Values of tandem's Jinja subset, with the semantics Python gives them inside Jinja (what
// transformers' renderer does): None, bool, int, float, str, list/tuple, dict, Jinja's namespace
// and Undefined, and callables (macros, globals, bound methods).
#pragma once
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::jinja {

// A failure while lexing, parsing or rendering. `pos` is a byte offset into the template source
// (npos: not known yet; the evaluator fills in the position of the expression it was running).
struct TemplateError : std::runtime_error {
  size_t pos;
  explicit TemplateError(const std::string& message, size_t pos = std::string::npos)
      : std::runtime_error(message), pos(pos) {}
};

// A template called raise_exception(message): reported as the template's own message.
struct RaisedError : TemplateError {
  using TemplateError::TemplateError;
};

class Value;

struct ArrayData {
  std::vector<Value> items;
  bool tuple = false;
  std::string view;  // "" for a list/tuple; "dict_items"/"dict_keys"/"dict_values": what repr() shows
};

// A dict (keys are strings, kept in insertion order as Python's) or a Jinja namespace (the one
// mutable object: `{% set ns.x = ... %}` writes through every copy of the value).
struct ObjectData {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

struct Args {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
};

struct Callable {
  std::string name;  // for messages: "raise_exception", "str.split", "macro 'render_tool'"
  std::function<Value(Args&)> fn;
};

class Value {
 public:
  enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, Array, Object, Callable };

  Value() = default;  // Undefined
  static Value undefined(std::string message);  // message: why ("'x' is undefined")
  static Value none();
  static Value boolean(bool b);
  static Value integer(int64_t i);
  static Value number(double d);
  static Value string(std::string s);
  // A str marked safe (|safe, |escape): Jinja's Markup, which escapes what is added to it.
  static Value markup(std::string s);
  static Value array(std::vector<Value> items, bool tuple = false, std::string view = "");
  static Value object(ObjectData o);
  static Value callable(std::string name, std::function<Value(Args&)> fn);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::Undefined; }
  bool is_none() const { return kind_ == Kind::None; }
  bool is_bool() const { return kind_ == Kind::Bool; }
  bool is_int() const { return kind_ == Kind::Int; }
  bool is_float() const { return kind_ == Kind::Float; }
  bool is_number() const { return kind_ == Kind::Int || kind_ == Kind::Float || kind_ == Kind::Bool; }
  bool is_string() const { return kind_ == Kind::String; }
  bool is_markup() const { return kind_ == Kind::String && markup_; }
  bool is_array() const { return kind_ == Kind::Array; }
  bool is_object() const { return kind_ == Kind::Object; }
  bool is_dict() const { return kind_ == Kind::Object && !obj_->is_namespace; }
  bool is_namespace() const { return kind_ == Kind::Object && obj_->is_namespace; }
  bool is_callable() const { return kind_ == Kind::Callable; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return kind_ == Kind::Bool ? int64_t(b_) : i_; }  // bool is an int, as in Python
  double as_double() const { return kind_ == Kind::Float ? f_ : double(as_int()); }
  const std::string& as_string() const { return s_; }
  const std::string& undefined_message() const { return s_; }
  const ArrayData& array() const { return *arr_; }
  const std::vector<Value>& items() const { return arr_->items; }
  const ObjectData& object() const { return *obj_; }
  ObjectData& namespace_data() const { return *obj_; }  // only for namespaces
  const Callable& callable() const { return *fn_; }
  bool same_object(const Value& o) const;  // identity of containers (Jinja's `sameas`)

 private:
  Kind kind_ = Kind::Undefined;
  bool b_ = false;
  bool markup_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<const ArrayData> arr_;
  std::shared_ptr<ObjectData> obj_;
  std::shared_ptr<const Callable> fn_;
};

// JSON (messages, tools, variables) -> values; objects keep their key order.
Value from_json(const nlohmann::ordered_json& j);

// Python's type name, for messages ("str", "int", "NoneType", "dict", ...).
std::string type_name(const Value& v);
// Python's str() and repr() (what `{{ x }}` prints: None -> "None", lists as ['a', 1]).
std::string to_str(const Value& v);
std::string to_repr(const Value& v);
std::string format_float(double d);  // Python's repr of a float: 1.0, 0.1, 1e-05, 1e+16
// Python's truth value; Undefined is false.
bool truthy(const Value& v);
// Python's == (numbers across int/float/bool, containers by value, str never equals bool).
bool equals(const Value& a, const Value& b);
// Python's <: numbers, strings, lists; anything else throws TemplateError.
bool less(const Value& a, const Value& b);

// json.dumps(v, ensure_ascii, indent, separators, sort_keys) as transformers' tojson filter calls it.
struct JsonStyle {
  bool ensure_ascii = false;
  bool indent = false;      // indent_text is used when set (Python's indent=0 still breaks lines)
  std::string indent_text;
  std::string item_sep, key_sep;  // empty: Python's defaults (", " or "," with indent; ": ")
  bool custom_separators = false;
  bool sort_keys = false;
};
std::string to_json(const Value& v, const JsonStyle& style);

}  // namespace tandem::jinja
