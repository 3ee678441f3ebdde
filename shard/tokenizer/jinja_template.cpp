// The evaluator: statements and expressions over Values, with Jinja's scoping (each for-loop
// iteration and each macro call gets its own frame; if/elif and the template top level do not).
#include "shard/tokenizer/jinja_template.h"

#include <fmt/format.h>

#include "shard/tokenizer/jinja_ast.h"
#include "shard/tokenizer/jinja_builtins.h"
#include "shard/tokenizer/jinja_lexer.h"
#include "shard/tokenizer/jinja_parser.h"
#include "shard/tokenizer/jinja_text.h"

namespace tandem::jinja {
namespace {

struct Frame {
  std::vector<std::pair<std::string, Value>> vars;
  std::shared_ptr<Frame> parent;

  const Value* find(const std::string& name) const {
    for (const Frame* f = this; f; f = f->parent.get())
      for (const auto& [k, v] : f->vars)
        if (k == name) return &v;
    return nullptr;
  }
  void set(const std::string& name, Value v) {
    for (auto& [k, old] : vars)
      if (k == name) {
        old = std::move(v);
        return;
      }
    vars.emplace_back(name, std::move(v));
  }
};
using FramePtr = std::shared_ptr<Frame>;

FramePtr child(const FramePtr& parent) {
  auto f = std::make_shared<Frame>();
  f->parent = parent;
  return f;
}

class Renderer {
 public:
  explicit Renderer(const RenderLimits& lim) : lim_(lim) {}

  enum class Flow { Normal, Break, Continue };

  Flow exec_body(const Body& body, const FramePtr& f, std::string& out) {
    for (const Stmt& s : body) {
      const Flow fl = exec(s, f, out);
      if (fl != Flow::Normal) return fl;
    }
    return Flow::Normal;
  }

 private:
  void emit(std::string& out, std::string_view s) {
    out.append(s);
    if (out.size() > lim_.max_output)
      throw TemplateError(fmt::format("the rendered text exceeds {} bytes", lim_.max_output));
  }

  void step() {
    if (++steps_ > lim_.max_steps)
      throw TemplateError(fmt::format("the template ran more than {} loop iterations and macro calls", lim_.max_steps));
  }

  Flow exec(const Stmt& s, const FramePtr& f, std::string& out) {
    try {
      return exec_inner(s, f, out);
    } catch (TemplateError& e) {
      if (e.pos == std::string::npos) e.pos = s.pos;
      throw;
    }
  }

  Flow exec_inner(const Stmt& s, const FramePtr& f, std::string& out) {
    switch (s.kind) {
      case Stmt::Kind::Text: emit(out, s.text); return Flow::Normal;
      case Stmt::Kind::Output: emit(out, to_str(eval(*s.expr, f))); return Flow::Normal;
      case Stmt::Kind::If:
        for (const auto& [test, body] : s.branches)
          if (!test || truthy(eval(*test, f))) return exec_body(body, f, out);
        return Flow::Normal;
      case Stmt::Kind::For: return exec_for(s, f, out);
      case Stmt::Kind::Set: assign(*s.target, eval(*s.expr, f), f); return Flow::Normal;
      case Stmt::Kind::SetBlock: {
        std::string text;
        exec_body(s.body, child(f), text);
        Value v = Value::string(std::move(text));
        if (s.expr) v = eval_filter(*s.expr, f, &v);
        f->set(s.name, std::move(v));
        return Flow::Normal;
      }
      case Stmt::Kind::Macro: {
        const Stmt* def = &s;
        std::weak_ptr<Frame> closure = f;  // weak: the frame holds the macro, the macro must not hold the frame
        Renderer* self = this;
        f->set(s.name, Value::callable("macro '" + s.name + "'",
                                       [def, closure, self](Args& a) { return self->call_macro(*def, closure, a); }));
        return Flow::Normal;
      }
      case Stmt::Kind::FilterBlock: {
        std::string text;
        exec_body(s.body, child(f), text);
        const Value v = Value::string(std::move(text));
        emit(out, to_str(eval_filter(*s.expr, f, &v)));
        return Flow::Normal;
      }
      case Stmt::Kind::With: {
        FramePtr w = child(f);
        for (const auto& [name, e] : s.params) w->set(name, eval(*e, f));
        exec_body(s.body, w, out);
        return Flow::Normal;
      }
      case Stmt::Kind::Scope: return exec_body(s.body, f, out);
      case Stmt::Kind::Break: return Flow::Break;
      case Stmt::Kind::Continue: return Flow::Continue;
    }
    return Flow::Normal;
  }

  Flow exec_for(const Stmt& s, const FramePtr& f, std::string& out) {
    const Value seq = eval(*s.expr, f);
    std::vector<Value> items = iterate(seq);
    if (s.cond) {  // `for x in xs if cond`: loop.* counts the items that pass
      std::vector<Value> kept;
      for (Value& item : items) {
        step();
        FramePtr probe = child(f);
        assign(*s.target, item, probe);
        if (truthy(eval(*s.cond, probe))) kept.push_back(std::move(item));
      }
      items = std::move(kept);
    }
    if (items.empty()) {
      exec_body(s.else_body, child(f), out);
      return Flow::Normal;
    }
    const auto n = static_cast<int64_t>(items.size());
    // The functions of `loop` are made once per loop; cycle() reads the current index.
    auto index = std::make_shared<int64_t>(0);
    const Value cycle = Value::callable("loop.cycle", [index](Args& a) -> Value {
      if (a.positional.empty()) throw TemplateError("no items for cycling given");
      return a.positional[static_cast<size_t>(*index) % a.positional.size()];
    });
    const Value changed = Value::callable("loop.changed", [](Args&) -> Value {
      throw TemplateError("loop.changed() is not supported by tandem's Jinja subset");
    });
    for (int64_t i = 0; i < n; ++i) {
      step();
      *index = i;
      FramePtr it = child(f);
      assign(*s.target, items[static_cast<size_t>(i)], it);
      ObjectData loop;
      loop.items.reserve(13);
      loop.items.emplace_back("index", Value::integer(i + 1));
      loop.items.emplace_back("index0", Value::integer(i));
      loop.items.emplace_back("revindex", Value::integer(n - i));
      loop.items.emplace_back("revindex0", Value::integer(n - i - 1));
      loop.items.emplace_back("first", Value::boolean(i == 0));
      loop.items.emplace_back("last", Value::boolean(i == n - 1));
      loop.items.emplace_back("length", Value::integer(n));
      loop.items.emplace_back("depth", Value::integer(1));
      loop.items.emplace_back("depth0", Value::integer(0));
      loop.items.emplace_back("previtem",
                              i > 0 ? items[static_cast<size_t>(i - 1)] : Value::undefined("there is no previous item"));
      loop.items.emplace_back("nextitem",
                              i + 1 < n ? items[static_cast<size_t>(i + 1)] : Value::undefined("there is no next item"));
      loop.items.emplace_back("cycle", cycle);
      loop.items.emplace_back("changed", changed);
      it->set("loop", Value::object(std::move(loop)));
      const Flow fl = exec_body(s.body, it, out);
      if (fl == Flow::Break) break;
    }
    return Flow::Normal;
  }

  void assign(const Expr& target, Value v, const FramePtr& f) {
    switch (target.kind) {
      case Expr::Kind::Name: f->set(target.name, std::move(v)); return;
      case Expr::Kind::Tuple: {
        const std::vector<Value> parts = iterate(v);
        const size_t want = target.args.size();
        if (parts.size() > want) throw TemplateError(fmt::format("too many values to unpack (expected {})", want));
        if (parts.size() < want)
          throw TemplateError(fmt::format("not enough values to unpack (expected {}, got {})", want, parts.size()));
        for (size_t i = 0; i < want; ++i) assign(*target.args[i], parts[i], f);
        return;
      }
      case Expr::Kind::GetAttr: {  // {% set ns.attr = v %}
        const std::string& ns_name = target.args[0]->name;
        const Value* ns = f->find(ns_name);
        if (!ns || !ns->is_namespace())
          throw TemplateError("cannot assign attribute on non-namespace object '" + ns_name + "'", target.pos);
        ns->namespace_data().set(target.name, std::move(v));
        return;
      }
      default: throw TemplateError("cannot assign to this expression", target.pos);
    }
  }

  Value call_macro(const Stmt& def, const std::weak_ptr<Frame>& closure, Args& a) {
    FramePtr scope = closure.lock();
    if (!scope) throw TemplateError("macro '" + def.name + "' called after the scope that defined it ended");
    if (++depth_ > lim_.max_call_depth) {
      --depth_;
      throw TemplateError(fmt::format("macro calls nested deeper than {}", lim_.max_call_depth));
    }
    struct Unwind {
      int& d;
      ~Unwind() { --d; }
    } unwind{depth_};
    step();
    if (a.positional.size() > def.params.size())
      throw TemplateError(fmt::format("macro '{}' takes not more than {} argument(s)", def.name, def.params.size()));
    for (const auto& [k, v] : a.keyword) {
      bool known = false;
      for (const auto& p : def.params) known = known || p.first == k;
      if (!known) throw TemplateError("macro '" + def.name + "' takes no keyword argument '" + k + "'");
    }
    FramePtr mf = child(scope);
    for (size_t i = 0; i < def.params.size(); ++i) {
      const auto& [pname, pdef] = def.params[i];
      const Value* given = i < a.positional.size() ? &a.positional[i] : nullptr;
      for (const auto& [k, v] : a.keyword)
        if (k == pname) {
          if (given) throw TemplateError("macro '" + def.name + "' got multiple values for argument '" + pname + "'");
          given = &v;
        }
      mf->set(pname, given ? *given : pdef ? eval(*pdef, mf) : Value::undefined("parameter '" + pname + "' was not provided"));
    }
    std::string out;
    exec_body(def.body, mf, out);
    return Value::string(std::move(out));
  }

  Args eval_args(const Expr& e, const FramePtr& f, size_t first) {
    Args a;
    for (size_t i = first; i < e.args.size(); ++i) a.positional.push_back(eval(*e.args[i], f));
    for (const auto& [k, v] : e.kwargs) a.keyword.emplace_back(k, eval(*v, f));
    return a;
  }

  // A filter chain; `input` replaces the innermost (null) operand of a {% filter %} / block set.
  Value eval_filter(const Expr& e, const FramePtr& f, const Value* input) {
    try {
      Value operand = !e.args[0] ? *input
                      : e.args[0]->kind == Expr::Kind::Filter && input ? eval_filter(*e.args[0], f, input)
                                                                        : eval(*e.args[0], f);
      Args a = eval_args(e, f, 1);
      return call_filter(e.name, operand, a);
    } catch (TemplateError& err) {
      if (err.pos == std::string::npos) err.pos = e.pos;
      throw;
    }
  }

  Value eval(const Expr& e, const FramePtr& f) {
    try {
      return eval_inner(e, f);
    } catch (TemplateError& err) {
      if (err.pos == std::string::npos) err.pos = e.pos;
      throw;
    }
  }

  Value eval_inner(const Expr& e, const FramePtr& f) {
    switch (e.kind) {
      case Expr::Kind::Literal: return e.value;
      case Expr::Kind::Name: {
        const Value* v = f->find(e.name);
        return v ? *v : Value::undefined("'" + e.name + "' is undefined");
      }
      case Expr::Kind::List:
      case Expr::Kind::Tuple: {
        std::vector<Value> items;
        for (const auto& x : e.args) items.push_back(eval(*x, f));
        return Value::array(std::move(items), e.kind == Expr::Kind::Tuple);
      }
      case Expr::Kind::Dict: {
        ObjectData o;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          const Value k = eval(*e.args[i], f);
          if (!k.is_string())
            throw TemplateError("dict keys other than strings are not supported by tandem's Jinja subset", e.args[i]->pos);
          o.set(k.as_string(), eval(*e.args[i + 1], f));
        }
        return Value::object(std::move(o));
      }
      case Expr::Kind::GetAttr: return get_attr(eval(*e.args[0], f), e.name);
      case Expr::Kind::GetItem: {
        const Value obj = eval(*e.args[0], f);
        const Expr& key = *e.args[1];
        if (key.kind == Expr::Kind::Slice) {
          Value parts[3];
          const Value* p[3] = {nullptr, nullptr, nullptr};
          for (int i = 0; i < 3; ++i)
            if (key.args[static_cast<size_t>(i)]) {
              parts[i] = eval(*key.args[static_cast<size_t>(i)], f);
              p[i] = &parts[i];
            }
          return get_slice(obj, p[0], p[1], p[2]);
        }
        return get_item(obj, eval(key, f));
      }
      case Expr::Kind::Slice: throw TemplateError("a slice outside of [ ]");
      case Expr::Kind::Call: {
        const Value callee = eval(*e.args[0], f);
        if (callee.is_undefined()) throw TemplateError(callee.undefined_message());
        if (!callee.is_callable()) throw TemplateError("'" + type_name(callee) + "' object is not callable");
        Args a = eval_args(e, f, 1);
        return callee.callable().fn(a);
      }
      case Expr::Kind::Filter: return eval_filter(e, f, nullptr);
      case Expr::Kind::Test: {
        const Value v = eval(*e.args[0], f);
        Args a = eval_args(e, f, 1);
        return Value::boolean(call_test(e.name, v, a));
      }
      case Expr::Kind::Unary: {
        const Value v = eval(*e.args[0], f);
        if (e.name == "not") return Value::boolean(!truthy(v));
        return unary_op(e.name, v);
      }
      case Expr::Kind::Binary: {
        if (e.name == "and" || e.name == "or") {  // Python: the deciding operand, not a bool
          Value l = eval(*e.args[0], f);
          if (truthy(l) == (e.name == "or")) return l;
          return eval(*e.args[1], f);
        }
        const Value l = eval(*e.args[0], f);
        const Value r = eval(*e.args[1], f);
        return binary_op(e.name, l, r);
      }
      case Expr::Kind::Compare: {
        Value l = eval(*e.args[0], f);
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value r = eval(*e.args[i + 1], f);
          const std::string& op = e.ops[i];
          bool ok;
          if (op == "==")
            ok = equals(l, r);
          else if (op == "!=")
            ok = !equals(l, r);
          else if (op == "<")
            ok = less(l, r);
          else if (op == ">")
            ok = less(r, l);
          else if (op == "<=")
            ok = !less(r, l);
          else if (op == ">=")
            ok = !less(l, r);
          else if (op == "in")
            ok = contains(r, l);
          else
            ok = !contains(r, l);
          if (!ok) return Value::boolean(false);
          l = std::move(r);
        }
        return Value::boolean(true);
      }
      case Expr::Kind::CondExpr:
        if (truthy(eval(*e.args[1], f))) return eval(*e.args[0], f);
        if (e.args[2]) return eval(*e.args[2], f);
        return Value::undefined("the inline if-expression evaluated to false and no else section was defined");
    }
    return Value();
  }

  const RenderLimits& lim_;
  int64_t steps_ = 0;
  int depth_ = 0;
};

// "(line 3, column 7)" of a byte offset in the normalised source.
std::string where(const std::string& source, size_t pos) {
  if (pos == std::string::npos || pos > source.size()) return "";
  size_t line = 1, line_start = 0;
  for (size_t i = 0; i < pos; ++i)
    if (source[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  const size_t col = codepoint_count(std::string_view(source).substr(line_start, pos - line_start)) + 1;
  return fmt::format(" (line {}, column {})", line, col);
}

}  // namespace

Result<Template> Template::parse(std::string_view source) {
  try {
    Template t;
    t.program_ = std::make_shared<const Program>(parse_program(source));
    return t;
  } catch (const TemplateError& e) {
    return make_error(ErrorCode::InvalidArgument, "{}{}", e.what(), where(normalize_source(source), e.pos));
  }
}

Result<std::string> Template::render(const ObjectData& variables, const RenderLimits& limits) const {
  if (!program_) return make_error(ErrorCode::Internal, "rendering an empty Template");
  try {
    auto globals = std::make_shared<Frame>();
    ObjectData builtins;
    add_builtin_globals(builtins);
    for (auto& [k, v] : builtins.items) globals->set(k, v);
    for (const auto& [k, v] : variables.items) globals->set(k, v);
    FramePtr top = child(globals);
    std::string out;
    Renderer(limits).exec_body(program_->body, top, out);
    return out;
  } catch (const RaisedError& e) {
    return make_error(ErrorCode::InvalidArgument, "the template raised an error: {}{}", e.what(),
                      where(program_->source, e.pos));
  } catch (const TemplateError& e) {
    return make_error(ErrorCode::InvalidArgument, "{}{}", e.what(), where(program_->source, e.pos));
  }
}

}  // namespace tandem::jinja
