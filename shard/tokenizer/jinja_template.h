// tandem's Jinja subset: the part of Jinja 3 that chat templates use, rendering exactly as
// transformers' renderer does (Python semantics, trim_blocks + lstrip_blocks, immutable sandbox,
// loop controls). Parse once, render many times; a Template is immutable and safe to render from
// several threads at once. Anything outside the subset is an error naming it and its place.
#pragma once
#include <memory>
#include <string>
#include <string_view>

#include "shard/result.h"
#include "shard/tokenizer/jinja_value.h"

namespace tandem::jinja {

struct Program;

struct RenderLimits {
  size_t max_output = 64u << 20;  // bytes of rendered text
  int64_t max_steps = 1'000'000;   // loop iterations + macro calls
  int max_call_depth = 200;        // nested macro calls
};

class Template {
 public:
  // Errors: "unknown tag 'include' (line 3, column 4)".
  static Result<Template> parse(std::string_view source);
  // `variables` are the template's globals (besides range, dict and namespace). A template that
  // calls raise_exception-like natives (RaisedError) fails with their message. Errors carry the
  // line and column of the failing expression.
  Result<std::string> render(const ObjectData& variables, const RenderLimits& limits = {}) const;

 private:
  std::shared_ptr<const Program> program_;
};

}  // namespace tandem::jinja
