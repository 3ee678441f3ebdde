// Tokens -> Program, with Jinja's grammar and operator precedence (parser.py of Jinja 3): tags
// if/elif/else, for (tuple targets, `if` filter, else), set (incl. namespace attributes and block
// set), macro, filter, with, break/continue and transformers' generation; everything else is a
// TemplateError naming the tag. Unknown filter and test names fail here, as in Jinja.
#pragma once
#include <string_view>

#include "shard/tokenizer/jinja_ast.h"

namespace tandem::jinja {

Program parse_program(std::string_view source);

}  // namespace tandem::jinja
