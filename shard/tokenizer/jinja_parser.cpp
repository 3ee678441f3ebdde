#include "shard/tokenizer/jinja_parser.h"

#include <set>

#include "shard/tokenizer/jinja_builtins.h"
#include "shard/tokenizer/jinja_lexer.h"

namespace tandem::jinja {
namespace {

using K = Token::Kind;

std::shared_ptr<Expr> node(Expr::Kind k, size_t pos) {
  auto e = std::make_shared<Expr>();
  e->kind = k;
  e->pos = pos;
  return e;
}

Stmt stmt(Stmt::Kind k, size_t pos) {
  Stmt s;
  s.kind = k;
  s.pos = pos;
  return s;
}

std::string describe(const Token& t) {
  switch (t.kind) {
    case K::Text: return "template text";
    case K::VarBegin: return "'{{'";
    case K::VarEnd: return "end of print statement '}}'";
    case K::BlockBegin: return "'{%'";
    case K::BlockEnd: return "end of statement block '%}'";
    case K::String: return "string literal";
    case K::End: return "end of template";
    default: return "'" + t.text + "'";
  }
}

class Parser {
 public:
  explicit Parser(const std::vector<Token>& t) : t_(t) {}

  Body parse_template() {
    Body b = subparse({}, 0, "");
    return b;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& look(size_t n = 1) const { return t_[std::min(i_ + n, t_.size() - 1)]; }
  bool is_op(const char* op) const { return cur().kind == K::Op && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == K::Name && cur().text == n; }
  [[noreturn]] void fail(const std::string& msg) const { throw TemplateError(msg, cur().pos); }

  void expect_op(const char* op) {
    if (!is_op(op)) fail(std::string("expected '") + op + "', got " + describe(cur()));
    ++i_;
  }
  void expect_block_end() {
    if (cur().kind != K::BlockEnd) fail("expected end of statement block '%}', got " + describe(cur()));
    ++i_;
  }
  std::string expect_name() {
    if (cur().kind != K::Name) fail("expected a name, got " + describe(cur()));
    return t_[i_++].text;
  }

  // Statements up to one of `ends` (a {% tag %} whose name is in the set); stops on that name token.
  Body subparse(const std::set<std::string>& ends, size_t open_pos, const std::string& open_tag) {
    Body body;
    while (cur().kind != K::End) {
      const Token& tk = cur();
      if (tk.kind == K::Text) {
        Stmt s = stmt(Stmt::Kind::Text, tk.pos);
        s.text = tk.text;
        body.push_back(std::move(s));
        ++i_;
      } else if (tk.kind == K::VarBegin) {
        ++i_;
        Stmt s = stmt(Stmt::Kind::Output, tk.pos);
        s.expr = parse_tuple(true, false, {});
        if (cur().kind != K::VarEnd) fail("expected end of print statement '}}', got " + describe(cur()));
        ++i_;
        body.push_back(std::move(s));
      } else if (tk.kind == K::BlockBegin) {
        ++i_;
        if (cur().kind != K::Name) fail("expected a tag name after '{%', got " + describe(cur()));
        if (ends.count(cur().text)) return body;
        body.push_back(statement());
      } else {
        fail("unexpected " + describe(tk));
      }
    }
    if (!ends.empty()) {
      std::string want;
      for (const auto& e : ends) want += (want.empty() ? "'" : " or '") + e + "'";
      throw TemplateError("unexpected end of template: the {% " + open_tag + " %} opened here needs " + want, open_pos);
    }
    return body;
  }

  // Nesting of expressions and tags, bounded so that a hostile template cannot exhaust the stack.
  struct Nest {
    Parser& p;
    Nest(Parser& parser, size_t pos) : p(parser) {
      if (++p.depth_ > kMaxNesting) {
        --p.depth_;
        throw TemplateError("the template nests expressions or tags deeper than " + std::to_string(kMaxNesting), pos);
      }
    }
    ~Nest() { --p.depth_; }
  };
  static constexpr int kMaxNesting = 300;

  Stmt statement() {
    Nest nest(*this, cur().pos);
    const Token& tag = cur();
    const std::string name = tag.text;
    const size_t pos = tag.pos;
    ++i_;
    if (name == "if") return if_stmt(pos);
    if (name == "for") return for_stmt(pos);
    if (name == "set") return set_stmt(pos);
    if (name == "macro") return macro_stmt(pos);
    if (name == "filter") {
      Stmt s = stmt(Stmt::Kind::FilterBlock, pos);
      s.expr = parse_filter(nullptr, true);
      expect_block_end();
      s.body = subparse({"endfilter"}, pos, "filter");
      ++i_;
      expect_block_end();
      return s;
    }
    if (name == "with") {
      Stmt s = stmt(Stmt::Kind::With, pos);
      while (cur().kind != K::BlockEnd) {
        if (!s.params.empty()) expect_op(",");
        const std::string var = expect_name();
        expect_op("=");
        s.params.emplace_back(var, parse_expression(true));
      }
      expect_block_end();
      s.body = subparse({"endwith"}, pos, "with");
      ++i_;
      expect_block_end();
      return s;
    }
    if (name == "generation") {  // transformers' AssistantTracker tag: the body renders as written
      Stmt s = stmt(Stmt::Kind::Scope, pos);
      expect_block_end();
      s.body = subparse({"endgeneration"}, pos, "generation");
      ++i_;
      expect_block_end();
      return s;
    }
    if (name == "break" || name == "continue") {
      if (loop_depth_ == 0) throw TemplateError("{% " + name + " %} outside of a loop", pos);
      Stmt s = stmt(name == "break" ? Stmt::Kind::Break : Stmt::Kind::Continue, pos);
      expect_block_end();
      return s;
    }
    static const std::set<std::string> kUnsupported = {"call", "include", "import", "from", "extends", "block",
                                                       "autoescape", "raw", "do", "trans", "pluralize"};
    if (kUnsupported.count(name))
      throw TemplateError("the {% " + name + " %} tag is not supported by tandem's Jinja subset", pos);
    throw TemplateError("unknown tag '" + name + "'", pos);
  }

  Stmt if_stmt(size_t pos) {
    Stmt s = stmt(Stmt::Kind::If, pos);
    ExprPtr test = parse_tuple(false, false, {});
    expect_block_end();
    while (true) {
      Body b = subparse({"elif", "else", "endif"}, pos, "if");
      s.branches.emplace_back(test, std::move(b));
      const std::string tag = cur().text;
      ++i_;
      if (tag == "elif") {
        test = parse_tuple(false, false, {});
        expect_block_end();
        continue;
      }
      if (tag == "else") {
        expect_block_end();
        Body e = subparse({"endif"}, pos, "if");
        s.branches.emplace_back(nullptr, std::move(e));
        ++i_;
      }
      expect_block_end();
      return s;
    }
  }

  Stmt for_stmt(size_t pos) {
    Stmt s = stmt(Stmt::Kind::For, pos);
    s.target = assign_target({"in"}, false);
    if (!is_name("in")) fail("expected 'in' in the for loop, got " + describe(cur()));
    ++i_;
    s.expr = parse_tuple(false, false, {"recursive"});
    if (is_name("if")) {
      ++i_;
      s.cond = parse_expression(true);
    }
    if (is_name("recursive")) fail("recursive for loops are not supported by tandem's Jinja subset");
    expect_block_end();
    ++loop_depth_;
    s.body = subparse({"endfor", "else"}, pos, "for");
    --loop_depth_;
    if (cur().text == "else") {
      ++i_;
      expect_block_end();
      s.else_body = subparse({"endfor"}, pos, "for");
    }
    ++i_;
    expect_block_end();
    return s;
  }

  Stmt set_stmt(size_t pos) {
    ExprPtr target = assign_target({}, true);
    if (is_op("=")) {
      ++i_;
      Stmt s = stmt(Stmt::Kind::Set, pos);
      s.target = target;
      s.expr = parse_tuple(true, false, {});
      expect_block_end();
      return s;
    }
    if (target->kind != Expr::Kind::Name) fail("a block {% set %} assigns a plain name");
    Stmt s = stmt(Stmt::Kind::SetBlock, pos);
    s.name = target->name;
    if (is_op("|")) s.expr = parse_filter(nullptr, false);
    expect_block_end();
    s.body = subparse({"endset"}, pos, "set");
    ++i_;
    expect_block_end();
    return s;
  }

  Stmt macro_stmt(size_t pos) {
    Stmt s = stmt(Stmt::Kind::Macro, pos);
    s.name = expect_name();
    expect_op("(");
    while (!is_op(")")) {
      if (!s.params.empty()) expect_op(",");
      if (is_op(")")) break;
      const std::string p = expect_name();
      ExprPtr def;
      if (is_op("=")) {
        ++i_;
        def = parse_expression(true);
      }
      s.params.emplace_back(p, def);
    }
    ++i_;
    expect_block_end();
    const int saved = loop_depth_;
    loop_depth_ = 0;  // a macro body is a function: break/continue cannot reach an outer loop
    s.body = subparse({"endmacro"}, pos, "macro");
    loop_depth_ = saved;
    ++i_;
    expect_block_end();
    return s;
  }

  // A name, a tuple of names, or (for set) namespace.attribute.
  ExprPtr assign_target(const std::set<std::string>& extra_end, bool with_namespace) {
    if (with_namespace && cur().kind == K::Name && look().kind == K::Op && look().text == ".") {
      auto e = node(Expr::Kind::GetAttr, cur().pos);
      auto ns = node(Expr::Kind::Name, cur().pos);
      ns->name = expect_name();
      ++i_;
      e->name = expect_name();
      e->args.push_back(ns);
      return e;
    }
    const size_t pos = cur().pos;
    std::vector<ExprPtr> names;
    bool tuple = false;
    while (true) {
      if (!names.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      if (cur().kind != K::Name) fail("cannot assign to " + describe(cur()));
      auto n = node(Expr::Kind::Name, cur().pos);
      n->name = expect_name();
      names.push_back(n);
      if (is_op(","))
        tuple = true;
      else
        break;
    }
    if (names.empty()) fail("expected an assignment target, got " + describe(cur()));
    if (!tuple) return names[0];
    auto t = node(Expr::Kind::Tuple, pos);
    t->args = std::move(names);
    return t;
  }

  bool tuple_end(const std::set<std::string>& extra_end) const {
    if (cur().kind == K::VarEnd || cur().kind == K::BlockEnd || is_op(")")) return true;
    return cur().kind == K::Name && extra_end.count(cur().text);
  }

  ExprPtr parse_tuple(bool with_condexpr, bool explicit_parens, const std::set<std::string>& extra_end) {
    const size_t pos = cur().pos;
    std::vector<ExprPtr> args;
    bool is_tuple = false;
    while (true) {
      if (!args.empty()) expect_op(",");
      if (tuple_end(extra_end)) break;
      args.push_back(parse_expression(with_condexpr));
      if (is_op(","))
        is_tuple = true;
      else
        break;
    }
    if (!is_tuple) {
      if (!args.empty()) return args[0];
      if (!explicit_parens) fail("expected an expression, got " + describe(cur()));
    }
    auto t = node(Expr::Kind::Tuple, pos);
    t->args = std::move(args);
    return t;
  }

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    Nest nest(*this, cur().pos);
    ExprPtr e = parse_or();
    while (is_name("if")) {
      const size_t pos = cur().pos;
      ++i_;
      ExprPtr test = parse_or();
      ExprPtr other;
      if (is_name("else")) {
        ++i_;
        other = parse_condexpr();
      }
      auto c = node(Expr::Kind::CondExpr, pos);
      c->args = {e, test, other};
      e = c;
    }
    return e;
  }

  ExprPtr binary(const char* op, ExprPtr l, ExprPtr r, size_t pos) {
    auto b = node(Expr::Kind::Binary, pos);
    b->name = op;
    b->args = {std::move(l), std::move(r)};
    return b;
  }

  ExprPtr parse_or() {
    ExprPtr l = parse_and();
    while (is_name("or")) {
      const size_t pos = cur().pos;
      ++i_;
      l = binary("or", l, parse_and(), pos);
    }
    return l;
  }

  ExprPtr parse_and() {
    ExprPtr l = parse_not();
    while (is_name("and")) {
      const size_t pos = cur().pos;
      ++i_;
      l = binary("and", l, parse_not(), pos);
    }
    return l;
  }

  ExprPtr parse_not() {
    Nest nest(*this, cur().pos);
    if (is_name("not")) {
      auto n = node(Expr::Kind::Unary, cur().pos);
      ++i_;
      n->name = "not";
      n->args.push_back(parse_not());
      return n;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const size_t pos = cur().pos;
    ExprPtr first = parse_math1();
    auto c = node(Expr::Kind::Compare, pos);
    c->args.push_back(first);
    while (true) {
      if (cur().kind == K::Op && (cur().text == "==" || cur().text == "!=" || cur().text == "<" ||
                                  cur().text == "<=" || cur().text == ">" || cur().text == ">=")) {
        c->ops.push_back(cur().text);
        ++i_;
      } else if (is_name("in")) {
        c->ops.push_back("in");
        ++i_;
      } else if (is_name("not") && look().kind == K::Name && look().text == "in") {
        c->ops.push_back("notin");
        i_ += 2;
      } else {
        break;
      }
      c->args.push_back(parse_math1());
    }
    return c->ops.empty() ? first : c;
  }

  ExprPtr parse_math1() {
    ExprPtr l = parse_concat();
    while (is_op("+") || is_op("-")) {
      const std::string op = cur().text;
      const size_t pos = cur().pos;
      ++i_;
      l = binary(op == "+" ? "+" : "-", l, parse_concat(), pos);
    }
    return l;
  }

  ExprPtr parse_concat() {
    ExprPtr l = parse_math2();
    while (is_op("~")) {
      const size_t pos = cur().pos;
      ++i_;
      l = binary("~", l, parse_math2(), pos);
    }
    return l;
  }

  ExprPtr parse_math2() {
    ExprPtr l = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const std::string op = cur().text;
      const size_t pos = cur().pos;
      ++i_;
      auto b = node(Expr::Kind::Binary, pos);
      b->name = op;
      b->args = {l, parse_pow()};
      l = b;
    }
    return l;
  }

  ExprPtr parse_pow() {
    ExprPtr l = parse_unary(true);
    while (is_op("**")) {
      const size_t pos = cur().pos;
      ++i_;
      l = binary("**", l, parse_unary(true), pos);
    }
    return l;
  }

  ExprPtr parse_unary(bool with_filter) {
    Nest nest(*this, cur().pos);
    ExprPtr n;
    if (is_op("-") || is_op("+")) {
      auto u = node(Expr::Kind::Unary, cur().pos);
      u->name = cur().text;
      ++i_;
      u->args.push_back(parse_unary(false));
      n = u;
    } else {
      n = parse_primary();
    }
    n = parse_postfix(n);
    if (with_filter) n = parse_filter_expr(n);
    return n;
  }

  ExprPtr parse_primary() {
    const Token& tk = cur();
    switch (tk.kind) {
      case K::Name: {
        ++i_;
        auto lit = node(Expr::Kind::Literal, tk.pos);
        if (tk.text == "true" || tk.text == "True") {
          lit->value = Value::boolean(true);
          return lit;
        }
        if (tk.text == "false" || tk.text == "False") {
          lit->value = Value::boolean(false);
          return lit;
        }
        if (tk.text == "none" || tk.text == "None") {
          lit->value = Value::none();
          return lit;
        }
        auto n = node(Expr::Kind::Name, tk.pos);
        n->name = tk.text;
        return n;
      }
      case K::String: {
        std::string s;
        while (cur().kind == K::String) s += t_[i_++].text;  // adjacent literals concatenate
        auto lit = node(Expr::Kind::Literal, tk.pos);
        lit->value = Value::string(std::move(s));
        return lit;
      }
      case K::Int:
      case K::Float: {
        ++i_;
        auto lit = node(Expr::Kind::Literal, tk.pos);
        lit->value = tk.kind == K::Int ? Value::integer(tk.ival) : Value::number(tk.fval);
        return lit;
      }
      case K::Op:
        if (tk.text == "(") {
          ++i_;
          ExprPtr e = parse_tuple(true, true, {});
          expect_op(")");
          return e;
        }
        if (tk.text == "[") {
          ++i_;
          auto l = node(Expr::Kind::List, tk.pos);
          while (!is_op("]")) {
            if (!l->args.empty()) expect_op(",");
            if (is_op("]")) break;
            l->args.push_back(parse_expression(true));
          }
          ++i_;
          return l;
        }
        if (tk.text == "{") {
          ++i_;
          auto d = node(Expr::Kind::Dict, tk.pos);
          while (!is_op("}")) {
            if (!d->args.empty()) expect_op(",");
            if (is_op("}")) break;
            d->args.push_back(parse_expression(true));
            expect_op(":");
            d->args.push_back(parse_expression(true));
          }
          ++i_;
          return d;
        }
        break;
      default: break;
    }
    fail("unexpected " + describe(tk));
  }

  ExprPtr parse_postfix(ExprPtr n) {
    while (true) {
      if (is_op(".")) {
        const size_t pos = cur().pos;
        ++i_;
        if (cur().kind == K::Name) {
          auto g = node(Expr::Kind::GetAttr, pos);
          g->name = t_[i_++].text;
          g->args.push_back(n);
          n = g;
        } else if (cur().kind == K::Int) {
          auto g = node(Expr::Kind::GetItem, pos);
          auto lit = node(Expr::Kind::Literal, cur().pos);
          lit->value = Value::integer(t_[i_++].ival);
          g->args = {n, lit};
          n = g;
        } else {
          fail("expected an attribute name after '.', got " + describe(cur()));
        }
      } else if (is_op("[")) {
        const size_t pos = cur().pos;
        ++i_;
        std::vector<ExprPtr> items;
        while (!is_op("]")) {
          if (!items.empty()) expect_op(",");
          items.push_back(parse_subscribed());
        }
        ++i_;
        auto g = node(Expr::Kind::GetItem, pos);
        if (items.size() == 1) {
          g->args = {n, items[0]};
        } else {
          auto t = node(Expr::Kind::Tuple, pos);
          t->args = std::move(items);
          g->args = {n, t};
        }
        n = g;
      } else if (is_op("(")) {
        n = parse_call(n);
      } else {
        return n;
      }
    }
  }

  ExprPtr parse_subscribed() {
    const size_t pos = cur().pos;
    std::vector<ExprPtr> parts;
    if (is_op(":")) {
      ++i_;
      parts.push_back(nullptr);
    } else {
      ExprPtr e = parse_expression(true);
      if (!is_op(":")) return e;
      ++i_;
      parts.push_back(e);
    }
    if (is_op(":"))
      parts.push_back(nullptr);
    else if (!is_op("]") && !is_op(","))
      parts.push_back(parse_expression(true));
    else
      parts.push_back(nullptr);
    if (is_op(":")) {
      ++i_;
      parts.push_back(!is_op("]") && !is_op(",") ? parse_expression(true) : nullptr);
    } else {
      parts.push_back(nullptr);
    }
    auto s = node(Expr::Kind::Slice, pos);
    s->args = std::move(parts);
    return s;
  }

  void call_args(Expr& e) {
    expect_op("(");
    const size_t before = e.args.size();
    while (!is_op(")")) {
      if (e.args.size() > before || !e.kwargs.empty()) {
        expect_op(",");
        if (is_op(")")) break;
      }
      if (is_op("*") || is_op("**")) fail("*args and **kwargs in calls are not supported by tandem's Jinja subset");
      if (cur().kind == K::Name && look().kind == K::Op && look().text == "=") {
        const std::string key = expect_name();
        ++i_;
        e.kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e.kwargs.empty()) fail("a positional argument follows keyword arguments");
        e.args.push_back(parse_expression(true));
      }
    }
    ++i_;
  }

  ExprPtr parse_call(ExprPtr callee) {
    auto c = node(Expr::Kind::Call, cur().pos);
    c->args.push_back(callee);
    call_args(*c);
    return c;
  }

  ExprPtr parse_filter(ExprPtr n, bool start_inline) {
    while (is_op("|") || start_inline) {
      if (!start_inline) ++i_;
      start_inline = false;
      const size_t pos = cur().pos;
      std::string name = expect_name();
      while (is_op(".")) {
        ++i_;
        name += "." + expect_name();
      }
      if (!filter_known(name)) throw TemplateError("no filter named '" + name + "'", pos);
      auto f = node(Expr::Kind::Filter, pos);
      f->name = name;
      f->args.push_back(n);
      if (is_op("(")) call_args(*f);
      n = f;
    }
    return n;
  }

  ExprPtr parse_test(ExprPtr n) {
    ++i_;  // 'is'
    bool negated = false;
    if (is_name("not")) {
      ++i_;
      negated = true;
    }
    const size_t pos = cur().pos;
    std::string name = expect_name();
    while (is_op(".")) {
      ++i_;
      name += "." + expect_name();
    }
    if (!test_known(name)) throw TemplateError("no test named '" + name + "'", pos);
    auto t = node(Expr::Kind::Test, pos);
    t->name = name;
    t->args.push_back(n);
    if (is_op("(")) {
      call_args(*t);
    } else if ((cur().kind == K::Name || cur().kind == K::String || cur().kind == K::Int || cur().kind == K::Float ||
                is_op("(") || is_op("[") || is_op("{")) &&
               !is_name("else") && !is_name("or") && !is_name("and")) {
      if (is_name("is")) fail("tests cannot be chained with 'is'");
      t->args.push_back(parse_postfix(parse_primary()));
    }
    if (!negated) return t;
    auto u = node(Expr::Kind::Unary, t->pos);
    u->name = "not";
    u->args.push_back(t);
    return u;
  }

  ExprPtr parse_filter_expr(ExprPtr n) {
    while (true) {
      if (is_op("|"))
        n = parse_filter(n, false);
      else if (is_name("is"))
        n = parse_test(n);
      else if (is_op("("))
        n = parse_call(n);
      else
        return n;
    }
  }

  const std::vector<Token>& t_;
  size_t i_ = 0;
  int loop_depth_ = 0;
  int depth_ = 0;
};

}  // namespace

Program parse_program(std::string_view source) {
  Program p;
  p.source = normalize_source(source);
  const std::vector<Token> tokens = lex(p.source);
  p.body = Parser(tokens).parse_template();
  return p;
}

}  // namespace tandem::jinja
