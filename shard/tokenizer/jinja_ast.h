// The parsed form of a template: expression and statement nodes, each with its source offset so
// that a failure while rendering names the place in the template.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "shard/tokenizer/jinja_value.h"

namespace tandem::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<const Expr>;

struct Expr {
  enum class Kind {
    Literal,   // value
    Name,      // name
    List,      // args: items
    Tuple,     // args: items
    Dict,      // args: key0, value0, key1, value1, ...
    GetAttr,   // args[0].name
    GetItem,   // args[0][args[1]]
    Slice,     // args: start, stop, step (each may be null)
    Call,      // args[0](args[1..], kwargs)
    Filter,    // args[0] | name(args[1..], kwargs); args[0] null inside {% filter %}
    Test,      // args[0] is name(args[1..], kwargs)
    Unary,     // name ("-", "+", "not") args[0]
    Binary,    // args[0] name args[1]: + - * / // % ** ~ and or
    Compare,   // args[0] ops[0] args[1] ops[1] args[2] ...: == != < <= > >= in notin
    CondExpr,  // args: then, test, else (else may be null)
  };
  Kind kind = Kind::Literal;
  size_t pos = 0;
  Value value;
  std::string name;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Stmt;
using Body = std::vector<Stmt>;

struct Stmt {
  enum class Kind {
    Text,         // text
    Output,       // {{ expr }}
    If,           // branches: (test, body)...; a null test is the else branch
    For,          // for target in expr [if cond]: body [else: else_body]
    Set,          // set target = expr
    SetBlock,     // set name [| filter]: body
    Macro,        // macro name(params): body
    FilterBlock,  // filter expr (an Expr::Filter with a null operand): body
    With,         // with assignments: body
    Scope,        // {% generation %}: body rendered as is
    Break,
    Continue,
  };
  Kind kind = Kind::Text;
  size_t pos = 0;
  std::string text;
  ExprPtr expr, target, cond;
  std::vector<std::pair<ExprPtr, Body>> branches;
  Body body, else_body;
  std::string name;
  std::vector<std::pair<std::string, ExprPtr>> params;  // macro parameters (default may be null); With assignments
};

struct Program {
  std::string source;  // normalised source, for line/column of errors
  Body body;
};

}  // namespace tandem::jinja
