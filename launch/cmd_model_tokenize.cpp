// `tandem model tokenize` and `tandem model detokenize`: text <-> ids with a file's tokenizer. The
// batch format is llama.cpp's vocabulary tests: stdin texts separated by `__ggml_vocab_test__`
// lines, one output line of ids per text, each id preceded by a space (the `.out` files).
#include <charconv>
#include <iostream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "launch/commands.h"
#include <nlohmann/json.hpp>

#include "shard/log.h"
#include "shard/tokenizer/pre_tokenizer.h"
#include "shard/tokenizer/tokenizer.h"

namespace tandem::cli {
namespace {

constexpr std::string_view kSeparator = "__ggml_vocab_test__";

struct TokenizeArgs {
  std::string path, text, ids, pre;
  bool pieces = false;
  bool text_given = false, ids_given = false;
  bool no_bos = false, parse_special = false, render_special = false;
};

Tokenizer load_tokenizer(const char* cmd, const std::string& path, const std::string& pre = "") {
  auto vocab = load_vocab(path);
  if (!vocab) {
    spdlog::error("model {}: {}", cmd, vocab.error().message);
    fail(1);
  }
  if (!pre.empty()) {
    if (vocab->kind != TokenizerKind::Bpe) {
      spdlog::error("model {}: --pre: {} is a SentencePiece vocabulary, which has no pre-tokenizer", cmd, path);
      fail(2);
    }
    vocab->pre = pre;
  }
  auto tok = Tokenizer::create(std::move(*vocab));
  if (!tok) {
    spdlog::error("model {}: {}: {}", cmd, path, tok.error().message);
    fail(1);
  }
  return std::move(*tok);
}

std::vector<std::string> read_lines(std::istream& in) {
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(std::move(line));
  return lines;
}

// Each text is the lines before a separator line joined by '\n' (the newline before the
// separator is not part of the text); lines after the last separator form one more text.
std::vector<std::string> split_texts(const std::vector<std::string>& lines) {
  std::vector<std::string> texts;
  std::string cur;
  bool open = false;
  for (const auto& line : lines) {
    if (line == kSeparator) {
      texts.push_back(std::move(cur));
      cur.clear();
      open = false;
      continue;
    }
    if (open) cur += '\n';
    cur += line;
    open = true;
  }
  if (open) texts.push_back(std::move(cur));
  return texts;
}

void run_tokenize(const TokenizeArgs& a) {
  const Tokenizer tok = load_tokenizer("tokenize", a.path, a.pre);
  std::vector<std::string> texts;
  bool add_special = false;
  if (a.text_given) {
    texts.push_back(a.text);
    add_special = !a.no_bos;
  } else {
    texts = split_texts(read_lines(std::cin));
  }
  std::string out;
  for (const auto& t : texts) {
    if (a.pieces) {
      out += nlohmann::json(tok.pre_tokenize(t)).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
    } else {
      for (int32_t id : tok.encode(t, add_special, a.parse_special)) fmt::format_to(std::back_inserter(out), " {}", id);
    }
    out += '\n';
  }
  std::cout << out << std::flush;
}

bool parse_ids(const Tokenizer& tok, std::string_view line, std::vector<int32_t>& ids, std::string& error) {
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t' || line[i] == ',' || line[i] == '\r')) ++i;
    if (i == line.size()) break;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t' && line[j] != ',' && line[j] != '\r') ++j;
    const std::string_view word = line.substr(i, j - i);
    int64_t id = 0;
    auto [p, ec] = std::from_chars(word.data(), word.data() + word.size(), id);
    if (ec != std::errc() || p != word.data() + word.size()) {
      error = fmt::format("'{}' is not a token id", word);
      return false;
    }
    if (id < 0 || id >= tok.n_vocab()) {
      error = fmt::format("token id {} is outside the vocabulary [0, {})", id, tok.n_vocab());
      return false;
    }
    ids.push_back(static_cast<int32_t>(id));
    i = j;
  }
  return true;
}

void run_detokenize(const TokenizeArgs& a) {
  const Tokenizer tok = load_tokenizer("detokenize", a.path);
  const std::vector<std::string> lines = a.ids_given ? std::vector<std::string>{a.ids} : read_lines(std::cin);
  std::string out;
  for (size_t n = 0; n < lines.size(); ++n) {
    std::vector<int32_t> ids;
    std::string error;
    if (!parse_ids(tok, lines[n], ids, error)) {
      spdlog::error("model detokenize: {}: {}", a.ids_given ? std::string("--ids") : fmt::format("stdin line {}", n + 1),
                    error);
      fail(2);
    }
    out += tok.decode(ids, a.render_special);
    out += '\n';
  }
  std::cout << out << std::flush;
}

}  // namespace

void add_model_tokenize(CLI::App& parent) {
  auto a = std::make_shared<TokenizeArgs>();
  auto* c = parent.add_subcommand("tokenize",
                                  "Print the token ids of text, one line per text, each id preceded by a space. Without "
                                  "--text, stdin holds texts each followed by a line '__ggml_vocab_test__' (llama.cpp's "
                                  ".inp format) and the output is the matching .out format");
  c->add_option("file", a->path, "A GGUF with tokenizer metadata (weights optional) or a llama2.c tokenizer.bin")
      ->required();
  c->add_option("--text", a->text, "Tokenize this text instead of reading stdin");
  c->add_flag("--no-bos", a->no_bos,
              "With --text, add no BOS/EOS even if the vocabulary asks for them (stdin texts never get them)");
  c->add_flag("--parse-special", a->parse_special, "Recognise control-token texts such as <s> in the input");
  c->add_option("--pre", a->pre,
                "Tokenize with this BPE pre-tokenizer instead of the file's tokenizer.ggml.pre (see `model pre-tokenizers`)");
  c->add_flag("--pieces", a->pieces,
              "Print the pre-tokenizer's pieces of each text (a JSON array of strings per line) instead of ids");
  c->callback([a, c] {
    a->text_given = c->count("--text") > 0;
    run_tokenize(*a);
  });

  auto list_json = std::make_shared<bool>(false);
  auto* l = parent.add_subcommand("pre-tokenizers",
                                  "List the BPE pre-tokenizers (tokenizer.ggml.pre values) and the regexes each splits "
                                  "text with, as llama.cpp defines them");
  l->add_flag("--json", *list_json, "One JSON array: names, regexes (PCRE2 syntax) and flags of every entry");
  l->callback([list_json] {
    if (*list_json) {
      nlohmann::json j = nlohmann::json::array();
      for (const auto& s : pre_tokenizer_table())
        j.push_back({{"names", s.names}, {"regexes", s.regexes}, {"ignore_merges", s.ignore_merges},
                     {"add_bos", s.add_bos}, {"no_bos", s.no_bos}});
      std::cout << j.dump(1) << '\n';
      return;
    }
    std::string out;
    for (const auto& s : pre_tokenizer_table()) {
      out += fmt::format("{}", fmt::join(s.names, ", "));
      std::vector<std::string> flags;
      if (s.ignore_merges) flags.emplace_back("a word that is a token is taken whole");
      if (s.add_bos) flags.emplace_back("adds a BOS by default");
      if (s.no_bos) flags.emplace_back("no BOS by default");
      if (!flags.empty()) out += fmt::format("  ({})", fmt::join(flags, "; "));
      out += '\n';
      for (auto r : s.regexes) out += fmt::format("    /{}/\n", r);
    }
    std::cout << out;
  });

  auto b = std::make_shared<TokenizeArgs>();
  auto* d = parent.add_subcommand("detokenize",
                                  "Print the text of token ids: --ids, or one line of ids per text on stdin; each text "
                                  "is followed by a newline");
  d->add_option("file", b->path, "A GGUF with tokenizer metadata (weights optional) or a llama2.c tokenizer.bin")
      ->required();
  d->add_option("--ids", b->ids, "Token ids separated by spaces or commas, e.g. \"1 2 3\"");
  d->add_flag("--render-special", b->render_special, "Show control tokens (BOS, EOS...) as their text");
  d->callback([b, d] {
    b->ids_given = d->count("--ids") > 0;
    run_detokenize(*b);
  });
}

}  // namespace tandem::cli
