// Reference regex splitter for the tests: the pre-tokenizer regexes of `tandem model pre-tokenizers
// --json`, run by JavaScript's own Unicode regex engine (ECMAScript, as llama.cpp's std::regex is)
// the way llama.cpp's unicode_regex_split applies them: each regex in turn cuts every piece into
// its matches and the text between them.
// stdin: {"specs": [{"name": ..., "regexes": [...]}], "texts": [...]}
// stdout: {"<name>": [[pieces of text 0], [pieces of text 1], ...], ...}
import { readFileSync } from "node:fs";

// PCRE2's \x{HHHH} is ECMAScript's \u{HHHH} (in "u" mode); the rest of the syntax the table uses
// (\p{..}, classes, lookaheads, {m,n}) is the same.
const toJs = (pcre) => pcre.replace(/\\x\{([0-9A-Fa-f]+)\}/g, "\\u{$1}");

function splitOne(re, text, out) {
  let gap = 0;
  for (const m of text.matchAll(re)) {
    if (m[0].length === 0) continue;
    if (m.index > gap) out.push(text.slice(gap, m.index));
    out.push(m[0]);
    gap = m.index + m[0].length;
  }
  if (gap < text.length) out.push(text.slice(gap));
}

const { specs, texts } = JSON.parse(readFileSync(0, "utf8"));
const result = {};
for (const { name, regexes } of specs) {
  const res = regexes.map((r) => new RegExp(toJs(r), "gu"));
  result[name] = texts.map((text) => {
    let pieces = text.length ? [text] : [];
    for (const re of res) {
      const next = [];
      for (const p of pieces) splitOne(re, p, next);
      pieces = next;
    }
    return pieces;
  });
}
process.stdout.write(JSON.stringify(result));
